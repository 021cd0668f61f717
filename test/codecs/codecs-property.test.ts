import t from 'tap'
import fc from 'fast-check'
import { isDeepStrictEqual } from 'node:util'
import { normalizeIP, parseNodeSAN } from '../../lib/codecs/san.js'
import { isSpiffeId, parseSpiffePattern, spiffeIdFromUris, spiffeMatches } from '../../lib/codecs/spiffe.js'
import { normalizeFingerprint256, normalizeSerial } from '../../lib/codecs/fingerprint.js'
import { latin1ToUtf8 } from '../../lib/codecs/header-bytes.js'
import { propertyRunner } from '../helpers/property.js'

const numRuns = process.env.CI ? 100_000 : 20_000
t.setTimeout(process.env.CI ? 600_000 : 120_000)

const { parsesOrRefuses, timed } = propertyRunner(numRuns)

// Arbitrary text: any code point, any UTF-16 unit (lone surrogates too), strings built from the tokens each codec
// cares about, and valid inputs with a few one-character edits: the last two reach far deeper into the parsers
// than uniform noise does.
const anyCodePoint = fc.string({ unit: 'binary', maxLength: 80 })
const anyCodeUnit = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 80 })
const tokens = (list: string[], maxLength = 24) =>
  fc.array(fc.oneof(fc.constantFrom(...list), fc.string({ unit: 'binary', maxLength: 1 })), { maxLength }).map((a) => a.join(''))
const edit = fc.record({ at: fc.nat(), drop: fc.nat({ max: 2 }), insert: fc.string({ unit: 'binary', maxLength: 2 }) })
const mutated = (valid: fc.Arbitrary<string>) => fc.tuple(valid, fc.array(edit, { maxLength: 2 })).map(([text, edits]) => {
  for (const { at, drop, insert } of edits) {
    const i = at % (text.length + 1)
    text = text.slice(0, i) + insert + text.slice(i + drop)
  }
  return text
})
const text = (list: string[], valid: fc.Arbitrary<string>) => fc.oneof(anyCodePoint, anyCodeUnit, tokens(list), valid, mutated(valid))

// Valid inputs, written the way their producers write them.
const groupArb = fc.oneof(fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff }))
const groupsArb = fc.oneof(
  fc.array(groupArb, { minLength: 8, maxLength: 8 }),
  fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Array.from({ length: 8 }, (_, i) => (b[2 * i] << 8) | b[2 * i + 1])),
  fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff })).map(([a, b]) => [0, 0, 0, 0, 0, 0xffff, a, b])
)
const spellingArb = fc.record({
  pad: fc.array(fc.nat({ max: 3 }), { minLength: 8, maxLength: 8 }),
  upper: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
  compress: fc.nat(),
  dotted: fc.boolean()
})
const ipv4Arb = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((b) => Array.from(b).join('.'))
const validIP = fc.oneof(ipv4Arb, fc.tuple(groupsArb, spellingArb).map(([g, s]) => spell(g, s)))
// Node's rule: a value holding `,` `"` `\` `'` or a control character becomes a JSON literal with `,` as \u002c.
const needsQuotes = (v: string) => Array.from(v).some((c) => c < ' ' || c === '\u007f' || '",\'\\'.includes(c))
const nodeValue = (v: string) => needsQuotes(v) ? JSON.stringify(v).replaceAll(',', '\\u002c') : v
const sanEntries = fc.array(fc.oneof(
  fc.tuple(fc.constantFrom('DNS', 'email', 'URI', 'DirName', 'othername', 'Registered ID'), fc.string({ unit: 'binary', maxLength: 12 })),
  fc.tuple(fc.constant('IP Address'), validIP)
), { maxLength: 6 })
const sanString = (entries: Array<[string, string]>) => entries.map(([type, v]) => `${type}:${nodeValue(v)}`).join(', ')
const validSAN = sanEntries.map(sanString)
const validSpiffe = fc.tuple(fc.stringMatching(/^[a-z0-9._-]{1,8}$/), fc.array(fc.stringMatching(/^[A-Za-z0-9._-]{1,4}$/),
  { maxLength: 4 }), fc.boolean()).map(([td, segments, star]) =>
  `spiffe://${td}${segments.map((s) => '/' + s).join('')}${star ? '/*' : ''}`)
const validSerial = fc.oneof(fc.bigInt({ min: 0n, max: (1n << 260n) }).map((n) => n.toString()),
  fc.uint8Array({ minLength: 1, maxLength: 34 }).map((b) => Buffer.from(b).toString('hex')),
  fc.uint8Array({ minLength: 1, maxLength: 34 }).map((b) => Buffer.from(b).toString('hex').replace(/(..)(?!$)/g, '$1:')))
