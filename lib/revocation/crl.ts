// Stage 2b, revocation: certificate revocation lists loaded by the operator and checked per issuer.
import { X509Certificate, constants, createVerify, verify, type KeyObject } from 'node:crypto'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { ClientCertInvalidOptionError } from '../errors.js'
import { CertificateParseError } from '../codecs/parse-error.js'
import { readExtensions } from '../policy/chain.js'
import {
  BIT_STRING,
  BOOLEAN,
  CONTEXT_0,
  CONTEXT_1,
  CONTEXT_2,
  CONTEXT_3,
  Cursor,
  GENERALIZED_TIME,
  INTEGER,
  OCTET_STRING,
  OID,
  SEQUENCE,
  SET,
  type Tlv,
  UTC_TIME,
  decodeString,
  fail,
  readTime,
  serialHex,
  skipTime
} from '../codecs/der.js'

/**
 * Certificate revocation lists (RFC 5280 §5), read with a small strict DER reader for exactly the
 * `CertificateList` structure. Node has no CRL API; the ASN.1 libraries of the field weigh several
 * packages and tens of milliseconds of load time, and the one we measured accepts trailing bytes.
 *
 * Semantics, decided here and documented in the README:
 * - CRLs are opt-in per issuer: a certificate whose issuer has no loaded CRL is not checked.
 * - Every certificate of the path is checked, as OpenSSL's crl_check_all does (`checkPath`): a revoked
 *   intermediate CA revokes every leaf under it. A CRL limited to end-entity certificates
 *   (onlyContainsUserCerts) says nothing about a CA: for a CA of the path it counts as not loaded.
 * - Issuer names are compared as OpenSSL does (`X509_NAME_cmp`): the attribute types, then string
 *   values of the canonical string types with case folded (ASCII), surrounding whitespace trimmed and
 *   inner runs collapsed, other values byte for byte, so a CRL applies to exactly the certificates
 *   OpenSSL's own CRL check would apply it to.
 * - A certificate known by names alone (a proxy that forwards subject, issuer and serial but not the
 *   certificate) is checked by issuer name and serial. Its issuer's string types are unknown, so the name
 *   is matched as text (`checkNames`): the CRL of the real issuer is always found, and a name that two
 *   loaded issuers could bear fails closed. No issuer, or no serial while its issuer has a CRL: fails
 *   closed (`UNABLE_TO_GET_CRL`).
 * - Several CRLs may share an issuer (an overlap after rotation, a key rollover): a certificate listed
 *   in any of them is revoked; the issuer's lists count as expired only when every one has expired.
 * - A listed certificate is `CERT_REVOKED` even when its CRL has expired: revocation is permanent.
 * - `thisUpdate` in the future is not an error: clock skew right after a reload must not lock
 *   everybody out, and the list's content is no less true. A CRL without `nextUpdate` never expires.
 * - Signatures are checked against configured trust (`proxy.ca`, the server's `ca`), never against a
 *   certificate the client sent: a CRL counts when a trusted certificate bearing its issuer's name signed
 *   it; when none of an issuer's CRLs does, `CRL_SIGNATURE_FAILURE`. When no trusted certificate bears the
 *   name (an intermediate CA only the client's chain carries, proxy mode without `proxy.ca`), the CRL is
 *   trusted as configured: it comes from the operator's files, the same trust as `ca`. That is also
 *   all a names-only identity can have: without the issuer's certificate there is no key to check with.
 * - CRLs whose scope this reader cannot honour are refused at load, never half-applied: delta CRLs,
 *   indirect CRLs (an entry's certificate issuer), issuing distribution points limited to CA or
 *   attribute certificates or to some reasons, and any other critical extension.
 * - Loading never stalls the event loop: `load` parses in slices of about 5 ms and hashes signed content a
 *   megabyte per step; serials are indexed in typed arrays over the CRL's own bytes, not one object each.
 */

export type RevocationError = 'CERT_REVOKED' | 'CRL_HAS_EXPIRED' | 'UNABLE_TO_GET_CRL' | 'CRL_SIGNATURE_FAILURE'

export interface RevocationCheck {
  readonly revoked: boolean
  readonly error: RevocationError | null
}

const OK: RevocationCheck = Object.freeze({ revoked: false, error: null })
const REVOKED: RevocationCheck = Object.freeze({ revoked: true, error: 'CERT_REVOKED' })
const EXPIRED: RevocationCheck = Object.freeze({ revoked: false, error: 'CRL_HAS_EXPIRED' })
const UNKNOWN: RevocationCheck = Object.freeze({ revoked: false, error: 'UNABLE_TO_GET_CRL' })
const BAD_SIGNATURE: RevocationCheck = Object.freeze({ revoked: false, error: 'CRL_SIGNATURE_FAILURE' })
const NOT_COVERED: RevocationCheck = Object.freeze({ revoked: false, error: null })

// Per CRL, how many issuer certificates' verdicts are remembered; past it, each check verifies again.
const VERIFIED_MAX = 16

// OIDs as the hex of their DER content, which is what the reader has at hand.
const EXT_DELTA_CRL_INDICATOR = '551d1b' // 2.5.29.27
const EXT_ISSUING_DISTRIBUTION_POINT = '551d1c' // 2.5.29.28
const EXT_CERTIFICATE_ISSUER = '551d1d' // 2.5.29.29
const RSASSA_PSS = '2a864886f70d01010a' // 1.2.840.113549.1.1.10
const MGF1 = '2a864886f70d010108' // 1.2.840.113549.1.1.8

interface SignatureAlgorithm {
  readonly hash: string | null
  readonly saltLength?: number
}

const SIGNATURE_ALGORITHMS = new Map<string, SignatureAlgorithm>([
  ['2a864886f70d010105', { hash: 'sha1' }], // sha1WithRSAEncryption
  ['2a864886f70d01010e', { hash: 'sha224' }], // sha224WithRSAEncryption
  ['2a864886f70d01010b', { hash: 'sha256' }], // sha256WithRSAEncryption
  ['2a864886f70d01010c', { hash: 'sha384' }], // sha384WithRSAEncryption
  ['2a864886f70d01010d', { hash: 'sha512' }], // sha512WithRSAEncryption
  ['2a8648ce3d0401', { hash: 'sha1' }], // ecdsa-with-SHA1
  ['2a8648ce3d040301', { hash: 'sha224' }], // ecdsa-with-SHA224
  ['2a8648ce3d040302', { hash: 'sha256' }], // ecdsa-with-SHA256
  ['2a8648ce3d040303', { hash: 'sha384' }], // ecdsa-with-SHA384
  ['2a8648ce3d040304', { hash: 'sha512' }], // ecdsa-with-SHA512
  ['2b6570', { hash: null }], // Ed25519
  ['2b6571', { hash: null }], // Ed448
])

