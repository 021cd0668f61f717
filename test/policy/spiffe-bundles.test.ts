import t from 'tap'
import type { Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { X509Certificate } from 'node:crypto'
import { Agent, request } from 'undici'
import { ClientCertInvalidOptionError, fastifyClientCert, type FastifyClientCertOptions } from '../../lib/index.js'
import { certificateFields, type CertificateFields } from '../../lib/identity.js'
import { normalizeOptions } from '../../lib/options.js'
import { isJwkSetInput, jwkSetCertificates, spiffeVerdict, type SpiffeBundles } from '../../lib/policy/spiffe-bundles.js'
import { isTrustDomain, spiffeIdParts } from '../../lib/codecs/spiffe.js'
import { getSpiffePki, jwkSet, OUR_ADMIN, type Issued } from '../helpers/spiffe-pki.js'
import { namesOnlyProxy } from '../helpers/names-only.js'

const pki = getSpiffePki()
const leaves = pki.leaves
const bundles: SpiffeBundles = new Map([['example.org', [pki.ourRoot.x509]], ['partner.example', [pki.partnerRoot.x509]]])
const fieldsOf = (issued: Issued): CertificateFields => certificateFields(issued.x509)

t.test('codecs: trust domain names and the parts of a SPIFFE ID', async (t) => {
  t.ok(isTrustDomain('example.org'))
  t.ok(isTrustDomain('a-b_c.d9'))
  for (const name of ['', 'Example.org', 'example.org:443', 'spiffe://example.org', 'ex ample', 'a'.repeat(256)]) t.notOk(isTrustDomain(name), JSON.stringify(name))
  t.same(spiffeIdParts('spiffe://example.org/ns/a'), { trustDomain: 'example.org', path: '/ns/a' })
  t.same(spiffeIdParts('spiffe://example.org'), { trustDomain: 'example.org', path: '' })
  t.equal(spiffeIdParts('spiffe://example.org/'), null)
})

t.test('jwkSetCertificates: the x509-svid CAs of a SPIFFE bundle, as the X509-SVID spec (§6.2) consumes one', async (t) => {
  const set = jwkSet(pki.ourRoot, pki.ourIntermediate)
  t.same(jwkSetCertificates(set), [pki.ourRoot.der, pki.ourIntermediate.der], 'a parsed JWK Set')
  t.same(jwkSetCertificates(JSON.stringify(set)), [pki.ourRoot.der, pki.ourIntermediate.der], 'its JSON text')
  t.same(jwkSetCertificates(Buffer.from(JSON.stringify(set))), [pki.ourRoot.der, pki.ourIntermediate.der], 'its JSON bytes')
  const mixed = {
    keys: [
      null, 7,
      { kty: 'EC', use: 'jwt-svid', kid: 'k1', x5c: [pki.partnerRoot.der.toString('base64')] },
      { kty: 'EC', use: 'x509-svid' },
      { kty: 'EC', use: 'x509-svid', x5c: [] },
      { kty: 'EC', use: 'x509-svid', x5c: [pki.ourRoot.der.toString('base64'), 'ignored: only the first value counts'] }
    ],
    spiffe_sequence: 3
  }
  t.same(jwkSetCertificates(mixed), [pki.ourRoot.der], 'other uses, keys without x5c and every x5c value but the first are ignored')
  const reasons: Array<[unknown, RegExp]> = [
    ['{ not json', /not valid JSON/],
    ['null', /not a JWK Set/],
    [{ keys: 'none' }, /not a JWK Set/],
    [{}, /not a JWK Set/],
    [{ keys: [{ use: 'x509-svid', x5c: pki.ourRoot.der.toString('base64') }] }, /x5c is not a list of base64/],
    [{ keys: [{ use: 'x509-svid', x5c: [42] }] }, /x5c is not a list of base64/],
    [{ keys: [{ use: 'x509-svid', x5c: ['not base64!'] }] }, /x5c is not a list of base64/],
    [{ keys: [{ use: 'jwt-svid', x5c: [pki.ourRoot.der.toString('base64')] }] }, /holds no x509-svid key/]
  ]
  for (const [input, reason] of reasons) t.throws(() => jwkSetCertificates(input), reason, JSON.stringify(input))
})

t.test('isJwkSetInput: a JWK Set (object or JSON text) is told from PEM and DER', async (t) => {
  t.ok(isJwkSetInput({ keys: [] }))
  t.ok(isJwkSetInput('  \n{"keys":[]}'))
  t.ok(isJwkSetInput(Buffer.from('\n{"keys":[]}')))
  for (const input of [pki.ourRoot.pem, Buffer.from(pki.ourRoot.pem), pki.ourRoot.der, [pki.ourRoot.pem], null, 42]) t.notOk(isJwkSetInput(input))
})

t.test('spiffeVerdict: the X509-SVID rules and the trust domain binding, each with its own verifyError', async (t) => {
  const now = Date.now()
  const verdict = (issued: Issued, chain: Issued[] | null = []): string | null =>
    spiffeVerdict(bundles, fieldsOf(issued), chain === null ? null : chain.map((c) => c.x509), now)
  t.equal(verdict(leaves.ourAdmin), null, 'our workload, issued by our root')
  t.equal(verdict(leaves.ourAdmin, null), null, 'direct TLS: nothing was sent along')
  t.equal(verdict(leaves.ourBatch, [pki.ourIntermediate]), null, 'through the intermediate sent along')
  t.equal(verdict(leaves.ourBatch), 'SPIFFE_TRUST_DOMAIN_MISMATCH', 'the intermediate not sent: the binding cannot be proven')
  t.equal(verdict(leaves.partnerBilling), null, 'the partner\'s own workload')
  t.equal(verdict(leaves.partnerPlain), null, 'no SPIFFE ID: not an SVID, the bundles do not concern it')
  t.equal(verdict(leaves.forgedAdmin), 'SPIFFE_TRUST_DOMAIN_MISMATCH')
  t.equal(verdict(leaves.forgedAdmin, [pki.ourRoot, pki.partnerRoot]), 'SPIFFE_TRUST_DOMAIN_MISMATCH', 'our root sent along proves nothing')
  t.equal(verdict(leaves.unknownDomain), 'SPIFFE_TRUST_DOMAIN_UNKNOWN')
  t.equal(verdict(leaves.twoUris), 'SVID_MULTIPLE_URIS')
  t.equal(verdict(leaves.twoIds), 'SVID_MULTIPLE_URIS')
  t.equal(verdict(leaves.rootId), 'SVID_INVALID_ID')
  t.equal(verdict(leaves.upperCaseId), 'SVID_INVALID_ID')
  t.equal(verdict(leaves.caLeaf), 'SVID_IS_CA')
  t.equal(verdict(leaves.signingUsage), 'SVID_KEY_USAGE')
  t.equal(verdict(leaves.agreementOnly), 'SVID_KEY_USAGE')
  t.equal(verdict(leaves.noKeyUsage), 'SVID_KEY_USAGE')
  // The path to the right bundle exists but does not hold: verifyChain's own reason.
  t.equal(spiffeVerdict(bundles, fieldsOf(leaves.ourAdmin), [], Date.parse(leaves.ourAdmin.x509.validTo) + 1000), 'CERT_HAS_EXPIRED')

  // OpenSSL keeps a body as the CA signed it, BER included; the strict reader refuses rather than guesses.
  const ber = { raw: Buffer.concat([Buffer.from([0x30, 0x83, 0x00]), leaves.ourAdmin.der.subarray(2)]) } as unknown as X509Certificate
  t.equal(spiffeVerdict(bundles, { ...fieldsOf(leaves.ourAdmin), certificate: ber }, [], now), 'SVID_MALFORMED')

  // Names alone: a proxy that forwards the URI but not the certificate.
  const names = { ...fieldsOf(leaves.ourAdmin), certificate: null }
  t.equal(spiffeVerdict(bundles, names, [], now), 'CERTIFICATE_NOT_FORWARDED')
  t.equal(spiffeVerdict(bundles, { ...names, san: null, spiffeId: null }, [], now), null, 'no names of that kind at all: not an SVID')
})

t.test('registration: spiffe.bundles is checked, each error naming the option', async (t) => {
  const register = (spiffe: unknown): unknown => normalizeOptions({ spiffe })
  const refusals: Array<[unknown, RegExp]> = [
    ['example.org', /option spiffe: must be \{ bundles \}/],
    [{ bundle: {} }, /option spiffe\.bundle: is not an option/],
    [{}, /option spiffe\.bundles: must map at least one trust domain/],
    [{ bundles: {} }, /option spiffe\.bundles: must map at least one trust domain/],
    [{ bundles: [pki.ourRoot.pem] }, /option spiffe\.bundles: must map/],
    [{ bundles: { 'Example.org': pki.ourRoot.pem } }, /option spiffe\.bundles\["Example\.org"\]: is not a trust domain name/],
    [{ bundles: { 'spiffe://example.org': pki.ourRoot.pem } }, /option spiffe\.bundles\["spiffe:\/\/example\.org"\]: is not a trust domain name/],
    [{ bundles: { 'example.org': [] } }, /option spiffe\.bundles\["example\.org"\]: must not be empty/],
    [{ bundles: { 'example.org': leaves.ourAdmin.keyPem } }, /option spiffe\.bundles\["example\.org"\]: holds no PEM certificate/],
    [{ bundles: { 'example.org': [pki.ourRoot.pem, 42] } }, /option spiffe\.bundles\["example\.org"\]\[1\]: must be a PEM string/],
    [{ bundles: { 'example.org': leaves.ourAdmin.pem } }, /option spiffe\.bundles\["example\.org"\]: holds a certificate that is not a CA/],
    [{ bundles: { 'example.org': '{"keys": [' } }, /option spiffe\.bundles\["example\.org"\]: is not valid JSON/],
    [{ bundles: { 'example.org': { keys: [] } } }, /option spiffe\.bundles\["example\.org"\]: holds no x509-svid key/],
    [{ bundles: { 'example.org': [pki.ourRoot.pem, jwkSet(leaves.ourAdmin)] } }, /option spiffe\.bundles\["example\.org"\]\[1\]: holds a certificate that is not a CA/],
    [{ bundles: { 'example.org': { keys: [{ use: 'x509-svid', x5c: ['AAAA'] }] } } }, /option spiffe\.bundles\["example\.org"\]: holds something that is not a valid X\.509 certificate/]
  ]
  for (const [spiffe, message] of refusals) {
    try {
      register(spiffe)
      t.fail(`accepted ${JSON.stringify(spiffe)}`)
    } catch (error) {
      t.ok(error instanceof ClientCertInvalidOptionError)
      t.match((error as Error).message, message)
    }
  }
  const settings = normalizeOptions({
    spiffe: {
      bundles: {
        'example.org': [pki.ourRoot.pem, Buffer.from(JSON.stringify(jwkSet(pki.ourIntermediate)))],
        'partner.example': jwkSet(pki.partnerRoot)
      }
    }
  })
  t.same([...settings.spiffe!.keys()], ['example.org', 'partner.example'])
  t.same(settings.spiffe!.get('example.org')!.map((c) => c.fingerprint256), [pki.ourRoot.x509.fingerprint256, pki.ourIntermediate.x509.fingerprint256], 'PEM and JWK Set in one list')
  t.equal(normalizeOptions({}).spiffe, null, 'off by default')
})

function routes (app: FastifyInstance): void {
  app.get('/admin', { config: { clientCert: { allow: { spiffe: ['spiffe://example.org/ns/admin/*'] } } } }, async (request) => ({ spiffeId: request.clientCert?.spiffeId ?? null }))
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => ({
    verified: request.clientCert?.verified ?? null,
    verifyError: request.clientCert?.verifyError ?? null
  }))
}

