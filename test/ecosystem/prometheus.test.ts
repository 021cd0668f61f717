import t, { type Test } from 'tap'
import { X509Certificate } from 'node:crypto'
import { hasSubscribers } from 'node:diagnostics_channel'
import type { FastifyInstance } from 'fastify'
import { Agent, request } from 'undici'
import { getCorpus, type LeafName } from '../helpers/certs.js'

// The example is plain JavaScript that imports the built package by name, as its users' apps would.
type Build = (options: { https: { key: string, cert: string, ca: string } }) => FastifyInstance
const appUrl = new URL('../../examples/prometheus/app.js', import.meta.url).href
const { build } = await import(appUrl) as { build: Build }

const DAY = 24 * 3600_000

async function start (t: Test): Promise<string> {
  const corpus = await getCorpus()
  const server = corpus.leaves.serverauth
  const app = build({ https: { key: server.keyPem, cert: server.chainPem, ca: corpus.caPem } })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  return `https://localhost:${(app.server.address() as { port: number }).port}`
}

async function call (t: Test, url: string, leaf: LeafName | null): Promise<{ status: number, body: string, type: string }> {
  const corpus = await getCorpus()
  const credentials = leaf === null ? {} : { cert: corpus.leaves[leaf].certPem, key: corpus.leaves[leaf].keyPem }
  const agent = new Agent({ connect: { ca: corpus.caPem, servername: 'localhost', ...credentials } })
  t.teardown(() => agent.close())
  const response = await request(url, { dispatcher: agent })
  return { status: response.statusCode, body: await response.body.text(), type: String(response.headers['content-type']) }
}

t.test('decisions by outcome and reason, and days left on the presented certificates, on /metrics', async (t) => {
  const corpus = await getCorpus()
  const base = await start(t)
  t.equal((await call(t, base + '/', 'alice')).status, 200)
  t.equal((await call(t, base + '/', 'bob')).status, 200)
  t.equal((await call(t, base + '/admin', 'alice')).status, 403)
  t.equal((await call(t, base + '/', null)).status, 401)
  t.equal((await call(t, base + '/', 'untrusted')).status, 401)
  t.equal((await call(t, base + '/', 'expired')).status, 401)
  t.equal((await call(t, base + '/hello', null)).body, '{"certificate":"none"}')
  t.equal((await call(t, base + '/hello', 'expired')).body, '{"certificate":"not verified"}')
  t.equal((await call(t, base + '/hello', 'alice')).body, '{"certificate":"verified"}')

  const scraped = await call(t, base + '/metrics', null)
  t.equal(scraped.status, 200, '/metrics needs no certificate')
  t.match(scraped.type, /^text\/plain; version=0\.0\.4/)
  const lines = scraped.body.split('\n')
  const counter = lines.filter((line) => line.startsWith('client_cert_decisions_total{'))
  t.same(counter.sort(), [
    'client_cert_decisions_total{outcome="admitted",reason="no_certificate"} 1',
    'client_cert_decisions_total{outcome="admitted",reason="unverified"} 1',
    'client_cert_decisions_total{outcome="admitted",reason="verified"} 3',
    'client_cert_decisions_total{outcome="refused",reason="FST_CLIENT_CERT_FORBIDDEN"} 1',
    'client_cert_decisions_total{outcome="refused",reason="FST_CLIENT_CERT_INVALID"} 2',
    'client_cert_decisions_total{outcome="refused",reason="FST_CLIENT_CERT_MISSING"} 1'
  ], 'the scrape itself (clientCert: false) is no decision')

  // Only verified certificates have dates in the messages: alice three times and bob once.
  const daysLeft = (leaf: LeafName) => (Date.parse(new X509Certificate(corpus.leaves[leaf].certPem).validTo) - Date.now()) / DAY
  const observed = [daysLeft('alice'), daysLeft('alice'), daysLeft('alice'), daysLeft('bob')]
  t.ok(lines.includes('client_cert_expiry_days_count 4'))
  for (const bound of [1, 7, 14, 30, 90, 365]) {
    t.ok(lines.includes(`client_cert_expiry_days_bucket{le="${bound}"} ${observed.filter((days) => days <= bound).length}`), `bucket ${bound}`)
  }
  t.ok(lines.includes('client_cert_expiry_days_bucket{le="+Inf"} 4'))
  const sum = Number(lines.find((line) => line.startsWith('client_cert_expiry_days_sum '))!.split(' ')[1])
  t.ok(Math.abs(sum - observed.reduce((a, b) => a + b, 0)) < 0.01, 'the sum is the days left, seen at each request')
})

t.test('closing the app unsubscribes from the channel', async (t) => {
  const corpus = await getCorpus()
  const server = corpus.leaves.serverauth
  const app = build({ https: { key: server.keyPem, cert: server.chainPem, ca: corpus.caPem } })
  await app.ready()
  t.ok(hasSubscribers('fastify-client-cert:decision'))
  await app.close()
  t.notOk(hasSubscribers('fastify-client-cert:decision'))
})
