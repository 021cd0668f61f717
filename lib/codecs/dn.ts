// Pure codecs (no Fastify): DN, SAN, SPIFFE, fingerprint, header bytes, certificate encodings, XFCC and a strict DER reader.
/**
 * Distinguished-name codec: the strings proxies and Node render a certificate's subject and
 * issuer as, read into one structure, and written back in one canonical form.
 *
 * Every reader returns RDNs in RFC 4514 order (most specific first). The canonical form is what
 * `openssl x509 -nameopt RFC2253,-esc_msb` prints, so it equals Apache's SSL_CLIENT_S_DN and, for
 * ASCII names, nginx's $ssl_client_s_dn.
 *
 * Decisions where RFC 4514 / RFC 2253 leave room (each chosen so that a value can never be read
 * as more than one attribute):
 * - Unescaped `"`, `;`, `<`, `>` and NUL are refused. RFC 2253 also let `;` separate RDNs; a
 *   producer that forgot to escape it would then split a value into attributes, so it is refused.
 *   RFC 1779 quoted values (`CN="a,b"`) are refused for the same reason: no producer we read
 *   emits them, and every OpenSSL format escapes with backslashes instead.
 * - `=` and a `#` that does not lead are data, as RFC 4514 allows; so are raw control characters
 *   other than NUL (OpenSSL always escapes them, Go does not).
 * - Unescaped spaces around `,`, `+` and `=` are dropped (RFC 2253 section 4); escaped ones
 *   (`\ `, `\20`) are data.
 * - A value that is a lone `#` is the character `#`: OpenSSL prints it unescaped (its "last
 *   character" flag replaces the "first character" one), and RFC 4514 has no empty hexstring.
 */
import { attributeTypeByName, attributeTypeByOID } from './oids.js'
import type { AttributeType } from './oids.js'
import { CertificateParseError } from './parse-error.js'

/**
 * One attribute of a distinguished name: `type` is OpenSSL's short name (or the dotted OID). `value` is the
 * decoded text; for a value that is no character string (an RFC 4514 `#04…` OCTET STRING, a VideotexString or
 * GraphicString, which OpenSSL prints as their DER), it is `#` and the upper-case hex of that DER, and `der` is true.
 */
export interface DNAttribute {
  type: string
  oid: string
  value: string
  der?: true
}

/** A relative distinguished name: one attribute, or several for a multi-valued RDN. */
export type RDN = DNAttribute[]

type Name = readonly (readonly DNAttribute[])[]

/** Bounds the work an untrusted header can cause; real names are a few hundred characters. */
const MAX_INPUT_LENGTH = 64 * 1024
const MAX_ATTRIBUTES = 1024

const LF = 0x0a
const SPACE = 0x20
const QUOTE = 0x22
const HASH = 0x23
const PLUS = 0x2b
const COMMA = 0x2c
const DOT = 0x2e
const SLASH = 0x2f
const SEMICOLON = 0x3b
const LESS = 0x3c
const EQUALS = 0x3d
const GREATER = 0x3e
const BACKSLASH = 0x5c
const LOWER_X = 0x78

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function fail (reason: string): never {
  throw new CertificateParseError(`invalid distinguished name: ${reason}`)
}

function checkInput (input: unknown): asserts input is string {
  if (typeof input !== 'string') fail('not a string')
  if (input.length > MAX_INPUT_LENGTH) fail('too long')
}

/** Value of a hex digit, or -1. NaN (past the end) is not a digit. */
function hexValue (c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  const lower = c | 0x20
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x57
  return -1
}

