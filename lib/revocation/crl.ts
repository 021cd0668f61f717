// Stage 2b, revocation: certificate revocation lists loaded by the operator and checked per issuer.
import { constants, verify, type KeyObject, type X509Certificate } from 'node:crypto'
import { ClientCertInvalidOptionError } from '../errors.js'
import { CertificateParseError } from '../codecs/parse-error.js'
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
  Tlv,
  UTC_TIME,
  decodeString,
  fail,
  readTime,
  serialHex
} from '../codecs/der.js'

/**
 * Certificate revocation lists (RFC 5280 §5), read with a small strict DER reader for exactly the
 * `CertificateList` structure. Node has no CRL API; the ASN.1 libraries of the field weigh several
 * packages and tens of milliseconds of load time, and the one we measured accepts trailing bytes.
 *
 * Semantics, decided here and documented in the README:
 * - CRLs are opt-in per issuer: a certificate whose issuer has no loaded CRL is not checked.
 * - Issuer names are compared as OpenSSL does (`X509_NAME_cmp`): the attribute types, then string
 *   values with case folded (ASCII), surrounding whitespace trimmed and inner runs collapsed, so a
 *   CRL applies to exactly the certificates OpenSSL's own CRL check would apply it to.
 * - Several CRLs may share an issuer (an overlap after rotation, a key rollover): a certificate listed
 *   in any of them is revoked; the issuer's lists count as expired only when every one has expired.
 * - A listed certificate is `CERT_REVOKED` even when its CRL has expired: revocation is permanent.
 * - `thisUpdate` in the future is not an error: clock skew right after a reload must not lock
 *   everybody out, and the list's content is no less true. A CRL without `nextUpdate` never expires.
 * - With the issuer's certificate, only CRLs whose signature verifies with its key are used; when
 *   none does, `CRL_SIGNATURE_FAILURE`. Without it (proxy mode without `proxy.ca`), the CRLs are
 *   trusted as configured: they come from the operator's files, the same trust as `ca`.
 * - CRLs whose scope this reader cannot honour are refused at load, never half-applied: delta CRLs,
 *   indirect CRLs (an entry's certificate issuer), issuing distribution points limited to CA or
 *   attribute certificates or to some reasons, and any other critical extension.
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

/**
 * A Name as a string key that is equal for two names exactly when OpenSSL's X509_NAME_cmp finds them
 * equal: its canonical encoding folds ASCII case and whitespace in string values, keeps other values
 * as their DER, and keeps multi-valued RDNs together, sorted.
 */