const HASHES = new Map<string, string>([
  ['2b0e03021a', 'sha1'],
  ['608648016503040204', 'sha224'],
  ['608648016503040201', 'sha256'],
  ['608648016503040202', 'sha384'],
  ['608648016503040203', 'sha512'],
])

const ASCII_UPPER = /[A-Z]/g
const SPACES = /[\t\n\v\f\r ]+/g

// The string types X509_NAME_cmp compares as canonical text (OpenSSL's ASN1_MASK_CANON): UTF8String,
// PrintableString, T61String, IA5String, VisibleString, UniversalString, BMPString. Any other value is
// compared as its DER, type and all, NumericString and GeneralString too, which OpenSSL prints (and a
// proxy forwards) as text all the same.
const CANONICAL_TAGS = new Set([0x0c, 0x13, 0x14, 0x16, 0x1a, 0x1c, 0x1e])

function canonicalText (text: string): string {
  return text.replace(SPACES, ' ').replace(/^ | $/g, '').replace(ASCII_UPPER, (ch) => ch.toLowerCase())
}

interface NameKeys {
  /** Equal for two names exactly when OpenSSL's X509_NAME_cmp finds them equal. */
  readonly exact: string
  /**
   * Equal whenever `exact` is, and also when the names differ only in the string types a forwarded DN
   * string cannot show (NumericString or GeneralString against another text type): what a name read
   * from a header can be matched on.
   */
  readonly loose: string
}

/**
 * A Name as string keys. The exact key mirrors OpenSSL's canonical encoding: ASCII case and whitespace
 * folded in string values of the canonical types, other values kept as their DER, multi-valued RDNs kept
 * together and sorted.
 */
function nameKeys (c: Cursor, name: Tlv): NameKeys {
  const exact: string[][] = []
  const loose: string[][] = []
  const seq = c.into(name)
  while (!seq.done) {
    const set = seq.into(seq.read(SET, 'a name component'))
    const exactAvas: string[] = []
    const looseAvas: string[] = []
    while (!set.done) {
      const ava = set.into(set.read(SEQUENCE, 'a name attribute'))
      const type = ava.hex(ava.read(OID, 'a name attribute type'))
      const valueTlv = ava.any('a name attribute value')
      ava.finish('a name attribute')
      const der = 'x' + ava.buf.toString('hex', valueTlv.start, valueTlv.end)
      // The types OpenSSL prints as text decode; malformed text (bad UTF-8, an odd BMPString) throws:
      // OpenSSL refuses to compare such names too.
      const decoded = decodeString(ava.buf, valueTlv)
      const text = decoded === null ? der : 's' + canonicalText(decoded)
      exactAvas.push(type + ':' + (CANONICAL_TAGS.has(valueTlv.tag) ? text : der))
      looseAvas.push(type + ':' + text)
    }
    if (exactAvas.length === 0) fail('a name component is empty')
    exact.push(exactAvas.sort())
    loose.push(looseAvas.sort())
  }
  return { exact: JSON.stringify(exact), loose: JSON.stringify(loose) }
}

/** An attribute of a name read from text (lib/codecs/dn.ts): a dotted OID and the decoded value. */
export interface NameAttribute {
  readonly oid: string
  readonly value: string
  /** a value that is no character string, as `#` and the hex of its DER (lib/codecs/dn.ts) */
  readonly der?: true
}

/** The DER content of a dotted OID, in hex, as `Cursor#hex` gives it for an OID read from DER. */
function oidHex (dotted: string): string {
  if (!/^\d+(\.\d+)+$/.test(dotted)) fail('an attribute type is not a dotted OID')
  const arcs = dotted.split('.').map(BigInt)
  let hex = ''
  for (const arc of [arcs[0] * 40n + arcs[1], ...arcs.slice(2)]) {
    let group = (arc & 0x7fn).toString(16).padStart(2, '0')
    for (let rest = arc >> 7n; rest > 0n; rest >>= 7n) group = ((rest & 0x7fn) | 0x80n).toString(16).padStart(2, '0') + group
    hex += group
  }
  return hex
}

/**
 * The loose key of a name read from a header (RDNs in RFC 4514 order, as lib/codecs/dn.ts gives them). Its values' string types are unknown, so each value is
 * taken as text: that finds the CRL of the certificate's real issuer whatever type its name used; a
 * second issuer that only X509_NAME_cmp would tell apart makes the match ambiguous (see `checkNames`).
 */
function looseKeyOf (rdns: ReadonlyArray<ReadonlyArray<NameAttribute>>): string {
  // RFC 4514 order is the most specific RDN first, the reverse of the DER.
  return JSON.stringify([...rdns].reverse().map((rdn) => {
    if (rdn.length === 0) fail('a name component is empty')
    // A DER value keys as nameKeys keys a value that decodes to no text: `x` and its DER in hex.
    return rdn.map((attribute) => oidHex(attribute.oid) + ':' + (attribute.der === true
      ? 'x' + attribute.value.slice(1).toLowerCase()
      : 's' + canonicalText(attribute.value))).sort()
  }))
}

interface Extension {
  readonly id: string
  readonly critical: boolean
  readonly value: Cursor
}

function * extensions (c: Cursor, what: string): Generator<Extension> {
  const list = c.into(c.read(SEQUENCE, what))
  while (!list.done) {
    const ext = list.into(list.read(SEQUENCE, 'an extension'))
    const id = ext.hex(ext.read(OID, 'an extension id'))
    const flag = ext.optional(BOOLEAN, 'an extension critical flag')
    const critical = flag !== null && ext.buf[flag.contentStart] !== 0
    const value = ext.into(ext.read(OCTET_STRING, 'an extension value'))
    ext.finish('an extension')
    yield { id, critical, value }
  }
}

