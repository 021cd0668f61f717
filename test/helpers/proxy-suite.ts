/**
 * One suite, run by test/proxy-<kind>.test.ts against each real proxy: Fastify in `mode: 'proxy'` behind the
 * configuration `proxyConfig()` writes, compared with what direct TLS gives for the same certificates.
 */
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { Agent, request } from 'undici'
import { fastifyClientCert, identityFromCertificate, type FastifyClientCertOptions } from '../../lib/index.js'
import { getPreset } from '../../lib/sources/presets/index.js'
import type { ProxyKind } from '../../lib/cli/proxy-config.js'
import { getCorpus, type Corpus, type LeafName } from './certs.js'
import { requireProxy, startProxy, type RunningProxy } from './proxies.js'
import { clientAgent, startTlsApp, toJSON } from './server.js'

/** How a proxy turns a client away: its own HTTP answer, or a TLS alert (the client's error code). */
export type Refusal = { status: number, body: RegExp } | { alert: string }

export interface ProxyExpectations {
  /** verify 'optional': what the proxy does with certificates it cannot verify */
  refused: Partial<Record<LeafName, Refusal>>
  /** verify 'required': what the proxy does with a client that sends no certificate */
  noCertificateRequired: Refusal
  /** run the Unix-socket upstream test */
  unixSocket: boolean
  /** further proxy-specific tests, given the running setup */
  extra?: (t: Test, setup: Setup) => Promise<void>
}

/**
 * What a proxy built on OpenSSL's own client verification (Apache mod_ssl, HAProxy) answers in the handshake
 * to certificates it cannot verify: the alert for each reason.
 */
