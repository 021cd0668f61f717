/**
 * Review, wave 2: attacks on the features of the ecosystem/workload-identity change (userProperty,
 * requireClientCert, RFC 8705 tokens, SPIFFE bundles, the strict DER reader and lazy X509Certificate,
 * decision messages, WebSockets, rate limits per certificate, proxy-config output). Each test asserts the
 * secure outcome.
 */
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyJwt from '@fastify/jwt'
import rateLimit from '@fastify/rate-limit'
import websocket from '@fastify/websocket'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { createRequire } from 'node:module'
import type { IncomingMessage } from 'node:http'
import { Agent, request } from 'undici'
import {
  CertificateParseError,
  certificateThumbprint,
  decisionChannelName,
  fastifyClientCert,
  identityFromCertificate,
  trustCertificateBoundToken,
  type ClientCertDecision,
  type FastifyClientCertOptions
} from '../../lib/index.js'
import { proxyConfig, type ProxyConfigOptions } from '../../lib/cli/proxy-config.js'
import { getCorpus } from '../helpers/certs.js'
import { build, name } from '../helpers/der-writer.js'
import { clientAgent, startTlsApp, toJSON } from '../helpers/server.js'
import { getSpiffePki, OUR_ADMIN } from '../helpers/spiffe-pki.js'

const CN = '2.5.4.3'

async function get (url: string, dispatcher: Agent, headers: Record<string, string> = {}): Promise<{ status: number, body: any }> {
  const response = await request(url, { dispatcher, headers })
  const text = await response.body.text()
  let body: unknown = text
  try { body = JSON.parse(text) } catch {}
  return { status: response.statusCode, body }
}

/** A plain-HTTP app in proxy mode on 127.0.0.1, as behind a proxy. */
async function proxyApp (plugin: FastifyClientCertOptions, routes: (app: FastifyInstance) => void): Promise<{ app: FastifyInstance, url: string }> {
  const app = Fastify()
  await app.register(fastifyClientCert, plugin)
  routes(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, url: `http://127.0.0.1:${(app.server.address() as { port: number }).port}` }
}

// --- the strict DER reader against OpenSSL --------------------------------------------------------------------

// A UniversalString is UTF-32: the code points D800 and DC00 are two lone surrogates, which OpenSSL refuses (its
// name canonicalisation cannot write them as UTF-8, so d2i_X509 fails), but which a JavaScript string joins into
// U+10000: the reader then gives the very name of a certificate whose CN is U+10000.
const surrogatePairCn = build({ subject: name([[[CN, 0x1c, Buffer.from([0, 0, 0xd8, 0x00, 0, 0, 0xdc, 0x00])]]]) })
const realU10000Cn = build({ subject: name([[[CN, 0x0c, Buffer.from('\u{10000}')]]]) })

t.test('attack: a UniversalString CN of two lone surrogates (OpenSSL refuses the certificate) reads as another certificate\'s name', async (t) => {
  t.equal(identityFromCertificate(realU10000Cn).subject, 'CN=\u{10000}', 'the genuine name, for reference')
  t.throws(() => identityFromCertificate(surrogatePairCn), CertificateParseError, 'refused like OpenSSL refuses it, never read as CN=U+10000')
})

t.test('attack: that certificate forwarded by a trusted proxy does not pass an allow rule written for CN=U+10000', async (t) => {
  const { app, url } = await proxyApp(
    { mode: 'proxy', proxy: { preset: 'caddy', trust: ['127.0.0.1'] }, allow: { subjects: ['CN=\u{10000}'] } },
    (app) => app.get('/whoami', async (request) => ({ subject: request.clientCert?.subject }))
  )
  t.teardown(() => app.close())
  const agent = new Agent()
  t.teardown(() => agent.close())
  const answer = await get(`${url}/whoami`, agent, { 'x-ssl-client-cert': surrogatePairCn.toString('base64') })
  t.equal(answer.status, 400, `not admitted as CN=U+10000 (got ${answer.status} ${JSON.stringify(answer.body)})`)
})

// --- decision messages ----------------------------------------------------------------------------------------

t.test('attack: a certificate from an unknown CA puts none of its names or dates into the decision message', async (t) => {
  const messages: ClientCertDecision[] = []
  const listener = (message: unknown): void => { messages.push(message as ClientCertDecision) }
  subscribe(decisionChannelName, listener)
  t.teardown(() => unsubscribe(decisionChannelName, listener))
  const { app, url } = await startTlsApp()
  t.teardown(() => app.close())
  const agent = await clientAgent('untrusted')
  t.teardown(() => agent.close())
  const optional = await get(`${url}/maybe`, agent)
  const required = await get(`${url}/whoami`, agent)
  t.equal(optional.status, 200)
  t.equal(required.status, 401)
  t.equal(messages.length, 2)
  for (const message of messages) {
    t.equal(message['client_cert.verified'], false)
    t.match(message['tls.client.hash.sha256'], /^[0-9A-F]{64}$/, 'the hash that finds the certificate')
    t.same([message['tls.client.subject'], message['tls.client.issuer'], message['tls.client.not_before'], message['tls.client.not_after']],
      [null, null, null, null], 'the client\'s own claims stay out of the attributes')
  }
})

