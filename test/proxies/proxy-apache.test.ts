import { opensslHandshakeRefusals, proxySuite } from '../helpers/proxy-suite.js'

// Apache refuses unverifiable certificates in the handshake, with OpenSSL's alert for the reason.
proxySuite('apache', { ...opensslHandshakeRefusals, unixSocket: true })
