import t, { type Test } from 'tap'
import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import {
  assertDerCertificate, bundleEncodings, certificateEncodings, chainEncodings, checkFingerprint, decodeBase64, decodeBundle, decodeCertificate, decodeCertificateList,
  derFromBase64, derFromPem, dersFromPem, fingerprint256Of, parseSfBinary, parseSfBinaryList, percentDecode, presentValue
} from '../../lib/codecs/cert-encodings.js'
import { CertificateParseError } from '../../lib/codecs/parse-error.js'

function capturedPem (name: string): string {
  const capture = JSON.parse(readFileSync(new URL(`../fixtures/proxies/nginx/${name}.json`, import.meta.url), 'utf8'))
  return capture.cert.pem
}

const alicePem = capturedPem('alice')
const sanPem = capturedPem('san')
const alice = new X509Certificate(alicePem)
const san = new X509Certificate(sanPem)
const aliceB64 = alice.raw.toString('base64')
const sanB64 = san.raw.toString('base64')

function refuses (t: Test, fn: () => unknown, message: string): void {
  t.throws(fn, CertificateParseError, message)
}

t.test('presentValue: absent markers and placeholders read as no value', async (t) => {
  for (const value of [undefined, '', '  ', '\t', '(null)', ' (null) ', '-',
    '{http.request.tls.client.certificate_der_base64}', '{x}', '%{SSL_CLIENT_CERT}s', '%{SSL_CLIENT_CERT}', '%[ssl_c_der,base64]']) {
    t.equal(presentValue(value), undefined, JSON.stringify(value))
  }
  t.equal(presentValue('SUCCESS'), 'SUCCESS')
  t.equal(presentValue(' \tSUCCESS \t'), 'SUCCESS', 'spaces and tabs around are dropped')
  t.equal(presentValue('a\nb'), 'a\nb', 'other whitespace is the caller\'s to refuse')
  t.equal(presentValue('{a'), '{a', 'an unclosed brace is a value (and will fail to decode)')
  t.equal(presentValue('%[x'), '%[x')
  t.equal(presentValue('%{x'), '%{x')
  t.equal(presentValue('--'), '--')
})

t.test('decodeBase64 is strict', async (t) => {
  t.same(decodeBase64('AAEC', 'x'), Buffer.from([0, 1, 2]))
  t.same(decodeBase64('AAE=', 'x'), Buffer.from([0, 1]))
  t.same(decodeBase64('AA==', 'x'), Buffer.from([0]))
  t.same(decodeBase64(aliceB64, 'x'), alice.raw)
  t.same(decodeBase64('AAE', 'x', 'optional'), Buffer.from([0, 1]), 'unpadded when allowed')
  t.same(decodeBase64('AA', 'x', 'optional'), Buffer.from([0]))
  t.same(decodeBase64('AA==', 'x', 'optional'), Buffer.from([0]), 'padding still accepted when optional')
  const bad: Record<string, string> = {
    empty: '',
    'only padding': '==',
    'missing padding': 'AAE',
    'missing both pads': 'AA',
    'one char of a group': 'AAAAA',
    'one char and pads': 'AAAAA===',
    'three pads': 'A===',
    'pad in the middle': 'AA==AAAA',
    'too much padding': 'AAAA==',
    'too little padding': 'AA=',
    'url alphabet': 'AA-_',
    'space inside': 'AA AA',
    'line break': 'AAAA\nAAAA',
    'non-ASCII': 'AAAÄ',
    'code point above 127 that maps to a valid char mod 128': String.fromCharCode(0x41 + 128) + 'AAA',
    'non-canonical last char (2 left)': 'AB==',
    'non-canonical last char (3 left)': 'AAB='
  }
  for (const [name, text] of Object.entries(bad)) refuses(t, () => decodeBase64(text, 'x'), name)
  refuses(t, () => decodeBase64('AAB', 'x', 'optional'), 'non-canonical unpadded')
  refuses(t, () => decodeBase64('A', 'x', 'optional'), 'single char unpadded')
  t.throws(() => decodeBase64('!!!!', 'certificate'), { message: 'certificate is not base64' }, 'message names what, not the value')
})

