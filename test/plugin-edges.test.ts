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
  await t.rejects(async () => await app.ready(), /proxy\.ca: needs a mapping that forwards the whole certificate/)
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

t.test('peerAddress: unix is decided by the listener, a TCP socket without an address is nobody', async (t) => {
  const { peerAddress } = await import('../lib/sources/proxy.js')
  t.equal(peerAddress({ remoteAddress: '127.0.0.1' }, false), '127.0.0.1')
  t.equal(peerAddress({ remoteAddress: undefined }, true), 'unix')
  t.equal(peerAddress({ remoteAddress: undefined }, false), undefined)
})

t.test('normalizeOptions: defaults, null-prototype objects, odd values', async (t) => {
  const { normalizeOptions } = await import('../lib/options.js')
  t.match(normalizeOptions(undefined), { mode: 'tls', required: true, proxy: null, cache: { users: { max: 10000, ttl: 300000 }, certificates: { max: 10000, ttl: 300000, maxBytes: 67108864 } }, testing: false })
  t.match(normalizeOptions(null), { mode: 'tls' })
  const bare = Object.assign(Object.create(null), { required: false })
  t.match(normalizeOptions(bare), { required: false })
  t.throws(() => normalizeOptions({ mode: 'proxy', proxy: { preset: 42, trust: '127.0.0.1' } }), /proxy\.preset: must be one of/)
  t.throws(() => normalizeOptions({ mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1', ca: 42 } }), /option proxy\.ca: must be a PEM string/)
  t.throws(() => normalizeOptions(new Date()), /option options: must be an object/)
})

t.test('a forwarded value that looks like DER but is no certificate: 400 with the reason logged', async (t) => {
  const lines: string[] = []
  const { Writable } = await import('node:stream')
  const stream = new Writable({ write (chunk, _encoding, callback) { lines.push(String(chunk)); callback() } })
  const app = Fastify({ logger: { stream, level: 'warn' } })
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'haproxy', trust: '127.0.0.1' } })
  app.get('/whoami', async () => 'never')
  t.teardown(() => app.close())
  const response = await app.inject({ url: '/whoami', headers: { 'x-ssl-client-cert': 'MAMCAQE=', 'x-ssl-client-verify': '0', 'x-ssl-client-used': '1' } })
  t.equal(response.json().code, 'FST_CLIENT_CERT_BAD_HEADER')
  t.match(lines.join(''), /"reason":"the certificate body has an unexpected type","msg":"malformed client certificate headers refused"/)
  t.notMatch(response.body, /X\.509/)
})

t.test('names-only identities without issuer and serial are never cached for users', async (t) => {
  const app = Fastify()
  let lookups = 0
  await app.register(fastifyClientCert, {
    mode: 'proxy',
    proxy: { trust: '127.0.0.1', headers: { subject: { name: 'x-client-subject', encoding: 'dn-legacy' }, verified: 'present' } },
    resolveUser: async () => ({ n: ++lookups })
  })
  app.get('/whoami', async (request) => ({ subject: request.clientCert?.subject, issuer: request.clientCert?.issuer, user: request.user }))
  t.teardown(() => app.close())
  const headers = { 'x-client-subject': '/C=US/O=Example Corp/CN=eve' }
  t.same((await app.inject({ url: '/whoami', headers })).json(), { subject: 'CN=eve,O=Example Corp,C=US', issuer: null, user: { n: 1 } })
  t.same((await app.inject({ url: '/whoami', headers })).json().user, { n: 2 })
})

t.test('injectAs as a proxy without a preset name says custom', async (t) => {
  const corpus = await getCorpus()
  const app = Fastify()
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1' }, testing: true })
  app.get('/whoami', async (request) => ({ source: request.clientCert?.source, proxy: request.clientCert?.proxy }))
  t.teardown(() => app.close())
  t.same((await app.clientCert.injectAs({ certificate: corpus.leaves.alice.der, source: 'proxy' }, '/whoami')).json(), { source: 'proxy', proxy: 'custom' })
})

