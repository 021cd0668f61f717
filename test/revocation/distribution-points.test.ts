// CRLs downloaded from the distribution points of verified certificates: a real HTTP server on loopback serves
// a CRL that changes, and a real HTTPS Fastify app judges certificates issued with that server's URL.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { Writable } from 'node:stream'
import { connect as tlsConnect } from 'node:tls'
import { X509Certificate } from 'node:crypto'
import { Agent, request } from 'undici'
import { fastifyClientCert, type FastifyClientCertOptions } from '../../lib/index.js'
import { DistributionPoints, distributionPointsOf, normalizeRevocation, type DistributionPointOptions } from '../../lib/revocation/distribution-points.js'
import { getCorpus, type CertFiles } from '../helpers/certs.js'
import { defaultRoutes } from '../helpers/server.js'
import { makeDpPki, startCrlServer, type CrlServer, type DpPki } from '../helpers/dp-pki.js'

interface Setup {
  pki: DpPki
  crls: CrlServer
  app: FastifyInstance
  url: string
  port: number
  alice: CertFiles
  bob: CertFiles
  logs: Array<{ msg: string, level: number, [key: string]: unknown }>
  agent: (leaf: CertFiles, connections?: number) => Agent
}

async function setup (t: Test, points: DistributionPointOptions | true = {}, options: {
  crlSeconds?: number
  extensions?: (url: string) => string[]
  plugin?: Partial<FastifyClientCertOptions>
  routes?: (app: FastifyInstance) => void
} = {}): Promise<Setup> {
  const corpus = await getCorpus()
  const pki = makeDpPki()
  t.teardown(pki.cleanup)
  const crls = await startCrlServer()
  t.teardown(crls.close)
  const extensions = options.extensions ?? ((url: string) => [`crlDistributionPoints = URI:${url}/root.crl`])
  const alice = pki.issue('alice', extensions(crls.url))
  const bob = pki.issue('bob', extensions(crls.url))
  crls.body = pki.crl([], options.crlSeconds)
  const logs: Setup['logs'] = []
  const stream = new Writable({
    write (chunk, _encoding, callback) {
      logs.push(JSON.parse(String(chunk)))
      callback()
    }
  })
  const app = Fastify({
    https: { key: corpus.leaves.serverauth.keyPem, cert: corpus.leaves.serverauth.chainPem, ca: pki.root.certPem, requestCert: true, rejectUnauthorized: false },
    logger: { level: 'info', stream }
  } as unknown as FastifyServerOptions) as unknown as FastifyInstance
  await app.register(fastifyClientCert, { revocation: { distributionPoints: points }, ...options.plugin })
  if (options.routes !== undefined) options.routes(app)
  else defaultRoutes(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const port = (app.server.address() as { port: number }).port
  const agent = (leaf: CertFiles, connections = 1): Agent => {
    const dispatcher = new Agent({ connect: { ca: corpus.caPem, servername: 'localhost', cert: leaf.certPem, key: leaf.keyPem }, connections })
    t.teardown(() => dispatcher.close())
    return dispatcher
  }
  return { pki, crls, app, url: `https://localhost:${port}`, port, alice, bob, logs, agent }
}

t.setTimeout(240_000)

async function get (url: string, dispatcher: Agent): Promise<{ status: number, body: any }> {
  const response = await request(url, { dispatcher })
  return { status: response.statusCode, body: await response.body.json() }
}

/** Polls `check` every 50 ms; fails after `ms` (a generous bound, not a timing assertion). */
async function until (check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

t.test('revoked at the CA and published: the next refresh refuses, on an already-open keep-alive connection too', async (t) => {
  const s = await setup(t, { refresh: 200 })
  const alice = s.agent(s.alice)
  t.equal((await get(s.url + '/whoami', alice)).status, 200, 'admitted while the CRL lists nobody')
  t.equal(s.crls.counts.full, 1, 'one download')
  s.crls.body = s.pki.crl([s.alice])
  await until(async () => (await get(s.url + '/whoami', alice)).status === 401)
  t.same((await get(s.url + '/maybe', alice)).body.clientCert.verifyError, 'CERT_REVOKED')
  t.equal((await get(s.url + '/whoami', s.agent(s.bob))).status, 200, 'a certificate not listed still passes')
})

t.test('ETag: an unchanged CRL is answered 304 and not downloaded again', async (t) => {
  const s = await setup(t, { refresh: 100 })
  t.equal((await get(s.url + '/whoami', s.agent(s.alice))).status, 200)
  await until(() => s.crls.counts.notModified >= 2)
  t.equal(s.crls.counts.full, 1, 'downloaded once')
  t.equal((await get(s.url + '/whoami', s.agent(s.alice))).status, 200)
})

t.test('strict: the CRL host down keeps the last good CRL until it expires, then CRL_HAS_EXPIRED', async (t) => {
  const s = await setup(t, { refresh: 150, mode: 'strict' }, { crlSeconds: 4 })
  const alice = s.agent(s.alice)
  t.equal((await get(s.url + '/whoami', alice)).status, 200)
  s.crls.mode = 'down'
  const failedBefore = s.crls.counts.requests
  await until(() => s.crls.counts.requests > failedBefore + 1)
  t.ok(s.logs.some((line) => line.msg.includes('CRL download failed') && line.kept === true), 'logged, last good kept')
  const nextUpdate = Date.now()
  const early = await get(s.url + '/maybe', alice)
  // The CRL was valid 4 s from its making; until then the last good one stands.
  if (Date.now() < nextUpdate + 1000) t.equal(early.body.clientCert.verified, true, 'last good CRL still in force')
  await until(async () => (await get(s.url + '/maybe', alice)).body.clientCert.verifyError === 'CRL_HAS_EXPIRED')
  t.equal((await get(s.url + '/whoami', alice)).status, 401)
  s.crls.mode = 'ok'
  s.crls.body = s.pki.crl([])
  await until(async () => (await get(s.url + '/whoami', alice)).status === 200)
  t.ok(s.logs.some((line) => line.msg.includes('works again')), 'recovery logged')
})

t.test('soft-fail: once the CRL expires with its host down, certificates are admitted and it is logged; a listed one never is', async (t) => {
  const s = await setup(t, { refresh: 150, mode: 'soft-fail' }, { crlSeconds: 3 })
  s.crls.body = s.pki.crl([s.bob], 3)
  const alice = s.agent(s.alice)
  const bob = s.agent(s.bob)
  t.equal((await get(s.url + '/whoami', alice)).status, 200)
  t.equal((await get(s.url + '/whoami', bob)).status, 401)
  s.crls.mode = 'down'
  await until(async () => (await get(s.url + '/whoami', alice)).status === 200 && s.logs.some((line) => String(line.msg).includes('soft-fail admits')))
  t.equal((await get(s.url + '/whoami', alice)).status, 200)
  t.equal((await get(s.url + '/maybe', bob)).body.clientCert.verifyError, 'CERT_REVOKED', 'revocation is permanent, expired CRL or not')
})

t.test('soft-fail: a CRL host that never answered admits (logged); strict refuses with REVOCATION_UNAVAILABLE', async (t) => {
  for (const mode of ['soft-fail', 'strict'] as const) {
    const s = await setup(t, { mode, timeout: 2000 })
    s.crls.mode = 'error'
    const answer = await get(s.url + '/maybe', s.agent(s.alice))
    t.equal(answer.body.clientCert.verified, mode === 'soft-fail', mode)
    if (mode === 'strict') t.equal(answer.body.clientCert.verifyError, 'REVOCATION_UNAVAILABLE')
    t.ok(s.logs.some((line) => line.reason === 'HTTP status 500'), 'the failure is logged')
  }
})

t.test('a CRL larger than maxBytes is refused, with or without Content-Length', async (t) => {
  for (const chunked of [false, true]) {
    const s = await setup(t, { maxBytes: 2000 })
    const big = Buffer.alloc(5000, 0x41)
    s.crls.handler = (_request, response) => {
      if (chunked) {
        response.writeHead(200)
        response.write(big.subarray(0, 1000))
        setTimeout(() => response.end(big.subarray(1000)), 20)
      } else {
        response.writeHead(200, { 'content-length': big.length }).end(big)
      }
    }
    const answer = await get(s.url + '/maybe', s.agent(s.alice))
    t.equal(answer.body.clientCert.verifyError, 'REVOCATION_UNAVAILABLE', chunked ? 'chunked' : 'content-length')
    t.ok(s.logs.some((line) => line.reason === 'the CRL is larger than maxBytes'))
  }
})

t.test('redirects: followed to http(s) a few times; another scheme, a loop or no Location is refused', async (t) => {
  const cases: Array<[string, (s: Setup) => (request: any, response: any) => void, boolean, string | null]> = [
    ['to http on the same host', (s) => (request, response) => {
      if (request.url === '/root.crl') response.writeHead(302, { location: '/moved.crl' }).end()
      else response.writeHead(200).end(s.crls.body)
    }, true, null],
    ['to ftp', () => (_request, response) => { response.writeHead(301, { location: 'ftp://127.0.0.1/root.crl' }).end() }, false, 'a redirect to a scheme other than http(s)'],
    ['in a loop', () => (_request, response) => { response.writeHead(307, { location: '/root.crl' }).end() }, false, 'too many redirects'],
    ['without Location', () => (_request, response) => { response.writeHead(302).end() }, false, 'a redirect without one Location']
  ]
  for (const [name, handler, verified, reason] of cases) {
    const s = await setup(t, {})
    s.crls.handler = handler(s)
    t.equal((await get(s.url + '/maybe', s.agent(s.alice))).body.clientCert.verified, verified, name)
    if (reason !== null) t.ok(s.logs.some((line) => line.reason === reason), reason)
  }
})

t.test('a slow CRL server times out: strict refuses, within a generous bound', async (t) => {
  const s = await setup(t, { timeout: 300 })
  s.crls.mode = 'hang'
  const started = Date.now()
  const answer = await get(s.url + '/maybe', s.agent(s.alice))
  t.equal(answer.body.clientCert.verifyError, 'REVOCATION_UNAVAILABLE')
  t.ok(Date.now() - started < 10_000, 'not held much past the timeout')
})

t.test('concurrent requests for one CRL share one download; the handshake starts it', async (t) => {
  const s = await setup(t, {})
  s.crls.delay = 300
  const agent = s.agent(s.alice, 8)
  const answers = await Promise.all(Array.from({ length: 8 }, async () => await get(s.url + '/whoami', agent)))
  t.same(answers.map((answer) => answer.status), Array(8).fill(200))
  t.equal(s.crls.counts.requests, 1, 'one download')
})

t.test('the download starts when a verified client completes its TLS handshake, before any request', async (t) => {
  const s = await setup(t, {})
  const corpus = await getCorpus()
  const socket = tlsConnect({ host: '127.0.0.1', port: s.port, servername: 'localhost', ca: corpus.caPem, cert: s.alice.certPem, key: s.alice.keyPem })
  t.teardown(() => socket.destroy())
  await until(() => s.crls.counts.requests === 1)
  t.pass('fetched on handshake')
})

t.test('clientCert.verify() waits for the first download too', async (t) => {
  const s = await setup(t, {}, {
    plugin: { required: false },
    routes: (app) => {
      // `clientCert: false`: the route policy does not run first, so verify() itself meets the pending download.
      app.get('/guarded', { config: { clientCert: false }, preHandler: app.clientCert.verify() }, async (request) => ({ subject: request.clientCert?.subject }))
    }
  })
  s.crls.body = s.pki.crl([s.bob])
  s.crls.delay = 200
  t.equal((await request(s.url + '/guarded', { dispatcher: s.agent(s.alice) })).statusCode, 200)
  t.equal((await request(s.url + '/guarded', { dispatcher: s.agent(s.bob) })).statusCode, 401)
})

t.test('a CRL of another issuer, or signed by another key, does not count and does not replace the last good one', async (t) => {
  const s = await setup(t, { refresh: 100 })
  s.crls.body = s.pki.crl([s.alice])
  const alice = s.agent(s.alice)
  t.equal((await get(s.url + '/maybe', alice)).body.clientCert.verifyError, 'CERT_REVOKED')
  // The same name, another key: what anyone on the network path could serve.
  const impostor = makeDpPki()
  t.teardown(impostor.cleanup)
  s.crls.body = impostor.crl([])
  await until(() => s.logs.some((line) => String(line.reason).includes('not signed by its key')))
  t.equal((await get(s.url + '/maybe', alice)).body.clientCert.verifyError, 'CERT_REVOKED', 'the last good CRL stays')
  const other = makeDpPki('Another Root')
  t.teardown(other.cleanup)
  s.crls.body = other.crl([])
  await until(() => s.logs.filter((line) => String(line.reason).includes('not signed by its key')).length >= 2)
  t.equal((await get(s.url + '/maybe', alice)).body.clientCert.verifyError, 'CERT_REVOKED')
})

t.test('configured urls: a certificate without a distribution point is checked against the CRL of its issuer there', async (t) => {
  const crls = await startCrlServer()
  t.teardown(crls.close)
  const s = await setup(t, { urls: [crls.url + '/root.crl'], refresh: 100 }, { extensions: () => [] })
  crls.body = s.pki.crl([s.alice])
  await until(async () => (await get(s.url + '/maybe', s.agent(s.alice))).body.clientCert.verifyError === 'CERT_REVOKED')
  t.equal((await get(s.url + '/whoami', s.agent(s.bob))).status, 200)
  t.equal(s.crls.counts.requests, 0, 'no certificate points at the other server')
})

t.test('configured urls that never answered: strict refuses certificates it might cover', async (t) => {
  const crls = await startCrlServer()
  t.teardown(crls.close)
  crls.mode = 'error'
  const s = await setup(t, { urls: [crls.url + '/root.crl'] }, { extensions: () => [] })
  await until(() => crls.counts.requests >= 1 && s.logs.some((line) => line.reason === 'HTTP status 500'))
  t.equal((await get(s.url + '/maybe', s.agent(s.alice))).body.clientCert.verifyError, 'REVOCATION_UNAVAILABLE')
})

t.test('a CRL of another issuer at a configured URL says nothing of these certificates', async (t) => {
  const crls = await startCrlServer()
  t.teardown(crls.close)
  const other = makeDpPki('Another Root')
  t.teardown(other.cleanup)
  crls.body = other.crl([])
  const s = await setup(t, { urls: [crls.url + '/other.crl'] }, { extensions: () => [] })
  await until(() => crls.counts.full === 1)
  t.equal((await get(s.url + '/whoami', s.agent(s.alice))).status, 200)
})

t.test('distribution points read from certificates: http(s) URIs only, plain full names only, at most four', async (t) => {
  const pki = makeDpPki()
  t.teardown(pki.cleanup)
  const urls = (extensions: string[]): readonly string[] => distributionPointsOf(new X509Certificate(pki.issue('c' + Math.random().toString(16).slice(2), extensions).certPem))
  t.same(urls(['crlDistributionPoints = URI:ldap://ldap.example/cn=crl, URI:http://a.example/1.crl, URI:HTTPS://b.example/2.crl, URI:http://a.example/1.crl, DNS:x.example']),
    ['http://a.example/1.crl', 'https://b.example/2.crl'])
  t.same(urls([]), [])
  t.same(urls(['crlDistributionPoints = URI:http://a/1, URI:http://a/2, URI:http://a/3, URI:http://a/4, URI:http://a/5']), ['http://a/1', 'http://a/2', 'http://a/3', 'http://a/4'])
  t.same(urls(['crlDistributionPoints = dp1, dp2, dp3', '[dp1]', 'fullname = URI:http://a/reasons', 'reasons = keyCompromise', '[dp2]', 'relativename = rdn_sect',
    '[rdn_sect]', 'CN = crl', '[dp3]', 'CRLissuer = dirName:issuer_sect', 'fullname = URI:http://a/indirect', '[issuer_sect]', 'CN = other']), [])
  t.same(urls([`crlDistributionPoints = URI:http://a/${'x'.repeat(2100)}`, 'subjectAltName = URI:http://user:pw@a/']), [])
  t.same(urls(['crlDistributionPoints = URI:http://user:pw@a/1.crl']), [], 'credentials in a URL are not followed')
  t.same(urls(['2.5.29.31 = DER:30030101FF']), [], 'an extension that does not read gives none')
  const certificate = new X509Certificate(pki.issue('cached', ['crlDistributionPoints = URI:http://a/1']).certPem)
  t.equal(distributionPointsOf(certificate), distributionPointsOf(certificate), 'read once per certificate')
})

t.test('options: revocation.distributionPoints checked at registration', async (t) => {
  t.equal(normalizeRevocation(undefined), null)
  t.equal(normalizeRevocation({}), null)
  t.equal(normalizeRevocation({ distributionPoints: false }), null)
  t.match(normalizeRevocation({ distributionPoints: true }), { urls: [], refresh: 300_000, timeout: 5_000, maxBytes: 64 * 1024 * 1024, mode: 'strict', dispatcher: undefined })
  const dispatcher = new Agent()
  t.teardown(() => dispatcher.close())
  t.match(normalizeRevocation({ distributionPoints: { urls: ['https://crl.example/a.crl'], refresh: 1, timeout: 2, maxBytes: 3, mode: 'soft-fail', dispatcher } }),
    { refresh: 1, timeout: 2, maxBytes: 3, mode: 'soft-fail', dispatcher })
  const bad: Array<[unknown, RegExp]> = [
    [1, /revocation: must be/],
    [{ oscp: true }, /revocation\.oscp: is not a known option/],
    [{ distributionPoints: 'yes' }, /revocation\.distributionPoints: must be true, false or/],
    [{ distributionPoints: { ttl: 1 } }, /revocation\.distributionPoints\.ttl: is not a known option/],
    [{ distributionPoints: { urls: 'http://a' } }, /urls: must be an array/],
    [{ distributionPoints: { urls: ['ldap://a/b'] } }, /urls\[0\]: must be an http\(s\) URL/],
    [{ distributionPoints: { urls: [7] } }, /urls\[0\]: must be an http\(s\) URL/],
    [{ distributionPoints: { urls: ['not a url'] } }, /urls\[0\]/],
    [{ distributionPoints: { mode: 'off' } }, /mode: must be 'strict' or 'soft-fail'/],
    [{ distributionPoints: { refresh: 0 } }, /refresh: must be a positive integer/],
    [{ distributionPoints: { timeout: 1.5 } }, /timeout: must be a positive integer/],
    [{ distributionPoints: { maxBytes: '1' } }, /maxBytes: must be a positive integer/],
    [{ distributionPoints: { dispatcher: {} } }, /dispatcher: must be an undici Dispatcher/],
    [{ distributionPoints: { dispatcher: 'agent' } }, /dispatcher: must be an undici Dispatcher/]
  ]
  for (const [value, message] of bad) t.throws(() => normalizeRevocation(value), message)
  const app = Fastify()
  await t.rejects(async () => await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1' }, revocation: { distributionPoints: { mode: 'loose' } } } as never), /mode/)
})

t.test('behind a proxy: the forwarded chain gives the issuer; names alone cannot be checked (strict refuses, soft-fail admits)', async (t) => {
  const pki = makeDpPki()
  t.teardown(pki.cleanup)
  const crls = await startCrlServer()
  t.teardown(crls.close)
  const alice = pki.issue('alice', [`crlDistributionPoints = URI:${crls.url}/root.crl`])
  crls.body = pki.crl([alice])
  for (const mode of ['strict', 'soft-fail'] as const) {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(fastifyClientCert, {
      mode: 'proxy',
      proxy: {
        trust: '127.0.0.1',
        headers: { cert: { name: 'x-cert', encoding: 'pem-urlencoded' }, verified: 'present' },
        ca: pki.root.certPem
      },
      revocation: { distributionPoints: { mode } }
    })
    defaultRoutes(app)
    const forwarded = await app.inject({ url: '/maybe', headers: { 'x-cert': encodeURIComponent(alice.certPem) } })
    t.equal(forwarded.json().clientCert.verifyError, 'CERT_REVOKED', mode)
    const names = Fastify()
    t.teardown(() => names.close())
    await names.register(fastifyClientCert, {
      mode: 'proxy',
      proxy: { trust: '127.0.0.1', headers: { subject: { name: 'x-s-dn', encoding: 'dn-rfc4514' }, verified: 'present' } },
      revocation: { distributionPoints: { mode } }
    } as FastifyClientCertOptions)
    defaultRoutes(names)
    t.equal((await names.inject({ url: '/maybe', headers: { 'x-s-dn': 'CN=alice' } })).json().clientCert.verified, mode === 'soft-fail', 'names only, ' + mode)
  }
})

t.test('the store: closed, full, or stopped mid-download, it fetches nothing more', async (t) => {
  const pki = makeDpPki()
  t.teardown(pki.cleanup)
  const crls = await startCrlServer()
  t.teardown(crls.close)
  const leaf = new X509Certificate(pki.issue('leaf', [`crlDistributionPoints = URI:${crls.url}/root.crl`]).certPem)
  const root = new X509Certificate(pki.root.certPem)
  const log = { warn: () => {}, info: () => {} }
  const settings = normalizeRevocation({ distributionPoints: { timeout: 300 } })!
  const closed = new DistributionPoints(settings, log, () => {}, () => [root])
  closed.close()
  t.equal(closed.check(leaf, [], [root], Date.now()).error, 'REVOCATION_UNAVAILABLE', 'closed: nothing fetched, nothing known')
  const full = new DistributionPoints(normalizeRevocation({ distributionPoints: { urls: Array.from({ length: 256 }, (_, i) => `http://127.0.0.1:9/${i}`) } })!, log, () => {}, () => [root])
  t.equal(full.check(leaf, [], [root], Date.now()).error, 'REVOCATION_UNAVAILABLE', 'full: a new URL is not fetched')
  full.close()
  // One URL named by certificates of two issuers: its CRL counts only for the issuer that signed it.
  crls.body = pki.crl([])
  const other = makeDpPki('Another Root')
  t.teardown(other.cleanup)
  const stranger = new X509Certificate(other.issue('stranger', [`crlDistributionPoints = URI:${crls.url}/root.crl`]).certPem)
  const otherRoot = new X509Certificate(other.root.certPem)
  const shared = new DistributionPoints(settings, log, () => {}, () => [root, otherRoot])
  t.equal(shared.check(leaf, [], [root], Date.now()).error, 'REVOCATION_PENDING')
  await shared.settled()
  t.equal(shared.check(leaf, [], [root], Date.now()).error, null)
  t.equal(shared.check(stranger, [], [otherRoot], Date.now()).error, 'REVOCATION_UNAVAILABLE')
  shared.close()
  crls.mode = 'hang'
  const stopped = new DistributionPoints(normalizeRevocation({ distributionPoints: { urls: [crls.url + '/root.crl'], timeout: 300 } })!, log, () => t.fail('no change after close'), () => [root])
  stopped.start()
  const settled = stopped.settled()
  stopped.close()
  await settled
  t.equal(crls.counts.requests, 2)
})

t.test('behind a proxy without proxy.ca: the issuer is found in the forwarded chain; without it, a distribution point cannot be checked', async (t) => {
  const pki = makeDpPki()
  t.teardown(pki.cleanup)
  const crls = await startCrlServer()
  t.teardown(crls.close)
  const alice = pki.issue('alice', [`crlDistributionPoints = URI:${crls.url}/root.crl`])
  crls.body = pki.crl([alice])
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyClientCert, {
    mode: 'proxy',
    proxy: { trust: '127.0.0.1', headers: { cert: { name: 'x-cert', encoding: 'pem-urlencoded' }, chain: { name: 'x-chain', encoding: 'pem-urlencoded' }, verified: 'present' } },
    revocation: { distributionPoints: true }
  } as FastifyClientCertOptions)
  defaultRoutes(app)
  const withChain = await app.inject({ url: '/maybe', headers: { 'x-cert': encodeURIComponent(alice.certPem), 'x-chain': encodeURIComponent(pki.root.certPem) } })
  t.equal(withChain.json().clientCert.verifyError, 'CERT_REVOKED')
  const alone = await app.inject({ url: '/maybe', headers: { 'x-cert': encodeURIComponent(alice.certPem) } })
  t.equal(alone.json().clientCert.verifyError, 'REVOCATION_UNAVAILABLE')
})
