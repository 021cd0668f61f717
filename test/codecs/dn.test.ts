import t from 'tap'
import type { Test } from 'tap'
import { dnEquals, formatDN, parseDN, parseLegacyDN, parseNodeDN } from '../../lib/codecs/dn.js'
import type { DNAttribute, RDN } from '../../lib/codecs/dn.js'
import { attributeTypeByName, attributeTypeByOID, attributeTypes } from '../../lib/codecs/oids.js'
import { CertificateParseError } from '../../lib/codecs/parse-error.js'

const OID = {
  CN: '2.5.4.3',
  SN: '2.5.4.4',
  C: '2.5.4.6',
  L: '2.5.4.7',
  ST: '2.5.4.8',
  street: '2.5.4.9',
  O: '2.5.4.10',
  OU: '2.5.4.11',
  title: '2.5.4.12',
  GN: '2.5.4.42',
  initials: '2.5.4.43',
  postOfficeBox: '2.5.4.18',
  emailAddress: '1.2.840.113549.1.9.1',
  UID: '0.9.2342.19200300.100.1.1',
  uid: '0.9.2342.19200300.100.1.44',
  DC: '0.9.2342.19200300.100.1.25'
} as const

type KnownType = keyof typeof OID

function a (type: KnownType, value: string): DNAttribute {
  return { type, oid: OID[type], value }
}

function cn (value: string): RDN[] {
  return [[a('CN', value)]]
}

/** Asserts a CertificateParseError whose message does not repeat the input. */
function refuses (t: Test, parse: (input: string) => unknown, input: string, why?: string): void {
  t.throws(() => parse(input), CertificateParseError, why ?? JSON.stringify(input))
  try {
    parse(input)
  } catch (err) {
    const message = (err as Error).message
    if (typeof input === 'string' && input.length > 6) t.notOk(message.includes(input), 'the message does not echo the input')
  }
}

