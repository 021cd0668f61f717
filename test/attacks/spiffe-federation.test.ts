// Attacker: a federated partner, whose CA we trust for the partner's own workloads (its bundle sits beside ours in
// `https.ca` or behind the proxy), mints a certificate that claims OUR trust domain's SPIFFE ID, or one that bends
// the X509-SVID rules (two URIs, a CA as the leaf, a signing key) to slip past `allow.spiffe` / `allow.uris`.
// With `spiffe.bundles`, an ID counts only from the bundle of its own trust domain, in both modes.
import t from 'tap'
import type { Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { Agent, request } from 'undici'
import { fastifyClientCert, type FastifyClientCertOptions } from '../../lib/index.js'
import type { AllowRules } from '../../lib/policy/allow.js'
import { getSpiffePki, jwkSet, OUR_ADMIN, type Issued, type LeafName } from '../helpers/spiffe-pki.js'

const trusted = '127.0.0.1'
const pki = getSpiffePki()
const leaves = pki.leaves
// Our bundle as PEM, the partner's in the SPIFFE bundle format (JWK Set) as its bundle endpoint serves it.
const bundles = { 'example.org': pki.ourRoot.pem, 'partner.example': JSON.stringify(jwkSet(pki.partnerRoot)) }
const ourAdmins: AllowRules = { spiffe: ['spiffe://example.org/ns/admin/*'] }

function routes (app: FastifyInstance, allow: AllowRules): void {
  app.get('/admin', { config: { clientCert: { allow } } }, async (request) => ({ spiffeId: request.clientCert?.spiffeId ?? null }))
  app.get('/partner', { config: { clientCert: { allow: { spiffe: ['spiffe://partner.example/*'] } } } }, async (request) => ({ spiffeId: request.clientCert?.spiffeId ?? null }))
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => ({
    verified: request.clientCert?.verified ?? null,
    verifyError: request.clientCert?.verifyError ?? null
  }))
}

async function tlsApp (t: Test, allow: AllowRules = ourAdmins): Promise<string> {
  const https = {
    key: leaves.server.keyPem,
    cert: leaves.server.pem,
    // Node's handshake trusts every bundle at once; the plugin binds each ID to its own.
    ca: [pki.ourRoot.pem, pki.partnerRoot.pem],
    requestCert: true,
    rejectUnauthorized: false
  }
  const app = Fastify({ https } as unknown as FastifyServerOptions) as unknown as FastifyInstance
  await app.register(fastifyClientCert, { spiffe: { bundles } })
  routes(app, allow)
  await app.listen({ host: trusted, port: 0 })
  t.teardown(() => app.close())
  return `https://localhost:${(app.server.address() as { port: number }).port}`
}

async function tlsGet (t: Test, url: string, path: string, leaf: Issued, sent: Issued[] = []): Promise<{ status: number, body: Record<string, unknown> }> {
  const agent = new Agent({ connect: { ca: pki.ourRoot.pem, servername: 'localhost', cert: leaf.pem + sent.map((c) => c.pem).join(''), key: leaf.keyPem } })
  t.teardown(() => agent.close())
  const response = await request(url + path, { dispatcher: agent })
  return { status: response.statusCode, body: await response.body.json() as Record<string, unknown> }
}

async function proxyApp (t: Test, allow: AllowRules = ourAdmins): Promise<FastifyInstance> {
  const app = Fastify() as unknown as FastifyInstance
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'rfc9440', trust: trusted }, spiffe: { bundles } } as FastifyClientCertOptions)
  routes(app, allow)
  t.teardown(() => app.close())
  return app
}

/** RFC 9440 headers as the proxy sends them: the leaf, and the chain the client presented. */
function forwarded (leaf: Issued, chain: Issued[] = []): Record<string, string> {
  const item = (c: Issued): string => `:${c.der.toString('base64')}:`
  return chain.length === 0 ? { 'client-cert': item(leaf) } : { 'client-cert': item(leaf), 'client-cert-chain': chain.map(item).join(', ') }
}

async function proxyGet (app: FastifyInstance, path: string, leaf: Issued, chain: Issued[] = []): Promise<{ status: number, body: Record<string, unknown> }> {
  const response = await app.inject({ url: path, remoteAddress: trusted, headers: forwarded(leaf, chain) })
  return { status: response.statusCode, body: response.json() }
}

t.test('direct TLS: the partner CA minting our admin\'s SPIFFE ID is refused by our allow rules (401 SPIFFE_TRUST_DOMAIN_MISMATCH); both domains\' own IDs pass', async (t) => {
  const url = await tlsApp(t)
  const forged = await tlsGet(t, url, '/admin', leaves.forgedAdmin)
  t.equal(forged.status, 401)
  t.equal(forged.body.code, 'FST_CLIENT_CERT_INVALID')
  t.same((await tlsGet(t, url, '/maybe', leaves.forgedAdmin)).body, { verified: false, verifyError: 'SPIFFE_TRUST_DOMAIN_MISMATCH' })
  // Sending our root along changes nothing: the partner's CA signed the leaf, not ours.
  t.equal((await tlsGet(t, url, '/admin', leaves.forgedAdmin, [pki.partnerRoot, pki.ourRoot])).status, 401)

  t.same(await tlsGet(t, url, '/admin', leaves.ourAdmin), { status: 200, body: { spiffeId: OUR_ADMIN } })
  t.same(await tlsGet(t, url, '/admin', leaves.ourBatch, [pki.ourIntermediate]), { status: 200, body: { spiffeId: 'spiffe://example.org/ns/admin/batch' } }, 'through our intermediate, sent by the client')
  t.same(await tlsGet(t, url, '/partner', leaves.partnerBilling), { status: 200, body: { spiffeId: 'spiffe://partner.example/ns/billing' } }, 'the partner\'s own workload')
})

