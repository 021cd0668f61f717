/**
 * @fastify/websocket routes authenticated like any route: the upgrade request runs the plugin's onRequest hook,
 * so a refused certificate gets its HTTP status and no WebSocket opens; the handler sees request.clientCert.
 * Over direct TLS and behind a real nginx that forwards the upgrade; the client is `ws` presenting a certificate.
 */
import t from 'tap'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import websocket, { type WebSocket as ServerSocket } from '@fastify/websocket'
import type { ClientRequest, IncomingMessage } from 'node:http'
import { createRequire } from 'node:module'
import { fastifyClientCert, type FastifyClientCertOptions } from '../../lib/index.js'
import { getCorpus, type LeafName } from '../helpers/certs.js'
import { makeCrl } from '../helpers/crl.js'
import { requireProxy, startProxy } from '../helpers/proxies.js'
import { forgedHeaders } from '../helpers/proxy-suite.js'
import { startTlsApp } from '../helpers/server.js'

// ws ships no type declarations (and @types/ws is not a dependency): the test types the little it uses.
interface WsClient {
  on: ((event: 'error', listener: (error: Error) => void) => WsClient) &
  ((event: 'unexpected-response', listener: (request: ClientRequest, response: IncomingMessage) => void) => WsClient)
  once: ((event: 'message', listener: (data: Buffer) => void) => WsClient) &
  ((event: 'close', listener: (code: number, reason: Buffer) => void) => WsClient)
  send: (data: string) => void
  close: () => void
  terminate: () => void
}
const WebSocket = createRequire(import.meta.url)('ws') as new (url: string, options?: Record<string, unknown>) => WsClient

type Outcome =
  | { opened: true, socket: WsClient, hello: any }
  | { opened: false, status: number, body: any }

/**
 * Opens a WebSocket; resolves with the handler's first message, or with the HTTP answer that refused the
 * upgrade (ws then never opens the socket).
 */
async function connect (url: string, options: Record<string, unknown> = {}): Promise<Outcome> {
  return await new Promise((resolve, reject) => {
    const socket = new WebSocket(url, options)
    socket.on('error', reject)
    socket.once('message', (data) => resolve({ opened: true, socket, hello: JSON.parse(String(data)) }))
    socket.on('unexpected-response', (_request, response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { body += chunk })
      response.on('end', () => {
        resolve({ opened: false, status: response.statusCode!, body: body === '' ? null : JSON.parse(body) })
        socket.on('error', () => {})
        socket.terminate()
      })
    })
  })
}

async function credentials (leaf: LeafName | null): Promise<Record<string, unknown>> {
  const corpus = await getCorpus()
  const cert = leaf === null ? {} : { cert: corpus.leaves[leaf].certPem, key: corpus.leaves[leaf].keyPem }
  return { ca: corpus.caPem, servername: 'localhost', ...cert }
}

/** The next message on an open socket, or its close code. */
async function next (socket: WsClient): Promise<{ message: string } | { closed: number }> {
  return await new Promise((resolve) => {
    socket.once('message', (data) => resolve({ message: String(data) }))
    socket.once('close', (code) => resolve({ closed: code }))
  })
}

interface Handled { url: string, socket: ServerSocket, request: FastifyRequest }

/** /ws (required), /ws/alice (allow: CN alice only), /ws/maybe (optional); each greets with its identity and echoes. */
function wsRoutes (app: FastifyInstance, handled: Handled[]): void {
  const handler = (socket: ServerSocket, request: FastifyRequest): void => {
    handled.push({ url: request.url, socket, request })
    const identity = request.clientCert
    socket.send(JSON.stringify(identity === null
      ? { clientCert: null }
      : { clientCert: { commonName: identity.commonName, subject: identity.subject, source: identity.source, verified: identity.verified } }))
    socket.on('message', (data: Buffer) => socket.send(`${identity?.commonName ?? 'anonymous'}: ${String(data)}`))
  }
  app.get('/ws', { websocket: true }, handler)
  app.get('/ws/alice', { websocket: true, config: { clientCert: { allow: { subjects: [{ CN: 'alice' }] } } } }, handler)
  app.get('/ws/maybe', { websocket: true, config: { clientCert: { required: false } } }, handler)
}