t.test('parseDN', async (t) => {
  t.test('a typical name, most specific first, as the string has it', async (t) => {
    t.same(parseDN('emailAddress=alice@example.com,CN=alice,O=Example Corp,C=US'), [
      [a('emailAddress', 'alice@example.com')], [a('CN', 'alice')], [a('O', 'Example Corp')], [a('C', 'US')]
    ])
  })

  t.test('the empty name', async (t) => {
    t.same(parseDN(''), [])
  })

  t.test('multi-valued RDNs keep their values together and in order', async (t) => {
    t.same(parseDN('UID=1234+CN=bob,O=Example Corp,C=US'), [
      [a('UID', '1234'), a('CN', 'bob')], [a('O', 'Example Corp')], [a('C', 'US')]
    ])
    t.same(parseDN('OU=a+OU=b+OU=c'), [[a('OU', 'a'), a('OU', 'b'), a('OU', 'c')]])
  })

  t.test('attribute types', async (t) => {
    const type = (input: string): [string, string] => {
      const attribute = parseDN(`${input}=x`)[0]![0]!
      return [attribute.type, attribute.oid]
    }
    t.same(type('CN'), ['CN', OID.CN])
    t.same(type('cn'), ['CN', OID.CN], 'case-insensitive')
    t.same(type('cN'), ['CN', OID.CN])
    t.same(type('commonName'), ['CN', OID.CN], 'long name')
    t.same(type('COMMONNAME'), ['CN', OID.CN])
    t.same(type('2.5.4.3'), ['CN', OID.CN], 'dotted OID of a known type')
    t.same(type('OID.2.5.4.3'), ['CN', OID.CN], 'RFC 1779 OID. prefix')
    t.same(type('oid.2.5.4.10'), ['O', OID.O])
    t.same(type('1.2.3.4'), ['1.2.3.4', '1.2.3.4'], 'unknown OID: the OID is the type')
    t.same(type('2.999.1'), ['2.999.1', '2.999.1'], 'arcs under 2 may exceed 39')
    t.same(type('1.39'), ['1.39', '1.39'])
    t.same(type('E'), ['emailAddress', OID.emailAddress])
    t.same(type('EMAIL'), ['emailAddress', OID.emailAddress])
    t.same(type('email'), ['emailAddress', OID.emailAddress])
    t.same(type('EMAILADDRESS'), ['emailAddress', OID.emailAddress])
    t.same(type('S'), ['ST', OID.ST])
    t.same(type('STREET'), ['street', OID.street])
    t.same(type('streetAddress'), ['street', OID.street])
    t.same(type('T'), ['title', OID.title])
    t.same(type('G'), ['GN', OID.GN])
    t.same(type('givenName'), ['GN', OID.GN])
    t.same(type('I'), ['initials', OID.initials])
    t.same(type('SN'), ['SN', OID.SN], 'SN is surname, as in OpenSSL')
    t.same(type('surname'), ['SN', OID.SN])
    t.same(type('serialNumber'), ['serialNumber', '2.5.4.5'])
    t.same(type('SERIALNUMBER'), ['serialNumber', '2.5.4.5'])
    t.same(type('POBox'), ['postOfficeBox', OID.postOfficeBox])
    t.same(type('UID'), ['UID', OID.UID])
    t.same(type('userid'), ['UID', OID.UID])
    t.same(type('Uid'), ['UID', OID.UID])
    t.same(type('uid'), ['uid', OID.uid], "OpenSSL's exact `uid` is uniqueIdentifier")
    t.same(type('dc'), ['DC', OID.DC])
    t.same(type('jurisdictionC'), ['jurisdictionC', '1.3.6.1.4.1.311.60.2.1.3'])
    t.same(type('organizationIdentifier'), ['organizationIdentifier', '2.5.4.97'])
    t.same(type('id-pda-gender'), ['id-pda-gender', '1.3.6.1.5.5.7.9.3'])

    for (const bad of ['FOO', 'CN.x', 'OID.', 'OID.CN', 'OID.1', 'X-1', '-', 'constructor', '__proto__']) {
      refuses(t, parseDN, `${bad}=x`, `unknown type ${bad}`)
    }
    for (const bad of ['1', '3.1', '1.40', '0.99', '01.2', '1.02', '1..2', '1.2.', '1.2.3a', '12.1', '1.2-3']) {
      refuses(t, parseDN, `${bad}=x`, `invalid OID ${bad}`)
    }
  })

  t.test('escaped characters are data', async (t) => {
    for (const c of [',', '+', '"', '\\', '<', '>', ';', '=', '#', ' ']) {
      t.same(parseDN(`CN=a\\${c}b`), cn(`a${c}b`), `\\${c}`)
    }
    t.same(parseDN('CN=\\#x'), cn('#x'), 'a leading escaped #')
    t.same(parseDN('CN=\\ x\\ '), cn(' x '), 'escaped leading and trailing spaces')
  })

  t.test('hex pairs', async (t) => {
    t.same(parseDN('CN=J\\C3\\BCrgen'), cn('Jürgen'), 'a run of pairs is one UTF-8 sequence')
    t.same(parseDN('CN=J\\c3\\bcrgen'), cn('Jürgen'), 'lower-case hex')
    t.same(parseDN('CN=\\41\\C3\\BC\\E6\\B5\\8B'), cn('Aü测'), 'ASCII and multi-byte in one run')
    t.same(parseDN('CN=\\F0\\9F\\98\\80'), cn('😀'), 'astral')
    t.same(parseDN('CN=a\\2Cb'), cn('a,b'))
    t.same(parseDN('CN=\\00\\0D\\0A\\09\\7F'), cn('\0\r\n\t\x7f'), 'controls')
    t.same(parseDN('CN=\\20a\\20'), cn(' a '), 'hex spaces are data')
    t.same(parseDN('CN=\\0AAB'), cn('\nAB'), 'a pair ends where no backslash follows')
    t.same(parseDN('CN=\\C3\\BC\\,'), cn('ü,'))
    t.same(parseDN(
      'CN=J\\C3\\BCrgen \\C3\\9Cnicode \\E6\\B5\\8B\\E8\\AF\\95,O=Beispiel GmbH,C=DE'
    ), [[a('CN', 'Jürgen Ünicode 测试')], [a('O', 'Beispiel GmbH')], [a('C', 'DE')]], 'as nginx sends it')

    refuses(t, parseDN, 'CN=\\C3', 'a truncated sequence')
    refuses(t, parseDN, 'CN=\\C3x', 'a sequence interrupted by raw text')
    refuses(t, parseDN, 'CN=\\C3\\,\\BC', 'a sequence interrupted by an escape')
    refuses(t, parseDN, 'CN=\\FF', 'not UTF-8')
    refuses(t, parseDN, 'CN=\\C0\\80', 'overlong')
    refuses(t, parseDN, 'CN=\\ED\\A0\\80', 'an encoded surrogate')
    refuses(t, parseDN, 'CN=\\4', 'half a pair at the end')
    refuses(t, parseDN, 'CN=\\4x', 'half a pair')
    refuses(t, parseDN, 'CN=\\41\\4', 'half a pair in a run')
  })

  t.test('invalid escapes', async (t) => {
    refuses(t, parseDN, 'CN=a\\', 'dangling backslash')
    refuses(t, parseDN, 'CN=a\\,O=b\\', 'dangling backslash at the end')
    refuses(t, parseDN, 'CN=a\\x', 'not an escapable character')
    refuses(t, parseDN, 'CN=a\\/b', 'slash needs no escape in RFC 4514')
    refuses(t, parseDN, 'CN=a\\\n', 'newline')
  })

  t.test('#hex values are BER', async (t) => {
    t.same(parseDN('0.9.2342.19200300.100.1.1=#130431323334'), [[a('UID', '1234')]], 'Caddy: PrintableString')
    t.same(parseDN('CN=bob,O=Example Corp,C=US,0.9.2342.19200300.100.1.1=#130431323334'),
      [[a('CN', 'bob')], [a('O', 'Example Corp')], [a('C', 'US')], [a('UID', '1234')]])
    t.same(parseDN('1.2.840.113549.1.9.1=#0c11616c696365406578616d706c652e636f6d'),
      [[a('emailAddress', 'alice@example.com')]], 'Caddy: lower-case hex UTF8String')
    t.same(parseDN('CN=#0C03616263'), cn('abc'), 'UTF8String')
    t.same(parseDN('CN=#0C04C3BC2C2B'), cn('ü,+'), 'UTF8String, specials need no escape inside')
    t.same(parseDN('CN=#0C00'), cn(''), 'empty')
    t.same(parseDN('CN=#1203313233'), cn('123'), 'NumericString')
    t.same(parseDN('CN=#1603614062'), cn('a@b'), 'IA5String')
    t.same(parseDN('CN=#1A0141'), cn('A'), 'VisibleString')
    t.same(parseDN('CN=#1402FCE9'), cn('üé'), 'T61String as Latin-1')
    t.same(parseDN('CN=#1E0600E46D4B8BD5'), cn('ä测试'), 'BMPString')
    t.same(parseDN('CN=#1C080000004100' + '01F600'), cn('A😀'), 'UniversalString')
    t.same(parseDN('CN=#0C8103616263'), cn('abc'), 'long-form length')
    t.same(parseDN(`CN=#0C8180${'61'.repeat(128)}`), cn('a'.repeat(128)))
    t.same(parseDN(`CN=#0C820100${'62'.repeat(256)}`), cn('b'.repeat(256)))
    t.same(parseDN('CN=#0C8400000000'), cn(''), 'four length octets')
    t.same(parseDN('1.2.3.4=#0C0568656C6C6F+CN=b'), [[{ type: '1.2.3.4', oid: '1.2.3.4', value: 'hello' }, a('CN', 'b')]],
      'unknown OID, as OpenSSL dumps it')
    t.same(parseDN('CN=#0C0161 , O=x'), [[a('CN', 'a')], [a('O', 'x')]], 'spaces around')
    t.same(parseDN('CN=#0C0161 + O=x'), [[a('CN', 'a'), a('O', 'x')]])

    refuses(t, parseDN, 'CN=#0C0', 'odd number of digits')
    refuses(t, parseDN, 'CN=#0C', 'no length')
    refuses(t, parseDN, 'CN=#0C0261', 'too short for its length')
    refuses(t, parseDN, 'CN=#0C016161', 'trailing bytes')
    refuses(t, parseDN, 'CN=#0C80', 'indefinite length')
    refuses(t, parseDN, 'CN=#0C850000000000', 'five length octets')
    refuses(t, parseDN, 'CN=#0C8201', 'truncated long form')
    t.same(parseDN('CN=#020101'), [[{ type: 'CN', oid: OID.CN, value: '#020101', der: true }]], 'INTEGER: dumped, as OpenSSL prints it')
    refuses(t, parseDN, 'CN=#0000', 'tag 0')
    refuses(t, parseDN, 'CN=#4100', 'an application tag')
    refuses(t, parseDN, 'CN=#3000', 'SEQUENCE')
    refuses(t, parseDN, 'CN=#2C00', 'constructed UTF8String')
    refuses(t, parseDN, 'CN=#0C01FF', 'invalid UTF-8')
    refuses(t, parseDN, 'CN=#1E0161', 'odd BMPString')
    refuses(t, parseDN, 'CN=#1E02D800', 'surrogate in a BMPString')
    refuses(t, parseDN, 'CN=#1C03000041', 'truncated UniversalString')
    refuses(t, parseDN, 'CN=#1C0400110000', 'beyond U+10FFFF')
    refuses(t, parseDN, 'CN=#0C0161x', 'text after the hex')
    refuses(t, parseDN, 'CN=#0C01 61', 'a space inside the hex')
    refuses(t, parseDN, 'CN=#0C0161\\,', 'an escape after the hex')
    refuses(t, parseDN, 'CN=#Smith', 'an unescaped leading # that is not hex')
  })

  t.test('#hex values that are no character string stay DER, as OpenSSL prints them', async (t) => {
    const der = (type: string, oid: string, value: string): DNAttribute => ({ type, oid, value, der: true })
    t.same(parseDN('1.3.6.1.4.1.1466.0=#04024869'), [[der('1.3.6.1.4.1.1466.0', '1.3.6.1.4.1.1466.0', '#04024869')]],
      'RFC 4514 section 4: an OCTET STRING')
    t.equal(formatDN(parseDN('1.3.6.1.4.1.1466.0=#04024869')), '1.3.6.1.4.1.1466.0=#04024869', 'formatted as OpenSSL dumps it')
    t.same(parseDN('CN=#04024869'), [[der('CN', OID.CN, '#04024869')]], 'an OCTET STRING under a known type')
    t.equal(formatDN(parseDN('cn=#04024869')), 'CN=#04024869')
    t.same(parseDN('CN=#0403aabbcc'), [[der('CN', OID.CN, '#0403AABBCC')]], 'upper-case hex, as OpenSSL prints it')
    t.same(parseDN('CN=#15024869'), [[der('CN', OID.CN, '#15024869')]], 'VideotexString')
    t.same(parseDN('CN=#19024869'), [[der('CN', OID.CN, '#19024869')]], 'GraphicString')
    t.same(parseDN('CN=#1B024869'), cn('Hi'), 'GeneralString: one byte a character')
    t.same(parseDN('CN=#0400'), [[der('CN', OID.CN, '#0400')]], 'an empty OCTET STRING')
    t.notOk(dnEquals(parseDN('CN=#04024869'), parseDN('CN=\\#04024869')), 'never equal to the text "#04024869"')
    t.notOk(dnEquals(parseDN('CN=\\#04024869'), parseDN('CN=#04024869')), 'either way round')
    t.ok(dnEquals(parseDN('CN=#04024869+O=x'), parseDN('O=x+CN=#04024869')), 'a set holding a DER value')
    t.equal(formatDN(parseDN('CN=\\#04024869')), 'CN=\\#04024869', 'the text keeps its escape')
    refuses(t, parseDN, 'CN=#0403AABB', 'an OCTET STRING shorter than its length')
    refuses(t, parseDN, 'CN=#2403040141', 'a constructed OCTET STRING')
    t.same(parseDN('CN=#170D3236313230343030303030305A'), cn('261204000000Z'), 'UTCTime prints as its characters')
    t.same(parseDN('CN=#0705616C696365'), [[der('CN', OID.CN, '#0705616C696365')]], 'ObjectDescriptor: dumped')
    t.throws(() => formatDN([[{ type: 'CN', oid: OID.CN, value: '#0G', der: true }]]), CertificateParseError, 'a DER value that is not hex')
    t.throws(() => formatDN([[{ type: 'x', oid: 'x', value: '#0400', der: true }]]), CertificateParseError, 'a DER value under an invalid OID')
  })

  t.test('a multi-valued RDN formats in one order, OpenSSL\'s', async (t) => {
    t.equal(formatDN(parseDN('O=A+O=B')), formatDN(parseDN('O=B+O=A')), 'O=A+O=B and O=B+O=A')
    t.equal(formatDN(parseDN('O=B+O=A')), 'O=B+O=A', 'the DER-sorted set, printed last to first')
    t.equal(formatDN(parseDN('CN=bob+UID=1234,O=Example Corp')), 'UID=1234+CN=bob,O=Example Corp', 'by the encoding, not the name')
    t.equal(formatDN(parseDN('C=US+CN=x')), formatDN(parseDN('CN=x+C=US')))
    t.equal(formatDN(parseDN('C=US+CN=x')), 'C=US+CN=x', 'the longer encoding sorts last and prints first')
    const long = 'y'.repeat(200)
    t.equal(formatDN(parseDN(`CN=${long}+CN=x`)), `CN=${long}+CN=x`, 'a long value sorts by its long-form length')
    t.equal(formatDN(parseDN('emailAddress=b@x+emailAddress=a@x')), 'emailAddress=b@x+emailAddress=a@x', 'IA5String values')
    t.equal(formatDN(parseDN('CN=x+CN=#04024869')), formatDN(parseDN('CN=#04024869+CN=x')), 'DER values sort by their own encoding')
    t.throws(() => formatDN([[{ type: 'CN', oid: OID.CN, value: 'a' }, { type: 'x', oid: 'not an oid', value: 'b' }]]), CertificateParseError)
    t.throws(() => formatDN([[{ type: 'CN', oid: OID.CN, value: 'a' }, { type: 'CN', oid: OID.CN, value: 1 as unknown as string }]]), CertificateParseError)
  })

  t.test('a lone # is the character, as OpenSSL prints it', async (t) => {
    t.same(parseDN('CN=#'), cn('#'))
    t.same(parseDN('CN=# ,O=x'), [[a('CN', '#')], [a('O', 'x')]])
    t.same(parseDN('CN=#+O=x'), [[a('CN', '#'), a('O', 'x')]])
  })

  t.test('spaces around separators are dropped, escaped spaces kept', async (t) => {
    t.same(parseDN('  CN = bob ,  O = x  ,C=US  '), [[a('CN', 'bob')], [a('O', 'x')], [a('C', 'US')]])
    t.same(parseDN('CN=bob + UID=1234'), [[a('CN', 'bob'), a('UID', '1234')]])
    t.same(parseDN('CN=a  b'), cn('a  b'), 'inner spaces are data')
    t.same(parseDN('CN=a\\  '), cn('a '), 'an escaped space survives the trailing blanks')
    t.same(parseDN('CN= \\ a'), cn(' a'))
    t.same(parseDN('CN=a \\  b  '), cn('a   b'))
    t.same(parseDN('CN=,O=x'), [[a('CN', '')], [a('O', 'x')]], 'an empty value')
    t.same(parseDN('CN=   ,O=x'), [[a('CN', '')], [a('O', 'x')]])
  })

  t.test('raw characters RFC 4514 allows', async (t) => {
    t.same(parseDN('CN=a=b'), cn('a=b'), '= in a value')
    t.same(parseDN('CN==b'), cn('=b'))
    t.same(parseDN('CN=a#b'), cn('a#b'), '# not leading')
    t.same(parseDN('CN=Jürgen 测试 😀'), cn('Jürgen 测试 😀'), 'raw UTF-8 (Apache)')
    t.same(parseDN('CN=tab\there'), cn('tab\there'), 'a raw control other than NUL')
    t.same(parseDN('CN=a/b'), cn('a/b'))
  })

  t.test('malformed names are refused', async (t) => {
    refuses(t, parseDN, '=a', 'empty type')
    refuses(t, parseDN, 'CN=a,=b', 'empty type after a comma')
    refuses(t, parseDN, 'CN=a,,O=b', 'empty RDN')
    refuses(t, parseDN, 'CN=a,', 'trailing comma')
    refuses(t, parseDN, ',CN=a', 'leading comma')
    refuses(t, parseDN, 'CN=a+', 'trailing plus')
    refuses(t, parseDN, 'CN=a++O=b', 'empty attribute in an RDN')
    refuses(t, parseDN, 'CN', 'missing =')
    refuses(t, parseDN, 'CN a', 'missing = before a value')
    refuses(t, parseDN, 'CN=a,O', 'missing = in a later RDN')
    refuses(t, parseDN, '   ', 'only blanks')
    refuses(t, parseDN, 'CN=a"b', 'unescaped "')
    refuses(t, parseDN, 'CN="a,b"', 'quoted value (RFC 1779)')
    refuses(t, parseDN, 'CN=a;O=b', 'unescaped ; (not an RDN separator here)')
    refuses(t, parseDN, 'CN=a<b', 'unescaped <')
    refuses(t, parseDN, 'CN=a>b', 'unescaped >')
    refuses(t, parseDN, 'CN=a\0b', 'raw NUL')
    refuses(t, parseDN, 'CN=a\uD800b', 'lone high surrogate')
    refuses(t, parseDN, 'CN=a\uDC00b', 'lone low surrogate')
    refuses(t, parseDN, 'CN=a\uD800', 'high surrogate at the end')
    refuses(t, parseDN, 'C\u00dc=a', 'a non-ASCII type')
  })

  t.test('bounds', async (t) => {
    const long = 'CN=' + 'a'.repeat(64 * 1024 - 3)
    t.equal(parseDN(long)[0]![0]!.value.length, 64 * 1024 - 3, '64 KiB is accepted')
    refuses(t, parseDN, long + 'a', 'longer is refused')
    t.equal(parseDN(Array(1024).fill('CN=a').join(',')).length, 1024, '1024 attributes')
    refuses(t, parseDN, Array(1025).fill('CN=a').join(','), '1025 attributes')
    refuses(t, parseDN, Array(1025).fill('CN=a').join('+'), '1025 attributes in one RDN')
    refuses(t, parseDN, undefined as unknown as string, 'not a string')
    refuses(t, parseDN, 42 as unknown as string, 'not a string')
  })

  t.test('worst cases finish quickly', async (t) => {
    const inputs = [
      'CN=' + '\\C3\\BC'.repeat(10_900),
      'CN=' + '\\'.repeat(65_000),
      'CN=' + ' '.repeat(65_000),
      Array(1024).fill('OID.1.2.3.4.5.6.7.8.9=#0C00').join('+'),
      'CN=#' + '0'.repeat(65_000),
      'CN=#0C83' + 'FFFFFF' + '61'.repeat(32_000)
    ]
    for (const input of inputs) {
      const start = process.hrtime.bigint()
      try { parseDN(input) } catch (err) { t.type(err, CertificateParseError) }
      t.ok(Number(process.hrtime.bigint() - start) / 1e6 < 200, 'well under 200 ms')
    }
  })
})

