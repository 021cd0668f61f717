import { createHash } from 'node:crypto'
import { normalizeFingerprint256 } from './fingerprint.js'
import { CertificateParseError } from './parse-error.js'

/**
 * Decoders for the ways reverse proxies put a certificate into a header, each ending in DER bytes.
 * Every decoder is strict (a value that is not exactly the documented form is refused, never repaired)
 * and runs in time linear in its input: the plugin caps header length, but these functions do not rely
 * on it. Errors are `CertificateParseError` whose message names what was wrong, never the value.
 */

/** Encodings of a header holding one whole certificate. */
export type CertificateEncoding = 'pem' | 'pem-urlencoded' | 'pem-spaces' | 'der-base64' | 'rfc9440'

export const certificateEncodings: readonly CertificateEncoding[] =
  Object.freeze(['pem', 'pem-urlencoded', 'pem-spaces', 'der-base64', 'rfc9440'])

/**
 * Encodings of a header holding the leaf followed by its chain, as consecutive PEM blocks (AWS ALB passthrough
 * `X-Amzn-Mtls-Clientcert`: URL-encoded with `+=/` left raw).
 */
export type BundleEncoding = 'pem-chain' | 'pem-urlencoded-chain'

export const bundleEncodings: readonly BundleEncoding[] = Object.freeze(['pem-chain', 'pem-urlencoded-chain'])

/**
 * Encodings of a header holding further certificates: those of `CertificateEncoding` (see
 * `decodeCertificateList`) and `der-base64-concatenated`, the DER certificates back to back in one base64 value
 * (HAProxy `%[ssl_c_chain_der,base64]`).
 */
export type ChainEncoding = CertificateEncoding | 'der-base64-concatenated'

export const chainEncodings: readonly ChainEncoding[] = Object.freeze([...certificateEncodings, 'der-base64-concatenated'])

// A chain longer than this is refused: OpenSSL's default verify depth is 100, real chains hold one to three.
const MAX_CHAIN_CERTIFICATES = 32

const BEGIN = '-----BEGIN CERTIFICATE-----'
const END = '-----END CERTIFICATE-----'

function isOws (code: number): boolean {
  return code === 0x20 || code === 0x09
}

/**
 * The value of a header, or `undefined` when it means "no value": absent, empty, Apache's `(null)`, `-`,
 * or placeholder text a proxy left unreplaced (Caddy `{http.…}`, Apache-style `%{…}`, HAProxy-style
 * `%[…]`). Surrounding spaces and tabs are dropped (Node already does this for real requests).
 */
export function presentValue (value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  let start = 0
  let end = value.length
  while (start < end && isOws(value.charCodeAt(start))) start++
  while (end > start && isOws(value.charCodeAt(end - 1))) end--
  const v = start === 0 && end === value.length ? value : value.slice(start, end)
  if (v === '' || v === '(null)' || v === '-') return undefined
  const last = v.charCodeAt(v.length - 1)
  if (v.charCodeAt(0) === 0x7b && last === 0x7d) return undefined // {placeholder}
  if (v.startsWith('%{') && v.includes('}')) return undefined // %{VAR}s
  if (v.startsWith('%[') && last === 0x5d) return undefined // %[fetch]
  return v
}

// Index = char code, value = 6-bit group, -1 for characters outside the standard alphabet.
const BASE64_VALUES = new Int8Array(128).fill(-1)
for (let i = 0; i < 64; i++) {
  BASE64_VALUES['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.charCodeAt(i)] = i
}

/**
 * Strict standard base64 (RFC 4648 §4): only the alphabet, `=` only as final padding, and canonical (the
 * unused low bits of the last character are zero, so one byte string has one spelling). `padding:
 * 'optional'` also accepts the unpadded form, as RFC 8941 byte sequences and Google's headers need.
 */
export function decodeBase64 (text: string, what: string, padding: 'required' | 'optional' = 'required'): Buffer {
  let end = text.length
  while (end > 0 && text.charCodeAt(end - 1) === 0x3d && text.length - end < 2) end--
  const padded = end !== text.length
  if (end === 0) throw new CertificateParseError(`${what} is empty`)
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i)
    if (c > 127 || BASE64_VALUES[c] === -1) throw new CertificateParseError(`${what} is not base64`)
  }
  const rem = end % 4
  if (rem === 1 || (padded && text.length % 4 !== 0) || (!padded && rem !== 0 && padding === 'required')) {
    throw new CertificateParseError(`${what} has wrong base64 length or padding`)
  }
  const last = BASE64_VALUES[text.charCodeAt(end - 1)]
  if ((rem === 2 && (last & 0x0f) !== 0) || (rem === 3 && (last & 0x03) !== 0)) {
    throw new CertificateParseError(`${what} is not canonical base64`)
  }
  return Buffer.from(text.slice(0, end), 'base64')
}

