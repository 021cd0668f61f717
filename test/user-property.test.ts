import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyJwt from '@fastify/jwt'
import { Writable } from 'node:stream'
import { ClientCertInvalidOptionError, fastifyClientCert, type ClientCertPresetName } from '../lib/index.js'
import { normalizeOptions } from '../lib/options.js'
import { presetNames } from '../lib/sources/presets/index.js'
import { getCorpus } from './helpers/certs.js'

async function httpsApp (logs?: string[]): Promise<FastifyInstance> {
  const corpus = await getCorpus()
  const stream = new Writable({ write (chunk, _encoding, callback) { logs?.push(String(chunk)); callback() } })
  const app = Fastify({
    https: { key: corpus.leaves.serverauth.keyPem, cert: corpus.leaves.serverauth.chainPem, ca: corpus.caPem, requestCert: true, rejectUnauthorized: false },
    logger: logs === undefined ? false : { stream, level: 'warn' }
  }) as unknown as FastifyInstance
  t.teardown(() => app.close())
  return app
}

// The tests name the property at run time; the types would require declaring it in FastifyClientCertUser.
const register = (app: FastifyInstance, options: Record<string, unknown>) => app.register(fastifyClientCert, options as never)

function refusal (options: Record<string, unknown>): string {
  try {
    normalizeOptions(options)
  } catch (error) {
    if (!(error instanceof ClientCertInvalidOptionError)) throw error
    return error.message
  }
  return 'accepted'
}

t.test('userProperty: resolveUser fills the named request property, and request.user stays free', async (t) => {
  const corpus = await getCorpus()
  const app = await httpsApp()
  await register(app, { testing: true, userProperty: 'account', resolveUser: async (identity: { commonName: string | null }) => ({ name: identity.commonName }) })
  app.get('/me', async (request) => {
    const holder = request as unknown as Record<string, unknown>
    return { account: holder.account, user: 'user' in request ? 'present' : 'absent' }
  })
  app.get('/open', { config: { clientCert: false } }, async (request) => ({ account: (request as unknown as Record<string, unknown>).account }))
  t.same((await app.clientCert.injectAs({ certificate: corpus.leaves.alice.certPem }, '/me')).json(), { account: { name: 'alice' }, user: 'absent' })
  t.same((await app.clientCert.injectAs({ certificate: null }, '/open')).json(), { account: null }, 'decorated with null, so every request has the same shape')
})

t.test('beside @fastify/jwt: the token user in request.user, the certificate user in request.account', async (t) => {
  const corpus = await getCorpus()
  const logs: string[] = []
  const app = await httpsApp(logs)
  await app.register(fastifyJwt, { secret: 'a secret that is long enough for HS256' })
  await register(app, { testing: true, userProperty: 'account', resolveUser: async () => ({ id: 7 }) })
  app.get('/both', async (request) => {
    await request.jwtVerify()
    return { token: request.user, account: (request as unknown as Record<string, unknown>).account }
  })
  await app.ready()
  const token = app.jwt.sign({ sub: 'svc' })
  const response = await app.clientCert.injectAs({ certificate: corpus.leaves.alice.certPem }, { url: '/both', headers: { authorization: `Bearer ${token}` } })
  t.equal(response.statusCode, 200)
  t.match(response.json(), { token: { sub: 'svc' }, account: { id: 7 } })
  t.same(logs, [], 'no warning: the names do not collide')
})

t.test('a userProperty another plugin decorated is shared, with a warning naming the option', async (t) => {
  const logs: string[] = []
  const app = await httpsApp(logs)
  await app.register(fastifyJwt, { secret: 'a secret that is long enough for HS256' })
  await register(app, { resolveUser: async () => ({ id: 1 }) })
  await app.ready()
  t.equal(logs.length, 1)
  t.match(JSON.parse(logs[0]!), { level: 40, msg: /request\.user is already a request decorator.*set the userProperty option/ })
})

t.test('userProperty is checked at registration', async (t) => {
  t.equal(refusal({}), 'accepted')
  t.equal(normalizeOptions({}).userProperty, 'user', "default 'user'")
  t.equal(normalizeOptions({ userProperty: '$account_2' }).userProperty, '$account_2')
  for (const bad of [1, '', 'my-user', '2fa', 'a.b', null]) {
    t.match(refusal({ userProperty: bad }), /^Invalid fastify-client-cert option userProperty: must be a property name/, JSON.stringify(bad))
  }
  for (const taken of ['clientCert', 'requireClientCert', 'body', 'headers', 'raw', 'constructor', '__proto__', 'toString', 'hasOwnProperty']) {
    t.equal(refusal({ userProperty: taken }), `Invalid fastify-client-cert option userProperty: must not be '${taken}': Fastify requests already have it`, taken)
  }
  const app = await httpsApp()
  await t.rejects(async () => { await register(app, { userProperty: 'params', resolveUser: async () => ({}) }) }, { code: 'FST_CLIENT_CERT_INVALID_OPTION' })
})

t.test("userProperty refuses every member a Fastify request has (this Fastify version's list)", async (t) => {
  const app = await httpsApp()
  await register(app, { testing: true })
  let members: string[] = []
  app.get('/', { config: { clientCert: false } }, async (request) => {
    const names = new Set<string>()
    for (let object: object | null = request; object !== null && object !== Object.prototype; object = Object.getPrototypeOf(object)) {
      for (const name of Object.getOwnPropertyNames(object)) names.add(name)
    }
    members = [...names]
    return 'ok'
  })
  await app.clientCert.injectAs({ certificate: null }, { url: '/', headers: {} })
  t.ok(members.includes('clientCert') && members.includes('ip') && members.includes('params'), 'the list was read')
  const accepted = members.filter((name) => /^[A-Za-z_$][\w$]*$/.test(name) && refusal({ userProperty: name }) === 'accepted')
  t.same(accepted, [])
})

t.test('request.requireClientCert(): the verified identity, or the 401 a required route sends', async (t) => {
  const corpus = await getCorpus()
  const app = await httpsApp()
  await register(app, { testing: true, required: false })
  let same = false
  app.get('/strict', async (request) => {
    const identity = request.requireClientCert()
    same = identity === request.clientCert
    return { cn: identity.commonName }
  })
  t.same((await app.clientCert.injectAs({ certificate: corpus.leaves.alice.certPem }, '/strict')).json(), { cn: 'alice' })
  t.ok(same, 'it is request.clientCert')
  const missing = await app.clientCert.injectAs({ certificate: null }, '/strict')
  t.equal(missing.statusCode, 401)
  t.equal(missing.json().code, 'FST_CLIENT_CERT_MISSING')
  const invalid = await app.clientCert.injectAs({ certificate: corpus.leaves.expired.certPem, verified: false, verifyError: 'CERT_HAS_EXPIRED' }, '/strict')
  t.equal(invalid.statusCode, 401)
  t.same(invalid.json(), { statusCode: 401, code: 'FST_CLIENT_CERT_INVALID', error: 'Unauthorized', message: invalid.json().message })
  t.notMatch(invalid.json().message, /EXPIRED/, 'the message stays static')
})

t.test('ClientCertPresetName lists exactly the presets the plugin knows', async (t) => {
  // A key missing here does not compile; a preset added without its name in the type fails below.
  const names = { nginx: 0, apache: 0, haproxy: 0, caddy: 0, envoy: 0, traefik: 0, 'aws-alb': 0, 'aws-alb-passthrough': 0, gcp: 0, cloudflare: 0, azure: 0, rfc9440: 0 } satisfies Record<ClientCertPresetName, 0>
  t.same(Object.keys(names).sort(), [...presetNames].sort())
})