t.test('headers captured from real proxies read as Node reads the certificate', async (t) => {
  // from the proxy lab captures (nginx 1.22, Apache 2.4, HAProxy 2.6, Caddy 2.6) and Node 20
  const node = {
    alice: 'C=US\nO=Example Corp\nCN=alice\nemailAddress=alice@example.com',
    multirdn: 'C=US\nO=Example Corp\nCN=bob + UID=1234',
    twoou: 'C=US\nO=Example Corp\nOU=Engineering\nOU=Platform\nCN=carol',
    utf8: 'C=DE\nO=Beispiel GmbH\nCN=J\u00fcrgen \u00dcnicode \u6d4b\u8bd5'
  }
  const nginx = {
    alice: 'emailAddress=alice@example.com,CN=alice,O=Example Corp,C=US',
    multirdn: 'UID=1234+CN=bob,O=Example Corp,C=US',
    twoou: 'CN=carol,OU=Platform,OU=Engineering,O=Example Corp,C=US',
    utf8: 'CN=J\\C3\\BCrgen \\C3\\9Cnicode \\E6\\B5\\8B\\E8\\AF\\95,O=Beispiel GmbH,C=DE'
  }
  const legacy = {
    alice: '/C=US/O=Example Corp/CN=alice/emailAddress=alice@example.com',
    multirdn: '/C=US/O=Example Corp/CN=bob+UID=1234',
    twoou: '/C=US/O=Example Corp/OU=Engineering/OU=Platform/CN=carol',
    utf8: '/C=DE/O=Beispiel GmbH/CN=J\\xC3\\xBCrgen \\xC3\\x9Cnicode \\xE6\\xB5\\x8B\\xE8\\xAF\\x95'
  }
  for (const name of ['alice', 'multirdn', 'twoou', 'utf8'] as const) {
    const expected = parseNodeDN(node[name])
    t.same(parseDN(nginx[name]), expected, `${name}: nginx $ssl_client_s_dn / HAProxy rfc2253`)
    t.same(parseLegacyDN(legacy[name]), expected, `${name}: legacy`)
    t.equal(formatDN(expected), name === 'utf8' ? 'CN=J\u00fcrgen \u00dcnicode \u6d4b\u8bd5,O=Beispiel GmbH,C=DE' : nginx[name],
      `${name}: canonical form (Apache SSL_CLIENT_S_DN)`)
  }
  // Caddy (Go) rebuilds the name: other order, OUs merged, emailAddress/UID as #hex
  const flat = (rdns: RDN[]): string[] => rdns.flat().map(({ oid, value }) => `${oid}=${value}`).sort()
  const caddy = {
    alice: 'CN=alice,O=Example Corp,C=US,1.2.840.113549.1.9.1=#0c11616c696365406578616d706c652e636f6d',
    multirdn: 'CN=bob,O=Example Corp,C=US,0.9.2342.19200300.100.1.1=#130431323334',
    twoou: 'CN=carol,OU=Engineering+OU=Platform,O=Example Corp,C=US'
  }
  for (const name of ['alice', 'multirdn', 'twoou'] as const) {
    const rdns = parseDN(caddy[name])
    t.same(flat(rdns), flat(parseNodeDN(node[name])), `${name}: Caddy has the same attributes`)
    t.notOk(dnEquals(rdns, parseNodeDN(node[name])), `${name}: but not the same name`)
  }
})

