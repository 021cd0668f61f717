import type { X509Certificate } from 'node:crypto'
import { BIT_STRING, BOOLEAN, Cursor, fail, INTEGER, OID, SEQUENCE } from '../codecs/der.js'
import { readBoolean, walkOf } from '../codecs/x509.js'

// Deeper chains than this are refused: a bound on work for certificates an attacker may choose.
const maxDepth = 8
/** Forwarded intermediates beyond this many are not considered as issuers (the first ones are). */
export const MAX_INTERMEDIATES = 10
/**
 * Signature verifications one call may spend: a legitimate path of `maxDepth` needs fewer, while look-alike
 * issuers (same name, no key identifier, a slow curve) would otherwise each cost a verification at every depth.
 */
export const MAX_SIGNATURE_CHECKS = 8

/**
 * Verifies, in the app, a certificate a proxy forwarded (`proxy.ca`), giving OpenSSL's verdict for a client
 * certificate (`-purpose sslclient`, as direct TLS applies): a signature path up to one of `anchors` through
 * intermediates the proxy forwarded, then on every certificate of the path what OpenSSL checks — no critical
 * extension it does not know, intermediates that are CAs, the sslclient purpose (extendedKeyUsage allowing
 * clientAuth on every certificate; the leaf's key allowed to sign or agree keys), pathLenConstraint, dates. Name
 * constraints are not evaluated, so a path through a CA that carries them is refused. Returns `null` when it
 * holds, else the OpenSSL-style reason Node uses for the same failure (`NAME_CONSTRAINTS_UNSUPPORTED` is ours).
 */
export function verifyChain (
  leaf: X509Certificate,
  intermediates: readonly X509Certificate[],
  anchors: readonly X509Certificate[],
  now: number
): string | null {
  const leafExtensions = readExtensions(leaf)
  if (leafExtensions === null || !clientPurpose(leafExtensions)) return 'INVALID_PURPOSE'
  const found = buildPath(leaf, intermediates.slice(0, MAX_INTERMEDIATES), anchors, now)
  if (typeof found === 'string') return found
  return checkPath(found, leafExtensions, now)
}

/** Walks up from the leaf, preferring an anchor at each step, never back onto the path; greedy like OpenSSL. */
function buildPath (
  leaf: X509Certificate,
  pool: readonly X509Certificate[],
  anchors: readonly X509Certificate[],
  now: number
): X509Certificate[] | string {
  const path = [leaf]
  let budget = MAX_SIGNATURE_CHECKS
  // 'spent' when the budget ran out before a verdict on this candidate.
  const issues = (subject: X509Certificate, candidate: X509Certificate): boolean | 'spent' => {
    if (!subject.checkIssued(candidate)) return false
    if (budget === 0) return 'spent'
    budget--
    return subject.verify(candidate.publicKey)
  }
  const first = (subject: X509Certificate, candidates: readonly X509Certificate[]): X509Certificate | 'spent' | undefined => {
    // Among look-alikes (a renewed CA certificate beside the old one), OpenSSL prefers one that is in date.
    const ordered = [...candidates.filter((c) => checkDates(c, now) === null), ...candidates.filter((c) => checkDates(c, now) !== null)]
    for (const candidate of ordered) {
      const verdict = issues(subject, candidate)
      if (verdict !== false) return verdict === true ? candidate : 'spent'
    }
    return undefined
  }
  for (let depth = 0; depth < maxDepth; depth++) {
    const current = path[depth]!
    const anchor = first(current, anchors)
    if (anchor === 'spent') return 'CERT_CHAIN_TOO_LONG'
    if (anchor !== undefined) return [...path, anchor]
    const next = first(current, pool.filter((candidate) => !path.includes(candidate)))
    if (next === 'spent') return 'CERT_CHAIN_TOO_LONG'
    if (next === undefined) {
      if (depth === 0) return current.subject === current.issuer ? 'DEPTH_ZERO_SELF_SIGNED_CERT' : 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'
      // Only issuers already on the path: a loop, an endless chain (names compared, no signature spent).
      if (path.some((member) => member !== current && current.checkIssued(member))) return 'CERT_CHAIN_TOO_LONG'
      return current.checkIssued(current) ? 'SELF_SIGNED_CERT_IN_CHAIN' : 'UNABLE_TO_GET_ISSUER_CERT'
    }
    path.push(next)
  }
  return 'CERT_CHAIN_TOO_LONG'
}

