import t from 'tap'
import type { Test } from 'tap'
import { execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { dnEquals, formatDN, parseDN, parseLegacyDN, parseNodeDN } from '../../lib/codecs/dn.js'
import type { RDN } from '../../lib/codecs/dn.js'
import { attributeTypes } from '../../lib/codecs/oids.js'
import { CertificateParseError } from '../../lib/codecs/parse-error.js'
import { getCorpus } from '../helpers/certs.js'
import { opensslLegacyName, opensslName } from '../helpers/openssl.js'

// Golden cases: every reader must agree with what OpenSSL (the library nginx, Apache and Node use)
// prints for the same certificate, and formatDN must reproduce `-nameopt RFC2253,-esc_msb`.

const run = promisify(execFile)
const corpus = await getCorpus()
const dir = mkdtempSync(join(tmpdir(), 'dn-golden-'))
// at exit rather than in a teardown, so that a failure while making the certificates cleans up too
process.once('exit', () => rmSync(dir, { recursive: true, force: true }))

const UNKNOWN_OID = '1.3.6.1.4.1.55555.1'

/**
 * A self-signed certificate with the given `-subj` (`/` between RDNs, `+` inside one, `\` escapes).
 * The config teaches `req` one extra OID, which `openssl x509` and Node then do not know.
 */
async function makeCert (name: string, subject: string, stringMask = 'utf8only'): Promise<string> {
  const config = join(dir, `${name}.cnf`)
  writeFileSync(config, [
    'oid_section = new_oids', '[new_oids]', `testAttribute = ${UNKNOWN_OID}`,
    '[req]', 'distinguished_name = dn', `string_mask = ${stringMask}`, 'utf8 = yes', '[dn]', ''
  ].join('\n'))
  const certPath = join(dir, `${name}.crt`)
  await run('openssl', [
    'req', '-new', '-x509', '-config', config, '-key', corpus.leaves.bob.keyPath, '-days', '1',
    '-utf8', '-multivalue-rdn', '-subj', subject, '-out', certPath
  ])
  return certPath
}

/** A value each type's string table accepts (some are NumericString or fixed-length). */
function tableValue (name: string): string {
  if (name === 'c3') return 'ABC'
  if (name === 'n3') return '123'
  if (['INN', 'OGRN', 'SNILS', 'OGRNIP'].includes(name)) return '12'
  return 'AB'
}

// every type of the table, each in its own RDN, and one OpenSSL does not know
const tableSubject = attributeTypes().map(({ oid, name }) => `/${oid}=${tableValue(name)}`).join('') +
  `/${UNKNOWN_OID}=hello, w\u00f6rld+CN=b`

const [table, quirks, bmp, ambiguous] = await Promise.all([
  makeCert('table', tableSubject),
  // OpenSSL's escaping corner cases: a lone '#', a lone space, blanks at both ends, controls,
  // specials, '=', astral UTF-8, a three-valued RDN (whose order OpenSSL reverses)
  makeCert('quirks', '/CN=#/OU= /O=  lead and trail  /L=tab\there\x7fdel/ST=#lead/street=a=b,c\\+d' +
    '/title=back\\\\slash\\/and<>;"/description=\u00fcn\u00ef \u{1f600}/DC=com/DC=ex+UID=x+OU=z'),
  // string_mask default: OpenSSL makes both non-ASCII values BMPStrings
  makeCert('bmp', '/C=DE/O=M\u00fcller/CN=\u6d4b\u8bd5', 'default'),
  // a value ending in a backslash, and one holding the text \xC3\xBC: the legacy form's ambiguity
  makeCert('ambiguous', '/OU=lit\\\\xC3\\\\xBC/CN=x\\\\/O=admins')
])
const extra = { table, quirks, bmp, ambiguous }

const certs: Array<[string, string]> = [
  ['root', corpus.root.certPath],
  ['intermediate', corpus.intermediate.certPath],
  ['rogueRoot', corpus.rogueRoot.certPath],
  ...Object.entries(corpus.leaves).map(([name, leaf]): [string, string] => [name, leaf.certPath]),
  ...Object.entries(extra)
]

interface Rendering { subject: string, issuer: string }

/**
 * Both names of a certificate in one `openssl x509` run, so that the runs can overlap; the test
 * 'the helpers agree' ties this to test/helpers/openssl.ts. Lines split safely: these forms escape
 * control characters.
 */
async function render (certPath: string, nameopt: string): Promise<Rendering> {
  const { stdout } = await run('openssl', ['x509', '-in', certPath, '-noout', '-subject', '-issuer', '-nameopt', nameopt])
  const [subject, issuer] = stdout.split('\n')
  return { subject: subject!.slice('subject='.length), issuer: issuer!.slice('issuer='.length) }
}

/**
 * What the legacy form cannot carry, asserted exactly; every other name must read back whole.
 * These certificates are self-signed: the same holds for their issuer.
 */
const legacyExceptions: Record<string, (t: Test, legacy: string, expected: RDN[]) => void> = {
  table: (t, legacy, expected) => {
    // PKCS #9 makes friendlyName a BMPString, whose bytes the legacy form prints one by one
    t.ok(legacy.includes('/friendlyName=\\x00A\\x00B/'))
    const fromLegacy = parseLegacyDN(legacy)
    const friendly = expected.findIndex(rdn => rdn[0]!.type === 'friendlyName')
    t.equal(fromLegacy[friendly]![0]!.value, '\u0000A\u0000B')
    fromLegacy[friendly]![0]!.value = 'AB'
    t.same(fromLegacy, expected, 'every other attribute reads back')
  },
  bmp: (t, legacy) => {
    // BMPString bytes are printed one by one (`M\xFCller` is UTF-16 minus its zero bytes)
    t.equal(legacy, '/C=DE/O=M\\xFCller/CN=mK\\x8B\\xD5')
    t.throws(() => parseLegacyDN(legacy), CertificateParseError)
  },
  ambiguous: (t, legacy, expected) => {
    t.equal(legacy, '/OU=lit\\xC3\\xBC/CN=x\\/O=admins')
    t.same(expected.map(rdn => rdn[0]!.value), ['admins', 'x\\', 'lit\\xC3\\xBC'])
    // the backslash that ends CN swallows O into CN (never the reverse: no attribute appears)
    t.same(parseLegacyDN(legacy), [
      [{ type: 'CN', oid: '2.5.4.3', value: 'x/O=admins' }],
      [{ type: 'OU', oid: '2.5.4.11', value: 'lit\u00fc' }]
    ])
  }
}

for (const [name, certPath] of certs) {
  t.test(name, async (t) => {
    const [pem, canonicals, escapeds, legacies] = await Promise.all([
      readFile(certPath), render(certPath, 'RFC2253,-esc_msb'), render(certPath, 'RFC2253'), render(certPath, 'compat')
    ])
    const x509 = new X509Certificate(pem)
    for (const which of ['subject', 'issuer'] as const) {
      const canonical = canonicals[which]
      const escaped = escapeds[which]
      const legacy = legacies[which]
      const fromNode = parseNodeDN(x509[which])
      const fromEscaped = parseDN(escaped)

      t.equal(formatDN(fromNode), canonical, `${which}: formatDN(Node) is openssl's RFC2253,-esc_msb`)
      t.same(fromEscaped, fromNode, `${which}: RFC2253 (hex-escaped) reads as Node's`)
      t.ok(dnEquals(fromEscaped, fromNode), `${which}: dnEquals RFC2253 / Node`)
      t.same(parseDN(canonical), fromNode, `${which}: RFC2253,-esc_msb reads as Node's`)
      t.equal(formatDN(fromEscaped), canonical, `${which}: formatDN(RFC2253) is canonical`)

      const exception = legacyExceptions[name]
      if (exception !== undefined) {
        exception(t, legacy, fromNode)
      } else {
        const fromLegacy = parseLegacyDN(legacy)
        t.same(fromLegacy, fromNode, `${which}: legacy reads as Node's`)
        t.ok(dnEquals(fromLegacy, fromNode), `${which}: dnEquals legacy / Node`)
      }
    }
  })
}

t.test('the helpers agree with the renderings used here', async (t) => {
  for (const certPath of [corpus.leaves.tricky.certPath, extra.quirks]) {
    for (const which of ['subject', 'issuer'] as const) {
      t.equal((await render(certPath, 'RFC2253'))[which], opensslName(certPath, which, 'RFC2253'))
      t.equal((await render(certPath, 'RFC2253,-esc_msb'))[which], opensslName(certPath, which, 'RFC2253,-esc_msb'))
      t.equal((await render(certPath, 'compat'))[which], opensslLegacyName(certPath, which))
    }
  }
})

t.test('the corpus covers what it should', async (t) => {
  const subject = (path: string): string => opensslName(path, 'subject', 'RFC2253,-esc_msb')
  t.equal(subject(corpus.leaves.nocn.certPath), '', 'an empty subject')
  t.equal(subject(corpus.leaves.multirdn.certPath), 'UID=1234+CN=bob,O=Example Corp,C=US')
  t.equal(subject(corpus.leaves.tricky.certPath),
    'CN=\\#Smith\\, John\\+admin=1 \\"x\\" \\<a/b\\>\\;\\\\\\ ,O=Example Corp,C=US')
  t.equal(subject(extra.quirks),
    'DC=ex+UID=x+OU=z,DC=com,description=\u00fcn\u00ef \u{1f600},title=back\\\\slash/and\\<\\>\\;\\",' +
    'street=a=b\\,c\\+d,ST=\\#lead,L=tab\\09here\\7Fdel,O=\\  lead and trail \\ ,OU=\\ ,CN=#')
  t.match(subject(extra.table), `${UNKNOWN_OID}=#0C0D68656C6C6F2C2077C3B6726C64+CN=b,`,
    'an unknown type is dumped as the DER of a UTF8String')
  const tableRDNs = parseDN(subject(extra.table))
  t.equal(tableRDNs.length, attributeTypes().length + 1, 'every table type is in the table certificate')
  t.same(tableRDNs.slice(1).reverse().map(rdn => rdn[0]!.type), attributeTypes().map(type => type.name),
    'OpenSSL prints each type with the table name')
})

t.test('a multi-valued RDN written in any order formats as OpenSSL prints the certificate', async (t) => {
  const members = ['O=Bee', 'O=A', 'CN=zz', 'OU=a longer unit', 'emailAddress=a@b.c', 'C=US', 'DC=example', 'serialNumber=42', 'L=M\u00fcnchen']
  const orders = [members, [...members].reverse(), [...members.slice(4), ...members.slice(0, 4)]]
  const printed = await Promise.all(orders.map(async (order, i) =>
    opensslName(await makeCert(`multi-${i}`, `/${order.join('+')}/CN=leaf`), 'subject', 'RFC2253,-esc_msb')))
  t.equal(new Set(printed).size, 1, 'OpenSSL prints one order whatever the -subj order (the SET OF is sorted)')
  for (const order of orders) {
    const written = `CN=leaf,${order.join('+')}`
    t.equal(formatDN(parseDN(written)), printed[0], `formatDN of ${written}`)
  }
})
