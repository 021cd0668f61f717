/**
 * Attacker: whoever controls the bytes a trusted proxy's headers carry (a proxy bug, a misconfiguration, a
 * certificate with hostile content). A bounded fuzz run over real sockets against every preset and a few
 * custom mappings (test/helpers/fuzz.ts): only 400/401/403 or a correct identity, never a 5xx, never a
 * connection dropped without an answer, never a verified identity that no genuine certificate carries.
 * Longer runs: `npm run fuzz -- --requests 1000000`.
 */
import t from 'tap'
import { randomInt } from 'node:crypto'
import type { FuzzRequest } from '../helpers/fuzz.js'

// Before the harness loads (the plugin, Fastify, the certificate corpus): on busy shared cores that alone takes a while.
t.setTimeout(180_000)
const { describeViolation, formatCounts, fuzzContext, generateRequest, judgeAnswer, runFuzz, startTargets } = await import('../helpers/fuzz.js')

// On two shared cores a run is a few seconds; FUZZ_PER_TARGET raises it locally.
const perTarget = Number(process.env.FUZZ_PER_TARGET ?? 30)
const randomSeed = randomInt(2 ** 31)
const seeds = [1, 2, randomSeed]

const running = await startTargets()
t.teardown(async () => { await Promise.all(running.map(async (r) => await r.app.close())) })

t.comment(`fuzz seeds ${seeds.join(', ')} (the last one random: replay it with npm run fuzz -- --seed ${randomSeed}), ` +
  `${perTarget} requests per target and seed, ${running.length} targets`)

const byTarget = new Map<string, Map<string, number>>()

for (const seed of seeds) {
  t.test(`seed ${seed}: every answer keeps to the oracle`, async (t) => {
    const report = await runFuzz({ seed, requests: perTarget * running.length, concurrency: 4, running })
    t.comment(`seed ${seed}: ${report.requests} requests in ${(report.ms / 1000).toFixed(1)} s (${(report.requests / (report.ms / 1000)).toFixed(0)} req/s)`)
    t.comment(`seed ${seed}: ${formatCounts(report.totals)}`)
    t.equal(report.requests, perTarget * running.length, 'the run went to its end (it stops after 10 violations)')
    t.same(report.violations.map(describeViolation), [], `no oracle violation (seed ${seed})`)
    for (const [name, counts] of report.byTarget) {
      const merged = byTarget.get(name) ?? new Map<string, number>()
      for (const [outcome, n] of counts) merged.set(outcome, (merged.get(outcome) ?? 0) + n)
      byTarget.set(name, merged)
    }
  })
}

t.test('every target was reached deep enough to admit and to refuse', async (t) => {
  t.equal(byTarget.size, running.length)
  for (const [name, counts] of byTarget) {
    t.comment(`${name}: ${formatCounts(counts)}`)
    t.ok((counts.get('200 verified') ?? 0) > 0, `${name}: some requests admitted`)
    t.ok((counts.get('400 FST_CLIENT_CERT_BAD_HEADER') ?? 0) > 0, `${name}: some headers refused as malformed`)
  }
})

t.test('the oracle itself flags what it must', async (t) => {
  const ctx = await fuzzContext('caddy+ca')
  // An unmutated request for alice on the required route: its right answer, then wrong ones.
  let request: FuzzRequest | undefined
  for (let i = 0; request === undefined; i++) {
    const r = generateRequest(1, ctx, i)
    if (r.pristine && r.genuine.name === 'alice' && r.path === '/whoami') request = r
  }
  const alice = JSON.parse(request.genuine.expected)
  const identity = { source: 'proxy', proxy: 'caddy', verified: true, verifyError: null, ...alice, der: request.genuine.der.toString('base64') }
  const answer = (status: number, body: unknown) => ({ status, headers: {}, body: JSON.stringify(body) })
  const judge = (status: number, body: unknown) => judgeAnswer(ctx, request, answer(status, body))
  t.same(judge(200, identity), { outcome: '200 verified', violation: null }, 'the genuine identity passes')
  t.match(judge(500, { code: 'FST_CLIENT_CERT_INTERNAL' }).violation, /unexpected answer 500/)
  t.match(judge(400, { code: 'FST_CLIENT_CERT_UNTRUSTED_SOURCE' }).violation, /unexpected answer 400/)
  t.match(judge(401, { code: 'FST_CLIENT_CERT_INVALID' }).violation, /unmutated headers of 'alice' refused/)
  t.match(judge(200, { ...identity, subject: 'CN=admin' }).violation, /fields differ from the forwarded certificate/)
  t.match(judge(200, { ...identity, subject: 'CN=admin', der: null }).violation, /verified without the whole certificate/)
  t.match(judge(200, { ...identity, verified: false }).violation, /required route admitted an unverified identity/)
  t.match(judge(200, null).violation, /without an identity/)
  t.same(judge(400, { statusCode: 400, error: 'Bad Request', message: 'Client Error' }), { outcome: 'parser 400', violation: null })
})
