// OCSP (RFC 6960) for client certificates: `openssl ocsp` answers from an index file, signing with a delegated
// responder certificate, behind a responder on 127.0.0.1; a real HTTPS Fastify app (and proxy mode through
// inject) judges leaves whose authorityInfoAccess names it. Each outcome in strict and soft-fail.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { Writable } from 'node:stream'
import { connect as tlsConnect } from 'node:tls'
import { X509Certificate } from 'node:crypto'
import { Agent, request } from 'undici'
import { fastifyClientCert, type FastifyClientCertOptions, type OcspOptions, type RevocationOptions } from '../../lib/index.js'
import { normalizeRevocation } from '../../lib/revocation/distribution-points.js'
import { normalizeOcsp, OcspClient } from '../../lib/revocation/ocsp.js'
import { getCorpus, type CertFiles } from '../helpers/certs.js'
import { defaultRoutes } from '../helpers/server.js'
import { certIdFor, craftResponse, makeOcspPki, startOcspResponder, type OcspPki, type OcspResponder } from '../helpers/ocsp-pki.js'
import { makeDpPki, startCrlServer } from '../helpers/dp-pki.js'
import { makeCrl } from '../helpers/crl.js'

t.setTimeout(300_000)

type Log = { msg: string, level: number, [key: string]: unknown }

interface Setup {
  pki: OcspPki
  responder: OcspResponder
  app: FastifyInstance
  url: string
  port: number
  alice: CertFiles
  bob: CertFiles
  logs: Log[]
  agent: (leaf: CertFiles, connections?: number) => Agent
}

function logStream (logs: Log[]): Writable {
  return new Writable({
    write (chunk, _encoding, callback) {
      logs.push(JSON.parse(String(chunk)))
      callback()
    }
  })
}

