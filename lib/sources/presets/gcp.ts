import { assertDerCertificate, checkFingerprint, decodeBase64, parseSfBinary, parseSfBinaryList, presentValue } from '../../codecs/cert-encodings.js'
import { normalizeSerial } from '../../codecs/fingerprint.js'
import { CertificateParseError } from '../../codecs/parse-error.js'
import { isSpiffeId } from '../../codecs/spiffe.js'
import { forwarded, parseTimestamp, refuseDetailsWithoutCertificate, statusMissing } from './common.js'
import type { ForwardedCert, HeaderRead, Preset } from './types.js'

const PRESENT = 'x-client-cert-present'
const CHAIN_VERIFIED = 'x-client-cert-chain-verified'
const ERROR = 'x-client-cert-error'
const HASH = 'x-client-cert-hash'
const SERIAL = 'x-client-cert-serial-number'
const SPIFFE = 'x-client-cert-spiffe'
const URI_SANS = 'x-client-cert-uri-sans'
const DNS_SANS = 'x-client-cert-dnsname-sans'
const NOT_BEFORE = 'x-client-cert-valid-not-before'
const NOT_AFTER = 'x-client-cert-valid-not-after'
const LEAF = 'x-client-cert-leaf'
const CHAIN = 'x-client-cert-chain'

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** Google's `client_cert_uri_sans` / `client_cert_dnsname_sans`: comma-separated base64 of each name. */
function base64List (value: string, what: string): string[] {
  return value.split(',').map((item) => {
    const bytes = decodeBase64(item, what, 'optional')
    try {
      return utf8.decode(bytes)
    } catch {
      throw new CertificateParseError(`${what} is not UTF-8`)
    }
  })
}

/**
 * Google Cloud Application Load Balancers with mTLS, backend-service custom request headers named as in
 * Google's example (the leaf and chain names are ours):
 * ```
 * X-Client-Cert-Present:{client_cert_present}            X-Client-Cert-Chain-Verified:{client_cert_chain_verified}
 * X-Client-Cert-Error:{client_cert_error}                X-Client-Cert-Hash:{client_cert_sha256_fingerprint}
 * X-Client-Cert-Serial-Number:{client_cert_serial_number} X-Client-Cert-SPIFFE:{client_cert_spiffe_id}
 * X-Client-Cert-URI-SANs:{client_cert_uri_sans}          X-Client-Cert-DNSName-SANs:{client_cert_dnsname_sans}
 * X-Client-Cert-Valid-Not-Before:{client_cert_valid_not_before}
 * X-Client-Cert-Valid-Not-After:{client_cert_valid_not_after}
 * X-Client-Cert-Leaf:{client_cert_leaf}                  X-Client-Cert-Chain:{client_cert_chain}
 * ```
 * `Present` and `Leaf` must be configured: `true` is a certificate, `false` or empty none. Verified:
 * `Chain-Verified` is `true`; with `false` (mode `ALLOW_INVALID_OR_MISSING_CLIENT_CERT`) `Error` is the error.
 * Google fills the leaf (an RFC 9440 byte sequence) and chain (a list of them, leaf excluded) for every
 * certificate that passed validation, so a verified one always comes whole and a verified one without its
 * leaf is refused: a description cannot be checked against `crl` (Google sends no issuer) or `proxy.ca`.
 * Certificates that failed validation come without it: the hash (base64 SHA-256), serial, SPIFFE ID, URI and
 * DNS SANs (each base64) and validity (RFC 3339) describe them (never verified). Google sends no email or IP
 * SANs, and leaves the SPIFFE ID out of the URI SANs; it is put back in first place.
 */
export const gcp: Preset = Object.freeze({
  name: 'gcp',
  headers: Object.freeze([PRESENT, CHAIN_VERIFIED, ERROR, HASH, SERIAL, SPIFFE, URI_SANS, DNS_SANS, NOT_BEFORE, NOT_AFTER, LEAF, CHAIN]),
  // client_cert_chain is a list of byte sequences: several field lines of it mean their comma-joined value.
  listHeaders: Object.freeze([CHAIN]),
  proxyVerifies: true,
  decode (read: HeaderRead): ForwardedCert | null {
    const present = presentValue(read(PRESENT))
    const chainVerified = presentValue(read(CHAIN_VERIFIED))
    const error = presentValue(read(ERROR))
    const leaf = presentValue(read(LEAF))
    const chainValue = presentValue(read(CHAIN))
    const hash = presentValue(read(HASH))
    const serial = presentValue(read(SERIAL))
    const spiffe = presentValue(read(SPIFFE))
    const uriSans = presentValue(read(URI_SANS))
    const dnsSans = presentValue(read(DNS_SANS))
    const notBefore = presentValue(read(NOT_BEFORE))
    const notAfter = presentValue(read(NOT_AFTER))
    if (present !== 'true') {
      if (present !== undefined && present !== 'false') throw new CertificateParseError('GCP client_cert_present is neither true nor false')
      if (leaf !== undefined || chainValue !== undefined) throw new CertificateParseError('GCP certificate without client_cert_present true')
      return null
    }
    if (chainVerified === undefined) throw statusMissing(CHAIN_VERIFIED)
    if (chainVerified !== 'true' && chainVerified !== 'false') {
      throw new CertificateParseError('GCP client_cert_chain_verified is neither true nor false')
    }

    const der = leaf === undefined ? null : assertDerCertificate(parseSfBinary(leaf, 'certificate'), 'certificate')
    // `Present: true` describes the certificate too: beside a verified verdict, the leaf was lost or not configured.
    if (der === null && chainVerified === 'true') refuseDetailsWithoutCertificate(LEAF, [present])
    if (der === null && chainValue !== undefined) throw new CertificateParseError('GCP chain without leaf')
    const chain = chainValue === undefined
      ? []
      : parseSfBinaryList(chainValue, 'certificate chain').map((c) => assertDerCertificate(c, 'certificate chain'))
    const fingerprint256 = hash === undefined ? undefined : checkFingerprint(der, hash, 'GCP hash')
    const result = forwarded(der, chain, chainVerified === 'true', error ?? 'client_cert_chain_verified false')
    if (der !== null) return result

    if (fingerprint256 !== undefined) result.fingerprint256 = fingerprint256
    if (serial !== undefined) result.serialNumber = normalizeSerial(serial, 'hex')
    if (spiffe !== undefined && !isSpiffeId(spiffe)) throw new CertificateParseError('GCP SPIFFE ID is not valid')
    if (spiffe !== undefined || uriSans !== undefined || dnsSans !== undefined) {
      const uri = uriSans === undefined ? [] : base64List(uriSans, 'GCP URI SANs')
      if (spiffe !== undefined) uri.unshift(spiffe)
      result.san = { dns: dnsSans === undefined ? [] : base64List(dnsSans, 'GCP DNS SANs'), email: [], uri, ip: [] }
      result.spiffeId = spiffe ?? null
    }
    if (notBefore !== undefined) result.notBefore = parseTimestamp(notBefore, 'GCP not-before')
    if (notAfter !== undefined) result.notAfter = parseTimestamp(notAfter, 'GCP not-after')
    return result
  }
})
