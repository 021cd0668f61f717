// A holder of a revoked certificate, or a client that wants the app to spend its CPU on revocation, tries to
// get around the CRL: by having only names reach the app, by sending look-alike issuers, by counting on
// a large CRL load to freeze the app, or by holding a leaf of a CA that was itself revoked.
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { X509Certificate, createPrivateKey } from 'node:crypto'
import { Agent, request } from 'undici'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fastifyClientCert, identityFromCertificate, type FastifyClientCertOptions } from '../../lib/index.js'
import { getCorpus, type LeafName } from '../helpers/certs.js'
import { bigCrl, lookAlike, makeCrl, subjectName } from '../helpers/crl.js'
import { clientAgent, startTlsApp } from '../helpers/server.js'
import { namesOnlyProxy } from '../helpers/names-only.js'

async function proxyApp (options: Partial<FastifyClientCertOptions>): Promise<FastifyInstance> {
  const app = Fastify() as unknown as FastifyInstance
  await app.register(fastifyClientCert, { mode: 'proxy', ...options } as FastifyClientCertOptions)
  app.get('/whoami', async (request) => ({ subject: request.clientCert?.subject }))
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => ({
    verified: request.clientCert?.verified ?? null,
    verifyError: request.clientCert?.verifyError ?? null
  }))
  return app
}

// A proxy that forwards names alone: what Apache's SSL_CLIENT_S_DN / _I_DN / _M_SERIAL give.
const namesOnly = namesOnlyProxy

async function nameHeaders (leaf: LeafName, omit: 'issuer' | 'serial' | null = null): Promise<Record<string, string>> {
  const corpus = await getCorpus()
  const certificate = new X509Certificate(corpus.leaves[leaf].certPem)
  const identity = identityFromCertificate(certificate)
  const headers: Record<string, string> = { 'x-client-s-dn': identity.subject!, 'x-client-verify': 'SUCCESS' }
  if (omit !== 'issuer') headers['x-client-i-dn'] = identity.issuer!
  if (omit !== 'serial') headers['x-client-serial'] = identity.serialNumber!
  return headers
}

t.test('names-only downgrade: a revoked certificate forwarded as subject, issuer and serial is refused (CERT_REVOKED, 401)', async (t) => {
  const corpus = await getCorpus()
  const app = await proxyApp({ proxy: namesOnly, crl: makeCrl(corpus.intermediate, [corpus.leaves.alice.certPath]) })
  t.teardown(() => app.close())
  const revoked = await app.inject({ url: '/whoami', headers: await nameHeaders('alice') })
  t.equal(revoked.statusCode, 401)
  t.equal(revoked.json().code, 'FST_CLIENT_CERT_INVALID')
  t.same((await app.inject({ url: '/maybe', headers: await nameHeaders('alice') })).json(), { verified: false, verifyError: 'CERT_REVOKED' })
  t.equal((await app.inject({ url: '/whoami', headers: await nameHeaders('bob') })).statusCode, 200, 'a certificate not listed passes')
})

t.test('names-only downgrade: no serial forwarded while a CRL of the issuer is loaded fails closed (UNABLE_TO_GET_CRL)', async (t) => {
  const corpus = await getCorpus()
  const app = await proxyApp({ proxy: namesOnly, crl: makeCrl(corpus.intermediate, [corpus.leaves.alice.certPath]) })
  t.teardown(() => app.close())
  for (const leaf of ['alice', 'bob'] as const) {
    t.same((await app.inject({ url: '/maybe', headers: await nameHeaders(leaf, 'serial') })).json(), { verified: false, verifyError: 'UNABLE_TO_GET_CRL' }, leaf)
    t.equal((await app.inject({ url: '/whoami', headers: await nameHeaders(leaf, 'serial') })).statusCode, 401)
  }
})

t.test('names-only downgrade: no issuer forwarded while a CRL is loaded fails closed (UNABLE_TO_GET_CRL)', async (t) => {
  const corpus = await getCorpus()
  const app = await proxyApp({ proxy: namesOnly, crl: makeCrl(corpus.intermediate, [corpus.leaves.alice.certPath]) })
  t.teardown(() => app.close())
  t.same((await app.inject({ url: '/maybe', headers: await nameHeaders('bob', 'issuer') })).json(), { verified: false, verifyError: 'UNABLE_TO_GET_CRL' })
})

