import { derFromBase64, presentValue } from '../../codecs/cert-encodings.js'
import { forwarded } from './common.js'
import type { ForwardedCert, HeaderRead, Preset } from './types.js'

const CERT = 'x-arr-clientcert'

/**
 * Azure App Service with client certificates enabled: `X-ARR-ClientCert` is the base64 DER of whatever
 * certificate the client sent. App Service does not validate it, so it counts as not verified and
 * registration requires `proxy.ca`.
 */
export const azure: Preset = Object.freeze({
  name: 'azure',
  headers: Object.freeze([CERT]),
  proxyVerifies: false,
  decode (read: HeaderRead): ForwardedCert | null {
    const cert = presentValue(read(CERT))
    if (cert === undefined) return null
    return forwarded(derFromBase64(cert), [], false, null)
  }
})