const validFingerprint = fc.tuple(fc.uint8Array({ minLength: 32, maxLength: 32 }),
  fc.constantFrom('colon', 'hex', 'base64', 'base64url')).map(([b, style]) => {
  const hex = Buffer.from(b).toString('hex')
  if (style === 'colon') return hex.replace(/(..)(?!$)/g, '$1:')
  return style === 'hex' ? hex : Buffer.from(b).toString(style as BufferEncoding)
})
const validHeaderBytes = fc.string({ unit: 'binary', maxLength: 30 }).map((s) => Buffer.from(s, 'utf8').toString('latin1'))

const sanText = text(['DNS:', 'email:', 'URI:', 'IP Address:', 'DirName:', 'othername:', ', ', ',', ' ', '"', '\\', '\\"',
  '\\u002c', "'", ':', 'a.example', '::1', '<unsupported>'], validSAN)
const ipText = text(['0', '1', '00', '01', '255', '256', 'f', 'FFFF', '12345', ':', '::', '.', '%', '['], validIP)
const spiffeText = text(['spiffe://', 'SPIFFE://', 'example.org', 'Example', 'a', '/', '.', '..', '//', '*', '/*', '?', '#',
  ':', '@', '%2F'], validSpiffe)
const fingerprintText = text(['0', 'a', 'F', 'g', ':', '+', '/', '-', '_', '='], validFingerprint)
const serialText = text(['0x', '0', '00', 'a1', 'F', ':', ' ', '-', '+', '9'], validSerial)
const headerText = text(['\u00c3', '\u00bc', '\u00e6', '\u0080', '\u00bf', '\u00ed', '\u00a0', '\u00f0', '\u00ff', 'a'],
  validHeaderBytes)

t.test('every codec fed arbitrary text answers or throws CertificateParseError, nothing else', async (t) => {
  timed(t, 'parseNodeSAN', fc.property(sanText, (input) => {
    const san = parsesOrRefuses(() => parseNodeSAN(input))
    if (san === undefined) return
    for (const list of [san.dns, san.email, san.uri, san.ip]) {
      if (!Array.isArray(list) || !list.every((v) => typeof v === 'string')) return false
    }
    return san.ip.every((ip) => normalizeIP(ip) === ip)
  }))

  timed(t, 'normalizeIP', fc.property(ipText, (input) => {
    const ip = parsesOrRefuses(() => normalizeIP(input))
    return ip === undefined || normalizeIP(ip) === ip
  }))

  timed(t, 'isSpiffeId, parseSpiffePattern, spiffeMatches', fc.property(spiffeText, spiffeText, (a, b) => {
    const valid = isSpiffeId(a)
    const pattern = parsesOrRefuses(() => parseSpiffePattern(a))
    if (valid && (pattern === undefined || pattern.prefix || !spiffeMatches(pattern, a))) return false
    if (pattern !== undefined && spiffeMatches(pattern, b) && !isSpiffeId(b)) return false
    return typeof valid === 'boolean'
  }))

  timed(t, 'spiffeIdFromUris', fc.property(fc.array(spiffeText, { maxLength: 4 }), (uris) => {
    const id = spiffeIdFromUris(uris)
    return id === null || (isSpiffeId(id) && uris.filter((u) => /^spiffe:/i.test(u)).length === 1)
  }))

  timed(t, 'normalizeFingerprint256', fc.property(fingerprintText, (input) => {
    const fp = parsesOrRefuses(() => normalizeFingerprint256(input))
    return fp === undefined || (/^[0-9A-F]{2}(?::[0-9A-F]{2}){31}$/.test(fp) && normalizeFingerprint256(fp) === fp)
  }))

  timed(t, 'normalizeSerial (hex and decimal)', fc.property(serialText, (input) => {
    for (const radix of ['hex', 'decimal'] as const) {
      const serial = parsesOrRefuses(() => normalizeSerial(input, radix))
      if (serial !== undefined && (!/^(?:0|(?:[0-9A-F]{2}){1,32})$/.test(serial) || normalizeSerial(serial) !== serial)) {
        return false
      }
    }
    return true
  }))

  timed(t, 'latin1ToUtf8', fc.property(headerText, (input) => {
    const decoded = parsesOrRefuses(() => latin1ToUtf8(input))
    // Whatever is accepted must encode back to exactly the bytes that came in.
    return decoded === undefined || Buffer.from(decoded, 'utf8').toString('latin1') === input
  }))
})

t.test('parseNodeSAN recovers exactly the entries Node wrote, whatever they hold', async (t) => {
  timed(t, 'parseNodeSAN round trip', fc.property(sanEntries, (entries) => {
    const of = (type: string) => entries.filter(([ty]) => ty === type).map(([, v]) => v)
    const expected = { dns: of('DNS'), email: of('email'), uri: of('URI'), ip: of('IP Address').map(normalizeIP) }
    return isDeepStrictEqual(parseNodeSAN(sanString(entries)), expected)
  }))
})

