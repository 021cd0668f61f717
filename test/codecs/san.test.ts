import t from 'tap'
import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { normalizeIP, parseNodeSAN } from '../../lib/codecs/san.js'
import { spiffeIdFromUris } from '../../lib/codecs/spiffe.js'
import { CertificateParseError } from '../../lib/codecs/parse-error.js'

// Certificates are made here with the openssl CLI so that every SAN string below is what this Node prints.
const dir = mkdtempSync(join(tmpdir(), 'san-test-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const key = join(dir, 'key.pem')
execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key])

function makeCert (extension: string): X509Certificate {
  const config = join(dir, 'req.cnf')
  writeFileSync(config, '[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = ext\n[dn]\nCN = san test\n' +
    `[ext]\n${extension}\n`)
  return new X509Certificate(execFileSync('openssl', ['req', '-x509', '-new', '-key', key, '-config', config, '-days', '1']))
}

/** A certificate whose SAN extension holds exactly these lines of an openssl `[alt]` section. */
function certWithAltSection (lines: string[]): X509Certificate {
  return makeCert('subjectAltName = @alt\n[alt]\n' + lines.join('\n'))
}

// For names openssl's config syntax cannot express (control bytes, a bad IP length) the GeneralNames DER is
// built here and handed to openssl as a raw extension value.
function tlv (tag: number, body: Buffer): Buffer {
  const n = body.length
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff]
  return Buffer.concat([Buffer.from([tag, ...length]), body])
}
const gn = {
  email: (s: string) => tlv(0x81, Buffer.from(s, 'latin1')),
  dns: (s: string) => tlv(0x82, Buffer.from(s, 'latin1')),
  uri: (s: string) => tlv(0x86, Buffer.from(s, 'latin1')),
  ip: (bytes: number[]) => tlv(0x87, Buffer.from(bytes)),
  rid: (oid: number[]) => tlv(0x88, Buffer.from(oid)),
  dirName: (rdns: Array<[number[], string]>) => tlv(0xa4, tlv(0x30, Buffer.concat(rdns.map(([oid, value]) =>
    tlv(0x31, tlv(0x30, Buffer.concat([tlv(0x06, Buffer.from(oid)), tlv(0x0c, Buffer.from(value, 'utf8'))]))))))),
  otherName: (oid: number[], value: Buffer) => tlv(0xa0, Buffer.concat([tlv(0x06, Buffer.from(oid)), tlv(0xa0, value)])),
  x400: () => tlv(0xa3, tlv(0x30, Buffer.alloc(0))),
  ediParty: () => tlv(0xa5, tlv(0xa1, tlv(0x0c, Buffer.from('x'))))
}
const OID_CN = [0x55, 4, 3]
const OID_O = [0x55, 4, 10]
const OID_MS_UPN = [0x2b, 6, 1, 4, 1, 0x82, 0x37, 0x14, 2, 3]

function certWithNames (names: Buffer[]): X509Certificate {
  return makeCert(`subjectAltName = DER:${tlv(0x30, Buffer.concat(names)).toString('hex')}`)
}

const empty = { dns: [], email: [], uri: [], ip: [] }

t.test('no SAN extension and the empty string give empty lists', async (t) => {
  const cert = makeCert('basicConstraints = CA:FALSE')
  t.equal(cert.subjectAltName, undefined)
  t.same(parseNodeSAN(cert.subjectAltName), empty)
  t.same(parseNodeSAN(''), empty)
})

t.test('the proxy lab `san` certificate: every type, certificate order, IPv6 normalized', async (t) => {
  const cert = certWithAltSection([
    'DNS.1 = api.example.org',
    'DNS.2 = *.svc.example.net',
    'email.1 = api@example.org',
    'URI.1 = spiffe://example.org/ns/prod/sa/api',
    'IP.1 = 127.0.0.1',
    'IP.2 = 2001:db8::1',
    'otherName.1 = 1.3.6.1.4.1.311.20.2.3;UTF8:api@example.corp'
  ])
  // Byte-for-byte what Node printed for the captured certificate in fixtures/proxies/nginx/san.json.
  t.equal(cert.subjectAltName, 'DNS:api.example.org, DNS:*.svc.example.net, email:api@example.org, ' +
    'URI:spiffe://example.org/ns/prod/sa/api, IP Address:127.0.0.1, IP Address:2001:DB8:0:0:0:0:0:1, ' +
    'othername:UPN:api@example.corp')
  const expected = {
    dns: ['api.example.org', '*.svc.example.net'],
    email: ['api@example.org'],
    uri: ['spiffe://example.org/ns/prod/sa/api'],
    ip: ['127.0.0.1', '2001:db8::1']
  }
  t.same(parseNodeSAN(cert.subjectAltName), expected)
  t.same(parseNodeSAN(cert.toLegacyObject().subjectaltname), expected, 'getPeerCertificate() text parses the same')
})

