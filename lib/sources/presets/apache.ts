import { derFromPem } from '../../codecs/cert-encodings.js'
import { sslClientPreset } from './common.js'
import type { Preset } from './types.js'

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
export const apache: Preset = sslClientPreset('apache', derFromPem)