function isTypeChar (c: number): boolean {
  const lower = c | 0x20
  return (lower >= 0x61 && lower <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === DOT
}

function isSurrogate (c: number): boolean {
  return c >= 0xd800 && c <= 0xdfff
}

/** A JavaScript string can hold what no UTF-8 name can: a lone surrogate. */
function checkSurrogatePair (text: string, pos: number): void {
  const c = text.charCodeAt(pos)
  const next = text.charCodeAt(pos + 1)
  if (c > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) fail('unpaired surrogate')
}

function skipSpaces (input: string, pos: number): number {
  while (input.charCodeAt(pos) === SPACE) pos++
  return pos
}

/** RFC 4514 numericoid, with the X.660 limits on the first two arcs; no leading zeros. */
function isOID (text: string): boolean {
  const n = text.length
  let arcs = 0
  let pos = 0
  for (;;) {
    const start = pos
    while (pos < n && text.charCodeAt(pos) >= 0x30 && text.charCodeAt(pos) <= 0x39) pos++
    const digits = pos - start
    if (digits === 0 || (digits > 1 && text.charCodeAt(start) === 0x30)) return false
    if (arcs === 0 && (digits > 1 || text.charCodeAt(start) > 0x32)) return false
    if (arcs === 1 && text.charCodeAt(0) !== 0x32 && (digits > 2 || Number(text.slice(start, pos)) > 39)) return false
    arcs++
    if (pos === n) return arcs > 1
    if (text.charCodeAt(pos) !== DOT) return false
    pos++
  }
}

function typeForOID (oid: string): AttributeType {
  if (!isOID(oid)) fail('invalid OID')
  return attributeTypeByOID(oid) ?? { name: oid, oid }
}

/** A name from the table (any case, aliases), a dotted OID, or `OID.<dotted>` (RFC 1779). */
function resolveType (text: string): AttributeType {
  const first = text.charCodeAt(0)
  if (first >= 0x30 && first <= 0x39) return typeForOID(text)
  if (text.length > 4 && text.charCodeAt(3) === DOT && text.slice(0, 3).toLowerCase() === 'oid') {
    return typeForOID(text.slice(4))
  }
  const known = attributeTypeByName(text)
  if (known === undefined) fail('unknown attribute type')
  return known
}

function decodeUTF8 (bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes)
  } catch {
    fail('invalid UTF-8')
  }
}

function decodeUCS (bytes: Uint8Array, width: 2 | 4): string {
  if (bytes.length % width !== 0) fail('truncated character in BER string')
  let out = ''
  for (let i = 0; i < bytes.length; i += width) {
    let code = 0
    for (let j = 0; j < width; j++) code = code * 256 + bytes[i + j]!
    if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) fail('invalid character in BER string')
    out += String.fromCodePoint(code)
  }
  return out
}

/**
 * RFC 4514 hexstring: one BER-encoded value (a single primitive definite-length TLV, nothing after it). Character
 * strings are decoded as OpenSSL prints them: UTF8String as UTF-8, BMPString and UniversalString as UCS,
 * the one-byte types (and UTCTime, GeneralizedTime) as Latin-1. Every other primitive universal type (OCTET
 * STRING, VideotexString, GraphicString, ObjectDescriptor …) OpenSSL prints as its DER (`#…`), so it stays
 * that: `der` is true and the value is the upper-case hex, as lib/codecs/x509-names.ts reads a certificate.
 * A constructed or non-universal tag, an indefinite length or a length that does not fit is refused.
 */
function decodeBER (input: string, start: number, end: number): { value: string, der: boolean } {
  if ((end - start) % 2 !== 0) fail('odd number of hex digits')
  const bytes = new Uint8Array((end - start) / 2)
  for (let i = 0; i < bytes.length; i++) {
    bytes[i] = hexValue(input.charCodeAt(start + 2 * i)) * 16 + hexValue(input.charCodeAt(start + 2 * i + 1))
  }
  if (bytes.length < 2) fail('truncated BER value')
  const tag = bytes[0]
  let length = bytes[1]!
  let offset = 2
  if (length >= 0x80) {
    const octets = length & 0x7f
    if (octets === 0 || octets > 4) fail('unsupported BER length')
    if (bytes.length < 2 + octets) fail('truncated BER value')
    length = 0
    for (let i = 0; i < octets; i++) length = length * 256 + bytes[offset++]!
  }
  if (offset + length !== bytes.length) fail('BER length does not match the value')
  const content = bytes.subarray(offset)
  switch (tag) {
    case 0x0c: // UTF8String
      return { value: decodeUTF8(content), der: false }
    case 0x12: // NumericString
    case 0x13: // PrintableString
    case 0x14: // T61String: OpenSSL and Node show it as Latin-1, so do we
    case 0x16: // IA5String
    case 0x17: // UTCTime and GeneralizedTime: OpenSSL prints their characters
    case 0x18:
    case 0x1a: // VisibleString
    case 0x1b: // GeneralString
      // One byte a character, as OpenSSL prints them; the charsets are not policed.
      return { value: Buffer.from(content.buffer, content.byteOffset, content.length).toString('latin1'), der: false }
    case 0x1e: // BMPString
      return { value: decodeUCS(content, 2), der: false }
    case 0x1c: // UniversalString
      return { value: decodeUCS(content, 4), der: false }
    default:
      // Any other primitive universal type (OCTET STRING, INTEGER, ObjectDescriptor, …) OpenSSL prints as its DER;
      // a constructed or non-universal one is no attribute value a certificate name holds.
      if (tag >= 0x1f || tag === 0) fail('unsupported BER value type')
      return { value: '#' + input.slice(start, end).toUpperCase(), der: true }
  }
}

