import t from 'tap'
import Fastify from 'fastify'
import { request as httpRequest } from 'node:http'
import { connect as http2Connect } from 'node:http2'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fastifyClientCert } from '../lib/index.js'
import { getCorpus } from './helpers/certs.js'
import { toJSON } from './helpers/server.js'

t.test('a DN-only custom mapping: the fields it forwards, null for the rest', async (t) => {
  const app = Fastify()
  let resolved: unknown = null
  await app.register(fastifyClientCert, {
    mode: 'proxy',
    proxy: {
      trust: '127.0.0.1',
      headers: {
        subject: { name: 'X-Client-Subject', encoding: 'dn-rfc4514' },
        issuer: { name: 'X-Client-Issuer', encoding: 'dn-rfc4514' },
        serial: { name: 'X-Client-Serial', encoding: 'hex' },
        verified: { header: 'X-Client-Verify', success: ['SUCCESS'], none: ['NONE'] }
      }
    },
    resolveUser: async (identity) => { resolved = identity.serialNumber; return { name: identity.commonName } }
  })
  app.get('/whoami', async (request) => ({ identity: toJSON(request.clientCert), user: request.user }))
  t.teardown(() => app.close())
  const response = await app.inject({
    url: '/whoami',
    headers: {
      'x-client-subject': 'CN=dave\\, the admin,O=Example Corp',
      'x-client-issuer': 'CN=Example Intermediate CA,O=Example Corp',
      'x-client-serial': '0a:1b',
      'x-client-verify': 'SUCCESS'
    }
  })
  t.same(response.json(), {
    identity: {
      source: 'proxy',
      proxy: 'custom',
      verified: true,
      verifyError: null,
      subject: 'CN=dave\\, the admin,O=Example Corp',
      issuer: 'CN=Example Intermediate CA,O=Example Corp',
      subjectRDNs: [[{ type: 'CN', oid: '2.5.4.3', value: 'dave, the admin' }], [{ type: 'O', oid: '2.5.4.10', value: 'Example Corp' }]],
      issuerRDNs: [[{ type: 'CN', oid: '2.5.4.3', value: 'Example Intermediate CA' }], [{ type: 'O', oid: '2.5.4.10', value: 'Example Corp' }]],
      commonName: 'dave, the admin',
      san: null,
      spiffeId: null,
      serialNumber: '0A1B',
      fingerprint256: null,
      notBefore: null,
      notAfter: null,
      certificate: null
    },
    user: { name: 'dave, the admin' }
  })
  t.equal(resolved, '0A1B', 'users are cached by issuer and serial when no fingerprint is known')
})

t.test('DN-only mappings cannot be combined with proxy.ca', async (t) => {
  const corpus = await getCorpus()
  const app = Fastify()
  app.register(fastifyClientCert, {
    mode: 'proxy',
    proxy: { trust: '127.0.0.1', ca: corpus.caPem, headers: { subject: { name: 'x-s', encoding: 'dn-rfc4514' }, verified: 'present' } }
  })
  await t.rejects(app.ready(), /proxy\.ca: needs a mapping that forwards the whole certificate/)
})

t.test('Fastify on a Unix domain socket: trusted only when trust lists \'unix\'', async (t) => {
  const corpus = await getCorpus()
  const dir = mkdtempSync(join(tmpdir(), 'client-cert-unix-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const headers = { 'x-ssl-client-cert': encodeURIComponent(corpus.leaves.alice.certPem), 'x-ssl-client-verify': 'SUCCESS' }
  for (const [trust, status] of [[['unix'], 200], [['127.0.0.1'], 400]] as const) {
    const app = Fastify()
    await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'nginx', trust: [...trust] } })
    app.get('/whoami', async (request) => ({ cn: request.clientCert?.commonName }))
    const path = join(dir, `${trust[0]}.sock`)
    await app.listen({ path })
    const { statusCode, body } = await new Promise<{ statusCode: number, body: string }>((resolve, reject) => {
      httpRequest({ socketPath: path, path: '/whoami', headers }, (response) => {
        let body = ''
        response.on('data', (chunk) => { body += chunk })
        response.on('end', () => resolve({ statusCode: response.statusCode!, body }))
      }).on('error', reject).end()
    })
    t.equal(statusCode, status, `trust ${trust.join()}`)
    if (status === 200) t.same(JSON.parse(body), { cn: 'alice' })
    await app.close()
  }
})