t.test('direct TLS: the partner CA minting an ID of a trust domain that has no bundle is not verified (SPIFFE_TRUST_DOMAIN_UNKNOWN)', async (t) => {
  const url = await tlsApp(t, { spiffe: ['spiffe://unknown.example/*'] })
  t.equal((await tlsGet(t, url, '/admin', leaves.unknownDomain)).status, 401)
  t.same((await tlsGet(t, url, '/maybe', leaves.unknownDomain)).body, { verified: false, verifyError: 'SPIFFE_TRUST_DOMAIN_UNKNOWN' })
})

t.test('direct TLS: an X509-SVID with a second URI SAN is refused (SVID_MULTIPLE_URIS)', async (t) => {
  const url = await tlsApp(t)
  t.equal((await tlsGet(t, url, '/admin', leaves.twoUris)).status, 401)
  t.same((await tlsGet(t, url, '/maybe', leaves.twoUris)).body, { verified: false, verifyError: 'SVID_MULTIPLE_URIS' })
})

t.test('behind a proxy (forwarded chain): the partner CA minting our admin\'s SPIFFE ID is refused (401 SPIFFE_TRUST_DOMAIN_MISMATCH); both domains\' own IDs pass', async (t) => {
  const app = await proxyApp(t)
  for (const chain of [[], [pki.partnerRoot], [pki.partnerRoot, pki.ourRoot], [pki.ourIntermediate, pki.ourRoot]]) {
    const forged = await proxyGet(app, '/admin', leaves.forgedAdmin, chain)
    t.equal(forged.status, 401, `forwarded with ${chain.length} chain certificate(s)`)
    t.equal(forged.body.code, 'FST_CLIENT_CERT_INVALID')
    t.same((await proxyGet(app, '/maybe', leaves.forgedAdmin, chain)).body, { verified: false, verifyError: 'SPIFFE_TRUST_DOMAIN_MISMATCH' })
  }
  t.same(await proxyGet(app, '/admin', leaves.ourAdmin), { status: 200, body: { spiffeId: OUR_ADMIN } })
  t.same(await proxyGet(app, '/admin', leaves.ourBatch, [pki.ourIntermediate]), { status: 200, body: { spiffeId: 'spiffe://example.org/ns/admin/batch' } })
  t.same(await proxyGet(app, '/partner', leaves.partnerBilling), { status: 200, body: { spiffeId: 'spiffe://partner.example/ns/billing' } })
})

t.test('behind a proxy: the partner CA minting an ID of a trust domain that has no bundle is not verified (SPIFFE_TRUST_DOMAIN_UNKNOWN)', async (t) => {
  const app = await proxyApp(t, { spiffe: ['spiffe://unknown.example/*'] })
  t.equal((await proxyGet(app, '/admin', leaves.unknownDomain)).status, 401)
  t.same((await proxyGet(app, '/maybe', leaves.unknownDomain)).body, { verified: false, verifyError: 'SPIFFE_TRUST_DOMAIN_UNKNOWN' })
})

// Each certificate is issued by our own root, so only the X509-SVID rule can refuse it; each rule it would pass
// without that check is given.
const violations: Array<[LeafName, string, AllowRules, string]> = [
  ['twoUris', 'a second URI SAN beside our admin\'s ID', ourAdmins, 'SVID_MULTIPLE_URIS'],
  ['twoIds', 'two SPIFFE IDs, one matched by a uris rule', { uris: [OUR_ADMIN] }, 'SVID_MULTIPLE_URIS'],
  ['rootId', 'the trust domain\'s own ID (no path) as a workload', { spiffe: ['spiffe://example.org'] }, 'SVID_INVALID_ID'],
  ['upperCaseId', 'an ID in another case spelling, matched by a uris rule', { uris: ['spiffe://EXAMPLE.org/ns/admin/api'] }, 'SVID_INVALID_ID'],
  ['caLeaf', 'a CA certificate (cA true) as the leaf', ourAdmins, 'SVID_IS_CA'],
  ['signingUsage', 'a leaf whose key may sign CRLs', ourAdmins, 'SVID_KEY_USAGE'],
  ['agreementOnly', 'a leaf without digitalSignature', ourAdmins, 'SVID_KEY_USAGE'],
  ['noKeyUsage', 'a leaf without the key usage extension', ourAdmins, 'SVID_KEY_USAGE']
]

for (const [leaf, what, allow, verifyError] of violations) {
  t.test(`behind a proxy: an X509-SVID rule bent (${what}) is refused (${verifyError})`, async (t) => {
    const app = await proxyApp(t, allow)
    const refused = await proxyGet(app, '/admin', leaves[leaf])
    t.equal(refused.status, 401)
    t.equal(refused.body.code, 'FST_CLIENT_CERT_INVALID')
    t.same((await proxyGet(app, '/maybe', leaves[leaf])).body, { verified: false, verifyError })
  })
}
