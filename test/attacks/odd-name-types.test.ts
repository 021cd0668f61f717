// Attacker: a certificate holder whose CA signs a name value of a type that is no character string (a CSR the
// operator reads as `CN = #0705616C696365`). Node's text rendering prints such a value's raw bytes, which would
// make `CN` of type 7 holding `alice` read as alice; the identity follows OpenSSL's RFC 2253 output instead
// (`#` and the DER), read from the certificate's DER.
import t from 'tap'
import { X509Certificate, createPrivateKey, sign } from 'node:crypto'
import { Agent, request } from 'undici'
import { identityFromCertificate } from '../../lib/index.js'
import { certificateNames } from '../../lib/codecs/x509-names.js'
import { dnEquals, parseDN } from '../../lib/codecs/dn.js'
import { CertificateParseError } from '../../lib/codecs/parse-error.js'
import { getCorpus } from '../helpers/certs.js'
import { startTlsApp } from '../helpers/server.js'

const corpus = await getCorpus()

function tlv (tag: number, body: Buffer): Buffer {
  const n = body.length
  const head = n < 0x80 ? [tag, n] : n < 0x100 ? [tag, 0x81, n] : [tag, 0x82, n >> 8, n & 0xff]
  return Buffer.concat([Buffer.from(head), body])
}

/** The outer TLVs of a certificate: its body, signature algorithm and signature. */
function parts (der: Buffer): Buffer[] {
  const out: Buffer[] = []
  let pos = der[1]! < 0x80 ? 2 : 2 + (der[1]! & 0x7f)
  while (pos < der.length) {
    const first = der[pos + 1]!
    const size = first < 0x80 ? 2 + first : 2 + (first & 0x7f) + der.readUIntBE(pos + 2, first & 0x7f)
    out.push(der.subarray(pos, pos + size))
    pos += size
  }
  return out
}

/** alice's certificate with `from` replaced by `to` in its body, signed again by the corpus intermediate. */
function resigned (from: Buffer, to: Buffer): { pem: string, der: Buffer } {
  const [tbs, algorithm] = parts(new X509Certificate(corpus.leaves.alice.certPem).raw)
  const at = tbs!.indexOf(from)
  if (at === -1 || to.length !== from.length) throw new Error('patch does not fit')
  const patched = Buffer.from(tbs!)
  to.copy(patched, at)
  const signature = sign('sha256', patched, createPrivateKey(corpus.intermediate.keyPem))
  const der = tlv(0x30, Buffer.concat([patched, algorithm!, tlv(0x03, Buffer.concat([Buffer.from([0]), signature]))]))
  return { der, pem: `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n` }
}

const utf8Alice = Buffer.from('0c05616c696365', 'hex')
const odd = resigned(utf8Alice, Buffer.from('0705616c696365', 'hex'))

t.test('a CN of type ObjectDescriptor holding "alice" is not alice (direct TLS)', async (t) => {
  t.match(new X509Certificate(odd.pem).subject, /CN=alice/, 'Node\'s text rendering shows it as alice: the trap')
  const { app, url } = await startTlsApp({
    routes: (app) => {
      app.get('/whoami', { config: { clientCert: { allow: { subjects: [{ CN: 'alice' }] } } } }, async (req) => ({ subject: req.clientCert!.subject }))
      app.get('/maybe', { config: { clientCert: { required: false } } }, async (req) => ({
        subject: req.clientCert?.subject, verified: req.clientCert?.verified, commonName: req.clientCert?.commonName
      }))
    }
  })
  t.teardown(() => app.close())
  const agent = new Agent({ connect: { ca: corpus.caPem, servername: 'localhost', cert: odd.pem, key: corpus.leaves.alice.keyPem } })
  t.teardown(() => agent.close())
  const ruled = await request(url + '/whoami', { dispatcher: agent })
  t.equal(ruled.statusCode, 403, 'allow { CN: "alice" } does not admit it')
  t.equal((await ruled.body.json() as { code: string }).code, 'FST_CLIENT_CERT_FORBIDDEN')
  const seen = await request(url + '/maybe', { dispatcher: agent })
  t.same(await seen.body.json(), {
    subject: 'emailAddress=alice@example.com,CN=#0705616C696365,O=Example Corp,C=US',
    verified: true,
    commonName: '#0705616C696365'
  }, 'the value is printed as OpenSSL prints it: # and its DER')
  const printed = 'emailAddress=alice@example.com,CN=#0705616C696365,O=Example Corp,C=US'
  t.ok(dnEquals(parseDN(printed), certificateNames(odd.der).subject), 'a proxy forwarding that subject string gives the same name')
  const real = new Agent({ connect: { ca: corpus.caPem, servername: 'localhost', cert: corpus.leaves.alice.certPem, key: corpus.leaves.alice.keyPem } })
  t.teardown(() => real.close())
  t.equal((await request(url + '/whoami', { dispatcher: real })).statusCode, 200, 'the genuine alice still passes the rule')
})