t.test('certificate order is kept within each type', async (t) => {
  const cert = certWithAltSection(['DNS.1 = z.example', 'IP.1 = ::1', 'DNS.2 = a.example', 'IP.2 = 10.0.0.1',
    'DNS.3 = m.example'])
  t.same(parseNodeSAN(cert.subjectAltName), {
    dns: ['z.example', 'a.example', 'm.example'], email: [], uri: [], ip: ['::1', '10.0.0.1']
  })
})

t.test('SAN forgery through Node\'s quoting: a DNS name holding ", DNS:" stays one entry', async (t) => {
  const cert = certWithAltSection(['DNS.1 = a, DNS:evil.com', 'DNS.2 = good.example'])
  t.equal(cert.subjectAltName, 'DNS:"a\\u002c DNS:evil.com", DNS:good.example')
  t.same(parseNodeSAN(cert.subjectAltName).dns, ['a, DNS:evil.com', 'good.example'])
})

t.test('SAN forgery through Node\'s quoting: a URI with comma, quote, apostrophe and backslash', async (t) => {
  // openssl's config syntax needs \" \' \\ for the literal characters.
  const cert = certWithAltSection(['URI.1 = https://x.example/a,b\\"c\\\'d\\\\e'])
  t.equal(cert.subjectAltName, 'URI:"https://x.example/a\\u002cb\\"c\'d\\\\e"')
  t.same(parseNodeSAN(cert.subjectAltName), { ...empty, uri: ['https://x.example/a,b"c\'d\\e'] })
})

t.test('SAN forgery through Node\'s quoting: no second SPIFFE ID and no extra IP can be smuggled', async (t) => {
  const cert = certWithAltSection([
    'URI.1 = spiffe://example.org/ns/prod/sa/api, URI:spiffe://example.org/ns/admin/sa/root',
    'DNS.1 = x.example, IP Address:10.0.0.1'
  ])
  const san = parseNodeSAN(cert.subjectAltName)
  t.same(san.uri, ['spiffe://example.org/ns/prod/sa/api, URI:spiffe://example.org/ns/admin/sa/root'])
  t.same(san.ip, [])
  t.same(san.dns, ['x.example, IP Address:10.0.0.1'])
  t.equal(spiffeIdFromUris(san.uri), null, 'the forged text is not a valid SPIFFE ID')
})

t.test('an apostrophe alone makes Node quote the value', async (t) => {
  const cert = certWithNames([gn.dns("it's.example")])
  t.equal(cert.subjectAltName, 'DNS:"it\'s.example"')
  t.same(parseNodeSAN(cert.subjectAltName).dns, ["it's.example"])
})

t.test('control and non-ASCII bytes in IA5 names come back as the latin1 characters', async (t) => {
  const cert = certWithNames([gn.dns('a\x01\x7f\x80\xff b'), gn.email('x@y.example'), gn.dns('')])
  t.equal(cert.subjectAltName, 'DNS:"a\\u0001\\u007f\\u0080\\u00ff b", email:x@y.example, DNS:')
  t.same(parseNodeSAN(cert.subjectAltName), { ...empty, dns: ['a\x01\x7f\x80\xff b', ''], email: ['x@y.example'] })
})

