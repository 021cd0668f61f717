// Ways a revoked client, or someone on the path to the OCSP responder, might dodge the OCSP check; and a client
// that tries to aim the server's fetches somewhere. Real responders on 127.0.0.1, a real HTTPS Fastify app.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Agent, request } from 'undici'
import { fastifyClientCert, type OcspOptions } from '../../lib/index.js'
import { getCorpus, type CertFiles } from '../helpers/certs.js'
import { defaultRoutes } from '../helpers/server.js'
import { craftResponse, makeOcspPki, readRequest, singleResponse, startOcspResponder, type OcspPki, type OcspResponder } from '../helpers/ocsp-pki.js'

t.setTimeout(240_000)

interface Setup { pki: OcspPki, responder: OcspResponder, verdict: (leaf: CertFiles) => Promise<{ verified: boolean, verifyError: string | null }> }

async function setup (t: Test, ocsp: OcspOptions = {}): Promise<Setup> {
  const corpus = await getCorpus()
  const pki = makeOcspPki()
  t.teardown(pki.cleanup)
  const responder = await startOcspResponder(pki)
  t.teardown(responder.close)
  const app = Fastify({
    https: { key: corpus.leaves.serverauth.keyPem, cert: corpus.leaves.serverauth.chainPem, ca: pki.root.certPem, requestCert: true, rejectUnauthorized: false }
  } as unknown as FastifyServerOptions) as unknown as FastifyInstance
  await app.register(fastifyClientCert, { revocation: { ocsp } })
  defaultRoutes(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const url = `https://localhost:${(app.server.address() as AddressInfo).port}/maybe`
  return {
    pki,
    responder,
    verdict: async (leaf) => {
      const dispatcher = new Agent({ connect: { ca: corpus.caPem, servername: 'localhost', cert: leaf.certPem, key: leaf.keyPem } })
      t.teardown(() => dispatcher.close())
      const { verified, verifyError } = (await (await request(url, { dispatcher })).body.json() as any).clientCert
      return { verified, verifyError }
    }
  }
}

const UNAVAILABLE = { verified: false, verifyError: 'REVOCATION_UNAVAILABLE' }

t.test('a client certificate nobody verified never makes the server fetch its AIA URL', async (t) => {
  let hits = 0
  const trap = createServer((_request, response) => { hits++; response.end() })
  await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve))
  t.teardown(() => trap.close())
  const s = await setup(t)
  const rogue = makeOcspPki('Rogue Root')
  t.teardown(rogue.cleanup)
  const mallory = rogue.issue('mallory', `http://127.0.0.1:${(trap.address() as AddressInfo).port}/`)
  t.equal((await s.verdict(mallory)).verified, false)
  t.equal(hits, 0, 'not fetched')
})

t.test('the revoked client signs a good answer for itself with its own key: its certificate is no responder', async (t) => {
  const s = await setup(t)
  const alice = s.pki.issue('alice', s.responder.url)
  s.pki.revoke(alice)
  s.responder.handler = (body) => craftResponse(body, { signer: alice })
  t.same(await s.verdict(alice), UNAVAILABLE)
})

t.test('a good answer from a responder of another CA, in the issuer\'s name', async (t) => {
  const s = await setup(t)
  const alice = s.pki.issue('alice', s.responder.url)
  s.pki.revoke(alice)
  const stranger = makeOcspPki(s.pki.root.name)
  t.teardown(stranger.cleanup)
  s.responder.handler = (body) => craftResponse(body, { signer: stranger.root, certs: [] })
  t.same(await s.verdict(alice), UNAVAILABLE, 'a root of the same name, another key')
  s.responder.handler = (body) => craftResponse(body, { signer: stranger.responder })
  const bob = s.pki.issue('bob', s.responder.url)
  s.pki.revoke(bob)
  t.same(await s.verdict(bob), UNAVAILABLE, 'a delegated responder of that look-alike root')
})

