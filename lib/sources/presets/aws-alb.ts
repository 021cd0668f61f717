import { decodeBundle, derFromPem, percentDecode, presentValue } from '../../codecs/cert-encodings.js'
import { forwarded, refuseDetailsWithoutCertificate } from './common.js'
import type { ForwardedCert, HeaderRead, Preset } from './types.js'

const LEAF = 'x-amzn-mtls-clientcert-leaf'
const SUBJECT = 'x-amzn-mtls-clientcert-subject'
const ISSUER = 'x-amzn-mtls-clientcert-issuer'
const SERIAL = 'x-amzn-mtls-clientcert-serial-number'
const VALIDITY = 'x-amzn-mtls-clientcert-validity'
const DETAILS = [SUBJECT, ISSUER, SERIAL, VALIDITY]

/**
 * AWS Application Load Balancer, mutual TLS in **verify** mode. AWS documents the headers as:
 * `X-Amzn-Mtls-Clientcert-Leaf` the leaf as URL-encoded PEM with `+=/` left unescaped;
 * `-Subject`, `-Issuer` RFC 2253; `-Serial-Number` hex; `-Validity` `NotBefore=<ISO 8601>;NotAfter=<ISO 8601>`.
 * In verify mode the ALB completes the handshake only for certificates its trust store validates, so a
 * certificate counts as verified (with "ignore client certificate expiry" on, expired ones are among them).
 * Verify mode sends the leaf with every other header, so the leaf is the identity and the others are never
 * read as one: arriving without it (a renamed or lost header) they are refused. Passthrough mode
 * (`X-Amzn-Mtls-Clientcert`, unverified) is not this preset: see `awsAlbPassthrough`; a renamed leaf header,
 * a custom mapping naming it.
 */
export const awsAlb: Preset = Object.freeze({
  name: 'aws-alb',
  headers: Object.freeze([LEAF, SUBJECT, ISSUER, SERIAL, VALIDITY]),
  proxyVerifies: true,
  decode (read: HeaderRead): ForwardedCert | null {
    const leaf = presentValue(read(LEAF))
    if (leaf !== undefined) return forwarded(derFromPem(percentDecode(leaf, 'certificate')), [], true, null)
    refuseDetailsWithoutCertificate(LEAF, DETAILS.map((name) => presentValue(read(name))))
    return null
  }
})

const BUNDLE = 'x-amzn-mtls-clientcert'

/**
 * AWS Application Load Balancer, mutual TLS in **passthrough** mode: the ALB verifies nothing and forwards what
 * the client sent, leaf then chain, as consecutive PEM blocks URL-encoded with `+=/` left raw, in
 * `X-Amzn-Mtls-Clientcert`. The app verifies it (`proxy.ca`, which registration requires) with the forwarded
 * chain. A separate preset from verify mode, so that a header one mode sends is never read under the other's trust.
 */
export const awsAlbPassthrough: Preset = Object.freeze({
  name: 'aws-alb-passthrough',
  headers: Object.freeze([BUNDLE]),
  proxyVerifies: false,
  decode (read: HeaderRead): ForwardedCert | null {
    const value = presentValue(read(BUNDLE))
    if (value === undefined) return null
    const { der, chain } = decodeBundle(value, 'pem-urlencoded-chain')
    return forwarded(der, chain, false, null)
  }
})
