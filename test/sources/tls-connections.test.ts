import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { request } from 'undici'
import { getCorpus } from '../helpers/certs.js'
import { clientAgent, rawRequest, startTlsApp } from '../helpers/server.js'

/** Routes that remember each request's identity object and socket. */
function recordingRoutes (seen: Array<{ identity: unknown, socket: unknown }>) {
  return (app: FastifyInstance) => {
    app.get('/whoami', async (request) => {
      seen.push({ identity: request.clientCert, socket: request.raw.socket })
      return { cn: request.clientCert?.commonName ?? null, verified: request.clientCert?.verified ?? null }
    })
    app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => ({
      cn: request.clientCert?.commonName ?? null,
      verified: request.clientCert?.verified ?? null
    }))
  }
}

t.test('keep-alive: many requests on one connection share one identity, built once', async (t) => {
  const seen: Array<{ identity: unknown, socket: unknown }> = []
  const { app, url } = await startTlsApp({ routes: recordingRoutes(seen) })
  t.teardown(() => app.close())
  const agent = await clientAgent('alice')
  t.teardown(() => agent.close())
  for (let i = 0; i < 20; i++) {
    const body = await (await request(url + '/whoami', { dispatcher: agent })).body.json()
    t.same(body, { cn: 'alice', verified: true })
  }
  t.equal(new Set(seen.map((s) => s.socket)).size, 1, 'one connection')
  t.equal(new Set(seen.map((s) => s.identity)).size, 1, 'one identity object for every request')
  t.ok(Object.isFrozen(seen[0].identity), 'the shared identity is frozen')
})

t.test('two connections with different certificates never mix, even interleaved', async (t) => {
  const seen: Array<{ identity: unknown, socket: unknown }> = []
  const { app, url } = await startTlsApp({ routes: recordingRoutes(seen) })
  t.teardown(() => app.close())
  const alice = await clientAgent('alice')
  const bob = await clientAgent('bob')
  t.teardown(() => Promise.all([alice.close(), bob.close()]))
  const calls = []
  for (let i = 0; i < 30; i++) {
    const who = i % 2 === 0 ? 'alice' : 'bob'
    calls.push(request(url + '/whoami', { dispatcher: who === 'alice' ? alice : bob })
      .then(async (response) => ({ who, body: await response.body.json() as { cn: string } })))
  }
  for (const { who, body } of await Promise.all(calls)) t.equal(body.cn, who)
  t.equal(new Set(seen.map((s) => s.identity)).size, 2, 'one identity per connection')
})

t.test('HTTP/2 (allowHTTP1): the identity is kept on the session, HTTP/1.1 clients still work', async (t) => {
  const seen: Array<{ identity: unknown, socket: unknown }> = []
  const { app, url } = await startTlsApp({ http2: true, routes: recordingRoutes(seen) })
  t.teardown(() => app.close())
  const h2 = await clientAgent('alice', { allowH2: true })
  t.teardown(() => h2.close())
  const bodies = await Promise.all(Array.from({ length: 10 }, async () => {
    const response = await request(url + '/whoami', { dispatcher: h2 })
    return await response.body.json()
  }))
  for (const body of bodies) t.same(body, { cn: 'alice', verified: true })
  t.equal(new Set(seen.map((s) => s.socket)).size, 10, 'each HTTP/2 request has its own socket proxy')
  t.equal(new Set(seen.map((s) => s.identity)).size, 1, 'but one identity for the session')

  const h1 = await clientAgent('bob')
  t.teardown(() => h1.close())
  t.same(await (await request(url + '/whoami', { dispatcher: h1 })).body.json(), { cn: 'bob', verified: true })
  const anonymous = await clientAgent(null, { allowH2: true })
  t.teardown(() => anonymous.close())
  t.equal((await request(url + '/whoami', { dispatcher: anonymous })).statusCode, 401)
})

