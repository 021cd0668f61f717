import { derFromPem, percentDecode, presentValue } from '../../codecs/cert-encodings.js'
import { normalizeSerial } from '../../codecs/fingerprint.js'
import { CertificateParseError } from '../../codecs/parse-error.js'
import { dnFromHeader, forwarded, parseTimestamp } from './common.js'
import type { ForwardedCert, HeaderRead, Preset } from './types.js'

const LEAF = 'x-amzn-mtls-clientcert-leaf'
const SUBJECT = 'x-amzn-mtls-clientcert-subject'
const ISSUER = 'x-amzn-mtls-clientcert-issuer'
const SERIAL = 'x-amzn-mtls-clientcert-serial-number'
const VALIDITY = 'x-amzn-mtls-clientcert-validity'
const VALIDITY_FORM = /^NotBefore=([^;]*);NotAfter=([^;]*)$/

/**
 * AWS Application Load Balancer, mutual TLS in **verify** mode. AWS documents the headers as:
 * `X-Amzn-Mtls-Clientcert-Leaf` the leaf as URL-encoded PEM with `+=/` left unescaped;
 * `-Subject`, `-Issuer` RFC 2253; `-Serial-Number` hex; `-Validity` `NotBefore=<ISO 8601>;NotAfter=<ISO 8601>`.
 * In verify mode the ALB completes the handshake only for certificates its trust store validates, so a
 * certificate counts as verified (with "ignore client certificate expiry" on, expired ones are among them).
 * Passthrough mode (`X-Amzn-Mtls-Clientcert`, unverified) is not this preset: use a custom mapping with
 * `verified: 'never'` and `proxy.ca`. The leaf is the identity; without it (a renamed or removed header) the
 * subject, issuer, serial and validity headers are (no subject beside the others: an empty subject).
 */
export const awsAlb: Preset = Object.freeze({
  name: 'aws-alb',
  headers: Object.freeze([LEAF, SUBJECT, ISSUER, SERIAL, VALIDITY]),
  proxyVerifies: true,
  decode (read: HeaderRead): ForwardedCert | null {
    const leaf = presentValue(read(LEAF))
    const subject = presentValue(read(SUBJECT))
    const issuer = presentValue(read(ISSUER))
    const serial = presentValue(read(SERIAL))
    const validity = presentValue(read(VALIDITY))
    if (leaf !== undefined) return forwarded(derFromPem(percentDecode(leaf, 'certificate')), [], true, null)
    if ((subject ?? issuer ?? serial ?? validity) === undefined) return null
    const result = forwarded(null, [], true, null)
    // Without a subject header beside the others, the certificate's subject is the empty name.
    result.subjectRDNs = subject === undefined ? [] : dnFromHeader(subject, 'dn-rfc4514')
    if (issuer !== undefined) result.issuerRDNs = dnFromHeader(issuer, 'dn-rfc4514')
    if (serial !== undefined) result.serialNumber = normalizeSerial(serial, 'hex')
    if (validity !== undefined) {
      const m = VALIDITY_FORM.exec(validity)
      if (m === null) throw new CertificateParseError('ALB validity is not NotBefore=…;NotAfter=…')
      result.notBefore = parseTimestamp(m[1], 'ALB NotBefore')
      result.notAfter = parseTimestamp(m[2], 'ALB NotAfter')
    }
    return result
  }
})