t.test('direct TLS: the path is rebuilt from what the client sent; an intermediate only https.ca holds does not bind (documented)', async (t) => {
  const https = {
    key: leaves.server.keyPem,
    cert: leaves.server.pem,
    ca: [pki.ourRoot.pem, pki.ourIntermediate.pem, pki.partnerRoot.pem],
    requestCert: true,
    rejectUnauthorized: false
  }
  const app = Fastify({ https } as unknown as FastifyServerOptions) as unknown as FastifyInstance
  await app.register(fastifyClientCert, { spiffe: { bundles: { 'example.org': jwkSet(pki.ourRoot), 'partner.example': pki.partnerRoot.pem } } })
  routes(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const url = `https://localhost:${(app.server.address() as { port: number }).port}`
  const get = async (t: Test, path: string, cert: string, key: string): Promise<unknown> => {
    const agent = new Agent({ connect: { ca: pki.ourRoot.pem, servername: 'localhost', cert, key } })
    t.teardown(() => agent.close())
    const response = await request(url + path, { dispatcher: agent })
    return { status: response.statusCode, body: await response.body.json() }
  }
  const batch = leaves.ourBatch
  t.same(await get(t, '/admin', batch.pem + pki.ourIntermediate.pem, batch.keyPem), { status: 200, body: { spiffeId: 'spiffe://example.org/ns/admin/batch' } })
  // TLS verifies it through https.ca's intermediate, but the bundle holds only the root: as Envoy's SPIFFE
  // validator, the plugin builds the path from the client's own chain.
  t.same(await get(t, '/maybe', batch.pem, batch.keyPem), { status: 200, body: { verified: false, verifyError: 'SPIFFE_TRUST_DOMAIN_MISMATCH' } })
  t.same(await get(t, '/maybe', leaves.partnerPlain.pem, leaves.partnerPlain.keyPem), { status: 200, body: { verified: true, verifyError: null } }, 'a certificate without a SPIFFE ID is not concerned')
})

t.test('behind a proxy: a leaf issued by a bundle CA binds without a chain; names alone cannot (CERTIFICATE_NOT_FORWARDED)', async (t) => {
  const spiffe = { bundles: { 'example.org': pki.ourRoot.pem } }
  const nginx = Fastify() as unknown as FastifyInstance
  await nginx.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1' }, spiffe })
  routes(nginx)
  t.teardown(() => nginx.close())
  const nginxHeaders = (issued: Issued): Record<string, string> => ({ 'x-ssl-client-cert': encodeURIComponent(issued.pem), 'x-ssl-client-verify': 'SUCCESS' })
  const viaNginx = async (path: string, issued: Issued): Promise<unknown> => {
    const response = await nginx.inject({ url: path, remoteAddress: '127.0.0.1', headers: nginxHeaders(issued) })
    return { status: response.statusCode, body: response.json() }
  }
  t.same(await viaNginx('/admin', leaves.ourAdmin), { status: 200, body: { spiffeId: OUR_ADMIN } }, 'issued by the root in the bundle')
  t.same(await viaNginx('/maybe', leaves.ourBatch), { status: 200, body: { verified: false, verifyError: 'SPIFFE_TRUST_DOMAIN_MISMATCH' } }, 'nginx forwards no chain: the intermediate cannot be proven')

  const envoy = Fastify() as unknown as FastifyInstance
  await envoy.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'envoy', trust: '127.0.0.1' }, spiffe })
  routes(envoy)
  t.teardown(() => envoy.close())
  const xfcc = { 'x-forwarded-client-cert': `By=spiffe://example.org/ns/gateway;Hash=${'ab'.repeat(32)};URI=${OUR_ADMIN}` }
  t.same((await envoy.inject({ url: '/maybe', remoteAddress: '127.0.0.1', headers: xfcc })).json(), { verified: false, verifyError: 'CERTIFICATE_NOT_FORWARDED' })
  t.equal((await envoy.inject({ url: '/admin', remoteAddress: '127.0.0.1', headers: xfcc })).statusCode, 401)

  const names = Fastify() as unknown as FastifyInstance
  await names.register(fastifyClientCert, { mode: 'proxy', proxy: namesOnlyProxy, spiffe } as FastifyClientCertOptions)
  routes(names)
  t.teardown(() => names.close())
  const dn = { 'x-client-s-dn': 'CN=alice', 'x-client-i-dn': 'CN=Some CA', 'x-client-serial': '01', 'x-client-verify': 'SUCCESS' }
  t.same((await names.inject({ url: '/maybe', remoteAddress: '127.0.0.1', headers: dn })).json(), { verified: true, verifyError: null }, 'a name without URIs is not concerned')
})
