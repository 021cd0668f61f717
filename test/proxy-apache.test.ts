import { proxySuite } from './helpers/proxy-suite.js'

// Apache refuses unverifiable certificates in the handshake, with OpenSSL's alert for the reason.
proxySuite('apache', {
  refused: {
    expired: { alert: 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED' },
    notyet: { alert: 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE' },
    untrusted: { alert: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA' },
    selfsigned: { alert: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA' },
    serverauth: { alert: 'ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE' }
  },
  noCertificateRequired: { alert: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' },
  unixSocket: true
})
