import t from 'tap'
import { isSpiffeId, parseSpiffePattern, spiffeIdFromUris, spiffeMatches } from '../../lib/codecs/spiffe.js'
import { CertificateParseError } from '../../lib/codecs/parse-error.js'

const longestTrustDomain = 'a'.repeat(255)
const longestId = 'spiffe://example.org/' + 'a'.repeat(2048 - 'spiffe://example.org/'.length)

t.test('valid SPIFFE IDs', async (t) => {
  for (const id of [
    'spiffe://example.org',
    'spiffe://example.org/ns/prod/sa/api',
    'spiffe://staging.example.com/payments/mysql',
    'spiffe://k8s-west.example.com/ns/staging/sa/default',
    'spiffe://example.com/9eebccd2-12bf-40a6-b262-65fe0487d453',
    'spiffe://a_b-c.9/A.b-C_d/...',
    'spiffe://example.org/.hidden/x.',
    'spiffe://127.0.0.1/x',
    `spiffe://${longestTrustDomain}/x`,
    longestId
  ]) {
    t.ok(isSpiffeId(id), id.slice(0, 60))
  }
  t.equal(longestId.length, 2048)
})

t.test('invalid SPIFFE IDs, one test per class the spec excludes', async (t) => {
  const classes: Record<string, string[]> = {
    'scheme missing or not lower-case spiffe': ['', 'example.org/x', 'http://example.org/x', 'SPIFFE://example.org/x',
      'Spiffe://example.org/x', 'spiffe:/example.org/x', 'spiffe:example.org/x', 'spiffe//example.org/x', ' spiffe://example.org'],
    'empty trust domain': ['spiffe://', 'spiffe:///x', 'spiffe:///'],
    'upper case in trust domain': ['spiffe://Example.org/x', 'spiffe://EXAMPLE.ORG'],
    'other characters in trust domain': ['spiffe://exa mple.org/x', 'spiffe://exämple.org/x', 'spiffe://example%2eorg/x',
      'spiffe://[::1]/x', 'spiffe://example.org\\x', 'spiffe://example.org\n/x', 'spiffe://*.example.org/x'],
    port: ['spiffe://example.org:8443/x', 'spiffe://example.org:/x'],
    userinfo: ['spiffe://user@example.org/x', 'spiffe://user:pw@example.org/x', 'spiffe://@example.org'],
    query: ['spiffe://example.org/x?y=1', 'spiffe://example.org?x', 'spiffe://example.org/x?'],
    fragment: ['spiffe://example.org/x#y', 'spiffe://example.org#y', 'spiffe://example.org/#'],
    'empty path segment': ['spiffe://example.org//x', 'spiffe://example.org/x//y'],
    'trailing slash': ['spiffe://example.org/', 'spiffe://example.org/x/'],
    'dot segments': ['spiffe://example.org/.', 'spiffe://example.org/..', 'spiffe://example.org/x/./y',
      'spiffe://example.org/x/../y', 'spiffe://example.org/x/..'],
    'other characters in path': ['spiffe://example.org/x y', 'spiffe://example.org/x%20y', 'spiffe://example.org/ü',
      'spiffe://example.org/x:y', 'spiffe://example.org/x@y', 'spiffe://example.org/x*', 'spiffe://example.org/x\\y',
      'spiffe://example.org/x+y', 'spiffe://example.org/x~y', 'spiffe://example.org/x\u0000'],
    'longer than 2048 bytes': [longestId + 'a'],
    'trust domain longer than 255 bytes': [`spiffe://${longestTrustDomain}a/x`]
  }
  for (const [name, ids] of Object.entries(classes)) {
    t.test(name, async (t) => {
      for (const id of ids) t.notOk(isSpiffeId(id), JSON.stringify(id.slice(0, 60)))
    })
  }
})

t.test('spiffeIdFromUris: exactly one spiffe URI, and valid', async (t) => {
  t.equal(spiffeIdFromUris([]), null)
  t.equal(spiffeIdFromUris(['https://example.org/x']), null)
  t.equal(spiffeIdFromUris(['spiffe://example.org/ns/a']), 'spiffe://example.org/ns/a')
  t.equal(spiffeIdFromUris(['https://example.org/x', 'spiffe://example.org/ns/a', 'urn:x']), 'spiffe://example.org/ns/a')
  t.equal(spiffeIdFromUris(['spiffe://example.org/ns/a', 'spiffe://example.org/ns/b']), null, 'two IDs')
  t.equal(spiffeIdFromUris(['spiffe://example.org/ns/a', 'spiffe://example.org/ns/a']), null, 'the same ID twice')
  t.equal(spiffeIdFromUris(['spiffe://example.org/ns/a', 'SPIFFE://example.org/ns/b']), null,
    'another spelling of the scheme still counts as a second ID')
  t.equal(spiffeIdFromUris(['spiffe://example.org/ns/a/']), null, 'the only one is invalid')
  t.equal(spiffeIdFromUris(['spiffe:opaque', 'spiffe://example.org/ns/a']), null, 'an invalid spiffe URI beside a valid one')
  t.equal(spiffeIdFromUris(['spiffex://example.org/ns/a']), null, 'another scheme')
})

