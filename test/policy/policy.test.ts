import t from 'tap'
import fastifyAuth from '@fastify/auth'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import createError from '@fastify/error'
import fastifySensible from '@fastify/sensible'
import { Writable } from 'node:stream'
import { fastifyClientCert, type ClientCertIdentity, type FastifyClientCertOptions } from '../../lib/index.js'
import { getCorpus } from '../helpers/certs.js'

async function app (options: FastifyClientCertOptions = {}, logs?: string[]): Promise<FastifyInstance> {
  const corpus = await getCorpus()
  const stream = new Writable({ write (chunk, _encoding, callback) { logs?.push(String(chunk)); callback() } })
  const instance = Fastify({
    https: { key: corpus.leaves.serverauth.keyPem, cert: corpus.leaves.serverauth.chainPem, ca: corpus.caPem, requestCert: true, rejectUnauthorized: false },
    logger: logs === undefined ? false : { stream, level: 'debug' }
  }) as unknown as FastifyInstance
  await instance.register(fastifyClientCert, { testing: true, ...options })
  instance.get('/whoami', async (request) => ({ cn: request.clientCert?.commonName ?? null, user: request.user ?? null }))
  instance.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => ({ cn: request.clientCert?.commonName ?? null, verified: request.clientCert?.verified ?? null }))
  instance.get('/admins', { config: { clientCert: { allow: { subjects: [{ OU: 'Platform' }] } } } }, async (request) => ({ cn: request.clientCert?.commonName }))
  t.teardown(() => instance.close())
  return instance
}

t.test('injectAs: a test-only way to inject() as a certificate', async (t) => {
  const corpus = await getCorpus()
  const instance = await app()
  const alice = await instance.clientCert.injectAs({ certificate: corpus.leaves.alice.certPem }, '/whoami')
  t.same(alice.json(), { cn: 'alice', user: null })
  const unverified = await instance.clientCert.injectAs({ certificate: corpus.leaves.expired.der, verified: false, verifyError: 'CERT_HAS_EXPIRED' }, { url: '/maybe' })
  t.same(unverified.json(), { cn: 'expired', verified: false })
  const none = await instance.clientCert.injectAs({ certificate: null }, { method: 'GET', url: '/whoami', headers: { 'x-other': '1' } })
  t.equal(none.json().code, 'FST_CLIENT_CERT_MISSING')
  const asProxy = await instance.clientCert.injectAs({ certificate: corpus.leaves.bob.certPem, source: 'proxy', proxy: 'nginx' }, '/whoami')
  t.same(asProxy.json(), { cn: 'bob', user: null })
  const guessed = await instance.inject({ url: '/whoami', headers: { 'x-fastify-client-cert-test-token': 'guess' } })
  t.equal(guessed.statusCode, 400, 'a token the process did not mint is refused')
  const twice = await instance.inject({ url: '/whoami', headers: { 'x-fastify-client-cert-test-token': ['a', 'b'] } })
  t.equal(twice.statusCode, 400)

  const production = Fastify({ https: { key: corpus.leaves.serverauth.keyPem, cert: corpus.leaves.serverauth.chainPem, requestCert: true } })
  await production.register(fastifyClientCert)
  t.teardown(() => production.close())
  t.throws(() => production.clientCert.injectAs({ certificate: null }, '/'), /option testing: must be true to use injectAs/)
  const ignored = await production.inject({ url: '/', headers: { 'x-fastify-client-cert-test-token': 'x' } })
  t.equal(ignored.statusCode, 404, 'without testing, the header means nothing')
})

t.test('allow: global rules, per-route rules replace them, DN injection never matches', async (t) => {
  const corpus = await getCorpus()
  const instance = await app({ allow: { subjects: [{ O: 'Example Corp' }], emails: ['alice@example.com'] } })
  t.equal((await instance.clientCert.injectAs({ certificate: corpus.leaves.alice.certPem }, '/whoami')).statusCode, 200)
  t.equal((await instance.clientCert.injectAs({ certificate: corpus.leaves.utf8.certPem }, '/whoami')).statusCode, 403, 'O=Beispiel GmbH, no email')
  const forbidden = await instance.clientCert.injectAs({ certificate: corpus.leaves.alice.certPem }, '/admins')
  t.same(forbidden.json(), { statusCode: 403, code: 'FST_CLIENT_CERT_FORBIDDEN', error: 'Forbidden', message: 'The client certificate is not allowed to access this resource' })
  t.equal((await instance.clientCert.injectAs({ certificate: corpus.leaves.twoou.certPem }, '/admins')).statusCode, 200)
  t.equal((await instance.clientCert.injectAs({ certificate: corpus.leaves.utf8.certPem }, '/maybe')).statusCode, 403, 'optional routes refuse verified certificates allow refuses')
  t.same((await instance.clientCert.injectAs({ certificate: corpus.leaves.utf8.certPem, verified: false }, '/maybe')).json(), { cn: 'Jürgen Ünicode 测试', verified: false }, 'unverified on an optional route: rules do not run')

  const injection = await app({ allow: { subjects: [{ O: 'admins' }] } })
  // tricky's CN is `#Smith, John+admin=1 "x" <a/b>;\ `: separators inside a value never make attributes.
  t.equal((await injection.clientCert.injectAs({ certificate: corpus.leaves.tricky.certPem }, '/whoami')).statusCode, 403)
})

