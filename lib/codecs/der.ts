import { CertificateParseError } from './parse-error.js'

/**
 * A strict DER reader (X.690 distinguished encoding): the one ASN.1 reader of the project, shared by
 * the CRL parser and every later reader of DER structures. It accepts exactly DER — definite minimal
 * lengths, low tag numbers, no overrun, no trailing bytes where a caller says `finish` — and throws
 * `CertificateParseError` for anything else, never guessing.
 */

export const INTEGER = 0x02
export const BIT_STRING = 0x03
export const OCTET_STRING = 0x04
export const OID = 0x06
export const UTC_TIME = 0x17
export const GENERALIZED_TIME = 0x18
export const SEQUENCE = 0x30
export const SET = 0x31
export const BOOLEAN = 0x01
export const CONTEXT_0 = 0xa0
export const CONTEXT_1 = 0xa1
export const CONTEXT_2 = 0xa2
export const CONTEXT_3 = 0xa3

export function fail (message: string): never {
  throw new CertificateParseError(message)
}

export interface Tlv {
  readonly tag: number
  readonly start: number
  readonly contentStart: number
  readonly end: number
}

/** A strict DER cursor over `buf[pos, end)`: definite minimal lengths, low tag numbers, no overrun. */
export class Cursor {
  constructor (readonly buf: Buffer, public pos: number, readonly end: number) {}

  get done (): boolean {
    return this.pos >= this.end
  }

  peek (): number | undefined {
    return this.done ? undefined : this.buf[this.pos]
  }

  any (what: string): Tlv {
    const { buf, pos, end } = this
    if (end - pos < 2) fail(`${what} is truncated`)
    const tag = buf[pos]
    // The high-tag-number form never occurs in a certificate or CRL.
    if ((tag & 0x1f) === 0x1f) fail(`${what} has an unsupported tag`)
    let length = buf[pos + 1]
    let contentStart = pos + 2
    if (length >= 0x80) {
      const count = length & 0x7f
      // 0 is BER's indefinite length; more than 4 bytes would be a CRL beyond 4 GiB.
      if (count === 0 || count > 4) fail(`${what} has an unsupported length`)
      if (end - contentStart < count) fail(`${what} is truncated`)
      if (buf[contentStart] === 0) fail(`${what} has a non-minimal length`)
      length = buf.readUIntBE(contentStart, count)
      if (length < 0x80) fail(`${what} has a non-minimal length`)
      contentStart += count
    }
    if (end - contentStart < length) fail(`${what} is truncated`)
    this.pos = contentStart + length
    return { tag, start: pos, contentStart, end: this.pos }
  }

  read (tag: number, what: string): Tlv {
    const tlv = this.any(what)
    if (tlv.tag !== tag) fail(`${what} has an unexpected type`)
    return tlv
  }

  optional (tag: number, what: string): Tlv | null {
    return this.peek() === tag ? this.read(tag, what) : null
  }

  into (tlv: Tlv): Cursor {
    return new Cursor(this.buf, tlv.contentStart, tlv.end)
  }

  finish (what: string): void {
    if (!this.done) fail(`${what} has unexpected trailing data`)
  }

  hex (tlv: Tlv): string {
    return this.buf.toString('hex', tlv.contentStart, tlv.end)
  }
}

/**
 * An INTEGER as `X509Certificate#serialNumber` prints it (OpenSSL's BN_bn2hex): upper-case hex,
 * two digits a byte, no sign byte, `0` for zero, `-` and the magnitude for the negative serials
 * RFC 5280 forbids but the field still holds.
 */