/**
 * Single-pass reader of RFC 4514 strings (`rdnSeparator` `,`) and of Node's multi-line rendering
 * (`rdnSeparator` LF, where a raw `,` cannot occur because OpenSSL escapes it).
 */
class Reader {
  private pos = 0
  private attributes = 0

  constructor (private readonly input: string, private readonly rdnSeparator: number) {}

  read (): RDN[] {
    const rdns: RDN[] = []
    if (this.input.length === 0) return rdns
    let rdn: RDN = []
    for (;;) {
      rdn.push(this.attribute())
      // attribute() stops only at `+`, the RDN separator or the end
      const c = this.input.charCodeAt(this.pos++)
      if (c === PLUS) continue
      rdns.push(rdn)
      if (c !== this.rdnSeparator) return rdns
      rdn = []
    }
  }

  private attribute (): DNAttribute {
    if (++this.attributes > MAX_ATTRIBUTES) fail('too many attributes')
    const input = this.input
    let pos = skipSpaces(input, this.pos)
    const start = pos
    while (isTypeChar(input.charCodeAt(pos))) pos++
    if (pos === start) fail('missing attribute type')
    const type = resolveType(input.slice(start, pos))
    pos = skipSpaces(input, pos)
    if (input.charCodeAt(pos) !== EQUALS) fail('missing "=" after attribute type')
    this.pos = skipSpaces(input, pos + 1)
    if (input.charCodeAt(this.pos) !== HASH) return { type: type.name, oid: type.oid, value: this.stringValue() }
    const ber = this.berValue()
    return ber.der ? { type: type.name, oid: type.oid, value: ber.value, der: true } : { type: type.name, oid: type.oid, value: ber.value }
  }

  private isEnd (c: number): boolean {
    return Number.isNaN(c) || c === PLUS || c === this.rdnSeparator
  }

  private berValue (): { value: string, der: boolean } {
    const input = this.input
    const start = this.pos + 1
    let end = start
    while (hexValue(input.charCodeAt(end)) >= 0) end++
    this.pos = skipSpaces(input, end)
    if (!this.isEnd(input.charCodeAt(this.pos))) fail('invalid hex value')
    return end === start ? { value: '#', der: false } : decodeBER(input, start, end)
  }

  private stringValue (): string {
    const input = this.input
    const end = input.length
    const rdnSeparator = this.rdnSeparator
    let pos = this.pos
    let out = ''
    let from = pos
    // unescaped spaces at the end of the current raw run, dropped if the value ends there
    let trailing = 0
    while (pos < end) {
      const c = input.charCodeAt(pos)
      if (c === SPACE) {
        trailing++
        pos++
        continue
      }
      if (c === PLUS || c === rdnSeparator) break
      trailing = 0
      if (c === BACKSLASH) {
        this.pos = pos + 1
        out += input.slice(from, pos) + this.escape()
        pos = from = this.pos
      } else if (c < 0x80) {
        if (c === QUOTE || c === SEMICOLON || c === LESS || c === GREATER || c === 0 || c === COMMA) {
          fail('unescaped special character')
        }
        pos++
      } else if (isSurrogate(c)) {
        checkSurrogatePair(input, pos)
        pos += 2
      } else {
        pos++
      }
    }
    this.pos = pos
    return out + input.slice(from, pos - trailing)
  }

  /** Decodes the escape after a backslash, which `pos` has just passed, and moves past it. */
  private escape (): string {
    const input = this.input
    let pos = this.pos
    const c = input.charCodeAt(pos)
    if (hexValue(c) < 0) {
      if (c === COMMA || c === PLUS || c === QUOTE || c === BACKSLASH || c === LESS || c === GREATER ||
        c === SEMICOLON || c === EQUALS || c === HASH || c === SPACE) {
        this.pos = pos + 1
        return input[pos]!
      }
      fail(Number.isNaN(c) ? 'dangling backslash' : 'invalid escape')
    }
    // a run of hex pairs is one byte sequence: `\C3\BC` is one character
    const bytes: number[] = []
    for (;;) {
      const low = hexValue(input.charCodeAt(pos + 1))
      if (low < 0) fail('invalid hex escape')
      bytes.push(hexValue(input.charCodeAt(pos)) * 16 + low)
      pos += 2
      if (input.charCodeAt(pos) !== BACKSLASH || hexValue(input.charCodeAt(pos + 1)) < 0) break
      pos++
    }
    this.pos = pos
    return decodeUTF8(Uint8Array.from(bytes))
  }
}