t.test('attack: a forwarded certificate the proxy refused puts none of its names into the decision message', async (t) => {
  const corpus = await getCorpus()
  const messages: ClientCertDecision[] = []
  const listener = (message: unknown): void => { messages.push(message as ClientCertDecision) }
  subscribe(decisionChannelName, listener)
  t.teardown(() => unsubscribe(decisionChannelName, listener))
  const { app, url } = await proxyApp({ mode: 'proxy', proxy: { preset: 'nginx', trust: ['127.0.0.1'] }, required: false },
    (app) => app.get('/maybe', async (request) => toJSON(request.clientCert)))
  t.teardown(() => app.close())
  const agent = new Agent()
  t.teardown(() => agent.close())
  const answer = await get(`${url}/maybe`, agent, {
    'x-ssl-client-cert': encodeURIComponent(corpus.leaves.untrusted.certPem),
    'x-ssl-client-verify': 'FAILED:unable to get local issuer certificate'
  })
  t.equal(answer.status, 200)
  t.equal(messages.length, 1)
  t.equal(messages[0]!['client_cert.verified'], false)
  t.equal(messages[0]!['tls.client.subject'], null)
  t.equal(messages[0]!['tls.client.issuer'], null)
})

// --- SPIFFE federation ----------------------------------------------------------------------------------------

t.test('attack: the partner\'s CA mints our admin ID and the client sends our own root and intermediate along as a path', async (t) => {
  const pki = getSpiffePki()
  const app = Fastify({
    https: {
      key: pki.leaves.server.keyPem,
      cert: pki.leaves.server.pem,
      ca: [pki.ourRoot.pem, pki.partnerRoot.pem],
      requestCert: true,
      rejectUnauthorized: false
    }
  } as any) as unknown as FastifyInstance
  await app.register(fastifyClientCert, { spiffe: { bundles: { 'example.org': pki.ourRoot.pem, 'partner.example': pki.partnerRoot.pem } } })
  app.get('/admin', { config: { clientCert: { allow: { spiffe: ['spiffe://example.org/ns/admin/*'] } } } }, async (request) => ({ id: request.clientCert?.spiffeId }))
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => ({ verified: request.clientCert?.verified, verifyError: request.clientCert?.verifyError }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const port = (app.server.address() as { port: number }).port
  const agent = new Agent({
    connect: {
      ca: pki.ourRoot.pem,
      servername: 'localhost',
      cert: pki.leaves.forgedAdmin.pem + pki.ourIntermediate.pem + pki.ourRoot.pem,
      key: pki.leaves.forgedAdmin.keyPem
    }
  })
  t.teardown(() => agent.close())
  const admin = await get(`https://localhost:${port}/admin`, agent)
  t.equal(admin.status, 401, 'not admitted as ' + OUR_ADMIN)
  const maybe = await get(`https://localhost:${port}/maybe`, agent)
  t.same(maybe.body, { verified: false, verifyError: 'SPIFFE_TRUST_DOMAIN_MISMATCH' })
})

// --- RFC 8705 certificate-bound tokens -----------------------------------------------------------------------

t.test('attack: a stolen token bound to alice, replayed by bob who sends alice\'s certificate after his own', async (t) => {
  const corpus = await getCorpus()
  const { app, port } = await startTlsApp({
    routes: (app) => {
      app.register(fastifyJwt, { secret: 'review-wave2-secret-review-wave2', trusted: trustCertificateBoundToken })
      app.after(() => {
        app.get('/orders', { onRequest: async (request) => { await request.jwtVerify() } }, async (request) => ({ for: request.clientCert?.subject }))
      })
    }
  })
  t.teardown(() => app.close())
  await app.ready()
  const aliceThumbprint = certificateThumbprint(identityFromCertificate(corpus.leaves.alice.certPem))
  const token = app.jwt.sign({ sub: 'alice', cnf: { 'x5t#S256': aliceThumbprint } })
  const bob = await clientAgent('bob', { connect: { cert: corpus.leaves.bob.certPem + corpus.leaves.alice.certPem } })
  t.teardown(() => bob.close())
  const replay = await get(`https://localhost:${port}/orders`, bob, { authorization: `Bearer ${token}` })
  t.equal(replay.status, 401)
  t.equal(replay.body.code, 'FST_CLIENT_CERT_TOKEN_MISMATCH')
  const alice = await clientAgent('alice')
  t.teardown(() => alice.close())
  t.equal((await get(`https://localhost:${port}/orders`, alice, { authorization: `Bearer ${token}` })).status, 200, 'the holder still gets in')
})

// --- WebSockets ------------------------------------------------------------------------------------------------

const WebSocket = createRequire(import.meta.url)('ws') as new (url: string, options?: Record<string, unknown>) => {
  on: (event: string, listener: (...args: any[]) => void) => void
  terminate: () => void
}

t.test('attack: a WebSocket upgrade straight to the app port with forged certificate headers, from an untrusted address', async (t) => {
  const corpus = await getCorpus()
  let opened = false
  const app = Fastify()
  await app.register(websocket)
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'nginx', trust: ['127.0.0.1'] } })
  app.get('/feed', { websocket: true }, (socket) => { opened = true; socket.send('hello') })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const port = (app.server.address() as { port: number }).port
  const outcome = await new Promise<{ status: number } | 'open'>((resolve, reject) => {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/feed`, {
      localAddress: '127.0.0.2',
      headers: { 'x-ssl-client-cert': encodeURIComponent(corpus.leaves.alice.certPem), 'x-ssl-client-verify': 'SUCCESS' }
    })
    socket.on('open', () => { socket.terminate(); resolve('open') })
    socket.on('error', reject)
    socket.on('unexpected-response', (_request: unknown, response: IncomingMessage) => {
      response.resume()
      resolve({ status: response.statusCode! })
      socket.on('error', () => {})
      socket.terminate()
    })
  })
  t.same(outcome, { status: 400 })
  t.equal(opened, false)
})

// --- rate limits keyed by certificate ----------------------------------------------------------------------

t.test('attack: a client that spent its certificate\'s budget reconnects (new TLS connection) to get a new one', async (t) => {
  const { app, port } = await startTlsApp({
    routes: (app) => {
      app.register(rateLimit, {
        max: 2,
        timeWindow: '1 minute',
        keyGenerator: (request) => {
          const cert = request.clientCert
          return cert?.verified === true && cert.fingerprint256 !== null ? `cert:${cert.fingerprint256}` : `ip:${request.ip}`
        }
      })
      app.after(() => { app.get('/whoami', async () => 'ok') })
    }
  })
  t.teardown(() => app.close())
  const statuses: number[] = []
  for (let i = 0; i < 3; i++) {
    const agent = await clientAgent('alice')
    statuses.push((await get(`https://localhost:${port}/whoami`, agent)).status)
    await agent.close()
  }
  t.same(statuses, [200, 200, 429])
})