t.test('assertDerCertificate: one SEQUENCE spanning the buffer', async (t) => {
  t.equal(assertDerCertificate(alice.raw, 'x'), alice.raw)
  t.same(assertDerCertificate(Buffer.from([0x30, 0x00]), 'x'), Buffer.from([0x30, 0x00]), 'short form')
  const long1 = Buffer.concat([Buffer.from([0x30, 0x81, 0x80]), Buffer.alloc(0x80)])
  t.equal(assertDerCertificate(long1, 'x'), long1, 'one length byte')
  const long2 = Buffer.concat([Buffer.from([0x30, 0x82, 0x01, 0x00]), Buffer.alloc(0x100)])
  t.equal(assertDerCertificate(long2, 'x'), long2, 'two length bytes')
  const bad: Record<string, Buffer> = {
    empty: Buffer.alloc(0),
    'one byte': Buffer.from([0x30]),
    'not a SEQUENCE': Buffer.from([0x31, 0x00]),
    'trailing byte': Buffer.concat([alice.raw, Buffer.from([0])]),
    truncated: alice.raw.subarray(0, alice.raw.length - 1),
    'indefinite length': Buffer.from([0x30, 0x80, 0x00, 0x00]),
    'five length bytes': Buffer.from([0x30, 0x85, 1, 0, 0, 0, 0]),
    'length bytes cut off': Buffer.from([0x30, 0x82, 0x01]),
    'leading zero length byte': Buffer.concat([Buffer.from([0x30, 0x82, 0x00, 0x80]), Buffer.alloc(0x80)]),
    'long form for a short length': Buffer.concat([Buffer.from([0x30, 0x81, 0x05]), Buffer.alloc(5)]),
    'four length bytes claiming 4 GiB': Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0])
  }
  for (const [name, der] of Object.entries(bad)) refuses(t, () => assertDerCertificate(der, 'x'), name)
})

t.test('derFromBase64', async (t) => {
  t.same(derFromBase64(aliceB64), alice.raw)
  refuses(t, () => derFromBase64('SPOOFED'), 'spoofed text')
  refuses(t, () => derFromBase64(Buffer.from('hello world!').toString('base64')), 'base64 of something else')
  refuses(t, () => derFromBase64(aliceB64 + aliceB64), 'two certificates glued')
})

t.test('percentDecode', async (t) => {
  t.equal(percentDecode('abc+/=', 'x'), 'abc+/=', 'nothing to decode, + stays +')
  t.equal(percentDecode('-----BEGIN%20CERTIFICATE-----%0AAB%2B%2F%3D+', 'x'), '-----BEGIN CERTIFICATE-----\nAB+/=+')
  t.equal(percentDecode('%C3%BC', 'x'), 'ü')
  for (const text of ['%', '%2', '%zz', 'a%G0', '%C3', '%FF']) refuses(t, () => percentDecode(text, 'x'), text)
})

