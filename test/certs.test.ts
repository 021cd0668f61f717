import t from 'tap'
import { execFile, execFileSync } from 'node:child_process'
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { existsSync } from 'node:fs'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { connect, createServer } from 'node:tls'
import type { TLSSocket } from 'node:tls'
import { promisify } from 'node:util'
import { getCorpus, LEAF_NAMES } from './helpers/certs.js'
import type { LeafName } from './helpers/certs.js'
import { opensslFingerprint256, opensslLegacyName, opensslName, opensslSerial } from './helpers/openssl.js'

const run = promisify(execFile)
const corpus = await getCorpus()
const cert = (pem: string): X509Certificate => new X509Certificate(pem)
const leaf = (name: LeafName): X509Certificate => cert(corpus.leaves[name].certPem)
const intermediate = cert(corpus.intermediate.certPem)
const root = cert(corpus.root.certPem)
const rogueRoot = cert(corpus.rogueRoot.certPem)
const HOUR = 3600_000
const YEAR = 365 * 24 * HOUR

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2'
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1'
const byIntermediate = LEAF_NAMES.filter(n => n !== 'untrusted' && n !== 'selfsigned')

function ext (certPath: string, name: string): string {
  return execFileSync('openssl', ['x509', '-in', certPath, '-noout', '-ext', name]).toString('utf8')
}

/** `openssl verify` as a TLS server would judge a client: trusted root, chain sent by the client. */
async function verify (name: LeafName): Promise<string> {
  const { chainPath } = corpus.leaves[name]
  const args = ['verify', '-purpose', 'sslclient', '-CAfile', corpus.root.certPath, '-untrusted', chainPath, chainPath]
  try {
    return (await run('openssl', args)).stdout.trim()
  } catch (err) {
    const { stdout, stderr } = err as { stdout: string, stderr: string }
    return (stdout + stderr).trim()
  }
}

t.test('getCorpus is generated once per process', async (t) => {
  t.equal(await getCorpus(), corpus)
  t.ok(existsSync(corpus.caPath))
  t.ok(corpus.caPath.startsWith(corpus.dir))
  t.same(Object.keys(corpus.leaves).sort(), [...LEAF_NAMES].sort())
})

t.test('every file holds what its field says', async (t) => {
  for (const files of [corpus.root, corpus.intermediate, corpus.rogueRoot, ...Object.values(corpus.leaves)]) {
    const x = cert(files.certPem)
    t.ok(x.checkPrivateKey(createPrivateKey(files.keyPem)), `${files.name}: key matches`)
    t.ok(x.raw.equals(files.der), `${files.name}: der`)
    t.ok(existsSync(files.certPath) && existsSync(files.keyPath), `${files.name}: paths`)
  }
  t.equal(corpus.caPem, corpus.root.certPem + corpus.intermediate.certPem)
})

t.test('CA hierarchy', async (t) => {
  t.ok(root.ca && intermediate.ca && rogueRoot.ca)
  t.ok(root.checkIssued(root) && root.verify(root.publicKey), 'root is self-signed')
  t.ok(intermediate.checkIssued(root) && intermediate.verify(root.publicKey), 'intermediate is signed by root')
  t.ok(rogueRoot.checkIssued(rogueRoot) && rogueRoot.verify(rogueRoot.publicKey), 'rogue root is self-signed')
  t.notOk(rogueRoot.checkIssued(root) || rogueRoot.checkIssued(intermediate))
  t.match(ext(corpus.intermediate.certPath, 'basicConstraints'), /CA:TRUE, pathlen:0/)
})

t.test('trusted leaves: issued by the intermediate, client-auth, chain sent with it', async (t) => {
  const serials = new Set<string>()
  for (const name of byIntermediate) {
    const x = leaf(name)
    const { certPem, chainPem, certPath } = corpus.leaves[name]
    t.ok(x.checkIssued(intermediate) && x.verify(intermediate.publicKey), `${name}: signed by intermediate`)
    t.notOk(x.ca, `${name}: not a CA`)
    t.equal(chainPem, certPem + corpus.intermediate.certPem, `${name}: chain`)
    t.same(x.keyUsage, [name === 'serverauth' ? SERVER_AUTH : CLIENT_AUTH], `${name}: EKU`)
    t.match(ext(certPath, 'keyUsage'), /critical\n\s+Digital Signature\n$/, `${name}: key usage`)
    serials.add(x.serialNumber)
  }
  t.equal(serials.size, byIntermediate.length, 'serials are unique')
})