/**
 * Parses an RFC 4514 (or RFC 2253) string, such as nginx's `$ssl_client_s_dn`, Apache's
 * SSL_CLIENT_S_DN or a name written in configuration. RDNs and the values of a multi-valued RDN
 * keep the string's order. `''` is the empty name.
 */
export function parseDN (input: string): RDN[] {
  checkInput(input)
  return new Reader(input, COMMA).read()
}

function reversed (rdns: RDN[]): RDN[] {
  rdns.reverse()
  for (const rdn of rdns) rdn.reverse()
  return rdns
}

/**
 * Parses Node's `X509Certificate#subject` / `#issuer`: one RDN a line in certificate order,
 * values of a multi-valued RDN joined by ` + `, escaped like RFC 4514. Returns RFC 4514 order,
 * with the values of each RDN reversed too, as OpenSSL's RFC 2253 output has them. Node gives
 * `undefined` (despite its typings) for an empty name, which reads as the empty name.
 */
export function parseNodeDN (input: string): RDN[] {
  if (input === undefined) return []
  checkInput(input)
  return reversed(new Reader(input, LF).read())
}

function upperHexValue (c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x41 && c <= 0x46) return c - 0x37
  return -1
}

/**
 * Byte of a `\xHH` escape at `pos` (the backslash), or -1. Only what X509_NAME_oneline writes
 * counts, upper-case hex of a byte outside 0x20-0x7E; any other such text is literal.
 */
function legacyByte (input: string, pos: number): number {
  if (input.charCodeAt(pos) !== BACKSLASH || input.charCodeAt(pos + 1) !== LOWER_X) return -1
  const high = upperHexValue(input.charCodeAt(pos + 2))
  const low = upperHexValue(input.charCodeAt(pos + 3))
  if (high < 0 || low < 0) return -1
  const byte = high * 16 + low
  return byte < 0x20 || byte > 0x7e ? byte : -1
}

/**
 * Parses OpenSSL's X509_NAME_oneline() form, as nginx `$ssl_client_s_dn_legacy` and Apache with
 * `+LegacyDNStringFormat` send it: `/C=US/O=Example Corp/CN=bob+UID=1234`, in certificate order.
 * OpenSSL escapes `/` and `+` with a backslash and bytes outside 0x20-0x7E as `\xHH`, but not the
 * backslash itself, so the form is ambiguous and is read the one way that cannot add attributes:
 * `\/`, `\+` and `\xHH` (upper-case, for such a byte) are always escapes, and any other backslash
 * is literal. A value that itself contains the text `\xC3`, or ends in a backslash before the
 * next attribute, is therefore misread (the attribute after it joins the value), never split.
 * Bytes are decoded as UTF-8: a BMPString or T61String value cannot be recovered from this form.
 */
export function parseLegacyDN (input: string): RDN[] {
  checkInput(input)
  const rdns: RDN[] = []
  const end = input.length
  if (end === 0) return rdns
  if (input.charCodeAt(0) !== SLASH) fail('legacy name must start with "/"')
  let rdn: RDN = []
  let pos = 0
  let attributes = 0
  while (pos < end) {
    if (++attributes > MAX_ATTRIBUTES) fail('too many attributes')
    if (input.charCodeAt(pos++) === SLASH && rdn.length > 0) {
      rdns.push(rdn)
      rdn = []
    }
    const start = pos
    while (isTypeChar(input.charCodeAt(pos))) pos++
    if (pos === start) fail('missing attribute type')
    const type = resolveType(input.slice(start, pos))
    if (input.charCodeAt(pos++) !== EQUALS) fail('missing "=" after attribute type')
    let out = ''
    let from = pos
    while (pos < end) {
      const c = input.charCodeAt(pos)
      if (c === SLASH || c === PLUS) break
      if (c < 0x20 || c > 0x7e) fail('unescaped byte in legacy name')
      if (c === BACKSLASH) {
        const next = input.charCodeAt(pos + 1)
        if (next === SLASH || next === PLUS) {
          out += input.slice(from, pos) + input[pos + 1]
          pos += 2
          from = pos
          continue
        }
        if (legacyByte(input, pos) >= 0) {
          out += input.slice(from, pos)
          const bytes: number[] = []
          for (let byte = legacyByte(input, pos); byte >= 0; byte = legacyByte(input, pos)) {
            bytes.push(byte)
            pos += 4
          }
          out += decodeUTF8(Uint8Array.from(bytes))
          from = pos
          continue
        }
      }
      pos++
    }
    rdn.push({ type: type.name, oid: type.oid, value: out + input.slice(from, pos) })
  }
  rdns.push(rdn)
  return reversed(rdns)
}