t.test('certificateNames: what OpenSSL prints as text and what it dumps', async (t) => {
  const value = (der: Buffer): unknown => certificateNames(der).subject.find((rdn) => rdn[0]!.oid === '2.5.4.3')![0]
  t.same(value(resigned(utf8Alice, Buffer.from('0305006c696365', 'hex')).der), { type: 'CN', oid: '2.5.4.3', value: '#0305006C696365', der: true }, 'a BIT STRING')
  // Types outside OpenSSL's mask for a name value: it refuses the certificate, and so does the DER reader.
  for (const [hex, what] of [['1705616c696365', 'a UTCTime'], ['1b05616c696365', 'a GeneralString']]) {
    const refused = resigned(utf8Alice, Buffer.from(hex!, 'hex'))
    t.throws(() => new X509Certificate(refused.der), `OpenSSL refuses ${what!} as a name value`)
    t.throws(() => certificateNames(refused.der), CertificateParseError, `so does certificateNames: ${what!}`)
  }
  // The first `O=Example Corp` of the body is the issuer's.
  const corp = Buffer.from('0c0c' + Buffer.from('Example Corp').toString('hex'), 'hex')
  t.throws(() => identityFromCertificate(resigned(corp, Buffer.from('1e0cd83dde000041004200430044', 'hex')).pem), CertificateParseError, 'a BMPString holding a surrogate')
  t.same(certificateNames(resigned(corp, Buffer.from('1e0c00e4006d004b8bd500410042', 'hex')).der).issuer[2], [{ type: 'O', oid: '2.5.4.10', value: 'ämK试AB' }], 'a BMPString')
  t.throws(() => certificateNames(resigned(Buffer.from('0c05616c696365', 'hex'), Buffer.from('1e05006c696365', 'hex')).der), CertificateParseError, 'an odd-length BMPString')
  t.throws(() => identityFromCertificate(resigned(Buffer.from('0c05616c696365', 'hex'), Buffer.from('0c05616cff6365', 'hex')).pem), CertificateParseError, 'invalid UTF-8')
})

t.test('certificateNames on names built by hand: OIDs and RDN sets', async (t) => {
  const oid = (hex: string): Buffer => tlv(0x06, Buffer.from(hex, 'hex'))
  const ava = (type: Buffer, text: string): Buffer => tlv(0x30, Buffer.concat([type, tlv(0x0c, Buffer.from(text))]))
  const name = (...sets: Buffer[][]): Buffer => tlv(0x30, Buffer.concat(sets.map((set) => tlv(0x31, Buffer.concat(set)))))
  const certificate = (subject: Buffer): Buffer => tlv(0x30, tlv(0x30, Buffer.concat([
    tlv(0xa0, tlv(0x02, Buffer.from([2]))), tlv(0x02, Buffer.from([1])), tlv(0x30, Buffer.alloc(0)), name(), tlv(0x30, Buffer.alloc(0)), subject
  ])))
  t.same(certificateNames(certificate(name([ava(oid('550403'), 'a'), ava(oid('55040a'), 'b')], [ava(oid('550406'), 'c')]))), {
    issuer: [],
    subject: [[{ type: 'C', oid: '2.5.4.6', value: 'c' }], [{ type: 'O', oid: '2.5.4.10', value: 'b' }, { type: 'CN', oid: '2.5.4.3', value: 'a' }]]
  }, 'RFC 4514 order: RDNs and the members of a multi-valued RDN reversed')
  const typeOf = (hex: string): string => certificateNames(certificate(name([ava(oid(hex), 'x')]))).subject[0]![0]!.oid
  t.equal(typeOf('0203'), '0.2.3', 'first arc 0')
  t.equal(typeOf('2a864886f70d'), '1.2.840.113549', 'first arc 1, multi-byte sub-identifiers')
  t.equal(typeOf('883703'), '2.999.3', 'first arc 2 past 39')
  t.throws(() => typeOf(''), CertificateParseError, 'an empty OID')
  t.throws(() => typeOf('5581'), CertificateParseError, 'a truncated sub-identifier')
  t.throws(() => typeOf('558001'), CertificateParseError, 'a non-minimal sub-identifier')
  t.throws(() => typeOf('55ffffffffffffff7f'), CertificateParseError, 'a sub-identifier too large')
  t.throws(() => certificateNames(certificate(name([]))), CertificateParseError, 'an empty RDN set')
  const bmp = (hex: string): unknown => certificateNames(certificate(name([tlv(0x30, Buffer.concat([oid('550403'), tlv(0x1e, Buffer.from(hex, 'hex'))]))]))).subject[0]![0]!.value
  t.equal(bmp(''), '', 'an empty BMPString')
  t.equal(bmp('0061'), 'a')
  t.throws(() => bmp('006100'), CertificateParseError, 'an odd-length BMPString')
  t.throws(() => bmp('d83dde00'), CertificateParseError, 'a surrogate pair, which UCS-2 does not have')
  const twoValues = tlv(0x30, Buffer.concat([oid('550403'), tlv(0x0c, Buffer.from('a')), tlv(0x0c, Buffer.from('b'))]))
  t.throws(() => certificateNames(certificate(tlv(0x30, tlv(0x31, twoValues)))), CertificateParseError, 'an attribute with two values')
})
