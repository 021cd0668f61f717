import { attributeTypes, type AttributeType } from './oids.js'
import { Cursor, OID, SEQUENCE, SET, CONTEXT_0, decodeString, fail, type Tlv } from './der.js'
import type { DNAttribute, RDN } from './dn.js'

/**
 * A certificate's subject and issuer read from its DER, value types included. Node's text rendering of a
 * name prints a value of a type that is no character string (an ObjectDescriptor, a BIT STRING, an OCTET
 * STRING …) as its raw bytes, so `CN` of type 7 holding `alice` would read as the text `alice`; OpenSSL's RFC
 * 2253 output, which the identity follows, prints such a value as `#` and its DER. Reading the DER keeps the
 * two apart: character strings are decoded as OpenSSL prints them, anything else becomes a `der` value.
 */
export interface CertificateNames {
  subject: RDN[]
  issuer: RDN[]
}

/** Both names of a DER certificate, in RFC 4514 order (most specific RDN first, a multi-valued RDN reversed). */
export function certificateNames (der: Buffer): CertificateNames {
  const top = new Cursor(der, 0, der.length)
  const certificate = top.into(top.read(SEQUENCE, 'the certificate'))
  const tbs = certificate.into(certificate.read(SEQUENCE, 'the certificate body'))
  tbs.optional(CONTEXT_0, 'the version')
  tbs.any('the serial number')
  tbs.read(SEQUENCE, 'the signature algorithm')
  const issuer = readName(der, tbs.read(SEQUENCE, 'the issuer'))
  tbs.read(SEQUENCE, 'the validity')
  const subject = readName(der, tbs.read(SEQUENCE, 'the subject'))
  return { subject, issuer }
}

/** A Name, in RFC 4514 order (most specific RDN first, a multi-valued RDN reversed). */
export function readName (der: Buffer, name: Tlv): RDN[] {
  if (name.tag !== SEQUENCE) fail('a name is not a SEQUENCE')
  const rdns: RDN[] = []
  const sequence = new Cursor(der, name.contentStart, name.end)
  while (!sequence.done) {
    const set = sequence.into(sequence.read(SET, 'a name component'))
    if (set.done) fail('a name component is empty')
    const first = nameAttribute(set)
    if (set.done) {
      rdns.push([first])
      continue
    }
    const rdn: RDN = [first]
    while (!set.done) rdn.push(nameAttribute(set))
    rdns.push(rdn.reverse().slice())
  }
  // Arrays cut to their length: names are kept in every cached identity, and a grown array keeps its spare room.
  return rdns.reverse().slice()
}

function nameAttribute (set: Cursor): DNAttribute {
  const ava = set.into(set.read(SEQUENCE, 'a name attribute'))
  const type = attributeType(set.buf, ava.read(OID, 'a name attribute type'))
  const value = ava.any('a name attribute value')
  if (!VALUE_TAGS.has(value.tag)) fail('a name attribute value has a type OpenSSL refuses')
  ava.finish('a name attribute')
  return attribute(type, set.buf, value)
}

// The universal tags OpenSSL takes for a name attribute value (its ASN1_PRINTABLE mask), primitive; of the
// constructed forms only SEQUENCE, whose content OpenSSL keeps unread (it would read a constructed string as BER).
const VALUE_TAGS = new Set([0x03, 0x07, 0x08, 0x09, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x12, 0x13, 0x14, 0x16, 0x1c, 0x1d, 0x1e, 0x30])

const HEX = '0123456789ABCDEF'
const SURROGATE = /[\ud800-\udfff]/

/** The DER content of a dotted OID, one Latin-1 character a byte (for known types: first arcs 0–2, second below 40). */
function oidContent (dotted: string): string {
  const [first, second, ...rest] = dotted.split('.').map(Number)
  let bytes = ''
  for (const arc of [first! * 40 + second!, ...rest]) {
    let group = String.fromCharCode(arc % 128)
    for (let high = Math.floor(arc / 128); high > 0; high = Math.floor(high / 128)) group = String.fromCharCode((high % 128) | 0x80) + group
    bytes += group
  }
  return bytes
}

// The known attribute types by the bytes of their OID: a name's types are looked up, not decoded, and a known
// type's encoding is minimal by construction. Anything else is decoded (and checked) by oidText.
const knownTypes = new Map<string, AttributeType>(attributeTypes().map((type) => [oidContent(type.oid), type]))

function attributeType (buf: Buffer, tlv: Tlv): AttributeType {
  const known = knownTypes.get(buf.toString('latin1', tlv.contentStart, tlv.end))
  if (known !== undefined) return known
  // oidText refuses a non-minimal encoding, so a known type never gets here: OpenSSL prints the dotted OID.
  const oid = oidText(buf, tlv)
  return { name: oid, oid }
}

function attribute ({ name: type, oid }: AttributeType, buf: Buffer, value: Tlv): DNAttribute {
  const text = printedString(buf, value)
  if (text !== null) return { type, oid, value: text }
  let hex = '#'
  for (let i = value.start; i < value.end; i++) hex += HEX[buf[i]! >> 4]! + HEX[buf[i]! & 15]!
  return { type, oid, value: hex, der: true }
}

/** The value as OpenSSL prints a string type (ASN1_STRFLGS_UTF8_CONVERT), or null for a type it dumps. */
function printedString (buf: Buffer, value: Tlv): string | null {
  switch (value.tag) {
    case 0x03: // BIT STRING: OpenSSL reads the count of unused bits, which must be there and below 8
      if (value.end === value.contentStart || buf[value.contentStart]! > 7) fail('a BIT STRING is malformed')
      return null
    case 0x1e: { // BMPString: UCS-2, which has no surrogates; OpenSSL would print one as invalid UTF-8
      const text = decodeString(buf, value)!
      if (SURROGATE.test(text)) fail('a BMPString holds a surrogate')
      return text
    }
    default:
      return decodeString(buf, value)
  }
}

/** Refuses an OBJECT IDENTIFIER OpenSSL refuses: empty, a sub-identifier padded with 0x80, or cut short. */
export function checkOid (buf: Buffer, tlv: Tlv): void {
  if (tlv.end === tlv.contentStart || (buf[tlv.end - 1]! & 0x80) !== 0) fail('an OID is empty or truncated')
  let fresh = true
  for (let i = tlv.contentStart; i < tlv.end; i++) {
    if (fresh && buf[i] === 0x80) fail('an OID has a non-minimal sub-identifier')
    fresh = (buf[i]! & 0x80) === 0
  }
}

/** Dotted text of an OBJECT IDENTIFIER's content, refusing non-minimal sub-identifiers. */
function oidText (buf: Buffer, tlv: Tlv): string {
  if (tlv.end === tlv.contentStart) fail('an attribute type is empty')
  const arcs: number[] = []
  let arc = 0
  let fresh = true
  for (let i = tlv.contentStart; i < tlv.end; i++) {
    const byte = buf[i]!
    if (fresh && byte === 0x80) fail('an attribute type has a non-minimal sub-identifier')
    if (arc > 0x1fffffffffff) fail('an attribute type has a sub-identifier too large')
    arc = arc * 128 + (byte & 0x7f)
    fresh = (byte & 0x80) === 0
    if (fresh) {
      arcs.push(arc)
      arc = 0
    }
  }
  if (!fresh) fail('an attribute type is truncated')
  const first = arcs[0]!
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80]
  return [...head, ...arcs.slice(1)].join('.')
}