t.test('GCP without the leaf header: refused when verified; the fields Google forwards, no subject, when not', async (t) => {
  const corpus = await getCorpus()
  const { X509Certificate, createHash } = await import('node:crypto')
  const san = new X509Certificate(corpus.leaves.san.certPem)
  const app = Fastify()
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'gcp', trust: '127.0.0.1' } })
  app.get('/whoami', async (request) => toJSON(request.clientCert))
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => toJSON(request.clientCert))
  t.teardown(() => app.close())
  const b64 = (text: string) => Buffer.from(text).toString('base64')
  const verifiedWithoutLeaf = await app.inject({ url: '/whoami', headers: { 'x-client-cert-present': 'true', 'x-client-cert-chain-verified': 'true', 'x-client-cert-serial-number': '0f' } })
  t.equal(verifiedWithoutLeaf.statusCode, 400, 'Google forwards the leaf of every certificate it verified: without it, refused')
  t.equal(verifiedWithoutLeaf.json().code, 'FST_CLIENT_CERT_BAD_HEADER')
  const response = await app.inject({
    url: '/maybe',
    headers: {
      'x-client-cert-present': 'true',
      'x-client-cert-chain-verified': 'false',
      'x-client-cert-error': 'client_cert_chain_invalid_eku',
      'x-client-cert-hash': createHash('sha256').update(san.raw).digest('base64').replace(/=+$/, ''),
      'x-client-cert-serial-number': san.serialNumber.replace(/(..)(?!$)/g, '$1:').toLowerCase(),
      'x-client-cert-spiffe': 'spiffe://example.org/ns/prod/sa/api',
      'x-client-cert-dnsname-sans': [b64('api.example.org'), b64('*.svc.example.net')].join(','),
      'x-client-cert-valid-not-before': new Date(san.validFrom).toISOString(),
      'x-client-cert-valid-not-after': new Date(san.validTo).toISOString()
    }
  })
  t.same(response.json(), {
    source: 'proxy',
    proxy: 'gcp',
    verified: false,
    verifyError: 'client_cert_chain_invalid_eku',
    subject: null,
    issuer: null,
    subjectRDNs: null,
    issuerRDNs: null,
    commonName: null,
    san: { dns: ['api.example.org', '*.svc.example.net'], email: [], uri: ['spiffe://example.org/ns/prod/sa/api'], ip: [] },
    spiffeId: 'spiffe://example.org/ns/prod/sa/api',
    serialNumber: san.serialNumber,
    fingerprint256: san.fingerprint256,
    notBefore: new Date(san.validFrom).toISOString(),
    notAfter: new Date(san.validTo).toISOString(),
    certificate: null
  })
})

t.test('a peer certificate the codecs cannot read is a 401, anything unexpected a 500: never a leaked message', async (t) => {
  const corpus = await getCorpus()
  const lines: string[] = []
  const { Writable } = await import('node:stream')
  const stream = new Writable({ write (chunk, _encoding, callback) { lines.push(String(chunk)); callback() } })
  const app = Fastify({ https: { key: corpus.leaves.serverauth.keyPem, cert: corpus.leaves.serverauth.chainPem, requestCert: true }, logger: { stream, level: 'warn' } })
  // Stands in for a TLS socket (inject has none) whose peer certificate is unreadable, or whose read throws.
  app.addHook('onRequest', async (request) => {
    const socket = request.raw.socket as unknown as Record<string, unknown>
    socket.encrypted = true
    socket.getProtocol = () => 'TLSv1.3'
    socket.getPeerX509Certificate = request.headers['x-case'] === 'unreadable'
      ? () => ({ subject: 'not a certificate object' })
      : () => { throw new TypeError('secret internal detail') }
  })
  await app.register(fastifyClientCert)
  app.get('/maybe', { config: { clientCert: { required: false } } }, async () => 'never')
  app.get('/verify', { config: { clientCert: false }, preHandler: app.clientCert.verify() }, async () => 'never')
  t.teardown(() => app.close())
  const unreadable = await app.inject({ url: '/maybe', headers: { 'x-case': 'unreadable' } })
  t.same(unreadable.json(), { statusCode: 401, code: 'FST_CLIENT_CERT_INVALID', error: 'Unauthorized', message: 'The client certificate could not be verified' })
  const broken = await app.inject({ url: '/maybe', headers: { 'x-case': 'throws' } })
  t.same(broken.json(), { statusCode: 500, code: 'FST_CLIENT_CERT_INTERNAL', error: 'Internal Server Error', message: 'Client certificate authentication failed' })
  t.equal((await app.inject({ url: '/verify', headers: { 'x-case': 'throws' } })).json().code, 'FST_CLIENT_CERT_INTERNAL', 'the verify() hook too')
  t.match(lines.join(''), /client certificate could not be read/)
  t.match(lines.join(''), /secret internal detail/, 'the detail goes to the log')
  t.notMatch(broken.body + unreadable.body, /secret internal detail|not a certificate/)
})
