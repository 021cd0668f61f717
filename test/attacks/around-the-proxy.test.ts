// A client that can reach the app around the proxy: it connects to the app's port itself and sends the
// certificate headers the proxy would send, hoping to be taken for the proxy.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect as netConnect, type Socket } from 'node:net'
import { connect as http2Connect } from 'node:http2'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { fastifyClientCert, identityFromCertificate, type FastifyClientCertOptions } from '../../lib/index.js'
import { getCorpus, type LeafName } from '../helpers/certs.js'

type ProxyOptions = NonNullable<FastifyClientCertOptions['proxy']>

interface Started {
  app: FastifyInstance
  url: string
  port: number
  /** The subject each handler saw (null: no certificate), in order. */
  seen: Array<string | null>
  /** Requests that reached the app's hooks at all. */
  reached: () => number
}

async function nginxHeaders (leaf: LeafName): Promise<Record<string, string>> {
  const corpus = await getCorpus()
  return { 'x-ssl-client-cert': encodeURIComponent(corpus.leaves[leaf].certPem), 'x-ssl-client-verify': 'SUCCESS' }
}

async function startProxyApp (
  t: Test,
  proxy: Partial<ProxyOptions>,
  options: { server?: FastifyServerOptions, listen?: { path: string }, setup?: (app: FastifyInstance) => void } = {}
): Promise<Started> {
  const app = Fastify(options.server) as unknown as FastifyInstance
  const seen: Array<string | null> = []
  let reached = 0
  app.addHook('onRequest', async function count () { reached++ })
  await app.register(fastifyClientCert, {
    mode: 'proxy',
    proxy: { preset: 'nginx', trust: ['127.0.0.1'], ...proxy }
  } as FastifyClientCertOptions)
  const record = async (request: { clientCert: { subject: string | null } | null }): Promise<unknown> => {
    seen.push(request.clientCert === null ? null : request.clientCert.subject)
    return { subject: request.clientCert?.subject ?? null }
  }
  app.get('/whoami', record)
  app.get('/maybe', { config: { clientCert: { required: false } } }, record)
  options.setup?.(app)
  await app.listen(options.listen ?? { host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  return { app, url: `http://127.0.0.1:${port}`, port, seen, reached: () => reached }
}

function agentFrom (t: Test, localAddress: string): Agent {
  const agent = new Agent({ localAddress, connections: 1 })
  t.teardown(() => agent.close())
  return agent
}

t.test('spoofed certificate headers from an untrusted address: 400, never an identity', async (t) => {
  const { url, seen } = await startProxyApp(t, {})
  const dispatcher = agentFrom(t, '127.0.0.2')
  for (const path of ['/whoami', '/maybe']) {
    const response = await request(url + path, { dispatcher, headers: await nginxHeaders('alice') })
    t.equal(response.statusCode, 400, path)
    t.same(await response.body.json(), {
      statusCode: 400,
      code: 'FST_CLIENT_CERT_UNTRUSTED_SOURCE',
      error: 'Bad Request',
      message: 'Client certificate headers were sent by an untrusted source'
    })
  }
  t.same(seen, [], 'no handler ran')
})

t.test('trustProxy and X-Forwarded-For do not make an untrusted peer a trusted proxy', async (t) => {
  const ips: string[] = []
  const { url, seen } = await startProxyApp(t, {}, {
    server: { trustProxy: true },
    setup: (app) => app.addHook('onResponse', async (request) => { ips.push(request.ip) })
  })
  const dispatcher = agentFrom(t, '127.0.0.2')
  const response = await request(url + '/maybe', {
    dispatcher,
    headers: { ...await nginxHeaders('alice'), 'x-forwarded-for': '127.0.0.1', forwarded: 'for=127.0.0.1' }
  })
  t.equal(response.statusCode, 400)
  t.equal((await response.body.json() as { code: string }).code, 'FST_CLIENT_CERT_UNTRUSTED_SOURCE')
  t.same(ips, ['127.0.0.1'], 'Fastify believed the forwarded address, the plugin did not')
  t.same(seen, [])
})

t.test('keep-alive interleaving of two users over one upstream connection never mixes identities', async (t) => {
  const corpus = await getCorpus()
  const { app, url } = await startProxyApp(t, {})
  let connections = 0
  app.server.on('connection', () => { connections++ })
  const dispatcher = agentFrom(t, '127.0.0.1')
  const users = [['alice', corpus.leaves.alice], ['bob', corpus.leaves.bob]] as const
  const expected = users.map(([, leaf]) => identityFromCertificate(leaf.certPem).subject)
  for (let i = 0; i < 40; i++) {
    const which = i % 3 === 0 ? 1 : 0
    const response = await request(url + '/whoami', { dispatcher, headers: await nginxHeaders(users[which][0]) })
    t.equal(response.statusCode, 200)
    t.same(await response.body.json(), { subject: expected[which] }, `request ${i}: ${users[which][0]}`)
  }
  t.equal(connections, 1, 'every request shared one upstream connection')
})

t.test('the proxy\'s shared secret never reaches a route, a hook after the plugin, a 404 handler or the log', async (t) => {
  const secret = { header: 'X-Proxy-Secret', value: 'a-long-shared-secret-' + 'x'.repeat(16) }
  const lines: string[] = []
  const stream = { write (line: string) { lines.push(line) } }
  const echo = async (request: FastifyRequest): Promise<unknown> => {
    request.log.info({ headers: request.headers }, 'echo')
    return { headers: request.headers }
  }
  const { url } = await startProxyApp(t, { secret }, {
    server: { logger: { level: 'trace', stream } },
    setup: (app) => {
      app.get('/open', { config: { clientCert: false } }, echo)
      app.get('/echo', { config: { clientCert: { required: false } } }, echo)
      app.addHook('onRequest', async (request) => { request.log.info({ headers: request.headers }, 'hook') })
      app.setNotFoundHandler(async (request, reply) => { reply.code(404); return await echo(request) })
    }
  })
  const dispatcher = agentFrom(t, '127.0.0.1')
  const cases: Array<readonly [string, Record<string, string>, number]> = [
    ['/open', {}, 200],
    ['/open', await nginxHeaders('alice'), 200],
    ['/echo', await nginxHeaders('alice'), 200],
    ['/echo', {}, 200],
    ['/no-such-route', await nginxHeaders('alice'), 404]
  ]
  for (const [path, headers, status] of cases) {
    const response = await request(url + path, { dispatcher, headers: { ...headers, [secret.header]: secret.value } })
    t.equal(response.statusCode, status, path)
    const body = await response.body.json() as { headers: Record<string, string> }
    t.equal(body.headers['x-proxy-secret'], undefined, `${path}: not in request.headers`)
    t.equal(body.headers['x-ssl-client-cert'], headers['x-ssl-client-cert'], `${path}: the other headers stay`)
  }
  const wrong = await request(url + '/echo', { dispatcher, headers: { ...await nginxHeaders('alice'), [secret.header]: 'not-' + secret.value } })
  t.equal(wrong.statusCode, 400, 'a wrong secret is refused')
  await wrong.body.dump()
  t.ok(lines.some((line) => line.includes('"msg":"echo"')), 'the routes logged their headers')
  t.notOk(lines.some((line) => line.includes(secret.value)), 'the secret is in no log line')
})

/** Sends a request with forged headers from 127.0.0.2 and resets the connection before the app answers. */
async function sendAndReset (port: number, head: string): Promise<void> {
  await new Promise<void>((resolve) => {
    const socket: Socket = netConnect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' }, () => {
      socket.write(head)
      socket.resetAndDestroy()
    })
    socket.on('error', () => {})
    socket.on('close', () => { resolve() })
  })
}