t.test('DN injection: a value never becomes another attribute', async (t) => {
  t.test('CN=bob\\,O=admins is one CN', async (t) => {
    const rdns = parseDN('CN=bob\\,O=admins')
    t.same(rdns, cn('bob,O=admins'))
    t.notOk(rdns.flat().some(attribute => attribute.oid === OID.O), 'no O attribute')
  })
  t.test('CN=x\\+O=admins is one CN', async (t) => {
    const rdns = parseDN('CN=x\\+O=admins')
    t.same(rdns, cn('x+O=admins'))
    t.notOk(rdns.flat().some(attribute => attribute.oid === OID.O), 'no O attribute')
  })
  t.test('hex-escaped separators are data too', async (t) => {
    t.same(parseDN('CN=bob\\2CO=admins'), cn('bob,O=admins'))
    t.same(parseDN('CN=bob\\2BO=admins'), cn('bob+O=admins'))
    t.same(parseDN('CN=bob\\0AO=admins'), cn('bob\nO=admins'))
  })
  t.test('a value containing =', async (t) => {
    t.same(parseDN('CN=O=admins'), cn('O=admins'))
    t.same(parseDN('CN=a=b=c,O=x'), [[a('CN', 'a=b=c')], [a('O', 'x')]])
  })
  t.test('a semicolon does not separate RDNs', async (t) => {
    refuses(t, parseDN, 'CN=bob;O=admins')
    t.same(parseDN('CN=bob\\;O=admins'), cn('bob;O=admins'))
  })
  t.test('a #hex value is one value', async (t) => {
    // UTF8String "x,O=admins"
    t.same(parseDN('CN=#0C0A782C4F3D61646D696E73'), cn('x,O=admins'))
  })
  t.test('legacy /O=Acme\\/CN=admin is one O', async (t) => {
    const rdns = parseLegacyDN('/O=Acme\\/CN=admin')
    t.same(rdns, [[a('O', 'Acme/CN=admin')]])
    t.notOk(rdns.flat().some(attribute => attribute.oid === OID.CN), 'no CN attribute')
  })
  t.test('legacy \\+ is data', async (t) => {
    t.same(parseLegacyDN('/CN=bob\\+O=admins'), cn('bob+O=admins'))
  })
  t.test('legacy: an escaped backslash cannot unescape a separator', async (t) => {
    // bytes `a\/b` print as `a\\/b`: a literal backslash, then an escaped slash
    t.same(parseLegacyDN('/CN=a\\\\/b'), cn('a\\/b'))
    t.same(parseLegacyDN('/CN=a\\\\+b'), cn('a\\+b'))
  })
  t.test('Node: an escaped newline or comma is data', async (t) => {
    t.same(parseNodeDN('CN=bob\\0AO=admins'), cn('bob\nO=admins'))
    t.same(parseNodeDN('CN=bob\\, O=admins'), cn('bob, O=admins'))
    t.same(parseNodeDN('CN=bob\\+O=admins'), cn('bob+O=admins'))
    refuses(t, parseNodeDN, 'CN=bob,O=admins', 'a raw comma cannot occur in Node output')
  })
  t.test('formatDN escapes what would split', async (t) => {
    const evil = [[a('CN', 'bob,O=admins+OU=x;y\\')]]
    const text = formatDN(evil)
    t.equal(text, 'CN=bob\\,O=admins\\+OU=x\\;y\\\\')
    t.same(parseDN(text), evil)
  })
})

