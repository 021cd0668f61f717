// @fastify/sensible beside the plugin: every error a client gets, the plugin's own or one the app makes with
// sensible's httpErrors (thrown from authorize, resolveUser or a handler, or sent with a reply helper), has
// one shape: Fastify's { statusCode, code, error, message }, `code` present whenever the error has one.
import t, { type Test } from 'tap'
import { STATUS_CODES } from 'node:http'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import fastifySensible from '@fastify/sensible'
import { fastifyClientCert } from '../../lib/index.js'
import { getCorpus } from '../helpers/certs.js'

const proxy = { mode: 'proxy', proxy: { preset: 'nginx', trust: ['127.0.0.1'] } } as const

async function build (t: Test): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(fastifySensible)
  const ok = async (): Promise<{ ok: true }> => ({ ok: true })

  await app.register(async function plain (api) {
    await api.register(fastifyClientCert, proxy)
    api.get('/plain', ok)
    api.get('/admins', { config: { clientCert: { allow: { subjects: [{ OU: 'Platform' }] } } } }, ok)
    api.get('/handler-throws', async () => { throw api.httpErrors.notFound('No such widget') })
    api.get('/reply-helper', async (_request, reply) => reply.conflict('Widget already exists'))
  })
  await app.register(async function holiday (api) {
    await api.register(fastifyClientCert, { ...proxy, authorize: async () => { throw api.httpErrors.forbidden('Bob is on holiday') } })
    api.get('/', ok)
  }, { prefix: '/authorize-sensible' })
  await app.register(async function coded (api) {
    await api.register(fastifyClientCert, {
      ...proxy,
      authorize: async () => { throw api.httpErrors.createError(429, 'Too many sign-ins today', { code: 'APP_SIGN_IN_LIMIT' }) }
    })
    api.get('/', ok)
  }, { prefix: '/authorize-coded' })
  await app.register(async function locked (api) {
    await api.register(fastifyClientCert, { ...proxy, resolveUser: async () => { throw api.httpErrors.locked('The account is locked') } })
    api.get('/', ok)
  }, { prefix: '/resolve-user-sensible' })
  await app.register(async function broken (api) {
    await api.register(fastifyClientCert, { ...proxy, authorize: async () => { throw new Error('database is down: host db1, user app') } })
    api.get('/', ok)
  }, { prefix: '/authorize-broken' })

  t.teardown(() => app.close())
  return app
}

/** The one shape: exactly these keys, `error` the status's reason phrase, and nothing else (no stack, no cause). */
function sameShape (t: Test, response: LightMyRequestResponse, statusCode: number, message: string, code?: string): void {
  t.equal(response.statusCode, statusCode, `${statusCode} ${message}`)
  t.match(response.headers['content-type'], /^application\/json/)
  const body = response.json()
  t.same(body, { statusCode, ...(code === undefined ? {} : { code }), error: STATUS_CODES[statusCode], message })
}

t.test('@fastify/sensible beside the plugin: one error shape for the plugin\'s errors and the app\'s', async (t) => {
  const corpus = await getCorpus()
  const app = await build(t)
  const alice = { 'x-ssl-client-cert': encodeURIComponent(corpus.leaves.alice.certPem), 'x-ssl-client-verify': 'SUCCESS' }
  const get = async (url: string, headers: Record<string, string> = alice): Promise<LightMyRequestResponse> => await app.inject({ url, headers })

  t.equal((await get('/plain')).statusCode, 200, 'a verified certificate passes')
  // The plugin's own errors.
  sameShape(t, await get('/plain', {}), 401, 'A client certificate is required', 'FST_CLIENT_CERT_MISSING')
  sameShape(t, await get('/admins'), 403, 'The client certificate is not allowed to access this resource', 'FST_CLIENT_CERT_FORBIDDEN')
  const bad = await get('/plain', { 'x-ssl-client-cert': '%%%not a certificate', 'x-ssl-client-verify': 'SUCCESS' })
  sameShape(t, bad, 400, bad.json().message, 'FST_CLIENT_CERT_BAD_HEADER')
  const broken = await get('/authorize-broken')
  sameShape(t, broken, 500, broken.json().message, 'FST_CLIENT_CERT_INTERNAL')
  t.notMatch(broken.body, /database|db1/, 'a plain error from authorize stays a static 500')

  // sensible's errors, thrown where the plugin runs the app's code: their status and message reach the client.
  sameShape(t, await get('/authorize-sensible'), 403, 'Bob is on holiday')
  sameShape(t, await get('/authorize-coded'), 429, 'Too many sign-ins today', 'APP_SIGN_IN_LIMIT')
  sameShape(t, await get('/resolve-user-sensible'), 423, 'The account is locked')
  // ... and in handlers, thrown or sent with a reply helper.
  sameShape(t, await get('/handler-throws'), 404, 'No such widget')
  sameShape(t, await get('/reply-helper'), 409, 'Widget already exists')
})
