// Malformed fields the DER reader must refuse as OpenSSL does (never an identity): each case is a certificate
// built here around one defect, checked against `new X509Certificate()` so the refusal is OpenSSL's too.
import t, { type Test } from 'tap'
import { X509Certificate } from 'node:crypto'
import { CertificateParseError } from '../../lib/codecs/parse-error.js'
import { certificateFields } from '../../lib/identity.js'
import * as w from '../helpers/der-writer.js'

const spki = w.signingKey.publicKey.export({ type: 'spki', format: 'der' })
const oidBytes = (content: number[]): Buffer => w.tlv(0x06, Buffer.from(content))

function refusedByBoth (t: Test, der: Buffer, what: string): void {
  t.throws(() => new X509Certificate(der), `OpenSSL refuses ${what}`)
  t.throws(() => certificateFields(der), CertificateParseError, `so does the reader: ${what}`)
}

t.test('defects OpenSSL refuses are refused by the reader too', async (t) => {
  // A name attribute of type BIT STRING with no unused-bits count, and one claiming 8 unused bits.
  for (const bits of [Buffer.alloc(0), Buffer.from([8, 0xff])]) {
    refusedByBoth(t, w.build({ subject: w.name([[['2.5.4.3', 0x03, bits]]]) }), `a BIT STRING name value ${bits.toString('hex') || '(empty)'}`)
  }
  // An extension OID with a sub-identifier padded with 0x80.
  const padded = w.seq(oidBytes([0x55, 0x80, 0x1d, 0x0e]), w.tlv(0x04, w.tlv(0x04, Buffer.from([1]))))
  refusedByBoth(t, w.build({ extensions: [padded] }), 'a non-minimal extension OID')
  // A public key algorithm whose NULL parameters hold a byte (OpenSSL refuses it), or whose parameters are a
  // BOOLEAN: OpenSSL takes that and might write it back otherwise, so the reader fails closed on it.
  const bits = spki.subarray(2 + 2 + spki[3]!)
  const name = w.name([[['2.5.4.3', 0x0c, Buffer.from('alice')]]])
  for (const [parameters, what] of [[w.tlv(0x05, Buffer.from([0])), 'a NULL with content'], [w.tlv(0x01, Buffer.from([0xff])), 'BOOLEAN parameters']] as const) {
    const key = w.seq(w.seq(w.oid('1.3.101.112'), parameters), bits)
    const tbs = w.seq(w.tlv(0xa0, w.tlv(0x02, Buffer.from([2]))), w.tlv(0x02, Buffer.from([1])), w.seq(w.oid('1.3.101.112')), name,
      w.seq(w.utcTime('250101000000Z'), w.utcTime('350101000000Z')), name, key)
    if (what === 'a NULL with content') refusedByBoth(t, w.certificate(tbs), what)
    else t.throws(() => certificateFields(w.certificate(tbs)), CertificateParseError, `the reader refuses ${what}`)
  }
  // Control: the same construction with a well-formed key is read, so the refusals above are the defects'.
  const good = w.seq(w.tlv(0xa0, w.tlv(0x02, Buffer.from([2]))), w.tlv(0x02, Buffer.from([1])), w.seq(w.oid('1.3.101.112')), name,
    w.seq(w.utcTime('250101000000Z'), w.utcTime('350101000000Z')), name, spki)
  t.equal(certificateFields(w.certificate(good)).commonName, 'alice')
})