/**
 * An issuing distribution point only narrows a CRL's scope. Pointing at a distribution point is
 * harmless; covering end-entity certificates only is honoured (the CAs of a path are not checked
 * against such a CRL); any other limit (CA or attribute certificates only, some reasons only, indirect)
 * is refused. Returns whether the CRL covers end-entity certificates only.
 */
function checkDistributionPoint (value: Cursor): boolean {
  const idp = value.into(value.read(SEQUENCE, 'the issuing distribution point'))
  value.finish('the issuing distribution point')
  idp.optional(CONTEXT_0, 'the distribution point name')
  const userOnly = idp.optional(0x81, 'the only-user-certificates flag')
  if (!idp.done) fail('the CRL covers only some certificates or reasons (issuing distribution point)')
  // A BOOLEAN's content: DER writes TRUE as 0xff (and leaves FALSE, the default, out).
  return userOnly !== null && userOnly.end - userOnly.contentStart === 1 && idp.buf[userOnly.contentStart] !== 0
}

function readSignatureAlgorithm (c: Cursor, tlv: Tlv): SignatureAlgorithm {
  const seq = c.into(tlv)
  const id = seq.hex(seq.read(OID, 'the signature algorithm'))
  if (id === RSASSA_PSS) return readPssParameters(seq)
  const algorithm = SIGNATURE_ALGORITHMS.get(id)
  if (algorithm === undefined) fail('the signature algorithm is not supported')
  return algorithm
}

function readHashAlgorithm (c: Cursor, what: string): string {
  const seq = c.into(c.read(SEQUENCE, what))
  const hash = HASHES.get(seq.hex(seq.read(OID, what)))
  if (hash === undefined) fail(`${what} is not supported`)
  return hash
}

/** The single value inside an EXPLICIT context tag. */
function explicit (c: Cursor, tlv: Tlv, what: string): Cursor {
  const inner = c.into(tlv)
  const value = inner.any(what)
  inner.finish(what)
  return new Cursor(c.buf, value.start, value.end)
}

/** RFC 4055 RSASSA-PSS-params; Node's verify takes the MGF1 hash from the digest, so both must agree. */
function readPssParameters (c: Cursor): SignatureAlgorithm {
  const params = c.into(c.read(SEQUENCE, 'the RSA-PSS parameters'))
  c.finish('the signature algorithm')
  const hashTag = params.optional(CONTEXT_0, 'the RSA-PSS hash')
  const hash = hashTag === null ? 'sha1' : readHashAlgorithm(explicit(params, hashTag, 'the RSA-PSS hash'), 'the RSA-PSS hash')
  const mgfTag = params.optional(CONTEXT_1, 'the RSA-PSS mask generation')
  let mgfHash = 'sha1'
  if (mgfTag !== null) {
    const outer = explicit(params, mgfTag, 'the RSA-PSS mask generation')
    const mgf = outer.into(outer.read(SEQUENCE, 'the RSA-PSS mask generation'))
    if (mgf.hex(mgf.read(OID, 'the RSA-PSS mask generation')) !== MGF1) fail('the RSA-PSS mask generation is not supported')
    mgfHash = readHashAlgorithm(mgf, 'the RSA-PSS mask generation hash')
  }
  if (mgfHash !== hash) fail('the RSA-PSS mask generation hash differs from the signature hash')
  const saltTag = params.optional(CONTEXT_2, 'the RSA-PSS salt length')
  let saltLength = 20
  if (saltTag !== null) {
    const salt = explicit(params, saltTag, 'the RSA-PSS salt length')
    const tlv = salt.read(INTEGER, 'the RSA-PSS salt length')
    const length = tlv.end - tlv.contentStart
    if (length === 0 || length > 2 || salt.buf[tlv.contentStart] >= 0x80) fail('the RSA-PSS salt length is out of range')
    saltLength = salt.buf.readUIntBE(tlv.contentStart, length)
  }
  const trailer = params.optional(CONTEXT_3, 'the RSA-PSS trailer field')
  if (trailer !== null && params.hex(trailer) !== '020101') fail('the RSA-PSS trailer field is not supported')
  params.finish('the RSA-PSS parameters')
  return { hash, saltLength }
}

/**
 * The revoked serials of one CRL, indexed without an object per entry: the serials stay where they are
 * in the CRL's DER (which is kept for its signature), entry offsets and lengths sit in typed arrays of
 * fixed-size chunks (growing never copies), and an open-addressing table of entry numbers finds them.
 * A lookup hashes the serial's bytes and compares a few; it allocates nothing.
 */
class SerialIndex {
  constructor (
    private readonly der: Buffer,
    private readonly starts: readonly Uint32Array[],
    private readonly lengths: readonly Uint8Array[],
    private readonly table: Uint32Array,
    /** Negative serials (RFC 5280 forbids them), zero and serials over 255 bytes, as `serialHex` writes them. */
    private readonly others: ReadonlySet<string>
  ) {}

  /** `serial` as `X509Certificate#serialNumber` prints it (hex, checked by the caller). */
  has (serial: string): boolean {
    if (serial.charCodeAt(0) === 0x2d || serial.length > 2 * MAX_INDEXED_BYTES) return this.others.has(serial.toUpperCase())
    const end = hexToScratch(serial)
    let start = 0
    while (start < end && scratch[start] === 0) start++
    const length = end - start
    if (length === 0) return this.others.has('0')
    const mask = this.table.length - 1
    const { der, starts, lengths, table } = this
    for (let slot = hashBytes(scratch, start, end) & mask; table[slot] !== 0; slot = (slot + 1) & mask) {
      const entry = table[slot] - 1
      if (lengths[entry >>> CHUNK_BITS][entry & CHUNK_MASK] !== length) continue
      const at = starts[entry >>> CHUNK_BITS][entry & CHUNK_MASK]
      let i = 0
      while (i < length && der[at + i] === scratch[start + i]) i++
      if (i === length) return true
    }
    return false
  }
}

const MAX_INDEXED_BYTES = 255
const CHUNK_BITS = 12
const CHUNK_MASK = (1 << CHUNK_BITS) - 1
const scratch = new Uint8Array(MAX_INDEXED_BYTES + 1)