const HEX_DIGITS = '0123456789ABCDEF'

function hexByte (byte: number): string {
  return HEX_DIGITS[byte >> 4]! + HEX_DIGITS[byte & 15]!
}

/**
 * OpenSSL's ASN1_STRFLGS_ESC_2253 | ESC_CTRL | UTF8_CONVERT escaping: the RFC 4514 specials with a
 * backslash, a leading `#` (unless it is the whole value) and a leading or trailing space with a
 * backslash, C0 controls and DEL as `\XX`, everything else (`=`, non-ASCII) raw.
 */
function escapeValue (value: string): string {
  if (typeof value !== 'string') fail('value is not a string')
  const last = value.length - 1
  let out = ''
  let from = 0
  for (let i = 0; i <= last; i++) {
    const c = value.charCodeAt(i)
    let escaped: string
    if (c < 0x20 || c === 0x7f) {
      escaped = '\\' + hexByte(c)
    } else if (c === COMMA || c === PLUS || c === QUOTE || c === BACKSLASH || c === LESS || c === GREATER ||
      c === SEMICOLON || (c === SPACE && (i === 0 || i === last)) || (c === HASH && i === 0 && last > 0)) {
      escaped = '\\' + value[i]!
    } else {
      if (isSurrogate(c)) {
        checkSurrogatePair(value, i)
        i++
      }
      continue
    }
    out += value.slice(from, i) + escaped
    from = i + 1
  }
  return out + value.slice(from)
}

/**
 * OpenSSL prints a type it has no name for as `#` and the DER of the value. The string type is not
 * kept in an RDN; UTF8String is what OpenSSL's default string mask (utf8only) and RFC 5280 choose.
 */
function dumpValue (value: string): string {
  if (typeof value !== 'string') fail('value is not a string')
  for (let i = 0; i < value.length; i++) {
    if (isSurrogate(value.charCodeAt(i))) checkSurrogatePair(value, i++)
  }
  const bytes = Buffer.from(value, 'utf8')
  return '#0C' + derLength(bytes.length) + bytes.toString('hex').toUpperCase()
}

function derLength (n: number): string {
  if (n < 0x80) return hexByte(n)
  let octets = ''
  for (let rest = n; rest > 0; rest = Math.floor(rest / 256)) octets = hexByte(rest % 256) + octets
  return hexByte(0x80 + octets.length / 2) + octets
}

/** The DER of an OBJECT IDENTIFIER's content octets, from its dotted form. */
function oidContent (oid: string): number[] {
  const arcs = oid.split('.').map(Number)
  const out: number[] = []
  const push = (arc: number): void => {
    const base128: number[] = [arc % 128]
    for (let rest = Math.floor(arc / 128); rest > 0; rest = Math.floor(rest / 128)) base128.unshift(128 + rest % 128)
    out.push(...base128)
  }
  push(arcs[0]! * 40 + arcs[1]!)
  for (let i = 2; i < arcs.length; i++) push(arcs[i]!)
  return out
}

// The string types OpenSSL's ASN1_STRING_TABLE forces whatever the value (countryName, serialNumber and
// dnQualifier: PrintableString; emailAddress and domainComponent: IA5String); UTF8String for every other.
const PRINTABLE_OIDS = new Set(['2.5.4.6', '2.5.4.5', '2.5.4.46'])
const IA5_OIDS = new Set(['1.2.840.113549.1.9.1', '0.9.2342.19200300.100.1.25'])

function derTLV (tag: number, content: readonly number[] | Buffer): Buffer {
  const length = content.length
  const head = length < 0x80 ? [tag, length] : [tag, ...Buffer.from(derLength(length), 'hex')]
  return Buffer.concat([Buffer.from(head), Buffer.from(content)])
}