t.test('replaying a good answer captured before the revocation (nonce), or one for another certificate', async (t) => {
  const s = await setup(t, { cacheTtl: 300 })
  const alice = s.pki.issue('alice', s.responder.url)
  const bob = s.pki.issue('bob', s.responder.url)
  t.equal((await s.verdict(alice)).verified, true)
  t.equal((await s.verdict(bob)).verified, true)
  const [forAlice, forBob] = s.responder.answers
  s.pki.revoke(alice)
  s.responder.handler = () => forAlice!
  await new Promise((resolve) => setTimeout(resolve, 400))
  t.same(await s.verdict(alice), UNAVAILABLE, 'replayed: the nonce differs')
  s.responder.handler = () => forBob!
  await new Promise((resolve) => setTimeout(resolve, 400))
  t.same(await s.verdict(alice), UNAVAILABLE, 'another certificate\'s good answer')
})

t.test('an answer that says good and revoked for the same certificate is no answer', async (t) => {
  const s = await setup(t)
  const bob = s.pki.issue('bob', s.responder.url)
  s.pki.revoke(bob)
  s.responder.handler = (body) => craftResponse(body, {
    signer: s.pki.responder,
    status: 'good',
    extraSingles: [singleResponse(readRequest(body).certId, 'revoked', Date.now() - 1000, null)]
  })
  t.same(await s.verdict(bob), UNAVAILABLE)
})

t.test('once revoked, a forged or stale good answer on refresh does not undo it (soft-fail too)', async (t) => {
  for (const mode of ['strict', 'soft-fail'] as const) {
    const s = await setup(t, { mode })
    const alice = s.pki.issue('alice', s.responder.url)
    // Revoked, refreshed a second later (nextUpdate), usable for clockSkew after that.
    s.responder.handler = (body) => craftResponse(body, { signer: s.pki.responder, status: 'revoked', nextUpdate: Date.now() + 1000 })
    t.equal((await s.verdict(alice)).verifyError, 'CERT_REVOKED', mode)
    const stranger = makeOcspPki('Stranger')
    t.teardown(stranger.cleanup)
    s.responder.handler = (body) => craftResponse(body, { signer: stranger.responder })
    await new Promise((resolve) => setTimeout(resolve, 1200))
    t.equal((await s.verdict(alice)).verifyError, 'CERT_REVOKED', mode + ': forged good refused')
    s.responder.handler = (body) => craftResponse(body, { signer: s.pki.responder, thisUpdate: Date.now() - 7_200_000, nextUpdate: Date.now() - 3_600_000 })
    t.equal((await s.verdict(alice)).verifyError, 'CERT_REVOKED', mode + ': stale good refused')
    t.ok(s.responder.requests.length >= 2, 'refetched')
  }
})

t.test('the responder redirects to one that says good: not followed', async (t) => {
  const s = await setup(t)
  const alice = s.pki.issue('alice', s.responder.url)
  s.pki.revoke(alice)
  const good = await startOcspResponder(s.pki)
  t.teardown(good.close)
  good.handler = (body) => craftResponse(body, { signer: s.pki.responder })
  const redirect = createServer((_request, response) => { response.writeHead(307, { location: good.url }).end() })
  await new Promise<void>((resolve) => redirect.listen(0, '127.0.0.1', resolve))
  t.teardown(() => redirect.close())
  const bob = s.pki.issue('bob', `http://127.0.0.1:${(redirect.address() as AddressInfo).port}/`)
  s.pki.revoke(bob)
  t.same(await s.verdict(bob), UNAVAILABLE)
  t.equal(good.requests.length, 0, 'the redirect target was never asked')
})

t.test('a huge or mistyped answer is refused before it is read', async (t) => {
  const s = await setup(t, { maxBytes: 1000 })
  const alice = s.pki.issue('alice', s.responder.url)
  const big = createServer((_request, response) => { response.writeHead(200, { 'content-type': 'application/ocsp-response' }).end(Buffer.alloc(5000)) })
  const html = createServer((_request, response) => { response.writeHead(200, { 'content-type': 'text/html' }).end('<p>ok</p>') })
  for (const server of [big, html]) {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.teardown(() => server.close())
  }
  t.same(await s.verdict(s.pki.issue('big', `http://127.0.0.1:${(big.address() as AddressInfo).port}/`)), UNAVAILABLE, 'larger than maxBytes')
  t.same(await s.verdict(s.pki.issue('html', `http://127.0.0.1:${(html.address() as AddressInfo).port}/`)), UNAVAILABLE, 'not application/ocsp-response')
  t.equal((await s.verdict(alice)).verified, true)
})