t.test('authorize and resolveUser may answer with their own 4xx error; anything else is a 500 with the error as cause', async (t) => {
  const corpus = await getCorpus()
  const logs: string[] = []
  const TooMany = createError('APP_TOO_MANY', 'Slow down', 429)
  const causes: unknown[] = []
  const instance = Fastify({
    https: { key: corpus.leaves.serverauth.keyPem, cert: corpus.leaves.serverauth.chainPem, ca: corpus.caPem, requestCert: true, rejectUnauthorized: false },
    logger: { stream: new Writable({ write (chunk, _encoding, callback) { logs.push(String(chunk)); callback() } }) }
  }) as unknown as FastifyInstance
  await instance.register(fastifySensible)
  await instance.register(fastifyClientCert, {
    testing: true,
    authorize: async (identity) => {
      if (identity.commonName === 'bob') throw instance.httpErrors.forbidden('Bob is on holiday')
      if (identity.commonName === 'rsa-user') throw Object.assign(new Error('odd status'), { statusCode: 503 })
      if (identity.commonName === 'Jürgen Ünicode 测试') {
        // A library's error that carries a 4xx status and internals: never sent as it is.
        throw Object.assign(new Error('ResourceNotFoundException: arn:aws:dynamodb:eu-west-1:123456789012:table/users'), { statusCode: 400, headers: { 'set-cookie': 'internal=1' } })
      }
      if (identity.commonName?.startsWith('#Smith') === true) throw Object.assign(instance.httpErrors.conflict('Already enrolled'), { headers: { 'x-internal': 'leak' } })
      return true
    },
    resolveUser: async (identity) => {
      if (identity.commonName === 'carol') throw new TooMany()
      if (identity.commonName !== 'alice') throw Object.assign(new Error('not an http error'), { statusCode: '404', expose: true })
      return { name: identity.commonName }
    }
  })
  instance.setErrorHandler(async (error: Error & { cause?: unknown, statusCode?: number, code?: string }, _request, reply) => {
    causes.push(error.cause)
    return await reply.code(error.statusCode ?? 500).send({ code: error.code, message: error.message })
  })
  instance.get('/whoami', async (request) => request.user)
  t.teardown(() => instance.close())
  const tricky = await instance.clientCert.injectAs({ certificate: corpus.leaves.tricky.certPem }, '/whoami')
  t.same([tricky.statusCode, tricky.json().message], [409, 'Already enrolled'], 'httpErrors.conflict')
  t.equal(tricky.headers['x-internal'], undefined, 'an answer error\'s own headers are not copied onto the reply')
  const as = async (leaf: 'alice' | 'bob' | 'rsa' | 'twoou' | 'utf8' | 'nocn') => await instance.clientCert.injectAs({ certificate: corpus.leaves[leaf].certPem }, '/whoami')
  t.same((await as('alice')).json(), { name: 'alice' })
  const bob = await as('bob')
  t.same([bob.statusCode, bob.json().message], [403, 'Bob is on holiday'], "sensible's httpErrors.forbidden: its status and message")
  const twoou = await as('twoou')
  t.same([twoou.statusCode, twoou.json()], [429, { code: 'APP_TOO_MANY', message: 'Slow down' }], '@fastify/error with 429')
  const rsa = await as('rsa')
  t.same([rsa.statusCode, rsa.json()], [500, { code: 'FST_CLIENT_CERT_INTERNAL', message: 'Client certificate authentication failed' }], 'a 5xx status is a static 500')
  t.equal((causes.at(-1) as Error).message, 'odd status', 'whose cause is the hook\'s error')
  const utf8 = await as('utf8')
  t.same([utf8.statusCode, utf8.json()], [500, { code: 'FST_CLIENT_CERT_INTERNAL', message: 'Client certificate authentication failed' }], 'a library error with a 4xx status and internals: a static 500')
  t.equal(utf8.headers['set-cookie'], undefined, 'its headers stay behind')
  const nocn = await as('nocn')
  t.same([nocn.statusCode, nocn.json().code], [500, 'FST_CLIENT_CERT_INTERNAL'], 'a statusCode that is no number is no status')
  t.notMatch(logs.join(''), /Bob is on holiday.*"level":50/, 'a 4xx from a hook is no error in the log')
})

