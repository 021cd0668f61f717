// Stage 2, the decision: verdict (verified or why not), app-side chain check, allow rules, and the user cache.
import type { X509Certificate } from 'node:crypto'
import { linkedIssuers, verifyChain } from './chain.js'
import type { RevocationCheck, RevocationList } from '../revocation/crl.js'
import type { DistributionPoints } from '../revocation/distribution-points.js'
import type { OcspClient } from '../revocation/ocsp.js'
import { spiffeVerdict, type SpiffeBundles } from './spiffe-bundles.js'
import type { CertificateFields } from '../identity.js'

/** The lists a verdict is judged by; `reload()` replaces them. */
export interface TrustLists {
  /** `proxy.ca`: anchors for the app-side check of forwarded certificates. */
  proxyCa: readonly X509Certificate[] | null
  crl: RevocationList | null
  /** `spiffe.bundles`: each trust domain's SPIFFE IDs count only from its own bundle. */
  spiffe?: SpiffeBundles | null
  /** `revocation.distributionPoints`: CRLs downloaded from where verified certificates point. */
  distributionPoints?: DistributionPoints | null
  /** `revocation.ocsp`: the leaf's status asked of its OCSP responder. */
  ocsp?: OcspClient | null
}

export interface Judged {
  verified: boolean
  verifyError: string | null
  /** When the verdict may change by itself (the certificate expires, a CRL may expire): judge again then. */
  recheckAt: number
}

// A long-lived connection or cache entry re-judges its certificate this often when a CRL is loaded, so an
// expired CRL fails closed without waiting for a reload.
const crlRecheckMs = 60_000

// Bounds on the work a forwarded or sent chain can cause here, as verifyChain bounds its own.
const maxPathSignatureChecks = 8
const maxRevocationCandidates = 16

/**
 * The certification path of `leaf`, leaf first, rebuilt as OpenSSL builds one: at each step the issuer is
 * looked for among `anchors` first (OpenSSL's trusted-first), then among `untrusted` in their order; a
 * candidate is the issuer when it issued the certificate by name and key identifiers (`checkIssued`) and its
 * key verifies the signature. The path ends at a self-issued certificate, where no issuer is found, or after
 * `maxPathSignatureChecks` signature checks; no certificate appears twice.
 */
export function certificationPath (
  leaf: X509Certificate,
  untrusted: readonly X509Certificate[],
  anchors: readonly X509Certificate[]
): X509Certificate[] {
  const path = [leaf]
  const seen = new Set([leaf.fingerprint256])
  let checks = 0
  let current = leaf
  while (!current.checkIssued(current)) {
    const issuedCurrent = (candidate: X509Certificate): boolean =>
      !seen.has(candidate.fingerprint256) && current.checkIssued(candidate) && checks++ < maxPathSignatureChecks &&
      current.verify(candidate.publicKey)
    const next = anchors.find(issuedCurrent) ?? untrusted.find(issuedCurrent)
    if (next === undefined) break
    path.push(next)
    seen.add(next.fingerprint256)
    current = next
  }
  return path
}

const UNABLE: RevocationCheck = Object.freeze({ revoked: false, error: 'UNABLE_TO_GET_CRL' })

/**
 * Revocation of a whole certificate along the path it was verified on. Which path that was is not told by
 * Node (its `issuerCertificate` links follow the client's order, so a look-alike of a revoked intermediate,
 * sent first, would hide it) nor by a proxy. So: where the anchors are known (direct TLS: the server's `ca`;
 * behind a proxy: `proxy.ca`), the path is rebuilt up to one of them, and a path that does not end at an anchor
 * is not the verified one: `UNABLE_TO_GET_CRL`, never a pass. Where they are not (a proxy that verified with its
 * own CAs), every certificate the proxy forwarded is checked, whichever path it verified.
 */
function revocation (
  crl: RevocationList,
  leaf: X509Certificate,
  sent: readonly X509Certificate[],
  anchors: readonly X509Certificate[],
  now: number
): RevocationCheck {
  if (sent.length > maxRevocationCandidates) return UNABLE
  if (anchors.length === 0) return crl.checkPath([leaf, ...sent], now)
  const path = certificationPath(leaf, sent, anchors)
  // A trust anchor ends the path, as in verification (an intermediate in `proxy.ca` is one).
  const end = path.findIndex((certificate) => anchors.some((anchor) => anchor.fingerprint256 === certificate.fingerprint256))
  if (end === -1) return UNABLE
  return crl.checkPath(path.slice(0, end + 1), now)
}

/**
 * The final verdict on a certificate: the source's own (TLS `authorized`, the proxy's status), then expiry,
 * then, for forwarded certificates (`chain` not null), the `proxy.ca` check, then revocation: a whole
 * certificate along its certification path (every certificate against the CRLs of its issuer, as OpenSSL's
 * crl_check_all), rebuilt from the certificates the client or proxy sent (`chain`; in direct TLS Node's
 * `issuerCertificate` links) and the trust the CRLs were loaded with (`proxy.ca`, the server's `ca`); names
 * alone by the issuer name and serial a proxy forwarded. A CRL's signature is checked against that trust,
 * never against a certificate the client sent: `_issuer` (the TLS peer's issuer, from the client's chain) is
 * not used for it.
 */
