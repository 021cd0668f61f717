import t from 'tap'
import type { Test } from 'tap'
import fc from 'fast-check'
import { isDeepStrictEqual } from 'node:util'
import { dnEquals, formatDN, parseDN, parseLegacyDN, parseNodeDN } from '../../lib/codecs/dn.js'
import type { DNAttribute, RDN } from '../../lib/codecs/dn.js'
import { attributeTypeByOID, attributeTypes } from '../../lib/codecs/oids.js'
import { CertificateParseError } from '../../lib/codecs/parse-error.js'

// Runs per property: DN_PROPERTY_RUNS, else 100k in CI and 20k locally. Measured on the 2-core
// dev box at 100k: 1 to 7 s per property, 19 s for the six; the timeout leaves ample room.
const runs = Number(process.env.DN_PROPERTY_RUNS ?? (process.env.CI !== undefined ? 100_000 : 20_000))
t.setTimeout(Math.max(60_000, runs * 3))

function check<T> (t: Test, arbitrary: fc.Arbitrary<T>, predicate: (value: T) => void): void {
  const details = fc.check(fc.property(arbitrary, predicate), { numRuns: runs })
  t.notOk(details.failed, fc.defaultReportMessage(details) ?? `${details.numRuns} runs`)
}

const SPECIALS = [',', '+', '"', '\\', '<', '>', ';', '=', '#', ' ', '/', '\n', '\r', '\t', '\0', '\x7f', '\x80', 'ü', '测', '😀']

/** One character: an RDN special, any code point (astral included) or printable ASCII. */
const char = fc.oneof(
  fc.constantFrom(...SPECIALS),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
  fc.string({ minLength: 1, maxLength: 1 })
)
const value = fc.string({ unit: char, maxLength: 12 })

const knownType = fc.constantFrom(...attributeTypes())
const unknownOID = fc.tuple(
  fc.constantFrom('1.3.6.1.4.1', '2.25', '1.2.3', '0.0', '2.999'),
  fc.array(fc.nat(), { minLength: 1, maxLength: 3 })
).map(([prefix, arcs]) => `${prefix}.${arcs.join('.')}`).filter(oid => attributeTypeByOID(oid) === undefined)
const type = fc.oneof({ weight: 4, arbitrary: knownType }, { weight: 1, arbitrary: unknownOID.map(oid => ({ name: oid, oid })) })

function nameArbitrary (values: fc.Arbitrary<string>): fc.Arbitrary<RDN[]> {
  const attribute = fc.tuple(type, values).map(([{ name, oid }, v]): DNAttribute => ({ type: name, oid, value: v }))
  return fc.array(fc.array(attribute, { minLength: 1, maxLength: 4 }), { maxLength: 6 })
}

/** What Node's X509Certificate#subject would show: certificate order, escaped, no hex dumps. */
function nodeRendering (rdns: RDN[]): string {
  const escaped = (attribute: DNAttribute): string =>
    `${attribute.type}=${formatDN([[{ type: 'CN', oid: '2.5.4.3', value: attribute.value }]]).slice(3)}`
  return rdns.map(rdn => [...rdn].reverse().map(escaped).join(' + ')).reverse().join('\n')
}

/** X509_NAME_oneline() of the name, for values written as UTF-8. */
function legacyRendering (rdns: RDN[]): string {
  const escaped = (v: string): string => [...Buffer.from(v, 'utf8')].map(byte => {
    if (byte < 0x20 || byte > 0x7e) return `\\x${byte.toString(16).toUpperCase().padStart(2, '0')}`
    const c = String.fromCharCode(byte)
    return c === '/' || c === '+' ? `\\${c}` : c
  }).join('')
  return [...rdns].reverse()
    .map(rdn => [...rdn].reverse().map(({ type, value }) => `${type}=${escaped(value)}`).join('+'))
    .map(rdn => `/${rdn}`).join('')
}

t.test('parseDN(formatDN(r)) is r (a multi-valued RDN in OpenSSL\'s order)', async (t) => {
  check(t, nameArbitrary(value), (rdns) => {
    const text = formatDN(rdns)
    const parsed = parseDN(text)
    if (!dnEquals(parsed, rdns)) throw new Error('round trip changed the name')
    // Only the order inside a multi-valued RDN may change: it is canonical, so single-valued names come back as they were.
    if (rdns.every((rdn) => rdn.length === 1) && !isDeepStrictEqual(parsed, rdns)) throw new Error('round trip changed a single-valued name')
    if (formatDN(parsed) !== text) throw new Error('the canonical form is not stable')
    const shuffled = rdns.map((rdn) => [...rdn].reverse())
    if (formatDN(shuffled) !== text) throw new Error('the order inside a multi-valued RDN changed the canonical form')
  })
})

t.test('parseNodeDN reads the Node rendering of r as r', async (t) => {
  check(t, nameArbitrary(value), (rdns) => {
    if (!isDeepStrictEqual(parseNodeDN(nodeRendering(rdns)), rdns)) throw new Error('Node rendering misread')
  })
})

