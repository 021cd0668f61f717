// Fastify serving with the SVID a SPIRE agent keeps rewriting (see rotate.js), and trusting its bundle: the
// plugin watches the three files and swaps them in without a restart.
// Usage: node rotate.js spire & node server.js spire
//   curl --cacert spire/bundle.pem --cert spire/client/svid.pem --key spire/client/svid_key.pem https://localhost:8443/admin
import Fastify from 'fastify'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import fastifyClientCert from 'fastify-client-cert'

const dir = process.argv[2] ?? 'spire'
const file = (name) => join(dir, name)

const app = Fastify({
  logger: true,
  https: {
    key: readFileSync(file('svid_key.pem')),
    cert: readFileSync(file('svid.pem')),
    ca: readFileSync(file('bundle.pem')),
    requestCert: true,
    rejectUnauthorized: false
  }
})
await app.register(fastifyClientCert, {
  watch: {
    https: { key: file('svid_key.pem'), cert: file('svid.pem'), ca: file('bundle.pem') },
    spiffe: { bundles: { 'example.org': file('bundle.pem') } }
  }
})
app.get('/admin', { config: { clientCert: { allow: { spiffe: ['spiffe://example.org/ns/admin/*'] } } } }, async (request) => {
  return { caller: request.clientCert.spiffeId, issuer: request.clientCert.issuer }
})
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 8443) })
