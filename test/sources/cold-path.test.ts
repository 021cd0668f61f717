// Behind a proxy that verified the certificate, a certificate never seen before is read by the DER reader alone:
// no `X509Certificate` (OpenSSL's parser, most of a cold request's cost) is built unless something needs it
// (`proxy.ca`, `crl`, `spiffe.bundles`, a route reading `identity.certificate`). Node's class is replaced by a
// counting subclass for this file's process, so every construction anywhere in the plugin is seen.
import t from 'tap'
import crypto from 'node:crypto'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { syncBuiltinESMExports } from 'node:module'
import Fastify from 'fastify'
import { certificateThumbprint, decisionChannelName, fastifyClientCert } from '../../lib/index.js'
import { composeIdentity, fieldsFromDer } from '../../lib/identity.js'
import * as w from '../helpers/der-writer.js'

const Original = crypto.X509Certificate
let constructed = 0
crypto.X509Certificate = class CountingX509Certificate extends Original {
  constructor (...args: ConstructorParameters<typeof Original>) {
    super(...args)
    constructed++
  }
}
syncBuiltinESMExports()
t.teardown(() => {
  crypto.X509Certificate = Original
  syncBuiltinESMExports()
})

const trusted = '127.0.0.1'

/** Certificate `i`: its own serial, CN, e-mail and SPIFFE ID, as a fleet of devices has. */
function device (i: number): Buffer {
  const san = w.seq(w.tlv(0x81, Buffer.from(`device-${i}@example.org`)), w.tlv(0x86, Buffer.from(`spiffe://example.org/device/${i}`)))
  return w.build({
    serial: Buffer.from([0x10, i >> 8, i & 0xff]),
    subject: w.name([[['2.5.4.10', 0x13, Buffer.from('Fleet')]], [['2.5.4.3', 0x0c, Buffer.from(`device-${i}`)]]]),
    extensions: [w.extension('2.5.29.17', san)]
  })
}

function nginxHeaders (der: Buffer): Record<string, string> {
  const pem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`
  return { 'x-ssl-client-cert': encodeURIComponent(pem), 'x-ssl-client-verify': 'SUCCESS' }
}

t.test('behind nginx, new certificates build no X509Certificate unless a route reads identity.certificate', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyClientCert, {
    mode: 'proxy',
    proxy: { preset: 'nginx', trust: [trusted] },
    // The user cache keys on the fingerprint: it must not need the certificate either.
    resolveUser: async (identity) => ({ name: identity.commonName })
  })
  app.get('/fields', async (request) => {
    const identity = request.clientCert!
    // Everything a route or a log reads of an identity but the certificate object itself.
    return {
      ...Object.fromEntries(Object.entries(Object.getOwnPropertyDescriptors(identity)).filter(([key]) => key !== 'certificate').map(([key, d]) => [key, d.value])),
      thumbprint: certificateThumbprint(identity),
      user: request.user
    }
  })
  app.get('/certificate', async (request) => {
    const identity = request.clientCert!
    const certificate = identity.certificate!
    return { fingerprint256: certificate.fingerprint256, same: certificate === request.clientCert!.certificate }
  })
  const decisions: unknown[] = []
  const listener = (message: unknown): void => { decisions.push((message as Record<string, unknown>)['tls.client.subject']) }
  subscribe(decisionChannelName, listener)
  t.teardown(() => unsubscribe(decisionChannelName, listener))
  await app.ready()
  const count = 40
  const ders = Array.from({ length: count }, (_, i) => device(i))
  const before = constructed
  for (const [i, der] of ders.entries()) {
    const response = await app.inject({ url: '/fields', remoteAddress: trusted, headers: nginxHeaders(der) })
    t.equal(response.statusCode, 200)
    t.match(response.json(), { commonName: `device-${i}`, spiffeId: `spiffe://example.org/device/${i}`, verified: true, user: { name: `device-${i}` } })
  }
  t.equal(constructed - before, 0, `${count} cold requests, ${count} identities read and published: no X509Certificate built`)
  t.equal(decisions.length, count)

  // A route that asks for the certificate gets it, built once for the certificate: the forwarded-certificate
  // cache hands the next request the same fields, whose certificate is already there.
  const asked = constructed
  for (let round = 0; round < 2; round++) {
    const response = await app.inject({ url: '/certificate', remoteAddress: trusted, headers: nginxHeaders(ders[0]!) })
    t.same(response.json(), { fingerprint256: new Original(ders[0]!).fingerprint256, same: true })
  }
  t.equal(constructed - asked, 1, 'one X509Certificate for two requests that read it')
})

