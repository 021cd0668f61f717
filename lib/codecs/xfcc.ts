import { CertificateParseError } from './parse-error.js'

/**
 * One element of an Envoy `X-Forwarded-Client-Cert` header: what one proxy said about the client
 * certificate of the connection it received. Values are as written (quotes removed, `\"` unescaped);
 * `Cert` and `Chain` are still URL-encoded PEM.
 */
export interface XfccElement {
  /** URI SAN of the certificate of the proxy that added the element */
  by?: string
  /** hex SHA-256 of the client certificate (DER) */
  hash?: string
  /** the client certificate, URL-encoded PEM */
  cert?: string
  /** the client certificate chain, leaf first, URL-encoded PEM */
  chain?: string
  /** the client certificate's subject (RFC 2253) */
  subject?: string
  /** URI SANs, in order; Envoy writes `URI=` (empty) when there is none */
  uri: string[]
  /** DNS SANs, in order */
  dns: string[]
}

type SingleKey = 'by' | 'hash' | 'cert' | 'chain' | 'subject'
const SINGLE_KEYS = new Set<string>(['by', 'hash', 'cert', 'chain', 'subject'])

// RFC 9110 §5.6.2 tchar
const TCHAR = new Uint8Array(128)
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1

function isTchar (c: number): boolean {
  return c < 128 && TCHAR[c] === 1
}

function isOws (c: number): boolean {
  return c === 0x20 || c === 0x09
}

/**
 * Parses an `X-Forwarded-Client-Cert` value (Envoy's format): elements separated by `,`, key=value pairs by
 * `;`, keys case-insensitive, values bare or double-quoted (inside quotes `,` `;` `=` are data and `\"` is
 * a quote). `URI` and `DNS` may repeat; a second `By`, `Hash`, `Cert`, `Chain` or `Subject` in one element
 * is refused, as are empty elements or pairs, a key without `=`, a quote inside a bare value, and anything
 * after a closing quote but a separator. Unknown keys are checked for syntax and skipped. Spaces and tabs
 * are allowed around `,` and `;`. One pass over the input.
 */
export function parseXFCC (value: string): XfccElement[] {
  const elements: XfccElement[] = []
  let element: XfccElement = { uri: [], dns: [] }
  let pos = 0
  const n = value.length
  while (true) {
    while (pos < n && isOws(value.charCodeAt(pos))) pos++
    const keyStart = pos
    while (pos < n && isTchar(value.charCodeAt(pos))) pos++
    if (pos === keyStart) throw new CertificateParseError('XFCC has an empty element or key')
    if (value.charCodeAt(pos) !== 0x3d) throw new CertificateParseError('XFCC key is not followed by =')
    const key = value.slice(keyStart, pos).toLowerCase()
    pos++

    let text: string
    if (value.charCodeAt(pos) === 0x22) {
      text = ''
      let from = ++pos
      while (true) {
        if (pos >= n) throw new CertificateParseError('XFCC has an unterminated quoted value')
        const c = value.charCodeAt(pos)
        if (c === 0x22) break
        if (c === 0x5c && value.charCodeAt(pos + 1) === 0x22) {
          text += value.slice(from, pos) + '"'
          pos += 2
          from = pos
        } else {
          pos++
        }
      }
      text += value.slice(from, pos)
      pos++
      while (pos < n && isOws(value.charCodeAt(pos))) pos++
    } else {
      const start = pos
      while (pos < n) {
        const c = value.charCodeAt(pos)
        if (c === 0x3b || c === 0x2c) break
        if (c === 0x22) throw new CertificateParseError('XFCC bare value holds a quote')
        pos++
      }
      let end = pos
      while (end > start && isOws(value.charCodeAt(end - 1))) end--
      text = value.slice(start, end)
    }

    if (key === 'uri') element.uri.push(text)
    else if (key === 'dns') element.dns.push(text)
    else if (SINGLE_KEYS.has(key)) {
      if (element[key as SingleKey] !== undefined) throw new CertificateParseError('XFCC element repeats a single-valued key')
      element[key as SingleKey] = text
    }

    if (pos === n) {
      elements.push(element)
      return elements
    }
    const separator = value.charCodeAt(pos)
    if (separator === 0x2c) {
      elements.push(element)
      element = { uri: [], dns: [] }
    } else if (separator !== 0x3b) {
      throw new CertificateParseError('XFCC quoted value is followed by text')
    }
    pos++
  }
}
