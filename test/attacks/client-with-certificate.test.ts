// A client with a certificate of its own: it holds a genuine certificate (or makes as many as it likes) and
// tries to get more than that certificate allows, or to make the app keep what it sends.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { fastifyClientCert, type FastifyClientCertOptions } from '../../lib/index.js'
import { getCorpus, type LeafName } from '../helpers/certs.js'
import { makeCrl } from '../helpers/crl.js'
import { startTlsApp } from '../helpers/server.js'

const trusted = '127.0.0.1'

async function proxyApp (t: Test, options: Omit<FastifyClientCertOptions, 'mode' | 'proxy'> & { proxy?: Partial<NonNullable<FastifyClientCertOptions['proxy']>> } = {}): Promise<{ app: FastifyInstance, handled: unknown[] }> {
  const app = Fastify()
  const handled: unknown[] = []
  await app.register(fastifyClientCert, {
    mode: 'proxy',
    ...options,
    proxy: { preset: 'nginx', trust: [trusted], ...options.proxy }
  } as FastifyClientCertOptions)
  app.get('/whoami', async (request) => {
    handled.push(request.user ?? null)
    return { subject: request.clientCert?.subject, user: request.user ?? null }
  })
  t.teardown(() => app.close())
  return { app, handled }
}

async function nginxHeaders (leaf: LeafName): Promise<Record<string, string>> {
  const corpus = await getCorpus()
  return { 'x-ssl-client-cert': encodeURIComponent(corpus.leaves[leaf].certPem), 'x-ssl-client-verify': 'SUCCESS' }
}

async function whoami (app: FastifyInstance, headers: Record<string, string>): Promise<{ statusCode: number, json: () => any }> {
  return await app.inject({ url: '/whoami', remoteAddress: trusted, headers })
}

/** `count` distinct certificates that parse but never verify: the RSA leaf with its signature's last bytes changed. */
function forgedVariants (der: Buffer, count: number): Buffer[] {
  const variants: Buffer[] = []
  for (let i = 0; variants.length < count; i++) {
    const copy = Buffer.from(der)
    copy.writeUInt16BE(i & 0xffff, copy.length - 2)
    if (!copy.equals(der)) variants.push(copy)
  }
  return variants
}

for (const falsy of [false, 0, '', undefined]) {
  t.test(`resolveUser returning ${JSON.stringify(falsy) ?? 'undefined'} refuses with 403, like null`, async (t) => {
    const { app, handled } = await proxyApp(t, { resolveUser: async () => falsy })
    const response = await whoami(app, await nginxHeaders('alice'))
    t.equal(response.statusCode, 403)
    t.same(response.json(), {
      statusCode: 403,
      code: 'FST_CLIENT_CERT_FORBIDDEN',
      error: 'Forbidden',
      message: 'The client certificate is not allowed to access this resource'
    })
    t.same(handled, [], 'the route never ran')
  })
}

t.test('a user lookup in flight during reload() never fills the cache after it', async (t) => {
  let release: (user: { name: string }) => void = () => {}
  const lookups: string[] = []
  let current = 'before-reload'
  const { app } = await proxyApp(t, {
    resolveUser: async () => {
      lookups.push(current)
      if (current === 'before-reload') return await new Promise((resolve) => { release = resolve })
      return { name: current }
    }
  })
  const headers = await nginxHeaders('alice')
  const first = whoami(app, headers)
  while (lookups.length === 0) await new Promise((resolve) => setImmediate(resolve))
  await app.clientCert.reload({})
  current = 'after-reload'
  release({ name: 'before-reload' })
  t.same((await first).json().user, { name: 'before-reload' }, 'the request that started before the reload gets its lookup')
  const second = await whoami(app, headers)
  t.same(second.json().user, { name: 'after-reload' }, 'the next request looks the user up again')
  t.same(lookups, ['before-reload', 'after-reload'])
  t.same((await whoami(app, headers)).json().user, { name: 'after-reload' })
  t.equal(lookups.length, 2, 'and the fresh user is cached')
})

t.test('a request started after reload() does not join a lookup that started before it', async (t) => {
  const releases: Array<(user: { name: string }) => void> = []
  const { app } = await proxyApp(t, {
    resolveUser: async () => await new Promise((resolve) => { releases.push(resolve) })
  })
  const headers = await nginxHeaders('alice')
  const first = whoami(app, headers)
  while (releases.length === 0) await new Promise((resolve) => setImmediate(resolve))
  await app.clientCert.reload({})
  const second = whoami(app, headers)
  while (releases.length === 1) await new Promise((resolve) => setImmediate(resolve))
  releases[1]({ name: 'after-reload' })
  releases[0]({ name: 'before-reload' })
  t.same((await second).json().user, { name: 'after-reload' })
  t.same((await first).json().user, { name: 'before-reload' })
  t.equal(app.clientCert.stats().users.entries, 1)
})