export const opensslHandshakeRefusals: Pick<ProxyExpectations, 'refused' | 'noCertificateRequired'> = {
  refused: {
    expired: { alert: 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED' },
    notyet: { alert: 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE' },
    untrusted: { alert: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA' },
    selfsigned: { alert: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA' },
    serverauth: { alert: 'ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE' }
  },
  noCertificateRequired: { alert: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' }
}

/** Leaves every proxy verifies: the identity through it must equal the direct-TLS one. */
export const verifiedLeaves: readonly LeafName[] = ['alice', 'bob', 'rsa', 'tricky', 'utf8', 'multirdn', 'twoou', 'nocn', 'san', 'ctrl']

/** The preset's header names as the proxy writes them (tests also send them in other letter cases). */
export const headerNames: Record<ProxyKind, { cert: string, verify?: string, used?: string }> = {
  nginx: { cert: 'X-SSL-Client-Cert', verify: 'X-SSL-Client-Verify' },
  apache: { cert: 'X-SSL-Client-Cert', verify: 'X-SSL-Client-Verify' },
  haproxy: { cert: 'X-SSL-Client-Cert', verify: 'X-SSL-Client-Verify', used: 'X-SSL-Client-Used' },
  caddy: { cert: 'X-SSL-Client-Cert' }
}

/** The headers `kind` would send for a verified `pem`: what a forger sends to pass as that certificate's holder. */
export function forgedHeaders (kind: ProxyKind, pem: string, der: Buffer): Record<string, string> {
  const names = headerNames[kind]
  switch (kind) {
    case 'nginx': return { [names.cert]: encodeURIComponent(pem), [names.verify!]: 'SUCCESS' }
    case 'apache': return { [names.cert]: pem.replace(/\n/g, ' '), [names.verify!]: 'SUCCESS' }
    case 'haproxy': return { [names.cert]: der.toString('base64'), [names.verify!]: '0', [names.used!]: '1' }
    case 'caddy': return { [names.cert]: der.toString('base64') }
  }
}

export interface Setup {
  kind: ProxyKind
  corpus: Corpus
  proxy: RunningProxy
  upstream: Upstream
  /** a request through the proxy presenting `leaf` (or none), with SNI and Host `localhost` */
  through: (leaf: LeafName | null, path: string, headers?: Array<[string, string]>) => Promise<Answer>
}

export interface Answer { status: number, body: any, socket: number | null }

interface Upstream {
  app: FastifyInstance
  /** requests that reached the app */
  requests: () => number
  close: () => Promise<void>
}

const sockets = new WeakMap<Socket, number>()
let nextSocket = 1

function socketId (request: FastifyRequest): number {
  const socket = request.raw.socket
  let id = sockets.get(socket)
  if (id === undefined) {
    id = nextSocket++
    sockets.set(socket, id)
  }
  return id
}

/** Plain-HTTP Fastify in mode 'proxy'; each response names the upstream connection that carried it. */
async function startUpstream (kind: ProxyKind, listen: { host: string } | { path: string }, proxy: Partial<NonNullable<FastifyClientCertOptions['proxy']>> = {}): Promise<Upstream> {
  const app = Fastify()
  let requests = 0
  app.addHook('onRequest', async function count (request, reply) {
    requests++
    reply.header('x-upstream-socket', String(socketId(request)))
  })
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: kind, trust: ['127.0.0.1'], ...proxy } })
  app.get('/whoami', async (request) => toJSON(request.clientCert))
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => ({ clientCert: toJSON(request.clientCert) }))
  // Unix sockets: the proxy's workers may run as another user and need write access to connect.
  await app.listen('path' in listen ? { path: listen.path, writableAll: true, readableAll: true } : { host: listen.host, port: 0 })
  return { app, requests: () => requests, close: async () => { await app.close() } }
}

function upstreamOf (app: FastifyInstance): { host: string, port: number } {
  return { host: '127.0.0.1', port: (app.server.address() as { port: number }).port }
}

/** What direct TLS and identityFromCertificate agree on: every field but source, proxy and certificate. */
function comparable (identity: unknown): Record<string, unknown> {
  const { source, proxy, certificate, ...rest } = JSON.parse(JSON.stringify(toJSON(identity))) as Record<string, unknown>
  return rest
}

async function answer (response: Awaited<ReturnType<typeof request>>): Promise<Answer> {
  const text = await response.body.text()
  let body: unknown = text
  try { body = JSON.parse(text) } catch {}
  const socket = response.headers['x-upstream-socket']
  return { status: response.statusCode, body, socket: typeof socket === 'string' ? Number(socket) : null }
}

async function viaAgent (agent: Agent, proxy: RunningProxy, path: string, headers: Array<[string, string]> = []): Promise<Answer> {
  return await answer(await request(proxy.url + path, {
    dispatcher: agent,
    // Caddy routes by Host and answers 421 when it differs from the SNI name.
    headers: [['host', 'localhost'], ...headers].flat()
  }))
}

/** One HTTP/1.1 request over a raw TLS socket: the proxy's HTTP answer, or the TLS alert it sent. */
export async function rawTls (port: number, corpus: Corpus, leaf: LeafName | null, path = '/whoami'): Promise<{ status: number, body: string } | { alert: string }> {
  const credentials = leaf === null ? {} : { cert: corpus.leaves[leaf].certPem, key: corpus.leaves[leaf].keyPem }
  return await new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: corpus.caPem, ...credentials })
    let text = ''
    socket.setEncoding('utf8')
    socket.once('secureConnect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`))
    socket.on('data', (chunk) => { text += chunk })
    socket.once('error', (error: NodeJS.ErrnoException) => {
      socket.destroy()
      resolve({ alert: error.code ?? error.message })
    })
    socket.once('close', () => {
      const [head = '', ...rest] = text.split('\r\n\r\n')
      resolve({ status: Number(head.split(' ')[1]), body: rest.join('\r\n\r\n') })
    })
  })
}

/** `/whoami` as alice over a fresh TLS connection, resuming `session` when given. */
async function aliceResuming (port: number, corpus: Corpus, session: Buffer | undefined): Promise<{ reused: boolean, session: Buffer | undefined, body: any }> {
  const alice = corpus.leaves.alice
  return await new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: corpus.caPem, cert: alice.certPem, key: alice.keyPem, session })
    let reused = false
    let ticket: Buffer | undefined
    let text = ''
    socket.setEncoding('utf8')
    socket.on('session', (data: Buffer) => { ticket = data })
    socket.once('secureConnect', () => {
      reused = socket.isSessionReused()
      socket.write('GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
    })
    socket.on('data', (chunk) => {
      text += chunk
      // Closed once the body is in: Apache, which drops the client's Connection header, would keep it open.
      const [head, body] = text.split('\r\n\r\n')
      const length = /\r\ncontent-length: *(\d+)/i.exec(head)
      if (body !== undefined && length !== null && Buffer.byteLength(body) >= Number(length[1])) socket.destroy()
    })
    socket.once('error', reject)
    socket.once('close', () => resolve({ reused, session: ticket, body: JSON.parse(text.split('\r\n\r\n')[1]) }))
  })
}