t.test('PEM: newlines, spaces (Apache), several blocks', async (t) => {
  t.same(derFromPem(alicePem), alice.raw, 'as OpenSSL writes it')
  t.same(derFromPem(alicePem.replaceAll('\n', ' ').trim()), alice.raw, 'Apache: every LF a space, trailing one trimmed by Node')
  t.same(derFromPem(alicePem.replaceAll('\n', '\r\n')), alice.raw, 'CRLF')
  t.same(derFromPem(`-----BEGIN CERTIFICATE-----${aliceB64}-----END CERTIFICATE-----`), alice.raw, 'one line')
  t.same(derFromPem(`\t ${alicePem}\n\n`), alice.raw, 'whitespace around')
  t.same(dersFromPem(alicePem + sanPem), [alice.raw, san.raw], 'two blocks in order')
  t.same(dersFromPem(`${alicePem} \n ${sanPem}`), [alice.raw, san.raw], 'whitespace between blocks')

  const bad: Record<string, string> = {
    empty: '',
    whitespace: ' \n ',
    'no markers': aliceB64,
    'text before': 'x' + alicePem,
    'text after': alicePem + 'x',
    'text between': alicePem + 'x' + sanPem,
    unterminated: alicePem.replace('-----END CERTIFICATE-----', ''),
    'missing BEGIN': alicePem.replace('-----BEGIN CERTIFICATE-----', ''),
    'BEGIN inside a block': alicePem.replace('-----END CERTIFICATE-----', '') + sanPem,
    'another label': alicePem.replaceAll('CERTIFICATE', 'X509 CERTIFICATE'),
    'private key label': '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n',
    'junk in body': alicePem.replace('\n', '\n!'),
    'truncated body': alicePem.replace(/\n[^\n]*\n-----END/, '\n-----END'),
    'body not a certificate': '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
    'empty body': '-----BEGIN CERTIFICATE----------END CERTIFICATE-----'
  }
  for (const [name, text] of Object.entries(bad)) {
    refuses(t, () => dersFromPem(text), name)
    refuses(t, () => derFromPem(text), name)
  }
  refuses(t, () => derFromPem(alicePem + sanPem), 'a leaf header with two blocks is refused, not truncated')
})

t.test('RFC 8941 byte sequences and lists', async (t) => {
  t.same(parseSfBinary(`:${aliceB64}:`, 'x'), alice.raw)
  t.same(parseSfBinary(`:${aliceB64.replace(/=+$/, '')}:`, 'x'), alice.raw, 'padding is optional per RFC 8941')
  for (const text of ['::', '', ':', aliceB64, `:${aliceB64}`, `${aliceB64}:`, `:${aliceB64}:;a=1`, `:${aliceB64}: `, `":${aliceB64}:"`, ':a:b:']) {
    refuses(t, () => parseSfBinary(text, 'x'), JSON.stringify(text.slice(0, 12)))
  }
  t.same(parseSfBinaryList(`:${aliceB64}:`, 'x'), [alice.raw])
  t.same(parseSfBinaryList(`:${aliceB64}:, :${sanB64}:`, 'x'), [alice.raw, san.raw])
  t.same(parseSfBinaryList(` :${aliceB64}:\t,\t:${sanB64}: `, 'x'), [alice.raw, san.raw], 'OWS around members')
  for (const text of [`:${aliceB64}:,`, `,:${aliceB64}:`, `:${aliceB64}:,,:${sanB64}:`, `:${aliceB64}:;p=1, :${sanB64}:`, `(:${aliceB64}:)`, '']) {
    refuses(t, () => parseSfBinaryList(text, 'x'), JSON.stringify(text.slice(0, 12)))
  }
})

t.test('decodeCertificate and decodeCertificateList for every encoding', async (t) => {
  t.same(certificateEncodings, ['pem', 'pem-urlencoded', 'pem-spaces', 'der-base64', 'rfc9440'])
  const one = {
    pem: alicePem,
    'pem-spaces': alicePem.replaceAll('\n', ' '),
    'pem-urlencoded': encodeURIComponent(alicePem),
    'der-base64': aliceB64,
    rfc9440: `:${aliceB64}:`
  } as const
  const two = {
    pem: alicePem + sanPem,
    'pem-spaces': (alicePem + sanPem).replaceAll('\n', ' '),
    'pem-urlencoded': encodeURIComponent(alicePem + sanPem),
    'der-base64': `${aliceB64} ,\t${sanB64}`,
    rfc9440: `:${aliceB64}:, :${sanB64}:`
  } as const
  for (const encoding of certificateEncodings) {
    t.same(decodeCertificate(one[encoding], encoding), alice.raw, encoding)
    t.same(decodeCertificateList(one[encoding], encoding), [alice.raw], `${encoding} list of one`)
    t.same(decodeCertificateList(two[encoding], encoding), [alice.raw, san.raw], `${encoding} list of two`)
    refuses(t, () => decodeCertificate(two[encoding], encoding), `${encoding}: two certificates in a leaf header`)
    refuses(t, () => decodeCertificate('SPOOFED', encoding), `${encoding}: spoofed`)
    refuses(t, () => decodeCertificateList('SPOOFED', encoding), `${encoding} list: spoofed`)
  }
  refuses(t, () => decodeCertificate(':AAAA:', 'rfc9440'), 'rfc9440 bytes that are not DER')
  refuses(t, () => decodeCertificateList(`:${aliceB64}:, :AAAA:`, 'rfc9440'), 'rfc9440 list with a non-DER member')
  refuses(t, () => decodeCertificateList(`AAAA,${sanB64}`, 'der-base64'), 'an unparseable first certificate fails the list')
  refuses(t, () => decodeCertificateList(`${aliceB64},AAAA`, 'der-base64'), 'and so does a later one')
  refuses(t, () => decodeCertificate('%zz', 'pem-urlencoded'), 'malformed URL-encoding')
})

