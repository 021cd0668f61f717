import { X509Certificate } from 'node:crypto'
import { formatDN, type RDN } from './codecs/dn.js'
import { CertificateParseError } from './codecs/parse-error.js'
import { parseNodeSAN, type SubjectAltNames } from './codecs/san.js'
import { spiffeIdFromUris } from './codecs/spiffe.js'
import { certificateNames } from './codecs/x509-names.js'

/** Where the certificate reached the app from. */
export type IdentitySource = 'tls' | 'proxy'

/**
 * The normalized identity of a client certificate: `request.clientCert`.
 * The same verified certificate yields the same fields (all but `source`, `proxy`, `certificate`)
 * whichever mode or proxy delivered it. A field the source cannot supply is `null`.
 * Identities are frozen: one object may be shared by every request of a connection.
 */
export interface ClientCertIdentity {
  /** `'tls'` when Fastify terminated TLS, `'proxy'` when a trusted proxy forwarded the certificate. */
  readonly source: IdentitySource
  /** The preset name (or `'custom'`) when `source` is `'proxy'`, else `null`. */
  readonly proxy: string | null
  /** `true` only when the chain was verified (and the certificate is not revoked by `crl`). */
  readonly verified: boolean
  /** `null`, or why the certificate is not verified (`CERT_HAS_EXPIRED`, `CERT_REVOKED`, the proxy's own text…). */
  readonly verifyError: string | null
  /** RFC 4514 subject, most specific RDN first, UTF-8 unescaped (`openssl -nameopt RFC2253,-esc_msb`); `''` for an empty name. */
  readonly subject: string | null
  /** RFC 4514 issuer, same format as `subject`. */
  readonly issuer: string | null
  readonly subjectRDNs: ReadonlyArray<Readonly<RDN>> | null
  readonly issuerRDNs: ReadonlyArray<Readonly<RDN>> | null
  /** The most specific CN, or `null`. */
  readonly commonName: string | null
  /** Subject alternative names in certificate order; IPs in canonical text (RFC 5952 for IPv6). */
  readonly san: Readonly<SubjectAltNames> | null
  /** The `spiffe://` URI SAN when the certificate has exactly one, else `null`. */
  readonly spiffeId: string | null
  /** As `X509Certificate#serialNumber` prints it: upper-case hex, whole bytes. */
  readonly serialNumber: string | null
  /** As `X509Certificate#fingerprint256` prints it: `AB:CD:…`. */
  readonly fingerprint256: string | null
  readonly notBefore: Date | null
  readonly notAfter: Date | null
  /** Node's certificate object when the whole certificate is known, else `null`. */
  readonly certificate: X509Certificate | null
}

/** How the identity was obtained: everything `identityFromCertificate` cannot read from the certificate itself. */
export interface IdentityOptions {
  source?: IdentitySource
  proxy?: string | null
  verified?: boolean
  verifyError?: string | null
}

/** The fields of an identity that depend only on the certificate. */
export type CertificateFields = Omit<ClientCertIdentity, 'source' | 'proxy' | 'verified' | 'verifyError'>

function commonNameOf (rdns: readonly RDN[]): string | null {
  for (const rdn of rdns) {
    for (const attribute of rdn) {
      if (attribute.oid === '2.5.4.3') return attribute.value
    }
  }
  return null
}

function freezeRDNs (rdns: RDN[]): RDN[] {
  for (const rdn of rdns) {
    for (const attribute of rdn) Object.freeze(attribute)
    Object.freeze(rdn)
  }
  return Object.freeze(rdns) as RDN[]
}

function freezeSan (san: SubjectAltNames): SubjectAltNames {
  Object.freeze(san.dns)
  Object.freeze(san.email)
  Object.freeze(san.uri)
  Object.freeze(san.ip)
  return Object.freeze(san)
}

function toCertificate (input: string | Buffer | X509Certificate): X509Certificate {
  if (input instanceof X509Certificate) return input
  if (typeof input !== 'string' && !Buffer.isBuffer(input)) {
    throw new CertificateParseError('a certificate must be a PEM string, a DER or PEM Buffer, or an X509Certificate')
  }
  try {
    return new X509Certificate(input)
  } catch {
    // OpenSSL's message says nothing useful to a client and may not be echoed; the type is what matters.
    throw new CertificateParseError('not a valid X.509 certificate')
  }
}

/** Reads every certificate-derived field once; the result is frozen and safe to share and cache. */
export function certificateFields (input: string | Buffer | X509Certificate): CertificateFields {
  const certificate = toCertificate(input)
  // From the DER, not Node's text: that prints a value of a non-string type as if it were text.
  const names = certificateNames(certificate.raw)
  const subjectRDNs = freezeRDNs(names.subject)
  const issuerRDNs = freezeRDNs(names.issuer)
  const san = freezeSan(parseNodeSAN(certificate.subjectAltName))
  return Object.freeze({
    subject: formatDN(subjectRDNs),
    issuer: formatDN(issuerRDNs),
    subjectRDNs,
    issuerRDNs,
    commonName: commonNameOf(subjectRDNs),
    san,
    spiffeId: spiffeIdFromUris(san.uri),
    serialNumber: certificate.serialNumber,
    fingerprint256: certificate.fingerprint256,
    notBefore: new Date(certificate.validFrom),
    notAfter: new Date(certificate.validTo),
    certificate
  })
}

/** Combines certificate fields with how they were obtained into a frozen identity. */
export function composeIdentity (fields: CertificateFields, how: Required<IdentityOptions>): ClientCertIdentity {
  return Object.freeze({
    source: how.source,
    proxy: how.proxy,
    verified: how.verified,
    verifyError: how.verifyError,
    subject: fields.subject,
    issuer: fields.issuer,
    subjectRDNs: fields.subjectRDNs,
    issuerRDNs: fields.issuerRDNs,
    commonName: fields.commonName,
    san: fields.san,
    spiffeId: fields.spiffeId,
    serialNumber: fields.serialNumber,
    fingerprint256: fields.fingerprint256,
    notBefore: fields.notBefore,
    notAfter: fields.notAfter,
    certificate: fields.certificate
  })
}

/**
 * The identity the plugin would build for a certificate (PEM, DER or `X509Certificate`).
 * Nothing is verified here: `verified` is what `options` says (default `false`).
 * Throws `CertificateParseError` for anything that is not a certificate.
 */
export function identityFromCertificate (input: string | Buffer | X509Certificate, options: IdentityOptions = {}): ClientCertIdentity {
  const source = options.source ?? 'tls'
  return composeIdentity(certificateFields(input), {
    source,
    proxy: source === 'proxy' ? (options.proxy ?? 'custom') : null,
    verified: options.verified === true,
    verifyError: options.verifyError ?? null
  })
}

export { commonNameOf, freezeRDNs, freezeSan }
