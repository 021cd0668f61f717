import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import createError from '@fastify/error'
import { X509Certificate } from 'node:crypto'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { request } from 'undici'
import {
  decisionChannelName,
  fastifyClientCert,
  identityFromCertificate,
  type ClientCertDecision,
  type ClientCertIdentity,
  type FastifyClientCertOptions
} from '../lib/index.js'
import { publishDecision } from '../lib/observability.js'
import { getCorpus, type LeafName } from './helpers/certs.js'
import { clientAgent, startTlsApp } from './helpers/server.js'

const trusted = '127.0.0.1'

/** Collects every decision published while the test runs. */
function listen (t: Test): ClientCertDecision[] {
  const messages: ClientCertDecision[] = []
  const onMessage = (message: unknown) => { messages.push(message as ClientCertDecision) }
  subscribe(decisionChannelName, onMessage)
  t.teardown(() => { unsubscribe(decisionChannelName, onMessage) })
  return messages
}

async function proxyApp (t: Test, options: Partial<FastifyClientCertOptions> = {}): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'nginx', trust: [trusted] }, ...options })
  app.get('/users/:id', async () => 'ok')
  app.get('/maybe', { config: { clientCert: { required: false } } }, async () => 'ok')
  app.get('/admins', { config: { clientCert: { allow: { subjects: [{ CN: 'nobody' }] } } } }, async () => 'ok')
  app.get('/open', { config: { clientCert: false } }, async () => 'ok')
  t.teardown(() => app.close())
  return app
}

async function nginxHeaders (leaf: LeafName, verify = 'SUCCESS'): Promise<Record<string, string>> {
  const corpus = await getCorpus()
  return { 'x-ssl-client-cert': encodeURIComponent(corpus.leaves[leaf].certPem), 'x-ssl-client-verify': verify }
}

/** The message's attributes (everything but `request`). */
function attributes (message: ClientCertDecision | undefined): Record<string, unknown> {
  const { request, ...rest } = message!
  return rest
}

const nothing = {
  'client_cert.verified': null,
  'client_cert.verify_error': null,
  'client_cert.source': null,
  'client_cert.proxy': null,
  'client_cert.serial_number': null,
  'tls.client.hash.sha256': null,
  'tls.client.subject': null,
  'tls.client.issuer': null,
  'tls.client.not_before': null,
  'tls.client.not_after': null
}

t.test('an admitted request publishes who, from where, on which route, with OpenTelemetry attribute names', async (t) => {
  const corpus = await getCorpus()
  const alice = new X509Certificate(corpus.leaves.alice.certPem)
  const names = identityFromCertificate(alice)
  const messages = listen(t)
  const app = await proxyApp(t)
  let seen: FastifyRequest | undefined
  app.addHook('onResponse', async (request) => { seen = request })
  const response = await app.inject({ url: '/users/7', headers: await nginxHeaders('alice') })
  t.equal(response.statusCode, 200)
  t.equal(messages.length, 1)
  t.same(attributes(messages[0]), {
    'client_cert.outcome': 'admitted',
    'error.type': null,
    'http.response.status_code': null,
    'client_cert.verified': true,
    'client_cert.verify_error': null,
    'client_cert.source': 'proxy',
    'client_cert.proxy': 'nginx',
    'client_cert.serial_number': alice.serialNumber,
    'tls.client.hash.sha256': alice.fingerprint256.replaceAll(':', ''),
    'tls.client.subject': names.subject,
    'tls.client.issuer': names.issuer,
    'tls.client.not_before': new Date(alice.validFrom).toISOString(),
    'tls.client.not_after': new Date(alice.validTo).toISOString(),
    'http.request.method': 'GET',
    'http.route': '/users/:id'
  })
  t.equal(messages[0]!.request, seen, 'the request itself rides along, for its id and logger')
  t.match(attributes(messages[0])['tls.client.hash.sha256'], /^[0-9A-F]{64}$/)
})

t.test('refusals at 401 and 403 carry the error code and the status; an unverified certificate\'s names stay out', async (t) => {
  const corpus = await getCorpus()
  const alice = new X509Certificate(corpus.leaves.alice.certPem)
  const messages = listen(t)
  const app = await proxyApp(t)

  t.equal((await app.inject('/users/1')).statusCode, 401)
  t.same(attributes(messages.pop()), {
    'client_cert.outcome': 'refused',
    'error.type': 'FST_CLIENT_CERT_MISSING',
    'http.response.status_code': 401,
    ...nothing,
    'http.request.method': 'GET',
    'http.route': '/users/:id'
  })

  t.equal((await app.inject({ url: '/users/1', headers: await nginxHeaders('alice', 'FAILED:certificate has expired') })).statusCode, 401)
  t.same(attributes(messages.pop()), {
    'client_cert.outcome': 'refused',
    'error.type': 'FST_CLIENT_CERT_INVALID',
    'http.response.status_code': 401,
    ...nothing,
    'client_cert.verified': false,
    'client_cert.verify_error': 'certificate has expired',
    'client_cert.source': 'proxy',
    'client_cert.proxy': 'nginx',
    'client_cert.serial_number': alice.serialNumber,
    'tls.client.hash.sha256': alice.fingerprint256.replaceAll(':', ''),
    'http.request.method': 'GET',
    'http.route': '/users/:id'
  })

  t.equal((await app.inject({ url: '/admins', headers: await nginxHeaders('alice') })).statusCode, 403)
  const forbidden = attributes(messages.pop())
  t.match(forbidden, {
    'client_cert.outcome': 'refused',
    'error.type': 'FST_CLIENT_CERT_FORBIDDEN',
    'http.response.status_code': 403,
    'client_cert.verified': true,
    'tls.client.subject': identityFromCertificate(alice).subject,
    'http.route': '/admins'
  })
  t.equal(messages.length, 0)
})

