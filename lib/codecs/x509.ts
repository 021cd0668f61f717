import * as nodeCrypto from 'node:crypto'
import { createHash, X509Certificate } from 'node:crypto'
import { BIT_STRING, BOOLEAN, CONTEXT_0, Cursor, fail, INTEGER, OCTET_STRING, OID, readTime, SEQUENCE, serialHex, type Tlv } from './der.js'
import type { RDN } from './dn.js'
import { normalizeIP, type SubjectAltNames } from './san.js'
import { checkOid, readName } from './x509-names.js'

/**
 * One walk of a certificate's DER, shared by the identity (`readCertificate`) and the chain checker
 * (`lib/policy/chain.ts`): the top-level fields of the body located, the extensions listed. The walk is strict on
 * structure (X.690 DER lengths and tags, no trailing bytes inside the body) and leaves each field's content to
 * whoever reads it; a repeated extension is refused, since OpenSSL marks such a certificate invalid and which
 * of two values was meant cannot be told.
 */
export interface CertificateWalk {
  readonly der: Buffer
  /** after the body: the signature algorithm and value */
  readonly rest: Cursor
  readonly version: Tlv | null
  readonly serial: Tlv
  readonly signature: Tlv
  readonly issuer: Tlv
  readonly validity: Tlv
  readonly subject: Tlv
  readonly publicKey: Tlv
  readonly uniqueIds: readonly Tlv[]
  readonly extensions: readonly Extension[]
}

export interface Extension {
  /** hex of the OID's content */
  readonly id: string
  readonly critical: boolean
  /** the OCTET STRING's content */
  readonly value: Tlv
}

const ISSUER_UID = 0x81
const SUBJECT_UID = 0x82
const CONTEXT_3 = 0xa3

export function walkCertificate (der: Buffer): CertificateWalk {
  const top = new Cursor(der, 0, der.length)
  const rest = top.into(top.read(SEQUENCE, 'the certificate'))
  const tbs = rest.into(rest.read(SEQUENCE, 'the certificate body'))
  const version = tbs.optional(CONTEXT_0, 'the version')
  const serial = tbs.any('the serial number')
  const signature = tbs.any('the signature algorithm')
  const issuer = tbs.any('the issuer')
  const validity = tbs.any('the validity')
  const subject = tbs.any('the subject')
  const publicKey = tbs.any('the public key')
  const uniqueIds: Tlv[] = []
  for (const tag of [ISSUER_UID, SUBJECT_UID]) {
    const id = tbs.optional(tag, 'a unique identifier')
    if (id !== null) uniqueIds.push(id)
  }
  const extensions: Extension[] = []
  const wrapped = tbs.optional(CONTEXT_3, 'the extensions')
  if (wrapped !== null) {
    const outer = tbs.into(wrapped)
    const list = outer.into(outer.read(SEQUENCE, 'the extensions'))
    outer.finish('the extensions')
    const seen = new Set<string>()
    while (!list.done) {
      const extension = list.into(list.read(SEQUENCE, 'an extension'))
      const oid = extension.read(OID, 'an extension ID')
      checkOid(der, oid)
      const id = extension.hex(oid)
      if (seen.has(id)) fail('an extension is repeated')
      seen.add(id)
      const flag = extension.optional(BOOLEAN, 'the critical flag')
      const critical = flag !== null && readBoolean(der, flag)
      const value = extension.read(OCTET_STRING, 'the extension value')
      extension.finish('an extension')
      extensions.push({ id, critical, value })
    }
  }
  tbs.finish('the certificate body')
  return { der, rest, version, serial, signature, issuer, validity, subject, publicKey, uniqueIds, extensions }
}

export function readBoolean (buf: Buffer, tlv: Tlv): boolean {
  if (tlv.end - tlv.contentStart !== 1) fail('a BOOLEAN is not one byte')
  return buf[tlv.contentStart] !== 0
}

/** What the identity reads of a certificate, every field as `X509Certificate` and the codecs give it. */
export interface ParsedCertificate {
  readonly walk: CertificateWalk
  readonly subject: RDN[]
  readonly issuer: RDN[]
  readonly serialNumber: string
  readonly notBefore: number
  readonly notAfter: number
  /**
   * The subject alternative names as the identity keeps them, or `null` when only Node's own text can give
   * them exactly (a kind of name the identity does not keep, a value Node would print escaped, an encoding this
   * reader does not take): the caller then reads them from `X509Certificate#subjectAltName`.
   */
  readonly san: SubjectAltNames | null
}

const SUBJECT_ALT_NAME = '551d11'

/**
 * Reads a DER certificate without OpenSSL. Refuses (CertificateParseError) whatever is not DER, and everything
 * OpenSSL's parser refuses, so a certificate it accepts is one `new X509Certificate()` accepts too; the
 * identity's times must be RFC 5280's forms (`YYMMDDHHMMSSZ`, `YYYYMMDDHHMMSSZ`), nothing looser.
 */