t.test('the plugin\'s hook runs before the route\'s own onRequest hooks, which see clientCert', async (t) => {
  const corpus = await getCorpus()
  const app = Fastify({ https: { key: corpus.leaves.serverauth.keyPem, cert: corpus.leaves.serverauth.chainPem, requestCert: true } })
  await app.register(fastifyClientCert, { testing: true })
  const seen: string[] = []
  app.get('/one', { onRequest: async (request) => { seen.push('one:' + request.clientCert?.commonName) } }, async () => 'ok')
  app.get('/two', {
    onRequest: [async (request) => { seen.push('two:' + request.clientCert?.commonName) }, async () => { seen.push('two:second') }]
  }, async () => 'ok')
  t.teardown(() => app.close())
  await app.clientCert.injectAs({ certificate: corpus.leaves.alice.certPem }, '/one')
  await app.clientCert.injectAs({ certificate: corpus.leaves.bob.certPem }, '/two')
  t.equal((await app.clientCert.injectAs({ certificate: null }, '/one')).statusCode, 401)
  t.same(seen, ['one:alice', 'two:bob', 'two:second'], 'and do not run when the plugin refuses')
  const asProxy = await app.inject({ url: '/nope' })
  t.equal(asProxy.statusCode, 404, 'unknown routes are left alone')
})

t.test('reload({ ca }) for presets whose proxy verifies: replace and remove', async (t) => {
  const corpus = await getCorpus()
  const app = Fastify()
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1', ca: corpus.rogueRoot.certPem } })
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => ({ verified: request.clientCert?.verified, verifyError: request.clientCert?.verifyError }))
  t.teardown(() => app.close())
  const headers = { 'x-ssl-client-cert': encodeURIComponent(corpus.leaves.alice.certPem), 'x-ssl-client-verify': 'SUCCESS' }
  t.same((await app.inject({ url: '/maybe', headers })).json(), { verified: false, verifyError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }, 'the proxy said yes, the app-side check says no')
  app.clientCert.reload({ ca: [corpus.root.certPem, corpus.intermediate.certPem] })
  t.same((await app.inject({ url: '/maybe', headers })).json(), { verified: true, verifyError: null })
  app.clientCert.reload({ ca: corpus.rogueRoot.certPem })
  app.clientCert.reload({ ca: null })
  t.same((await app.inject({ url: '/maybe', headers })).json(), { verified: true, verifyError: null }, 'without proxy.ca the proxy\'s word counts')
})

t.test("mode 'auto' on cleartext HTTP/2: direct connections have no TLS certificate", async (t) => {
  const app = Fastify({ http2: true })
  await app.register(fastifyClientCert, { mode: 'auto', proxy: { preset: 'nginx', trust: '10.0.0.0/8' } })
  app.get('/whoami', async (request) => ({ cn: request.clientCert?.commonName }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const { port } = app.server.address() as { port: number }
  const session = http2Connect(`http://127.0.0.1:${port}`)
  t.teardown(() => session.close())
  const status = await new Promise<number>((resolve, reject) => {
    const stream = session.request({ ':path': '/whoami' })
    stream.on('response', (headers) => resolve(Number(headers[':status'])))
    stream.on('error', reject)
    stream.resume()
  })
  t.equal(status, 401)
})

t.test('with proxy.ca, a forward without the whole certificate cannot be verified', async (t) => {
  const corpus = await getCorpus()
  const app = Fastify()
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'envoy', trust: '127.0.0.1', ca: corpus.caPem } })
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => toJSON(request.clientCert))
  t.teardown(() => app.close())
  const xfcc = 'By=spiffe://example.org/ns/edge;Subject="CN=alice,O=Example Corp";URI=spiffe://example.org/ns/prod/sa/alice'
  t.match((await app.inject({ url: '/maybe', headers: { 'x-forwarded-client-cert': xfcc } })).json(), {
    source: 'proxy', proxy: 'envoy', verified: false, verifyError: 'CERTIFICATE_NOT_FORWARDED', commonName: 'alice', spiffeId: 'spiffe://example.org/ns/prod/sa/alice', certificate: null
  })
  const withCert = `By=spiffe://example.org/ns/edge;Cert="${encodeURIComponent(corpus.leaves.alice.certPem)}"`
  t.match((await app.inject({ url: '/maybe', headers: { 'x-forwarded-client-cert': withCert } })).json(), { verified: true, commonName: 'alice' })
})