t.test('composing an identity never reads the certificate: identities of one fields share it', async (t) => {
  const der = device(1000)
  const before = constructed
  const fields = fieldsFromDer(der)
  const how = { source: 'proxy', proxy: 'nginx', verified: true, verifyError: null } as const
  const a = composeIdentity(fields, how)
  const b = composeIdentity(fields, { ...how, verified: false })
  t.equal(constructed - before, 0, 'nothing built yet')
  const descriptor = Object.getOwnPropertyDescriptor(a, 'certificate')!
  t.ok(descriptor.enumerable === true && typeof descriptor.get === 'function', 'an enumerable getter on the identity')
  t.ok(Object.isFrozen(a) && Object.isFrozen(b))
  t.equal(a.certificate, b.certificate, 'one X509Certificate for both identities')
  t.equal(a.certificate, fields.certificate, 'and for the fields')
  t.equal(constructed - before, 1, 'built once')
  t.equal(JSON.parse(JSON.stringify({ ...a })).certificate !== undefined, true, 'spread and JSON read it as a plain property')
  t.same(Object.keys(a), ['source', 'proxy', 'verified', 'verifyError', 'subject', 'issuer', 'subjectRDNs', 'issuerRDNs',
    'commonName', 'san', 'spiffeId', 'serialNumber', 'fingerprint256', 'notBefore', 'notAfter', 'certificate'], 'the same keys, in order')

  // Fields made by hand (no slot) lend their certificate as it is: null, or the object itself.
  const plain = { ...fields, certificate: null }
  t.equal(composeIdentity(plain, how).certificate, null)
  const given = new Original(der)
  t.equal(composeIdentity({ ...fields, certificate: given }, how).certificate, given)
})

t.test('a forward keeps its DER in memory of its own, and a forward without a certificate has no chain', async (t) => {
  const { normalizeOptions } = await import('../../lib/options.js')
  const { ProxySource } = await import('../../lib/sources/proxy.js')
  const settings = normalizeOptions({ mode: 'proxy', proxy: { preset: 'nginx', trust: [trusted] } })
  const proxy = new ProxySource(settings.proxy!, settings.cache.certificates, null)
  const peer = { socket: { remoteAddress: trusted } }
  const headers = nginxHeaders(device(7))
  const lookup = proxy.lookup(['X-SSL-Client-Cert', headers['x-ssl-client-cert']!, 'X-SSL-Client-Verify', 'SUCCESS'], peer)
  if (lookup.kind !== 'forwarded') throw new Error('no forward')
  const der = lookup.decoded.ders[0]!
  // A slice of Node's 8 KB buffer pool would keep the whole block alive in the cache.
  t.equal(der.buffer.byteLength, der.length, 'not a slice of a shared pool')
  t.same(der, device(7))
  proxy.settle(lookup, true)
  t.equal(proxy.stats().entries, 0, 'a first sighting is not kept')
  proxy.settle(lookup, true)
  t.ok(proxy.stats().bytes >= 10240 + headers['x-ssl-client-cert']!.length + 2 * der.length, 'charged as measured, Node\'s certificate included')
  const none = proxy.lookup(['X-SSL-Client-Verify', 'NONE'], peer)
  t.equal(none.kind === 'forwarded' && none.decoded.fields, null)
  t.same(none.kind === 'forwarded' && none.decoded.chain(), [])
})
