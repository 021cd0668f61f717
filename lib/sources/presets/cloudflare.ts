import { checkFingerprint, derFromBase64, presentValue } from '../../codecs/cert-encodings.js'
import { CertificateParseError } from '../../codecs/parse-error.js'
import { forwarded } from './common.js'
import type { ForwardedCert, HeaderRead, Preset } from './types.js'

const CERT = 'cf-client-cert-der-base64'
const SHA256 = 'cf-client-cert-sha256'

/**
 * Cloudflare, mTLS hostname setting `client_certificate_forwarding: true`: `Cf-Client-Cert-Der-Base64` (base64
 * DER) and `Cf-Client-Cert-Sha256`, which must match it. Cloudflare forwards the certificate whatever its
 * validation result (checking it is left to WAF rules on `cf.tls_client_auth.cert_verified`), so it counts as
 * not verified here and registration requires `proxy.ca`. Cloudflare's documentation also says the headers
 * may come only on the first request of a connection: later requests then carry no certificate.
 */
export const cloudflare: Preset = Object.freeze({
  name: 'cloudflare',
  headers: Object.freeze([CERT, SHA256]),
  proxyVerifies: false,
  decode (read: HeaderRead): ForwardedCert | null {
    const cert = presentValue(read(CERT))
    const sha256 = presentValue(read(SHA256))
    if (cert === undefined) {
      if (sha256 !== undefined) throw new CertificateParseError('Cloudflare certificate hash without the certificate')
      return null
    }
    const der = derFromBase64(cert)
    if (sha256 !== undefined) checkFingerprint(der, sha256, 'Cloudflare certificate hash')
    return forwarded(der, [], false, null)
  }
})
