import { proxySuite } from '../helpers/proxy-suite.js'

// nginx answers verification failures with its own HTTP 400 page, even with `ssl_verify_client optional`.
const sslError = { status: 400, body: /The SSL certificate error/ }

proxySuite('nginx', {
  refused: { expired: sslError, notyet: sslError, untrusted: sslError, selfsigned: sslError, serverauth: sslError },
  noCertificateRequired: { status: 400, body: /No required SSL certificate was sent/ },
  unixSocket: true
})
