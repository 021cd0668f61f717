// Trust that rotates under load: the server certificate, the client CA (the old one retired, a new one issuing
// clients) and the CRLs rotate every second through Kubernetes-style `..data` symlink swaps while clients keep
// requesting. Clients holding current certificates never fail; clients of a retired CA, and revoked ones, are
// refused once the swap is in force, on connections opened before it too; a corrupt swap never takes effect.
import t from 'tap'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from 'node:tls'
import { Agent, request } from 'undici'
import { fastifyClientCert } from '../../lib/index.js'
import { makeCrl } from '../helpers/crl.js'
import { make, SecretVolume, type Made } from '../helpers/rotation.js'

t.setTimeout(240_000)

const dir = mkdtempSync(join(tmpdir(), 'client-cert-rotation-load-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const pkiDir = join(dir, 'pki')
mkdirSync(pkiDir)

const STEPS = 9
const serverRoot = make(pkiDir, 'serverRoot', null, 'ca')
// Step k serves servers[k] and trusts clientCas[k] and clientCas[k + 1], retiring clientCas[k - 1]; clients[k] is
// current from just before swap k (trusted on both sides of it); revoked[k] is revoked by the CRL of step k.
const servers: Made[] = []
const clientCas: Made[] = []
const clients: Made[] = []
const revoked: Made[] = []
for (let k = 0; k <= STEPS + 1; k++) {
  servers.push(make(pkiDir, `server${k}`, serverRoot, 'server'))
  clientCas.push(make(pkiDir, `clientCa${k}`, null, 'ca'))
  clients.push(make(pkiDir, `client${k}`, clientCas[k]!, 'client'))
  revoked.push(make(pkiDir, `revoked${k}`, clientCas[k]!, 'client'))
}

function step (k: number): Record<string, string> {
  return {
    'tls.key': servers[k]!.keyPem,
    'tls.crt': servers[k]!.certPem,
    'ca.crt': clientCas[k]!.certPem + clientCas[k + 1]!.certPem,
    // A fresh CRL of each CA in force: the older one's now lists revoked[k].
    'crl.pem': makeCrl(clientCas[k]!, [revoked[k]!.certPath]) + makeCrl(clientCas[k + 1]!, [])
  }
}

interface Answer { status: number, body: any }

function agentFor (client: Made | null, connections = 1): Agent {
  return new Agent({
    connect: { ca: serverRoot.certPem, servername: 'localhost', ...(client === null ? {} : { cert: client.certPem, key: client.keyPem }) },
    connections
  })
}

async function once (port: number, client: Made, path = '/whoami'): Promise<Answer> {
  const agent = agentFor(client)
  try {
    return await ask(port, agent, path)
  } finally {
    await agent.close()
  }
}

async function ask (port: number, agent: Agent, path: string, reset = false): Promise<Answer> {
  const response = await request(`https://localhost:${port}${path}`, { dispatcher: agent, reset })
  return { status: response.statusCode, body: await response.body.json() }
}

async function served (port: number): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: serverRoot.certPem }, () => {
      resolve(socket.getPeerX509Certificate()!.fingerprint256)
      socket.destroy()
    })
    socket.on('error', reject)
  })
}

async function startApp (volume: SecretVolume, logs: Array<Record<string, unknown>>, crl = true): Promise<{ app: FastifyInstance, port: number }> {
  const app = Fastify({
    logger: { level: 'warn', stream: { write: (line: string) => { logs.push(JSON.parse(line)) } } },
    https: { key: servers[0]!.keyPem, cert: servers[0]!.certPem, ca: clientCas[0]!.certPem, requestCert: true, rejectUnauthorized: false }
  } as unknown as FastifyServerOptions) as unknown as FastifyInstance
  await app.register(fastifyClientCert, {
    watch: {
      https: { key: volume.path('tls.key'), cert: volume.path('tls.crt'), ca: volume.path('ca.crt') },
      ...(crl ? { crl: volume.path('crl.pem') } : {})
    }
  })
  app.get('/whoami', async (request) => ({ cn: request.clientCert!.commonName }))
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => ({ verifyError: request.clientCert?.verifyError ?? null }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, port: (app.server.address() as { port: number }).port }
}