/** Writes the bytes of a hex serial (an odd digit count reads as a leading 0) into `scratch`; returns their count. */
function hexToScratch (hex: string): number {
  let length = 0
  let pos = 0
  if (hex.length % 2 === 1) {
    scratch[length++] = hexDigit(hex.charCodeAt(0))
    pos = 1
  }
  for (; pos < hex.length; pos += 2) scratch[length++] = hexDigit(hex.charCodeAt(pos)) * 16 + hexDigit(hex.charCodeAt(pos + 1))
  return length
}

function hexDigit (c: number): number {
  return c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57
}

/**
 * FNV-1a, then murmur3's finalizer so that the table's low bits depend on every input bit (serials that
 * count up differ only in their last bytes). The table holds the operator's CRL: no keyed hash is needed.
 */
function hashBytes (bytes: Uint8Array, start: number, end: number): number {
  let hash = 0x811c9dc5
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ bytes[i], 0x01000193)
  hash ^= hash >>> 16
  hash = Math.imul(hash, 0x85ebca6b)
  hash ^= hash >>> 13
  hash = Math.imul(hash, 0xc2b2ae35)
  return (hash ^ (hash >>> 16)) >>> 0
}

class SerialIndexBuilder {
  readonly #starts: Uint32Array[] = []
  readonly #lengths: Uint8Array[] = []
  #count = 0
  readonly #others = new Set<string>()

  constructor (private readonly der: Buffer) {}

  add (tlv: Tlv): void {
    const der = this.der
    let start = tlv.contentStart
    while (start < tlv.end && der[start] === 0) start++
    // serialHex refuses an empty INTEGER; the rare serials kept by their text are negative, zero or long ones.
    if (start === tlv.end || der[tlv.contentStart] >= 0x80 || tlv.end - start > MAX_INDEXED_BYTES) {
      this.#others.add(serialHex(der, tlv))
      return
    }
    const count = this.#count++
    if ((count & CHUNK_MASK) === 0) {
      this.#starts.push(new Uint32Array(CHUNK_MASK + 1))
      this.#lengths.push(new Uint8Array(CHUNK_MASK + 1))
    }
    this.#starts[count >>> CHUNK_BITS][count & CHUNK_MASK] = start
    this.#lengths[count >>> CHUNK_BITS][count & CHUNK_MASK] = tlv.end - start
  }

