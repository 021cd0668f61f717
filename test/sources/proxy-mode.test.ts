import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { X509Certificate } from 'node:crypto'
import { fastifyClientCert, identityFromCertificate, type FastifyClientCertOptions } from '../../lib/index.js'
import { getCorpus, type LeafName } from '../helpers/certs.js'
import { toJSON } from '../helpers/server.js'

const trusted = '127.0.0.1'

async function proxyApp (options: Omit<FastifyClientCertOptions, 'proxy'> & { proxy?: Partial<NonNullable<FastifyClientCertOptions['proxy']>> } = {}): Promise<{ app: FastifyInstance, seen: unknown[] }> {
  const app = Fastify()
  const seen: unknown[] = []
  await app.register(fastifyClientCert, {
    mode: 'proxy',
    ...options,
    proxy: { preset: 'nginx', trust: [trusted], ...options.proxy }
  } as FastifyClientCertOptions)
  app.get('/whoami', async (request) => { seen.push(request.clientCert); return toJSON(request.clientCert) })
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => ({ clientCert: toJSON(request.clientCert) }))
  return { app, seen }
}

async function nginxHeaders (leaf: LeafName, verify = 'SUCCESS'): Promise<Record<string, string>> {
  const corpus = await getCorpus()
  return { 'x-ssl-client-cert': encodeURIComponent(corpus.leaves[leaf].certPem), 'x-ssl-client-verify': verify }
}

function withoutSource (identity: Record<string, unknown>): Record<string, unknown> {
  const { source, proxy, certificate, ...rest } = identity
  return rest
}

t.test('a trusted proxy\'s headers give the identity direct TLS gives for the same certificate', async (t) => {
  const corpus = await getCorpus()
  const { app } = await proxyApp()
  t.teardown(() => app.close())
  for (const leaf of ['alice', 'tricky', 'utf8', 'multirdn', 'twoou', 'nocn', 'san', 'rsa'] as const) {
    const response = await app.inject({ url: '/whoami', remoteAddress: trusted, headers: await nginxHeaders(leaf) })
    t.equal(response.statusCode, 200, leaf)
    const identity = response.json()
    t.match(identity, { source: 'proxy', proxy: 'nginx', verified: true, verifyError: null, certificate: 'X509Certificate' })
    const direct = JSON.parse(JSON.stringify(toJSON(identityFromCertificate(corpus.leaves[leaf].certPem, { verified: true }))))
    t.same(withoutSource(identity), withoutSource(direct), `${leaf}: same identity as direct TLS`)
  }
})

t.test('headers from an address trust does not cover are refused, and are not an identity', async (t) => {
  const { app } = await proxyApp()
  t.teardown(() => app.close())
  for (const remoteAddress of ['127.0.0.2', '10.0.0.1', '::1', '::ffff:127.0.0.2']) {
    const response = await app.inject({ url: '/maybe', remoteAddress, headers: await nginxHeaders('alice') })
    t.equal(response.statusCode, 400, remoteAddress)
    t.same(response.json(), {
      statusCode: 400,
      code: 'FST_CLIENT_CERT_UNTRUSTED_SOURCE',
      error: 'Bad Request',
      message: 'Client certificate headers were sent by an untrusted source'
    })
  }
  const status = await app.inject({ url: '/maybe', remoteAddress: '127.0.0.2', headers: { 'X-SSL-Client-Verify': 'NONE' } })
  t.equal(status.statusCode, 400, 'any certificate header counts, whatever its case')
  const plain = await app.inject({ url: '/whoami', remoteAddress: '127.0.0.2' })
  t.equal(plain.statusCode, 401, 'no headers from an untrusted address: simply no certificate')
  const mapped = await app.inject({ url: '/whoami', remoteAddress: '::ffff:127.0.0.1', headers: await nginxHeaders('alice') })
  t.equal(mapped.statusCode, 200, 'an IPv4-mapped IPv6 address of a trusted IPv4 proxy is trusted')
})