t.test('DirName, othername, Registered ID, X400Name and EdiPartyName are skipped, not errors', async (t) => {
  const cert = certWithNames([
    gn.dns('first.example'),
    gn.dirName([[OID_CN, 'a, b'], [OID_O, 'Ü"x, DNS:evil.example']]),
    gn.dirName([[OID_CN, 'simple']]),
    gn.otherName(OID_MS_UPN, tlv(0x0c, Buffer.from('u, DNS:evil.example"'))),
    gn.otherName([0x2a, 3], tlv(0x0c, Buffer.from('unknown'))),
    gn.rid([0x2a, 3, 4]),
    gn.x400(),
    gn.ediParty(),
    gn.uri('urn:last')
  ])
  // A DirName is printed in RFC 2253 form and quoted as soon as it holds a comma; ', ' never appears bare.
  t.equal(cert.subjectAltName, 'DNS:first.example, DirName:"O=Ü\\\\\\"x\\\\\\u002c DNS:evil.example\\u002cCN=a\\\\\\u002c b", ' +
    'DirName:CN=simple, othername:"UPN:u\\u002c DNS:evil.example\\"", othername:<unsupported>, ' +
    'Registered ID:1.2.3.4, X400Name:<unsupported>, EdiPartyName:<unsupported>, URI:urn:last')
  t.same(parseNodeSAN(cert.subjectAltName), { ...empty, dns: ['first.example'], uri: ['urn:last'] })
})

t.test('an IP SAN of a length other than 4 or 16 bytes is a malformed certificate', async (t) => {
  const cert = certWithNames([gn.ip([1, 2, 3, 4]), gn.ip([1, 2, 3, 4, 5])])
  t.equal(cert.subjectAltName, 'IP Address:1.2.3.4, IP Address:<invalid length=5>')
  t.throws(() => parseNodeSAN(cert.subjectAltName), CertificateParseError)
})

t.test('IPv4-mapped IPv6 SANs are printed the RFC 5952 way', async (t) => {
  const cert = certWithNames([gn.ip([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1]),
    gn.ip([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])])
  t.equal(cert.subjectAltName, 'IP Address:0:0:0:0:0:FFFF:C000:201, IP Address:FE80:0:0:0:0:0:0:0')
  t.same(parseNodeSAN(cert.subjectAltName).ip, ['::ffff:192.0.2.1', 'fe80::'])
})

t.test('malformed SAN text is refused with CertificateParseError, without echoing it', async (t) => {
  const bad = [
    'DNS', // no colon
    ':a.example', // empty type
    'D-NS:a.example', // type outside Node's alphabet
    'DNS:a.example,DNS:b.example', // separator without space
    'DNS:a.example, ', // trailing separator
    'DNS:a.example,', // trailing comma
    'DNS:a.example, , DNS:b', // empty entry
    'DNS:"a.example', // unterminated quote
    'DNS:"a.example\\"', // escaped closing quote only
    'DNS:"a"b, DNS:c', // text after the quoted value
    'DNS:"\\x41"', // not a JSON escape
    'DNS:"a\tb"', // raw control character inside JSON
    'DNS:a"b', // Node would have quoted these
    "DNS:it's",
    'DNS:a\\b',
    'DNS:a\tb',
    'DNS:a\x7fb',
    'IP Address:1.2.3',
    'IP Address:::1%eth0',
    'email:x@y, SECRET:"\u0000'
  ]
  for (const input of bad) {
    const err = t.throws(() => parseNodeSAN(input), CertificateParseError, JSON.stringify(input)) as Error
    t.notOk(err.message.includes(input), 'message does not echo the input')
  }
})

t.test('quoted values may hold any JSON escape; the decoded text is the value', async (t) => {
  t.same(parseNodeSAN('URI:"a\\u002cb\\/c\\u00e9", IP Address:"::1"'), { ...empty, uri: ['a,b/cé'], ip: ['::1'] })
  t.same(parseNodeSAN('Future Type:anything: at all, DNS:x'), { ...empty, dns: ['x'] })
})

t.test('normalizeIP: IPv4', async (t) => {
  t.equal(normalizeIP('127.0.0.1'), '127.0.0.1')
  t.equal(normalizeIP('0.0.0.0'), '0.0.0.0')
  t.equal(normalizeIP('255.255.255.255'), '255.255.255.255')
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.00', '256.1.1.1', '1.2.3.999', '1..2.3',
    ' 1.2.3.4', '1.2.3.4 ', '+1.2.3.4', '0x1.2.3.4', '1.2.3.-4', '1.2.3.4/32', 'localhost', '١.٢.٣.٤',
    '1111.1.1.1', '1.2.3.4.']) {
    t.throws(() => normalizeIP(bad), CertificateParseError, JSON.stringify(bad))
  }
})

