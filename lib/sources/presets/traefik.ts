import { decodeCertificateList, percentDecode, presentValue } from '../../codecs/cert-encodings.js'
import { CertificateParseError } from '../../codecs/parse-error.js'
import { forwarded } from './common.js'
import type { ForwardedCert, HeaderRead, Preset } from './types.js'

const CERT = 'x-forwarded-tls-client-cert'
const INFO = 'x-forwarded-tls-client-cert-info'

/**
 * Traefik, middleware `passTLSClientCert` with `pem: true`. `X-Forwarded-Tls-Client-Cert` holds each
 * certificate the client sent as its PEM body (the base64 DER, markers and line breaks removed), leaf first,
 * joined by `,`; Traefik up to 2.9.3 also URL-escaped it (`%2B`, `%2F`, `%3D`), later versions do not. Both
 * are read. Traefik passes only certificates its `clientAuth.clientAuthType` accepted, so a certificate counts
 * as verified; that is only true with `VerifyClientCertIfGiven` or `RequireAndVerifyClientCert`.
 * `X-Forwarded-Tls-Client-Cert-Info` is refused on its own: its `Subject="…"` joins attribute values with
 * commas without escaping them, so a name cannot be read from it safely.
 */
export const traefik: Preset = Object.freeze({
  name: 'traefik',
  headers: Object.freeze([CERT, INFO]),
  proxyVerifies: true,
  decode (read: HeaderRead): ForwardedCert | null {
    const cert = presentValue(read(CERT))
    const info = presentValue(read(INFO))
    if (cert === undefined) {
      if (info !== undefined) {
        throw new CertificateParseError('Traefik certificate info without the certificate: enable pem in passTLSClientCert')
      }
      return null
    }
    const [der, ...chain] = decodeCertificateList(percentDecode(cert, 'certificate'), 'der-base64', 'certificate')
    return forwarded(der, chain, true, null)
  }
})