t.test('der-base64-concatenated: DER certificates back to back (HAProxy ssl_c_chain_der), split by their own lengths', async (t) => {
  t.same(chainEncodings, [...certificateEncodings, 'der-base64-concatenated'])
  const both = Buffer.concat([alice.raw, san.raw])
  t.same(decodeCertificateList(both.toString('base64'), 'der-base64-concatenated'), [alice.raw, san.raw], 'two')
  t.same(decodeCertificateList(aliceB64, 'der-base64-concatenated'), [alice.raw], 'one')
  refuses(t, () => decodeCertificateList(both.subarray(0, both.length - 1).toString('base64'), 'der-base64-concatenated'), 'the last certificate truncated')
  refuses(t, () => decodeCertificateList(Buffer.concat([both, Buffer.from([0x30])]).toString('base64'), 'der-base64-concatenated'), 'a lone trailing byte')
  refuses(t, () => decodeCertificateList(Buffer.concat([both, Buffer.from([0x02, 0x01, 0x00])]).toString('base64'), 'der-base64-concatenated'), 'trailing bytes that are no SEQUENCE')
  refuses(t, () => decodeCertificateList(Buffer.from([0x30, 0x80, 0x00, 0x00]).toString('base64'), 'der-base64-concatenated'), 'an indefinite length')
  refuses(t, () => decodeCertificateList(Buffer.from([0x30, 0x85, 1, 0, 0, 0, 0]).toString('base64'), 'der-base64-concatenated'), 'five length octets')
  refuses(t, () => decodeCertificateList(Buffer.from([0x30, 0x82, 0x01]).toString('base64'), 'der-base64-concatenated'), 'length octets cut short')
  refuses(t, () => decodeCertificateList(Buffer.from([0x30, 0x81, 0x05, 1, 2, 3, 4, 5]).toString('base64'), 'der-base64-concatenated'), 'a non-minimal length inside')
  refuses(t, () => decodeCertificateList('', 'der-base64-concatenated'), 'nothing')
  refuses(t, () => decodeCertificateList(Buffer.concat(Array.from({ length: 33 }, () => alice.raw)).toString('base64'), 'der-base64-concatenated'), 'more than 32 certificates')
  t.same(decodeCertificateList(Buffer.concat(Array.from({ length: 32 }, () => alice.raw)).toString('base64'), 'der-base64-concatenated').length, 32, '32 certificates')
  for (const [encoding, one, sep] of [['der-base64', aliceB64, ','], ['rfc9440', `:${aliceB64}:`, ', '], ['pem', alicePem, '']] as const) {
    t.equal(decodeCertificateList(Array(32).fill(one).join(sep), encoding).length, 32, `${encoding}: 32 certificates`)
    refuses(t, () => decodeCertificateList(Array(33).fill(one).join(sep), encoding), `${encoding}: more than 32 certificates`)
  }
})

