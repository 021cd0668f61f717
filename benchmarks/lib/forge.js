// Many distinct client certificates, fast: one template certificate made by openssl (lib/certs.js) with a
// placeholder name and serial; each copy writes its own number into them and is signed again by the CA key
// (ECDSA P-256, about 0.1 ms each here) or, for the million-certificate churn, given a well-formed signature
// that is not valid (nothing in that path checks it: nginx would have, and proxy.ca is not set).
import { createHash, createPrivateKey, sign } from 'node:crypto'

/** The placeholder the template's subject CN, SAN e-mail and SAN URI carry; copies write a decimal number. */
export const NAME_PLACEHOLDER = 'ZQZQZQZQZQ'
/** The template's serial (positive, 15 bytes); copies keep its first 7 bytes and write their number in the rest. */
export const SERIAL_PLACEHOLDER = '11223344556677889900AABBCCDDEE'

function lengthAt (buf, offset) {
  const first = buf[offset + 1]
  if (first < 0x80) return { header: 2, length: first }
  const bytes = first & 0x7f
  let length = 0
  for (let i = 0; i < bytes; i++) length = length * 256 + buf[offset + 2 + i]
  return { header: 2 + bytes, length }
}

function encodeLength (length) {
  if (length < 0x80) return Buffer.from([length])
  if (length < 0x100) return Buffer.from([0x81, length])
  return Buffer.from([0x82, length >> 8, length & 0xff])
}

function tlv (tag, body) {
  return Buffer.concat([Buffer.from([tag]), encodeLength(body.length), body])
}

function allOffsets (buf, needle) {
  const found = []
  for (let at = buf.indexOf(needle); at !== -1; at = buf.indexOf(needle, at + 1)) found.push(at)
  return found
}

const pemLine = /.{1,64}/g
export function toPem (der) {
  return `-----BEGIN CERTIFICATE-----\n${der.toString('base64').match(pemLine).join('\n')}\n-----END CERTIFICATE-----\n`
}

const escapes = { '+': '%2B', '/': '%2F', '=': '%3D', '\n': '%0A', ' ': '%20' }
/** nginx's $ssl_client_escaped_cert of a PEM (base64 PEM only holds these characters outside [A-Za-z0-9-]). */
export function nginxEscape (pem) {
  return pem.replace(/[+/=\n ]/g, (c) => escapes[c])
}

export class CertificateForge {
  #tbs
  #names
  #serialAt
  #sigAlg
  #key

  /**
   * @param {Buffer} templateDer the template certificate (see certs.js)
   * @param {string} caKeyPem the CA's private key, for signed copies
   */
  constructor (templateDer, caKeyPem) {
    const outer = lengthAt(templateDer, 0)
    const tbsStart = outer.header
    const tbs = lengthAt(templateDer, tbsStart)
    const tbsEnd = tbsStart + tbs.header + tbs.length
    const alg = lengthAt(templateDer, tbsEnd)
    this.#tbs = templateDer.subarray(tbsStart, tbsEnd)
    this.#sigAlg = templateDer.subarray(tbsEnd, tbsEnd + alg.header + alg.length)
    this.#names = allOffsets(this.#tbs, Buffer.from(NAME_PLACEHOLDER))
    const serial = allOffsets(this.#tbs, Buffer.from(SERIAL_PLACEHOLDER, 'hex'))
    if (this.#names.length < 3 || serial.length !== 1) throw new Error('template certificate lacks its placeholders')
    this.#serialAt = serial[0] + 7
    this.#key = createPrivateKey(caKeyPem)
  }

  /** The name certificate `i` carries (CN, e-mail local part, SPIFFE ID's last segment). */
  static nameOf (i) {
    return String(i).padStart(NAME_PLACEHOLDER.length, '0')
  }

  /** DER of certificate `i`; `signed: false` gives a well-formed but invalid ECDSA signature (no CA work). */
  der (i, { signed = true } = {}) {
    const tbs = Buffer.from(this.#tbs)
    const name = CertificateForge.nameOf(i)
    for (const at of this.#names) tbs.write(name, at, 'latin1')
    tbs.writeBigUInt64BE(BigInt(i), this.#serialAt)
    let signature
    if (signed) {
      signature = sign('sha256', tbs, this.#key)
    } else {
      // ECDSA-Sig-Value { r, s }: two positive 32-byte INTEGERs drawn from the certificate's number.
      const r = createHash('sha256').update(tbs).digest()
      const s = createHash('sha256').update(r).digest()
      r[0] = (r[0] & 0x7f) | 1
      s[0] = (s[0] & 0x7f) | 1
      signature = tlv(0x30, Buffer.concat([tlv(0x02, r), tlv(0x02, s)]))
    }
    return tlv(0x30, Buffer.concat([tbs, this.#sigAlg, tlv(0x03, Buffer.concat([Buffer.from([0]), signature]))]))
  }

  /** nginx's X-SSL-Client-Cert value for certificate `i`. */
  nginxHeader (i, options) {
    return nginxEscape(toPem(this.der(i, options)))
  }
}
