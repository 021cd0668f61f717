// @fastify/rate-limit keyed by the client certificate, over direct TLS: every client connects from 127.0.0.1,
// so only a certificate key can tell them apart.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import { request } from 'undici'
import { fastifyClientCert } from '../../lib/index.js'
import { getCorpus, type LeafName } from '../helpers/certs.js'
import { clientAgent } from '../helpers/server.js'

// The key docs/ecosystem.md shows: a verified certificate's fingerprint, else the address. An unverified certificate (anyone
// can mint thousands) must not buy a budget of its own.
function byCertificate (request: FastifyRequest): string {
  const cert = request.clientCert
  return cert?.verified === true && cert.fingerprint256 !== null ? `cert:${cert.fingerprint256}` : `ip:${request.ip}`
}

type Order = 'fastify-client-cert first' | '@fastify/rate-limit first'

async function start (t: Test, order: Order): Promise<string> {
  const corpus = await getCorpus()
  const app = Fastify({
    https: { key: corpus.leaves.serverauth.keyPem, cert: corpus.leaves.serverauth.chainPem, ca: corpus.caPem, requestCert: true, rejectUnauthorized: false }
  } as unknown as FastifyServerOptions) as unknown as FastifyInstance
  const limiter = { max: 2, timeWindow: '1 minute', keyGenerator: byCertificate }
  if (order === '@fastify/rate-limit first') await app.register(rateLimit, limiter)
  await app.register(fastifyClientCert)
  if (order === 'fastify-client-cert first') await app.register(rateLimit, limiter)
  app.get('/limited', async (request) => ({ subject: request.clientCert?.subject }))
  app.get('/limited-optional', { config: { clientCert: { required: false } } }, async () => ({ ok: true }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  return `https://localhost:${(app.server.address() as { port: number }).port}`
}

async function statuses (url: string, leaf: LeafName | null, count: number): Promise<number[]> {
  // A new connection each time: the budget must follow the certificate, not the socket.
  const out: number[] = []
  for (let i = 0; i < count; i++) {
    const dispatcher = await clientAgent(leaf, { localAddress: '127.0.0.1' })
    try {
      const response = await request(url, { dispatcher })
      await response.body.dump()
      out.push(response.statusCode)
    } finally {
      await dispatcher.close()
    }
  }
  return out
}

for (const order of ['fastify-client-cert first', '@fastify/rate-limit first'] as const) {
  t.test(`two certificates from one address have separate budgets (${order})`, async (t) => {
    const url = await start(t, order)
    t.same(await statuses(`${url}/limited`, 'alice', 3), [200, 200, 429], 'alice: two, then 429')
    t.same(await statuses(`${url}/limited`, 'bob', 2), [200, 200], 'bob, same address, while alice is limited: 200')
    t.same(await statuses(`${url}/limited`, 'bob', 1), [429], 'bob over his own budget: 429')
    t.same(await statuses(`${url}/limited-optional`, null, 2), [200, 200], 'no certificate: the address has a budget of its own')
  })
}

t.test('attack: minting unverified certificates buys no budget; they share their address\'s', async (t) => {
  const url = await start(t, 'fastify-client-cert first')
  t.same(await statuses(`${url}/limited-optional`, 'untrusted', 2), [200, 200], 'an unverified certificate on an optional route: admitted, keyed by address')
  t.same(await statuses(`${url}/limited-optional`, 'selfsigned', 1), [429], 'another unverified certificate: the same, spent, budget')
  t.same(await statuses(`${url}/limited-optional`, null, 1), [429], 'and no certificate: the same budget')
  t.same(await statuses(`${url}/limited-optional`, 'alice', 1), [200], 'a verified certificate keeps its own')
})