t.test('look-alike issuers in the forwarded chain neither pick the CRL signer nor change the verdict', async (t) => {
  const corpus = await getCorpus()
  const intermediate = new X509Certificate(corpus.intermediate.certPem)
  const app = await proxyApp({
    proxy: {
      trust: '127.0.0.1',
      ca: corpus.caPem,
      headers: {
        cert: { name: 'x-cert', encoding: 'pem-urlencoded' },
        chain: { name: 'x-chain', encoding: 'pem-urlencoded' },
        verified: 'present'
      }
    },
    crl: makeCrl(corpus.intermediate, [corpus.leaves.alice.certPath])
  })
  t.teardown(() => app.close())
  const send = async (leaf: LeafName, lookAlikes: X509Certificate[]): Promise<unknown> => (await app.inject({
    url: '/maybe',
    headers: {
      'x-cert': encodeURIComponent(corpus.leaves[leaf].certPem),
      'x-chain': encodeURIComponent([...lookAlikes.map((c) => c.toString()), corpus.intermediate.certPem].join(''))
    }
  })).json()
  const bob = new X509Certificate(corpus.leaves.bob.certPem)
  // Each one new: before, each cost a full CRL verification (and past 16, every request did).
  for (let i = 0; i < 20; i++) {
    const fake = lookAlike(intermediate, i)
    t.ok(bob.checkIssued(fake), 'the look-alike passes for the issuer by name')
    t.same(await send('bob', [fake]), { verified: true, verifyError: null }, `look-alike ${i}: the CRL signed by the trusted intermediate counts`)
  }
  t.same(await send('alice', [lookAlike(intermediate, 99)]), { verified: false, verifyError: 'CERT_REVOKED' }, 'and a revoked certificate stays revoked')
})

t.test('a large CRL loads without freezing the event loop: timers run between its slices, the old list stays in force until then', async (t) => {
  const corpus = await getCorpus()
  const intermediate = new X509Certificate(corpus.intermediate.certPem)
  const alice = new X509Certificate(corpus.leaves.alice.certPem)
  const key = createPrivateKey(corpus.intermediate.keyPem)
  const big = bigCrl({ issuer: subjectName(intermediate), key, count: 200_000, serials: [alice.serialNumber] })
  const { app, url } = await startTlsApp({ plugin: { crl: makeCrl(corpus.intermediate, []) } })
  t.teardown(() => app.close())
  const agent = await clientAgent('alice')
  t.teardown(() => agent.close())
  t.equal((await request(url + '/whoami', { dispatcher: agent })).statusCode, 200)

  let ticks = 0
  const timer = setInterval(() => { ticks++ }, 1)
  const loading = app.clientCert.reload({ crl: big })
  t.ok(loading instanceof Promise, 'reload() of a large CRL returns a promise')
  const during = await request(url + '/maybe', { dispatcher: agent })
  t.match(await during.body.json(), { clientCert: { verified: true } }, 'a request served while it loads: the old list is in force')
  await loading
  clearInterval(timer)
  t.ok(ticks > 0, 'a 1 ms timer ran while the CRL loaded')
  t.equal((await request(url + '/whoami', { dispatcher: agent })).statusCode, 401, 'the new list is in force once reload() resolves')
})

t.test('a large CRL given at registration loads in slices too', async (t) => {
  const corpus = await getCorpus()
  const intermediate = new X509Certificate(corpus.intermediate.certPem)
  const alice = new X509Certificate(corpus.leaves.alice.certPem)
  const big = bigCrl({ issuer: subjectName(intermediate), key: createPrivateKey(corpus.intermediate.keyPem), count: 100_000, serials: [alice.serialNumber] })
  let ticks = 0
  const timer = setInterval(() => { ticks++ }, 1)
  const app = await proxyApp({ proxy: { preset: 'nginx', trust: '127.0.0.1' }, crl: big })
  clearInterval(timer)
  t.teardown(() => app.close())
  t.ok(ticks > 0, 'a 1 ms timer ran while the plugin registered')
  const headers = (leaf: LeafName): Record<string, string> => ({ 'x-ssl-client-cert': encodeURIComponent(corpus.leaves[leaf].certPem), 'x-ssl-client-verify': 'SUCCESS' })
  t.same((await app.inject({ url: '/maybe', headers: headers('alice') })).json(), { verified: false, verifyError: 'CERT_REVOKED' })
  t.same((await app.inject({ url: '/maybe', headers: headers('bob') })).json(), { verified: true, verifyError: null })
})

