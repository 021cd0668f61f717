import { X509Certificate } from 'node:crypto'
import { checkFingerprint, derFromPem, dersFromPem, ownBuffer, percentDecode, presentValue } from '../../codecs/cert-encodings.js'
import { dnEquals } from '../../codecs/dn.js'
import { readCertificate } from '../../codecs/x509.js'
import { CertificateParseError } from '../../codecs/parse-error.js'
import { spiffeIdFromUris } from '../../codecs/spiffe.js'
import { parseNodeSAN } from '../../codecs/san.js'
import { parseXFCC, type XfccElement } from '../../codecs/xfcc.js'
import { dnFromHeader, forwarded } from './common.js'
import type { ForwardedCert, HeaderRead, Preset } from './types.js'

const XFCC = 'x-forwarded-client-cert'

/** `proxy.xfcc` after registration checked it. */
export interface NormalizedXfcc {
  /** the number of elements the header must hold; the user's is the first */
  readonly hops: number
  /** an element without `Cert` or `Chain` is refused */
  readonly cert: boolean
}

export const defaultXfcc: NormalizedXfcc = Object.freeze({ hops: 1, cert: false })

/**
 * The client certificate described by an `X-Forwarded-Client-Cert` value. Each Envoy between the client and
 * the app adds one element (the outermost with `SANITIZE_SET`, the others with `APPEND_FORWARD`), so the
 * header must hold exactly `hops` of them: one more is a `,` inside a SAN (or a client's header let through),
 * and reading "the last" or "the n-th from the end" would then read the holder's text. The user's element is
 * the first, written by the Envoy that terminated the client's TLS.
 *
 * With `Cert` (or `Chain`, leaf first) the identity is the certificate's alone; `Hash`, `Subject`, `URI` and
 * `DNS`, when present, must say exactly what the certificate says. Without it the names are the identity,
 * and they are read only when they cannot have been split out of one SAN (see `fromNames`).
 * XFCC exists only for verified peers, so the certificate counts as verified.
 */
export function decodeXfccValue (value: string, options: NormalizedXfcc): ForwardedCert {
  const elements = parseXFCC(value)
  if (elements.length !== options.hops) {
    throw new CertificateParseError(`XFCC holds ${elements.length} elements where proxy.xfcc.hops expects ${options.hops}`)
  }
  const element = elements[0]
  if (element.cert !== undefined || element.chain !== undefined) return fromCertificate(element)
  if (options.cert) throw new CertificateParseError('XFCC element has no Cert where proxy.xfcc.cert expects one')
  return fromNames(element)
}

function fromCertificate (element: XfccElement): ForwardedCert {
  let der: Buffer | null = null
  let chain: Buffer[] = []
  if (element.cert !== undefined) der = derFromPem(percentDecode(element.cert, 'XFCC Cert'), 'XFCC Cert')
  if (element.chain !== undefined) {
    const ders = dersFromPem(percentDecode(element.chain, 'XFCC Chain'), 'XFCC Chain')
    if (der !== null && !ders[0].equals(der)) throw new CertificateParseError('XFCC Chain does not start with Cert')
    der = ders[0]
    chain = ders.slice(1)
  }
  // In a buffer of its own, as the cache keeps it, so that the reading below serves the identity too.
  const leaf = ownBuffer(der as Buffer)
  if (element.hash !== undefined) checkFingerprint(leaf, element.hash, 'XFCC Hash')
  const result = forwarded(leaf, chain, true, null)
  if (element.subject !== undefined || element.uri.length > 0 || element.dns.length > 0) {
    // The names Envoy wrote beside the certificate were read out of it: any difference is text a SAN
    // smuggled into the element, so the element is refused rather than partly believed. They are read with the
    // DER reader; Node's parser (≈100 µs) only for SANs that reader leaves to Node's text.
    const parsed = readCertificate(leaf)
    result.parsed = parsed
    if (element.subject !== undefined && !dnEquals(dnFromHeader(element.subject, 'dn-rfc4514'), parsed.subject)) {
      throw new CertificateParseError('XFCC Subject does not match the forwarded certificate')
    }
    let san = parsed.san
    if (san === null) {
      const certificate = new X509Certificate(leaf)
      san = parseNodeSAN(certificate.subjectAltName)
      result.certificate = certificate
    }
    if (element.uri.length > 0 && !sameList(element.uri, san.uri.length === 0 ? [''] : san.uri)) {
      throw new CertificateParseError('XFCC URI does not match the forwarded certificate')
    }
    if (element.dns.length > 0 && !sameList(element.dns, san.dns)) {
      throw new CertificateParseError('XFCC DNS does not match the forwarded certificate')
    }
  }
  return result
}

/**
 * An element without the certificate. Envoy writes each URI and DNS SAN raw after `URI=` / `DNS=`, so
 * `URI=a;URI=b` is both a certificate with two URI SANs and one whose single SAN is `a;URI=b` (and
 * `URI=a;DNS=b` one whose URI SAN is `a;DNS=b`): nothing in the header tells them apart. Only an element with
 * at most one URI or DNS value is unambiguous (Envoy's order puts every other key before them, and the parser
 * refuses keys out of that order); several are refused. `Subject` is quoted and `Hash` is hex, so both are safe.
 */
function fromNames (element: XfccElement): ForwardedCert {
  if (element.uri.length + element.dns.length > 1) {
    throw new CertificateParseError('XFCC element without Cert holds several URI/DNS values, which one raw SAN could have written')
  }
  const hasSan = element.uri.length > 0 || element.dns.length > 0
  if (element.subject === undefined && element.hash === undefined && !hasSan) {
    throw new CertificateParseError('XFCC element describes no client certificate')
  }
  const result = forwarded(null, [], true, null)
  if (element.subject !== undefined) result.subjectRDNs = dnFromHeader(element.subject, 'dn-rfc4514')
  if (element.hash !== undefined) result.fingerprint256 = checkFingerprint(null, element.hash, 'XFCC Hash')
  if (hasSan) {
    // Envoy writes `URI=` for a certificate without URI SAN.
    const uri = element.uri.filter((u) => u !== '')
    result.san = { dns: element.dns.filter((d) => d !== ''), email: [], uri, ip: [] }
    result.spiffeId = spiffeIdFromUris(uri)
  }
  return result
}

function sameList (a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i])
}

/**
 * Envoy (and Istio, which configures it), as `proxy.xfcc` says: `hops` Envoys add elements, the outermost
 * with `forward_client_cert_details: SANITIZE_SET` and any nearer the app with `APPEND_FORWARD`;
 * `set_current_client_cert_details` `cert: true` forwards the whole certificate (else the identity comes from
 * `Subject`, `URI`, `DNS`, `Hash`). Envoy removes the header on connections without a client certificate
 * and adds it only for peers it validated: present means verified. `FORWARD_ONLY` / `ALWAYS_FORWARD_ONLY`
 * on the outermost would pass a client's own header through: never use them there.
 */
export function createEnvoyPreset (options: NormalizedXfcc): Preset {
  return Object.freeze({
    name: 'envoy',
    headers: Object.freeze([XFCC]),
    proxyVerifies: true,
    decode (read: HeaderRead): ForwardedCert | null {
      const value = presentValue(read(XFCC))
      return value === undefined ? null : decodeXfccValue(value, options)
    }
  })
}

/** The preset as `proxy: { preset: 'envoy' }` without `xfcc` reads it: one element, `Cert` optional. */
export const envoy: Preset = createEnvoyPreset(defaultXfcc)