export function readCertificate (der: Buffer): ParsedCertificate {
  const walk = walkCertificate(der)
  const { rest } = walk
  // Outside the body OpenSSL writes the certificate anew (its `raw`, its fingerprint): only forms it writes back
  // byte for byte are taken, so the SHA-256 of these bytes is Node's fingerprint.
  readAlgorithm(rest)
  const signature = rest.read(BIT_STRING, 'the signature')
  if (signature.end - signature.contentStart < 1 || der[signature.contentStart] !== 0) fail('the signature is not whole bytes')
  rest.finish('the certificate')
  if (rest.end !== der.length) fail('the certificate has trailing data')

  if (walk.version !== null) {
    const version = new Cursor(der, walk.version.contentStart, walk.version.end)
    const value = version.read(INTEGER, 'the version')
    version.finish('the version')
    if (value.end - value.contentStart !== 1 || der[value.contentStart]! > 2) fail('the version is not 1, 2 or 3')
  }
  if (walk.serial.tag !== INTEGER) fail('the serial number is not an INTEGER')
  checkInteger(der, walk.serial)
  const serialNumber = serialHex(der, walk.serial)
  readAlgorithm(new Cursor(der, walk.signature.start, walk.signature.end))
  const issuer = issuerName(der, walk.issuer)
  if (walk.validity.tag !== SEQUENCE) fail('the validity is not a SEQUENCE')
  const validity = new Cursor(der, walk.validity.contentStart, walk.validity.end)
  const notBefore = readTime(validity, 'notBefore')
  const notAfter = readTime(validity, 'notAfter')
  validity.finish('the validity')
  const subject = readName(der, walk.subject)
  const key = new Cursor(der, walk.publicKey.contentStart, walk.publicKey.end)
  if (walk.publicKey.tag !== SEQUENCE) fail('the public key is not a SEQUENCE')
  readAlgorithm(key)
  checkBits(der, key.read(BIT_STRING, 'the public key bits'))
  key.finish('the public key')
  for (const id of walk.uniqueIds) checkBits(der, id)

  let san: SubjectAltNames | null = { dns: [], email: [], uri: [], ip: [] }
  for (const extension of walk.extensions) {
    if (extension.id === SUBJECT_ALT_NAME) san = readAltNames(der, extension.value)
  }
  return { walk, subject, issuer, serialNumber, notBefore, notAfter, san }
}

// Most certificates a server sees come from a handful of issuers: the last issuer name read is kept, its bytes and
// its RDNs (frozen, so every identity may share them), and the next certificate from it compares bytes instead.
let lastIssuer: { bytes: Buffer, rdns: RDN[] } | null = null

function issuerName (der: Buffer, tlv: Tlv): RDN[] {
  const last = lastIssuer
  if (last !== null && last.bytes.length === tlv.end - tlv.start && der.compare(last.bytes, 0, last.bytes.length, tlv.start, tlv.end) === 0) {
    return last.rdns
  }
  const rdns = freezeRDNs(readName(der, tlv))
  lastIssuer = { bytes: Buffer.from(der.subarray(tlv.start, tlv.end)), rdns }
  return rdns
}

/** Freezes a name in place, deeply; a name already frozen is returned as it is. */
export function freezeRDNs (rdns: RDN[]): RDN[] {
  if (Object.isFrozen(rdns)) return rdns
  for (const rdn of rdns) {
    for (const attribute of rdn) Object.freeze(attribute)
    Object.freeze(rdn)
  }
  return Object.freeze(rdns) as RDN[]
}

/**
 * An AlgorithmIdentifier: its OID, then no parameters, NULL, an OID (a named curve) or a SEQUENCE (RSA-PSS), the
 * forms OpenSSL keeps as they came. Anything else it would decode, and in the signature write back otherwise.
 */
function readAlgorithm (c: Cursor): void {
  const algorithm = c.into(c.read(SEQUENCE, 'an algorithm'))
  checkOid(c.buf, algorithm.read(OID, 'an algorithm ID'))
  if (!algorithm.done) {
    const parameters = algorithm.any('the algorithm parameters')
    if (parameters.tag === 0x05) {
      if (parameters.end !== parameters.contentStart) fail('a NULL is not empty')
    } else if (parameters.tag === OID) {
      checkOid(c.buf, parameters)
    } else if (parameters.tag !== SEQUENCE) {
      fail('the algorithm parameters have an unexpected type')
    }
  }
  algorithm.finish('an algorithm')
}

/** OpenSSL refuses an INTEGER that is empty or padded with a needless leading byte. */
function checkInteger (buf: Buffer, tlv: Tlv): void {
  const length = tlv.end - tlv.contentStart
  if (length === 0) fail('an INTEGER is empty')
  const first = buf[tlv.contentStart]!
  if (length > 1 && ((first === 0 && buf[tlv.contentStart + 1]! < 0x80) || (first === 0xff && buf[tlv.contentStart + 1]! >= 0x80))) {
    fail('an INTEGER is not minimal')
  }
}

