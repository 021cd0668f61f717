import t from 'tap'
import { performance } from 'node:perf_hooks'
import { CertificateParseError } from '../../lib/codecs/parse-error.js'
import { parseXFCC } from '../../lib/codecs/xfcc.js'

const HASH = '468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688'

t.test('the examples of the Envoy documentation', async (t) => {
  t.same(parseXFCC(`By=http://frontend.lyft.com;Hash=${HASH};Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com`), [{
    by: ['http://frontend.lyft.com'],
    hash: HASH,
    subject: '/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client',
    uri: ['http://testclient.lyft.com'],
    dns: []
  }])
  const two = parseXFCC(`By=http://frontend.lyft.com;Hash=${HASH};URI=http://testclient.lyft.com,By=http://backend.lyft.com;Hash=9ba6;URI=http://frontend.lyft.com`)
  t.equal(two.length, 2)
  t.same(two[0].by, ['http://frontend.lyft.com'])
  t.same(two[1], { by: ['http://backend.lyft.com'], hash: '9ba6', uri: ['http://frontend.lyft.com'], dns: [] })
  t.same(parseXFCC(`By=http://frontend.lyft.com;Hash=${HASH};URI=http://testclient.lyft.com;DNS=lyft.com;DNS=www.lyft.com`)[0].dns,
    ['lyft.com', 'www.lyft.com'], 'DNS repeats, in order')
  t.same(parseXFCC(`By=spiffe://a/x;By=https://a/y;Hash=${HASH}`)[0].by, ['spiffe://a/x', 'https://a/y'], 'one By per URI SAN of the proxy\'s certificate')
})

t.test('quoted values', async (t) => {
  const [el] = parseXFCC('Cert="-----BEGIN%20CERTIFICATE-----%0A";Subject="CN=a,O=b;c=d"')
  t.equal(el.subject, 'CN=a,O=b;c=d', ', ; = are data inside quotes')
  t.equal(el.cert, '-----BEGIN%20CERTIFICATE-----%0A', 'URL-encoding is left to the caller')
  t.equal(parseXFCC('Subject="CN=say \\"hi\\""')[0].subject, 'CN=say \\"hi\\"', '\\" is a quote that does not close, kept escaped for the DN parser')
  t.same(parseXFCC('Subject="CN=a\\\\";URI=u')[0].uri, ['u'], 'OpenSSL\'s \\\\ before the closing quote: the quote closes')
  t.equal(parseXFCC('Subject="CN=a\\\\"')[0].subject, 'CN=a\\\\', 'backslash escapes stay as written')
  t.equal(parseXFCC('Subject="CN=J\\C3\\BCrgen"')[0].subject, 'CN=J\\C3\\BCrgen', 'and so do hex escapes')
  t.equal(parseXFCC('Subject=""')[0].subject, '', 'empty quoted value')
  t.equal(parseXFCC('Subject="x";URI=u')[0].uri[0], 'u')
  t.equal(parseXFCC('URI=a=b')[0].uri[0], 'a=b', '= in a bare value is data')
})

t.test('keys are case-insensitive, in Envoy\'s order; bare values are kept byte for byte', async (t) => {
  t.same(parseXFCC('BY=x;hAsH=h;cert="c";CHAIN="ch";sUbJeCt="s";uri=u;Dns=d'), [{ by: ['x'], hash: 'h', cert: 'c', chain: 'ch', subject: 's', uri: ['u'], dns: ['d'] }])
  t.same(parseXFCC('Hash=h;URI=;DNS='), [{ by: [], hash: 'h', uri: [''], dns: [''] }], 'Envoy writes URI= for a certificate without one')
  t.same(parseXFCC('URI=a b\t;DNS= c'), [{ by: [], uri: ['a b\t'], dns: [' c'] }], 'spaces and tabs in a bare value are data: a SAN\'s own spaces are not trimmed away')
  t.same(parseXFCC('Hash=h,Hash=g').map((e) => e.hash), ['h', 'g'], 'each element starts the order anew')
})

t.test('refused', async (t) => {
  const bad: Record<string, string> = {
    empty: '',
    'only spaces': '  ',
    'empty element': `Hash=${HASH},,Hash=x`,
    'trailing comma': `Hash=${HASH},`,
    'leading comma': `,Hash=${HASH}`,
    'empty pair': 'Hash=h;;URI=u',
    'trailing semicolon': 'Hash=h;',
    'key without =': 'Hash',
    'key then separator': 'Hash;URI=u',
    'empty key': '=x',
    'space in key': 'Ha sh=x',
    'space before =': 'Hash =x',
    'space before a key': 'Hash=h; URI=u',
    'space after a closing quote': 'Subject="x" ;URI=u',
    'space after the last closing quote': 'Subject="x" ',
    'non-token key': 'Ha"sh=x',
    'a key Envoy does not write': 'Hash=h;Future=x',
    'the obsolete SAN key': 'Hash=h;SAN=u',
    'quote inside a bare value': 'URI=a"b',
    'quote ending a bare value': 'URI=ab"',
    'unterminated quote': 'Subject="CN=a',
    'escaped quote at the end': 'Subject="CN=a\\"',
    'backslash at the end': 'Subject="CN=a\\',
    'quoted URI (a SAN that starts with a quote)': 'URI="spiffe://a/b"',
    'quoted DNS': 'DNS="a.example"',
    'quoted By': 'By="spiffe://a/b"',
    'quoted Hash': `Hash="${HASH}"`,
    'bare Cert': 'Cert=-----BEGIN',
    'bare Chain': 'Chain=-----BEGIN',
    'bare Subject': 'Subject=CN=a',
    'text after closing quote': 'Subject="a"b',
    'second quoted string': 'Subject="a""b"',
    'repeated Hash': 'Hash=a;hash=b',
    'repeated Cert': 'Cert="a";Cert="b"',
    'repeated By after Hash': 'By=a;Hash=h;By=b',
    'repeated Chain': 'Chain="a";Chain="b"',
    'repeated Subject': 'Subject="a";SUBJECT="b"',
    'Hash after URI': 'URI=u;Hash=h',
    'Cert after URI': 'URI=u;Cert="c"',
    'Subject after URI': 'URI=u;Subject="CN=admin"',
    'By after Hash': 'Hash=h;By=spiffe://a/b',
    'URI after DNS': 'DNS=d;URI=u',
    'Cert after Subject': 'Subject="s";Cert="c"'
  }
  for (const [name, value] of Object.entries(bad)) t.throws(() => parseXFCC(value), CertificateParseError, name)
  t.same(parseXFCC('By=a,By=b').length, 2, 'the same key in two elements is fine')
})

t.test('linear time', async (t) => {
  const n = 1 << 20
  const cases: Record<string, string> = {
    'many pairs': 'URI=a;'.repeat(n / 6) + 'x',
    'many elements': 'Hash=h,'.repeat(n / 7) + ',',
    'long quoted value of escapes': 'Subject="' + '\\"'.repeat(n / 2),
    'long bare value': 'URI=' + 'a'.repeat(n) + '"',
    'long key': 'k'.repeat(n)
  }
  for (const [name, value] of Object.entries(cases)) {
    const start = performance.now()
    try { parseXFCC(value) } catch (err) { if (!(err instanceof CertificateParseError)) throw err }
    const ms = performance.now() - start
    t.ok(ms < 2000, `${name}: ${ms.toFixed(0)} ms for 1 MiB`)
  }
})