t.test('flooding the certificate cache with distinct unverified certificates keeps none of them', async (t) => {
  const corpus = await getCorpus()
  const { app } = await proxyApp(t, { required: false, proxy: { preset: 'cloudflare', ca: corpus.caPem } })
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => ({ verified: request.clientCert?.verified }))
  const send = async (der: Buffer): Promise<unknown> => (await app.inject({
    url: '/maybe', remoteAddress: trusted, headers: { 'cf-client-cert-der-base64': der.toString('base64') }
  })).json()
  // Each twice: a certificate enters the cache on its second sighting, and a refused one not even then.
  for (const der of forgedVariants(corpus.leaves.rsa.der, 300)) {
    t.same(await send(der), { verified: false })
    t.same(await send(der), { verified: false })
  }
  t.same(app.clientCert.stats().certificates, { entries: 0, bytes: 0 }, 'not one refused certificate is kept')
  t.same(await send(corpus.leaves.rsa.der), { verified: true })
  t.same(await send(corpus.leaves.rsa.der), { verified: true })
  t.equal(app.clientCert.stats().certificates.entries, 1, 'a certificate that verified is kept, seen twice')
})

t.test('the certificate cache is bounded by bytes as well as by entries', async (t) => {
  const leaves: LeafName[] = ['alice', 'bob', 'tricky', 'utf8', 'multirdn', 'twoou', 'nocn', 'san', 'rsa']
  const probe = await proxyApp(t)
  // A certificate enters the cache the second time it is seen.
  await whoami(probe.app, await nginxHeaders('alice'))
  await whoami(probe.app, await nginxHeaders('alice'))
  const one = probe.app.clientCert.stats().certificates.bytes
  t.ok(one > (await nginxHeaders('alice'))['x-ssl-client-cert'].length, `one entry counts at least its header (${one} bytes)`)
  const maxBytes = one * 3
  const { app } = await proxyApp(t, { cache: { certificates: { maxBytes } } })
  for (const leaf of leaves) {
    t.equal((await whoami(app, await nginxHeaders(leaf))).statusCode, 200, leaf)
    t.equal((await whoami(app, await nginxHeaders(leaf))).statusCode, 200, leaf)
    const { entries, bytes } = app.clientCert.stats().certificates
    t.ok(bytes <= maxBytes && entries <= 3 && entries >= 1, `${leaf}: ${entries} entries, ${bytes} of ${maxBytes} bytes`)
  }
  const { app: tiny } = await proxyApp(t, { cache: { certificates: { maxBytes: 256 } } })
  t.equal((await whoami(tiny, await nginxHeaders('alice'))).statusCode, 200)
  t.equal((await whoami(tiny, await nginxHeaders('alice'))).statusCode, 200)
  t.same(tiny.clientCert.stats().certificates, { entries: 0, bytes: 0 }, 'an entry larger than the bound is not kept')
})

t.test('a cached certificate is judged again after reload() and dropped once revoked', async (t) => {
  const corpus = await getCorpus()
  const { app } = await proxyApp(t)
  const alice = await nginxHeaders('alice')
  const bob = await nginxHeaders('bob')
  for (const headers of [alice, alice, bob, bob]) t.equal((await whoami(app, headers)).statusCode, 200)
  t.equal(app.clientCert.stats().certificates.entries, 2, 'each kept on its second sighting')
  await app.clientCert.reload({ crl: makeCrl(corpus.intermediate, [corpus.leaves.alice.certPath]) })
  const revoked = await whoami(app, alice)
  t.equal(revoked.statusCode, 401)
  t.equal(revoked.json().code, 'FST_CLIENT_CERT_INVALID')
  t.equal(app.clientCert.stats().certificates.entries, 1, 'the revoked certificate left the cache')
  t.equal((await whoami(app, alice)).statusCode, 401, 'and stays refused')
})