// --- userProperty ----------------------------------------------------------------------------------------------

t.test('attack: userProperty naming what a request already has (or Object.prototype) is refused at registration', async (t) => {
  for (const property of ['__proto__', 'constructor', 'hasOwnProperty', 'raw', 'headers', 'clientCert', 'requireClientCert', 'routeOptions', 'setDecorator']) {
    const app = Fastify()
    const options = { mode: 'proxy', proxy: { preset: 'nginx', trust: ['127.0.0.1'] }, resolveUser: async () => ({}), userProperty: property }
    await t.rejects(async () => { await app.register(fastifyClientCert, options as FastifyClientCertOptions) }, { code: 'FST_CLIENT_CERT_INVALID_OPTION' }, property)
    await app.close()
  }
})

t.test('attack: requireClientCert() on a route the plugin skips (clientCert: false) never vouches for an unjudged TLS certificate', async (t) => {
  const { app, port } = await startTlsApp({
    routes: (app) => {
      app.get('/open', { config: { clientCert: false } }, async (request) => ({ subject: request.requireClientCert().subject }))
    }
  })
  t.teardown(() => app.close())
  for (const leaf of ['alice', 'untrusted'] as const) {
    const agent = await clientAgent(leaf)
    const answer = await get(`https://localhost:${port}/open`, agent)
    await agent.close()
    t.equal(answer.status, 401, leaf)
    t.equal(answer.body.code, 'FST_CLIENT_CERT_MISSING', leaf)
  }
})

// --- CLI proxy-config output pasted into a shell ------------------------------------------------------------

t.test('attack: proxy-config options carrying shell or config syntax are refused, never printed', async (t) => {
  const base: ProxyConfigOptions = {
    listen: { host: '0.0.0.0', port: 443 },
    upstream: { host: '127.0.0.1', port: 3000 },
    serverCertPath: '/etc/mtls/server.pem',
    serverKeyPath: '/etc/mtls/server.pem',
    clientCaPath: '/etc/mtls/ca.pem',
    verify: 'optional',
    workDir: '/var/lib/mtls'
  }
  const hostile: Array<Partial<Record<keyof ProxyConfigOptions, unknown>>> = [
    { workDir: '/var/lib/x;touch /tmp/pwned' },
    { workDir: '/var/lib/$(id)' },
    { workDir: '/var/lib/`id`' },
    { workDir: '/var/lib/x\n-g daemon' },
    { serverName: 'a.example;evil' },
    { upstream: { socket: '/run/a b.sock' } },
    { user: 'www-data;id' },
    { secret: { header: 'X-Secret\r\nX-Other', value: 'a'.repeat(32) } },
    { secret: { header: 'X-Secret', value: "aaaaaaaaaaaaaaaa';id;'" } },
    { listen: { host: 'localhost;id', port: 443 } }
  ]
  for (const kind of ['nginx', 'apache', 'haproxy', 'caddy'] as const) {
    for (const change of hostile) {
      const options = { ...base, ...(kind === 'haproxy' ? { serverKeyPath: base.serverCertPath } : {}), ...change } as ProxyConfigOptions
      t.throws(() => proxyConfig(kind, options), TypeError, `${kind} ${JSON.stringify(change)}`)
    }
  }
})
