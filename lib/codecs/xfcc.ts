import { CertificateParseError } from './parse-error.js'

/**
 * One element of an Envoy `X-Forwarded-Client-Cert` header: what one proxy said about the client
 * certificate of the connection it received. Values are as written, quotes removed: `Cert` and `Chain` are
 * still URL-encoded PEM, `Subject` still RFC 2253 with its backslash escapes.
 */
export interface XfccElement {
  /** URI SANs of the certificate of the proxy that added the element (Envoy writes one `By` per SAN) */
  by: string[]
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

// The keys in the order Envoy writes them (conn_manager_utility.cc: By per local URI SAN, Hash, then
// Cert, Chain, Subject, URI, DNS as configured). Only By, URI and DNS repeat.
const KEY_RANK = new Map<string, number>([['by', 0], ['hash', 1], ['cert', 2], ['chain', 3], ['subject', 4], ['uri', 5], ['dns', 6]])
const REPEATABLE = new Set(['by', 'uri', 'dns'])
// Envoy quotes exactly these; the others it writes bare.
const QUOTED = new Set(['cert', 'chain', 'subject'])

// RFC 9110 §5.6.2 tchar
const TCHAR = new Uint8Array(128)
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1

function isTchar (c: number): boolean {
  return c < 128 && TCHAR[c] === 1
}

/**
 * Parses an `X-Forwarded-Client-Cert` value exactly as Envoy writes it: elements separated by `,`, key=value
 * pairs by `;`, keys case-insensitive. Envoy writes `By`, `Hash`, `URI` and `DNS` bare and unescaped, so a
 * certificate's SAN can hold text that reads as more pairs or elements; the grammar is kept as narrow as
 * Envoy's output so that such text has as little room as possible:
 * - only Envoy's keys (`By`, `Hash`, `Cert`, `Chain`, `Subject`, `URI`, `DNS`), in Envoy's order; only `By`,
 *   `URI` and `DNS` repeat. A `Cert`, `Subject` or `Hash` after a `URI` can only come from inside a SAN.
 * - `Cert`, `Chain` and `Subject` quoted, the others bare, as Envoy writes them: a SAN that starts with a
 *   quote is not unwrapped into another name.
 * - inside quotes `,` `;` `=` are data and a backslash escapes the next character, which stays in the value:
 *   Envoy writes the subject as OpenSSL's RFC 2253 text, unescaped, and in that text every `"` and `\` of a
 *   name is backslash-escaped, so this finds the real closing quote for every name.
 * - no whitespace between pairs (Envoy writes none); inside a bare value every character up to the next `;`
 *   or `,` is data, spaces included, so a SAN's trailing space is not trimmed into another name.
 * - empty elements or pairs, a key without `=`, a quote inside a bare value and anything after a closing
 *   quote but a separator are refused.
 * One pass over the input.
 */
export function parseXFCC (value: string): XfccElement[] {
  const elements: XfccElement[] = []
  let element: XfccElement = { by: [], uri: [], dns: [] }
  let lastRank = -1
  let pos = 0
  const n = value.length
  while (true) {
    const keyStart = pos
    while (pos < n && isTchar(value.charCodeAt(pos))) pos++
    if (pos === keyStart) throw new CertificateParseError('XFCC has an empty element or key')
    if (value.charCodeAt(pos) !== 0x3d) throw new CertificateParseError('XFCC key is not followed by =')
    const key = value.slice(keyStart, pos).toLowerCase()
    const rank = KEY_RANK.get(key)
    if (rank === undefined) throw new CertificateParseError('XFCC element holds a key Envoy does not write')
    if (rank < lastRank) throw new CertificateParseError('XFCC keys are out of Envoy\'s order')
    if (rank === lastRank && !REPEATABLE.has(key)) throw new CertificateParseError('XFCC element repeats a single-valued key')
    lastRank = rank
    pos++

    let text: string
    if (QUOTED.has(key)) {
      if (value.charCodeAt(pos) !== 0x22) throw new CertificateParseError('XFCC Cert, Chain or Subject is not quoted')
      const start = ++pos
      while (true) {
        if (pos >= n) throw new CertificateParseError('XFCC has an unterminated quoted value')
        const c = value.charCodeAt(pos)
        if (c === 0x22) break
        pos += c === 0x5c ? 2 : 1
      }
      text = value.slice(start, pos)
      pos++
    } else {
      const start = pos
      while (pos < n) {
        const c = value.charCodeAt(pos)
        if (c === 0x3b || c === 0x2c) break
        if (c === 0x22) throw new CertificateParseError('XFCC bare value holds a quote')
        pos++
      }
      text = value.slice(start, pos)
    }

    if (key === 'by') element.by.push(text)
    else if (key === 'uri') element.uri.push(text)
    else if (key === 'dns') element.dns.push(text)
    else element[key as 'hash' | 'cert' | 'chain' | 'subject'] = text

    if (pos === n) {
      elements.push(element)
      return elements
    }
    const separator = value.charCodeAt(pos)
    if (separator === 0x2c) {
      elements.push(element)
      element = { by: [], uri: [], dns: [] }
      lastRank = -1
    } else if (separator !== 0x3b) {
      throw new CertificateParseError('XFCC quoted value is followed by text')
    }
    pos++
  }
}