t.test('formatDN', async (t) => {
  t.equal(formatDN([]), '', 'the empty name')
  t.equal(formatDN(parseDN('emailAddress=alice@example.com,CN=alice,O=Example Corp,C=US')),
    'emailAddress=alice@example.com,CN=alice,O=Example Corp,C=US')
  t.equal(formatDN(parseDN('cn=bob + uid=x, o=Example Corp')), 'uid=x+CN=bob,O=Example Corp', 'canonical spacing and order')
  t.equal(formatDN(parseDN('CN=J\\C3\\BCrgen')), 'CN=Jürgen', 'UTF-8 raw, not escaped')

  t.test('OpenSSL escaping', async (t) => {
    const value = (v: string): string => formatDN([[a('CN', v)]]).slice(3)
    for (const c of [',', '+', '"', '\\', '<', '>', ';']) t.equal(value(`a${c}b`), `a\\${c}b`, `escapes ${c}`)
    t.equal(value('a=b#c/d'), 'a=b#c/d', '= # / stay raw')
    t.equal(value('#a'), '\\#a', 'leading #')
    t.equal(value('#'), '#', 'a lone # is not escaped (OpenSSL)')
    t.equal(value('##'), '\\##')
    t.equal(value(' a '), '\\ a\\ ', 'leading and trailing space')
    t.equal(value(' '), '\\ ', 'a lone space')
    t.equal(value('  '), '\\ \\ ')
    t.equal(value('a  b'), 'a  b', 'inner spaces raw')
    t.equal(value('\0\x01\n\r\t\x1f\x7f'), '\\00\\01\\0A\\0D\\09\\1F\\7F', 'controls as upper-case hex')
    t.equal(value('\x80\u00a0ü测😀'), '\x80\u00a0ü测😀', 'non-ASCII raw (no ESC_MSB)')
    t.equal(value(''), '', 'empty')
  })

  t.test('the OID decides the name', async (t) => {
    t.equal(formatDN([[{ type: 'commonName', oid: OID.CN, value: 'x' }]]), 'CN=x')
    t.equal(formatDN([[{ type: 'uid', oid: OID.uid, value: 'x' }, { type: 'UID', oid: OID.UID, value: 'y' }]]), 'uid=x+UID=y')
  })

  t.test('an unknown OID is dumped as a UTF8String, like OpenSSL', async (t) => {
    const dump = (v: string): string => formatDN([[{ type: '1.2.3.4', oid: '1.2.3.4', value: v }]])
    t.equal(dump('hello, wörld'), '1.2.3.4=#0C0D68656C6C6F2C2077C3B6726C64')
    t.equal(dump(''), '1.2.3.4=#0C00')
    t.equal(dump('a'.repeat(127)), '1.2.3.4=#0C7F' + '61'.repeat(127))
    t.equal(dump('a'.repeat(128)), '1.2.3.4=#0C8180' + '61'.repeat(128))
    t.equal(dump('a'.repeat(256)), '1.2.3.4=#0C820100' + '61'.repeat(256))
    t.equal(dump('a'.repeat(65536)), '1.2.3.4=#0C83010000' + '61'.repeat(65536))
    t.same(parseDN(dump('hello, wörld')), [[{ type: '1.2.3.4', oid: '1.2.3.4', value: 'hello, wörld' }]])
  })

  t.test('what cannot be written is refused', async (t) => {
    const bad: Array<[string, unknown]> = [
      ['an empty RDN', [[]]],
      ['an empty RDN after others', [[a('CN', 'x')], []]],
      ['an invalid OID', [[{ type: 'x', oid: 'x', value: 'y' }]]],
      ['a missing OID', [[{ type: 'CN', value: 'y' }]]],
      ['a lone surrogate', [[a('CN', 'a\uD800')]]],
      ['a reversed pair', [[a('CN', '\uDC00\uD800')]]],
      ['a lone surrogate, unknown OID', [[{ type: '1.2.3', oid: '1.2.3', value: '\uDC00' }]]],
      ['a value that is no string', [[{ type: 'CN', oid: OID.CN, value: 1 }]]],
      ['a value that is no string, unknown OID', [[{ type: '1.2.3', oid: '1.2.3', value: null }]]]
    ]
    for (const [why, rdns] of bad) t.throws(() => formatDN(rdns as RDN[]), CertificateParseError, why)
    t.equal(formatDN([[a('CN', 'a\uD83D\uDE00')]]), 'CN=a😀', 'a surrogate pair is fine')
  })
})