t.test('an optional route admits without a certificate, and with one that is not verified', async (t) => {
  const messages = listen(t)
  const app = await proxyApp(t)
  t.equal((await app.inject('/maybe')).statusCode, 200)
  t.same(attributes(messages.pop()), {
    'client_cert.outcome': 'admitted',
    'error.type': null,
    'http.response.status_code': null,
    ...nothing,
    'http.request.method': 'GET',
    'http.route': '/maybe'
  })
  t.equal((await app.inject({ url: '/maybe', headers: await nginxHeaders('alice', 'FAILED:unable to verify') })).statusCode, 200)
  t.match(attributes(messages.pop()), {
    'client_cert.outcome': 'admitted',
    'client_cert.verified': false,
    'client_cert.verify_error': 'unable to verify',
    'tls.client.subject': null
  })
})

t.test('refusals at 400 (untrusted source, bad header) and 500 (a hook threw) are published too', async (t) => {
  const messages = listen(t)
  const app = await proxyApp(t, { authorize: async (identity) => { if (identity.commonName === 'bob') throw new Error('database down'); return true } })

  t.equal((await app.inject({ url: '/users/1', remoteAddress: '10.0.0.1', headers: await nginxHeaders('alice') })).statusCode, 400)
  t.same(attributes(messages.pop()), {
    'client_cert.outcome': 'refused',
    'error.type': 'FST_CLIENT_CERT_UNTRUSTED_SOURCE',
    'http.response.status_code': 400,
    ...nothing,
    'http.request.method': 'GET',
    'http.route': '/users/:id'
  })

  t.equal((await app.inject({ url: '/users/1', headers: { 'x-ssl-client-cert': 'not a certificate', 'x-ssl-client-verify': 'SUCCESS' } })).statusCode, 400)
  t.match(attributes(messages.pop()), { 'client_cert.outcome': 'refused', 'error.type': 'FST_CLIENT_CERT_BAD_HEADER', 'http.response.status_code': 400 })

  t.equal((await app.inject({ url: '/users/1', headers: await nginxHeaders('bob') })).statusCode, 500)
  t.match(attributes(messages.pop()), {
    'client_cert.outcome': 'refused',
    'error.type': 'FST_CLIENT_CERT_INTERNAL',
    'http.response.status_code': 500,
    'client_cert.verified': true,
    'tls.client.subject': /CN=bob/
  })

  t.equal((await app.inject({ url: '/users/1', headers: await nginxHeaders('alice') })).statusCode, 200)
  t.match(attributes(messages.pop()), { 'client_cert.outcome': 'admitted' })
  t.equal(messages.length, 0)
})

t.test('a hook\'s own 4xx answer is published with its code, or its status when it has none', async (t) => {
  const messages = listen(t)
  const Holiday = createError('APP_ON_HOLIDAY', 'Bob is on holiday', 423)
  const app = await proxyApp(t, {
    resolveUser: async (identity) => {
      if (identity.commonName === 'bob') throw new Holiday()
      throw Object.assign(new Error('Too many'), { statusCode: 429, expose: true })
    }
  })
  t.equal((await app.inject({ url: '/users/1', headers: await nginxHeaders('bob') })).statusCode, 423)
  t.match(attributes(messages.pop()), { 'client_cert.outcome': 'refused', 'error.type': 'APP_ON_HOLIDAY', 'http.response.status_code': 423 })
  t.equal((await app.inject({ url: '/users/1', headers: await nginxHeaders('alice') })).statusCode, 429)
  t.match(attributes(messages.pop()), { 'client_cert.outcome': 'refused', 'error.type': '429', 'http.response.status_code': 429 })
})

