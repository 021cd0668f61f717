import { derFromPem, presentValue } from '../cert-encodings.js'
import { sslClientVerify } from './common.js'
import type { ForwardedCert, HeaderRead, Preset } from './types.js'

const CERT = 'x-ssl-client-cert'
const VERIFY = 'x-ssl-client-verify'

/**
 * Apache httpd (mod_ssl + mod_headers):
 * ```
 * RequestHeader set X-SSL-Client-Cert   "%{SSL_CLIENT_CERT}s"
 * RequestHeader set X-SSL-Client-Verify "%{SSL_CLIENT_VERIFY}s"
 * ```
 * `SSL_CLIENT_CERT` is PEM whose line breaks Apache turns into spaces; every unset variable is `(null)`.
 * Verified: status `SUCCESS`. `FAILED:reason` and `GENEROUS` (`optional_no_ca` let an unverifiable certificate
 * through) are not verified. `NONE` beside a certificate, or any other status, is refused.
 */
export const apache: Preset = Object.freeze({
  name: 'apache',
  headers: Object.freeze([CERT, VERIFY]),
  proxyVerifies: true,
  decode (read: HeaderRead): ForwardedCert | null {
    const cert = presentValue(read(CERT))
    const status = presentValue(read(VERIFY))
    if (cert === undefined) return null
    return sslClientVerify(derFromPem(cert), status, VERIFY, 'Apache')
  }
})