t.test('validity is now-1h … now+1y unless the case says otherwise', async (t) => {
  for (const name of LEAF_NAMES.filter(n => n !== 'expired' && n !== 'notyet')) {
    const x = leaf(name)
    t.ok(Math.abs(Date.parse(x.validFrom) - (Date.now() - HOUR)) < 10 * 60_000, `${name}: from`)
    t.ok(Math.abs(Date.parse(x.validTo) - (Date.now() + YEAR)) < 10 * 60_000, `${name}: to`)
  }
  const expired = leaf('expired')
  t.equal(expired.validFrom, 'Jan  1 00:00:00 2020 GMT')
  t.equal(expired.validTo, 'Jan  1 00:00:00 2021 GMT')
  const notyet = leaf('notyet')
  t.ok(Date.parse(notyet.validFrom) > Date.now() + YEAR - HOUR)
})

t.test('keys: EC P-256, except rsa', async (t) => {
  for (const name of LEAF_NAMES) {
    const key = leaf(name).publicKey
    if (name === 'rsa') {
      t.equal(key.asymmetricKeyType, 'rsa')
      t.equal(key.asymmetricKeyDetails?.modulusLength, 2048)
    } else {
      t.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1', name)
    }
  }
})

t.test('openssl verify judges each leaf as the tests expect', async (t) => {
  const expected: Partial<Record<LeafName, RegExp>> = {
    expired: /certificate has expired/,
    notyet: /certificate is not yet valid/,
    untrusted: /unable to get local issuer certificate/,
    selfsigned: /self-signed certificate/,
    serverauth: /unsuitable certificate purpose/
  }
  const results = await Promise.all(LEAF_NAMES.map(verify))
  LEAF_NAMES.forEach((name, i) => {
    t.match(results[i], expected[name] ?? /: OK$/, name)
  })
})

