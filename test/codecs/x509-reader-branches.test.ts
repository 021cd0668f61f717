// Shapes the property tests meet only by chance, each built once here: the reader refuses the malformed ones
// (never an identity) and reads the well-formed control beside each.
import t from 'tap'
import Fastify from 'fastify'
import fastifyClientCert from '../../lib/index.js'
import { CertificateParseError } from '../../lib/codecs/parse-error.js'
import { freezeRDNs } from '../../lib/codecs/x509.js'
import { certificateFields } from '../../lib/identity.js'
import * as w from '../helpers/der-writer.js'

const ED25519 = w.seq(w.oid('1.3.101.112'))

t.test('the outer signature must be whole bytes', async (t) => {
  const tbs = w.body()
  t.throws(() => certificateFields(w.seq(tbs, ED25519, w.tlv(0x03))), CertificateParseError, 'an empty BIT STRING')
  t.throws(() => certificateFields(w.seq(tbs, ED25519, w.tlv(0x03, Buffer.from([1, 0x02])))), CertificateParseError, 'unused bits')
  t.throws(() => certificateFields(Buffer.concat([w.certificate(tbs), Buffer.from([0])])), CertificateParseError, 'trailing data')
  t.equal(certificateFields(w.certificate(tbs)).commonName, 'alice', 'control')
})

t.test('a validity or public key that is no SEQUENCE, and an empty serial', async (t) => {
  const name = w.name([[['2.5.4.3', 0x0c, Buffer.from('alice')]]])
  const spki = w.signingKey.publicKey.export({ type: 'spki', format: 'der' })
  const tbs = (validityTag: number): Buffer => w.seq(w.tlv(0xa0, w.tlv(0x02, Buffer.from([2]))), w.tlv(0x02, Buffer.from([1])), ED25519, name,
    w.tlv(validityTag, w.utcTime('250101000000Z'), w.utcTime('350101000000Z')), name, spki)
  t.throws(() => certificateFields(w.certificate(tbs(0x31))), CertificateParseError, 'a SET for the validity')
  const keyInASet = w.seq(w.tlv(0xa0, w.tlv(0x02, Buffer.from([2]))), w.tlv(0x02, Buffer.from([1])), ED25519, name,
    w.seq(w.utcTime('250101000000Z'), w.utcTime('350101000000Z')), name, w.tlv(0x31, spki.subarray(2)))
  t.throws(() => certificateFields(w.certificate(keyInASet)), CertificateParseError, 'a SET for the public key')
  t.equal(certificateFields(w.certificate(tbs(0x30))).commonName, 'alice', 'control')
  t.throws(() => certificateFields(w.build({ serial: Buffer.alloc(0) })), CertificateParseError, 'an empty serial INTEGER')
})

t.test('unique identifiers are BIT STRINGs in whole form', async (t) => {
  for (const [bits, what] of [[[3], 'one byte claiming unused bits'], [[1, 0x01], 'a padding bit set']] as const) {
    t.throws(() => certificateFields(w.build({ uniqueIds: [w.tlv(0x81, Buffer.from(bits))] })), CertificateParseError, what)
  }
  t.throws(() => certificateFields(w.build({ uniqueIds: [w.tlv(0x81)] })), CertificateParseError, 'no unused-bits count')
  t.equal(certificateFields(w.build({ uniqueIds: [w.tlv(0x81, Buffer.from([1, 0x02]))] })).commonName, 'alice', 'control: a well-formed one')
})

t.test('a subjectAltName that is no SEQUENCE is never read as names', async (t) => {
  const der = w.build({ extensions: [w.extension('2.5.29.17', w.tlv(0x02, Buffer.from([1])))] })
  t.throws(() => certificateFields(der), CertificateParseError, 'refused with a typed error')
})

t.test('a forwarded certificate larger than half of Node\'s buffer pool is read from a buffer of its own', async (t) => {
  const names = Array.from({ length: 300 }, (_, i) => w.tlv(0x82, Buffer.from(`host-${i}.example.org`)))
  const der = w.build({ extensions: [w.extension('2.5.29.17', w.seq(...names))] })
  t.ok(der.length > 4096, 'over 4 KiB of DER')
  const app = Fastify()
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'haproxy', trust: ['127.0.0.1'] } })
  app.get('/', async (request) => ({ dns: request.clientCert?.san?.dns.length, cn: request.clientCert?.commonName }))
  t.teardown(() => app.close())
  const response = await app.inject({ url: '/', remoteAddress: '127.0.0.1', headers: { 'x-ssl-client-cert': der.toString('base64'), 'x-ssl-client-verify': '0', 'x-ssl-client-used': '1' } })
  t.same(response.json(), { dns: 300, cn: 'alice' })
})

t.test('freezeRDNs returns a name frozen already as it is', async (t) => {
  const frozen = Object.freeze([])
  t.equal(freezeRDNs(frozen as unknown as Parameters<typeof freezeRDNs>[0]), frozen)
})

t.test('an extension ID that is empty, cut short or padded is refused, as OpenSSL refuses it', async (t) => {
  const withId = (id: Buffer): Buffer => w.build({ extensions: [w.seq(w.tlv(0x06, id), w.tlv(0x04, w.seq()))] })
  t.throws(() => certificateFields(withId(Buffer.alloc(0))), CertificateParseError, 'an empty OID')
  t.throws(() => certificateFields(withId(Buffer.from([0x2a, 0x86]))), CertificateParseError, 'a last sub-identifier cut short')
  t.throws(() => certificateFields(withId(Buffer.from([0x2a, 0x80, 0x01]))), CertificateParseError, 'a sub-identifier padded with 0x80')
  t.equal(certificateFields(withId(Buffer.from([0x2a, 0x03, 0x04]))).commonName, 'alice', 'control: 1.2.3.4, unknown and not critical')
})