t.test('trust as CIDRs, as a function and the Unix socket marker', async (t) => {
  const { app: cidr } = await proxyApp({ proxy: { trust: ['10.0.0.0/8', 'loopback'] } })
  t.teardown(() => cidr.close())
  t.equal((await cidr.inject({ url: '/whoami', remoteAddress: '10.9.8.7', headers: await nginxHeaders('alice') })).statusCode, 200)
  t.equal((await cidr.inject({ url: '/whoami', remoteAddress: '11.0.0.1', headers: await nginxHeaders('alice') })).statusCode, 400)
  const asked: string[] = []
  const { app: fn } = await proxyApp({ proxy: { trust: (address: string) => { asked.push(address); return address === '192.0.2.1' } } })
  t.teardown(() => fn.close())
  t.equal((await fn.inject({ url: '/whoami', remoteAddress: '192.0.2.1', headers: await nginxHeaders('alice') })).statusCode, 200)
  t.equal((await fn.inject({ url: '/whoami', remoteAddress: '192.0.2.2', headers: await nginxHeaders('alice') })).statusCode, 400)
  t.same(asked, ['192.0.2.1', '192.0.2.2'])
  const { app: truthy } = await proxyApp({ proxy: { trust: (() => 'yes') as never } })
  t.teardown(() => truthy.close())
  t.equal((await truthy.inject({ url: '/whoami', remoteAddress: '192.0.2.1', headers: await nginxHeaders('alice') })).statusCode, 400, 'only true trusts')
})

t.test('repeated, oversized and malformed headers are 400, never 500, never an identity', async (t) => {
  const { app } = await proxyApp({ proxy: { maxHeaderBytes: 2048 } })
  t.teardown(() => app.close())
  const alice = await nginxHeaders('alice')
  const rsa = await nginxHeaders('rsa')
  const cases: Array<[string, Record<string, string | string[]>]> = [
    ['repeated certificate', { 'x-ssl-client-cert': [alice['x-ssl-client-cert'], alice['x-ssl-client-cert']], 'x-ssl-client-verify': 'SUCCESS' }],
    ['repeated status', { ...alice, 'x-ssl-client-verify': ['SUCCESS', 'SUCCESS'] }],
    ['oversized', { ...rsa, 'x-ssl-client-cert': rsa['x-ssl-client-cert'] + '%0A'.repeat(1000) }],
    ['bad URL encoding', { ...alice, 'x-ssl-client-cert': alice['x-ssl-client-cert'].slice(0, 40) + '%ZZ' }],
    ['not a PEM', { ...alice, 'x-ssl-client-cert': 'hello' }],
    ['PEM of garbage', { ...alice, 'x-ssl-client-cert': encodeURIComponent('-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n') }],
    ['unknown status', { ...alice, 'x-ssl-client-verify': 'MAYBE' }],
    ['certificate without status', { 'x-ssl-client-cert': alice['x-ssl-client-cert'] }]
  ]
  for (const [name, headers] of cases) {
    const response = await app.inject({ url: '/maybe', remoteAddress: trusted, headers })
    t.equal(response.statusCode, 400, name)
    t.equal(response.json().code, 'FST_CLIENT_CERT_BAD_HEADER', name)
    t.equal(response.json().message, 'The forwarded client certificate headers are malformed', `${name}: static message`)
  }
})

t.test('the proxy\'s verify status: failed is 401 / verified false with its own words; NONE is no certificate', async (t) => {
  const { app } = await proxyApp()
  t.teardown(() => app.close())
  const failed = await nginxHeaders('untrusted', 'FAILED:unable to verify the first certificate')
  t.equal((await app.inject({ url: '/whoami', remoteAddress: trusted, headers: failed })).json().code, 'FST_CLIENT_CERT_INVALID')
  t.match((await app.inject({ url: '/maybe', remoteAddress: trusted, headers: failed })).json(), {
    clientCert: { verified: false, verifyError: 'unable to verify the first certificate', commonName: 'alice' }
  })
  const none = await app.inject({ url: '/whoami', remoteAddress: trusted, headers: { 'x-ssl-client-verify': 'NONE' } })
  t.equal(none.json().code, 'FST_CLIENT_CERT_MISSING')
  t.same((await app.inject({ url: '/maybe', remoteAddress: trusted, headers: { 'x-ssl-client-verify': 'NONE' } })).json(), { clientCert: null })
})