  * build (): Steps<SerialIndex> {
    const count = this.#count
    let size = 2
    while (size < 2 * count) size *= 2
    const table = new Uint32Array(size)
    const mask = size - 1
    for (let entry = 0; entry < count; entry++) {
      const start = this.#starts[entry >>> CHUNK_BITS][entry & CHUNK_MASK]
      let slot = hashBytes(this.der, start, start + this.#lengths[entry >>> CHUNK_BITS][entry & CHUNK_MASK]) & mask
      while (table[slot] !== 0) slot = (slot + 1) & mask
      table[slot] = entry + 1
      if ((entry & CHUNK_MASK) === CHUNK_MASK) yield
    }
    return new SerialIndex(this.der, this.#starts, this.#lengths, table, this.#others)
  }
}

/** Work cut into steps: a `yield` is a point where a long load may let the event loop run. */
type Steps<T> = Generator<void, T, void>

function runToEnd<T> (steps: Steps<T>): T {
  for (;;) {
    const step = steps.next()
    if (step.done === true) return step.value
  }
}

// A slice of a sliced load runs at most this long (plus one step) before the event loop gets a turn.
const SLICE_MS = 5

async function runSliced<T> (steps: Steps<T>): Promise<T> {
  for (;;) {
    const deadline = performance.now() + SLICE_MS
    let step = steps.next()
    while (step.done !== true && performance.now() < deadline) step = steps.next()
    if (step.done === true) return step.value
    await nextTurn()
  }
}

class Crl {
  // Per issuer certificate (fingerprint), whether its key signed this CRL: a signature is checked once.
  readonly #verdicts = new Map<string, boolean>()

  constructor (
    readonly issuerDer: string,
    readonly names: NameKeys,
    readonly thisUpdate: number,
    readonly nextUpdate: number,
    readonly serials: SerialIndex,
    readonly tbs: Buffer,
    readonly algorithm: SignatureAlgorithm,
    readonly signature: Buffer,
    /** Covers end-entity certificates only (issuing distribution point onlyContainsUserCerts). */
    readonly userOnly: boolean
  ) {}

  /** What is known of `issuer`'s signature on this CRL, without checking it. */
  verdict (issuer: X509Certificate): boolean | undefined {
    return this.#verdicts.get(issuer.fingerprint256)
  }

  /**
   * Checks `issuer`'s signature, once per issuer, in steps. `bounded`: an issuer that does not come
   * from configured trust, whose verdict is remembered only while few are.
   */
  * signedBy (issuer: X509Certificate, bounded = false): Steps<boolean> {
    let ok = this.verdict(issuer)
    if (ok === undefined) {
      ok = maySignCrls(issuer) && (yield * checkSignature(this, issuer.publicKey))
      if (!bounded || this.#verdicts.size < VERIFIED_MAX) this.#verdicts.set(issuer.fingerprint256, ok)
    }
    return ok
  }
}

const CRL_SIGN = 0x02

/**
 * RFC 5280 §4.2.1.3: a key whose certificate has keyUsage without cRLSign may not sign CRLs, whatever its name
 * and key (a CA certified again for some other use, with the same key). A certificate the strict reader refuses
 * is not relied on either.
 */
function maySignCrls (issuer: X509Certificate): boolean {
  const extensions = readExtensions(issuer)
  return extensions !== null && (extensions.keyUsage === null || (extensions.keyUsage & CRL_SIGN) !== 0)
}

// Bytes hashed per step when a signature is checked: about a millisecond of SHA-256.
const HASH_STEP_BYTES = 1 << 20

/**
 * The signature, its content hashed a megabyte per step on this thread (Node's one-shot async verify
 * would first copy the whole content, a stall of its own). EdDSA has no streaming form: hashed at once.
 */
function * checkSignature (crl: Crl, key: KeyObject): Steps<boolean> {
  const { hash, saltLength } = crl.algorithm
  const input = saltLength === undefined ? key : { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }
  try {
    if (hash === null) return verify(null, crl.tbs, key, crl.signature)
    const verifier = createVerify(hash)
    for (let at = 0; at < crl.tbs.length; at += HASH_STEP_BYTES) {
      verifier.update(crl.tbs.subarray(at, at + HASH_STEP_BYTES))
      yield
    }
    return verifier.verify(input, crl.signature)
  } catch {
    // A key of another type than the algorithm (an EC key for an RSA signature) throws: not signed by it.
    return false
  }
}

// Entries between two points where a sliced load may yield.
const ENTRIES_PER_STEP = 1024

function * parseCrl (der: Buffer): Steps<Crl> {
  const top = new Cursor(der, 0, der.length)
  const outer = top.into(top.read(SEQUENCE, 'the CRL'))
  top.finish('the CRL')
  const tbsTlv = outer.read(SEQUENCE, 'the CRL content')
  const algorithmTlv = outer.read(SEQUENCE, 'the signature algorithm')
  const signatureTlv = outer.read(BIT_STRING, 'the signature')
  outer.finish('the CRL')
  const algorithm = readSignatureAlgorithm(outer, algorithmTlv)
  if (signatureTlv.end - signatureTlv.contentStart < 2 || der[signatureTlv.contentStart] !== 0) fail('the signature is not a whole number of bytes')

  const tbs = outer.into(tbsTlv)
  const version = tbs.optional(INTEGER, 'the CRL version')
  if (version !== null && tbs.hex(version) !== '01') fail('the CRL version is not v2')
  const innerAlgorithm = tbs.read(SEQUENCE, 'the signature algorithm')
  if (!der.subarray(innerAlgorithm.start, innerAlgorithm.end).equals(der.subarray(algorithmTlv.start, algorithmTlv.end))) {
    fail('the two signature algorithms differ')
  }
  const issuer = tbs.read(SEQUENCE, 'the CRL issuer')
  const names = nameKeys(tbs, issuer)
  const thisUpdate = readTime(tbs, 'thisUpdate')
  const next = tbs.peek()
  const nextUpdate = next === UTC_TIME || next === GENERALIZED_TIME ? readTime(tbs, 'nextUpdate') : Infinity

  const serials = new SerialIndexBuilder(der)
  const revoked = tbs.optional(SEQUENCE, 'the revoked certificates')
  if (revoked !== null) {
    const list = tbs.into(revoked)
    for (let n = 1; !list.done; n++) {
      const entry = list.into(list.read(SEQUENCE, 'a revoked certificate'))
      serials.add(entry.read(INTEGER, 'a revoked serial number'))
      skipTime(entry, 'a revocation date')
      if (!entry.done) {
        for (const ext of extensions(entry, 'the entry extensions')) {
          if (ext.id === EXT_CERTIFICATE_ISSUER) fail('indirect CRLs are not supported')
          if (ext.critical) fail('an entry has an unsupported critical extension')
        }
      }
      entry.finish('a revoked certificate')
      if (n % ENTRIES_PER_STEP === 0) yield
    }
  }
  const crlExtensions = tbs.optional(CONTEXT_0, 'the CRL extensions')
  let userOnly = false
  if (crlExtensions !== null) {
    const wrapper = tbs.into(crlExtensions)
    for (const ext of extensions(wrapper, 'the CRL extensions')) {
      if (ext.id === EXT_DELTA_CRL_INDICATOR) fail('delta CRLs are not supported')
      if (ext.id === EXT_ISSUING_DISTRIBUTION_POINT) userOnly = checkDistributionPoint(ext.value)
      else if (ext.critical) fail('the CRL has an unsupported critical extension')
    }
    wrapper.finish('the CRL extensions')
  }
  tbs.finish('the CRL content')

  return new Crl(
    der.toString('latin1', issuer.start, issuer.end),
    names,
    thisUpdate,
    nextUpdate,
    yield * serials.build(),
    der.subarray(tbsTlv.start, tbsTlv.end),
    algorithm,
    der.subarray(signatureTlv.contentStart + 1, signatureTlv.end),
    userOnly
  )
}

const PEM_BEGIN = '-----BEGIN '
const PEM_END = '-----END X509 CRL-----'
// Base64 text read per step; decoded pieces are joined by copies of this many bytes a step.
const PEM_STEP_CHARS = 1 << 20
const WHITESPACE = /\s+/g
const BASE64_RUN = /^[A-Za-z0-9+/]*(=*)$/
const PADDING_RUN = /^=*$/

/** PEM text, from a string or from the bytes of a Buffer (read as Latin-1 piece by piece, never whole). */
interface Text {
  readonly length: number
  indexOf: (search: string, from: number) => number
  /** Where `search` starts in [from, to), or -1: a bounded search, so a step never scans the whole text. */
  find: (search: string, from: number, to: number) => number
  slice: (start: number, end: number) => string
}

function textOf (input: string | Buffer): Text {
  if (typeof input === 'string') {
    return {
      length: input.length,
      indexOf: (search, from) => input.indexOf(search, from),
      find: (search, from, to) => {
        const at = input.slice(from, to + search.length - 1).indexOf(search)
        return at === -1 ? -1 : from + at
      },
      slice: (start, end) => input.slice(start, end)
    }
  }
  return {
    length: input.length,
    indexOf: (search, from) => input.indexOf(search, from, 'latin1'),
    find: (search, from, to) => {
      const at = input.subarray(from, to + search.length - 1).indexOf(search, 0, 'latin1')
      return at === -1 ? -1 : from + at
    },
    slice: (start, end) => input.toString('latin1', start, end)
  }
}

function * pemBlocks (text: Text): Steps<Buffer[]> {
  const blocks: Buffer[] = []
  let pos = 0
  for (;;) {
    const begin = text.indexOf(PEM_BEGIN, pos)
    if (begin === -1) break
    const labelEnd = text.indexOf('-----', begin + PEM_BEGIN.length)
    // Naming the other label would echo the input; that it is not a CRL is enough to fix the mistake.
    if (labelEnd === -1 || text.slice(begin + PEM_BEGIN.length, labelEnd) !== 'X509 CRL') fail('a PEM block is not an X509 CRL')
    const body = yield * base64Body(text, labelEnd + 5)
    blocks.push(body.bytes)
    pos = body.end + PEM_END.length
  }
  if (blocks.length === 0) fail('no X509 CRL PEM block found')
  return blocks
}

/**
 * The bytes of a PEM body from `start` to its END line: whitespace anywhere, then base64 with at most
 * two `=` at the very end and a length that is a multiple of 4, else the block is refused. Read a
 * megabyte of text per step.
 */
function * base64Body (text: Text, start: number): Steps<{ bytes: Buffer, end: number }> {
  const pieces: Buffer[] = []
  let pending = ''
  let digits = 0
  let padding = 0
  let valid = true
  for (let at = start; at < text.length; at += PEM_STEP_CHARS) {
    const to = Math.min(text.length, at + PEM_STEP_CHARS)
    const end = text.find(PEM_END, at, to)
    if (valid) {
      const piece = text.slice(at, end === -1 ? to : end).replace(WHITESPACE, '')
      if (padding > 0) {
        valid = PADDING_RUN.test(piece)
        padding += piece.length
      } else {
        const run = BASE64_RUN.exec(piece)
        valid = run !== null
        padding = run === null ? 0 : run[1].length
      }
      valid &&= padding <= 2
      digits += piece.length
      const quads = pending + piece
      const whole = quads.length - (quads.length % 4)
      if (valid) pieces.push(Buffer.from(quads.slice(0, whole), 'base64'))
      pending = quads.slice(whole)
    }
    // An END line missing is reported before bad base64, whichever comes first in the text.
    if (end !== -1) {
      if (!valid || digits % 4 !== 0) fail('a PEM block is not valid base64')
      return { bytes: pieces.length === 1 ? pieces[0] : yield * joined(pieces), end }
    }
    yield
  }
  return fail('a PEM block has no END X509 CRL line')
}

function * joined (pieces: readonly Buffer[]): Steps<Buffer> {
  const out = Buffer.allocUnsafe(pieces.reduce((sum, piece) => sum + piece.length, 0))
  let at = 0
  for (const piece of pieces) {
    out.set(piece, at)
    at += piece.length
    yield
  }
  return out
}

type CrlInput = string | Buffer | Uint8Array

function isCrlInput (value: unknown): value is CrlInput {
  return typeof value === 'string' || value instanceof Uint8Array
}

interface Source {
  readonly input: CrlInput
  readonly path: string
}

/** The inputs and the option path each is reported under; throws at once for a value of the wrong type. */
function sourcesOf (input: unknown, optionPath: string): Source[] {
  if (Array.isArray(input)) {
    return input.map((item: unknown, i) => {
      if (!isCrlInput(item)) throw new ClientCertInvalidOptionError(`${optionPath}[${i}]`, 'must be PEM text or a DER Buffer')
      return { input: item, path: `${optionPath}[${i}]` }
    })
  }
  if (!isCrlInput(input)) throw new ClientCertInvalidOptionError(optionPath, 'must be PEM text, a DER Buffer, or an array of them')
  return [{ input, path: optionPath }]
}

// Bytes copied per step.
const COPY_STEP_BYTES = 1 << 20

function * copyOf (input: Uint8Array): Steps<Buffer> {
  const copy = Buffer.allocUnsafe(input.length)
  for (let at = 0; at < input.length; at += COPY_STEP_BYTES) {
    copy.set(input.subarray(at, at + COPY_STEP_BYTES), at)
    yield
  }
  return copy
}

function * parseSources (sources: readonly Source[]): Steps<Crl[]> {
  const crls: Crl[] = []
  for (const { input, path } of sources) {
    try {
      // DER starts with a SEQUENCE tag; anything else in a Buffer is read as PEM text. A DER input is
      // copied: the list must not change when the caller reuses its Buffer.
      const ders = typeof input !== 'string' && input[0] === SEQUENCE
        ? [yield * copyOf(input)]
        : yield * pemBlocks(textOf(typeof input === 'string' ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength)))
      for (let i = 0; i < ders.length; i++) {
        try {
          crls.push(yield * parseCrl(ders[i]))
        } catch (err) {
          throw new CertificateParseError(ders.length > 1 ? `CRL #${i + 1}: ${(err as Error).message}` : (err as Error).message)
        }
      }
    } catch (err) {
      throw new ClientCertInvalidOptionError(path, (err as Error).message, { cause: err })
    }
  }
  return crls
}

/** CRLs that share an issuer name, and those of them that count under the list's trust. */
interface Group {
  readonly exact: string
  readonly all: Crl[]
  counting: Crl[]
}

// A certificate's subject keys, read once per certificate object.
const subjectKeys = new WeakMap<X509Certificate, string | null>()

function subjectKeyOf (certificate: X509Certificate): string | null {
  let key = subjectKeys.get(certificate)
  if (key === undefined) {
    try {
      key = nameKeys(...certificateName(certificate.raw, 'subject')).exact
    } catch {
      key = null
    }
    subjectKeys.set(certificate, key)
  }
  return key
}

/** The issuer or subject Name of a DER certificate, with a cursor to read it. */
function certificateName (raw: Buffer, which: 'issuer' | 'subject'): [Cursor, Tlv] {
  const top = new Cursor(raw, 0, raw.length)
  const cert = top.into(top.read(SEQUENCE, 'the certificate'))
  const tbs = cert.into(cert.read(SEQUENCE, 'the certificate content'))
  tbs.optional(CONTEXT_0, 'the certificate version')
  tbs.read(INTEGER, 'the certificate serial number')
  tbs.read(SEQUENCE, 'the certificate signature algorithm')
  const issuer = tbs.read(SEQUENCE, 'the certificate issuer')
  if (which === 'issuer') return [tbs, issuer]
  tbs.read(SEQUENCE, 'the certificate validity')
  return [tbs, tbs.read(SEQUENCE, 'the certificate subject')]
}

/** The trusted certificates that bear the name each group of CRLs is issued under. */
function signersByName (trust: readonly X509Certificate[]): Map<string, X509Certificate[]> {
  const byName = new Map<string, X509Certificate[]>()
  for (const certificate of trust) {
    const key = subjectKeyOf(certificate)
    if (key === null) continue
    const list = byName.get(key)
    if (list === undefined) byName.set(key, [certificate])
    else list.push(certificate)
  }
  return byName
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g

/**
 * The certificates in a TLS `ca` option as Node keeps it on the server (PEM text or DER, one or a list),
 * for the trust CRL signatures are checked with. Node parsed them already to build its context; anything
 * unreadable here is left out, never guessed at.
 */
export function certificatesOf (ca: unknown): X509Certificate[] {
  const certificates: X509Certificate[] = []
  for (const item of Array.isArray(ca) ? ca : [ca]) {
    if (typeof item !== 'string' && !(item instanceof Uint8Array)) continue
    const text = typeof item === 'string' ? item : Buffer.from(item).toString('latin1')
    const blocks = text.includes('-----BEGIN') ? text.match(PEM_CERTIFICATE) ?? [] : [item]
    for (const block of blocks) {
      try {
        certificates.push(new X509Certificate(block))
      } catch {}
    }
  }
  return certificates
}

/** Loads over this many bytes are sliced (and `reload()` then completes later); below, all is done at once. */
export const SYNC_LOAD_BYTES = 512 * 1024

/**
 * The loaded CRLs, indexed by issuer name, bound to the configured trust (`proxy.ca`, the server's `ca`):
 * immutable, built once per registration or `reload`.
 *
 * Trust decides whose signature counts, never what a client sent: a CRL counts when a trusted certificate
 * bearing its issuer's name has signed it, or when no trusted certificate bears that name (an intermediate
 * CA the configuration does not list; the CRL is then trusted as configured, like `ca`). When no CRL of an
 * issuer counts, its certificates get `CRL_SIGNATURE_FAILURE`. Every signature is checked once, at load,
 * per trusted certificate; a request never hashes a CRL.
 *
 * `check` costs a walk to the issuer in `cert.raw`, a map lookup and a hash probe per CRL of the issuer.
 */
export class RevocationList {
  /** How many CRLs. */
  readonly size: number
  /** Their DER size in bytes, summed. */
  readonly bytes: number
  /** The configured trust the list was bound with: the anchors a direct TLS path is rebuilt up to. */
  readonly anchors: readonly X509Certificate[]
  /** When the whole list has expired: the latest `nextUpdate` of its CRLs (`Infinity` when one has none). */
  readonly nextUpdate: number
  readonly #crls: readonly Crl[]
  readonly #byIssuerDer = new Map<string, Group>()
  readonly #byIssuerKey = new Map<string, Group>()
  readonly #byLooseKey = new Map<string, Group[]>()
  /** Per issuer that a trusted certificate of its name signed a CRL of: the latest such CRL's thisUpdate. */
  readonly #signedAt = new Map<string, number>()

  private constructor (crls: readonly Crl[], trust: readonly X509Certificate[]) {
    this.size = crls.length
    this.#crls = crls
    this.anchors = Object.freeze([...trust])
    let bytes = 0
    let nextUpdate = -Infinity
    for (const crl of crls) {
      bytes += crl.tbs.length + crl.signature.length
      nextUpdate = Math.max(nextUpdate, crl.nextUpdate)
      let group = this.#byIssuerKey.get(crl.names.exact)
      if (group === undefined) {
        group = { exact: crl.names.exact, all: [], counting: [] }
        this.#byIssuerKey.set(crl.names.exact, group)
        const loose = this.#byLooseKey.get(crl.names.loose)
        if (loose === undefined) this.#byLooseKey.set(crl.names.loose, [group])
        else loose.push(group)
      }
      group.all.push(crl)
      this.#byIssuerDer.set(crl.issuerDer, group)
    }
    this.bytes = bytes
    this.nextUpdate = nextUpdate
    const signers = signersByName(trust)
    for (const group of this.#byIssuerKey.values()) {
      const named = signers.get(group.exact)
      // The signatures were checked before: `bind` and `bindLater` do it.
      group.counting = named === undefined ? group.all : group.all.filter((crl) => named.some((signer) => crl.verdict(signer) === true))
      if (named !== undefined && group.counting.length > 0) this.#signedAt.set(group.exact, Math.max(...group.counting.map((crl) => crl.thisUpdate)))
    }
    Object.freeze(this)
  }

  /**
   * Reads PEM text (any number of `X509 CRL` blocks; text around them is ignored) or a DER Buffer, or
   * an array of them, and binds them to `trust`, all at once. Throws `ClientCertInvalidOptionError` naming
   * `optionPath` (`crl`, or `crl[1]` for an array element) for anything that is not a complete, well-formed,
   * supported CRL.
   */
  static from (input: CrlInput | ReadonlyArray<CrlInput>, optionPath: string, trust: readonly X509Certificate[] = []): RevocationList {
    return RevocationList.#bindNow(runToEnd(parseSources(sourcesOf(input, optionPath))), trust)
  }

  /**
   * As `from`, for CRLs of any size: parsed, and signed content hashed, in slices of a few milliseconds
   * between which the event loop runs. Throws at once for an input of the wrong type; rejects for a
   * malformed CRL.
   */
  static load (input: CrlInput | ReadonlyArray<CrlInput>, optionPath: string, trust: readonly X509Certificate[] = []): Promise<RevocationList> {
    const sources = sourcesOf(input, optionPath)
    return runSliced(parseSources(sources)).then(async (crls) => await RevocationList.#bindLater(crls, trust))
  }

  /** The DER or PEM size of an input, to choose between `from` and `load`; 0 for the wrong type. */
  static inputBytes (input: unknown): number {
    if (Array.isArray(input)) return input.reduce((sum: number, item: unknown) => sum + RevocationList.inputBytes(item), 0)
    return isCrlInput(input) ? input.length : 0
  }

  /** The same CRLs under another trust, signatures checked now. */
  bind (trust: readonly X509Certificate[]): RevocationList {
    return RevocationList.#bindNow(this.#crls, trust)
  }

  /** The same CRLs under another trust, signatures checked in slices. */
  async bindLater (trust: readonly X509Certificate[]): Promise<RevocationList> {
    return await RevocationList.#bindLater(this.#crls, trust)
  }

  static #bindNow (crls: readonly Crl[], trust: readonly X509Certificate[]): RevocationList {
    runToEnd(checkSignatures(crls, trust))
    return new RevocationList(crls, trust)
  }

  static async #bindLater (crls: readonly Crl[], trust: readonly X509Certificate[]): Promise<RevocationList> {
    await runSliced(checkSignatures(crls, trust))
    return new RevocationList(crls, trust)
  }

  /**
   * The revocation status of `cert` at `now` (milliseconds). `issuer`, when given, replaces the list's
   * trust for this check: only CRLs signed by its key count (checked once per issuer, remembered for a
   * few). Never throws: a certificate whose issuer name cannot be read while CRLs are loaded fails closed
   * with `UNABLE_TO_GET_CRL`.
   */
  check (cert: X509Certificate, issuer?: X509Certificate | null, now: number = Date.now()): RevocationCheck {
    return this.#check(cert, issuer ?? null, now, false)
  }

  /**
   * The revocation status of a certification path at `now`: `path[0]` the leaf, then each certificate's
   * issuer (as `certificationPath` in lib/policy/verdict.ts rebuilds it), every one checked against the CRLs
   * of its own issuer, as OpenSSL's crl_check_all does. The first failure, leaf first, decides: a revoked
   * intermediate CA gives its leaves `CERT_REVOKED`. Opt-in per issuer as `check`; the CAs of the path (every
   * certificate but the first) skip CRLs that cover end-entity certificates only.
   */
  checkPath (path: readonly X509Certificate[], now: number = Date.now()): RevocationCheck {
    for (let i = 0; i < path.length; i++) {
      const status = this.#check(path[i], null, now, i > 0)
      if (status.error !== null) return status
    }
    return OK
  }

  /**
   * As `check` with an issuer, for a list that may hold other issuers' CRLs (one downloaded from a distribution
   * point): `null` when no CRL of the list names `cert`'s issuer, so that "not covered" is told from "not revoked".
   */
  checkBy (cert: X509Certificate, issuer: X509Certificate, now: number = Date.now()): RevocationCheck | null {
    const status = this.#check(cert, issuer, now, false, NOT_COVERED)
    return status === NOT_COVERED ? null : status
  }

  /**
   * Whether this list, downloaded again from where `previous` came, steps back: for an issuer whose CRL in
   * `previous` a trusted certificate of that name signed, it holds no such CRL, or only older ones (thisUpdate).
   * Whoever is on the path to a CRL host can serve an older CRL that is still current, or another issuer's: neither
   * may undo a revocation already seen.
   */
  stepsBack (previous: RevocationList): boolean {
    for (const [issuer, signedAt] of previous.#signedAt) {
      if (!((this.#signedAt.get(issuer) ?? -Infinity) >= signedAt)) return true
    }
    return false
  }

  /** Whether a CRL of the list names `issuer` and was signed by its key, which may sign CRLs (bound with it as trust). */
  counts (issuer: X509Certificate): boolean {
    // A subject that does not read has no key (null), under which nothing is found.
    const group = this.#byIssuerKey.get(subjectKeyOf(issuer) as string)
    return group !== undefined && group.all.some((crl) => crl.verdict(issuer) === true)
  }

  /** `uncovered`: the answer when no CRL names the certificate's issuer (opt-in per issuer: not checked). */
  #check (cert: X509Certificate, issuer: X509Certificate | null, now: number, ca: boolean, uncovered = OK): RevocationCheck {
    if (this.size === 0) return OK
    let group: Group | undefined
    try {
      group = this.#groupOf(cert.raw)
    } catch {
      return UNKNOWN
    }
    if (group === undefined) return uncovered
    let crls = issuer === null ? group.counting : group.all.filter((crl) => runToEnd(crl.signedBy(issuer, true)))
    if (ca) {
      // A CA is out of the scope of an end-entity-only CRL: when its issuer has no other, it is not checked.
      if (group.all.every((crl) => crl.userOnly)) return OK
      crls = crls.filter((crl) => !crl.userOnly)
    }
    return statusOf(crls, cert.serialNumber, now)
  }

  /**
   * The status of a certificate known only by its issuer's name (RDNs as lib/codecs/dn.ts reads them) and
   * serial (hex), as a proxy that forwards names alone gives them. Fails closed (`UNABLE_TO_GET_CRL`)
   * while CRLs are loaded when the issuer is unknown, when a CRL of that issuer is loaded but the serial
   * is unknown, or when the name could belong to two issuers whose CRLs are loaded (their names differ
   * only in a string type the text cannot show).
   */
  checkNames (issuer: ReadonlyArray<ReadonlyArray<NameAttribute>> | null, serial: string | null, now: number = Date.now()): RevocationCheck {
    if (this.size === 0) return OK
    if (issuer === null) return UNKNOWN
    let groups: Group[] | undefined
    try {
      groups = this.#byLooseKey.get(looseKeyOf(issuer))
    } catch {
      return UNKNOWN
    }
    if (groups === undefined) return OK
    if (groups.length > 1 || serial === null) return UNKNOWN
    return statusOf(groups[0].counting, serial, now)
  }

  #groupOf (raw: Buffer): Group | undefined {
    const [tbs, issuer] = certificateName(raw, 'issuer')
    // Issuers almost always copy their name byte for byte: that lookup spares the canonical form.
    return this.#byIssuerDer.get(raw.toString('latin1', issuer.start, issuer.end)) ??
      this.#byIssuerKey.get(nameKeys(tbs, issuer).exact)
  }
}

const SERIAL_HEX = /^-?[0-9A-Fa-f]+$/

function statusOf (crls: readonly Crl[], serial: string, now: number): RevocationCheck {
  if (crls.length === 0) return BAD_SIGNATURE
  // Node prints hex; a forwarded serial is normalized to hex: anything else cannot be looked up.
  if (!SERIAL_HEX.test(serial)) return UNKNOWN
  let current = false
  for (const crl of crls) {
    if (crl.serials.has(serial)) return REVOKED
    if (now <= crl.nextUpdate) current = true
  }
  return current ? OK : EXPIRED
}

/** The signature of each CRL by each trusted certificate bearing its issuer's name: the ones that matter. */
function * checkSignatures (crls: readonly Crl[], trust: readonly X509Certificate[]): Steps<void> {
  const signers = signersByName(trust)
  for (const crl of crls) {
    for (const signer of signers.get(crl.names.exact) ?? []) yield * crl.signedBy(signer)
  }
}
