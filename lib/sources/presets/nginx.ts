import { derFromPem, percentDecode } from '../../codecs/cert-encodings.js'
import { sslClientPreset } from './common.js'
import type { Preset } from './types.js'

/**
 * nginx:
 * ```
 * proxy_set_header X-SSL-Client-Cert   $ssl_client_escaped_cert;
 * proxy_set_header X-SSL-Client-Verify $ssl_client_verify;
 * ```
 * `$ssl_client_escaped_cert` is the URL-encoded PEM (`$ssl_client_cert` and `$ssl_client_raw_cert` hold line
 * breaks that Node's HTTP parser refuses). nginx omits the header when there is no certificate.
 * Verified: status `SUCCESS`. `FAILED:reason` (`optional_no_ca`) is not verified, `reason` is the error.
 * `NONE` beside a certificate, or any other status, is refused. A status without a certificate is no certificate.
 */
export const nginx: Preset = sslClientPreset('nginx', (value) => derFromPem(percentDecode(value, 'certificate')))