/** Fastify over HTTPS (requestCert), @fastify/websocket registered after the plugin. */
async function startDirect (plugin: FastifyClientCertOptions = {}): Promise<{ app: FastifyInstance, wss: string, handled: Handled[] }> {
  const handled: Handled[] = []
  const { app, port } = await startTlsApp({
    plugin,
    routes: (app) => {
      app.register(websocket)
      app.register(async function routes (scope) { wsRoutes(scope, handled) })
    }
  })
  return { app, wss: `wss://localhost:${port}`, handled }
}

t.test('direct TLS: the upgrade is authenticated like any request', async (t) => {
  const { app, wss, handled } = await startDirect()
  t.teardown(async () => { await app.close() })

  const alice = await connect(wss + '/ws', await credentials('alice'))
  t.ok(alice.opened, 'a verified certificate opens the socket')
  if (!alice.opened) return
  t.same(alice.hello, { clientCert: { commonName: 'alice', subject: 'emailAddress=alice@example.com,CN=alice,O=Example Corp,C=US', source: 'tls', verified: true } }, 'the handler sees request.clientCert')
  alice.socket.send('hello')
  t.same(await next(alice.socket), { message: 'alice: hello' }, 'messages flow on the admitted socket')
  alice.socket.close()

  const before = handled.length
  const anonymous = await connect(wss + '/ws', await credentials(null))
  t.match(anonymous, { opened: false, status: 401, body: { code: 'FST_CLIENT_CERT_MISSING' } }, 'no certificate on a required route: 401, no WebSocket')

  const untrusted = await connect(wss + '/ws', await credentials('untrusted'))
  t.match(untrusted, { opened: false, status: 401, body: { code: 'FST_CLIENT_CERT_INVALID' } }, 'a certificate TLS did not verify: 401')

  const bob = await connect(wss + '/ws/alice', await credentials('bob'))
  t.match(bob, { opened: false, status: 403, body: { code: 'FST_CLIENT_CERT_FORBIDDEN' } }, 'a certificate the route\'s allow refuses: 403')
  t.equal(handled.length, before, 'the handler never ran for a refused upgrade')

  const maybe = await connect(wss + '/ws/maybe', await credentials(null))
  t.ok(maybe.opened, 'an optional route opens without a certificate')
  if (maybe.opened) {
    t.same(maybe.hello, { clientCert: null }, 'with request.clientCert null')
    maybe.socket.close()
  }
})

t.test('direct TLS: an admitted WebSocket outlives a reload that revokes its certificate; verify() re-checks it', async (t) => {
  const corpus = await getCorpus()
  const { app, wss, handled } = await startDirect({ crl: makeCrl(corpus.intermediate, []) })
  t.teardown(async () => { await app.close() })

  const alice = await connect(wss + '/ws', await credentials('alice'))
  const bob = await connect(wss + '/ws', await credentials('bob'))
  if (!alice.opened || !bob.opened) throw new Error('both sockets should open')

  await app.clientCert.reload({ crl: makeCrl(corpus.intermediate, [corpus.leaves.alice.certPath]) })
  alice.socket.send('still here?')
  t.same(await next(alice.socket), { message: 'alice: still here?' }, 'the decision is made at the upgrade: the open socket keeps working')
  t.match(await connect(wss + '/ws', await credentials('alice')), { opened: false, status: 401, body: { code: 'FST_CLIENT_CERT_INVALID' } }, 'a new upgrade with the revoked certificate is refused')

  // What docs/ecosystem.md shows: re-check each open socket's upgrade request after a reload, close the refused ones.
  const verify = app.clientCert.verify()
  for (const { socket, request } of handled) {
    await verify(request).catch(() => socket.close(1008, 'client certificate no longer accepted'))
  }
  t.same(await next(alice.socket), { closed: 1008 }, 'the revoked certificate\'s socket is closed (policy violation)')
  bob.socket.send('and me?')
  t.same(await next(bob.socket), { message: 'bob: and me?' }, 'the other socket stays open')
  bob.socket.close()
})

