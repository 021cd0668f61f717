import { decodeCertificate, decodeCertificateList, presentValue } from '../../codecs/cert-encodings.js'
import { CertificateParseError } from '../../codecs/parse-error.js'
import { forwarded } from './common.js'
import type { ForwardedCert, HeaderRead, Preset } from './types.js'

const CERT = 'client-cert'
const CHAIN = 'client-cert-chain'

/**
 * RFC 9440: `Client-Cert` is the leaf as a structured-field byte sequence (`:base64-DER:`), `Client-Cert-Chain`
 * a list of them (leaf excluded). Per §2.4 the proxy validated the certificate under its policy before
 * forwarding it, so it counts as verified. (Cloudflare's `cf.tls_client_auth.cert_rfc9440` field is filled
 * whether or not the certificate validated: forward it only from a rule that checks `cert_verified`.)
 * A chain without a leaf is refused.
 */
export const rfc9440: Preset = Object.freeze({
  name: 'rfc9440',
  headers: Object.freeze([CERT, CHAIN]),
  // Client-Cert-Chain is a List (RFC 8941), which may arrive split over field lines; Client-Cert is an Item.
  listHeaders: Object.freeze([CHAIN]),
  proxyVerifies: true,
  decode (read: HeaderRead): ForwardedCert | null {
    const cert = presentValue(read(CERT))
    const chain = presentValue(read(CHAIN))
    if (cert === undefined) {
      if (chain !== undefined) throw new CertificateParseError('Client-Cert-Chain without Client-Cert')
      return null
    }
    const der = decodeCertificate(cert, 'rfc9440')
    return forwarded(der, chain === undefined ? [] : decodeCertificateList(chain, 'rfc9440'), true, null)
  }
})
