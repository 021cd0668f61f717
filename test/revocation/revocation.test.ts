import t from 'tap'
import { X509Certificate, createPrivateKey, generateKeyPairSync } from 'node:crypto'
import { request } from 'undici'
import { getCorpus } from '../helpers/certs.js'
import { bigCrl, makeCrl, subjectName } from '../helpers/crl.js'
import { clientAgent, rawRequest, startTlsApp } from '../helpers/server.js'

t.test('crl: revoked certificates are refused over direct TLS with CERT_REVOKED', async (t) => {
  const corpus = await getCorpus()
  const crl = makeCrl(corpus.intermediate, [corpus.leaves.alice.certPath])
  const { app, url } = await startTlsApp({ plugin: { crl } })
  t.teardown(() => app.close())
  const alice = await clientAgent('alice')
  const bob = await clientAgent('bob')
  t.teardown(() => Promise.all([alice.close(), bob.close()]))
  const refused = await request(url + '/whoami', { dispatcher: alice })
  t.equal(refused.statusCode, 401)
  t.equal((await refused.body.json() as { code: string }).code, 'FST_CLIENT_CERT_INVALID')
  t.match(await (await request(url + '/maybe', { dispatcher: alice })).body.json(), { clientCert: { verified: false, verifyError: 'CERT_REVOKED' } })
  t.equal((await request(url + '/whoami', { dispatcher: bob })).statusCode, 200, 'others pass')
})

t.test('reload() cuts a revoked certificate off on an open keep-alive connection and on resumed sessions', async (t) => {
  const corpus = await getCorpus()
  const { app, url, port } = await startTlsApp({ plugin: { crl: makeCrl(corpus.intermediate, []) } })
  t.teardown(() => app.close())
  const alice = await clientAgent('alice')
  t.teardown(() => alice.close())
  t.equal((await request(url + '/whoami', { dispatcher: alice })).statusCode, 200)
  const credentials = { cert: corpus.leaves.alice.certPem, key: corpus.leaves.alice.keyPem, maxVersion: 'TLSv1.2' as const }
  const first = await rawRequest(port, '/whoami', credentials)
  t.equal(first.status, 200)

  app.clientCert.reload({ crl: makeCrl(corpus.intermediate, [corpus.leaves.alice.certPath]) })
  const sameConnection = await request(url + '/maybe', { dispatcher: alice })
  t.match(await sameConnection.body.json(), { clientCert: { verified: false, verifyError: 'CERT_REVOKED' } }, 'the open connection sees the new CRL')
  const resumed = await rawRequest(port, '/whoami', { ...credentials, session: first.session })
  t.equal(resumed.reused, true, 'the TLS session was resumed (TLS still says authorized)')
  t.equal(resumed.status, 401, 'but the plugin refuses the revoked certificate')

  app.clientCert.reload({ crl: null })
  t.equal((await request(url + '/whoami', { dispatcher: alice })).statusCode, 200, 'crl: null removes the lists')
  t.throws(() => app.clientCert.reload({ crl: 'not a crl' }), /reload\.crl/)
  t.equal((await request(url + '/whoami', { dispatcher: alice })).statusCode, 200, 'a failed reload keeps what was loaded')
  t.throws(() => app.clientCert.reload({ ca: corpus.caPem }), /reload\.ca: is the proxy CA list/)
  t.throws(() => app.clientCert.reload({ crls: [] } as never), /reload\.crls: is not a reloadable list/)
  t.throws(() => app.clientCert.reload(null as never), /reload: takes \{ crl, ca \}/)
})

t.test('an expired CRL fails closed', async (t) => {
  const corpus = await getCorpus()
  // nextUpdate one hour ahead; the clock is then moved two hours on.
  const crl = makeCrl(corpus.intermediate, [], ['-crlhours', '1'])
  const { app, url } = await startTlsApp({ plugin: { crl } })
  t.teardown(() => app.close())
  const bob = await clientAgent('bob')
  t.teardown(() => bob.close())
  t.equal((await request(url + '/whoami', { dispatcher: bob })).statusCode, 200)
  const realNow = Date.now
  Date.now = () => realNow() + 2 * 3600_000
  t.teardown(() => { Date.now = realNow })
  const late = await request(url + '/maybe', { dispatcher: bob })
  t.match(await late.body.json(), { clientCert: { verified: false, verifyError: 'CRL_HAS_EXPIRED' } }, 're-judged on the open connection')
})

t.test('crl in proxy mode', async (t) => {
  const corpus = await getCorpus()
  const Fastify = (await import('fastify')).default
  const { fastifyClientCert } = await import('../../lib/index.js')
  const app = Fastify()
  await app.register(fastifyClientCert, {
    mode: 'proxy',
    proxy: { preset: 'nginx', trust: '127.0.0.1', ca: corpus.caPem },
    crl: makeCrl(corpus.intermediate, [corpus.leaves.bob.certPath])
  })
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => ({ verified: request.clientCert?.verified, verifyError: request.clientCert?.verifyError }))
  t.teardown(() => app.close())
  const headers = (leaf: 'alice' | 'bob') => ({ 'x-ssl-client-cert': encodeURIComponent(corpus.leaves[leaf].certPem), 'x-ssl-client-verify': 'SUCCESS' })
  t.same((await app.inject({ url: '/maybe', headers: headers('bob') })).json(), { verified: false, verifyError: 'CERT_REVOKED' })
  t.same((await app.inject({ url: '/maybe', headers: headers('alice') })).json(), { verified: true, verifyError: null })
})