t.test('pem-chain and pem-urlencoded-chain: the leaf, then its chain', async (t) => {
  t.same(bundleEncodings, ['pem-chain', 'pem-urlencoded-chain'])
  const alb = (pem: string): string => encodeURIComponent(pem).replace(/%2B/g, '+').replace(/%3D/g, '=').replace(/%2F/g, '/')
  t.same(decodeBundle(alb(alicePem + sanPem), 'pem-urlencoded-chain'), { der: alice.raw, chain: [san.raw] }, 'AWS ALB passthrough form')
  t.same(decodeBundle(alb(alicePem), 'pem-urlencoded-chain'), { der: alice.raw, chain: [] }, 'a leaf alone')
  t.same(decodeBundle((alicePem + sanPem).replaceAll('\n', ' '), 'pem-chain'), { der: alice.raw, chain: [san.raw] }, 'PEM with spaces')
  refuses(t, () => decodeBundle('', 'pem-chain'), 'nothing')
  refuses(t, () => decodeBundle(alicePem + 'x', 'pem-chain'), 'text after the blocks')
  refuses(t, () => decodeBundle(alicePem.repeat(34), 'pem-chain'), 'more than a leaf and 32')
  t.equal(decodeBundle(alicePem.repeat(33), 'pem-chain').chain.length, 32, 'a leaf and 32')
})

t.test('fingerprints', async (t) => {
  t.equal(fingerprint256Of(alice.raw), alice.fingerprint256)
  const hex = alice.fingerprint256.replaceAll(':', '').toLowerCase()
  t.equal(checkFingerprint(alice.raw, hex, 'x'), alice.fingerprint256, 'bare lower-case hex (Envoy, Cloudflare)')
  t.equal(checkFingerprint(alice.raw, Buffer.from(hex, 'hex').toString('base64').replace(/=$/, ''), 'x'), alice.fingerprint256, 'unpadded base64 (GCP)')
  t.equal(checkFingerprint(null, hex, 'x'), alice.fingerprint256, 'no certificate to compare with')
  t.throws(() => checkFingerprint(san.raw, hex, 'XFCC Hash'), { message: 'XFCC Hash does not match the forwarded certificate' })
  refuses(t, () => checkFingerprint(alice.raw, 'abc', 'x'), 'not a digest')
})

t.test('linear time on large hostile input', async (t) => {
  const n = 1 << 20
  const cases: Array<[string, () => unknown]> = [
    ['base64 with a late bad char', () => decodeBase64('A'.repeat(n) + '!', 'x')],
    ['PEM BEGIN markers only', () => dersFromPem('-----BEGIN CERTIFICATE-----'.repeat(n / 32))],
    ['PEM body of dashes', () => dersFromPem('-----BEGIN CERTIFICATE-----' + '-'.repeat(n))],
    ['PEM whitespace', () => dersFromPem(' '.repeat(n) + 'x')],
    ['PEM body of spaces', () => dersFromPem('-----BEGIN CERTIFICATE-----' + ' A'.repeat(n / 2) + '-----END CERTIFICATE-----')],
    ['percent escapes', () => percentDecode('%41'.repeat(n / 3) + '%', 'x')],
    ['sf list of commas', () => parseSfBinaryList(','.repeat(n), 'x')],
    ['sf list of spaces', () => parseSfBinaryList(' '.repeat(n) + ',', 'x')],
    ['sf binary of colons', () => parseSfBinary(':'.repeat(n), 'x')],
    ['der-base64 list of commas', () => decodeCertificateList(','.repeat(n), 'der-base64')],
    ['placeholder-like', () => presentValue('{' + 'a'.repeat(n))]
  ]
  for (const [name, fn] of cases) {
    const start = performance.now()
    try { fn() } catch (err) { if (!(err instanceof CertificateParseError)) throw err }
    const ms = performance.now() - start
    t.ok(ms < 2000, `${name}: ${ms.toFixed(0)} ms for 1 MiB`)
  }
})
