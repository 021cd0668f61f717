import type { X509Certificate } from 'node:crypto'

const clientAuth = '1.3.6.1.5.5.7.3.2'
const anyExtendedKeyUsage = '2.5.29.37.0'
// Deeper chains than this are refused: a bound on work for certificates an attacker may choose.
const maxDepth = 8

/**
 * Verifies, in the app, a certificate a proxy forwarded (`proxy.ca`): signature chain up to one of `anchors`
 * (through intermediates the proxy forwarded), validity dates of every certificate on the path, and the leaf's
 * clientAuth usage. Returns `null` when it holds, else the OpenSSL-style reason Node uses for the same failure.
 */
export function verifyChain (
  leaf: X509Certificate,
  intermediates: readonly X509Certificate[],
  anchors: readonly X509Certificate[],
  now: number
): string | null {
  const usage = leaf.keyUsage
  if (usage !== undefined && !usage.includes(clientAuth) && !usage.includes(anyExtendedKeyUsage)) return 'INVALID_PURPOSE'
  let current = leaf
  for (let depth = 0; depth < maxDepth; depth++) {
    const dates = checkDates(current, now)
    if (dates !== null) return dates
    const anchor = anchors.find((candidate) => issuedBy(current, candidate))
    if (anchor !== undefined) return checkDates(anchor, now)
    const next = intermediates.find((candidate) => candidate !== current && candidate.ca && issuedBy(current, candidate))
    if (next === undefined) {
      if (depth > 0) return 'UNABLE_TO_GET_ISSUER_CERT'
      return current.subject === current.issuer ? 'DEPTH_ZERO_SELF_SIGNED_CERT' : 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'
    }
    current = next
  }
  return 'CERT_CHAIN_TOO_LONG'
}

function issuedBy (certificate: X509Certificate, issuer: X509Certificate): boolean {
  return certificate.checkIssued(issuer) && certificate.verify(issuer.publicKey)
}

function checkDates (certificate: X509Certificate, now: number): string | null {
  if (now < Date.parse(certificate.validFrom)) return 'CERT_NOT_YET_VALID'
  if (now > Date.parse(certificate.validTo)) return 'CERT_HAS_EXPIRED'
  return null
}