// The root's CRL revokes the intermediate CA that issued every trusted leaf of the corpus: a leaf of it is
// revoked too, as OpenSSL's crl_check_all has it, whether the client sends the intermediate or the server's
// ca holds it. Before, only the leaf was looked up, in its own issuer's CRL (none loaded: not checked).
t.test('revoked intermediate, direct TLS: a leaf sent with the intermediate its root revoked is refused (CERT_REVOKED, 401)', async (t) => {
  const corpus = await getCorpus()
  const crl = makeCrl(corpus.root, [corpus.intermediate.certPath])
  for (const [label, ca, chain] of [['server ca: root; client: leaf + intermediate', corpus.root.certPem, true], ['server ca: root + intermediate; client: leaf', corpus.caPem, false]] as const) {
    const { app, url } = await startTlsApp({ https: { ca }, plugin: { crl } })
    t.teardown(() => app.close())
    const agent = await clientAgent('alice', { chain })
    t.teardown(() => agent.close())
    const maybe = await request(url + '/maybe', { dispatcher: agent })
    t.match(await maybe.body.json(), { clientCert: { subject: /CN=alice/, verified: false, verifyError: 'CERT_REVOKED' } }, label)
    const whoami = await request(url + '/whoami', { dispatcher: agent })
    t.equal(whoami.statusCode, 401, label)
    t.equal((await whoami.body.json() as { code: string }).code, 'FST_CLIENT_CERT_INVALID', label)
  }
  // Controls: a root CRL that does not list the intermediate; one limited to end-entity certificates.
  for (const [label, other] of [['not listed', makeCrl(corpus.root, [])], ['end-entity-only CRL', makeCrl(corpus.root, [corpus.intermediate.certPath], ['-crlexts', 'idp_user'])]] as const) {
    const { app, url } = await startTlsApp({ https: { ca: corpus.root.certPem }, plugin: { crl: other } })
    t.teardown(() => app.close())
    const agent = await clientAgent('alice', { chain: true })
    t.teardown(() => agent.close())
    t.equal((await request(url + '/whoami', { dispatcher: agent })).statusCode, 200, label)
  }
})

t.test('revoked intermediate, proxy: a leaf forwarded with the intermediate its root revoked is refused (CERT_REVOKED, 401)', async (t) => {
  const corpus = await getCorpus()
  const headers = {
    cert: { name: 'x-cert', encoding: 'pem-urlencoded' as const },
    chain: { name: 'x-chain', encoding: 'pem-urlencoded' as const },
    verified: 'present' as const
  }
  const forwarded = { 'x-cert': encodeURIComponent(corpus.leaves.alice.certPem), 'x-chain': encodeURIComponent(corpus.intermediate.certPem) }
  const crl = makeCrl(corpus.root, [corpus.intermediate.certPath])
  // proxy.ca: the path verifyChain accepted, through the forwarded intermediate up to the root.
  const verifying = await proxyApp({ proxy: { trust: '127.0.0.1', ca: corpus.root.certPem, headers }, crl })
  t.teardown(() => verifying.close())
  t.same((await verifying.inject({ url: '/maybe', headers: forwarded })).json(), { verified: false, verifyError: 'CERT_REVOKED' })
  const refused = await verifying.inject({ url: '/whoami', headers: forwarded })
  t.equal(refused.statusCode, 401)
  t.equal(refused.json().code, 'FST_CLIENT_CERT_INVALID')
  // Without proxy.ca the proxy verified: an intermediate it forwards is checked all the same.
  const vouching = await proxyApp({ proxy: { trust: '127.0.0.1', headers }, crl })
  t.teardown(() => vouching.close())
  t.same((await vouching.inject({ url: '/maybe', headers: forwarded })).json(), { verified: false, verifyError: 'CERT_REVOKED' })
  t.same((await vouching.inject({ url: '/maybe', headers: { 'x-cert': forwarded['x-cert'] } })).json(), { verified: true, verifyError: null },
    'a leaf forwarded alone: the path ends where no issuer is known')
})