t.test('two registrations judge one connection each by their own lists', async (t) => {
  const corpus = await getCorpus()
  const crl = makeCrl(corpus.intermediate, [corpus.leaves.alice.certPath])
  const { fastifyClientCert } = await import('../../lib/index.js')
  const Fastify = (await import('fastify')).default
  const server = corpus.leaves.serverauth
  const app = Fastify({ https: { key: server.keyPem, cert: server.chainPem, ca: corpus.caPem, requestCert: true, rejectUnauthorized: false } })
  // Sibling contexts, each with its own registration (one registration per context tree).
  app.register(async (lenient) => {
    await lenient.register(fastifyClientCert)
    lenient.get('/lenient', async (request) => ({ verified: request.clientCert?.verified }))
  })
  app.register(async (strict) => {
    await strict.register(fastifyClientCert, { crl })
    strict.get('/strict', async (request) => ({ verified: request.clientCert?.verified }))
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const url = `https://localhost:${(app.server.address() as { port: number }).port}`
  const alice = await clientAgent('alice')
  t.teardown(() => alice.close())
  t.equal((await request(url + '/lenient', { dispatcher: alice })).statusCode, 200)
  t.equal((await request(url + '/strict', { dispatcher: alice })).statusCode, 401, 'the second registration\'s CRL applies on the same connection')
  t.equal((await request(url + '/lenient', { dispatcher: alice })).statusCode, 200)
})

t.test('large reloads: the old lists stay in force until each is done, in call order; a failed one keeps them', async (t) => {
  const corpus = await getCorpus()
  const intermediate = new X509Certificate(corpus.intermediate.certPem)
  const key = createPrivateKey(corpus.intermediate.keyPem)
  const alice = new X509Certificate(corpus.leaves.alice.certPem).serialNumber
  // Over SYNC_LOAD_BYTES (512 KiB): loaded in slices.
  const big = (...serials: string[]): Buffer => bigCrl({ issuer: subjectName(intermediate), key, count: 20_000, serials })
  const Fastify = (await import('fastify')).default
  const { fastifyClientCert } = await import('../../lib/index.js')
  const app = Fastify()
  await app.register(fastifyClientCert, { mode: 'auto', proxy: { preset: 'nginx', trust: '127.0.0.1', ca: corpus.caPem }, crl: makeCrl(corpus.intermediate, []) })
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => ({ verifyError: request.clientCert?.verifyError }))
  t.teardown(() => app.close())
  const verdict = async (): Promise<unknown> => (await app.inject({
    url: '/maybe',
    headers: { 'x-ssl-client-cert': encodeURIComponent(corpus.leaves.alice.certPem), 'x-ssl-client-verify': 'SUCCESS' }
  })).json()

  const first = app.clientCert.reload({ crl: big(alice) })
  const second = app.clientCert.reload({ crl: null })
  t.same(await verdict(), { verifyError: null }, 'while they load, the lists loaded before are in force')
  await Promise.all([first, second])
  t.same(await verdict(), { verifyError: null }, 'the later reload wins: crl: null')

  await app.clientCert.reload({ crl: big(alice) })
  t.same(await verdict(), { verifyError: 'CERT_REVOKED' })
  const keep = app.clientCert.reload({})
  t.ok(keep instanceof Promise, 'with a large CRL in force, even reload({}) completes later')
  await keep
  await app.clientCert.reload({ ca: corpus.caPem })
  t.same(await verdict(), { verifyError: 'CERT_REVOKED' }, 'omitted lists are kept')

  await t.rejects(app.clientCert.reload({ crl: Buffer.concat([big(), Buffer.from([0])]) }), /reload\.crl: the CRL has unexpected trailing data/)
  t.same(await verdict(), { verifyError: 'CERT_REVOKED' }, 'a failed reload keeps the lists in force')
  const pending = app.clientCert.reload({ crl: big() })
  t.throws(() => app.clientCert.reload({ crl: 42 as never }), /reload\.crl: must be PEM text/, 'the wrong type throws at once, reload pending or not')
  t.throws(() => app.clientCert.reload({ crl: big(), ca: 'nothing' }), /reload\.ca: /)
  await pending
  t.same(await verdict(), { verifyError: null })
})

t.test('direct TLS: a CRL is checked with the server\'s ca, never with a certificate the client sent', async (t) => {
  const corpus = await getCorpus()
  const intermediate = new X509Certificate(corpus.intermediate.certPem)
  const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
  const forged = bigCrl({ issuer: subjectName(intermediate), key: stranger, count: 0 })
  const { app, url } = await startTlsApp({ plugin: { crl: forged } })
  t.teardown(() => app.close())
  const bob = await clientAgent('bob')
  t.teardown(() => bob.close())
  t.match(await (await request(url + '/maybe', { dispatcher: bob })).body.json(), { clientCert: { verified: false, verifyError: 'CRL_SIGNATURE_FAILURE' } },
    'the intermediate in the server\'s ca did not sign it')
  await app.clientCert.reload({ crl: makeCrl(corpus.intermediate, []) })
  t.match(await (await request(url + '/maybe', { dispatcher: bob })).body.json(), { clientCert: { verified: true } })
})
