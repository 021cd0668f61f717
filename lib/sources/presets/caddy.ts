import { derFromBase64, presentValue } from '../../codecs/cert-encodings.js'
import { forwarded } from './common.js'
import type { ForwardedCert, HeaderRead, Preset } from './types.js'

const CERT = 'x-ssl-client-cert'

/**
 * Caddy:
 * ```
 * reverse_proxy … { header_up X-SSL-Client-Cert {http.request.tls.client.certificate_der_base64} }
 * ```
 * Without a certificate Caddy forwards the placeholder text itself, which reads as absent. Caddy has no
 * verification status, so a forwarded certificate counts as verified: this is only true with `client_auth`
 * mode `verify_if_given` or `require_and_verify`. With `request` or `require` Caddy forwards any certificate,
 * expired or self-made; use the `proxy.ca` option then (or better, a verifying mode).
 */
export const caddy: Preset = Object.freeze({
  name: 'caddy',
  headers: Object.freeze([CERT]),
  proxyVerifies: true,
  decode (read: HeaderRead): ForwardedCert | null {
    const cert = presentValue(read(CERT))
    if (cert === undefined) return null
    return forwarded(derFromBase64(cert), [], true, null)
  }
})
