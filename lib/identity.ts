import { X509Certificate } from 'node:crypto'
import { formatDN, type RDN } from './codecs/dn.js'
import { CertificateParseError } from './codecs/parse-error.js'
import { parseNodeSAN, type SubjectAltNames } from './codecs/san.js'
import { spiffeIdFromUris } from './codecs/spiffe.js'
import { fingerprint256Of, freezeRDNs, readCertificate, x509Of, type ParsedCertificate } from './codecs/x509.js'

/** Where the certificate reached the app from. */
export type IdentitySource = 'tls' | 'proxy'

/**
 * The fields every identity has (`request.clientCert`); a field the source cannot supply is `null`.
 * The same verified certificate yields the same fields (all but `source`, `proxy`, `certificate`)
 * whichever mode or proxy delivered it.
 * Identities are frozen: one object may be shared by every request of a connection.
 */
export interface ClientCertIdentityFields {
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

/** The whole certificate is known: what Node reads from its DER is never `null`. */
export interface WholeCertificateFields extends ClientCertIdentityFields {
  readonly certificate: X509Certificate
  readonly serialNumber: string
  readonly fingerprint256: string
}

/** A whole certificate whose names were read: only `commonName` and `spiffeId` may still be `null`. */
export interface ReadCertificateFields extends WholeCertificateFields {
  readonly subject: string
  readonly issuer: string
  readonly subjectRDNs: ReadonlyArray<Readonly<RDN>>
  readonly issuerRDNs: ReadonlyArray<Readonly<RDN>>
  readonly san: Readonly<SubjectAltNames>
  readonly notBefore: Date
  readonly notAfter: Date
}

/** Direct TLS, chain verified: every field of the certificate is there. */
export interface VerifiedTlsClientCertIdentity extends ReadCertificateFields {
  readonly source: 'tls'
  readonly proxy: null
  readonly verified: true
}

/**
 * Direct TLS, not verified. The certificate, its serial number and fingerprint are there; its names may be
 * `null`: a certificate TLS refused, on a route that answers 401 anyway, is not parsed (an `onResponse` hook
 * or error handler sees it so).
 */
export interface UnverifiedTlsClientCertIdentity extends WholeCertificateFields {
  readonly source: 'tls'
  readonly proxy: null
  readonly verified: false
}

/** Fastify terminated TLS: the whole certificate is always known. Narrow on `verified` for its names. */
export type TlsClientCertIdentity = VerifiedTlsClientCertIdentity | UnverifiedTlsClientCertIdentity

/** A trusted proxy forwarded the whole certificate: every field of the certificate is there. */
export interface ProxyCertificateClientCertIdentity extends ReadCertificateFields {
  readonly source: 'proxy'
  readonly proxy: string
}

/** A trusted proxy forwarded names only (a DN-only mapping, GCP, AWS ALB names…): any field may be `null`. */
export interface ProxyNamesClientCertIdentity extends ClientCertIdentityFields {
  readonly source: 'proxy'
  readonly proxy: string
  readonly certificate: null
}

export type ProxyClientCertIdentity = ProxyCertificateClientCertIdentity | ProxyNamesClientCertIdentity

/**
 * The normalized identity of a client certificate: `request.clientCert`. A union discriminated by `source`,
 * `verified` and `certificate`: `identity.source === 'tls'` or `identity.certificate !== null` narrows the
 * fields a known certificate always has to non-null types.
 */
export type ClientCertIdentity = TlsClientCertIdentity | ProxyClientCertIdentity

/** What `request.requireClientCert()` returns: a verified identity. */
export type VerifiedClientCertIdentity = VerifiedTlsClientCertIdentity | (ProxyClientCertIdentity & { readonly verified: true })

/** How the identity was obtained: everything `identityFromCertificate` cannot read from the certificate itself. */
export interface IdentityOptions {
  source?: IdentitySource
  proxy?: string | null
  verified?: boolean
  verifyError?: string | null
}

/** The fields of an identity that depend only on the certificate. */
export type CertificateFields = Omit<ClientCertIdentityFields, 'source' | 'proxy' | 'verified' | 'verifyError'>

function commonNameOf (rdns: readonly RDN[]): string | null {
  for (const rdn of rdns) {
    for (const attribute of rdn) {
      if (attribute.oid === '2.5.4.3') return attribute.value
    }
  }
  return null
}

function freezeSan (san: SubjectAltNames): SubjectAltNames {
  Object.freeze(san.dns)
  Object.freeze(san.email)
  Object.freeze(san.uri)
  Object.freeze(san.ip)
  return Object.freeze(san)
}

function toCertificate (input: string | Buffer): X509Certificate {
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

/**
 * Reads every certificate-derived field once; the result is frozen and safe to share and cache. A PEM string or
 * Buffer is parsed by OpenSSL first, as ever; DER and Node's own certificates are read by the DER reader alone.
 */
export function certificateFields (input: string | Buffer | X509Certificate): CertificateFields {
  if (input instanceof X509Certificate) return fieldsFromDer(input.raw, input)
  if (Buffer.isBuffer(input) && input[0] === 0x30) return fieldsFromDer(input)
  const certificate = toCertificate(input)
  return fieldsFromDer(certificate.raw, certificate)
}

const kCertificate = Symbol('fastify-client-cert.certificate')

/**
 * Where `certificate` comes from, shared by a certificate's fields and every identity composed from them, so that
 * Node's object is built once, by whichever reads it first. `undefined`: not built yet (then `der` is there).
 */
interface CertificateSlot {
  certificate: X509Certificate | null | undefined
  readonly der: Buffer | null
}

interface Slotted {
  readonly [kCertificate]: CertificateSlot
}

// One getter function for every object: V8 then gives them all one hidden class (a getter closure per object gives
// each its own, in dictionary mode, at a microsecond apiece and a heavy toll on the garbage collector).
function certificateGetter (this: Slotted): X509Certificate | null {
  return certificateOf(this[kCertificate])
}

function certificateOf (slot: CertificateSlot): X509Certificate | null {
  if (slot.certificate === undefined) slot.certificate = x509Of(slot.der!)
  return slot.certificate
}

const withoutCertificate: CertificateSlot = Object.freeze({ certificate: null, der: null })

/**
 * Freezes `target` with `certificate` as an enumerable getter on it: `Object.isFrozen` holds, JSON, spread and
 * `structuredClone` read it (building it then) as they read a plain property, and `util.inspect` shows `[Getter]`.
 * `slot` `null`: there is no certificate (a proxy forwarded names only).
 */
export function withCertificate<T extends object> (target: T, slot: CertificateSlot | null): T & { readonly certificate: X509Certificate | null } {
  Object.defineProperty(target, 'certificate', { enumerable: true, get: certificateGetter })
  Object.defineProperty(target, kCertificate, { value: slot ?? withoutCertificate })
  return Object.freeze(target) as T & { readonly certificate: X509Certificate | null }
}

/**
 * The fields of a DER certificate, read by the strict DER reader (lib/codecs/x509.ts) without OpenSSL: Node's
 * `X509Certificate` (`built`, given or not) is built only when something reads `certificate`.
 * Throws CertificateParseError for anything the reader refuses, which covers all OpenSSL refuses.
 */
export function fieldsFromDer (der: Buffer, built?: X509Certificate, parsed: ParsedCertificate = readCertificate(der)): CertificateFields {
  const slot: CertificateSlot = { certificate: built, der }
  const subjectRDNs = freezeRDNs(parsed.subject)
  const issuerRDNs = parsed.issuer
  // A kind of SAN the identity drops, or a value Node prints escaped: Node's text, exactly as before.
  const san = freezeSan(parsed.san ?? nodeSan(certificateOf(slot) as X509Certificate))
  return withCertificate({
    subject: flat(formatDN(subjectRDNs)),
    issuer: issuerText(issuerRDNs),
    subjectRDNs,
    issuerRDNs,
    commonName: commonNameOf(subjectRDNs),
    san,
    spiffeId: spiffeIdFromUris(san.uri),
    serialNumber: parsed.serialNumber,
    fingerprint256: fingerprint256Of(der),
    notBefore: new Date(parsed.notBefore),
    notAfter: new Date(parsed.notAfter)
  }, slot)
}

/**
 * The same text in one piece. formatDN joins a name piece by piece, and V8 keeps such a string as a tree of its
 * pieces (about 650 bytes for a short subject, in every cached identity) until something reads a character of it.
 */
function flat (text: string): string {
  text.charCodeAt(0)
  return text
}

// The reader hands out one frozen issuer name for a run of certificates from one issuer: its text is kept beside it.
let lastIssuer: { rdns: readonly RDN[], text: string } | null = null

function issuerText (rdns: readonly RDN[]): string {
  if (lastIssuer?.rdns !== rdns) lastIssuer = { rdns, text: flat(formatDN(rdns)) }
  return lastIssuer.text
}

function nodeSan (certificate: X509Certificate): SubjectAltNames {
  const text: string | null | undefined = certificate.subjectAltName
  // null: OpenSSL cannot decode the extension.
  if (text === null) throw new CertificateParseError('the subjectAltName extension is malformed')
  return parseNodeSAN(text)
}

/**
 * Combines certificate fields with how they were obtained into a frozen identity. `certificate` is never read
 * here: the identity's getter shares the fields' slot, so Node's object is built on first need (by the verdict
 * for `proxy.ca`, `crl` or `spiffe.bundles`, or by a route) and once for the fields and all their identities.
 */
export function composeIdentity (fields: CertificateFields, how: Required<IdentityOptions>): ClientCertIdentity {
  // The union's promises hold by construction: a TLS source always has its certificate, and fields built from a
  // certificate (certificateFields) have every name read.
  return withCertificate({
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
    notAfter: fields.notAfter
  }, slotOf(fields)) as ClientCertIdentity
}

/** The slot of fields made here; fields made elsewhere (a plain object) lend their certificate as it is. */
function slotOf (fields: CertificateFields): CertificateSlot | null {
  const slot = (fields as Partial<Slotted>)[kCertificate]
  if (slot !== undefined) return slot
  const certificate = fields.certificate
  return certificate === null ? null : { certificate, der: null }
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