async function until (what: string, check: () => Promise<boolean>, timeoutMs = 5000): Promise<number> {
  const start = Date.now()
  for (;;) {
    if (await check()) return Date.now() - start
    if (Date.now() - start > timeoutMs) throw new Error(`not in force after ${timeoutMs} ms: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

t.test('a client of a retired CA keeps no access through a connection opened before the rotation', async (t) => {
  const volume = new SecretVolume(join(dir, 'retired'), step(0))
  const logs: Array<Record<string, unknown>> = []
  // Without CRLs: their path check would refuse the retired chain for its own reason (UNABLE_TO_GET_CRL).
  const { app, port } = await startApp(volume, logs, false)
  t.teardown(() => app.close())
  const old = agentFor(clients[0]!)
  t.teardown(() => old.close())
  t.equal((await ask(port, old, '/whoami')).status, 200, 'the connection is opened and verified')
  volume.swap(step(1))
  await until('step 1', async () => (await once(port, clients[2]!)).status === 200)
  t.equal((await once(port, clients[0]!)).status, 401, 'a new connection of the retired CA')
  t.same(await ask(port, old, '/maybe'), { status: 200, body: { verifyError: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' } }, 'its open connection is judged by the CAs in force')
  t.same((await ask(port, old, '/whoami')).status, 401)
})

t.test('rotation under load: server certificate, client CA and CRL every second through ..data swaps', async (t) => {
  const volume = new SecretVolume(join(dir, 'load'), step(0))
  const logs: Array<Record<string, unknown>> = []
  const { app, port } = await startApp(volume, logs)
  t.teardown(() => app.close())

  // The certificate clients hold now; a loop starts each request with the current one.
  let current = 0
  const run = { stop: false }
  const failures: string[] = []
  let requests = 0
  // Per loop: the certificate its request in flight started with (-1: idle).
  const inFlight: number[] = []

  const loop = async (index: number, keepAlive: boolean): Promise<void> => {
    let holding = current
    let agent = agentFor(clients[holding]!, 2)
    while (!run.stop) {
      if (holding !== current) {
        // A client given a new certificate opens new connections with it, as an SVID-rotating workload does.
        const previous = agent
        holding = current
        agent = agentFor(clients[holding]!, 2)
        await previous.close()
      }
      inFlight[index] = holding
      try {
        const answer = await ask(port, agent, '/whoami', !keepAlive)
        requests++
        if (answer.status !== 200 || answer.body.cn !== `client${holding}`) failures.push(`${answer.status} client${holding}`)
      } catch (error) {
        requests++
        failures.push(`client${holding}: ${(error as Error).message}`)
      }
      inFlight[index] = -1
    }
    await agent.close()
  }
  const loops = [loop(0, true), loop(1, true), loop(2, false), loop(3, false)]

  const effect: number[] = []
  let retiredRefused = 0
  let revokedRefused = 0
  let stale = agentFor(clients[0]!)
  t.equal((await ask(port, stale, '/whoami')).status, 200)
  const started = Date.now()
  for (let k = 1; k <= STEPS; k++) {
    // Clients move to the certificate trusted before and after this swap, and finish what they started with the old one.
    current = k
    await until('clients to move on', async () => inFlight.every((held) => held !== k - 1))
    const staleBefore = await ask(port, stale, '/whoami')
    t.equal(staleBefore.status, 200, `step ${k}: the connection of client${k - 1} is verified before the swap`)
    const swappedAt = Date.now()
    volume.swap(step(k))
    await until(`step ${k}`, async () => (await once(port, clients[k + 1]!)).status === 200)
    effect.push(Date.now() - swappedAt)
    t.equal(await served(port), servers[k]!.x509.fingerprint256, `step ${k}: new handshakes get server${k}`)
    const retired = await once(port, clients[k - 1]!)
    const staleAfter = await ask(port, stale, '/whoami')
    if (retired.status === 401 && staleAfter.status === 401) retiredRefused++
    if ((await once(port, revoked[k]!)).status === 401) revokedRefused++
    await stale.close()
    stale = agentFor(clients[k]!)
    t.equal((await ask(port, stale, '/whoami')).status, 200)

    if (k === 5) {
      // A corrupt swap between two good ones: a certificate that is not the key's, and a CRL that does not parse.
      const bad = { ...step(k + 1), 'tls.key': servers[k]!.keyPem, 'crl.pem': 'not a CRL' }
      volume.swap(bad)
      await until('the refusal to be logged', async () => logs.some((line) => line.msg === 'fastify-client-cert: rotated files refused; the material in force stays'))
      t.equal(await served(port), servers[k]!.x509.fingerprint256, 'the corrupt swap never takes effect: same certificate')
      t.equal((await once(port, clients[k + 2]!)).status, 401, 'nor its CA')
      t.equal((await once(port, clients[k + 1]!)).status, 200)
      volume.swap(step(k))
    }
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, started + k * 1000 - Date.now())))
  }
  run.stop = true
  await Promise.all(loops)
  await stale.close()
  const elapsed = Date.now() - started
  const sorted = [...effect].sort((a, b) => a - b)
  t.comment(`rotation under load: ${requests} requests in ${elapsed} ms, ${failures.length} failed; ${STEPS} swaps, ` +
    `swap-to-effect min ${sorted[0]} ms, median ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted[sorted.length - 1]} ms`)
  t.same(failures, [], 'no request of a client holding a current certificate failed')
  t.ok(requests > 100, `${requests} requests`)
  t.equal(retiredRefused, STEPS, 'the retired CA refused after every swap, on new and open connections')
  t.equal(revokedRefused, STEPS, 'every newly revoked certificate refused after its swap')
  t.ok(sorted[sorted.length - 1]! < 5000, 'every swap in force within 5 s')
  t.equal(logs.filter((line) => line.msg === 'fastify-client-cert: rotated files refused; the material in force stays').length, 1, 'the corrupt swap logged once')
})
