import { parseDN, type DNAttribute } from '../codecs/dn.js'
import { ClientCertInvalidOptionError } from '../errors.js'
import { normalizeFingerprint256 } from '../codecs/fingerprint.js'
import { attributeTypeByName } from '../codecs/oids.js'
import { parseSpiffePattern, spiffeMatches, type SpiffePattern } from '../codecs/spiffe.js'

/**
 * One `subjects` or `issuers` entry.
 *
 * - A string is a whole distinguished name in RFC 4514 form. It is parsed once and compared with the
 *   certificate's parsed name: attribute types by OID (so `cn`, `CN` and `2.5.4.3` are one type), values
 *   exactly, RDNs in order (most specific first, as OpenSSL prints them), the attributes of a multi-valued
 *   RDN in any order. `'CN=alice,O=Example Corp'` does not match a name with a third RDN.
 * - An object such as `{ O: 'Example Corp', OU: ['admins', 'ops'] }` matches a name that holds every listed
 *   attribute, anywhere in the name (multi-valued RDNs included), with one of the listed values. Keys are
 *   attribute names as OpenSSL prints them (any case; long names such as `organizationName` too) or dotted OIDs.
 *   This is the safe way to say "anyone in this O/OU". Values are text: they never match an attribute whose
 *   value is DER (`der: true`, written `#04…` in RFC 4514), even when its hex is the very same string; match
 *   such a value with a string rule that writes it as `#…` too.
 * - A RegExp is tested against the canonical RFC 4514 string of the name: `identity.subject` (or `.issuer`),
 *   which is what `formatDN` prints for the parsed name. It is the sharp tool: in that string a `,` or `+` inside a value is
 *   escaped as `\,` / `\+`, so `/O=admins/` also matches `CN=x\,O=admins` — a CN chosen by the certificate's
 *   holder. Anchor the whole name (`/^CN=[a-z]+,O=Example Corp,C=US$/`) or prefer an object rule.
 *   RegExps with the `g` or `y` flag are refused: `lastIndex` would make `test` depend on earlier requests.
 */
export type NameRule = string | RegExp | Readonly<Record<string, string | readonly string[]>>

/**
 * Authorization lists. A certificate passes when any entry of any listed kind matches it; a listed but
 * empty array matches no one (`{ subjects: [] }` admits no one). A rules object that lists no kind at all
 * is refused at registration rather than read as "admit everyone" or silently as "admit no one".
 */
export interface AllowRules {
  /** Subject names: see {@link NameRule}. */
  subjects?: readonly NameRule[]
  /** Issuer names (the CA that signed the certificate): see {@link NameRule}. */
  issuers?: readonly NameRule[]
  /**
   * DNS names of the certificate's subject alternative names (never its CN), ASCII case-insensitive.
   * `*.example.org` matches exactly one more leftmost label (`a.example.org`, not `a.b.example.org` nor
   * `example.org`); a wildcard written in the certificate itself matches only the identical rule string.
   * Internationalized names are written in their A-label form (`xn--…`), as certificates carry them.
   */
  dns?: readonly string[]
  /**
   * Email addresses of the subject alternative names (not the subject's `emailAddress` attribute: use an
   * object rule for that). The local part is exact, the domain ASCII case-insensitive (RFC 5321 §2.4).
   */
  emails?: readonly string[]
  /** URIs of the subject alternative names, exact. */
  uris?: readonly string[]
  /**
   * The certificate's SPIFFE ID (`identity.spiffeId`: set only when it has exactly one): exact IDs, or
   * `spiffe://trust-domain/path/*` for every ID strictly below that path, on segment boundaries.
   */
  spiffe?: readonly string[]
  /** SHA-256 fingerprints of the certificate, as colon-hex, bare hex (any case) or base64. */
  fingerprints?: readonly string[]
}

type Name = ReadonlyArray<readonly DNAttribute[]>

/** The identity fields the rules read. A `null` field matches no rule. */
export interface AllowIdentity {
  /** The canonical string of `subjectRDNs`, for RegExp rules. */
  readonly subject: string | null
  readonly issuer: string | null
  readonly subjectRDNs: Name | null
  readonly issuerRDNs: Name | null
  readonly san: { readonly dns: readonly string[], readonly email: readonly string[], readonly uri: readonly string[] } | null
  readonly spiffeId: string | null
  readonly fingerprint256: string | null
}