/**
 * Checks that `der` is one DER SEQUENCE (definite, minimal length) that spans the buffer exactly: no
 * truncation, no trailing bytes. The full parse is `new X509Certificate(der)`, later and by the caller.
 */
export function assertDerCertificate (der: Buffer, what: string): Buffer {
  if (sequenceSize(der, 0, what) !== der.length) throw new CertificateParseError(`${what} DER length does not match its size`)
  return der
}

/**
 * The size (header and content) of the DER SEQUENCE that starts at `pos`, from its own length octets: definite
 * and minimal, at most four of them. Whether that many bytes follow is the caller's to check.
 */
function sequenceSize (der: Buffer, pos: number, what: string): number {
  if (der.length - pos < 2 || der[pos] !== 0x30) throw new CertificateParseError(`${what} is not a DER SEQUENCE`)
  const first = der[pos + 1]
  if (first < 0x80) return 2 + first
  const n = first & 0x7f
  if (n === 0 || n > 4 || der.length - pos < 2 + n) throw new CertificateParseError(`${what} has an invalid DER length`)
  const length = der.readUIntBE(pos + 2, n)
  if (der[pos + 2] === 0 || length < 0x80) throw new CertificateParseError(`${what} has a non-minimal DER length`)
  return 2 + n + length
}

/** Strict base64 of one DER certificate (HAProxy `ssl_c_der,base64`, Caddy, Cloudflare, Azure). */
export function derFromBase64 (text: string, what = 'certificate'): Buffer {
  return assertDerCertificate(decodeBase64(text, what), what)
}

/**
 * `%XX` decoding as `decodeURIComponent` does it (nginx `$ssl_client_escaped_cert`, Envoy, AWS ALB): `+`
 * stays `+`, a malformed escape or one that yields invalid UTF-8 is refused.
 */
export function percentDecode (text: string, what: string): string {
  if (!text.includes('%')) return text
  try {
    return decodeURIComponent(text)
  } catch {
    throw new CertificateParseError(`${what} has malformed percent-encoding`)
  }
}

/**
 * Every `CERTIFICATE` PEM block in `text`, in order. Only whitespace may surround and separate the blocks,
 * and any whitespace may split the base64 body (line breaks, or Apache's spaces). At least one block.
 */
export function dersFromPem (text: string, what = 'certificate'): Buffer[] {
  const ders: Buffer[] = []
  let pos = 0
  while (true) {
    while (pos < text.length && isPemSpace(text.charCodeAt(pos))) pos++
    if (pos === text.length) break
    if (!text.startsWith(BEGIN, pos)) throw new CertificateParseError(`${what} has text outside its PEM blocks`)
    const bodyStart = pos + BEGIN.length
    const endAt = text.indexOf(END, bodyStart)
    if (endAt === -1) throw new CertificateParseError(`${what} PEM block is not terminated`)
    const block = text.slice(bodyStart, endAt)
    if (block.includes('-')) throw new CertificateParseError(`${what} PEM block holds another marker`)
    // One native pass rather than a string built piece by piece: this runs on every cold request behind nginx.
    ders.push(assertDerCertificate(decodeBase64(block.replace(PEM_SPACES, ''), what), what))
    pos = endAt + END.length
  }
  if (ders.length === 0) throw new CertificateParseError(`${what} holds no PEM block`)
  return ders
}

const PEM_SPACES = /[ \n\r\t]/g

function isPemSpace (code: number): boolean {
  return code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09
}

/** Exactly one `CERTIFICATE` PEM block: a leaf header with two certificates is refused, not truncated. */
export function derFromPem (text: string, what = 'certificate'): Buffer {
  const ders = dersFromPem(text, what)
  if (ders.length !== 1) throw new CertificateParseError(`${what} holds more than one PEM block`)
  return ders[0]
}

/** RFC 8941 §4.2.7 Byte Sequence `:base64:` (RFC 9440 `Client-Cert`), without parameters. */
export function parseSfBinary (text: string, what: string): Buffer {
  if (text.length < 2 || text.charCodeAt(0) !== 0x3a || text.charCodeAt(text.length - 1) !== 0x3a) {
    throw new CertificateParseError(`${what} is not a structured-field byte sequence`)
  }
  return decodeBase64(text.slice(1, -1), what, 'optional')
}

/** RFC 8941 §4.2.1 List whose members are all Byte Sequences without parameters (RFC 9440 `Client-Cert-Chain`). */
export function parseSfBinaryList (text: string, what: string): Buffer[] {
  const members: Buffer[] = []
  let pos = 0
  while (true) {
    while (pos < text.length && isOws(text.charCodeAt(pos))) pos++
    const comma = text.indexOf(',', pos)
    let end = comma === -1 ? text.length : comma
    while (end > pos && isOws(text.charCodeAt(end - 1))) end--
    members.push(parseSfBinary(text.slice(pos, end), what))
    if (comma === -1) return members
    pos = comma + 1
  }
}