t.test('behind nginx: the upgrade is forwarded and authenticated by the forwarded certificate', async (t) => {
  if (!requireProxy(t, 'nginx')) return
  const corpus = await getCorpus()
  const handled: Handled[] = []
  // The user's order this time: @fastify/websocket first, then the plugin, then the routes.
  const app = Fastify()
  await app.register(websocket)
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'nginx', trust: ['127.0.0.1'] }, crl: makeCrl(corpus.intermediate, []) })
  wsRoutes(app, handled)
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  const upstream = { host: '127.0.0.1', port: (app.server.address() as { port: number }).port }
  // The configuration proxyConfig() writes (docs/proxies.md), as is: it forwards upgrades.
  const proxy = await startProxy('nginx', { upstream })
  t.teardown(proxy.stop)
  const wss = `wss://127.0.0.1:${proxy.port}`

  const alice = await connect(wss + '/ws', await credentials('alice'))
  t.ok(alice.opened, 'a verified certificate opens the socket through nginx')
  if (!alice.opened) return
  t.same(alice.hello, { clientCert: { commonName: 'alice', subject: 'emailAddress=alice@example.com,CN=alice,O=Example Corp,C=US', source: 'proxy', verified: true } }, 'the handler sees the forwarded identity')
  alice.socket.send('hello')
  t.same(await next(alice.socket), { message: 'alice: hello' }, 'messages flow through nginx')
  alice.socket.close()

  const before = handled.length
  t.match(await connect(wss + '/ws', await credentials(null)), { opened: false, status: 401, body: { code: 'FST_CLIENT_CERT_MISSING' } }, 'no certificate on a required route: 401, no WebSocket')
  t.match(await connect(wss + '/ws/alice', await credentials('bob')), { opened: false, status: 403, body: { code: 'FST_CLIENT_CERT_FORBIDDEN' } }, 'a certificate the route\'s allow refuses: 403')

  const forged = forgedHeaders('nginx', corpus.leaves.alice.certPem, corpus.leaves.alice.der)
  const direct = await connect(`ws://127.0.0.1:${upstream.port}/ws`, { localAddress: '127.0.0.2', headers: forged })
  t.match(direct, { opened: false, status: 400, body: { code: 'FST_CLIENT_CERT_UNTRUSTED_SOURCE' } }, 'an upgrade with forged certificate headers straight to the app (untrusted address): 400')
  t.equal(handled.length, before, 'the handler never ran for a refused upgrade')

  const maybe = await connect(wss + '/ws/maybe', await credentials(null))
  t.ok(maybe.opened, 'an optional route opens without a certificate')
  if (maybe.opened) {
    t.same(maybe.hello, { clientCert: null }, 'with request.clientCert null')
    maybe.socket.close()
  }

  // verify() re-checks an upgraded request by its forwarded headers, on the upstream connection still open.
  const revoked = await connect(wss + '/ws', await credentials('alice'))
  const bob = await connect(wss + '/ws', await credentials('bob'))
  if (!revoked.opened || !bob.opened) throw new Error('both sockets should open')
  const open = handled.slice(-2)
  await app.clientCert.reload({ crl: makeCrl(corpus.intermediate, [corpus.leaves.alice.certPath]) })
  const verify = app.clientCert.verify()
  for (const { socket, request } of open) {
    await verify(request).catch(() => socket.close(1008, 'client certificate no longer accepted'))
  }
  t.same(await next(revoked.socket), { closed: 1008 }, 'after a reload, the revoked certificate\'s socket is closed')
  bob.socket.send('still open')
  t.same(await next(bob.socket), { message: 'bob: still open' }, 'the other socket stays open')
  bob.socket.close()
})