t.test('parseNodeDN', async (t) => {
  t.test('certificate order in, RFC 4514 order out, multi-valued values reversed', async (t) => {
    t.same(parseNodeDN('C=US\nO=Example Corp\nCN=bob + UID=1234'), [
      [a('UID', '1234'), a('CN', 'bob')], [a('O', 'Example Corp')], [a('C', 'US')]
    ])
    t.equal(formatDN(parseNodeDN('C=US\nO=Example Corp\nCN=bob + UID=1234')), 'UID=1234+CN=bob,O=Example Corp,C=US',
      'what nginx sends')
    t.same(parseNodeDN('C=US\nO=Example Corp\nOU=Engineering\nOU=Platform\nCN=carol').map(rdn => rdn[0]!.value),
      ['carol', 'Platform', 'Engineering', 'Example Corp', 'US'])
  })

  t.test('escaped values', async (t) => {
    t.same(parseNodeDN('C=US\nO=Example Corp\nCN=\\#Smith\\, John\\+admin=1 \\"x\\" \\<a/b\\>\\;\\\\\\ '), [
      [a('CN', '#Smith, John+admin=1 "x" <a/b>;\\ ')], [a('O', 'Example Corp')], [a('C', 'US')]
    ], 'the tricky certificate')
    t.same(parseNodeDN('CN=evil\\0D\\0AX-Injected: 1\\09Tab'), cn('evil\r\nX-Injected: 1\tTab'))
    t.same(parseNodeDN('C=DE\nCN=Jürgen Ünicode 测试'), [[a('CN', 'Jürgen Ünicode 测试')], [a('C', 'DE')]])
    t.same(parseNodeDN('CN=#'), cn('#'))
    t.same(parseNodeDN('1.3.6.1.4.1.55555.1=hello\\, w\u00f6rld'),
      [[{ type: '1.3.6.1.4.1.55555.1', oid: '1.3.6.1.4.1.55555.1', value: 'hello, wörld' }]])
  })

  t.test('the empty name', async (t) => {
    t.same(parseNodeDN(''), [])
    t.same(parseNodeDN(undefined as unknown as string), [], 'Node gives undefined for an empty subject')
  })

  t.test('malformed', async (t) => {
    refuses(t, parseNodeDN, 'C=US\n\nCN=a', 'empty line')
    refuses(t, parseNodeDN, 'C=US\n', 'trailing newline')
    refuses(t, parseNodeDN, 'CN=a + ', 'dangling +')
    refuses(t, parseNodeDN, 'CN=#0C0161,O=x', 'comma after hex')
    refuses(t, parseNodeDN, 'CN=a\\', 'dangling backslash')
    refuses(t, parseNodeDN, 'FOO=a', 'unknown type')
    refuses(t, parseNodeDN, 'CN=' + 'a'.repeat(64 * 1024), 'too long')
    refuses(t, parseNodeDN, 42 as unknown as string, 'not a string')
  })
})

