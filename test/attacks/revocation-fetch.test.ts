// Revocation sources as an attacker sees them: a distribution point URL in a certificate nobody verified (aim the
// server at any address), and a CRL signed by a key whose certificate may not sign CRLs.
import t from 'tap'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { connect as tlsConnect } from 'node:tls'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { fastifyClientCert } from '../../lib/index.js'
import { getCorpus } from '../helpers/certs.js'
import { defaultRoutes } from '../helpers/server.js'
import { makeCrl } from '../helpers/crl.js'
import { makeDpPki, startCrlServer } from '../helpers/dp-pki.js'

t.setTimeout(120_000)

t.test('an unverified certificate whose distribution point names a server the attacker watches: zero requests reach it', async (t) => {
  const corpus = await getCorpus()
  const trusted = makeDpPki()
  const rogue = makeDpPki('Rogue Root')
  t.teardown(() => { trusted.cleanup(); rogue.cleanup() })
  const watched = await startCrlServer()
  t.teardown(watched.close)
  // Issued by a CA the server does not trust; its CDP is the attacker's server.
  const mallory = rogue.issue('mallory', [`crlDistributionPoints = URI:${watched.url}/steer.crl`])
  const app = Fastify({
    https: { key: corpus.leaves.serverauth.keyPem, cert: corpus.leaves.serverauth.chainPem, ca: trusted.root.certPem, requestCert: true, rejectUnauthorized: false }
  } as unknown as FastifyServerOptions) as unknown as FastifyInstance
  await app.register(fastifyClientCert, { revocation: { distributionPoints: { mode: 'soft-fail' } } })
  defaultRoutes(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const port = (app.server.address() as { port: number }).port
  // Its rogue root sent along, so that a path to an issuer whose key signed it can be built from what was sent.
  const chain = mallory.certPem + rogue.root.certPem
  const dispatcher = new Agent({ connect: { ca: corpus.caPem, servername: 'localhost', cert: chain, key: mallory.keyPem } })
  t.teardown(() => dispatcher.close())
  const whoami = await request(`https://localhost:${port}/whoami`, { dispatcher })
  t.equal(whoami.statusCode, 401)
  t.equal((await whoami.body.json() as { code: string }).code, 'FST_CLIENT_CERT_INVALID')
  const maybe = await request(`https://localhost:${port}/maybe`, { dispatcher })
  t.equal((await maybe.body.json() as { clientCert: { verified: boolean } }).clientCert.verified, false)
  // A bare handshake too (the plugin starts downloads when a verified handshake completes).
  await new Promise<void>((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: corpus.caPem, cert: chain, key: mallory.keyPem }, () => {
      socket.end()
      resolve()
    })
  })
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(watched.counts.requests, 0, 'the attacker-chosen URL was never fetched')

  // Behind a proxy with proxy.ca: a forwarded certificate that does not verify is not fetched for either.
  const proxied = Fastify()
  t.teardown(() => proxied.close())
  await proxied.register(fastifyClientCert, {
    mode: 'proxy',
    proxy: { trust: '127.0.0.1', headers: { cert: { name: 'x-cert', encoding: 'pem-urlencoded' }, chain: { name: 'x-chain', encoding: 'pem-urlencoded' }, verified: 'present' }, ca: trusted.root.certPem },
    revocation: { distributionPoints: { mode: 'soft-fail' } }
  })
  defaultRoutes(proxied)
  t.equal((await proxied.inject({ url: '/whoami', headers: { 'x-cert': encodeURIComponent(mallory.certPem), 'x-chain': encodeURIComponent(rogue.root.certPem) } })).statusCode, 401)
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(watched.counts.requests, 0, 'still zero requests')
})

t.test('a CRL signed under the issuer\'s name and key by a certificate whose keyUsage lacks cRLSign does not count (CRL_SIGNATURE_FAILURE)', async (t) => {
  const corpus = await getCorpus()
  const pki = makeDpPki()
  t.teardown(pki.cleanup)
  // The intermediate's key certified again, same name, for certificate signing only (keyUsage without cRLSign).
  const run = (args: string[]): void => { execFileSync('openssl', args, { cwd: pki.dir, stdio: 'ignore' }) }
  run(['x509', '-x509toreq', '-in', corpus.intermediate.certPath, '-signkey', corpus.intermediate.keyPath, '-out', 'again.csr'])
  const extensions = join(pki.dir, 'again.ext')
  execFileSync('sh', ['-c', `printf 'basicConstraints = critical, CA:TRUE\\nkeyUsage = critical, keyCertSign, digitalSignature\\nsubjectKeyIdentifier = hash\\n' > ${extensions}`])
  run(['x509', '-req', '-in', 'again.csr', '-signkey', corpus.intermediate.keyPath, '-days', '30', '-extfile', extensions, '-out', 'again.pem'])
  const noCrlSign = readFileSync(join(pki.dir, 'again.pem'), 'latin1')
  // The CRL made with the intermediate's key lists nobody: were it to count, bob would pass.
  const crl = makeCrl(corpus.intermediate, [])
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyClientCert, {
    mode: 'proxy',
    proxy: { trust: '127.0.0.1', headers: { cert: { name: 'x-cert', encoding: 'pem-urlencoded' }, verified: 'present' }, ca: noCrlSign },
    crl
  })
  defaultRoutes(app)
  const headers = { 'x-cert': encodeURIComponent(corpus.leaves.bob.certPem) }
  t.equal((await app.inject({ url: '/whoami', headers })).statusCode, 401)
  t.match((await app.inject({ url: '/maybe', headers })).json().clientCert, { verified: false, verifyError: 'CRL_SIGNATURE_FAILURE' }, 'fails closed as for an issuer with no counting CRL')
})
