// Attacker: someone who holds a CA's private key (or its certificate, behind a proxy that does not verify)
// and presents the CA certificate itself as a user's. Direct TLS refuses it (OpenSSL's sslclient purpose);
// the app-side `proxy.ca` check must refuse it too, never admit the CA as a user.
import t from 'tap'
import Fastify from 'fastify'
import { fastifyClientCert } from '../../lib/index.js'
import { getCorpus } from '../helpers/certs.js'

const trusted = '127.0.0.1'

t.test('a CA certificate forwarded as the user is not verified by proxy.ca (caddy, azure)', async (t) => {
  const corpus = await getCorpus()
  const der = (pem: string): string => Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64').toString('base64')
  for (const [preset, header] of [['caddy', 'x-ssl-client-cert'], ['azure', 'x-arr-clientcert']] as const) {
    const app = Fastify()
    await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset, trust: [trusted], ca: [corpus.root.certPem, corpus.intermediate.certPem] } })
    app.get('/whoami', async (request) => ({ subject: request.clientCert?.subject, verified: request.clientCert?.verified }))
    app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => ({
      verified: request.clientCert?.verified, verifyError: request.clientCert?.verifyError
    }))
    for (const [name, pem] of [['intermediate', corpus.intermediate.certPem], ['root', corpus.root.certPem]] as const) {
      const headers = { [header]: der(pem) }
      const required = await app.inject({ url: '/whoami', remoteAddress: trusted, headers })
      t.equal(required.statusCode, 401, `${preset}: the ${name} CA as the user is refused`)
      t.equal(required.json().code, 'FST_CLIENT_CERT_INVALID')
      const optional = await app.inject({ url: '/maybe', remoteAddress: trusted, headers })
      t.same(optional.json(), { verified: false, verifyError: 'INVALID_PURPOSE' }, `${preset}: ${name}: why, as OpenSSL says it`)
    }
    const alice = await app.inject({ url: '/whoami', remoteAddress: trusted, headers: { [header]: der(corpus.leaves.alice.certPem) } })
    t.equal(alice.statusCode, 200, `${preset}: a user's certificate through the same check still passes`)
    await app.close()
  }
})