/** A plain HTTP request straight to Fastify, bypassing the proxy, from `localAddress`. */
async function direct (port: number, localAddress: string, path: string, headers: IncomingHttpHeaders): Promise<{ status: number, body: any }> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, localAddress, path, headers: { ...headers, connection: 'close' } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => { text += chunk })
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }))
    })
    req.once('error', reject)
    req.end()
  })
}

function assertRefusal (t: Test, got: { status: number, body: string } | { alert: string }, expected: Refusal, what: string): void {
  if ('alert' in expected) {
    t.same(got, { alert: expected.alert }, `${what}: TLS alert ${expected.alert}`)
  } else {
    t.equal('status' in got ? got.status : got.alert, expected.status, `${what}: the proxy answers ${expected.status} itself`)
    t.match('body' in got ? got.body : '', expected.body, `${what}: the proxy's own page`)
  }
}

export function proxySuite (kind: ProxyKind, expectations: ProxyExpectations): void {
  t.setTimeout(120_000)
  if (!requireProxy(t, kind)) return

  let setup: Setup
  const agents = new Map<string, Agent>()
  async function agentFor (leaf: LeafName | null, options: { chain?: boolean, connections?: number } = {}): Promise<Agent> {
    const key = `${leaf ?? 'none'}/${options.chain === true ? 'chain' : 'leaf'}/${options.connections ?? 1}`
    let agent = agents.get(key)
    if (agent === undefined) {
      agent = await clientAgent(leaf, options)
      agents.set(key, agent)
    }
    return agent
  }

  t.before(async () => {
    const corpus = await getCorpus()
    const upstream = await startUpstream(kind, { host: '127.0.0.1' })
    let proxy: RunningProxy
    try {
      proxy = await startProxy(kind, { upstream: upstreamOf(upstream.app) })
    } catch (error) {
      await upstream.close()
      throw error
    }
    setup = {
      kind,
      corpus,
      proxy,
      upstream,
      through: async (leaf, path, headers) => await viaAgent(await agentFor(leaf), proxy, path, headers)
    }
  })
  t.teardown(async () => {
    await Promise.all([...agents.values()].map(async (agent) => { await agent.close() }))
    await setup?.proxy.stop()
    await setup?.upstream.close()
  })

  t.test('the configuration under test is the one proxyConfig writes', async (t) => {
    t.match(setup.proxy.config, /X-SSL-Client-Cert/, 'forwards the certificate header')
    const names = getPreset(kind)!.headers
    for (const name of names) t.match(setup.proxy.config.toLowerCase(), name, `sets ${name}, which the preset reads`)
  })

  t.test('every verified certificate: the same identity as direct TLS', async (t) => {
    const { app: tlsApp, url: tlsUrl } = await startTlsApp()
    t.teardown(() => tlsApp.close())
    for (const leaf of verifiedLeaves) {
      const cert = setup.corpus.leaves[leaf]
      const viaProxy = await setup.through(leaf, '/whoami')
      t.equal(viaProxy.status, 200, `${leaf}: admitted through ${kind}`)
      t.equal(viaProxy.body.source, 'proxy', `${leaf}: source`)
      t.equal(viaProxy.body.proxy, kind, `${leaf}: proxy`)
      t.equal(viaProxy.body.certificate, 'X509Certificate', `${leaf}: the whole certificate reached the app`)
      t.same(comparable(viaProxy.body), comparable(identityFromCertificate(cert.certPem, { verified: true })), `${leaf}: equals identityFromCertificate`)

      const agent = await agentFor(leaf)
      const viaTls = await request(tlsUrl + '/whoami', { dispatcher: agent })
      const tlsIdentity = await viaTls.body.json()
      t.equal(viaTls.statusCode, 200, `${leaf}: admitted over direct TLS`)
      t.same(comparable(viaProxy.body), comparable(tlsIdentity), `${leaf}: equals the direct-TLS identity`)
    }
  })

  t.test('a client that sends its chain (leaf + intermediate) is the same user', async (t) => {
    const viaProxy = await viaAgent(await agentFor('alice', { chain: true }), setup.proxy, '/whoami')
    t.equal(viaProxy.status, 200)
    t.same(comparable(viaProxy.body), comparable(identityFromCertificate(setup.corpus.leaves.alice.certPem, { verified: true })))
  })

  t.test('a resumed TLS session still forwards the certificate', async (t) => {
    const first = await aliceResuming(setup.proxy.port, setup.corpus, undefined)
    t.equal(first.body.commonName, 'alice', 'full handshake')
    t.ok(first.session, 'the proxy issued a session ticket')
    const second = await aliceResuming(setup.proxy.port, setup.corpus, first.session)
    t.ok(second.reused, 'the session was resumed')
    t.equal(second.body.commonName, 'alice', 'resumed: the same user')
    t.equal(second.body.verified, true)
  })

  t.test('no certificate: 401 on a required route, null on an optional one', async (t) => {
    const required = await setup.through(null, '/whoami')
    t.equal(required.status, 401)
    t.equal(required.body.code, 'FST_CLIENT_CERT_MISSING')
    const optional = await setup.through(null, '/maybe')
    t.equal(optional.status, 200)
    t.same(optional.body, { clientCert: null })
  })

  t.test('certificates the proxy cannot verify never reach the app', async (t) => {
    for (const [leaf, expected] of Object.entries(expectations.refused) as Array<[LeafName, Refusal]>) {
      const before = setup.upstream.requests()
      assertRefusal(t, await rawTls(setup.proxy.port, setup.corpus, leaf), expected, leaf)
      t.equal(setup.upstream.requests(), before, `${leaf}: nothing forwarded`)
    }
  })

  t.test('certificate headers a client forges through the proxy are replaced', async (t) => {
    const bob = setup.corpus.leaves.bob
    const alice = setup.corpus.leaves.alice
    const forged = Object.entries(forgedHeaders(kind, bob.certPem, bob.der))
    // Each name as the proxy writes it, in lower case and in a mixed case: a proxy must replace them all.
    const variants = forged.flatMap(([name, value]): Array<[string, string]> => [
      [name, value], [name.toLowerCase(), value], [name.toLowerCase().replace(/-c/g, '-C'), value]
    ])
    const asAlice = await setup.through('alice', '/whoami', variants)
    t.equal(asAlice.status, 200, 'alice is admitted')
    t.equal(asAlice.body.fingerprint256, identityFromCertificate(alice.certPem).fingerprint256, "alice's certificate, not bob's")
    t.equal(asAlice.body.commonName, 'alice')

    const anonymous = await setup.through(null, '/whoami', variants)
    t.equal(anonymous.status, 401, 'no certificate and forged headers: still no certificate')
    t.equal(anonymous.body.code, 'FST_CLIENT_CERT_MISSING')
    const optional = await setup.through(null, '/maybe', variants)
    t.same(optional.body, { clientCert: null }, 'optional route: clientCert null')
  })

  t.test('a client bypassing the proxy cannot forge certificate headers', async (t) => {
    const bob = setup.corpus.leaves.bob
    const port = upstreamOf(setup.upstream.app).port
    const forged = forgedHeaders(kind, bob.certPem, bob.der)
    const bypass = await direct(port, '127.0.0.2', '/whoami', forged)
    t.equal(bypass.status, 400, 'from 127.0.0.2, outside trust: 400')
    t.equal(bypass.body.code, 'FST_CLIENT_CERT_UNTRUSTED_SOURCE')
    const optional = await direct(port, '127.0.0.2', '/maybe', forged)
    t.equal(optional.body.code, 'FST_CLIENT_CERT_UNTRUSTED_SOURCE', 'on optional routes too')
    const plain = await direct(port, '127.0.0.2', '/whoami', {})
    t.equal(plain.body.code, 'FST_CLIENT_CERT_MISSING', 'without certificate headers: just no certificate')
    // The same headers from the proxy's own address are believed: why the app must be reachable only
    // through the proxy (or demand proxy.secret).
    const fromProxyAddress = await direct(port, '127.0.0.1', '/whoami', forged)
    t.equal(fromProxyAddress.status, 200, 'from a trusted address the forgery is what a proxy sends')
    t.equal(fromProxyAddress.body.commonName, 'bob')
  })

  t.test('one upstream connection carries the requests of many clients, each with its own identity', async (t) => {
    const users = ['alice', 'bob'] as const
    const perUser = 40
    const agentsByUser = await Promise.all(users.map(async (user) => await agentFor(user, { connections: 4 })))
    const results = await Promise.all(users.flatMap((user, index) =>
      Array.from({ length: perUser }, async () => ({ user, answer: await viaAgent(agentsByUser[index], setup.proxy, '/whoami') }))
    ))
    const carried = new Map<number, Set<string>>()
    let wrong = 0
    for (const { user, answer } of results) {
      if (answer.status !== 200 || answer.body.commonName !== user) wrong++
      const users = carried.get(answer.socket!) ?? new Set()
      users.add(user)
      carried.set(answer.socket!, users)
    }
    t.equal(wrong, 0, `all ${results.length} responses name their own user`)
    t.ok(carried.size < results.length, `${carried.size} upstream connections for ${results.length} requests`)
    t.ok([...carried.values()].some((set) => set.size === users.length), 'at least one upstream connection carried both users')
  })

  t.test("verify 'required' and a shared secret", async (t) => {
    const secret = { header: 'X-Proxy-Secret', value: 'c2VjcmV0LXNoYXJlZC13aXRoLXRoZS1wcm94eQ' }
    const upstream = await startUpstream(kind, { host: '127.0.0.1' }, { secret })
    t.teardown(() => upstream.close())
    const proxy = await startProxy(kind, { upstream: upstreamOf(upstream.app), verify: 'required', secret })
    t.teardown(() => proxy.stop())
    const alice = await viaAgent(await agentFor('alice'), proxy, '/whoami')
    t.equal(alice.status, 200, 'alice is admitted')
    t.equal(alice.body.commonName, 'alice')

    const before = upstream.requests()
    assertRefusal(t, await rawTls(proxy.port, setup.corpus, null), expectations.noCertificateRequired, 'no certificate')
    t.equal(upstream.requests(), before, 'nothing forwarded without a certificate')

    const bob = setup.corpus.leaves.bob
    const forged = forgedHeaders(kind, bob.certPem, bob.der)
    const port = upstreamOf(upstream.app).port
    const noSecret = await direct(port, '127.0.0.1', '/whoami', forged)
    t.equal(noSecret.body.code, 'FST_CLIENT_CERT_UNTRUSTED_SOURCE', 'from the proxy address without the secret: 400')
    const wrongSecret = await direct(port, '127.0.0.1', '/whoami', { ...forged, [secret.header]: secret.value.slice(1) + 'x' })
    t.equal(wrongSecret.body.code, 'FST_CLIENT_CERT_UNTRUSTED_SOURCE', 'with a wrong secret: 400')
    const forgedSecret = await viaAgent(await agentFor('alice'), proxy, '/whoami', [[secret.header, 'forged-by-the-client-0123456789']])
    t.equal(forgedSecret.body.commonName, 'alice', "a client's own secret header is replaced by the proxy's")
  })

  if (expectations.unixSocket) {
    t.test("Fastify on a Unix socket with trust ['unix']", async (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'client-cert-unix-'))
      chmodSync(dir, 0o755)
      t.teardown(() => rmSync(dir, { recursive: true, force: true }))
      const path = join(dir, 'fastify.sock')
      const upstream = await startUpstream(kind, { path }, { trust: ['unix'] })
      t.teardown(() => upstream.close())
      const proxy = await startProxy(kind, { upstream: { socket: path } })
      t.teardown(() => proxy.stop())
      const alice = await viaAgent(await agentFor('alice'), proxy, '/whoami')
      t.equal(alice.status, 200)
      t.same(comparable(alice.body), comparable(identityFromCertificate(setup.corpus.leaves.alice.certPem, { verified: true })))
      const none = await viaAgent(await agentFor(null), proxy, '/whoami')
      t.equal(none.body.code, 'FST_CLIENT_CERT_MISSING')
    })
  }

  if (expectations.extra !== undefined) {
    t.test(`${kind} specifics`, async (t) => { await expectations.extra!(t, setup) })
  }
}
