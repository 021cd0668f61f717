import { opensslHandshakeRefusals, proxySuite } from '../helpers/proxy-suite.js'

// HAProxy (`verify optional`, no ca-ignore-err / crt-ignore-err) refuses unverifiable certificates in the
// handshake, with OpenSSL's alert for the reason, as Apache does.
proxySuite('haproxy', { ...opensslHandshakeRefusals, unixSocket: true })