t.test('clientCert: false routes publish nothing; clientCert.verify() publishes like a route', async (t) => {
  const messages = listen(t)
  const app = Fastify()
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'nginx', trust: [trusted] } })
  app.get('/open', { config: { clientCert: false } }, async () => 'ok')
  app.get('/checked', { config: { clientCert: false }, preHandler: app.clientCert.verify() }, async () => 'ok')
  t.teardown(() => app.close())
  t.equal((await app.inject('/open')).statusCode, 200)
  t.equal(messages.length, 0)
  t.equal((await app.inject({ url: '/checked', headers: await nginxHeaders('alice') })).statusCode, 200)
  t.match(attributes(messages.pop()), { 'client_cert.outcome': 'admitted', 'http.route': '/checked', 'client_cert.verified': true })
  t.equal((await app.inject('/checked')).statusCode, 401)
  t.match(attributes(messages.pop()), { 'client_cert.outcome': 'refused', 'error.type': 'FST_CLIENT_CERT_MISSING' })
  t.equal((await app.inject({ url: '/checked', remoteAddress: '10.0.0.1', headers: await nginxHeaders('alice') })).statusCode, 400)
  t.match(attributes(messages.pop()), { 'client_cert.outcome': 'refused', 'error.type': 'FST_CLIENT_CERT_UNTRUSTED_SOURCE' })
})

t.test('direct TLS: source tls, no proxy; a certificate TLS refused is published without its names', async (t) => {
  const corpus = await getCorpus()
  const messages = listen(t)
  const { app, url } = await startTlsApp()
  t.teardown(() => app.close())
  for (const [leaf, status] of [['alice', 200], ['untrusted', 401]] as const) {
    const agent = await clientAgent(leaf)
    t.teardown(() => agent.close())
    const response = await request(url + '/whoami', { dispatcher: agent })
    await response.body.dump()
    t.equal(response.statusCode, status)
  }
  const untrusted = new X509Certificate(corpus.leaves.untrusted.certPem)
  t.match(attributes(messages[0]), { 'client_cert.outcome': 'admitted', 'client_cert.source': 'tls', 'client_cert.proxy': null, 'tls.client.subject': /CN=alice/, 'http.route': '/whoami' })
  t.same(attributes(messages[1]), {
    'client_cert.outcome': 'refused',
    'error.type': 'FST_CLIENT_CERT_INVALID',
    'http.response.status_code': 401,
    ...nothing,
    'client_cert.verified': false,
    'client_cert.verify_error': 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    'client_cert.source': 'tls',
    'client_cert.serial_number': untrusted.serialNumber,
    'tls.client.hash.sha256': untrusted.fingerprint256.replaceAll(':', ''),
    'http.request.method': 'GET',
    'http.route': '/whoami'
  })
})

t.test('with no subscriber nothing is built: the request is not even read', async (t) => {
  const untouchable = new Proxy({}, { get () { throw new Error('read') } }) as FastifyRequest
  t.doesNotThrow(() => publishDecision(untouchable, null, new Error('x')))
})

t.test('a subscriber that throws never reaches the request: Node reports it as an uncaught exception', async (t) => {
  const messages = listen(t)
  const app = await proxyApp(t)
  const thrower = () => { throw new Error('subscriber bug') }
  subscribe(decisionChannelName, thrower)
  t.teardown(() => { unsubscribe(decisionChannelName, thrower) })
  const reported: Error[] = []
  const onUncaught = (error: Error) => { reported.push(error) }
  // Node rethrows a subscriber's error on the next tick, outside the request; catch it before tap does.
  const listeners = process.rawListeners('uncaughtException')
  process.removeAllListeners('uncaughtException')
  process.on('uncaughtException', onUncaught)
  try {
    t.equal((await app.inject({ url: '/users/1', headers: await nginxHeaders('alice') })).statusCode, 200)
    t.equal((await app.inject('/users/1')).statusCode, 401)
    await new Promise((resolve) => setImmediate(resolve))
  } finally {
    process.removeListener('uncaughtException', onUncaught)
    for (const listener of listeners) process.on('uncaughtException', listener as (error: Error) => void)
  }
  t.equal(messages.length, 2, 'the other subscribers still get every message')
  t.same(reported.map((error) => error.message), ['subscriber bug', 'subscriber bug'])
})

t.test('dates a source could not supply, or out of range, are null rather than a throw', async (t) => {
  const messages = listen(t)
  const identity = { verified: true, verifyError: null, source: 'proxy', proxy: 'custom', serialNumber: null, fingerprint256: null, subject: 'CN=x', issuer: 'CN=y', notBefore: null, notAfter: new Date(Number.NaN) } as unknown as ClientCertIdentity
  const fake = { method: 'GET', routeOptions: {} } as unknown as FastifyRequest
  publishDecision(fake, identity, null)
  t.match(attributes(messages.pop()), { 'tls.client.not_before': null, 'tls.client.not_after': null, 'tls.client.hash.sha256': null, 'http.route': null, 'tls.client.subject': 'CN=x' })
  publishDecision(fake, identity, new Error('no status'))
  t.match(attributes(messages.pop()), { 'error.type': '500', 'http.response.status_code': 500 })
})
