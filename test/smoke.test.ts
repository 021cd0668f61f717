import t from 'tap'
import { CertificateParseError } from '../lib/codecs/parse-error.js'

t.test('parse error carries its code', async (t) => {
  const err = new CertificateParseError('x')
  t.equal(err.code, 'ERR_CLIENT_CERT_PARSE')
  t.equal(err.name, 'CertificateParseError')
})
