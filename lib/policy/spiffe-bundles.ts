// SPIFFE federation: a SPIFFE ID is vouched for only by the bundle of its own trust domain, and a certificate that
// claims one is held to the X509-SVID rules. Without this, every CA the server trusts may mint any trust domain's IDs.
import type { X509Certificate } from 'node:crypto'
import { spiffeIdParts } from '../codecs/spiffe.js'
import type { CertificateFields } from '../identity.js'
import { linkedIssuers, readExtensions, verifyChain } from './chain.js'

/** Trust domain → the X509-SVID CA certificates of its bundle. */
export type SpiffeBundles = ReadonlyMap<string, readonly X509Certificate[]>

/** One key of a SPIFFE bundle (RFC 7517 JWK); only `use: 'x509-svid'` keys with `x5c` carry X509-SVID CAs. */
export interface SpiffeJwk {
  use?: string
  x5c?: readonly string[]
  [parameter: string]: unknown
}

/** A SPIFFE bundle as SPIRE's bundle endpoint serves it: a JWK Set, with `spiffe_sequence` and `spiffe_refresh_hint`. */
export interface SpiffeJwkSet {
  keys: readonly SpiffeJwk[]
  [member: string]: unknown
}

const SPIFFE_SCHEME = /^spiffe:/i
// Standard base64 (RFC 7517 §4.7), which Buffer.from would decode leniently, skipping what is not base64.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
const DIGITAL_SIGNATURE = 0x80
const KEY_CERT_SIGN = 0x04
const CRL_SIGN = 0x02
// verifyChain's answers when no path reaches the bundle at all: the certificate was issued under another trust.
const NO_PATH = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN', 'CERT_CHAIN_TOO_LONG'
])

/** True for a bundle given as a JWK Set: a plain object, or JSON text (a string or Buffer that starts with `{`). */
export function isJwkSetInput (input: unknown): boolean {
  if (typeof input === 'string' || Buffer.isBuffer(input)) {
    const text = typeof input === 'string' ? input : input.subarray(0, 64).toString('latin1')
    return text.trimStart().startsWith('{')
  }
  return input !== null && typeof input === 'object' && !Array.isArray(input)
}

/**
 * The X509-SVID CA certificates (DER) of a SPIFFE bundle, as the X509-SVID specification (§6.2) consumes one:
 * the first `x5c` value of every key whose `use` is `x509-svid`; such a key without `x5c` is ignored, and so are
 * keys of other uses (`jwt-svid`). Throws, with the reason, for input that is no JWK Set.
 */
export function jwkSetCertificates (input: unknown): Buffer[] {
  let set = input
  if (typeof input === 'string' || Buffer.isBuffer(input)) {
    try {
      set = JSON.parse(typeof input === 'string' ? input : input.toString('utf8'))
    } catch {
      throw new Error('is not valid JSON')
    }
  }
  const keys = (set as { keys?: unknown } | null)?.keys
  if (!Array.isArray(keys)) throw new Error('is not a JWK Set ({ keys: [...] })')
  const certificates: Buffer[] = []
  for (const key of keys as unknown[]) {
    if (key === null || typeof key !== 'object' || (key as SpiffeJwk).use !== 'x509-svid') continue
    const chain = (key as SpiffeJwk).x5c
    if (chain === undefined || (Array.isArray(chain) && chain.length === 0)) continue
    const first: unknown = Array.isArray(chain) ? chain[0] : undefined
    if (typeof first !== 'string' || !BASE64.test(first)) throw new Error('has an x509-svid key whose x5c is not a list of base64 certificates')
    certificates.push(Buffer.from(first, 'base64'))
  }
  if (certificates.length === 0) throw new Error('holds no x509-svid key: the trust domain has no X509-SVID CA')
  return certificates
}

/**
 * The SPIFFE verdict on a verified certificate, `null` when it stands. Certificates that name no `spiffe:` URI are
 * not SVIDs and pass untouched. One that does must be an X509-SVID leaf (§5.2: one URI SAN, a valid SPIFFE ID with
 * a path, not a CA, a key usage with digitalSignature and without keyCertSign or cRLSign) and must have a valid
 * path, through the certificates sent with it (`chain` a proxy forwarded; `null` for direct TLS: those the client
 * sent), to a CA in the bundle of its ID's trust domain. The path is rebuilt here because TLS (or the proxy)
 * verified against the union of every bundle, which cannot tell whose CA vouched.
 */
export function spiffeVerdict (
  bundles: SpiffeBundles,
  fields: CertificateFields,
  chain: readonly X509Certificate[] | null,
  now: number
): string | null {
  const uris = fields.san?.uri ?? []
  if (fields.spiffeId === null && !uris.some((uri) => SPIFFE_SCHEME.test(uri))) return null
  const certificate = fields.certificate
  // Names alone (a proxy that forwards the URI but not the certificate): nothing to bind the ID to.
  if (certificate === null) return 'CERTIFICATE_NOT_FORWARDED'
  if (uris.length !== 1) return 'SVID_MULTIPLE_URIS'
  const id = fields.spiffeId === null ? null : spiffeIdParts(fields.spiffeId)
  if (id === null || id.path === '') return 'SVID_INVALID_ID'
  const extensions = readExtensions(certificate)
  if (extensions === null) return 'SVID_MALFORMED'
  if (extensions.ca === true) return 'SVID_IS_CA'
  const usage = extensions.keyUsage
  if (usage === null || (usage & DIGITAL_SIGNATURE) === 0 || (usage & (KEY_CERT_SIGN | CRL_SIGN)) !== 0) return 'SVID_KEY_USAGE'
  const anchors = bundles.get(id.trustDomain)
  if (anchors === undefined) return 'SPIFFE_TRUST_DOMAIN_UNKNOWN'
  const error = verifyChain(certificate, chain ?? linkedIssuers(certificate), anchors, now)
  if (error === null) return null
  return NO_PATH.has(error) ? 'SPIFFE_TRUST_DOMAIN_MISMATCH' : error
}