/** An attribute as a certificate most likely encodes it (AttributeTypeAndValue), to sort a SET OF by. */
function attributeDER (attribute: DNAttribute): Buffer {
  let value: Buffer
  if (attribute.der === true) {
    value = Buffer.from(attribute.value.slice(1), 'hex')
  } else {
    const tag = PRINTABLE_OIDS.has(attribute.oid) ? 0x13 : IA5_OIDS.has(attribute.oid) ? 0x16 : 0x0c
    value = derTLV(tag, Buffer.from(attribute.value, tag === 0x0c ? 'utf8' : 'latin1'))
  }
  return derTLV(0x30, Buffer.concat([derTLV(0x06, oidContent(attribute.oid)), value]))
}

/**
 * A multi-valued RDN in the order OpenSSL prints it: a certificate's SET OF is sorted by DER encoding, and
 * RFC 2253 output lists the name's entries last to first, so `O=B+O=A` and `O=A+O=B` format alike.
 */
function printOrder (rdn: readonly DNAttribute[]): readonly DNAttribute[] {
  if (rdn.length === 1) return rdn
  for (const attribute of rdn) {
    if (typeof attribute.oid !== 'string' || !isOID(attribute.oid)) fail('invalid OID')
    if (typeof attribute.value !== 'string') fail('value is not a string')
  }
  return rdn
    .map((attribute) => ({ attribute, der: attributeDER(attribute) }))
    .sort((a, b) => Buffer.compare(b.der, a.der))
    .map(({ attribute }) => attribute)
}

function formatValue (attribute: DNAttribute): string {
  const { oid, value } = attribute
  if (attribute.der === true) {
    if (typeof value !== 'string' || !/^#(?:[0-9A-F]{2})+$/.test(value)) fail('invalid DER value')
    if (attributeTypeByOID(oid) === undefined && (typeof oid !== 'string' || !isOID(oid))) fail('invalid OID')
    return value
  }
  if (attributeTypeByOID(oid) !== undefined) return escapeValue(value)
  if (typeof oid !== 'string' || !isOID(oid)) fail('invalid OID')
  return dumpValue(value)
}

/**
 * The canonical string: byte for byte what `openssl x509 -nameopt RFC2253,-esc_msb` prints after
 * `subject=` (`''` for the empty name). The type printed is derived from each attribute's OID; a
 * type OpenSSL has no name for (none in lib/oids.ts) is printed as OpenSSL does, `<oid>=#<DER>`,
 * taking the value to be a UTF8String. A multi-valued RDN is printed in OpenSSL's order for it.
 */
export function formatDN (rdns: Name): string {
  let out = ''
  for (let i = 0; i < rdns.length; i++) {
    const rdn = rdns[i]!
    if (rdn.length === 0) fail('empty RDN')
    if (i > 0) out += ','
    const ordered = printOrder(rdn)
    for (let j = 0; j < ordered.length; j++) {
      const attribute = ordered[j]!
      if (j > 0) out += '+'
      out += (attributeTypeByOID(attribute.oid)?.name ?? attribute.oid) + '=' + formatValue(attribute)
    }
  }
  return out
}

function compareAttributes (a: DNAttribute, b: DNAttribute): number {
  if (a.oid !== b.oid) return a.oid < b.oid ? -1 : 1
  if (a.value !== b.value) return a.value < b.value ? -1 : 1
  const derA = a.der === true
  if (derA !== (b.der === true)) return derA ? 1 : -1
  return 0
}

function rdnEquals (a: readonly DNAttribute[], b: readonly DNAttribute[]): boolean {
  if (a.length !== b.length) return false
  if (a.length === 1) return compareAttributes(a[0]!, b[0]!) === 0
  // an RDN is a set: `CN=bob+UID=1234` and `UID=1234+CN=bob` are the same RDN
  const sortedA = [...a].sort(compareAttributes)
  const sortedB = [...b].sort(compareAttributes)
  return sortedA.every((attribute, i) => compareAttributes(attribute, sortedB[i]!) === 0)
}

/**
 * Whether two parsed names are the same name: same RDNs in the same order, types compared by OID,
 * values exactly (no case folding), the values of a multi-valued RDN in any order.
 */
export function dnEquals (a: Name, b: Name): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    if (!rdnEquals(a[i]!, b[i]!)) return false
  }
  return true
}