/** A self-signed look-alike of the intermediate: its name and its key (the compromise it was revoked for). */
function selfSignedLookAlike (corpus: Awaited<ReturnType<typeof getCorpus>>): string {
  const dir = mkdtempSync(join(tmpdir(), 'look-alike-'))
  try {
    const subject = execFileSync('openssl', ['x509', '-in', corpus.intermediate.certPath, '-noout', '-subject', '-nameopt', 'compat'], { encoding: 'utf8' })
      .trim().replace(/^subject=/, '')
    execFileSync('openssl', ['req', '-x509', '-new', '-key', corpus.intermediate.keyPath, '-subj', subject, '-days', '1',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', join(dir, 'look.pem')], { stdio: 'ignore' })
    return readFileSync(join(dir, 'look.pem'), 'utf8')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

t.test('revoked intermediate hidden behind its own self-signed look-alike, sent first: still refused (proxy)', async (t) => {
  const corpus = await getCorpus()
  const look = selfSignedLookAlike(corpus)
  const crl = makeCrl(corpus.root, [corpus.intermediate.certPath])
  const sf = (pem: string): string => `:${new X509Certificate(pem).raw.toString('base64')}:`
  const headers = { 'client-cert': sf(corpus.leaves.alice.certPem), 'client-cert-chain': `${sf(look)}, ${sf(corpus.intermediate.certPem)}` }
  for (const [label, proxy] of [
    ['rfc9440 with proxy.ca', { preset: 'rfc9440', trust: '127.0.0.1', ca: corpus.root.certPem }],
    ['rfc9440, the proxy verified', { preset: 'rfc9440', trust: '127.0.0.1' }]
  ] as const) {
    const app = await proxyApp({ proxy, crl } as Partial<FastifyClientCertOptions>)
    t.teardown(() => app.close())
    const maybe = (await app.inject({ url: '/maybe', headers })).json()
    t.equal(maybe.verified, false, `${label}: never verified`)
    t.ok(['CERT_REVOKED', 'UNABLE_TO_GET_CRL', 'SELF_SIGNED_CERT_IN_CHAIN'].includes(maybe.verifyError), `${label}: ${String(maybe.verifyError)}`)
    t.equal((await app.inject({ url: '/whoami', headers })).statusCode, 401, `${label}: 401`)
  }
})

t.test('revoked intermediate hidden behind its own expired self-signed look-alike, sent first: still refused (direct TLS)', async (t) => {
  const corpus = await getCorpus()
  // Expired, so that OpenSSL passes over it and verifies through the real intermediate; Node links the leaf to it.
  const look = lookAlike(new X509Certificate(corpus.intermediate.certPem), 77, { privateKey: createPrivateKey(corpus.intermediate.keyPem), expired: true }).toString()
  const crl = makeCrl(corpus.root, [corpus.intermediate.certPath])
  const { app, url } = await startTlsApp({ https: { ca: corpus.root.certPem }, plugin: { crl } })
  t.teardown(() => app.close())
  const agent = new Agent({ connect: { ca: corpus.caPem, servername: 'localhost', cert: corpus.leaves.alice.certPem + look + corpus.intermediate.certPem, key: corpus.leaves.alice.keyPem } })
  t.teardown(() => agent.close())
  const whoami = await request(url + '/whoami', { dispatcher: agent })
  t.equal(whoami.statusCode, 401, 'never admitted')
  const maybe = await (await request(url + '/maybe', { dispatcher: agent })).body.json() as { clientCert: { verified: boolean } | null }
  t.equal(maybe.clientCert?.verified, false)
})

t.test('revocation work is bounded: look-alike issuers in a forwarded chain cost no signature check each', async (t) => {
  const corpus = await getCorpus()
  const crl = makeCrl(corpus.intermediate, [])
  const intermediate = new X509Certificate(corpus.intermediate.certPem)
  const decoys = Array.from({ length: 20 }, (_, i) => lookAlike(intermediate, i))
  const sf = (certificate: X509Certificate): string => `:${certificate.raw.toString('base64')}:`
  const leaf = sf(new X509Certificate(corpus.leaves.alice.certPem))
  const verify = X509Certificate.prototype.verify
  let checks = 0
  X509Certificate.prototype.verify = function counted (this: X509Certificate, key) { checks++; return verify.call(this, key) }
  t.teardown(() => { X509Certificate.prototype.verify = verify })
  // The proxy verified (no proxy.ca): every forwarded certificate is checked against the CRLs, by name, unsigned work.
  const vouching = await proxyApp({ proxy: { preset: 'rfc9440', trust: '127.0.0.1' }, crl } as Partial<FastifyClientCertOptions>)
  t.teardown(() => vouching.close())
  const headers = { 'client-cert': leaf, 'client-cert-chain': [...decoys.slice(0, 12), intermediate].map(sf).join(', ') }
  t.same((await vouching.inject({ url: '/maybe', headers })).json(), { verified: true, verifyError: null })
  t.equal(checks, 0, 'no signature check for twelve look-alikes')
  const many = { ...headers, 'client-cert-chain': [...decoys, intermediate].map(sf).join(', ') }
  t.same((await vouching.inject({ url: '/maybe', headers: many })).json(), { verified: false, verifyError: 'UNABLE_TO_GET_CRL' }, 'more than 16 forwarded certificates: not checked one by one, and never a pass')
  // With proxy.ca, verifyChain refuses so many before any revocation work.
  const verifying = await proxyApp({ proxy: { preset: 'rfc9440', trust: '127.0.0.1', ca: corpus.root.certPem }, crl } as Partial<FastifyClientCertOptions>)
  t.teardown(() => verifying.close())
  checks = 0
  t.equal((await verifying.inject({ url: '/maybe', headers: many })).json().verified, false)
  t.ok(checks <= 8, `at most 8 signature checks (${checks})`)
})
