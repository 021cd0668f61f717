// One instance of a fleet (test/revocation/fleet.test.ts): a Fastify process that judges client certificates
// against the CRLs at their distribution points, in direct TLS (behind a TCP passthrough) or behind HAProxy in
// HTTP mode (the `haproxy` preset). Configured by the FLEET_MEMBER environment variable (JSON), it prints
// `listening <port>` once it listens, and closes when its standard input ends (the test went away).
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { readFileSync } from 'node:fs'
import { fastifyClientCert } from '../../lib/index.js'

interface MemberConfig {
  name: string
  mode: 'tls' | 'proxy'
  /** PEM files: the server's certificate chain and key (tls), the CA bundle of client certificates */
  cert: string
  key: string
  ca: string
  /** milliseconds between CRL downloads */
  refresh: number
}

const config = JSON.parse(process.env.FLEET_MEMBER as string) as MemberConfig
const ca = readFileSync(config.ca, 'utf8')
const revocation = { distributionPoints: { refresh: config.refresh, timeout: 5000 } }

const app = (config.mode === 'tls'
  ? Fastify({
    https: { key: readFileSync(config.key), cert: readFileSync(config.cert), ca, requestCert: true, rejectUnauthorized: false },
    // Longer than the test's polling, so a kept-alive connection stays the same one throughout.
    keepAliveTimeout: 120_000
  } as unknown as FastifyServerOptions)
  : Fastify({ keepAliveTimeout: 120_000 })) as unknown as FastifyInstance

if (config.mode === 'tls') {
  await app.register(fastifyClientCert, { revocation })
} else {
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'haproxy', trust: ['127.0.0.1'], ca }, revocation })
}

// Which instance answered, refusals included, and over which connection to it.
app.addHook('onSend', async (request, reply) => {
  reply.header('x-instance', config.name)
  reply.header('x-connection', `${request.raw.socket.remotePort ?? 0}`)
})
app.get('/', async (request) => ({ subject: request.clientCert?.subject ?? null }))
app.get('/status', { config: { clientCert: { required: false } } }, async (request) => ({ verifyError: request.clientCert?.verifyError ?? null }))

await app.listen({ host: '127.0.0.1', port: 0 })
process.stdout.write(`listening ${(app.server.address() as { port: number }).port}\n`)
process.stdin.resume()
process.stdin.once('end', () => {
  app.close().then(() => process.exit(0), () => process.exit(1))
})