function nameKey (c: Cursor, name: Tlv): string {
  const rdns: string[][] = []
  const seq = c.into(name)
  while (!seq.done) {
    const set = seq.into(seq.read(SET, 'a name component'))
    const avas: string[] = []
    while (!set.done) {
      const ava = set.into(set.read(SEQUENCE, 'a name attribute'))
      const type = ava.hex(ava.read(OID, 'a name attribute type'))
      const valueTlv = ava.any('a name attribute value')
      ava.finish('a name attribute')
      const text = decodeString(ava.buf, valueTlv)
      const value = text === null
        ? 'x' + ava.buf.toString('hex', valueTlv.start, valueTlv.end)
        : 's' + text.replace(SPACES, ' ').replace(/^ | $/g, '').replace(ASCII_UPPER, (ch) => ch.toLowerCase())
      avas.push(type + ':' + value)
    }
    if (avas.length === 0) fail('a name component is empty')
    rdns.push(avas.sort())
  }
  return JSON.stringify(rdns)
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
 * An issuing distribution point only narrows a CRL's scope. Pointing at a distribution point, or
 * covering end-entity certificates only, is harmless for the leaf certificates checked here; any
 * other limit (CA or attribute certificates only, some reasons only, indirect) is refused.
 */
function checkDistributionPoint (value: Cursor): void {
  const idp = value.into(value.read(SEQUENCE, 'the issuing distribution point'))
  value.finish('the issuing distribution point')
  idp.optional(CONTEXT_0, 'the distribution point name')
  idp.optional(0x81, 'the only-user-certificates flag')
  if (!idp.done) fail('the CRL covers only some certificates or reasons (issuing distribution point)')
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

class Crl {
  readonly #verdicts = new Map<string, boolean>()

  constructor (
    readonly issuerDer: string,
    readonly issuerKey: string,
    readonly nextUpdate: number,
    readonly serials: ReadonlySet<string>,
    readonly tbs: Buffer,
    readonly algorithm: SignatureAlgorithm,
    readonly signature: Buffer
  ) {}

  signedBy (issuer: X509Certificate): boolean {
    const id = issuer.fingerprint256
    let ok = this.#verdicts.get(id)
    if (ok === undefined) {
      ok = verifySignature(this, issuer.publicKey)
      if (this.#verdicts.size < VERIFIED_MAX) this.#verdicts.set(id, ok)
    }
    return ok
  }
}

function verifySignature (crl: Crl, key: KeyObject): boolean {
  const { hash, saltLength } = crl.algorithm
  const keyInput = saltLength === undefined ? key : { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }
  try {
    return verify(hash, crl.tbs, keyInput, crl.signature)
  } catch {
    // A key of another type than the algorithm (an EC key for an RSA signature) throws: not signed by it.
    return false
  }
}

function parseCrl (der: Buffer): Crl {
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
  const issuerKey = nameKey(tbs, issuer)
  readTime(tbs, 'thisUpdate')
  const next = tbs.peek()
  const nextUpdate = next === UTC_TIME || next === GENERALIZED_TIME ? readTime(tbs, 'nextUpdate') : Infinity

  const serials = new Set<string>()
  const revoked = tbs.optional(SEQUENCE, 'the revoked certificates')
  if (revoked !== null) {
    const list = tbs.into(revoked)
    while (!list.done) {
      const entry = list.into(list.read(SEQUENCE, 'a revoked certificate'))
      serials.add(serialHex(der, entry.read(INTEGER, 'a revoked serial number')))
      readTime(entry, 'a revocation date')
      if (!entry.done) {
        for (const ext of extensions(entry, 'the entry extensions')) {
          if (ext.id === EXT_CERTIFICATE_ISSUER) fail('indirect CRLs are not supported')
          if (ext.critical) fail('an entry has an unsupported critical extension')
        }
      }
      entry.finish('a revoked certificate')
    }
  }
  const crlExtensions = tbs.optional(CONTEXT_0, 'the CRL extensions')
  if (crlExtensions !== null) {
    const wrapper = tbs.into(crlExtensions)
    for (const ext of extensions(wrapper, 'the CRL extensions')) {
      if (ext.id === EXT_DELTA_CRL_INDICATOR) fail('delta CRLs are not supported')
      if (ext.id === EXT_ISSUING_DISTRIBUTION_POINT) checkDistributionPoint(ext.value)
      else if (ext.critical) fail('the CRL has an unsupported critical extension')
    }
    wrapper.finish('the CRL extensions')
  }
  tbs.finish('the CRL content')

  return new Crl(
    der.toString('latin1', issuer.start, issuer.end),
    issuerKey,
    nextUpdate,
    serials,
    der.subarray(tbsTlv.start, tbsTlv.end),
    algorithm,
    der.subarray(signatureTlv.contentStart + 1, signatureTlv.end)
  )
}

const PEM_BEGIN = '-----BEGIN '
const PEM_END = '-----END X509 CRL-----'

function pemBlocks (text: string): Buffer[] {
  const blocks: Buffer[] = []
  let pos = 0
  for (;;) {
    const begin = text.indexOf(PEM_BEGIN, pos)
    if (begin === -1) break
    const labelEnd = text.indexOf('-----', begin + PEM_BEGIN.length)
    // Naming the other label would echo the input; that it is not a CRL is enough to fix the mistake.
    if (labelEnd === -1 || text.slice(begin + PEM_BEGIN.length, labelEnd) !== 'X509 CRL') fail('a PEM block is not an X509 CRL')
    const bodyStart = labelEnd + 5
    const end = text.indexOf(PEM_END, bodyStart)
    if (end === -1) fail('a PEM block has no END X509 CRL line')
    const body = text.slice(bodyStart, end).replace(/\s+/g, '')
    if (body.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(body)) fail('a PEM block is not valid base64')
    blocks.push(Buffer.from(body, 'base64'))
    pos = end + PEM_END.length
  }
  if (blocks.length === 0) fail('no X509 CRL PEM block found')
  return blocks
}

type CrlInput = string | Buffer | Uint8Array

function parseInput (input: CrlInput, path: string, into: Crl[]): void {
  try {
    // A copy: the list must not change when the caller reuses its Buffer.
    const bytes = typeof input === 'string' ? null : Buffer.from(input)
    // DER starts with a SEQUENCE tag; anything else in a Buffer is read as PEM text.
    const ders = bytes !== null && bytes[0] === SEQUENCE ? [bytes] : pemBlocks(bytes === null ? input as string : bytes.toString('latin1'))
    for (let i = 0; i < ders.length; i++) {
      try {
        into.push(parseCrl(ders[i]))
      } catch (err) {
        throw new CertificateParseError(ders.length > 1 ? `CRL #${i + 1}: ${(err as Error).message}` : (err as Error).message)
      }
    }
  } catch (err) {
    throw new ClientCertInvalidOptionError(path, (err as Error).message, { cause: err })
  }
}

function isCrlInput (value: unknown): value is CrlInput {
  return typeof value === 'string' || value instanceof Uint8Array
}

/**
 * The loaded CRLs, indexed by issuer name; immutable, built once per registration or `reload`.
 * `check` costs a walk to the issuer in `cert.raw` and a few map and set lookups; the signature of a
 * CRL is verified once per issuer certificate and remembered.
 */
export class RevocationList {
  readonly size: number
  readonly #byIssuerDer = new Map<string, Crl[]>()
  readonly #byIssuerKey = new Map<string, Crl[]>()

  private constructor (crls: readonly Crl[]) {
    this.size = crls.length
    for (const crl of crls) {
      const group = this.#byIssuerKey.get(crl.issuerKey)
      if (group === undefined) this.#byIssuerKey.set(crl.issuerKey, [crl])
      else group.push(crl)
    }
    for (const crl of crls) this.#byIssuerDer.set(crl.issuerDer, this.#byIssuerKey.get(crl.issuerKey) as Crl[])
    Object.freeze(this)
  }

  /**
   * Reads PEM text (any number of `X509 CRL` blocks; text around them is ignored) or a DER Buffer, or
   * an array of them. Throws `ClientCertInvalidOptionError` naming `optionPath` (`crl`, or `crl[1]`
   * for an array element) for anything that is not a complete, well-formed, supported CRL.
   */
  static from (input: CrlInput | ReadonlyArray<CrlInput>, optionPath: string): RevocationList {
    const crls: Crl[] = []
    if (Array.isArray(input)) {
      input.forEach((item: unknown, i) => {
        if (!isCrlInput(item)) throw new ClientCertInvalidOptionError(`${optionPath}[${i}]`, 'must be PEM text or a DER Buffer')
        parseInput(item, `${optionPath}[${i}]`, crls)
      })
    } else if (isCrlInput(input)) {
      parseInput(input, optionPath, crls)
    } else {
      throw new ClientCertInvalidOptionError(optionPath, 'must be PEM text, a DER Buffer, or an array of them')
    }
    return new RevocationList(crls)
  }

  /**
   * The revocation status of `cert` at `now` (milliseconds). `issuer` is the certificate of its
   * issuer when known: then only CRLs signed by its key count. Never throws: a certificate whose
   * issuer name cannot be read while CRLs are loaded fails closed with `UNABLE_TO_GET_CRL`.
   */
  check (cert: X509Certificate, issuer?: X509Certificate | null, now: number = Date.now()): RevocationCheck {
    if (this.size === 0) return OK
    let crls: Crl[] | undefined
    try {
      crls = this.#crlsFor(cert.raw)
    } catch {
      return UNKNOWN
    }
    if (crls === undefined) return OK
    const serial = cert.serialNumber
    let trusted = false
    let current = false
    for (const crl of crls) {
      if (issuer != null && !crl.signedBy(issuer)) continue
      if (crl.serials.has(serial)) return REVOKED
      trusted = true
      if (now <= crl.nextUpdate) current = true
    }
    if (!trusted) return BAD_SIGNATURE
    return current ? OK : EXPIRED
  }

  #crlsFor (raw: Buffer): Crl[] | undefined {
    const top = new Cursor(raw, 0, raw.length)
    const cert = top.into(top.read(SEQUENCE, 'the certificate'))
    const tbs = cert.into(cert.read(SEQUENCE, 'the certificate content'))
    tbs.optional(CONTEXT_0, 'the certificate version')
    tbs.read(INTEGER, 'the certificate serial number')
    tbs.read(SEQUENCE, 'the certificate signature algorithm')
    const issuer = tbs.read(SEQUENCE, 'the certificate issuer')
    // Issuers almost always copy their name byte for byte: that lookup spares the canonical form.
    return this.#byIssuerDer.get(raw.toString('latin1', issuer.start, issuer.end)) ??
      this.#byIssuerKey.get(nameKey(tbs, issuer))
  }
}