/** A BIT STRING as DER has it: an unused-bit count below 8, zero when there are no bits, unused bits clear. */
function checkBits (buf: Buffer, tlv: Tlv): void {
  const length = tlv.end - tlv.contentStart
  const unused = length === 0 ? 8 : buf[tlv.contentStart]!
  if (unused > 7 || (length === 1 && unused !== 0) || (length > 1 && (buf[tlv.end - 1]! & ((1 << unused) - 1)) !== 0)) {
    fail('a BIT STRING is malformed')
  }
}

const DNS_NAME = 0x82
const RFC822_NAME = 0x81
const URI = 0x86
const IP_ADDRESS = 0x87

/**
 * GeneralNames of the kinds the identity keeps, when each value is one Node prints bare (printable ASCII without
 * `"` `\` `,` `'`), so the text `X509Certificate#subjectAltName` would give parses back to exactly these values.
 * Anything else is `null`: the caller asks Node.
 */
function readAltNames (buf: Buffer, value: Tlv): SubjectAltNames | null {
  try {
    return altNames(buf, value)
  } catch {
    // Not DER: OpenSSL may still read it, or not; either way Node's text decides.
    return null
  }
}

function altNames (buf: Buffer, value: Tlv): SubjectAltNames | null {
  const san: SubjectAltNames = { dns: [], email: [], uri: [], ip: [] }
  const outer = new Cursor(buf, value.contentStart, value.end)
  if (outer.peek() !== SEQUENCE) return null
  const names = outer.into(outer.any('the subject alternative names'))
  if (!outer.done || names.done) return null
  while (!names.done) {
    const name = names.any('a subject alternative name')
    const { contentStart: start, end } = name
    switch (name.tag) {
      case DNS_NAME:
      case RFC822_NAME:
      case URI: {
        for (let i = start; i < end; i++) {
          const c = buf[i]!
          if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x27 || c === 0x2c || c === 0x5c) return null
        }
        const text = buf.toString('latin1', start, end)
        ;(name.tag === DNS_NAME ? san.dns : name.tag === URI ? san.uri : san.email).push(text)
        break
      }
      case IP_ADDRESS:
        if (end - start === 4) {
          san.ip.push(`${buf[start]!}.${buf[start + 1]!}.${buf[start + 2]!}.${buf[start + 3]!}`)
        } else if (end - start === 16) {
          const groups: string[] = []
          for (let i = start; i < end; i += 2) groups.push(buf.readUInt16BE(i).toString(16))
          san.ip.push(normalizeIP(groups.join(':')))
        } else {
          return null
        }
        break
      default:
        return null
    }
  }
  // Cut to their length (a grown array keeps spare room in every cached identity); empty ones are already small.
  return { dns: san.dns.slice(), email: san.email.slice(), uri: san.uri.slice(), ip: san.ip.slice() }
}

/**
 * Node's certificate object for a certificate this reader accepted, built now: only what needs OpenSSL (a
 * signature, `identity.certificate`) asks for it. OpenSSL accepts every certificate the reader does; should it
 * not, this is a CertificateParseError, never an identity.
 */
export function x509Of (der: Buffer): X509Certificate {
  try {
    return new X509Certificate(der)
    /* c8 ignore next 3 - unreachable while the reader refuses all OpenSSL refuses, which the property tests check */
  } catch {
    return fail('not a valid X.509 certificate')
  }
}

/** The walk of a Node certificate (the chain checker's and the CRL locator's view of its extensions). */
export function walkOf (certificate: X509Certificate): CertificateWalk {
  return walkCertificate(certificate.raw)
}

// The one-shot digest (Node ≥ 20.12) allocates no Hash object, whose native handle costs more than the digest.
const oneShotHash = (nodeCrypto as { hash?: (algorithm: string, data: Buffer) => string }).hash
/* c8 ignore next - only Node 20 before 20.12 lacks crypto.hash; the tests run on a newer one */
const sha256Hex = oneShotHash === undefined ? (der: Buffer) => createHash('sha256').update(der).digest('hex') : (der: Buffer) => oneShotHash('sha256', der)

// Lower-case hex digit → upper case; every other code unchanged.
const UPPER = Uint8Array.from({ length: 128 }, (_, c) => c >= 0x61 && c <= 0x66 ? c - 0x20 : c)
const fingerprintText = Buffer.alloc(32 * 3 - 1, ':')

/**
 * As `X509Certificate#fingerprint256` prints it: SHA-256 of the DER, `AB:CD:…`. Written into bytes and read once:
 * a string joined piece by piece would keep its 63 pieces alive in every cached identity (1.6 KB instead of 0.1).
 */
export function fingerprint256Of (der: Buffer): string {
  const hex = sha256Hex(der)
  for (let i = 0; i < 32; i++) {
    fingerprintText[i * 3] = UPPER[hex.charCodeAt(2 * i)]!
    fingerprintText[i * 3 + 1] = UPPER[hex.charCodeAt(2 * i + 1)]!
  }
  return fingerprintText.toString('latin1')
}