t.test('parseLegacyDN', async (t) => {
  t.test('OpenSSL oneline, as nginx and Apache send it', async (t) => {
    t.same(parseLegacyDN('/C=US/O=Example Corp/CN=alice/emailAddress=alice@example.com'), [
      [a('emailAddress', 'alice@example.com')], [a('CN', 'alice')], [a('O', 'Example Corp')], [a('C', 'US')]
    ])
    t.same(parseLegacyDN('/C=US/O=Example Corp/CN=bob+UID=1234'), [
      [a('UID', '1234'), a('CN', 'bob')], [a('O', 'Example Corp')], [a('C', 'US')]
    ], 'multi-valued, reversed like parseNodeDN')
    t.same(parseLegacyDN('/C=US/O=Example Corp/CN=#Smith, John\\+admin=1 "x" <a\\/b>;\\ '), [
      [a('CN', '#Smith, John+admin=1 "x" <a/b>;\\ ')], [a('O', 'Example Corp')], [a('C', 'US')]
    ], 'the tricky certificate: its final backslash is literal')
    t.same(parseLegacyDN('/C=DE/O=Beispiel GmbH/CN=J\\xC3\\xBCrgen \\xC3\\x9Cnicode \\xE6\\xB5\\x8B\\xE8\\xAF\\x95'), [
      [a('CN', 'Jürgen Ünicode 测试')], [a('O', 'Beispiel GmbH')], [a('C', 'DE')]
    ], 'UTF-8 bytes')
    t.same(parseLegacyDN('/CN=evil\\x0D\\x0AX-Injected: 1\\x09Tab'), cn('evil\r\nX-Injected: 1\tTab'))
    t.same(parseLegacyDN('/CN=\\x7F\\x00'), cn('\x7f\0'))
    t.same(parseLegacyDN('/1.2.3.4=x=y'), [[{ type: '1.2.3.4', oid: '1.2.3.4', value: 'x=y' }]])
    t.same(parseLegacyDN('/CN='), cn(''), 'an empty value')
    t.same(parseLegacyDN(''), [], 'the empty name')
  })

  t.test('the backslash is not escaped: whatever is not an escape is literal', async (t) => {
    t.same(parseLegacyDN('/CN=a\\b'), cn('a\\b'))
    t.same(parseLegacyDN('/CN=a\\'), cn('a\\'), 'a final backslash')
    t.same(parseLegacyDN('/CN=\\x41'), cn('\\x41'), 'OpenSSL never hex-escapes a printable byte')
    t.same(parseLegacyDN('/CN=\\xc3\\xbc'), cn('\\xc3\\xbc'), 'OpenSSL writes upper-case hex')
    t.same(parseLegacyDN('/CN=\\xG0'), cn('\\xG0'))
    t.same(parseLegacyDN('/CN=\\xCG'), cn('\\xCG'))
    t.same(parseLegacyDN('/CN=\\x'), cn('\\x'))
    t.same(parseLegacyDN('/CN=\\xC'), cn('\\xC'))
    t.same(parseLegacyDN('/CN=a\\\\'), cn('a\\\\'))
  })

  t.test('malformed', async (t) => {
    refuses(t, parseLegacyDN, 'CN=a', 'no leading slash')
    refuses(t, parseLegacyDN, '+CN=a', 'leading plus')
    refuses(t, parseLegacyDN, '/', 'a lone slash')
    refuses(t, parseLegacyDN, '/=a', 'empty type')
    refuses(t, parseLegacyDN, '/CN', 'missing =')
    refuses(t, parseLegacyDN, '/CN/O=a', 'missing = before a slash')
    refuses(t, parseLegacyDN, '/C N=a', 'a space in a type')
    refuses(t, parseLegacyDN, '/CN=a/', 'trailing slash')
    refuses(t, parseLegacyDN, '/CN=a+', 'trailing plus')
    refuses(t, parseLegacyDN, '/CN=a//O=b', 'empty RDN')
    refuses(t, parseLegacyDN, '/FOO=a', 'unknown type')
    refuses(t, parseLegacyDN, '/CN=J\u00fcrgen', 'raw non-ASCII (OpenSSL escapes it)')
    refuses(t, parseLegacyDN, '/CN=a\tb', 'raw control')
    refuses(t, parseLegacyDN, '/CN=\\xC3', 'truncated UTF-8')
    refuses(t, parseLegacyDN, '/CN=M\\xFCller', 'Latin-1 is not UTF-8')
    refuses(t, parseLegacyDN, Array(1025).fill('/CN=a').join(''), 'too many attributes')
    refuses(t, parseLegacyDN, '/CN=' + 'a'.repeat(64 * 1024), 'too long')
    refuses(t, parseLegacyDN, null as unknown as string, 'not a string')
    t.equal(parseLegacyDN(Array(1024).fill('/CN=a').join('')).length, 1024)
  })
})

