// Attacker: a direct TLS client whose certificate TLS refuses, built to make the plugin work anyway (thousands of names).
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fastifyClientCert, identityFromCertificate } from '../../lib/index.js'
import { getCorpus } from '../helpers/certs.js'
import { request } from 'undici'
import { clientAgent, rawRequest, startTlsApp, toJSON } from '../helpers/server.js'

const work = mkdtempSync(join(tmpdir(), 'client-cert-hostile-tls-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))

/** A self-signed client certificate carrying `count` DNS names (about 19 bytes of DER each). */
function manySans (count: number): { certPem: string, keyPem: string } {
  const names = Array.from({ length: count }, (_, i) => `DNS:n${String(i).padStart(4, '0')}.example.net`)
  writeFileSync(join(work, 'many.ext'), `extendedKeyUsage=clientAuth\nsubjectAltName=${names.join(',')}\n`)
  const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: work, stdio: 'pipe' })
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-noenc', '-subj', '/CN=many-names', '-keyout', 'many.key', '-out', 'many.csr'])
  openssl(['x509', '-req', '-in', 'many.csr', '-signkey', 'many.key', '-days', '2', '-extfile', 'many.ext', '-out', 'many.crt'])
  return { certPem: readFileSync(join(work, 'many.crt'), 'utf8'), keyPem: readFileSync(join(work, 'many.key'), 'utf8') }
}

/** Counts every read of a name-bearing X509Certificate getter in this process (the server runs in it). */
function spyOnNames (t: Test): Record<string, number> {
  const reads: Record<string, number> = {}
  for (const key of ['subject', 'issuer', 'subjectAltName', 'infoAccess'] as const) {
    const descriptor = Object.getOwnPropertyDescriptor(X509Certificate.prototype, key)!
    reads[key] = 0
    Object.defineProperty(X509Certificate.prototype, key, {
      ...descriptor,
      get: function spied (this: X509Certificate) {
        reads[key]!++
        return descriptor.get!.call(this)
      }
    })
    t.teardown(() => { Object.defineProperty(X509Certificate.prototype, key, descriptor) })
  }
  return reads
}

t.test('a self-signed certificate with 3,000 SANs on a required route: 401, and its names are never parsed', async (t) => {
  const many = manySans(3000)
  t.ok(new X509Certificate(many.certPem).raw.length > 50_000, 'a certificate of more than 50 KB')
  const { app, port } = await startTlsApp()
  t.teardown(() => app.close())
  const reads = spyOnNames(t)
  const refused = await rawRequest(port, '/whoami', { cert: many.certPem, key: many.keyPem })
  t.equal(refused.status, 401)
  t.equal(JSON.parse(refused.body).code, 'FST_CLIENT_CERT_INVALID')
  t.same(reads, { subject: 0, issuer: 0, subjectAltName: 0, infoAccess: 0 }, 'no name was read')

  // An optional route does need the names, and gets all of them.
  const optional = await rawRequest(port, '/maybe', { cert: many.certPem, key: many.keyPem })
  const identity = JSON.parse(optional.body).clientCert
  t.equal(identity.verified, false)
  t.equal(identity.verifyError, 'DEPTH_ZERO_SELF_SIGNED_CERT')
  t.equal(identity.san.dns.length, 3000)
  // Names and plain SANs are read from the DER by the project's reader now, never through Node's text getters.
  t.same(reads, { subject: 0, issuer: 0, subjectAltName: 0, infoAccess: 0 }, 'the optional route read them from the DER')
})

t.test('the identity of a refused certificate, left unread, reads exactly like a parsed one when asked', async (t) => {
  const corpus = await getCorpus()
  const seen: unknown[] = []
  const { app, port } = await startTlsApp({
    routes: (app) => {
      app.addHook('onResponse', async (request) => { seen.push(request.clientCert) })
      app.get('/whoami', async () => 'never')
    }
  })
  t.teardown(() => app.close())
  const leaf = corpus.leaves.untrusted
  t.equal((await rawRequest(port, '/whoami', { cert: leaf.certPem, key: leaf.keyPem })).status, 401)
  const expected = identityFromCertificate(leaf.certPem, { verified: false, verifyError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' })
  t.same(JSON.parse(JSON.stringify(toJSON(seen[0]))), JSON.parse(JSON.stringify(toJSON(expected))), 'same fields, same order, same values')
  t.same(Object.keys(seen[0] as object), Object.keys(expected))
  t.ok(Object.isFrozen(seen[0]))
  t.equal((seen[0] as { certificate: X509Certificate }).certificate.fingerprint256, expected.fingerprint256)
})

t.test('the unread identity of a certificate whose names cannot be read says null for them', async (t) => {
  const seen: Array<Record<string, unknown>> = []
  const app = Fastify()
  // Stands in for a TLS socket (inject has none) whose certificate the codecs cannot read.
  app.addHook('onRequest', async (request) => {
    const socket = request.raw.socket as unknown as Record<string, unknown>
    socket.encrypted = true
    socket.getProtocol = () => 'TLSv1.3'
    socket.getPeerX509Certificate = () => ({ serialNumber: '01', fingerprint256: 'AB' })
  })
  app.addHook('onResponse', async (request) => { seen.push({ ...request.clientCert }) })
  await app.register(fastifyClientCert, { mode: 'auto', proxy: { preset: 'nginx', trust: ['192.0.2.1'] } })
  app.get('/whoami', async () => 'never')
  t.teardown(() => app.close())
  t.equal((await app.inject('/whoami')).statusCode, 401)
  t.match(seen[0], { verified: false, verifyError: 'TLS_HANDSHAKE_UNSEEN', subject: null, san: null, serialNumber: '01', fingerprint256: 'AB' })
})

t.test('on one connection, an optional route after a refusal gets the identity built as always', async (t) => {
  const seen: unknown[] = []
  const { app, url } = await startTlsApp({
    routes: (app) => {
      app.get('/whoami', async () => 'never')
      app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => {
        seen.push(request.clientCert)
        return 'ok'
      })
    }
  })
  t.teardown(() => app.close())
  const agent = await clientAgent('untrusted')
  t.teardown(() => agent.close())
  t.equal((await request(url + '/whoami', { dispatcher: agent })).statusCode, 401)
  t.equal((await request(url + '/maybe', { dispatcher: agent })).statusCode, 200)
  t.equal((await request(url + '/whoami', { dispatcher: agent })).statusCode, 401)
  const identity = seen[0] as Record<string, unknown>
  t.equal(Object.getOwnPropertyDescriptor(identity, 'subject')?.value, 'CN=alice,O=Example Corp,C=US', 'plain data, as composeIdentity builds it')
  t.match(identity, { verified: false, verifyError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' })
})