async function settled (app: FastifyInstance): Promise<void> {
  // The app may still be parsing what the reset connections sent: wait until it holds no connection.
  for (;;) {
    const open = await new Promise<number>((resolve, reject) => {
      app.server.getConnections((error, count) => { error === null ? resolve(count) : reject(error) })
    })
    if (open === 0) break
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  await new Promise((resolve) => setImmediate(resolve))
}

t.test('a TCP reset does not make a remote client count as a Unix socket peer (HTTP/1.1)', async (t) => {
  const { app, port, seen, reached } = await startProxyApp(t, { trust: ['unix', '10.0.0.1'] })
  const forged = Object.entries(await nginxHeaders('alice')).map(([name, value]) => `${name}: ${value}\r\n`).join('')
  for (let i = 0; i < 50; i++) {
    await sendAndReset(port, `GET /maybe HTTP/1.1\r\nHost: localhost\r\n${forged}\r\n`)
  }
  await settled(app)
  t.ok(reached() > 0, `the app parsed ${reached()} of the 50 reset requests`)
  t.same(seen.filter((subject) => subject !== null), [], 'never the forged identity')
})

t.test('a TCP reset does not make a remote client count as a Unix socket peer (HTTP/2)', async (t) => {
  const { app, port, seen } = await startProxyApp(t, { trust: ['unix', '10.0.0.1'] }, { server: { http2: true } as FastifyServerOptions })
  const headers = await nginxHeaders('alice')
  for (let i = 0; i < 20; i++) {
    await new Promise<void>((resolve) => {
      let socket: Socket | undefined
      const session = http2Connect(`http://127.0.0.1:${port}`, {
        createConnection: () => {
          socket = netConnect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' })
          return socket
        }
      })
      session.on('error', () => {})
      session.on('close', () => { resolve() })
      const stream = session.request({ ':path': '/maybe', ...headers })
      stream.on('error', () => {})
      stream.on('ready', () => { socket!.resetAndDestroy() })
      stream.end()
    })
  }
  await settled(app)
  t.same(seen.filter((subject) => subject !== null), [], 'never the forged identity')
})

t.test('a real Unix socket listener is still trusted as \'unix\'', async (t) => {
  const corpus = await getCorpus()
  const dir = mkdtempSync(join(tmpdir(), 'client-cert-unix-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'app.sock')
  const { seen } = await startProxyApp(t, { trust: ['unix'] }, { listen: { path } })
  const dispatcher = new Agent({ connect: { socketPath: path } })
  t.teardown(() => dispatcher.close())
  const response = await request('http://localhost/whoami', { dispatcher, headers: await nginxHeaders('alice') })
  t.equal(response.statusCode, 200)
  t.same(await response.body.json(), { subject: identityFromCertificate(corpus.leaves.alice.certPem).subject })
  t.equal(seen.length, 1)
})

t.test('a Unix socket listener over HTTP/2 is trusted as \'unix\'', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'client-cert-unix-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'app.sock')
  const { seen } = await startProxyApp(t, { trust: ['unix'] }, { listen: { path }, server: { http2: true } as FastifyServerOptions })
  const headers = await nginxHeaders('alice')
  const session = http2Connect('http://localhost', { createConnection: () => netConnect(path) })
  t.teardown(() => session.close())
  const status = await new Promise<number>((resolve, reject) => {
    const stream = session.request({ ':path': '/whoami', ...headers })
    stream.on('response', (headers) => { resolve(Number(headers[':status'])); stream.resume() })
    stream.on('error', reject)
    stream.end()
  })
  t.equal(status, 200)
  t.equal(seen.length, 1)
})