t.test('parseSpiffePattern', async (t) => {
  t.same(parseSpiffePattern('spiffe://example.org/ns/admin'), { trustDomain: 'example.org', path: '/ns/admin', prefix: false })
  t.same(parseSpiffePattern('spiffe://example.org/ns/admin/*'), { trustDomain: 'example.org', path: '/ns/admin', prefix: true })
  t.same(parseSpiffePattern('spiffe://example.org/*'), { trustDomain: 'example.org', path: '', prefix: true })
  t.same(parseSpiffePattern('spiffe://example.org'), { trustDomain: 'example.org', path: '', prefix: false })
  for (const bad of ['', '*', 'spiffe://*', 'spiffe://example.org/ns/*/x', 'spiffe://example.org/ns*',
    'spiffe://example.org/ns/admin*', 'spiffe://example.org/**', 'spiffe://example.org/*/*', 'spiffe://example.org//*',
    'spiffe://example.org/ns/', 'spiffe://Example.org/*', 'spiffe://*.example.org/x', 'https://example.org/*',
    'spiffe://example.org/ns/admin/?', 'spiffe://example.org/ns/ad%2Amin']) {
    const err = t.throws(() => parseSpiffePattern(bad), CertificateParseError, JSON.stringify(bad)) as Error
    t.notOk(bad !== '' && err.message.includes(bad), 'message does not echo the pattern')
  }
})

t.test('spiffeMatches: exact IDs', async (t) => {
  const p = parseSpiffePattern('spiffe://example.org/ns/admin')
  t.ok(spiffeMatches(p, 'spiffe://example.org/ns/admin'))
  t.notOk(spiffeMatches(p, 'spiffe://example.org/ns/admin/x'))
  t.notOk(spiffeMatches(p, 'spiffe://example.org/ns/adminx'))
  t.notOk(spiffeMatches(p, 'spiffe://example.org/ns/Admin'), 'the path is case-sensitive')
  t.notOk(spiffeMatches(p, 'spiffe://example.net/ns/admin'))
  t.notOk(spiffeMatches(p, 'spiffe://example.org/ns/admin/'), 'an invalid ID never matches')
  t.notOk(spiffeMatches(p, 'SPIFFE://example.org/ns/admin'))
  const root = parseSpiffePattern('spiffe://example.org')
  t.ok(spiffeMatches(root, 'spiffe://example.org'))
  t.notOk(spiffeMatches(root, 'spiffe://example.org/x'))
})

t.test('spiffeMatches: /path/* admits IDs strictly below the path, on segment boundaries', async (t) => {
  const p = parseSpiffePattern('spiffe://example.org/ns/admin/*')
  t.ok(spiffeMatches(p, 'spiffe://example.org/ns/admin/x'))
  t.ok(spiffeMatches(p, 'spiffe://example.org/ns/admin/x/y'))
  t.notOk(spiffeMatches(p, 'spiffe://example.org/ns/admin'), 'the path itself is not below it')
  t.notOk(spiffeMatches(p, 'spiffe://example.org/ns/adminx'))
  t.notOk(spiffeMatches(p, 'spiffe://example.org/ns/adminx/y'))
  t.notOk(spiffeMatches(p, 'spiffe://example.org/ns'))
  t.notOk(spiffeMatches(p, 'spiffe://example.org/ns/admin/../root'), 'dot segments are invalid, not resolved')
  t.notOk(spiffeMatches(p, 'spiffe://example.org/ns/admin//x'))
  t.notOk(spiffeMatches(p, 'spiffe://example.org.evil/ns/admin/x'), 'trust domains compare whole')
  t.notOk(spiffeMatches(p, 'spiffe://evil.example.org/ns/admin/x'))
})

t.test('spiffeMatches: spiffe://td/* admits every workload ID in td', async (t) => {
  const p = parseSpiffePattern('spiffe://example.org/*')
  t.ok(spiffeMatches(p, 'spiffe://example.org/x'))
  t.ok(spiffeMatches(p, 'spiffe://example.org/ns/prod/sa/api'))
  t.notOk(spiffeMatches(p, 'spiffe://example.org'), 'the bare trust-domain ID needs an exact rule')
  t.notOk(spiffeMatches(p, 'spiffe://example.org.evil/x'))
  t.notOk(spiffeMatches(p, 'spiffe://example.net/x'))
  t.notOk(spiffeMatches(p, 'not an id'))
})