for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
  t.test(`${version} session resumption keeps the certificate's identity`, async (t) => {
    const corpus = await getCorpus()
    const { app, port } = await startTlsApp({ routes: recordingRoutes([]) })
    t.teardown(() => app.close())
    const credentials = { cert: corpus.leaves.alice.certPem, key: corpus.leaves.alice.keyPem, minVersion: version, maxVersion: version }
    const first = await rawRequest(port, '/whoami', credentials)
    t.equal(first.status, 200)
    t.same(JSON.parse(first.body), { cn: 'alice', verified: true })
    t.ok(first.session, 'the server handed out a session')
    const resumed = await rawRequest(port, '/whoami', { ...credentials, session: first.session })
    t.equal(resumed.reused, true, 'the session was resumed')
    t.equal(resumed.protocol, version)
    t.equal(resumed.status, 200)
    t.same(JSON.parse(resumed.body), { cn: 'alice', verified: true })
  })

  t.test(`${version}: a session first made without a certificate, then resumed, is never verified`, async (t) => {
    const { app, port } = await startTlsApp({ routes: recordingRoutes([]) })
    t.teardown(() => app.close())
    const options = { minVersion: version, maxVersion: version }
    const first = await rawRequest(port, '/maybe', options)
    t.same(JSON.parse(first.body), { cn: null, verified: null })
    const resumed = await rawRequest(port, '/whoami', { ...options, session: first.session })
    t.equal(resumed.reused, true, 'the session was resumed')
    t.equal(resumed.protocol, version)
    t.equal(resumed.status, 401, 'no certificate, whatever `authorized` says')
    const optional = await rawRequest(port, '/maybe', { ...options, session: first.session })
    t.same(JSON.parse(optional.body), { cn: null, verified: null })
  })
}

t.test('TLS 1.2 renegotiation is refused: the server closes the connection', async (t) => {
  const corpus = await getCorpus()
  const seen: Array<{ identity: unknown, socket: unknown }> = []
  const { app, port } = await startTlsApp({ routes: recordingRoutes(seen) })
  t.teardown(() => app.close())
  const { connect } = await import('node:tls')
  const socket = connect({
    host: '127.0.0.1',
    port,
    servername: 'localhost',
    ca: corpus.caPem,
    cert: corpus.leaves.alice.certPem,
    key: corpus.leaves.alice.keyPem,
    maxVersion: 'TLSv1.2'
  })
  t.teardown(() => socket.destroy())
  await new Promise((resolve) => socket.once('secureConnect', resolve))
  let buffer = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk) => { buffer += chunk })
  socket.on('error', () => {})
  socket.write('GET /whoami HTTP/1.1\r\nHost: localhost\r\n\r\n')
  while (!buffer.includes('}')) await new Promise((resolve) => setTimeout(resolve, 10))
  t.match(buffer, '"cn":"alice"')
  const closed = new Promise((resolve) => socket.once('close', resolve))
  socket.renegotiate({ rejectUnauthorized: true }, () => {})
  await closed
  t.equal(seen.length, 1, 'only the request before the renegotiation was answered')
})

t.test("mode 'auto' over real TLS: a proxy's own certificate is not the user; direct clients use theirs", async (t) => {
  const { app, url } = await startTlsApp({
    plugin: { mode: 'auto', proxy: { preset: 'nginx', trust: ['127.0.0.1'] } },
    routes: recordingRoutes([])
  })
  t.teardown(() => app.close())
  const corpus = await getCorpus()
  const proxyWithOwnCert = await clientAgent('bob', { localAddress: '127.0.0.1' })
  const direct = await clientAgent('alice', { localAddress: '127.0.0.2' })
  t.teardown(() => Promise.all([proxyWithOwnCert.close(), direct.close()]))
  t.same(await (await request(url + '/maybe', { dispatcher: proxyWithOwnCert })).body.json(), { cn: null, verified: null }, 'no headers from the proxy: no certificate')
  const forwarded = await request(url + '/whoami', {
    dispatcher: proxyWithOwnCert,
    headers: { 'x-ssl-client-cert': encodeURIComponent(corpus.leaves.alice.certPem), 'x-ssl-client-verify': 'SUCCESS' }
  })
  t.same(await forwarded.body.json(), { cn: 'alice', verified: true }, 'the forwarded certificate, not the proxy\'s own')
  t.same(await (await request(url + '/whoami', { dispatcher: direct })).body.json(), { cn: 'alice', verified: true }, 'a direct client by its TLS certificate')
  const spoof = await request(url + '/whoami', { dispatcher: direct, headers: { 'x-ssl-client-cert': encodeURIComponent(corpus.leaves.bob.certPem), 'x-ssl-client-verify': 'SUCCESS' } })
  t.equal(spoof.statusCode, 400, 'certificate headers from a direct client are refused')
})
