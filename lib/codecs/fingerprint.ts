import { CertificateParseError } from './parse-error.js'

const COLON_HEX = /^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){31}$/
const BARE_HEX = /^[0-9A-Fa-f]{64}$/
const BASE64_STD = /^[A-Za-z0-9+/]{43}=?$/
const BASE64_URL = /^[A-Za-z0-9_-]{43}=?$/

/**
 * A SHA-256 certificate fingerprint as `X509Certificate#fingerprint256` prints it (`AB:CD:…`, 32 upper-case
 * byte pairs), from colon-hex or bare hex in any case (Caddy sends bare lower case), or base64 in either
 * alphabet, padded or not (Cloudflare, GCP). Base64 must be canonical: a spelling whose unused low bits are
 * set would be a second text for the same digest.
 */
export function normalizeFingerprint256 (input: string): string {
  let hex: string
  if (COLON_HEX.test(input)) {
    hex = input.replaceAll(':', '')
  } else if (BARE_HEX.test(input)) {
    hex = input
  } else if (BASE64_STD.test(input) || BASE64_URL.test(input)) {
    const bytes = Buffer.from(input, 'base64')
    const canonical = bytes.toString('base64').slice(0, 43)
    if (canonical !== input.slice(0, 43).replaceAll('-', '+').replaceAll('_', '/')) {
      throw new CertificateParseError('fingerprint is not canonical base64 of 32 bytes')
    }
    hex = bytes.toString('hex')
  } else {
    throw new CertificateParseError('fingerprint is not a SHA-256 digest in hex or base64')
  }
  return colonHex(hex.toUpperCase())
}

function colonHex (hex: string): string {
  let out = hex.slice(0, 2)
  for (let i = 2; i < hex.length; i += 2) out += ':' + hex.slice(i, i + 2)
  return out
}

// RFC 5280 §4.1.2.2 caps serials at 20 octets; some CAs have exceeded it and Node still parses their
// certificates, so up to 32 bytes of magnitude are accepted. Longer text is refused before any parsing.
const MAX_SERIAL_BYTES = 32
const MAX_SERIAL_TEXT = 128
const HEX_DIGITS = /^[0-9A-Fa-f]+$/
const HEX_BYTE = /^[0-9A-Fa-f]{2}$/
const DECIMAL_DIGITS = /^[0-9]+$/

/**
 * A certificate serial number as `X509Certificate#serialNumber` prints it (OpenSSL `BN_bn2hex`): upper-case
 * hex in whole bytes without leading zero bytes, so a serial whose top bit is set loses its DER sign byte
 * (`A1B2C3D4E5F60718`), 15 is `0F`, and zero is `0`.
 *
 * `hex` input: any case, optional `0x`, and bytes optionally separated by `:` or by spaces (then every byte
 * has two digits, as `openssl x509 -text` prints them). `decimal` input: digits only (Caddy's `serial`
 * placeholder). Negative, empty, longer than 32 bytes, or anything else → CertificateParseError.
 */
export function normalizeSerial (input: string, radix: 'hex' | 'decimal' = 'hex'): string {
  if (input.length > MAX_SERIAL_TEXT) throw new CertificateParseError('serial number is too long')
  let hex: string
  if (radix === 'decimal') {
    if (!DECIMAL_DIGITS.test(input)) throw new CertificateParseError('serial number is not a decimal integer')
    hex = BigInt(input).toString(16)
  } else if (radix === 'hex') {
    hex = hexDigits(input.startsWith('0x') || input.startsWith('0X') ? input.slice(2) : input)
  } else {
    throw new CertificateParseError('serial number radix must be hex or decimal')
  }

  let start = 0
  while (start < hex.length - 1 && hex.charCodeAt(start) === 0x30) start++
  hex = hex.slice(start).toUpperCase()
  if (hex === '0') return hex
  if (hex.length % 2 === 1) hex = '0' + hex
  if (hex.length > MAX_SERIAL_BYTES * 2) throw new CertificateParseError('serial number is longer than 32 bytes')
  return hex
}

function hexDigits (text: string): string {
  const separator = text.includes(':') ? ':' : text.includes(' ') ? ' ' : null
  if (separator === null) {
    if (!HEX_DIGITS.test(text)) throw new CertificateParseError('serial number is not hexadecimal')
    return text
  }
  const bytes = text.split(separator)
  if (!bytes.every((byte) => HEX_BYTE.test(byte))) {
    throw new CertificateParseError('serial number bytes are not two hex digits each')
  }
  return bytes.join('')
}