t.test('a Node TLS server judges each leaf as the plugin tests expect', async (t) => {
  const server = createServer({
    key: corpus.leaves.serverauth.keyPem,
    cert: corpus.leaves.serverauth.chainPem,
    ca: corpus.caPem,
    requestCert: true,
    rejectUnauthorized: false
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const { port } = server.address() as AddressInfo
  const expected: Partial<Record<LeafName, string>> = {
    expired: 'CERT_HAS_EXPIRED',
    notyet: 'CERT_NOT_YET_VALID',
    untrusted: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    selfsigned: 'DEPTH_ZERO_SELF_SIGNED_CERT',
    serverauth: 'INVALID_PURPOSE'
  }
  // one at a time, so that each server-side socket belongs to the leaf just sent
  for (const name of LEAF_NAMES) {
    const { keyPem, chainPem } = corpus.leaves[name]
    const accepted = once(server, 'secureConnection') as Promise<[TLSSocket]>
    const client = connect({ port, host: '127.0.0.1', servername: 'localhost', ca: corpus.caPem, key: keyPem, cert: chainPem })
    await once(client, 'secureConnect')
    t.ok(client.authorized, `${name}: client trusts the server certificate`)
    const [socket] = await accepted
    t.equal(socket.authorized ? 'authorized' : String(socket.authorizationError), expected[name] ?? 'authorized', name)
    t.equal(socket.getPeerCertificate().serialNumber, leaf(name).serialNumber, `${name}: peer certificate`)
    client.destroy()
    socket.destroy()
  }
})

t.test('subjects and SANs', async (t) => {
  t.equal(leaf('alice').subject, 'C=US\nO=Example Corp\nCN=alice\nemailAddress=alice@example.com')
  t.equal(leaf('alice').subjectAltName, 'email:alice@example.com')
  t.equal(leaf('alice').serialNumber, 'A1B2C3D4E5F60718')
  t.equal(leaf('bob').subject, 'C=US\nO=Example Corp\nCN=bob')
  t.equal(leaf('rsa').subject, 'C=US\nO=Example Corp\nCN=rsa-user\nemailAddress=rsa-user@example.com')
  t.equal(leaf('serverauth').subject, 'C=US\nO=Example Corp\nCN=server-only')
  t.equal(leaf('multirdn').subject, 'C=US\nO=Example Corp\nCN=bob + UID=1234')
  t.equal(leaf('twoou').subject, 'C=US\nO=Example Corp\nOU=Engineering\nOU=Platform\nCN=carol')

  const utf8 = leaf('utf8')
  t.equal(utf8.subject, 'C=DE\nO=Beispiel GmbH\nCN=Jürgen Ünicode 测试')
  t.equal(opensslName(corpus.leaves.utf8.certPath, 'subject', 'RFC2253,show_type,-esc_msb'),
    'CN=UTF8STRING:Jürgen Ünicode 测试,O=UTF8STRING:Beispiel GmbH,C=PRINTABLESTRING:DE')

  const tricky = leaf('tricky')
  t.equal(tricky.toLegacyObject().subject.CN, '#Smith, John+admin=1 "x" <a/b>;\\ ')
  t.equal(tricky.serialNumber, '0F')
  t.equal(leaf('ctrl').toLegacyObject().subject.CN, 'evil\r\nX-Injected: 1\tTab')

  const nocn = leaf('nocn')
  t.equal(nocn.subject ?? '', '')
  t.equal(opensslName(corpus.leaves.nocn.certPath, 'subject', 'RFC2253'), '')
  t.equal(nocn.subjectAltName, 'URI:spiffe://example.org/ns/empty, DNS:empty.example.org, email:empty@example.org')
  t.match(ext(corpus.leaves.nocn.certPath, 'subjectAltName'), /Subject Alternative Name: critical/)

  t.equal(leaf('san').subject, 'C=US\nO=Example Corp\nCN=api.example.org')
  t.equal(leaf('san').subjectAltName, 'DNS:api.example.org, DNS:*.svc.example.net, email:api@example.org, ' +
    'URI:spiffe://example.org/ns/prod/sa/api, IP Address:127.0.0.1, IP Address:2001:DB8:0:0:0:0:0:1, ' +
    'othername:UPN:api@example.corp')
})

t.test('untrusted and selfsigned are outside the trusted hierarchy', async (t) => {
  const untrusted = leaf('untrusted')
  t.equal(untrusted.subject, 'C=US\nO=Example Corp\nCN=alice')
  t.notOk(untrusted.checkIssued(intermediate))
  t.notOk(untrusted.verify(intermediate.publicKey))
  t.ok(untrusted.checkIssued(rogueRoot) && untrusted.verify(rogueRoot.publicKey))
  t.equal(corpus.leaves.untrusted.chainPem, corpus.leaves.untrusted.certPem)

  const selfsigned = leaf('selfsigned')
  t.equal(selfsigned.subject, 'C=US\nO=Example Corp\nCN=selfie')
  // not checkIssued(): OpenSSL wants keyCertSign on an issuer, and this one is a client certificate
  t.equal(selfsigned.issuer, selfsigned.subject)
  t.ok(selfsigned.verify(selfsigned.publicKey))
  t.notOk(selfsigned.checkIssued(intermediate))
  t.same(selfsigned.keyUsage, [CLIENT_AUTH])
})

t.test('openssl reference renderings', async (t) => {
  const alice = corpus.leaves.alice.certPath
  t.equal(opensslName(alice, 'subject', 'RFC2253,-esc_msb'), 'emailAddress=alice@example.com,CN=alice,O=Example Corp,C=US')
  t.equal(opensslName(alice, 'issuer', 'RFC2253'), 'CN=Example Intermediate CA,OU=Client Auth,O=Example Corp,C=US')
  t.equal(opensslLegacyName(alice, 'subject'), '/C=US/O=Example Corp/CN=alice/emailAddress=alice@example.com')
  t.equal(opensslLegacyName(alice, 'issuer'), '/C=US/O=Example Corp/OU=Client Auth/CN=Example Intermediate CA')
  t.equal(opensslSerial(alice), 'A1B2C3D4E5F60718')
  t.equal(opensslFingerprint256(alice), leaf('alice').fingerprint256)

  // the forms FINDINGS.md records from nginx's $ssl_client_s_dn / $ssl_client_s_dn_legacy
  t.equal(opensslLegacyName(corpus.leaves.tricky.certPath, 'subject'),
    '/C=US/O=Example Corp/CN=#Smith, John\\+admin=1 "x" <a\\/b>;\\ ')
  t.equal(opensslName(corpus.leaves.tricky.certPath, 'subject', 'RFC2253'),
    'CN=\\#Smith\\, John\\+admin=1 \\"x\\" \\<a/b\\>\\;\\\\\\ ,O=Example Corp,C=US')
  t.equal(opensslSerial(corpus.leaves.tricky.certPath), '0F')
  t.equal(opensslLegacyName(corpus.leaves.multirdn.certPath, 'subject'), '/C=US/O=Example Corp/CN=bob+UID=1234')
  t.equal(opensslLegacyName(corpus.leaves.utf8.certPath, 'subject'),
    '/C=DE/O=Beispiel GmbH/CN=J\\xC3\\xBCrgen \\xC3\\x9Cnicode \\xE6\\xB5\\x8B\\xE8\\xAF\\x95')
  t.equal(opensslLegacyName(corpus.leaves.ctrl.certPath, 'subject'), '/CN=evil\\x0D\\x0AX-Injected: 1\\x09Tab')
  t.equal(opensslLegacyName(corpus.leaves.nocn.certPath, 'subject'), '')
})