export type AllowPredicate = (identity: AllowIdentity) => boolean

type Check = (identity: AllowIdentity) => boolean

interface AttributeTerm {
  oid: string
  values: ReadonlySet<string>
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/
const DOTTED_OID = /^[0-2](?:\.(?:0|[1-9]\d*))+$/
const ASCII_UPPER = /[A-Z]+/g
const DNS_LABEL = /^[a-z0-9_-]{1,63}$/
const MAX_DNS_NAME = 253
const URI = /^[A-Za-z][A-Za-z0-9+.-]*:\S+$/

function fail (option: string, reason: string, cause?: unknown): never {
  throw cause === undefined
    ? new ClientCertInvalidOptionError(option, reason)
    : new ClientCertInvalidOptionError(option, reason, { cause })
}

function member (path: string, key: string): string {
  return IDENTIFIER.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

// Only A–Z: String#toLowerCase would also fold non-ASCII look-alikes (KELVIN SIGN → `k`) into a rule's letters.
function asciiLower (text: string): string {
  return text.replace(ASCII_UPPER, (upper) => upper.toLowerCase())
}

// The same resolution as a type in a DN string, so `{ uid: … }` and `uid=…` name one attribute.
function attributeOid (key: string): string | null {
  if (DOTTED_OID.test(key)) return key
  return attributeTypeByName(key)?.oid ?? null
}

function strings (list: readonly unknown[], path: string): string[] {
  // An index loop, not forEach: a hole in a sparse array is an entry that is not a string.
  for (let i = 0; i < list.length; i++) {
    if (typeof list[i] !== 'string') fail(`${path}[${i}]`, 'must be a string')
  }
  return list as string[]
}

/**
 * A key equal for two names exactly when they hold the same RDNs in the same order, each with the same
 * (OID, value) attributes in any order: a multi-valued RDN is a set (X.501), and OpenSSL prints its
 * members in reverse. JSON string literals keep attribute boundaries unambiguous whatever the values hold.
 * A DER value (`#04…` in RFC 4514) and the text `#04…` are different values: `#` and `=` tell them apart.
 */
function nameKey (rdns: Name): string {
  let key = ''
  for (let i = 0; i < rdns.length; i++) {
    const attributes = rdns[i].map((attribute) => JSON.stringify(attribute.oid) + (attribute.der === true ? '#' : '=') + JSON.stringify(attribute.value))
    key += (i === 0 ? '' : ',') + attributes.sort().join('+')
  }
  return key
}

function hasAttribute (rdns: Name, term: AttributeTerm): boolean {
  for (const rdn of rdns) {
    for (const attribute of rdn) {
      // Rule values are text: a DER value never matches one (see NameRule).
      if (attribute.oid === term.oid && attribute.der !== true && term.values.has(attribute.value)) return true
    }
  }
  return false
}

function hasEvery (rdns: Name, terms: readonly AttributeTerm[]): boolean {
  for (const term of terms) {
    if (!hasAttribute(rdns, term)) return false
  }
  return true
}

function compileAttributes (rule: Record<string, unknown>, path: string): AttributeTerm[] {
  const keys = Object.keys(rule)
  if (keys.length === 0) fail(path, 'lists no attribute (an empty object would match every name)')
  return keys.map((key) => {
    const keyPath = member(path, key)
    const oid = attributeOid(key)
    if (oid === null) fail(keyPath, 'is neither a known attribute type nor a dotted OID')
    const value = rule[key]
    let values: string[]
    if (typeof value === 'string') {
      values = [value]
    } else if (Array.isArray(value)) {
      if (value.length === 0) fail(keyPath, 'lists no value, so the rule could never match')
      values = strings(value, keyPath)
    } else {
      fail(keyPath, 'must be a string or an array of strings')
    }
    return { oid, values: new Set(values) }
  })
}

function compileNames (list: readonly unknown[], path: string, which: 'subject' | 'issuer'): Check {
  const field = which === 'subject' ? 'subjectRDNs' : 'issuerRDNs'
  const whole = new Set<string>()
  const partial: AttributeTerm[][] = []
  const patterns: RegExp[] = []
  for (let i = 0; i < list.length; i++) {
    const rule = list[i]
    const at = `${path}[${i}]`
    if (typeof rule === 'string') {
      // An empty rule would admit every certificate with an empty subject: far more likely an unset variable.
      if (rule === '') fail(at, 'is an empty name')
      let rdns
      try {
        rdns = parseDN(rule)
      } catch (err) {
        fail(at, `is not a valid distinguished name (${(err as Error).message})`, err)
      }
      whole.add(nameKey(rdns))
    } else if (rule instanceof RegExp) {
      if (rule.global || rule.sticky) fail(at, 'must not have the g or y flag (lastIndex would make matching stateful)')
      // A private copy: later changes to the caller's object cannot reach the compiled rules.
      patterns.push(new RegExp(rule.source, rule.flags))
    } else if (isPlainObject(rule)) {
      partial.push(compileAttributes(rule, at))
    } else {
      fail(at, 'must be a distinguished name string, an object of attribute values or a RegExp')
    }
  }

  return function matchName (identity) {
    const rdns = identity[field]
    if (rdns !== null) {
      if (whole.size > 0 && whole.has(nameKey(rdns))) return true
      for (const terms of partial) {
        if (hasEvery(rdns, terms)) return true
      }
    }
    // Every source sets the string to formatDN of the RDNs once per certificate: nothing to format here.
    const text = identity[which]
    if (text !== null) {
      for (const pattern of patterns) {
        if (pattern.test(text)) return true
      }
    }
    return false
  }
}

/** The lower-case labels of a DNS name, or null when it is not one. */
function dnsLabels (name: string): string[] | null {
  if (name.length > MAX_DNS_NAME) return null
  const labels = asciiLower(name).split('.')
  for (let i = 0; i < labels.length; i++) {
    if (!DNS_LABEL.test(labels[i]) && !(i === 0 && labels[i] === '*' && labels.length > 1)) return null
  }
  return labels
}

function compileDns (list: readonly unknown[], path: string): Check {
  const exact = new Set<string>()
  // `*.example.org` is stored as `.example.org`, the text after a certificate name's first label.
  const suffixes = new Set<string>()
  const names = strings(list, path)
  for (let i = 0; i < names.length; i++) {
    const labels = dnsLabels(names[i])
    if (labels === null) {
      fail(`${path}[${i}]`, 'is not a DNS name (internationalized names go in their xn-- form; `*` only as a whole leftmost label)')
    }
    const name = labels.join('.')
    exact.add(name)
    if (labels[0] === '*') suffixes.add(name.slice(1))
  }

  return function matchDns (identity) {
    if (identity.san === null) return false
    for (const dns of identity.san.dns) {
      const name = asciiLower(dns)
      if (exact.has(name)) return true
      if (suffixes.size > 0) {
        const dot = name.indexOf('.')
        // The wildcard stands for one real label: never `*` or any other text a certificate could carry there.
        if (dot !== -1 && DNS_LABEL.test(name.slice(0, dot)) && suffixes.has(name.slice(dot))) return true
      }
    }
    return false
  }
}

// Local part exact, domain folded: `lastIndexOf`, since a quoted local part may itself hold an `@`.
function normalizeEmail (address: string): string {
  const at = address.lastIndexOf('@')
  return address.slice(0, at + 1) + asciiLower(address.slice(at + 1))
}

function compileEmails (list: readonly unknown[], path: string): Check {
  const addresses = new Set<string>()
  const entries = strings(list, path)
  for (let i = 0; i < entries.length; i++) {
    const at = entries[i].lastIndexOf('@')
    const domain = entries[i].slice(at + 1)
    if (at < 1 || dnsLabels(domain) === null || domain.startsWith('*')) {
      fail(`${path}[${i}]`, 'is not an email address (local@domain)')
    }
    addresses.add(normalizeEmail(entries[i]))
  }

  return function matchEmail (identity) {
    if (identity.san === null) return false
    for (const email of identity.san.email) {
      if (addresses.has(normalizeEmail(email))) return true
    }
    return false
  }
}

function compileUris (list: readonly unknown[], path: string): Check {
  const entries = strings(list, path)
  for (let i = 0; i < entries.length; i++) {
    if (!URI.test(entries[i])) fail(`${path}[${i}]`, 'is not an absolute URI (scheme:…)')
  }
  const uris = new Set(entries)

  return function matchUri (identity) {
    if (identity.san === null) return false
    for (const uri of identity.san.uri) {
      if (uris.has(uri)) return true
    }
    return false
  }
}

function compileSpiffe (list: readonly unknown[], path: string): Check {
  const exact = new Set<string>()
  const prefixes: SpiffePattern[] = []
  const entries = strings(list, path)
  for (let i = 0; i < entries.length; i++) {
    let pattern: SpiffePattern
    try {
      pattern = parseSpiffePattern(entries[i])
    } catch (err) {
      fail(`${path}[${i}]`, 'is not a SPIFFE ID or a spiffe://trust-domain/path/* pattern', err)
    }
    // An exact pattern is a valid SPIFFE ID spelled as is, so string equality is the whole comparison.
    if (pattern.prefix) prefixes.push(pattern)
    else exact.add(entries[i])
  }

  return function matchSpiffe (identity) {
    const id = identity.spiffeId
    if (id === null) return false
    if (exact.has(id)) return true
    for (const pattern of prefixes) {
      if (spiffeMatches(pattern, id)) return true
    }
    return false
  }
}

function compileFingerprints (list: readonly unknown[], path: string): Check {
  const fingerprints = new Set<string>()
  const entries = strings(list, path)
  for (let i = 0; i < entries.length; i++) {
    try {
      fingerprints.add(normalizeFingerprint256(entries[i]))
    } catch (err) {
      fail(`${path}[${i}]`, 'is not a SHA-256 fingerprint (colon-hex, hex or base64)', err)
    }
  }

  return function matchFingerprint (identity) {
    return identity.fingerprint256 !== null && fingerprints.has(identity.fingerprint256)
  }
}

const compilers: Record<keyof AllowRules, (list: readonly unknown[], path: string) => Check> = {
  subjects: (list, path) => compileNames(list, path, 'subject'),
  issuers: (list, path) => compileNames(list, path, 'issuer'),
  dns: compileDns,
  emails: compileEmails,
  uris: compileUris,
  spiffe: compileSpiffe,
  fingerprints: compileFingerprints
}
const kinds = Object.keys(compilers) as (keyof AllowRules)[]

function admitNoOne (): boolean {
  return false
}

/**
 * Validates `rules` and compiles them into a predicate that only compares (set lookups where it can):
 * every rule is parsed and normalized here, once. Any mistake throws `ClientCertInvalidOptionError` naming
 * the entry (`${optionPath}.subjects[2]`, `${optionPath}.subjects[0].OU`): unknown kinds, lists that are
 * not arrays, unparsable names, fingerprints or SPIFFE patterns, unknown attribute types, empty objects.
 */
export function compileAllow (rules: AllowRules, optionPath: string): AllowPredicate {
  if (!isPlainObject(rules)) fail(optionPath, `must be an object of rule lists (${kinds.join(', ')})`)
  for (const key of Object.keys(rules)) {
    if (!Object.hasOwn(compilers, key)) fail(member(optionPath, key), `is not a rule kind (${kinds.join(', ')})`)
  }

  const checks: Check[] = []
  let listed = 0
  for (const kind of kinds) {
    const list = rules[kind]
    if (list === undefined) continue
    const path = `${optionPath}.${kind}`
    if (!Array.isArray(list)) fail(path, 'must be an array')
    listed++
    if (list.length > 0) checks.push(compilers[kind](list, path))
  }
  if (listed === 0) {
    fail(optionPath, 'lists no rule kind; to admit no one, say so with an empty list such as { subjects: [] }')
  }

  if (checks.length === 0) return admitNoOne
  if (checks.length === 1) return checks[0]
  return function allow (identity) {
    for (const check of checks) {
      if (check(identity)) return true
    }
    return false
  }
}
