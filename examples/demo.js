// `npm run demo`: a direct-TLS Fastify server that authenticates by client certificate.
// Generates a throwaway CA and client certificate, calls the server once with it, prints the identity,
// then keeps serving so you can try it with curl (Ctrl-C stops it; `--once` exits after the first call).
import Fastify from 'fastify'
import fastifySensible from '@fastify/sensible'
import { rmSync } from 'node:fs'
import { Agent, request } from 'undici'
import fastifyClientCert from 'fastify-client-cert'
import { makeDevCertificates } from './dev-certs.js'

const once = process.argv.includes('--once')
const certs = makeDevCertificates()
const cleanup = () => rmSync(certs.dir, { recursive: true, force: true })

const app = Fastify({
  https: { key: certs.server.key, cert: certs.server.cert, ca: certs.ca, requestCert: true, rejectUnauthorized: false }
})
// httpErrors and reply helpers: an error made for the client keeps its status and message (see /admin).
await app.register(fastifySensible)

// The plugin is registered once per context: here for every route of this one...
await app.register(async function routes (api) {
  await api.register(fastifyClientCert, { required: true })

  api.get('/', async (request) => ({
    hello: request.clientCert.commonName,
    subject: request.clientCert.subject,
    issuer: request.clientCert.issuer,
    email: request.clientCert.san.email,
    serialNumber: request.clientCert.serialNumber,
    fingerprint256: request.clientCert.fingerprint256,
    notAfter: request.clientCert.notAfter
  }))
  api.get('/public', { config: { clientCert: { required: false } } }, async (request) => ({
    certificate: request.clientCert === null ? 'none' : request.clientCert.subject
  }))
})

// ...and in a sibling context with an authorize hook, whose sensible forbidden() answers 403 with its message.
await app.register(async function admin (api) {
  await api.register(fastifyClientCert, {
    required: true,
    authorize: async (identity) => {
      const platform = identity.subjectRDNs.some((rdn) => rdn.some(({ type, value }) => type === 'OU' && value === 'Platform'))
      if (!platform) throw api.httpErrors.forbidden(`${identity.commonName} is not in OU=Platform`)
      return true
    }
  })
  api.get('/admin', async () => ({ admin: true }))
})

// PORT: where the server listens (default: any free port).
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) })
const { port } = app.server.address()
const base = `https://localhost:${port}`

const agent = new Agent({ connect: { ca: certs.ca, cert: certs.client.cert, key: certs.client.key } })
const response = await request(base + '/', { dispatcher: agent })
console.log(`GET ${base}/ with the client certificate -> ${response.statusCode}`)
console.log(JSON.stringify(await response.body.json(), null, 2))
const admin = await request(base + '/admin', { dispatcher: agent })
console.log(`\nGET ${base}/admin with the client certificate -> ${admin.statusCode} ${JSON.stringify(await admin.body.json())}`)
const anonymous = new Agent({ connect: { ca: certs.ca } })
const refused = await request(base + '/', { dispatcher: anonymous })
console.log(`\nGET ${base}/ without a certificate -> ${refused.statusCode} ${JSON.stringify(await refused.body.json())}`)
await agent.close()
await anonymous.close()

if (once) {
  await app.close()
  cleanup()
} else {
  console.log('\nTry it by hand:')
  console.log(`  curl --cacert ${certs.caPath} --cert ${certs.clientCertPath} --key ${certs.clientKeyPath} ${base}/`)
  console.log(`  curl --cacert ${certs.caPath} --cert ${certs.clientCertPath} --key ${certs.clientKeyPath} ${base}/admin`)
  console.log(`  curl --cacert ${certs.caPath} ${base}/public`)
  console.log('\nCtrl-C stops the server.')
  const stop = async () => {
    await app.close()
    cleanup()
    process.exit(0)
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
