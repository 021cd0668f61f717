import { CertificateParseError } from './parse-error.js'

export interface SpiffePattern {
  trustDomain: string
  /** `''` for the trust domain itself, else `/seg/…` */
  path: string
  /** true for `…/*`: the pattern admits IDs strictly below `path`, on segment boundaries */
  prefix: boolean
}

const SCHEME_PREFIX = 'spiffe://'
// SPIFFE-ID §2.3: 2048 bytes for the whole ID, 255 for the trust domain; every legal character is ASCII,
// so string length is byte length.
const MAX_ID_LENGTH = 2048
const MAX_TRUST_DOMAIN_LENGTH = 255
const TRUST_DOMAIN = /^[a-z0-9._-]+$/
const PATH_SEGMENT = /^[A-Za-z0-9._-]+$/
const SPIFFE_SCHEME = /^spiffe:/i

/** Splits a valid SPIFFE ID into trust domain and path, or returns null. */
function split (uri: string): { trustDomain: string, path: string } | null {
  if (uri.length > MAX_ID_LENGTH || !uri.startsWith(SCHEME_PREFIX)) return null
  const slash = uri.indexOf('/', SCHEME_PREFIX.length)
  const trustDomain = uri.slice(SCHEME_PREFIX.length, slash === -1 ? uri.length : slash)
  // The character class leaves no room for a port, userinfo, query or fragment in the authority.
  if (trustDomain.length > MAX_TRUST_DOMAIN_LENGTH || !TRUST_DOMAIN.test(trustDomain)) return null
  if (slash === -1) return { trustDomain, path: '' }
  const path = uri.slice(slash)
  for (const segment of path.slice(1).split('/')) {
    // Empty segments (`//`, a trailing `/`) and dot segments would let two spellings name one workload.
    if (segment === '.' || segment === '..' || !PATH_SEGMENT.test(segment)) return null
  }
  return { trustDomain, path }
}

/** The trust domain and path (`''` for the trust domain's own ID) of a valid SPIFFE ID, or null. */
export function spiffeIdParts (uri: string): { trustDomain: string, path: string } | null {
  return split(uri)
}

/** True when `name` may be a trust domain: what a SPIFFE ID holds between `spiffe://` and its path. */
export function isTrustDomain (name: string): boolean {
  return name.length <= MAX_TRUST_DOMAIN_LENGTH && TRUST_DOMAIN.test(name)
}

/**
 * True when `uri` is a SPIFFE ID as the SPIFFE-ID specification (§2) allows: scheme `spiffe`, a non-empty
 * lower-case trust domain of `[a-z0-9._-]`, and a path of non-empty segments of `[A-Za-z0-9._-]` that are not
 * `.` or `..`, with no trailing slash, query, fragment, port, userinfo or percent-encoding, at most 2048 bytes.
 * Case is exact: the spec calls scheme and trust domain case-insensitive but allows only lower case in them,
 * so `SPIFFE://` and `Example.org` are refused rather than folded.
 */
export function isSpiffeId (uri: string): boolean {
  return split(uri) !== null
}

/**
 * The SPIFFE ID of a certificate given its URI SANs: the one URI with the `spiffe` scheme, when there is
 * exactly one and it is valid. Several (even in another case spelling) or an invalid one give null: a
 * certificate must not name two workloads, and which one was meant cannot be guessed.
 */
export function spiffeIdFromUris (uris: readonly string[]): string | null {
  let found: string | null = null
  for (const uri of uris) {
    if (!SPIFFE_SCHEME.test(uri)) continue
    if (found !== null) return null
    found = uri
  }
  return found !== null && isSpiffeId(found) ? found : null
}

/**
 * Parses an authorization rule: an exact SPIFFE ID, or `spiffe://td/path/*` for every ID strictly below
 * `/path` (`/ns/admin/*` admits `/ns/admin/x` and `/ns/admin/x/y`, but neither `/ns/admin` itself nor
 * `/ns/adminx`), or `spiffe://td/*` for every ID in `td` that has a path. A trailing `*` is the only
 * wildcard; the bare trust-domain ID `spiffe://td` is matched only by an exact rule (the X509-SVID
 * specification gives leaf certificates a non-root path, so `/*` still covers every workload).
 */
export function parseSpiffePattern (pattern: string): SpiffePattern {
  const prefix = pattern.endsWith('/*')
  const parts = split(prefix ? pattern.slice(0, -2) : pattern)
  if (parts === null) throw new CertificateParseError('invalid SPIFFE ID pattern')
  return { trustDomain: parts.trustDomain, path: parts.path, prefix }
}

export function spiffeMatches (pattern: SpiffePattern, id: string): boolean {
  const parts = split(id)
  if (parts === null || parts.trustDomain !== pattern.trustDomain) return false
  if (!pattern.prefix) return parts.path === pattern.path
  // A valid ID has no trailing slash, so this prefix leaves at least one segment below the pattern's path.
  return parts.path.startsWith(pattern.path + '/')
}