t.test('authorize: only true admits; a throw is a 500 with a static message', async (t) => {
  const corpus = await getCorpus()
  const logs: string[] = []
  const seen: Array<[ClientCertIdentity, FastifyRequest]> = []
  const instance = await app({
    authorize: async (identity, request) => {
      seen.push([identity, request])
      if (identity.commonName === 'carol') throw new Error('database is down: secret detail')
      if (identity.commonName === 'bob') return 'yes' as unknown as boolean
      return identity.commonName === 'alice'
    }
  }, logs)
  t.equal((await instance.clientCert.injectAs({ certificate: corpus.leaves.alice.certPem }, '/whoami')).statusCode, 200)
  t.equal((await instance.clientCert.injectAs({ certificate: corpus.leaves.bob.certPem }, '/whoami')).statusCode, 403, 'truthy is not true')
  t.equal((await instance.clientCert.injectAs({ certificate: corpus.leaves.rsa.certPem }, '/whoami')).statusCode, 403)
  const crashed = await instance.clientCert.injectAs({ certificate: corpus.leaves.twoou.certPem }, '/whoami')
  t.same(crashed.json(), { statusCode: 500, code: 'FST_CLIENT_CERT_INTERNAL', error: 'Internal Server Error', message: 'Client certificate authentication failed' })
  t.match(logs.join(''), /database is down: secret detail/, 'the hook\'s error goes to the log')
  t.equal(seen[0][1].url, '/whoami', 'authorize receives the request')
  t.equal((await instance.clientCert.injectAs({ certificate: null }, '/maybe')).statusCode, 200, 'no certificate on an optional route: authorize does not run')
  t.equal(seen.length, 4)
  const sync = await app({ authorize: (identity) => identity.commonName === 'alice' })
  t.equal((await sync.clientCert.injectAs({ certificate: corpus.leaves.alice.certPem }, '/whoami')).statusCode, 200, 'synchronous authorize')
  t.equal((await sync.clientCert.injectAs({ certificate: corpus.leaves.bob.certPem }, '/whoami')).statusCode, 403)
})

t.test('resolveUser: request.user, null is 403, cached per certificate, one lookup for concurrent requests', async (t) => {
  const corpus = await getCorpus()
  let lookups = 0
  let failNext = false
  const instance = await app({
    resolveUser: async (identity) => {
      lookups++
      await new Promise((resolve) => setTimeout(resolve, 20))
      if (failNext) { failNext = false; throw new Error('lookup failed') }
      return identity.commonName === 'alice' ? { id: 1, name: 'Alice' } : null
    }
  })
  const results = await Promise.all(Array.from({ length: 5 }, () => instance.clientCert.injectAs({ certificate: corpus.leaves.alice.certPem }, '/whoami')))
  for (const result of results) t.same(result.json(), { cn: 'alice', user: { id: 1, name: 'Alice' } })
  t.equal(lookups, 1, 'five concurrent requests, one lookup')
  await instance.clientCert.injectAs({ certificate: corpus.leaves.alice.certPem }, '/whoami')
  t.equal(lookups, 1, 'cached')
  t.equal((await instance.clientCert.injectAs({ certificate: corpus.leaves.bob.certPem }, '/whoami')).statusCode, 403)
  t.equal((await instance.clientCert.injectAs({ certificate: corpus.leaves.bob.certPem }, '/whoami')).statusCode, 403)
  t.equal(lookups, 3, 'null is not cached')
  instance.clientCert.reload({})
  failNext = true
  t.equal((await instance.clientCert.injectAs({ certificate: corpus.leaves.alice.certPem }, '/whoami')).statusCode, 500, 'reload emptied the cache; the failure is a 500')
  t.equal((await instance.clientCert.injectAs({ certificate: corpus.leaves.alice.certPem }, '/whoami')).statusCode, 200, 'failures are not cached')
  t.equal(lookups, 5)
})