/** A whole certificate in one of the `CertificateEncoding`s, as DER. */
export function decodeCertificate (value: string, encoding: CertificateEncoding, what = 'certificate'): Buffer {
  switch (encoding) {
    case 'pem':
    case 'pem-spaces':
      return derFromPem(value, what)
    case 'pem-urlencoded':
      return derFromPem(percentDecode(value, what), what)
    case 'der-base64':
      return derFromBase64(value, what)
    case 'rfc9440':
      return assertDerCertificate(parseSfBinary(value, what), what)
  }
}

/**
 * A header of further certificates: PEM blocks one after another (`pem`, `pem-spaces`, and `pem-urlencoded`
 * once decoded), base64 DERs separated by commas (`der-base64`), or an RFC 8941 list (`rfc9440`).
 * A certificate that cannot be decoded fails the whole header, so no position can shift.
 */
export function decodeCertificateList (value: string, encoding: ChainEncoding, what = 'certificate chain'): Buffer[] {
  const ders = decodeList(value, encoding, what)
  // Every encoding bounded alike: each certificate is parsed (X509Certificate) before anything can refuse it.
  if (ders.length > MAX_CHAIN_CERTIFICATES) throw new CertificateParseError(`${what} holds too many certificates`)
  return ders
}

function decodeList (value: string, encoding: ChainEncoding, what: string): Buffer[] {
  switch (encoding) {
    case 'der-base64-concatenated':
      return splitConcatenatedDer(decodeBase64(value, what), what)
    case 'pem':
    case 'pem-spaces':
      return dersFromPem(value, what)
    case 'pem-urlencoded':
      return dersFromPem(percentDecode(value, what), what)
    case 'der-base64':
      return value.split(',').map((part) => derFromBase64(trimOws(part), what))
    case 'rfc9440':
      return parseSfBinaryList(value, what).map((der) => assertDerCertificate(der, what))
  }
}

/** A leaf and its chain from consecutive PEM blocks (`BundleEncoding`): the first block is the leaf. */
export function decodeBundle (value: string, encoding: BundleEncoding, what = 'certificate'): { der: Buffer, chain: Buffer[] } {
  const ders = dersFromPem(encoding === 'pem-urlencoded-chain' ? percentDecode(value, what) : value, what)
  if (ders.length > MAX_CHAIN_CERTIFICATES + 1) throw new CertificateParseError(`${what} holds too many certificates`)
  return { der: ders[0], chain: ders.slice(1) }
}

/**
 * DER certificates back to back, each split off by its own outer length. Every piece must be one whole DER
 * SEQUENCE (`assertDerCertificate`); bytes that do not divide so are refused, never re-synchronised.
 */
function splitConcatenatedDer (bytes: Buffer, what: string): Buffer[] {
  const ders: Buffer[] = []
  let pos = 0
  while (pos < bytes.length) {
    if (ders.length === MAX_CHAIN_CERTIFICATES) throw new CertificateParseError(`${what} holds too many certificates`)
    const size = sequenceSize(bytes, pos, what)
    if (bytes.length - pos < size) throw new CertificateParseError(`${what} is truncated`)
    ders.push(bytes.subarray(pos, pos + size))
    pos += size
  }
  // decodeBase64 refuses an empty value, so there is at least one certificate here.
  return ders
}

function trimOws (text: string): string {
  let start = 0
  let end = text.length
  while (start < end && isOws(text.charCodeAt(start))) start++
  while (end > start && isOws(text.charCodeAt(end - 1))) end--
  return text.slice(start, end)
}

/** `X509Certificate#fingerprint256` of DER bytes, without parsing them. */
export function fingerprint256Of (der: Buffer): string {
  return normalizeFingerprint256(createHash('sha256').update(der).digest('hex'))
}

/**
 * Checks a proxy's SHA-256 fingerprint header against the certificate it forwarded beside it, and returns
 * it normalized. A mismatch means the headers do not describe one certificate: refused.
 */
export function checkFingerprint (der: Buffer | null, fingerprint: string, what: string): string {
  const normalized = normalizeFingerprint256(fingerprint)
  if (der !== null && fingerprint256Of(der) !== normalized) {
    throw new CertificateParseError(`${what} does not match the forwarded certificate`)
  }
  return normalized
}

/**
 * The bytes in a memory block of their own. Base64 decoding hands out small buffers as slices of Node's shared
 * 8 KB pool: a cached forward would keep the whole block alive (measured: 4 KB a cached certificate).
 */
export function ownBuffer (der: Buffer): Buffer {
  if (der.byteLength === der.buffer.byteLength) return der
  const copy = Buffer.allocUnsafeSlow(der.length)
  der.copy(copy)
  return copy
}