t.test('decoded certificates are cached by header value, never by connection', async (t) => {
  const { app, seen } = await proxyApp()
  t.teardown(() => app.close())
  const alice = await nginxHeaders('alice')
  const bob = await nginxHeaders('bob')
  for (const headers of [alice, bob, alice, bob, alice, bob]) await app.inject({ url: '/whoami', remoteAddress: trusted, headers })
  t.not(seen[0], seen[2], 'a first sighting is not kept: decoded again the second time')
  t.equal(seen[2], seen[4], 'same header value, from the second sighting on: same cached identity')
  t.equal(seen[3], seen[5])
  t.not(seen[2], seen[3])

  const { app: uncached, seen: fresh } = await proxyApp({ cache: { max: 0 } })
  t.teardown(() => uncached.close())
  for (const headers of [alice, alice]) await uncached.inject({ url: '/whoami', remoteAddress: trusted, headers })
  t.not(fresh[0], fresh[1], 'cache.max 0 decodes every time')
  t.same(toJSON(fresh[0]), toJSON(fresh[1]))
})

t.test('shared secret: required beside the trusted address, compared in constant time', async (t) => {
  const secret = { header: 'X-Proxy-Secret', value: 's3cr3t-s3cr3t-s3cr3t' }
  const { app } = await proxyApp({ proxy: { secret } })
  app.get('/headers', async (request) => ({ secret: request.headers['x-proxy-secret'] ?? null }))
  t.teardown(() => app.close())
  const alice = await nginxHeaders('alice')
  t.equal((await app.inject({ url: '/whoami', remoteAddress: trusted, headers: { ...alice, 'x-proxy-secret': secret.value } })).statusCode, 200)
  t.same((await app.inject({ url: '/headers', remoteAddress: trusted, headers: { ...alice, 'x-proxy-secret': secret.value } })).json(), { secret: null }, 'routes never see the secret')
  t.equal((await app.inject({ url: '/whoami', remoteAddress: trusted, headers: { ...alice, 'x-proxy-secret': 'wrong' } })).json().code, 'FST_CLIENT_CERT_UNTRUSTED_SOURCE')
  t.equal((await app.inject({ url: '/whoami', remoteAddress: trusted, headers: alice })).json().code, 'FST_CLIENT_CERT_UNTRUSTED_SOURCE')
  t.equal((await app.inject({ url: '/whoami', remoteAddress: trusted, headers: { 'x-proxy-secret': secret.value } })).json().code, 'FST_CLIENT_CERT_MISSING', 'the secret alone is no certificate')
  t.equal((await app.inject({ url: '/whoami', remoteAddress: '127.0.0.9', headers: { ...alice, 'x-proxy-secret': secret.value } })).json().code, 'FST_CLIENT_CERT_UNTRUSTED_SOURCE', 'the secret does not replace trust')
})