t.test('resolveUser without caching, and beside another request.user decorator', async (t) => {
  const corpus = await getCorpus()
  let lookups = 0
  const instance = await app({ cache: { max: 0 }, resolveUser: async () => { lookups++; return { id: lookups } } })
  await instance.clientCert.injectAs({ certificate: corpus.leaves.alice.certPem }, '/whoami')
  const second = await instance.clientCert.injectAs({ certificate: corpus.leaves.alice.certPem }, '/whoami')
  t.same(second.json().user, { id: 2 })
  const other = Fastify()
  other.decorateRequest('user', null, [])
  await other.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1' }, resolveUser: async () => ({}) })
  await other.ready()
  t.teardown(() => other.close())
  t.pass('an existing user decorator is reused')
})

t.test('clientCert.verify(): a hook for preHandler and @fastify/auth', async (t) => {
  const corpus = await getCorpus()
  const instance = await app()
  await instance.register(fastifyAuth)
  const apiKey = async (request: FastifyRequest) => {
    if (request.headers['x-api-key'] !== 'k') throw new Error('no api key')
  }
  instance.get('/reports', {
    config: { clientCert: false },
    preHandler: instance.auth([instance.clientCert.verify({ allow: { subjects: [{ CN: 'alice' }] } }), apiKey])
  }, async (request) => ({ by: request.clientCert?.commonName ?? 'api key' }))
  instance.get('/strict', { config: { clientCert: false }, preHandler: instance.clientCert.verify() }, async (request) => ({ cn: request.clientCert?.commonName }))
  t.same((await instance.clientCert.injectAs({ certificate: corpus.leaves.alice.certPem }, '/reports')).json(), { by: 'alice' })
  t.same((await instance.clientCert.injectAs({ certificate: null }, { url: '/reports', headers: { 'x-api-key': 'k' } })).json(), { by: 'api key' })
  const bob = await instance.clientCert.injectAs({ certificate: corpus.leaves.bob.certPem }, '/reports')
  t.equal(bob.statusCode, 401, '@fastify/auth answers with its last failure')
  const neither = await instance.clientCert.injectAs({ certificate: null }, '/reports')
  t.equal(neither.statusCode, 401)

  t.same((await instance.clientCert.injectAs({ certificate: corpus.leaves.bob.certPem }, '/strict')).json(), { cn: 'bob' })
  t.equal((await instance.clientCert.injectAs({ certificate: null }, '/strict')).json().code, 'FST_CLIENT_CERT_MISSING')
  t.equal((await instance.clientCert.injectAs({ certificate: corpus.leaves.bob.certPem, verified: false }, '/strict')).json().code, 'FST_CLIENT_CERT_INVALID')
  t.equal((await instance.inject({ url: '/strict', headers: { 'x-fastify-client-cert-test-token': 'forged' } })).json().code, 'FST_CLIENT_CERT_UNTRUSTED_SOURCE')
})

t.test('decisions are logged with the certificate\'s identity, never the certificate itself', async (t) => {
  const corpus = await getCorpus()
  const logs: string[] = []
  const instance = await app({ allow: { subjects: [{ CN: 'alice' }] } }, logs)
  await instance.clientCert.injectAs({ certificate: corpus.leaves.alice.certPem }, '/whoami')
  await instance.clientCert.injectAs({ certificate: corpus.leaves.bob.certPem }, '/whoami')
  await instance.clientCert.injectAs({ certificate: corpus.leaves.bob.certPem, verified: false, verifyError: 'CERT_REVOKED' }, '/whoami')
  await instance.clientCert.injectAs({ certificate: null }, '/whoami')
  const entries = logs.map((line) => JSON.parse(line)).filter((entry) => typeof entry.msg === 'string' && entry.msg.startsWith('client certificate'))
  t.match(entries, [
    { level: 20, msg: 'client certificate admitted', clientCert: { subject: 'emailAddress=alice@example.com,CN=alice,O=Example Corp,C=US', serialNumber: 'A1B2C3D4E5F60718' } },
    { level: 30, msg: 'client certificate refused by allow rules', clientCert: { subject: 'CN=bob,O=Example Corp,C=US' } },
    { level: 30, msg: 'client certificate not verified', verifyError: 'CERT_REVOKED' },
    { level: 30, msg: 'client certificate refused: none presented' }
  ])
  t.notMatch(logs.join(''), /BEGIN CERTIFICATE|MII/, 'no certificate in the logs')
})
