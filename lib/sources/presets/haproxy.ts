import { decodeCertificateList, derFromBase64, presentValue } from '../../codecs/cert-encodings.js'
import { CertificateParseError } from '../../codecs/parse-error.js'
import { forwarded, statusMissing } from './common.js'
import type { ForwardedCert, HeaderRead, Preset } from './types.js'

const CERT = 'x-ssl-client-cert'
const VERIFY = 'x-ssl-client-verify'
const USED = 'x-ssl-client-used'
const CHAIN = 'x-ssl-client-chain'
const VERIFY_CODE = /^[0-9]{1,4}$/

/**
 * HAProxy:
 * ```
 * http-request set-header X-SSL-Client-Cert   %[ssl_c_der,base64]
 * http-request set-header X-SSL-Client-Verify %[ssl_c_verify]
 * http-request set-header X-SSL-Client-Used   %[ssl_c_used]
 * http-request set-header X-SSL-Client-Chain  %[ssl_c_chain_der,base64]
 * ```
 * HAProxy sends every header, empty when there is no certificate, and `ssl_c_verify` is `0` both for a verified
 * certificate and for none: only `ssl_c_used` tells them apart. `used` `0` is no certificate; `1` with a
 * certificate is verified when `verify` is `0`, else not verified with the X509_V_ERR code (`10`, `21`…) as
 * the error. A certificate without `used`/`verify`, or values other than these, are refused.
 * `X-SSL-Client-Chain` (optional; the generated configuration sets it, so a client cannot) holds the
 * intermediates the client sent, DER back to back: what `proxy.ca` needs when the leaf's issuer is not an
 * anchor. HAProxy leaves it empty on resumed sessions.
 */
export const haproxy: Preset = Object.freeze({
  name: 'haproxy',
  headers: Object.freeze([CERT, VERIFY, USED, CHAIN]),
  proxyVerifies: true,
  decode (read: HeaderRead): ForwardedCert | null {
    const cert = presentValue(read(CERT))
    const used = presentValue(read(USED))
    const status = presentValue(read(VERIFY))
    if (used === '0') return null
    if (used !== undefined && used !== '1') throw new CertificateParseError('HAProxy ssl_c_used is neither 0 nor 1')
    const chainValue = presentValue(read(CHAIN))
    if (cert === undefined) {
      if (chainValue !== undefined) throw new CertificateParseError('HAProxy chain without a certificate')
      return null
    }
    const der = derFromBase64(cert)
    const chain = chainValue === undefined ? [] : decodeCertificateList(chainValue, 'der-base64-concatenated')
    if (used === undefined) throw statusMissing(USED)
    if (status === undefined) throw statusMissing(VERIFY)
    if (!VERIFY_CODE.test(status)) throw new CertificateParseError('HAProxy ssl_c_verify is not a number')
    return status === '0' ? forwarded(der, chain, true, null) : forwarded(der, chain, false, status)
  }
})