export function judge (
  lists: TrustLists,
  fields: CertificateFields,
  verified: boolean,
  verifyError: string | null,
  _issuer: X509Certificate | null,
  forwarded: (() => readonly X509Certificate[]) | null,
  now: number
): Judged {
  // Both read on first need: a forwarded certificate's X509Certificate is built only for the checks that use it.
  const whole = (): X509Certificate | null => fields.certificate
  const chain = (): readonly X509Certificate[] | null => forwarded === null ? null : forwarded()
  let recheckAt = fields.notAfter === null ? Infinity : fields.notAfter.getTime()
  if (!verified) return { verified, verifyError, recheckAt }
  if (fields.notAfter !== null && now > recheckAt) return { verified: false, verifyError: 'CERT_HAS_EXPIRED', recheckAt: Infinity }
  if (forwarded !== null && lists.proxyCa !== null) {
    // With proxy.ca the app verifies too, which needs the whole certificate: a preset that sometimes forwards
    // only names (Envoy's XFCC without Cert, ALB's detail headers) cannot be verified then.
    const certificate = whole()
    const error = certificate === null ? 'CERTIFICATE_NOT_FORWARDED' : verifyChain(certificate, forwarded(), lists.proxyCa, now)
    if (error !== null) return { verified: false, verifyError: error, recheckAt }
  }
  if (lists.spiffe != null) {
    const error = spiffeVerdict(lists.spiffe, fields, chain(), now)
    if (error !== null) return { verified: false, verifyError: error, recheckAt }
  }
  if (lists.crl !== null) {
    recheckAt = Math.min(recheckAt, now + crlRecheckMs)
    // Names alone (a proxy that forwards subject, issuer and serial): the same CRLs, by issuer name and serial,
    // failing closed when they cannot tell. Judging names without the CRL would let a downgrade skip it.
    const certificate = whole()
    const check = certificate === null
      ? lists.crl.checkNames(fields.issuerRDNs, fields.serialNumber, now)
      : forwarded === null
        ? revocation(lists.crl, certificate, linkedIssuers(certificate), lists.crl.anchors, now)
        : revocation(lists.crl, certificate, forwarded(), lists.proxyCa ?? [], now)
    if (check.error !== null) return { verified: false, verifyError: check.error, recheckAt }
  }
  const points = lists.distributionPoints ?? null
  const ocsp = lists.ocsp ?? null
  if (points !== null || ocsp !== null) {
    // Last: only a certificate that verified every other way may make the server fetch what it points at.
    const certificate = whole()
    const check = certificate === null
      ? onlineNamesOnly(points, ocsp)
      : online(points, ocsp, certificate, forwarded === null ? linkedIssuers(certificate) : forwarded(),
        forwarded === null ? (ocsp ?? points!).anchors() : lists.proxyCa ?? [], now)
    recheckAt = Math.min(recheckAt, check.recheckAt)
    if (check.error !== null) return { verified: false, verifyError: check.error, recheckAt }
  }
  return { verified: true, verifyError: null, recheckAt }
}

interface OnlineCheck {
  readonly error: string | null
  readonly recheckAt: number
}

/**
 * The online sources, OCSP first: a refusal of its (revoked, unknown, or no answer in strict mode alone) decides.
 * Then the distribution points' CRLs, along the whole path, or past the leaf when order 'ocsp-then-crl' let a
 * good OCSP answer settle it. With 'ocsp-then-crl' and both on, OCSP without an answer leaves the leaf to the CRLs.
 */
function online (
  points: DistributionPoints | null,
  ocsp: OcspClient | null,
  certificate: X509Certificate,
  untrusted: readonly X509Certificate[],
  anchors: readonly X509Certificate[],
  now: number
): OnlineCheck {
  let recheckAt = Infinity
  let skipLeaf = false
  let unanswered = false
  if (ocsp !== null) {
    const fallback = points !== null && ocsp.settings.order === 'ocsp-then-crl'
    const check = ocsp.check(certificate, untrusted, anchors, now, fallback)
    if (check.error !== null) return check
    recheckAt = check.recheckAt
    skipLeaf = fallback && check.decided
    unanswered = check.unanswered === true
  }
  if (points === null) return { error: null, recheckAt }
  const check = points.check(certificate, untrusted, anchors, now, skipLeaf)
  recheckAt = Math.min(recheckAt, check.recheckAt)
  // OCSP gave no answer and no CRL covers the leaf: nothing decided it, so OCSP's own mode does (strict refuses).
  if (unanswered && check.error === null && check.leafUnchecked === true && ocsp!.settings.mode === 'strict') {
    return { error: 'REVOCATION_UNAVAILABLE', recheckAt }
  }
  return { error: check.error, recheckAt }
}

function onlineNamesOnly (points: DistributionPoints | null, ocsp: OcspClient | null): OnlineCheck {
  if (ocsp !== null) {
    const check = ocsp.namesOnly(points !== null && ocsp.settings.order === 'ocsp-then-crl')
    if (check.error !== null || points === null) return check
  }
  return points!.namesOnly()
}