// An independent RFC 5952 formatter: tries every zero run instead of scanning once.
function rfc5952 (groups: number[]): string {
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${groups[6] >> 8}.${groups[6] & 255}.${groups[7] >> 8}.${groups[7] & 255}`
  }
  let best = { start: 0, length: 0 }
  for (let start = 0; start < 8; start++) {
    let length = 0
    while (start + length < 8 && groups[start + length] === 0) length++
    if (length > best.length) best = { start, length }
  }
  const hex = groups.map((g) => g.toString(16))
  if (best.length < 2) return hex.join(':')
  return `${hex.slice(0, best.start).join(':')}::${hex.slice(best.start + best.length).join(':')}`
}

interface Spelling { pad: number[], upper: boolean[], compress: number, dotted: boolean }

/** Writes the groups the long way round: padded, mixed case, any zero run (even one group) as `::`, maybe a dotted tail. */
function spell (groups: number[], s: Spelling): string {
  const runs: Array<[number, number]> = []
  for (let i = 0; i < 8; i++) {
    for (let j = i; j < 8 && groups[j] === 0; j++) runs.push([i, j + 1])
  }
  const run = runs.length > 0 && s.compress % (runs.length + 1) !== runs.length ? runs[s.compress % (runs.length + 1)] : null
  const dotted = s.dotted && (run === null || run[1] <= 6)
  const piece = (i: number) => {
    const h = groups[i].toString(16).padStart(Math.min(4, groups[i].toString(16).length + s.pad[i]), '0')
    return s.upper[i] ? h.toUpperCase() : h
  }
  const pieces = (from: number, to: number) => {
    const out: string[] = []
    for (let i = from; i < to; i++) {
      if (dotted && i === 6) {
        out.push(`${groups[6] >> 8}.${groups[6] & 255}.${groups[7] >> 8}.${groups[7] & 255}`)
        break
      }
      out.push(piece(i))
    }
    return out.join(':')
  }
  return run === null ? pieces(0, 8) : `${pieces(0, run[0])}::${pieces(run[1], 8)}`
}

t.test('normalizeIP turns any spelling of any IPv6 address into its RFC 5952 text', async (t) => {
  let comparedWithWhatwg = 0
  timed(t, 'normalizeIP IPv6 round trip', fc.property(groupsArb, spellingArb, (groups, spelling) => {
    const written = spell(groups, spelling)
    const expected = rfc5952(groups)
    if (normalizeIP(written) !== expected) return false
    if (expected.includes('.')) return true // WHATWG serializes IPv4-mapped addresses in hex: no common ground.
    comparedWithWhatwg++
    return new URL(`http://[${written}]`).hostname === `[${expected}]`
  }))
  t.ok(comparedWithWhatwg > numRuns / 2, `${comparedWithWhatwg} cases cross-checked with WHATWG URL`)
})

t.test('normalizeIP: IPv4 round trip', async (t) => {
  timed(t, 'normalizeIP IPv4 round trip', fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), (b) => {
    const dotted = Array.from(b).join('.')
    return normalizeIP(dotted) === dotted && new URL(`http://${dotted}`).hostname === dotted
  }))
})

t.test('normalizeFingerprint256: every spelling of any 32 bytes gives one result', async (t) => {
  timed(t, 'normalizeFingerprint256 spellings', fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }),
    fc.array(fc.boolean(), { minLength: 64, maxLength: 64 }), (raw, upper) => {
      const bytes = Buffer.from(raw)
      const hex = bytes.toString('hex')
      const expected = hex.toUpperCase().replace(/(..)(?!$)/g, '$1:')
      const mixedCase = Array.from(hex, (c, i) => upper[i] ? c.toUpperCase() : c).join('')
      const spellings = [
        expected, expected.toLowerCase(), mixedCase.replace(/(..)(?!$)/g, '$1:'), hex, hex.toUpperCase(), mixedCase,
        bytes.toString('base64'), bytes.toString('base64').replace(/=$/, ''),
        bytes.toString('base64url'), bytes.toString('base64url') + '='
      ]
      return spellings.every((s) => normalizeFingerprint256(s) === expected)
    }))
})

t.test('normalizeSerial: decimal and every hex spelling of any positive serial agree', async (t) => {
  timed(t, 'normalizeSerial spellings', fc.property(fc.bigInt({ min: 1n, max: (1n << 256n) - 1n }), fc.nat({ max: 3 }),
    (n, zeros) => {
      let hex = n.toString(16).toUpperCase()
      if (hex.length % 2 === 1) hex = '0' + hex
      const withZeros = '00'.repeat(zeros) + hex.toLowerCase()
      const spellings = [hex, hex.toLowerCase(), '0x' + withZeros, withZeros.replace(/(..)(?!$)/g, '$1:'),
        withZeros.replace(/(..)(?!$)/g, '$1 ')]
      return normalizeSerial(n.toString(), 'decimal') === hex && spellings.every((s) => normalizeSerial(s) === hex)
    }))
})

t.test('latin1ToUtf8 recovers any well-formed text from its UTF-8 bytes', async (t) => {
  timed(t, 'latin1ToUtf8 round trip', fc.property(anyCodePoint, (s) => {
    fc.pre(Buffer.from(s, 'utf8').toString('utf8') === s)
    return latin1ToUtf8(Buffer.from(s, 'utf8').toString('latin1')) === s
  }))
})