t.test("mode 'auto': trusted proxy connections by headers alone, others by their TLS socket", async (t) => {
  const corpus = await getCorpus()
  const app = Fastify({ https: { key: corpus.leaves.serverauth.keyPem, cert: corpus.leaves.serverauth.chainPem, ca: corpus.caPem, requestCert: true, rejectUnauthorized: false } })
  await app.register(fastifyClientCert, { mode: 'auto', proxy: { preset: 'nginx', trust: [trusted] } })
  app.get('/whoami', async (request) => toJSON(request.clientCert))
  t.teardown(() => app.close())
  t.match((await app.inject({ url: '/whoami', remoteAddress: trusted, headers: await nginxHeaders('alice') })).json(), { source: 'proxy', commonName: 'alice' })
  t.equal((await app.inject({ url: '/whoami', remoteAddress: trusted })).json().code, 'FST_CLIENT_CERT_MISSING', 'a proxy connection without headers has no certificate')
  t.equal((await app.inject({ url: '/whoami', remoteAddress: '127.0.0.5' })).json().code, 'FST_CLIENT_CERT_MISSING', 'a direct connection without TLS certificate')
  t.equal((await app.inject({ url: '/whoami', remoteAddress: '127.0.0.5', headers: await nginxHeaders('alice') })).json().code, 'FST_CLIENT_CERT_UNTRUSTED_SOURCE')
})

t.test('proxy.ca verifies forwarded certificates in the app: chain, dates, clientAuth usage', async (t) => {
  const corpus = await getCorpus()
  const { app } = await proxyApp({ proxy: { preset: 'azure', ca: corpus.caPem } })
  t.teardown(() => app.close())
  const azure = (leaf: LeafName) => ({ 'x-arr-clientcert': corpus.leaves[leaf].der.toString('base64') })
  const expectations: Array<[LeafName, boolean, string | null]> = [
    ['alice', true, null],
    ['expired', false, 'CERT_HAS_EXPIRED'],
    ['notyet', false, 'CERT_NOT_YET_VALID'],
    ['untrusted', false, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
    ['selfsigned', false, 'DEPTH_ZERO_SELF_SIGNED_CERT'],
    ['serverauth', false, 'INVALID_PURPOSE']
  ]
  for (const [leaf, verified, verifyError] of expectations) {
    const response = await app.inject({ url: '/maybe', remoteAddress: trusted, headers: azure(leaf) })
    t.match(response.json(), { clientCert: { source: 'proxy', proxy: 'azure', verified, verifyError } }, leaf)
  }
  // Only the root as anchor: the intermediate is unknown, so alice's chain cannot be built.
  const { app: rootOnly } = await proxyApp({ proxy: { preset: 'azure', ca: new X509Certificate(corpus.root.certPem).raw } })
  t.teardown(() => rootOnly.close())
  t.match((await rootOnly.inject({ url: '/maybe', remoteAddress: trusted, headers: azure('alice') })).json(), { clientCert: { verified: false, verifyError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' } })
  // reload() swaps the anchors for the next request, cached decodes included.
  rootOnly.clientCert.reload({ ca: corpus.caPem })
  t.match((await rootOnly.inject({ url: '/maybe', remoteAddress: trusted, headers: azure('alice') })).json(), { clientCert: { verified: true } })
  t.throws(() => rootOnly.clientCert.reload({ ca: null }), /reload\.ca: cannot be removed: preset 'azure' needs it/)
})

t.test('trustProxy and X-Forwarded-For never make an untrusted peer a proxy', async (t) => {
  const app = Fastify({ trustProxy: true })
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'nginx', trust: [trusted] } })
  app.get('/whoami', async (request) => ({ ip: request.ip, cn: request.clientCert?.commonName }))
  t.teardown(() => app.close())
  const spoofed = await app.inject({
    url: '/whoami',
    remoteAddress: '203.0.113.9',
    headers: { ...await nginxHeaders('alice'), 'x-forwarded-for': trusted, forwarded: `for=${trusted}` }
  })
  t.equal(spoofed.json().code, 'FST_CLIENT_CERT_UNTRUSTED_SOURCE')
  const genuine = await app.inject({ url: '/whoami', remoteAddress: trusted, headers: { ...await nginxHeaders('alice'), 'x-forwarded-for': '198.51.100.7' } })
  t.same(genuine.json(), { ip: '198.51.100.7', cn: 'alice' }, 'request.ip follows trustProxy; the certificate follows the TCP peer')
})