async function setup (t: Test, ocsp: OcspOptions | true = {}, options: {
  revocation?: Omit<RevocationOptions, 'ocsp'>
  plugin?: Partial<FastifyClientCertOptions>
  aia?: (url: string) => string | null
  pki?: OcspPki
} = {}): Promise<Setup> {
  const corpus = await getCorpus()
  const pki = options.pki ?? makeOcspPki()
  t.teardown(pki.cleanup)
  const responder = await startOcspResponder(pki)
  t.teardown(responder.close)
  const aia = options.aia ?? ((url: string) => url)
  const alice = pki.issue('alice', aia(responder.url))
  const bob = pki.issue('bob', aia(responder.url))
  const logs: Log[] = []
  const app = Fastify({
    https: { key: corpus.leaves.serverauth.keyPem, cert: corpus.leaves.serverauth.chainPem, ca: pki.root.certPem, requestCert: true, rejectUnauthorized: false },
    logger: { level: 'info', stream: logStream(logs) }
  } as unknown as FastifyServerOptions) as unknown as FastifyInstance
  await app.register(fastifyClientCert, { revocation: { ocsp, ...options.revocation }, ...options.plugin })
  defaultRoutes(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const port = (app.server.address() as { port: number }).port
  const agent = (leaf: CertFiles, connections = 1): Agent => {
    const dispatcher = new Agent({ connect: { ca: corpus.caPem, servername: 'localhost', cert: leaf.certPem, key: leaf.keyPem }, connections })
    t.teardown(() => dispatcher.close())
    return dispatcher
  }
  return { pki, responder, app, url: `https://localhost:${port}`, port, alice, bob, logs, agent }
}

async function get (url: string, dispatcher: Agent): Promise<{ status: number, body: any }> {
  const response = await request(url, { dispatcher })
  return { status: response.statusCode, body: await response.body.json() }
}

/** `request.clientCert` of /maybe for `leaf`, on a new connection. */
async function verdict (s: Setup, leaf: CertFiles): Promise<{ verified: boolean, verifyError: string | null }> {
  const { verified, verifyError } = (await get(s.url + '/maybe', s.agent(leaf))).body.clientCert
  return { verified, verifyError }
}

/** Polls `check` every 50 ms; fails after `ms` (a generous bound, not a timing assertion). */
async function until (check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const modes = ['strict', 'soft-fail'] as const

t.test('good, revoked and unknown answers from openssl ocsp, in each mode', async (t) => {
  for (const mode of modes) {
    const s = await setup(t, { mode })
    const carol = s.pki.issue('carol', s.responder.url, { indexed: false })
    s.pki.revoke(s.bob)
    t.same(await verdict(s, s.alice), { verified: true, verifyError: null }, `${mode}: good`)
    t.equal((await get(s.url + '/whoami', s.agent(s.alice))).status, 200)
    t.same(await verdict(s, s.bob), { verified: false, verifyError: 'CERT_REVOKED' }, `${mode}: revoked`)
    t.equal((await get(s.url + '/whoami', s.agent(s.bob))).status, 401)
    t.same(await verdict(s, carol), { verified: false, verifyError: 'OCSP_UNKNOWN' }, `${mode}: unknown is refused by default`)
    t.ok(s.logs.some((line) => line.source === 'ocsp' && line.answer === 'revoked' && line.url === s.responder.url), 'the refusal names its source and answer')
    t.ok(s.logs.some((line) => line.source === 'ocsp' && line.answer === 'unknown'))
    t.equal(s.responder.requests.length, 3, 'one request per certificate, cached after')
  }
})

t.test('unknown: admit lets an unknown certificate through; a revoked one is still refused', async (t) => {
  const s = await setup(t, { unknown: 'admit' })
  const carol = s.pki.issue('carol', s.responder.url, { indexed: false })
  s.pki.revoke(s.bob)
  t.same(await verdict(s, carol), { verified: true, verifyError: null })
  t.equal((await verdict(s, s.bob)).verifyError, 'CERT_REVOKED')
})

t.test('responder down, erroring, or too slow: strict refuses (REVOCATION_UNAVAILABLE), soft-fail admits and logs', async (t) => {
  for (const trouble of ['down', 'error', 'hang'] as const) {
    for (const mode of modes) {
      const s = await setup(t, { mode, timeout: 300 })
      s.responder.mode = trouble
      const answer = await verdict(s, s.alice)
      t.same(answer, mode === 'strict' ? { verified: false, verifyError: 'REVOCATION_UNAVAILABLE' } : { verified: true, verifyError: null }, `${trouble}, ${mode}`)
      t.ok(s.logs.some((line) => line.level === 40 && line.url === s.responder.url && typeof line.reason === 'string'), 'warned with url and reason')
      t.ok(s.logs.some((line) => line.answer === 'unavailable' && String(line.msg).includes(mode === 'strict' ? 'strict refuses' : 'soft-fail admits')))
      if (trouble === 'error') t.ok(s.logs.some((line) => line.reason === 'HTTP status 500'))
    }
  }
})

t.test('answers that do not count: each refused in strict, admitted and logged in soft-fail', async (t) => {
  const stranger = makeOcspPki('Stranger Root')
  t.teardown(stranger.cleanup)
  // [name, arrange before the request, the reason logged, the app's nonce option]
  const cases: Array<[string, (s: Setup) => Promise<void> | void, string, boolean]> = [
    ['a responder certificate of another CA', (s) => { s.responder.signer = stranger.responder }, 'the responder certificate is not issued by the certificate\'s issuer', true],
    ['a signer the response does not carry', (s) => {
      s.responder.handler = (body) => craftResponse(body, { signer: stranger.root, certs: [] })
    }, 'the responder is neither the issuer nor a certificate the response carries', true],
    ['a responder certificate whose key did not sign', (s) => {
      // The genuine delegated certificate, carried, with the stranger's key signing in its name.
      s.responder.handler = (body) => craftResponse(body, { signer: { ...stranger.responder, der: s.pki.responder.der } })
    }, 'the signature does not verify with the responder\'s key', true],
    ['a responder certificate without OCSPSigning', (s) => {
      s.responder.signer = s.pki.sign('plain', ['basicConstraints = CA:FALSE', 'extendedKeyUsage = clientAuth', 'authorityKeyIdentifier = keyid'], s.pki.root)
    }, 'the responder certificate lacks the OCSPSigning extended key usage', true],
    ['a stale answer (nextUpdate past)', (s) => {
      s.responder.handler = (body) => craftResponse(body, { signer: s.pki.responder, thisUpdate: Date.now() - 7_200_000, nextUpdate: Date.now() - 3_600_000 })
    }, 'the answer is stale: nextUpdate has passed', true],
    ['thisUpdate in the future', (s) => {
      s.responder.handler = (body) => craftResponse(body, { signer: s.pki.responder, thisUpdate: Date.now() + 3_600_000, nextUpdate: Date.now() + 7_200_000 })
    }, 'thisUpdate is in the future', true],
    ['an answer without the nonce', (s) => {
      s.responder.handler = (body) => craftResponse(body, { signer: s.pki.responder, nonce: null })
    }, 'the response does not echo the nonce', true],
    ['a replayed answer (nonce mismatch)', async (s) => {
      // openssl's good answer for alice, cached for cacheTtl, then served again to the next request.
      t.equal((await verdict(s, s.alice)).verified, true)
      const first = s.responder.answers[0]!
      s.responder.handler = () => first
      await new Promise((resolve) => setTimeout(resolve, 400))
    }, 'the nonce does not match the request\'s', true],
    ['an answer for another certificate', async (s) => {
      t.equal((await verdict(s, s.bob)).verified, true)
      const forBob = s.responder.answers[0]!
      s.responder.handler = () => forBob
    }, 'the response does not answer for the certificate', false]
  ]
  for (const [name, arrange, reason, nonce] of cases) {
    for (const mode of modes) {
      const s = await setup(t, { mode, nonce, cacheTtl: 300 })
      await arrange(s)
      const answer = await verdict(s, s.alice)
      t.same(answer, mode === 'strict' ? { verified: false, verifyError: 'REVOCATION_UNAVAILABLE' } : { verified: true, verifyError: null }, `${name}, ${mode}`)
      t.ok(s.logs.some((line) => line.reason === reason && line.url === s.responder.url && line.level === 40), `warned: ${reason}`)
    }
  }
})

t.test('revoked at the CA: once the cached answer runs out, an open keep-alive connection is refused', async (t) => {
  const s = await setup(t, { cacheTtl: 300 })
  const alice = s.agent(s.alice)
  t.equal((await get(s.url + '/whoami', alice)).status, 200)
  s.pki.revoke(s.alice)
  await until(async () => (await get(s.url + '/whoami', alice)).status === 401)
  t.equal((await get(s.url + '/maybe', alice)).body.clientCert.verifyError, 'CERT_REVOKED')
})

t.test('a fetched answer that differs from the cached one calls onChange (the plugin bumps its generation); a first one does not', async (t) => {
  const pki = makeOcspPki()
  t.teardown(pki.cleanup)
  const responder = await startOcspResponder(pki)
  t.teardown(responder.close)
  const root = new X509Certificate(pki.root.certPem)
  const alice = pki.issue('alice', responder.url)
  const leaf = new X509Certificate(alice.certPem)
  let changes = 0
  const client = new OcspClient(normalizeOcsp({ ocsp: { cacheTtl: 200 } })!, { warn: () => {}, info: () => {} }, () => { changes++ }, () => [root])
  t.teardown(() => client.close())
  client.check(leaf, [], [root], Date.now(), false)
  await client.settled()
  t.equal(client.check(leaf, [], [root], Date.now(), false).error, null)
  t.equal(changes, 0, 'a first answer changes no verdict that did not wait for it')
  pki.revoke(alice)
  await new Promise((resolve) => setTimeout(resolve, 250))
  t.equal(client.check(leaf, [], [root], Date.now(), false).error, 'REVOCATION_PENDING', 'run out: the next check waits for the new answer')
  await client.settled()
  t.equal(client.check(leaf, [], [root], Date.now(), false).error, 'CERT_REVOKED')
  t.equal(changes, 1)
})

t.test('concurrent requests share one fetch, which the TLS handshake starts', async (t) => {
  const s = await setup(t, {})
  const slow = s.responder
  const socket = tlsConnect({ host: '127.0.0.1', port: s.port, servername: 'localhost', ca: (await getCorpus()).caPem, cert: s.bob.certPem, key: s.bob.keyPem })
  t.teardown(() => socket.destroy())
  await until(() => slow.requests.length === 1)
  t.pass('fetched on handshake, before any request')
  const agent = s.agent(s.alice, 8)
  const answers = await Promise.all(Array.from({ length: 8 }, async () => await get(s.url + '/whoami', agent)))
  t.same(answers.map((answer) => answer.status), Array(8).fill(200))
  t.equal(slow.requests.length, 2, 'one more request, for alice')
})

t.test('clientCert.verify() waits for the first answer too', async (t) => {
  const corpus = await getCorpus()
  const pki = makeOcspPki()
  t.teardown(pki.cleanup)
  const responder = await startOcspResponder(pki)
  t.teardown(responder.close)
  const alice = pki.issue('alice', responder.url)
  const bob = pki.issue('bob', responder.url)
  pki.revoke(bob)
  const app = Fastify({ https: { key: corpus.leaves.serverauth.keyPem, cert: corpus.leaves.serverauth.chainPem, ca: pki.root.certPem, requestCert: true, rejectUnauthorized: false } } as unknown as FastifyServerOptions) as unknown as FastifyInstance
  await app.register(fastifyClientCert, { required: false, revocation: { ocsp: true } })
  // `clientCert: false`: the route policy does not run first, so verify() itself meets the pending answer.
  app.get('/guarded', { config: { clientCert: false }, preHandler: app.clientCert.verify() }, async (request) => ({ subject: request.clientCert?.subject }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const url = `https://localhost:${(app.server.address() as { port: number }).port}/guarded`
  for (const [leaf, status] of [[alice, 200], [bob, 401]] as const) {
    const dispatcher = new Agent({ connect: { ca: corpus.caPem, servername: 'localhost', cert: leaf.certPem, key: leaf.keyPem } })
    t.teardown(() => dispatcher.close())
    t.equal((await request(url, { dispatcher })).statusCode, status, leaf.name)
  }
})

t.test('responders: the configured url replaces the AIA; without either a certificate is not checked', async (t) => {
  const s = await setup(t, {}, { aia: () => 'http://127.0.0.1:9/never' })
  t.equal((await verdict(s, s.alice)).verifyError, 'REVOCATION_UNAVAILABLE', 'the AIA responder is down')
  const other = await startOcspResponder(s.pki)
  t.teardown(other.close)
  const corpus = await getCorpus()
  for (const [ocsp, leafUrl, expected] of [
    [{ url: other.url }, 'http://127.0.0.1:9/never', true],
    [{}, null, true],
    [{ url: other.url }, null, true]
  ] as const) {
    const leaf = s.pki.issue('leaf' + Math.random().toString(16).slice(2), leafUrl)
    const app = Fastify({ https: { key: corpus.leaves.serverauth.keyPem, cert: corpus.leaves.serverauth.chainPem, ca: s.pki.root.certPem, requestCert: true, rejectUnauthorized: false } } as unknown as FastifyServerOptions) as unknown as FastifyInstance
    await app.register(fastifyClientCert, { revocation: { ocsp } })
    defaultRoutes(app)
    await app.listen({ host: '127.0.0.1', port: 0 })
    t.teardown(() => app.close())
    const dispatcher = s.agent(leaf)
    const body = (await get(`https://localhost:${(app.server.address() as { port: number }).port}/maybe`, dispatcher)).body
    t.equal(body.clientCert.verified, expected, JSON.stringify(ocsp) + ' ' + String(leafUrl))
  }
  t.equal(other.requests.length, 2, 'the configured responder is asked, whatever the AIA says')
})

t.test('openssl answer variants: ResponderID by key, CertID hashed with SHA-256, signed by the issuer itself', async (t) => {
  for (const variant of ['key', 'sha256', 'issuer'] as const) {
    const s = await setup(t, {})
    if (variant === 'key') s.responder.args = ['-resp_key_id', '-nmin', '5']
    // openssl 3.0's -rcid writes serial 0 into the CertID: the SHA-256 CertID is crafted instead.
    if (variant === 'sha256') {
      s.responder.handler = (body) => {
        const leaf = s.responder.requests.length === 1 ? s.alice : s.bob
        return craftResponse(body, { signer: s.pki.responder, certId: certIdFor(leaf, s.pki.root, 'sha256', '2.16.840.1.101.3.4.2.1'), status: leaf === s.bob ? 'revoked' : 'good' })
      }
    }
    if (variant === 'issuer') s.responder.args = ['-resp_no_certs']
    if (variant === 'issuer') s.responder.signer = s.pki.root
    s.pki.revoke(s.bob)
    t.same(await verdict(s, s.alice), { verified: true, verifyError: null }, variant)
    t.equal((await verdict(s, s.bob)).verifyError, 'CERT_REVOKED', variant)
  }
})

t.test('behind a proxy (nginx preset): the forwarded certificate and proxy.ca give the issuer', async (t) => {
  const pki = makeOcspPki()
  t.teardown(pki.cleanup)
  const responder = await startOcspResponder(pki)
  t.teardown(responder.close)
  const alice = pki.issue('alice', responder.url)
  const bob = pki.issue('bob', responder.url)
  pki.revoke(bob)
  const headers = (leaf: CertFiles) => ({ 'x-ssl-client-cert': encodeURIComponent(leaf.certPem), 'x-ssl-client-verify': 'SUCCESS' })
  for (const mode of modes) {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1', ca: pki.root.certPem }, revocation: { ocsp: { mode } } })
    defaultRoutes(app)
    t.equal((await app.inject({ url: '/whoami', headers: headers(alice) })).statusCode, 200, mode)
    t.equal((await app.inject({ url: '/maybe', headers: headers(bob) })).json().clientCert.verifyError, 'CERT_REVOKED', mode)
    // Without proxy.ca and without a forwarded chain, the issuer is unknown: no CertID can be made.
    const bare = Fastify()
    t.teardown(() => bare.close())
    await bare.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1' }, revocation: { ocsp: { mode } } })
    defaultRoutes(bare)
    t.equal((await bare.inject({ url: '/maybe', headers: headers(alice) })).json().clientCert.verified, mode === 'soft-fail', 'issuer unknown, ' + mode)
    // Names alone.
    const names = Fastify()
    t.teardown(() => names.close())
    await names.register(fastifyClientCert, {
      mode: 'proxy',
      proxy: { trust: '127.0.0.1', headers: { subject: { name: 'x-s-dn', encoding: 'dn-rfc4514' }, verified: 'present' } },
      revocation: { ocsp: { mode } }
    } as FastifyClientCertOptions)
    defaultRoutes(names)
    const named = (await names.inject({ url: '/maybe', headers: { 'x-s-dn': 'CN=alice' } })).json().clientCert
    t.same([named.verified, named.verifyError], mode === 'strict' ? [false, 'REVOCATION_UNAVAILABLE'] : [true, null], 'names only, ' + mode)
  }
})

t.test('order: with distribution points too', async (t) => {
  const crlPki = makeDpPki()
  t.teardown(crlPki.cleanup)
  const crls = await startCrlServer()
  t.teardown(crls.close)
  // The CRL PKI's root issues through the OCSP PKI's helper: one root, a CDP and an AIA on each leaf.
  const pki = makeOcspPki()
  t.teardown(pki.cleanup)
  const responder = await startOcspResponder(pki)
  t.teardown(responder.close)
  const cdp = [`crlDistributionPoints = URI:${crls.url}/root.crl`]
  const alice = pki.issue('alice', responder.url, { lines: cdp })
  const bob = pki.issue('bob', responder.url, { lines: cdp })
  const corpus = await getCorpus()
  const app = async (revocation: RevocationOptions): Promise<(leaf: CertFiles) => Promise<{ verified: boolean, verifyError: string | null }>> => {
    const server = Fastify({ https: { key: corpus.leaves.serverauth.keyPem, cert: corpus.leaves.serverauth.chainPem, ca: pki.root.certPem, requestCert: true, rejectUnauthorized: false } } as unknown as FastifyServerOptions) as unknown as FastifyInstance
    await server.register(fastifyClientCert, { revocation })
    defaultRoutes(server)
    await server.listen({ host: '127.0.0.1', port: 0 })
    t.teardown(() => server.close())
    return async (leaf) => {
      const dispatcher = new Agent({ connect: { ca: corpus.caPem, servername: 'localhost', cert: leaf.certPem, key: leaf.keyPem } })
      t.teardown(() => dispatcher.close())
      const { verified, verifyError } = (await get(`https://localhost:${(server.server.address() as { port: number }).port}/maybe`, dispatcher)).body.clientCert
      return { verified, verifyError }
    }
  }
  // The CRL says alice is revoked; OCSP says she is good.
  crls.body = makeCrl(pki.root, [alice.certPath])
  const thenCrl = await app({ ocsp: true, distributionPoints: true })
  t.same(await thenCrl(alice), { verified: true, verifyError: null }, "'ocsp-then-crl': a good OCSP answer decides the leaf")
  const both = await app({ ocsp: true, distributionPoints: true, order: 'ocsp-and-crl' })
  t.same(await both(alice), { verified: false, verifyError: 'CERT_REVOKED' }, "'ocsp-and-crl': either source refuses")
  pki.revoke(bob)
  t.same(await thenCrl(bob), { verified: false, verifyError: 'CERT_REVOKED' }, 'OCSP revoked, CRL not: refused')
  // OCSP down: the CRL decides the leaf, by its own mode.
  responder.mode = 'down'
  const fallback = await app({ ocsp: { mode: 'strict' }, distributionPoints: { mode: 'strict' } })
  t.same(await fallback(alice), { verified: false, verifyError: 'CERT_REVOKED' }, 'no OCSP answer: the CRL refuses')
  crls.body = makeCrl(pki.root, [])
  const fallbackGood = await app({ ocsp: { mode: 'strict' }, distributionPoints: { mode: 'strict' } })
  t.same(await fallbackGood(alice), { verified: true, verifyError: null }, 'no OCSP answer: the CRL admits')
  const strictBoth = await app({ ocsp: { mode: 'strict' }, distributionPoints: true, order: 'ocsp-and-crl' })
  t.same(await strictBoth(alice), { verified: false, verifyError: 'REVOCATION_UNAVAILABLE' }, "'ocsp-and-crl': OCSP strict refuses without an answer")
  // Names alone, with both: OCSP falls back to the distribution points, which cannot check names either.
  for (const order of ['ocsp-then-crl', 'ocsp-and-crl'] as const) {
    const names = Fastify()
    t.teardown(() => names.close())
    await names.register(fastifyClientCert, {
      mode: 'proxy',
      proxy: { trust: '127.0.0.1', headers: { subject: { name: 'x-s-dn', encoding: 'dn-rfc4514' }, verified: 'present' } },
      revocation: { ocsp: { mode: 'soft-fail' }, distributionPoints: { mode: order === 'ocsp-then-crl' ? 'strict' : 'soft-fail' }, order }
    } as FastifyClientCertOptions)
    defaultRoutes(names)
    const named = (await names.inject({ url: '/maybe', headers: { 'x-s-dn': 'CN=alice' } })).json().clientCert
    t.same([named.verified, named.verifyError], order === 'ocsp-then-crl' ? [false, 'REVOCATION_UNAVAILABLE'] : [true, null], 'names only, ' + order)
  }
})

t.test('options: revocation.ocsp and revocation.order checked at registration', async (t) => {
  t.equal(normalizeOcsp(undefined), null)
  t.equal(normalizeOcsp({}), null)
  t.equal(normalizeOcsp({ ocsp: false }), null)
  t.match(normalizeOcsp({ ocsp: true }), { mode: 'strict', url: null, nonce: true, timeout: 5000, clockSkew: 300_000, unknown: 'refuse', cacheTtl: 3_600_000, maxBytes: 1024 * 1024, dispatcher: undefined, order: 'ocsp-then-crl' })
  const dispatcher = new Agent()
  t.teardown(() => dispatcher.close())
  t.match(normalizeOcsp({ ocsp: { mode: 'soft-fail', url: 'https://ocsp.example/', nonce: false, timeout: 1, clockSkew: 0, unknown: 'admit', cacheTtl: 2, maxBytes: 3, dispatcher }, distributionPoints: true, order: 'ocsp-and-crl' }),
    { mode: 'soft-fail', nonce: false, timeout: 1, clockSkew: 0, unknown: 'admit', cacheTtl: 2, maxBytes: 3, dispatcher, order: 'ocsp-and-crl' })
  t.equal(normalizeOcsp({ ocsp: { url: 'http://ocsp.example/x' } })!.url!.href, 'http://ocsp.example/x')
  t.equal(normalizeRevocation({ ocsp: true, order: 'ocsp-then-crl' }), null, 'revocation takes ocsp and order beside distributionPoints')
  const bad: Array<[unknown, RegExp]> = [
    [{ ocsp: 'yes' }, /revocation\.ocsp: must be true, false or/],
    [{ ocsp: { ttl: 1 } }, /revocation\.ocsp\.ttl: is not a known option/],
    [{ ocsp: { mode: 'off' } }, /revocation\.ocsp\.mode: must be 'strict' or 'soft-fail'/],
    [{ ocsp: { url: 'ldap://a/' } }, /revocation\.ocsp\.url: must be an http\(s\) URL/],
    [{ ocsp: { url: 7 } }, /revocation\.ocsp\.url/],
    [{ ocsp: { url: 'http://u:p@a/' } }, /revocation\.ocsp\.url/],
    [{ ocsp: { nonce: 'yes' } }, /revocation\.ocsp\.nonce: must be a boolean/],
    [{ ocsp: { unknown: 'good' } }, /revocation\.ocsp\.unknown: must be 'refuse' or 'admit'/],
    [{ ocsp: { timeout: 0 } }, /revocation\.ocsp\.timeout: must be a positive integer/],
    [{ ocsp: { clockSkew: -1 } }, /revocation\.ocsp\.clockSkew: must be a non-negative integer/],
    [{ ocsp: { cacheTtl: 1.5 } }, /revocation\.ocsp\.cacheTtl: must be a positive integer/],
    [{ ocsp: { maxBytes: '1' } }, /revocation\.ocsp\.maxBytes: must be a positive integer/],
    [{ ocsp: { dispatcher: {} } }, /revocation\.ocsp\.dispatcher: must be an undici Dispatcher/],
    [{ ocsp: { dispatcher: 'agent' } }, /revocation\.ocsp\.dispatcher/],
    [{ ocsp: true, distributionPoints: true, order: 'crl-first' }, /revocation\.order: must be 'ocsp-then-crl' or 'ocsp-and-crl'/],
    [{ ocsp: true, order: 'ocsp-and-crl' }, /revocation\.order: applies when both ocsp and distributionPoints are on/],
    [{ ocsp: true, distributionPoints: false, order: 'ocsp-and-crl' }, /revocation\.order: applies/],
    [{ distributionPoints: true, order: 'ocsp-and-crl' }, /revocation\.order: applies/]
  ]
  for (const [value, message] of bad) t.throws(() => normalizeOcsp(value as Record<string, unknown>), message)
  const app = Fastify()
  await t.rejects(async () => await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1' }, revocation: { ocsp: { nonce: 1 } } } as never), /revocation\.ocsp\.nonce/)
})

t.test('an injected identity that says REVOCATION_PENDING without online revocation is not waited for (its token is single-use)', async (t) => {
  const corpus = await getCorpus()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1' }, testing: true })
  defaultRoutes(app)
  const response = await app.clientCert.injectAs({ certificate: corpus.leaves.alice.certPem, verified: false, verifyError: 'REVOCATION_PENDING' }, '/whoami')
  t.equal(response.statusCode, 401)
})

t.test('the cache: bounded (least recently asked dropped), closed, and stopped mid-fetch', async (t) => {
  const pki = makeOcspPki()
  t.teardown(pki.cleanup)
  const responder = await startOcspResponder(pki)
  t.teardown(responder.close)
  const root = new X509Certificate(pki.root.certPem)
  const leaves = ['a', 'b', 'c'].map((name) => new X509Certificate(pki.issue(name, responder.url).certPem))
  const log = { warn: () => {}, info: () => {} }
  const settings = normalizeOcsp({ ocsp: true })!
  const small = new OcspClient(settings, log, () => {}, () => [root], 2)
  const check = (client: OcspClient, leaf: X509Certificate) => client.check(leaf, [], [root], Date.now(), false).error
  t.equal(check(small, leaves[0]!), 'REVOCATION_PENDING')
  t.equal(check(small, leaves[1]!), 'REVOCATION_PENDING')
  await small.settled()
  t.equal(check(small, leaves[0]!), null, 'a is asked again: now the most recent')
  t.equal(check(small, leaves[2]!), 'REVOCATION_PENDING', 'c pushes out b, the least recent')
  await small.settled()
  t.equal(check(small, leaves[0]!), null, 'a kept')
  t.equal(check(small, leaves[1]!), 'REVOCATION_PENDING', 'b was dropped: fetched again')
  await small.settled()
  t.equal(responder.requests.length, 4)
  small.close()
  t.equal(check(small, leaves[0]!), 'REVOCATION_UNAVAILABLE', 'closed: nothing fetched, nothing known')
  responder.mode = 'hang'
  const stopped = new OcspClient(normalizeOcsp({ ocsp: { timeout: 300 } })!, log, () => t.fail('no change after close'), () => [root])
  t.equal(check(stopped, leaves[0]!), 'REVOCATION_PENDING')
  const settled = stopped.settled()
  stopped.close()
  await settled
  t.equal(check(stopped, leaves[0]!), 'REVOCATION_UNAVAILABLE')
})

t.test('no CertID, no answer: an issuer the strict reader refuses; a fetch past its timeout; warnings bounded per minute', async (t) => {
  const { body, certificate, name } = await import('../helpers/der-writer.js')
  const caName = name([[['2.5.4.3', 0x0c, Buffer.from('Test CA')]]])
  // The issuer's Name with a non-minimal length: OpenSSL takes it (and the link), the DER reader does not.
  const berName = Buffer.concat([Buffer.from([0x30, 0x81, caName.length - 2]), caName.subarray(2)])
  const constraints = Buffer.from('300f0603551d130101ff040530030101ff', 'hex')
  const issuer = new X509Certificate(certificate(body({ subject: berName, issuer: berName, extensions: [constraints] })))
  const leaf = new X509Certificate(certificate(body({})))
  const warnings: any[] = []
  const log = { warn: (details: object) => { warnings.push(details) }, info: () => {} }
  const client = new OcspClient(normalizeOcsp({ ocsp: { url: 'http://127.0.0.1:9/', cacheTtl: 1, timeout: 2000 } })!, log, () => {}, () => [issuer])
  t.teardown(() => client.close())
  t.equal(client.check(leaf, [], [issuer], Date.now(), false).error, 'REVOCATION_UNAVAILABLE')
  t.equal(warnings[0].reason, 'the certificate or its issuer does not read as DER')
  // A certificate that reads, its responder refusing connections: failures, retried after cacheTtl (1 ms).
  const pki = makeOcspPki()
  t.teardown(pki.cleanup)
  const root = new X509Certificate(pki.root.certPem)
  const alice = new X509Certificate(pki.issue('alice', null).certPem)
  warnings.length = 0
  for (let i = 0; i < 25; i++) {
    client.check(alice, [], [root], Date.now(), true)
    await client.settled()
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
  t.equal(warnings.length, 19, 'at most 20 warnings a minute, one spent above')
  t.ok(warnings.every((line) => typeof line.reason === 'string' && line.url === 'http://127.0.0.1:9/'))
  // A fetch still under way past its timeout (a clock moved on): no answer, and nothing to wait for.
  const hanging = await startOcspResponder(pki)
  t.teardown(hanging.close)
  hanging.mode = 'hang'
  const slow = new OcspClient(normalizeOcsp({ ocsp: { url: hanging.url, timeout: 500, mode: 'soft-fail' } })!, log, () => {}, () => [root])
  t.teardown(() => slow.close())
  t.equal(slow.check(alice, [], [root], Date.now(), false).error, 'REVOCATION_PENDING')
  t.same(slow.check(alice, [], [root], Date.now() + 1000, false), { error: null, recheckAt: -Infinity, decided: false }, 'soft-fail: admitted')
  await slow.settled()
})