t.test('dnEquals', async (t) => {
  const same = (x: string, y: string): boolean => dnEquals(parseDN(x), parseDN(y))
  t.ok(same('CN=J\\C3\\BCrgen,O=x', 'CN=Jürgen,O=x'), 'hex vs raw UTF-8')
  t.ok(same('CN=a\\2Cb', 'CN=a\\,b'), '\\2C vs \\,')
  t.ok(same('cn=bob,o=x', 'CN=bob,O=x'), 'type case')
  t.ok(same('2.5.4.3=bob', 'CN=bob'), 'OID vs name')
  t.ok(same('OID.2.5.4.3=bob', 'commonName=bob'))
  t.ok(same('CN=#0C03626F62', 'CN=bob'), 'BER vs string')
  t.ok(same('0.9.2342.19200300.100.1.1=#130431323334+CN=bob', 'CN=bob+UID=1234'),
    'values of a multi-valued RDN in any order')
  t.ok(same('OU=a+OU=b+CN=c', 'CN=c+OU=b+OU=a'))
  t.ok(same('CN = bob , O = x', 'CN=bob,O=x'), 'blanks around separators')
  t.ok(same('', ''), 'empty names')
  t.ok(dnEquals(parseNodeDN('C=US\nCN=bob + UID=1234'), parseDN('UID=1234+CN=bob,C=US')))
  t.ok(dnEquals(parseLegacyDN('/C=US/CN=bob+UID=1234'), parseDN('CN=bob+UID=1234,C=US')))

  t.notOk(same('CN=bob', 'CN=Bob'), 'values are exact')
  t.notOk(same('CN=bob', 'CN=bob '.replace(' ', '\\ ')), 'an escaped trailing space counts')
  t.notOk(same('CN=bob', 'OU=bob'), 'types differ')
  t.notOk(same('CN=bob,O=x', 'O=x,CN=bob'), 'RDN order counts')
  t.notOk(same('CN=bob,O=x', 'CN=bob'), 'RDN count')
  t.notOk(same('CN=bob+O=x', 'CN=bob,O=x'), 'structure: one RDN vs two')
  t.notOk(same('CN=bob+O=x', 'CN=bob+O=y'), 'a multi-valued value differs')
  t.notOk(same('CN=bob+O=x', 'CN=bob+O=x+OU=y'), 'multi-valued sizes differ')
  t.notOk(same('OU=a+OU=a', 'OU=a+OU=b'), 'a repeated value is not a set member twice')
  t.notOk(same('CN=bob\\,O=admins', 'CN=bob,O=admins'), 'an escaped comma is not a separator')
  t.notOk(same('', 'CN=a'))
})

t.test('attribute type table', async (t) => {
  const types = attributeTypes()
  t.ok(types.length > 100)
  t.equal(new Set(types.map(type => type.oid)).size, types.length, 'OIDs are unique')
  for (const type of types) {
    t.match(type.name, /^[A-Za-z][A-Za-z0-9-]*$/, `${type.name} is an RFC 4514 descr`)
    t.ok(/^[0-2](\.(0|[1-9][0-9]*))+$/.test(type.oid), `${type.oid} is a dotted OID`)
    t.equal(attributeTypeByOID(type.oid), type)
    // the one name OpenSSL spells twice, differing in case only
    if (type.name !== 'uid') t.equal(attributeTypeByName(type.name.toUpperCase()), type, `${type.name} in any case`)
  }
  const lower = types.map(type => type.name.toLowerCase())
  t.same(lower.filter((name, i) => lower.indexOf(name) !== i), ['uid'], 'only uid/UID collide case-insensitively')
  t.equal(attributeTypeByName('uid')?.oid, OID.uid)
  t.equal(attributeTypeByName('UID')?.oid, OID.UID)
  t.equal(attributeTypeByName('nope'), undefined)
  t.equal(attributeTypeByOID('1.2.3'), undefined)
  t.throws(() => { (types[0] as { name: string }).name = 'x' }, TypeError, 'entries are frozen')
})
