import type { X509Certificate } from 'node:crypto'
import { BIT_STRING, BOOLEAN, CONTEXT_0, CONTEXT_1, CONTEXT_2, CONTEXT_3, Cursor, OCTET_STRING, OID, SEQUENCE } from '../codecs/der.js'

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
  // OpenSSL's sslclient purpose, which direct TLS applies: a key that may not sign (or agree keys) is no
  // client's, which is what keeps a CA certificate (keyCertSign, cRLSign) from being forwarded as a user.
  if (!mayAuthenticate(leaf)) return 'INVALID_PURPOSE'
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

const KEY_USAGE = '551d0f' // 2.5.29.15
const DIGITAL_SIGNATURE = 0x80
const KEY_AGREEMENT = 0x08

/** False when the certificate's keyUsage extension allows neither digitalSignature nor keyAgreement. */
export function mayAuthenticate (certificate: X509Certificate): boolean {
  const der = certificate.raw
  try {
    const top = new Cursor(der, 0, der.length)
    const tbs = top.into(top.into(top.read(SEQUENCE, 'the certificate')).read(SEQUENCE, 'the certificate body'))
    tbs.optional(CONTEXT_0, 'the version')
    for (const what of ['the serial', 'the signature algorithm', 'the issuer', 'the validity', 'the subject', 'the public key']) tbs.any(what)
    tbs.optional(CONTEXT_1, 'the issuer unique ID')
    tbs.optional(CONTEXT_2, 'the subject unique ID')
    const wrapped = tbs.optional(CONTEXT_3, 'the extensions')
    if (wrapped === null) return true
    const list = tbs.into(tbs.into(wrapped).read(SEQUENCE, 'the extensions'))
    while (!list.done) {
      const extension = list.into(list.read(SEQUENCE, 'an extension'))
      if (extension.hex(extension.read(OID, 'an extension ID')) !== KEY_USAGE) continue
      extension.optional(BOOLEAN, 'the critical flag')
      const value = extension.into(extension.read(OCTET_STRING, 'the key usage'))
      const bits = value.read(BIT_STRING, 'the key usage bits')
      // First content octet: unused bits; the second holds digitalSignature (bit 0) … keyAgreement (bit 4).
      const first = bits.end - bits.contentStart > 1 ? der[bits.contentStart + 1]! : 0
      return (first & (DIGITAL_SIGNATURE | KEY_AGREEMENT)) !== 0
    }
    return true
  } catch {
    // OpenSSL parsed this certificate already (X509Certificate exists), so the strict reader refusing it is a
    // disagreement between parsers (BER where DER belongs): a certificate not read here does not authenticate.
    return false
  }
}