/** OpenSSL's check_extensions order (leaf to anchor), then dates, then the name constraints not evaluated here. */
function checkPath (path: readonly X509Certificate[], leafExtensions: Extensions, now: number): string | null {
  let nonSelfIssued = 0
  const read = path.map((certificate, i) => i === 0 ? leafExtensions : readExtensions(certificate))
  for (let i = 0; i < path.length; i++) {
    const extensions = read[i]
    if (extensions === null) return 'INVALID_CA'
    if (extensions.unhandledCritical) return 'UNHANDLED_CRITICAL_EXTENSION'
    if (i > 0) {
      // An intermediate must be a CA outright; the anchor, configured, need only not deny being one.
      if (i < path.length - 1 ? !path[i]!.ca : extensions.ca === false) return 'INVALID_CA'
      if (!usageAllows(extensions)) return 'INVALID_PURPOSE'
      // pathLenConstraint counts the non-self-issued intermediates below this CA, not the leaf.
      if (i > 1 && extensions.pathLen !== null && nonSelfIssued > extensions.pathLen) return 'PATH_LENGTH_EXCEEDED'
      if (!extensions.selfIssued) nonSelfIssued++
    }
  }
  for (const certificate of path) {
    const dates = checkDates(certificate, now)
    if (dates !== null) return dates
  }
  if (read.some((extensions, i) => i > 0 && extensions!.nameConstraints)) return 'NAME_CONSTRAINTS_UNSUPPORTED'
  return null
}

function checkDates (certificate: X509Certificate, now: number): string | null {
  if (now < Date.parse(certificate.validFrom)) return 'CERT_NOT_YET_VALID'
  if (now > Date.parse(certificate.validTo)) return 'CERT_HAS_EXPIRED'
  return null
}

const CLIENT_AUTH = '2b06010505070302' // 1.3.6.1.5.5.7.3.2
const KEY_USAGE = '551d0f'
const BASIC_CONSTRAINTS = '551d13'
const EXTENDED_KEY_USAGE = '551d25'
const NAME_CONSTRAINTS = '551d1e'
const NETSCAPE_CERT_TYPE = '6086480186f8420101'
// The extensions OpenSSL knows (X509_supported_extension): a critical one outside this list fails verification.
const SUPPORTED = new Set([
  NETSCAPE_CERT_TYPE, KEY_USAGE, '551d11' /* subjectAltName */, BASIC_CONSTRAINTS, '551d20' /* certificatePolicies */,
  '551d1f' /* cRLDistributionPoints */, EXTENDED_KEY_USAGE, '2b06010505070107' /* sbgp-ipAddrBlock */,
  '2b06010505070108' /* sbgp-autonomousSysNum */, '2b0601050507300105' /* OCSP noCheck */, '551d24' /* policyConstraints */,
  '2b0601050507010e' /* proxyCertInfo */, NAME_CONSTRAINTS, '551d21' /* policyMappings */, '551d36' /* inhibitAnyPolicy */
])
const DIGITAL_SIGNATURE = 0x80
const KEY_AGREEMENT = 0x08
const NS_SSL_CLIENT = 0x80

/** What the verdict needs of one certificate's extensions; `null` members are absent extensions. */
export interface Extensions {
  /** issuer and subject are the same bytes (OpenSSL compares canonical names, which bytes equal imply) */
  readonly selfIssued: boolean
  readonly ca: boolean | null
  readonly pathLen: number | null
  /** the first byte of keyUsage's bits (digitalSignature … keyAgreement, keyCertSign, cRLSign) */
  readonly keyUsage: number | null
  /** extendedKeyUsage purposes, each as the hex of its OID's content */
  readonly extendedKeyUsage: readonly string[] | null
  readonly netscapeCertType: number | null
  readonly nameConstraints: boolean
  readonly unhandledCritical: boolean
}

/**
 * Reads the extensions from the walk the identity was read with (lib/codecs/x509.ts), else from the DER. `null`
 * when the strict reader refuses the certificate body or an extension (BER where DER belongs, a repeated
 * extension, a negative or CA-less pathLen): OpenSSL parsed this certificate already, so a refusal here is a
 * disagreement between parsers, and such a certificate is not relied on.
 */
