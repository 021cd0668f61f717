import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { CertificateParseError, identityFromCertificate } from '../lib/index.js'
import { getCorpus } from './helpers/certs.js'

t.test('identityFromCertificate accepts PEM, DER and X509Certificate, and says nothing is verified', async (t) => {
  const corpus = await getCorpus()
  const alice = corpus.leaves.alice
  const fromPem = identityFromCertificate(alice.certPem)
  const fromDer = identityFromCertificate(alice.der)
  const fromX509 = identityFromCertificate(new X509Certificate(alice.der))
  for (const identity of [fromPem, fromDer, fromX509]) {
    t.match(identity, { source: 'tls', proxy: null, verified: false, verifyError: null, commonName: 'alice', serialNumber: 'A1B2C3D4E5F60718' })
  }
  t.ok(Object.isFrozen(fromPem) && Object.isFrozen(fromPem.san) && Object.isFrozen(fromPem.subjectRDNs![0][0]), 'deeply frozen')
  t.match(identityFromCertificate(alice.certPem, { source: 'proxy' }), { source: 'proxy', proxy: 'custom' })
  t.match(identityFromCertificate(alice.certPem, { source: 'proxy', proxy: 'haproxy', verified: true }), { proxy: 'haproxy', verified: true })
  t.match(identityFromCertificate(alice.certPem, { proxy: 'nginx', verifyError: 'X' }), { source: 'tls', proxy: null, verifyError: 'X' })
})

t.test('anything that is not a certificate is a CertificateParseError, never another error', async (t) => {
  for (const input of ['garbage', Buffer.from('0123'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', 42, null, {}]) {
    t.throws(() => identityFromCertificate(input as never), CertificateParseError, String(input))
  }
})
