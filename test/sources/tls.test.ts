import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { request } from 'undici'
import { getCorpus, type LeafName } from '../helpers/certs.js'
import { opensslName } from '../helpers/openssl.js'
import { clientAgent, startTlsApp } from '../helpers/server.js'

const none = { dns: [], email: [], uri: [], ip: [] }
const expectations: Partial<Record<LeafName, { commonName: string | null, san: Record<string, string[]>, spiffeId: string | null }>> = {
  alice: { commonName: 'alice', san: { ...none, email: ['alice@example.com'] }, spiffeId: null },
  bob: { commonName: 'bob', san: none, spiffeId: null },
  rsa: { commonName: 'rsa-user', san: { ...none, email: ['rsa-user@example.com'] }, spiffeId: null },
  tricky: { commonName: '#Smith, John+admin=1 "x" <a/b>;\\ ', san: none, spiffeId: null },
  utf8: { commonName: 'Jürgen Ünicode 测试', san: none, spiffeId: null },
  multirdn: { commonName: 'bob', san: none, spiffeId: null },
  twoou: { commonName: 'carol', san: none, spiffeId: null },
  ctrl: { commonName: 'evil\r\nX-Injected: 1\tTab', san: none, spiffeId: null },
  nocn: {
    commonName: null,
    san: { dns: ['empty.example.org'], email: ['empty@example.org'], uri: ['spiffe://example.org/ns/empty'], ip: [] },
    spiffeId: 'spiffe://example.org/ns/empty'
  },
  san: {
    commonName: 'api.example.org',
    san: {
      dns: ['api.example.org', '*.svc.example.net'],
      email: ['api@example.org'],
      uri: ['spiffe://example.org/ns/prod/sa/api'],
      ip: ['127.0.0.1', '2001:db8::1']
    },
    spiffeId: 'spiffe://example.org/ns/prod/sa/api'
  }
}

t.test('direct TLS: every certificate of the corpus yields the identity openssl and node:crypto describe', async (t) => {
  const corpus = await getCorpus()
  const { app, url } = await startTlsApp()
  t.teardown(() => app.close())
  for (const [name, expected] of Object.entries(expectations)) {
    const leaf = corpus.leaves[name as LeafName]
    const agent = await clientAgent(name as LeafName)
    const response = await request(url + '/whoami', { dispatcher: agent })
    const identity = await response.body.json() as Record<string, unknown>
    await agent.close()
    const x509 = new X509Certificate(leaf.certPem)
    t.equal(response.statusCode, 200, `${name}: admitted`)
    t.same(identity, {
      source: 'tls',
      proxy: null,
      verified: true,
      verifyError: null,
      subject: opensslName(leaf.certPath, 'subject', 'RFC2253,-esc_msb'),
      issuer: opensslName(leaf.certPath, 'issuer', 'RFC2253,-esc_msb'),
      subjectRDNs: identity.subjectRDNs,
      issuerRDNs: identity.issuerRDNs,
      commonName: expected.commonName,
      san: expected.san,
      spiffeId: expected.spiffeId,
      serialNumber: x509.serialNumber,
      fingerprint256: x509.fingerprint256,
      notBefore: new Date(x509.validFrom).toISOString(),
      notAfter: new Date(x509.validTo).toISOString(),
      certificate: 'X509Certificate'
    }, `${name}: identity`)
  }
})

t.test('multi-valued RDNs stay together in RFC 4514 order', async (t) => {
  const { app, url } = await startTlsApp()
  t.teardown(() => app.close())
  const agent = await clientAgent('multirdn')
  t.teardown(() => agent.close())
  const identity = await (await request(url + '/whoami', { dispatcher: agent })).body.json() as { subjectRDNs: unknown, subject: string }
  t.equal(identity.subject, 'UID=1234+CN=bob,O=Example Corp,C=US')
  t.same(identity.subjectRDNs, [
    [{ type: 'UID', oid: '0.9.2342.19200300.100.1.1', value: '1234' }, { type: 'CN', oid: '2.5.4.3', value: 'bob' }],
    [{ type: 'O', oid: '2.5.4.10', value: 'Example Corp' }],
    [{ type: 'C', oid: '2.5.4.6', value: 'US' }]
  ])
})

t.test('no certificate: 401 on required routes, null on optional ones, nothing on routes with the plugin off', async (t) => {
  const { app, url } = await startTlsApp()
  t.teardown(() => app.close())
  const agent = await clientAgent(null)
  t.teardown(() => agent.close())
  const required = await request(url + '/whoami', { dispatcher: agent })
  t.equal(required.statusCode, 401)
  t.same(await required.body.json(), {
    statusCode: 401,
    code: 'FST_CLIENT_CERT_MISSING',
    error: 'Unauthorized',
    message: 'A client certificate is required'
  })
  const optional = await request(url + '/maybe', { dispatcher: agent })
  t.equal(optional.statusCode, 200)
  t.same(await optional.body.json(), { clientCert: null })

  const alice = await clientAgent('alice')
  t.teardown(() => alice.close())
  const open = await request(url + '/open', { dispatcher: alice })
  t.same(await open.body.json(), { clientCert: null }, 'clientCert: false routes are left alone')
})

t.test('every verification failure: 401 without the reason, verified false with Node\'s reason on optional routes', async (t) => {
  const { app, url } = await startTlsApp()
  t.teardown(() => app.close())
  const reasons: Array<[LeafName, string]> = [
    ['expired', 'CERT_HAS_EXPIRED'],
    ['notyet', 'CERT_NOT_YET_VALID'],
    ['untrusted', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
    ['selfsigned', 'DEPTH_ZERO_SELF_SIGNED_CERT'],
    ['serverauth', 'INVALID_PURPOSE']
  ]
  for (const [name, reason] of reasons) {
    const agent = await clientAgent(name)
    const refused = await request(url + '/whoami', { dispatcher: agent })
    const body = await refused.body.text()
    t.equal(refused.statusCode, 401, `${name}: refused`)
    t.same(JSON.parse(body), {
      statusCode: 401,
      code: 'FST_CLIENT_CERT_INVALID',
      error: 'Unauthorized',
      message: 'The client certificate could not be verified'
    }, `${name}: static body`)
    t.notMatch(body, reason, `${name}: the reason stays in the log`)
    const optional = await (await request(url + '/maybe', { dispatcher: agent })).body.json() as { clientCert: { verified: boolean, verifyError: string } }
    t.equal(optional.clientCert.verified, false)
    t.equal(optional.clientCert.verifyError, reason, `${name}: ${reason}`)
    await agent.close()
  }
})

t.test('the chain sent by the client (leaf + intermediate) verifies too', async (t) => {
  const corpus = await getCorpus()
  // Server and client trust only the root here (OpenSSL would otherwise complete a client's chain from the
  // client's own trust store): the intermediate must travel in the client's certificate chain.
  const { app, url } = await startTlsApp({ https: { ca: corpus.root.certPem } })
  t.teardown(() => app.close())
  const withChain = await clientAgent('alice', { chain: true, connect: { ca: corpus.root.certPem } })
  t.teardown(() => withChain.close())
  const identity = await (await request(url + '/whoami', { dispatcher: withChain })).body.json() as { verified: boolean, commonName: string }
  t.equal(identity.verified, true)
  t.equal(identity.commonName, 'alice')
  const leafOnly = await clientAgent('alice', { connect: { ca: corpus.root.certPem } })
  t.teardown(() => leafOnly.close())
  const refused = await request(url + '/maybe', { dispatcher: leafOnly })
  t.match(await refused.body.json(), { clientCert: { verified: false, verifyError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' } })
})