t.test('normalizeIP: RFC 5952 examples', async (t) => {
  const cases: Array<[string, string]> = [
    // §2.1 leading zeros, §2.2 zero compression, §2.3 case: all spell 2001:db8::1:0:0:1 ...
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8::1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8::0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8::1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:0:1::1', '2001:db8::1:0:0:1'],
    ['2001:db8:0000:0:1::1', '2001:db8::1:0:0:1'],
    ['2001:DB8:0:0:1::1', '2001:db8::1:0:0:1'],
    ['2001:db8:aaaa:bbbb:cccc:dddd:eeee:0001', '2001:db8:aaaa:bbbb:cccc:dddd:eeee:1'],
    ['2001:db8:aaaa:bbbb:cccc:dddd:eeee:001', '2001:db8:aaaa:bbbb:cccc:dddd:eeee:1'],
    ['2001:db8:aaaa:bbbb:cccc:dddd:eeee:01', '2001:db8:aaaa:bbbb:cccc:dddd:eeee:1'],
    ['2001:db8:aaaa:bbbb:cccc:dddd::1', '2001:db8:aaaa:bbbb:cccc:dddd:0:1'],
    ['2001:db8:aaaa:bbbb:cccc:dddd:0:1', '2001:db8:aaaa:bbbb:cccc:dddd:0:1'],
    ['2001:db8:0:0:0::1', '2001:db8::1'],
    ['2001:db8:0:0::1', '2001:db8::1'],
    ['2001:db8:0::1', '2001:db8::1'],
    ['2001:db8::1', '2001:db8::1'],
    ['2001:db8::aaaa:0:0:1', '2001:db8::aaaa:0:0:1'],
    ['2001:db8:0:0:aaaa::1', '2001:db8::aaaa:0:0:1'],
    ['2001:db8:aaaa:bbbb:cccc:dddd:eeee:aaaa', '2001:db8:aaaa:bbbb:cccc:dddd:eeee:aaaa'],
    ['2001:db8:aaaa:bbbb:cccc:dddd:eeee:AAAA', '2001:db8:aaaa:bbbb:cccc:dddd:eeee:aaaa'],
    ['2001:db8:aaaa:bbbb:cccc:dddd:eeee:AaAa', '2001:db8:aaaa:bbbb:cccc:dddd:eeee:aaaa'],
    // §4.1 leading zeros
    ['2001:0db8::0001', '2001:db8::1'],
    // §4.2.1 shorten as much as possible
    ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
    ['2001:db8::0:1', '2001:db8::1'],
    // §4.2.2 never compress one 16-bit 0 field
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:db8::1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    // §4.2.3 the longest run, the first of equal runs
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    // §4.3 lower case
    ['2001:DB8::AB', '2001:db8::ab'],
    // §5 IPv4-mapped addresses in mixed notation
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    ['0:0:0:0:0:FFFF:C000:201', '::ffff:192.0.2.1'],
    ['::FFFF:c000:0201', '::ffff:192.0.2.1']
  ]
  for (const [input, expected] of cases) t.equal(normalizeIP(input), expected, input)
})

t.test('normalizeIP: edges of the IPv6 grammar', async (t) => {
  const cases: Array<[string, string]> = [
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['::1:2:3:4:5:6:7', '0:1:2:3:4:5:6:7'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['1:0:0:2:0:0:0:0', '1:0:0:2::'],
    ['0:0:1:0:0:0:1:0', '0:0:1::1:0'],
    ['::1.2.3.4', '::102:304'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
    ['::ffff:0.0.0.0', '::ffff:0.0.0.0'],
    ['0000:0000:0000:0000:0000:ffff:255.255.255.255', '::ffff:255.255.255.255'],
    ['FE80:0:0:0:0:0:0:0', 'fe80::']
  ]
  for (const [input, expected] of cases) t.equal(normalizeIP(input), expected, input)
  for (const bad of [':', ':::', '1::2::3', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7::8', '::1:2:3:4:5:6:7:8',
    '12345::', 'g::', ':1:2:3:4:5:6:7', '1:2:3:4:5:6:7:', '1::2:', 'fe80::1%eth0', 'fe80::1%1', '[::1]', ' ::1',
    '::1 ', '1.2.3.4::', '::1.2.3', '::ffff:01.2.3.4', '::ffff:1.2.3.256', '1:2:3:4:5:6:7:1.2.3.4', '::1.2.3.4:5',
    '::0x1', '::+1', '::-1', '::ffff:1.2.3.4:0', '0'.repeat(46) + '::']) {
    t.throws(() => normalizeIP(bad), CertificateParseError, JSON.stringify(bad))
  }
})
