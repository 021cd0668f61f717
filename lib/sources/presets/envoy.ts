import { checkFingerprint, derFromPem, dersFromPem, percentDecode, presentValue } from '../../codecs/cert-encodings.js'
import { CertificateParseError } from '../../codecs/parse-error.js'
import { spiffeIdFromUris } from '../../codecs/spiffe.js'
import { parseXFCC } from '../../codecs/xfcc.js'
import { dnFromHeader, forwarded } from './common.js'
import type { ForwardedCert, HeaderRead, Preset } from './types.js'

const XFCC = 'x-forwarded-client-cert'

/**
 * The client certificate described by an `X-Forwarded-Client-Cert` value: its last element, the one the
 * proxy nearest to the app appended (earlier elements were written by proxies further out, or by the client).
 * `Cert` (or the leaf of `Chain`) gives the whole certificate; `Chain` must start with it and gives the rest;
 * `Hash` must match it. Without either, the element's `Subject`, `URI`, `DNS` and `Hash` describe it.
 * XFCC exists only for verified peers, so the certificate counts as verified.
 */
export function decodeXfccValue (value: string): ForwardedCert {
  const elements = parseXFCC(value)
  const element = elements[elements.length - 1]

  let der: Buffer | null = null
  let chain: Buffer[] = []
  if (element.cert !== undefined) der = derFromPem(percentDecode(element.cert, 'XFCC Cert'), 'XFCC Cert')
  if (element.chain !== undefined) {
    const ders = dersFromPem(percentDecode(element.chain, 'XFCC Chain'), 'XFCC Chain')
    if (der !== null && !ders[0].equals(der)) throw new CertificateParseError('XFCC Chain does not start with Cert')
    der = ders[0]
    chain = ders.slice(1)
  }
  const fingerprint256 = element.hash === undefined ? undefined : checkFingerprint(der, element.hash, 'XFCC Hash')
  const result = forwarded(der, chain, true, null)
  if (der !== null) return result

  const hasSan = element.uri.length > 0 || element.dns.length > 0
  if (element.subject === undefined && fingerprint256 === undefined && !hasSan) {
    throw new CertificateParseError('XFCC element describes no client certificate')
  }
  if (element.subject !== undefined) {
    // Envoy writes the RFC 2253 subject between quotes without escaping it, so a quote in the name cannot be
    // told from XFCC's own `\"`: such a name is refused rather than read one way or the other.
    if (element.subject.includes('"')) throw new CertificateParseError('XFCC Subject holds a quote')
    result.subjectRDNs = element.subject === '' ? [] : dnFromHeader(element.subject, 'dn-rfc4514')
  }
  if (fingerprint256 !== undefined) result.fingerprint256 = fingerprint256
  if (hasSan) {
    // Envoy writes `URI=` for a certificate without URI SAN.
    const uri = element.uri.filter((u) => u !== '')
    result.san = { dns: element.dns.filter((d) => d !== ''), email: [], uri, ip: [] }
    result.spiffeId = spiffeIdFromUris(uri)
  }
  return result
}

/**
 * Envoy (and Istio, which configures it): `forward_client_cert_details: APPEND_FORWARD` or `SANITIZE_SET` on
 * the Envoy next to the app, with `set_current_client_cert_details` `cert: true` for the whole certificate
 * (else the identity comes from `Subject`, `URI`, `DNS`, `Hash`). Envoy removes the header on connections
 * without a client certificate and adds it only for peers it validated: present means verified.
 * `FORWARD_ONLY` / `ALWAYS_FORWARD_ONLY` on that Envoy would pass a client's own header through: never use them there.
 */
export const envoy: Preset = Object.freeze({
  name: 'envoy',
  headers: Object.freeze([XFCC]),
  proxyVerifies: true,
  decode (read: HeaderRead): ForwardedCert | null {
    const value = presentValue(read(XFCC))
    return value === undefined ? null : decodeXfccValue(value)
  }
})
