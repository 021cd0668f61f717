import { CertificateParseError } from './parse-error.js'

export interface SubjectAltNames {
  dns: string[]
  email: string[]
  uri: string[]
  ip: string[]
}

// Entry types as node:crypto prints them; the other types it prints (DirName, othername, Registered ID,
// X400Name, EdiPartyName, and whatever a later Node adds) are parsed for structure and then skipped.
const ENTRY_TYPE = /^[A-Za-z][A-Za-z0-9 ]*$/

/**
 * Parses `X509Certificate#subjectAltName` (the same text as `getPeerCertificate().subjectaltname`).
 *
 * Entries are `TYPE:value` joined by `', '`. Since the fix for CVE-2021-44532 Node writes a value that holds
 * `,` `"` `\` `'` or a control character as a JSON string literal, with `,` itself escaped as `\u002c`:
 * `DNS:"a\u002c DNS:evil.com"` is one DNS name, so the text is read quote-aware and never split on `', '`.
 * A DirName value is the RFC 2253 form of the name, which Node quotes by the same rule whenever it holds a
 * comma. A value Node would have quoted but that arrives bare (a stray quote, backslash, comma, control
 * character) is refused rather than guessed at.
 */
export function parseNodeSAN (input: string | undefined): SubjectAltNames {
  const san: SubjectAltNames = { dns: [], email: [], uri: [], ip: [] }
  if (input === undefined || input === '') return san

  let pos = 0
  // Each pass consumes at least `T:`, so the loop ends within input.length passes.
  while (true) {
    const colon = input.indexOf(':', pos)
    if (colon === -1) throw new CertificateParseError('subjectAltName entry has no type')
    const type = input.slice(pos, colon)
    if (!ENTRY_TYPE.test(type)) throw new CertificateParseError('subjectAltName entry has an invalid type')

    let value: string
    if (input.charCodeAt(colon + 1) === 0x22) {
      const end = quotedEnd(input, colon + 1)
      value = decodeQuoted(input.slice(colon + 1, end))
      pos = end
    } else {
      const comma = input.indexOf(',', colon + 1)
      const end = comma === -1 ? input.length : comma
      value = input.slice(colon + 1, end)
      if (!isBareValue(value)) throw new CertificateParseError('subjectAltName holds an unquoted special character')
      pos = end
    }

    switch (type) {
      case 'DNS': san.dns.push(value); break
      case 'email': san.email.push(value); break
      case 'URI': san.uri.push(value); break
      case 'IP Address': san.ip.push(normalizeIP(value)); break
    }

    if (pos === input.length) return san
    if (input.charCodeAt(pos) !== 0x2c || input.charCodeAt(pos + 1) !== 0x20 || pos + 2 === input.length) {
      throw new CertificateParseError('subjectAltName entries are not separated by ", "')
    }
    pos += 2
  }
}

/** Index just past the closing quote of the JSON string literal that opens at `start`. */
function quotedEnd (input: string, start: number): number {
  for (let i = start + 1; i < input.length; i++) {
    const c = input.charCodeAt(i)
    if (c === 0x5c) i++
    else if (c === 0x22) return i + 1
  }
  throw new CertificateParseError('subjectAltName has an unterminated quoted value')
}

function decodeQuoted (literal: string): string {
  try {
    return JSON.parse(literal) as string
  } catch {
    throw new CertificateParseError('subjectAltName has an invalid quoted value')
  }
}

// Node leaves a value bare only when it holds none of `"` `\` `,` `'` and no ASCII control character.
function isBareValue (value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c < 0x20 || c === 0x7f || c === 0x22 || c === 0x27 || c === 0x2c || c === 0x5c) return false
  }
  return true
}

// Longest legal textual forms: 15 for dotted IPv4, 45 for IPv6 with full groups and a trailing dotted quad.
const MAX_IPV4_TEXT = 15
const MAX_IPV6_TEXT = 45
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/
const DEC_OCTET = /^(?:0|[1-9][0-9]{0,2})$/

/**
 * Canonical text of an IP address: IPv4 as a dotted quad (no leading zeros), IPv6 as RFC 5952 §4 (lower
 * case, no leading zeros, the first longest run of two or more zero groups as `::`, IPv4-mapped addresses
 * as `::ffff:a.b.c.d` per §5). Zone ids, brackets, prefixes and anything else are refused.
 */
export function normalizeIP (input: string): string {
  if (input.includes(':')) return formatIPv6(parseIPv6(input))
  return parseIPv4(input).join('.')
}

function parseIPv4 (text: string): number[] {
  const parts = text.length <= MAX_IPV4_TEXT ? text.split('.') : []
  if (parts.length !== 4) throw new CertificateParseError('invalid IPv4 address')
  return parts.map((part) => {
    const n = DEC_OCTET.test(part) ? Number(part) : 256
    if (n > 255) throw new CertificateParseError('invalid IPv4 address')
    return n
  })
}

function parseIPv6 (text: string): number[] {
  if (text.length > MAX_IPV6_TEXT) throw new CertificateParseError('invalid IPv6 address')
  const gap = text.indexOf('::')
  if (gap !== -1 && text.indexOf('::', gap + 1) !== -1) throw new CertificateParseError('invalid IPv6 address')

  if (gap === -1) {
    const groups = parseGroups(text, true)
    if (groups.length !== 8) throw new CertificateParseError('invalid IPv6 address')
    return groups
  }
  const head = parseGroups(text.slice(0, gap), false)
  const tail = parseGroups(text.slice(gap + 2), true)
  // `::` stands for at least one zero group (RFC 4291 §2.2).
  if (head.length + tail.length > 7) throw new CertificateParseError('invalid IPv6 address')
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail]
}

function parseGroups (text: string, dottedTailAllowed: boolean): number[] {
  if (text === '') return []
  const parts = text.split(':')
  const groups: number[] = []
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]
    if (dottedTailAllowed && i === parts.length - 1 && part.includes('.')) {
      const [a, b, c, d] = parseIPv4(part)
      groups.push((a << 8) | b, (c << 8) | d)
    } else if (HEX_GROUP.test(part)) {
      groups.push(parseInt(part, 16))
    } else {
      throw new CertificateParseError('invalid IPv6 address')
    }
  }
  return groups
}

function formatIPv6 (groups: number[]): string {
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 &&
      groups[5] === 0xffff) {
    return `::ffff:${groups[6] >> 8}.${groups[6] & 0xff}.${groups[7] >> 8}.${groups[7] & 0xff}`
  }
  let bestStart = -1
  let bestLength = 1
  for (let i = 0; i < 8; i++) {
    if (groups[i] !== 0) continue
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLength) {
      bestStart = i
      bestLength = j - i
    }
    i = j
  }
  const hex = groups.map((g) => g.toString(16))
  if (bestStart === -1) return hex.join(':')
  return hex.slice(0, bestStart).join(':') + '::' + hex.slice(bestStart + bestLength).join(':')
}