t.test('parseLegacyDN reads the legacy rendering of r as r (values without a backslash)', async (t) => {
  // the legacy form does not escape the backslash, so values holding one are ambiguous by design
  const legacyValue = fc.string({ unit: char.filter(c => c !== '\\'), maxLength: 12 })
  check(t, nameArbitrary(legacyValue), (rdns) => {
    if (!isDeepStrictEqual(parseLegacyDN(legacyRendering(rdns)), rdns)) throw new Error('legacy rendering misread')
  })
})

const TOKENS = [
  'CN', 'cn', 'O', 'UID', 'uid', 'OID.2.5.4.3', '2.5.4.3', '1.2.3.4', '0.99', 'emailAddress', 'FOO', 'CN=', '/CN=',
  ',O=', '=', ',', '+', ' + ', ';', '\n', '/', '\\', '\\,', '\\+', '\\/', '\\\\', '\\ ', '\\C3', '\\BC', '\\c3',
  '\\0A', '\\00', '\\x', '\\xC3', '\\xBC', '\\x41', '\\x0A', '#', '#0C03616263', '#130431323334', '#1E', '#0C81',
  '0C', '0', '41', 'F', ' ', '  ', '"', '<', '>', '\0', '\t', 'a', 'bob', 'ü', '测', '😀', '\uD800', '\uDC00'
]

const TYPES = ['CN', 'cn', ' O ', 'UID', 'uid', 'OID.2.5.4.3', '2.5.4.3', '1.2.3.4', 'emailAddress', 'E']
const VALUE_TOKENS = [
  'a', 'bob', ' ', 'x y', '=', '#', 'ü', '😀', '\\,', '\\+', '\\\\', '\\ ', '\\#', '\\C3\\BC', '\\0A', '\\/',
  '\\xC3\\xBC', '\\x0A', '\\x41', '#0C03616263'
]

/** Names in one parser's format, mostly well-formed, with a token out of place here and there. */
function dnLike (prefix: string, separators: string[]): fc.Arbitrary<string> {
  const attribute = fc.tuple(
    fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...TYPES) }, fc.constantFrom(...TOKENS)),
    fc.oneof({ weight: 6, arbitrary: fc.constant('=') }, fc.constantFrom(' = ', '', '==')),
    fc.array(fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom(...VALUE_TOKENS) }, { weight: 1, arbitrary: fc.constantFrom(...TOKENS) }
    ), { maxLength: 4 })
  ).map(([type, equals, value]) => type + equals + value.join(''))
  return fc.tuple(
    fc.array(attribute, { minLength: 1, maxLength: 6 }),
    fc.array(fc.constantFrom(...separators), { minLength: 5, maxLength: 5 })
  ).map(([attributes, between]) => prefix + attributes.map((text, i) => (i > 0 ? between[i - 1] : '') + text).join(''))
}

function anyString (prefix: string, separators: string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: dnLike(prefix, separators) },
    fc.string({ maxLength: 64 }),
    fc.string({ unit: 'binary', maxLength: 64 }),
    // any UTF-16 code unit, lone surrogates included
    fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map(c => String.fromCharCode(c)), maxLength: 32 }),
    fc.tuple(fc.boolean(), fc.array(fc.constantFrom(...TOKENS), { maxLength: 24 }))
      .map(([slash, tokens]) => (slash ? '/' : '') + tokens.join(''))
  )
}

const parsers: Array<[string, (input: string) => RDN[], fc.Arbitrary<string>]> = [
  ['parseDN', parseDN, anyString('', [',', '+', ' + ', ', ', ';', '\n', '/', ''])],
  ['parseNodeDN', parseNodeDN, anyString('', ['\n', ' + ', '+', ',', ''])],
  ['parseLegacyDN', parseLegacyDN, anyString('/', ['/', '+', '\\/', ' ', ''])]
]

for (const [name, parse, inputs] of parsers) {
  t.test(`${name} on arbitrary strings returns a sound name or throws CertificateParseError`, async (t) => {
    let slowest = 0
    let accepted = 0
    check(t, inputs, (input) => {
      const start = process.hrtime.bigint()
      let rdns: RDN[]
      try {
        rdns = parse(input)
      } catch (err) {
        if (!(err instanceof CertificateParseError)) throw err
        return
      } finally {
        slowest = Math.max(slowest, Number(process.hrtime.bigint() - start))
      }
      accepted++
      // whatever is accepted has a canonical form that reads back as the same name
      const text = formatDN(rdns)
      if (!dnEquals(parseDN(text), rdns) || formatDN(parseDN(text)) !== text) throw new Error('accepted name does not round-trip')
    })
    t.ok(slowest < 250e6, `slowest call ${(slowest / 1e6).toFixed(2)} ms`)
    t.ok(accepted > 0, `some inputs are accepted (${accepted})`)
  })
}