export function readExtensions (certificate: X509Certificate): Extensions | null {
  try {
    const walk = walkOf(certificate)
    const { der, issuer, subject } = walk
    const found = {
      selfIssued: der.subarray(issuer.contentStart, issuer.end).equals(der.subarray(subject.contentStart, subject.end)),
      ca: null as boolean | null,
      pathLen: null as number | null,
      keyUsage: null as number | null,
      extendedKeyUsage: null as string[] | null,
      netscapeCertType: null as number | null,
      nameConstraints: false,
      unhandledCritical: false
    }
    for (const { id, critical, value: content } of walk.extensions) {
      if (critical) found.unhandledCritical ||= !SUPPORTED.has(id)
      const value = new Cursor(der, content.contentStart, content.end)
      switch (id) {
        case KEY_USAGE:
          found.keyUsage = firstBits(value)
          break
        case NETSCAPE_CERT_TYPE:
          found.netscapeCertType = firstBits(value)
          break
        case EXTENDED_KEY_USAGE: {
          const purposes = value.into(value.read(SEQUENCE, 'the extended key usage'))
          found.extendedKeyUsage = []
          while (!purposes.done) found.extendedKeyUsage.push(purposes.hex(purposes.read(OID, 'a key purpose')))
          break
        }
        case BASIC_CONSTRAINTS: {
          const constraints = value.into(value.read(SEQUENCE, 'the basic constraints'))
          const ca = constraints.optional(BOOLEAN, 'the CA flag')
          found.ca = ca !== null && readBoolean(der, ca)
          const pathLen = constraints.optional(INTEGER, 'the path length')
          if (pathLen !== null) found.pathLen = readPathLen(constraints, pathLen, found.ca)
          constraints.finish('the basic constraints')
          break
        }
        case NAME_CONSTRAINTS:
          found.nameConstraints = true
      }
    }
    return found
  } catch {
    return null
  }
}

function readPathLen (cursor: Cursor, tlv: { contentStart: number, end: number }, ca: boolean): number {
  const bytes = cursor.buf.subarray(tlv.contentStart, tlv.end)
  if (!ca || bytes.length === 0 || bytes[0]! >= 0x80) fail('pathLenConstraint is negative or without cA')
  // Beyond six bytes no chain here could reach it: any such bound is as good as none.
  return bytes.length > 6 ? Number.MAX_SAFE_INTEGER : bytes.readUIntBE(0, bytes.length)
}

/** The first content byte of a BIT STRING's bits (0 when it has none). */
function firstBits (value: Cursor): number {
  const bits = value.read(BIT_STRING, 'the bits')
  return bits.end - bits.contentStart > 1 ? value.buf[bits.contentStart + 1]! : 0
}

/** OpenSSL's xku_reject for sslclient: an extendedKeyUsage must list clientAuth (anyExtendedKeyUsage is not it). */
function usageAllows (extensions: Extensions): boolean {
  return extensions.extendedKeyUsage === null || extensions.extendedKeyUsage.includes(CLIENT_AUTH)
}

/** OpenSSL's sslclient purpose for the leaf: clientAuth usage, a key that may sign or agree keys, nsCertType. */
function clientPurpose (extensions: Extensions): boolean {
  if (!usageAllows(extensions)) return false
  if (extensions.keyUsage !== null && (extensions.keyUsage & (DIGITAL_SIGNATURE | KEY_AGREEMENT)) === 0) return false
  return extensions.netscapeCertType === null || (extensions.netscapeCertType & NS_SSL_CLIENT) !== 0
}

/**
 * False when the certificate's keyUsage extension allows neither digitalSignature nor keyAgreement, or when the
 * strict reader refuses its body: a key that may not sign is no client's, which keeps a CA certificate
 * (keyCertSign, cRLSign) from being forwarded as a user.
 */
export function mayAuthenticate (certificate: X509Certificate): boolean {
  const extensions = readExtensions(certificate)
  return extensions !== null && (extensions.keyUsage === null || (extensions.keyUsage & (DIGITAL_SIGNATURE | KEY_AGREEMENT)) !== 0)
}

/**
 * The certificates a TLS client sent after its own, as Node links them (`issuerCertificate`, in the order sent):
 * candidates for a path, never trust. (On Node 20 the X509Certificate links hold only what the client sent.)
 */
export function linkedIssuers (certificate: X509Certificate): X509Certificate[] {
  const linked: X509Certificate[] = []
  for (let next = certificate.issuerCertificate; next !== undefined; next = next.issuerCertificate) linked.push(next)
  return linked
}