t.test('cache: { users: { max: 0 } } looks users up per request and keeps the certificate cache', async (t) => {
  let lookups = 0
  const { app } = await proxyApp(t, { cache: { users: { max: 0 } }, resolveUser: async () => ({ n: ++lookups }) })
  const headers = await nginxHeaders('alice')
  for (let i = 1; i <= 3; i++) t.same((await whoami(app, headers)).json().user, { n: i })
  t.same(app.clientCert.stats(), { users: { entries: 0 }, certificates: { entries: 1, bytes: app.clientCert.stats().certificates.bytes } })
  const { app: both } = await proxyApp(t, { cache: { max: 0 }, resolveUser: async () => ({ n: 0 }) })
  for (let i = 0; i < 2; i++) t.equal((await whoami(both, headers)).statusCode, 200)
  t.same(both.clientCert.stats(), { users: { entries: 0 }, certificates: { entries: 0, bytes: 0 } }, 'cache: { max: 0 } still turns both off')
  const { app: users } = await proxyApp(t, { cache: { max: 0, users: { max: 10 } }, resolveUser: async () => ({ n: 0 }) })
  t.equal((await whoami(users, headers)).statusCode, 200)
  t.same(users.clientCert.stats(), { users: { entries: 1 }, certificates: { entries: 0, bytes: 0 } }, 'a per-cache bound overrides the shared one')
})

t.test('cache options: each bound is checked and named', async (t) => {
  const register = async (cache: unknown): Promise<void> => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'nginx', trust: trusted }, cache } as FastifyClientCertOptions)
    await app.ready()
  }
  const cases: Array<[unknown, RegExp]> = [
    [42, /cache: must be \{ max, ttl, users, certificates \}/],
    [{ size: 1 }, /cache\.size: is not an option/],
    [{ users: [] }, /cache\.users: must be \{ max, ttl \}/],
    [{ users: { maxBytes: 1 } }, /cache\.users\.maxBytes: is not an option/],
    [{ users: { max: -1 } }, /cache\.users\.max: must be a non-negative integer/],
    [{ users: { ttl: 1.5 } }, /cache\.users\.ttl: must be a non-negative integer/],
    [{ certificates: 'big' }, /cache\.certificates: must be \{ max, ttl, maxBytes \}/],
    [{ certificates: { max: '1' } }, /cache\.certificates\.max: must be a non-negative integer/],
    [{ certificates: { ttl: -5 } }, /cache\.certificates\.ttl: must be a non-negative integer/],
    [{ certificates: { maxBytes: Infinity } }, /cache\.certificates\.maxBytes: must be a non-negative integer/],
    [{ certificates: { users: {} } }, /cache\.certificates\.users: is not an option/]
  ]
  for (const [cache, message] of cases) {
    await t.rejects(register(cache), { code: 'FST_CLIENT_CERT_INVALID_OPTION', message }, JSON.stringify(cache))
  }
  await t.resolves(register({ max: 5, ttl: 0, users: { max: 1, ttl: 10 }, certificates: { max: 2, ttl: 20, maxBytes: 0 } }))
})

t.test('cache entries expire after their ttl, and ttl 0 keeps them until evicted', async (t) => {
  const { BoundedCache } = await import('../../lib/sources/forward-cache.js')
  const cache = new BoundedCache<string>(2, 100, 1000)
  cache.set('a', 'A', 10, 0)
  t.equal(cache.get('a', 99), 'A')
  t.equal(cache.get('a', 100), undefined, 'expired')
  t.same([cache.size, cache.bytes], [0, 0])
  cache.set('a', 'A', 10, 0)
  cache.set('b', 'B', 10, 0)
  t.equal(cache.get('a', 1), 'A', 'a is now the most recently used')
  cache.set('c', 'C', 10, 0)
  t.same([cache.get('b', 1), cache.get('a', 1), cache.get('c', 1)], [undefined, 'A', 'C'], 'the least recently used went')
  cache.set('a', 'A2', 500, 0)
  t.same([cache.size, cache.bytes], [2, 510], 'replacing an entry counts its new size only')
  cache.delete('missing')
  const forever = new BoundedCache<string>(1, 0, 1000)
  forever.set('k', 'V', 1, 0)
  t.equal(forever.get('k', Number.MAX_SAFE_INTEGER), 'V')
})

t.test('stats() in mode tls: no certificate cache, the users one as configured', async (t) => {
  const { app } = await startTlsApp({ plugin: { resolveUser: async () => ({ id: 1 }) } })
  t.teardown(() => app.close())
  t.same(app.clientCert.stats(), { users: { entries: 0 }, certificates: { entries: 0, bytes: 0 } })
})
