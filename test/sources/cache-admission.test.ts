// The forwarded-certificate cache admits a certificate on its second sighting: a fleet of certificates that each
// call once must not fill the cache (and the old generation) with entries nobody reads again.
import t from 'tap'
import Fastify from 'fastify'
import { Doorkeeper } from '../../lib/sources/proxy.js'
import fastifyClientCert from '../../lib/index.js'
import { getCorpus, type LeafName } from '../helpers/certs.js'

async function forwarded (leaf: LeafName, verify = 'SUCCESS'): Promise<Record<string, string>> {
  return { 'x-ssl-client-cert': encodeURIComponent((await getCorpus()).leaves[leaf].certPem), 'x-ssl-client-verify': verify }
}

t.test('Doorkeeper: a key is admitted the second time it is offered, until another key takes its slot', async (t) => {
  const door = new Doorkeeper(10)
  t.equal(door.seenBefore('a'), false, 'first sighting')
  t.equal(door.seenBefore('a'), true, 'second sighting')
  t.equal(door.seenBefore('a'), true, 'and after')
  t.equal(door.seenBefore('b'), false, 'another key is its own')
  // Find a key that lands in the slot of 'a' (1024 slots: a few thousand tries at most), and see it take the slot.
  const small = new Doorkeeper(1)
  small.seenBefore('a')
  let rival = 0
  for (; rival < 1_000_000; rival++) {
    const probe = new Doorkeeper(1)
    probe.seenBefore('a')
    probe.seenBefore(`k${rival}`)
    if (!probe.seenBefore('a')) break
  }
  t.ok(rival < 1_000_000, `k${rival} shares the slot of 'a'`)
  small.seenBefore(`k${rival}`)
  t.equal(small.seenBefore('a'), false, 'a key whose slot was taken is a first sighting again')
})

t.test('Doorkeeper: the table grows with the cache, from 1024 to 2^20 slots', async (t) => {
  t.same([1, 10, 512, 10_000, 100_000, 1e8].map((entries) => new Doorkeeper(entries).slots), [1024, 1024, 1024, 32_768, 262_144, 1_048_576])
  // With 32,768 slots, a key offered again after 2,000 others is nearly always still there (deterministic keys).
  const door = new Doorkeeper(10_000)
  let kept = 0
  for (let round = 0; round < 50; round++) {
    door.seenBefore(`first-${round}`)
    for (let i = 0; i < 2000; i++) door.seenBefore(`r${round}-${i}`)
    if (door.seenBefore(`first-${round}`)) kept++
  }
  t.ok(kept >= 40, `${kept} of 50 recognized`)
})

t.test('through the plugin: a certificate seen once is not cached, seen twice it is, refused ones never', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'nginx', trust: ['127.0.0.1'] } })
  app.get('/', async (request) => request.clientCert?.commonName)
  const send = async (headers: Record<string, string>): Promise<number> => (await app.inject({ url: '/', remoteAddress: '127.0.0.1', headers })).statusCode
  const alice = await forwarded('alice')
  t.equal(await send(alice), 200)
  t.equal(app.clientCert.stats().certificates.entries, 0, 'one sighting: not kept')
  t.equal(await send(alice), 200)
  t.equal(app.clientCert.stats().certificates.entries, 1, 'the second: kept')
  const failed = await forwarded('bob', 'FAILED:certificate has expired')
  for (let i = 0; i < 3; i++) t.equal(await send(failed), 401)
  t.equal(app.clientCert.stats().certificates.entries, 1, 'a certificate the proxy refused is never kept, however often seen')
})
