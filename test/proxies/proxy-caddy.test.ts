import { connect } from 'node:tls'
import { proxySuite, type Setup } from '../helpers/proxy-suite.js'

// Go's TLS stack answers every verification failure with the same alert.
const badCertificate = { alert: 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE' }

/** The status line Caddy answers a request with, for a given SNI name (or none) and Host header. */
async function statusFor (setup: Setup, servername: string | undefined, host: string): Promise<string> {
  const alice = setup.corpus.leaves.alice
  return await new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port: setup.proxy.port,
      ...(servername === undefined ? {} : { servername }),
      ca: setup.corpus.caPem,
      // the proxy's certificate names localhost, not the IP a client without SNI may check it against
      checkServerIdentity: () => undefined,
      cert: alice.certPem,
      key: alice.keyPem
    })
    let text = ''
    socket.setEncoding('utf8')
    socket.once('secureConnect', () => socket.write(`GET /whoami HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`))
    socket.on('data', (chunk) => { text += chunk })
    socket.once('error', reject)
    socket.once('close', () => resolve(text.split('\r\n')[0]))
  })
}

proxySuite('caddy', {
  refused: { expired: badCertificate, notyet: badCertificate, untrusted: badCertificate, selfsigned: badCertificate, serverauth: badCertificate },
  noCertificateRequired: badCertificate,
  unixSocket: true,
  async extra (t, setup) {
    const ip = `127.0.0.1:${setup.proxy.port}`
    const before = setup.upstream.requests()
    // With client_auth, Caddy enforces that SNI and Host agree: clients must address it by name (FINDINGS #13).
    t.equal(await statusFor(setup, undefined, ip), 'HTTP/1.1 421 Misdirected Request', 'IP literal (no SNI): 421')
    t.equal(await statusFor(setup, 'localhost', ip), 'HTTP/1.1 421 Misdirected Request', 'SNI localhost, Host an IP: 421')
    t.equal(await statusFor(setup, undefined, 'localhost'), 'HTTP/1.1 421 Misdirected Request', 'no SNI, Host localhost: 421')
    t.equal(setup.upstream.requests(), before, 'none of them reached the app')
    t.equal(await statusFor(setup, 'localhost', 'localhost'), 'HTTP/1.1 200 OK', 'SNI and Host localhost: served')
  }
})