export function serialHex (buf: Buffer, tlv: Tlv): string {
  let bytes = buf.subarray(tlv.contentStart, tlv.end)
  if (bytes.length === 0) fail('a serial number is empty')
  const negative = bytes[0] >= 0x80
  if (negative) {
    const magnitude = Buffer.allocUnsafe(bytes.length)
    let carry = 1
    for (let i = bytes.length - 1; i >= 0; i--) {
      const v = (~bytes[i] & 0xff) + carry
      magnitude[i] = v & 0xff
      carry = v >> 8
    }
    bytes = magnitude
  }
  let first = 0
  while (first < bytes.length && bytes[first] === 0) first++
  if (first === bytes.length) return '0'
  return (negative ? '-' : '') + bytes.toString('hex', first).toUpperCase()
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

function isLeapYear (year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0
}

/**
 * A time as RFC 5280 §4.1.2.5 writes it, exactly `YYMMDDHHMMSSZ` (UTCTime) or `YYYYMMDDHHMMSSZ` (GeneralizedTime):
 * no fractions, no offsets, every field in range. Read digit by digit: this runs twice per certificate read.
 */
export function readTime (c: Cursor, what: string): number {
  const utc = c.peek() === UTC_TIME
  const tlv = utc ? c.read(UTC_TIME, what) : c.read(GENERALIZED_TIME, what)
  const buf = c.buf
  const digits = utc ? 12 : 14
  const start = tlv.contentStart
  if (tlv.end - start !== digits + 1 || buf[start + digits] !== 0x5a) fail(`${what} is not a valid time`)
  for (let i = start; i < start + digits; i++) {
    if (buf[i] < 0x30 || buf[i] > 0x39) fail(`${what} is not a valid time`)
  }
  let pos = start
  const two = (): number => {
    const value = (buf[pos] - 0x30) * 10 + buf[pos + 1] - 0x30
    pos += 2
    return value
  }
  const century = utc ? 0 : two()
  const yy = two()
  const year = utc ? (yy < 50 ? 2000 : 1900) + yy : century * 100 + yy
  const month = two()
  const day = two()
  const hour = two()
  const minute = two()
  const second = two()
  const days = month === 2 && isLeapYear(year) ? 29 : DAYS_IN_MONTH[month - 1]
  // Date.UTC reads the years 0 to 99 as 1900 to 1999: a GeneralizedTime that early is refused, not moved.
  if (year < 100 || month < 1 || month > 12 || day < 1 || day > days || hour > 23 || minute > 59 || second > 59) {
    fail(`${what} is not a valid time`)
  }
  return Date.UTC(year, month - 1, day, hour, minute, second)
}

/** Checks a time exactly as `readTime` does (same refusals, same messages), for the many whose value is not needed. */
export function skipTime (c: Cursor, what: string): void {
  readTime(c, what)
}

// OpenSSL refuses to compare names holding malformed UTF-8; replacement characters would make them equal.
export const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

export function decodeString (buf: Buffer, tlv: Tlv): string | null {
  const { contentStart: start, end } = tlv
  switch (tlv.tag) {
    case 0x0c: { // UTF8String
      // Most names are ASCII, which reads the same as Latin-1 without a view or a decoder.
      let ascii = true
      for (let i = start; i < end && ascii; i++) ascii = buf[i] < 0x80
      if (ascii) return buf.toString('latin1', start, end)
      try {
        return UTF8.decode(buf.subarray(start, end))
      } catch {
        return fail('a UTF8String is not valid UTF-8')
      }
    }
    case 0x12: // NumericString
    case 0x13: // PrintableString
    case 0x14: // TeletexString, read as Latin-1 like OpenSSL
    case 0x16: // IA5String
    case 0x1a: // VisibleString
    case 0x1b: // GeneralString, one byte a character as OpenSSL prints it
      return buf.toString('latin1', start, end)
  }
  const bytes = buf.subarray(start, end)
  switch (tlv.tag) {
    case 0x1e: { // BMPString: UTF-16BE
      if (bytes.length % 2 !== 0) fail('a BMPString has an odd length')
      return Buffer.from(bytes).swap16().toString('utf16le')
    }
    case 0x1c: { // UniversalString: UTF-32BE
      if (bytes.length % 4 !== 0) fail('a UniversalString has a bad length')
      let out = ''
      for (let i = 0; i < bytes.length; i += 4) {
        const cp = bytes.readUInt32BE(i)
        // Surrogates are no characters: OpenSSL refuses them, and two of them would join into another name.
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) fail('a UniversalString holds an invalid character')
        out += String.fromCodePoint(cp)
      }
      return out
    }
    default:
      return null
  }
}
