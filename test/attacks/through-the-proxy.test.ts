// A client that makes the proxy drop or alter headers. HTTP/1.1 lets a sender name hop-by-hop headers in
// `Connection`, and a proxy deletes those before forwarding: Apache does so after mod_headers has set its own
// certificate, status and secret headers. A client that names them hopes the app then sees no certificate,
// no secret, or only the names a mapping forwards beside the certificate, which the CRL check never saw.
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { createHash, X509Certificate } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { connect as tlsConnect } from 'node:tls'
import { fastifyClientCert, identityFromCertificate, type FastifyClientCertOptions } from '../../lib/index.js'
import { proxyConfig, proxyKinds, type ProxyKind } from '../../lib/cli/proxy-config.js'
import { getPreset } from '../../lib/sources/presets/index.js'
import { getCorpus, type LeafName } from '../helpers/certs.js'
import { makeCrl } from '../helpers/crl.js'
import { opensslName, opensslSerial } from '../helpers/openssl.js'
import { requireProxy, startProxy, type RunningProxy } from '../helpers/proxies.js'
import { toJSON } from '../helpers/server.js'

t.setTimeout(180_000)

const corpus = await getCorpus()
const { alice } = corpus.leaves
const secret = { header: 'X-Proxy-Secret', value: 'c2VjcmV0LXNoYXJlZC13aXRoLXRoZS1wcm94eQ' }
// alice and san are revoked: a names-only verdict would let them in.
const crl = makeCrl(corpus.intermediate, [alice.certPath, corpus.leaves.san.certPath])
const fingerprint = (leaf: LeafName): string | null => identityFromCertificate(corpus.leaves[leaf].certPem).fingerprint256

interface Answer { status: number, body: any }

function parseBody (text: string): any {
  try { return JSON.parse(text) } catch { return text }
}

/** Fastify in mode 'proxy' on 127.0.0.1 with /whoami (required) and /maybe (optional) echoing the identity. */
async function startApp (t: Test, options: Omit<FastifyClientCertOptions, 'mode'>): Promise<{ host: string, port: number }> {
  const app = Fastify()
  await app.register(fastifyClientCert, { mode: 'proxy', ...options })
  app.get('/whoami', async (request) => toJSON(request.clientCert))
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => ({ clientCert: toJSON(request.clientCert) }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  return { host: '127.0.0.1', port: (app.server.address() as { port: number }).port }
}

/** The response's body once complete (Content-Length or chunked), or null while more bytes are due. */
function completeResponse (data: Buffer): Answer | null {
  const end = data.indexOf('\r\n\r\n')
  if (end === -1) return null
  const head = data.subarray(0, end).toString('latin1').split('\r\n')
  const headers = new Map(head.slice(1).map((line) => {
    const colon = line.indexOf(':')
    return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()] as const
  }))
  const status = Number(head[0].split(' ')[1])
  let rest = data.subarray(end + 4)
  if (headers.get('transfer-encoding')?.toLowerCase() === 'chunked') {
    const chunks: Buffer[] = []
    for (;;) {
      const line = rest.indexOf('\r\n')
      if (line === -1) return null
      const size = parseInt(rest.subarray(0, line).toString('latin1'), 16)
      if (rest.length < line + 2 + size + 2) return null
      if (size === 0) return { status, body: parseBody(Buffer.concat(chunks).toString('utf8')) }
      chunks.push(rest.subarray(line + 2, line + 2 + size))
      rest = rest.subarray(line + 2 + size + 2)
    }
  }
  const length = Number(headers.get('content-length') ?? 0)
  return rest.length < length ? null : { status, body: parseBody(rest.subarray(0, length).toString('utf8')) }
}

/**
 * One request through the proxy over a raw TLS socket presenting `leaf`, with header lines written verbatim
 * (HTTP clients such as undici refuse a Connection header naming other headers). The socket is closed once
 * the response is complete: a proxy that ignores the client's own Connection tokens keeps it open.
 */
async function throughProxy (proxy: RunningProxy, leaf: LeafName, path: string, lines: readonly string[]): Promise<Answer> {
  const { certPem, keyPem } = corpus.leaves[leaf]
  return await new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: proxy.port, servername: 'localhost', ca: corpus.caPem, cert: certPem, key: keyPem })
    let data = Buffer.alloc(0)
    socket.once('secureConnect', () => socket.write([`GET ${path} HTTP/1.1`, 'Host: localhost', ...lines, '', ''].join('\r\n')))
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk])
      const answer = completeResponse(data)
      if (answer !== null) {
        socket.destroy()
        resolve(answer)
      }
    })
    socket.once('error', reject)
    socket.once('close', () => reject(new Error(`closed before a complete response: ${data.toString('latin1').slice(0, 200)}`)))
  })
}

/** A plain HTTP request from 127.0.0.1, the trusted peer: the header values exactly as a load balancer writes them. */
async function fromTrustedPeer (app: { host: string, port: number }, path: string, headers: Record<string, string>): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ ...app, localAddress: '127.0.0.1', path, headers: { ...headers, connection: 'close' } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => { text += chunk })
      res.on('end', () => resolve({ status: res.statusCode!, body: parseBody(text) }))
    })
    req.once('error', reject)
    req.end()
  })
}

/** The header names each preset's proxy sets, as it writes them, and the shared secret's. */
function proxyHeaderNames (kind: ProxyKind): string[] {
  const names = getPreset(kind)!.headers.map((name) => name.replace(/(^|-)([a-z])/g, (_, dash: string, c: string) => dash + c.toUpperCase()).replace('-Ssl-', '-SSL-'))
  return [...names, secret.header]
}

/** Connection headers that name the proxy's own headers: one, all, in lower case, in two field lines. */
function connectionAttacks (kind: ProxyKind): Array<{ what: string, lines: string[] }> {
  const [cert, ...others] = proxyHeaderNames(kind)
  return [
    { what: 'the certificate header', lines: [`Connection: ${cert}`] },
    { what: 'every header it sets, beside keep-alive', lines: [`Connection: keep-alive, ${[cert, ...others].join(', ')}`] },
    { what: 'them in lower case', lines: [`Connection: ${[cert, ...others].join(',').toLowerCase()}`] },
    { what: 'them over two field lines', lines: [`Connection: ${cert}`, `Connection: ${others.join(' , ')}`] }
  ]
}

t.test('apache: the generated configuration unsets the client\'s Connection header before it sets any header', async (t) => {
  for (const secretOption of [undefined, secret]) {
    const config = proxyConfig('apache', {
      listen: { host: '127.0.0.1', port: 8443 },
      upstream: { host: '127.0.0.1', port: 3000 },
      serverCertPath: '/etc/p/server.pem',
      serverKeyPath: '/etc/p/server.key',
      clientCaPath: '/etc/p/ca.pem',
      verify: 'optional',
      workDir: '/var/lib/p',
      secret: secretOption
    })
    const unset = config.indexOf('\n  RequestHeader unset Connection early\n')
    t.ok(unset !== -1, `${secretOption === undefined ? 'without' : 'with'} a secret: the unset is there`)
    t.ok(unset < config.indexOf('RequestHeader set'), 'and comes before every RequestHeader set')
  }
})

for (const kind of proxyKinds) {
  const name = kind === 'apache'
    ? 'apache: a client naming the certificate, verify and secret headers in Connection cannot make Apache delete them'
    : `${kind}: a client naming the certificate, verify and secret headers in Connection: ${kind} keeps them`
  t.test(name, async (t) => {
    if (!requireProxy(t, kind)) return
    const upstream = await startApp(t, { proxy: { preset: kind, trust: ['127.0.0.1'], secret } })
    const proxy = await startProxy(kind, { upstream, secret })
    t.teardown(() => proxy.stop())
    for (const { what, lines } of connectionAttacks(kind)) {
      const whoami = await throughProxy(proxy, 'bob', '/whoami', lines)
      t.equal(whoami.status, 200, `Connection naming ${what}: admitted`)
      t.equal(whoami.body.fingerprint256, fingerprint('bob'), `Connection naming ${what}: bob's own certificate`)
      t.equal(whoami.body.certificate, 'X509Certificate', `Connection naming ${what}: the whole certificate, not names`)
      t.equal(whoami.body.verified, true, `Connection naming ${what}: verified`)
      const maybe = await throughProxy(proxy, 'bob', '/maybe', lines)
      t.equal(maybe.body.clientCert?.fingerprint256, fingerprint('bob'), `Connection naming ${what}: an optional route sees bob, not null`)
    }
  })
}

// Apache's own SSL_CLIENT_* variables beside the certificate: what a custom mapping of cert + names forwards.
const namesMapping = {
  cert: { name: 'X-SSL-Client-Cert', encoding: 'pem-spaces' },
  subject: { name: 'X-SSL-Client-S-DN', encoding: 'dn-rfc4514' },
  issuer: { name: 'X-SSL-Client-I-DN', encoding: 'dn-rfc4514' },
  serial: { name: 'X-SSL-Client-Serial' },
  verified: { header: 'X-SSL-Client-Verify', success: ['SUCCESS'], none: ['NONE'] }
} as const
const namesLines = [
  '  RequestHeader set X-SSL-Client-S-DN "%{SSL_CLIENT_S_DN}s"',
  '  RequestHeader set X-SSL-Client-I-DN "%{SSL_CLIENT_I_DN}s"',
  '  RequestHeader set X-SSL-Client-Serial "%{SSL_CLIENT_M_SERIAL}s"'
]

/** The generated Apache configuration plus the name headers, and without its Connection unset when `old`. */
function apacheWithNames (t: Test, old: boolean): (config: string) => string {
  return (config) => {
    const verifyLine = '  RequestHeader set X-SSL-Client-Verify "%{SSL_CLIENT_VERIFY}s"\n'
    t.ok(config.includes(verifyLine), 'the generated configuration sets the verify header')
    let edited = config.replace(verifyLine, verifyLine + namesLines.join('\n') + '\n')
    if (old) {
      const unset = '  RequestHeader unset Connection early\n'
      t.ok(edited.includes(unset), 'the generated configuration unsets Connection: removed to play an older one')
      edited = edited.replace(unset, '')
    }
    return edited
  }
}

t.test('apache without "RequestHeader unset Connection" and a mapping of cert + names: a revoked client deleting X-SSL-Client-Cert gets 400, never a names-only 200', async (t) => {
  if (!requireProxy(t, 'apache')) return
  const upstream = await startApp(t, { proxy: { headers: namesMapping, trust: ['127.0.0.1'] }, crl })
  const proxy = await startProxy('apache', { upstream, edit: apacheWithNames(t, true) })
  t.teardown(() => proxy.stop())

  const plain = await throughProxy(proxy, 'alice', '/whoami', [])
  t.equal(plain.status, 401, 'alice, revoked, with her certificate forwarded: 401')
  t.equal(plain.body.code, 'FST_CLIENT_CERT_INVALID')
  for (const lines of [['Connection: X-SSL-Client-Cert'], ['Connection: keep-alive, x-ssl-client-cert']]) {
    for (const path of ['/whoami', '/maybe']) {
      const downgraded = await throughProxy(proxy, 'alice', path, lines)
      t.equal(downgraded.status, 400, `${lines[0]} on ${path}: Apache drops the certificate, the names alone are refused`)
      t.equal(downgraded.body.code, 'FST_CLIENT_CERT_BAD_HEADER')
    }
  }
  const valid = await throughProxy(proxy, 'bob', '/whoami', ['Connection: X-SSL-Client-Cert'])
  t.equal(valid.status, 400, 'a valid certificate is not judged on its names either')
  t.equal(valid.body.code, 'FST_CLIENT_CERT_BAD_HEADER')
})

t.test('apache with the generated configuration and a mapping of cert + names: Connection: X-SSL-Client-Cert changes nothing', async (t) => {
  if (!requireProxy(t, 'apache')) return
  const upstream = await startApp(t, { proxy: { headers: namesMapping, trust: ['127.0.0.1'] }, crl })
  const proxy = await startProxy('apache', { upstream, edit: apacheWithNames(t, false) })
  t.teardown(() => proxy.stop())
  const revoked = await throughProxy(proxy, 'alice', '/whoami', ['Connection: X-SSL-Client-Cert'])
  t.equal(revoked.status, 401, 'alice: her certificate arrives and is revoked')
  t.equal(revoked.body.code, 'FST_CLIENT_CERT_INVALID')
  const valid = await throughProxy(proxy, 'bob', '/whoami', ['Connection: X-SSL-Client-Cert, X-SSL-Client-S-DN'])
  t.equal(valid.status, 200)
  t.equal(valid.body.fingerprint256, fingerprint('bob'), "bob's whole certificate")
})

// What an AWS ALB in verify mode sends for a certificate: the leaf (URL-encoded PEM, +=/ raw) and four more.
function albHeaders (leaf: LeafName): { leaf: Record<string, string>, details: Record<string, string> } {
  const { certPem, certPath } = corpus.leaves[leaf]
  const x509 = new X509Certificate(certPem)
  const time = (date: string): string => new Date(date).toISOString().replace('.000Z', 'Z')
  return {
    leaf: { 'X-Amzn-Mtls-Clientcert-Leaf': encodeURIComponent(certPem).replaceAll('%2B', '+').replaceAll('%3D', '=').replaceAll('%2F', '/') },
    details: {
      'X-Amzn-Mtls-Clientcert-Subject': opensslName(certPath, 'subject', 'RFC2253'),
      'X-Amzn-Mtls-Clientcert-Issuer': opensslName(certPath, 'issuer', 'RFC2253'),
      'X-Amzn-Mtls-Clientcert-Serial-Number': opensslSerial(certPath),
      'X-Amzn-Mtls-Clientcert-Validity': `NotBefore=${time(x509.validFrom)};NotAfter=${time(x509.validTo)}`
    }
  }
}

t.test('aws-alb: Subject, Issuer, Serial-Number and Validity without the leaf are refused (400), never judged on names', async (t) => {
  const app = await startApp(t, { proxy: { preset: 'aws-alb', trust: ['127.0.0.1'] }, crl })
  const revoked = albHeaders('alice')
  for (const path of ['/whoami', '/maybe']) {
    const downgraded = await fromTrustedPeer(app, path, revoked.details)
    t.equal(downgraded.status, 400, `${path}: the four name headers of a revoked certificate, no leaf`)
    t.equal(downgraded.body.code, 'FST_CLIENT_CERT_BAD_HEADER')
  }
  for (const [name, value] of Object.entries(revoked.details)) {
    t.equal((await fromTrustedPeer(app, '/whoami', { [name]: value })).status, 400, `${name} alone: 400`)
  }
  const placeholder = await fromTrustedPeer(app, '/whoami', { ...revoked.details, 'X-Amzn-Mtls-Clientcert-Leaf': '-' })
  t.equal(placeholder.status, 400, 'beside a leaf that reads as absent: 400')

  const whole = await fromTrustedPeer(app, '/whoami', { ...revoked.leaf, ...revoked.details })
  t.equal(whole.status, 401, 'with the leaf: judged on the certificate, revoked')
  t.equal(whole.body.code, 'FST_CLIENT_CERT_INVALID')
  t.equal((await fromTrustedPeer(app, '/maybe', { ...revoked.leaf, ...revoked.details })).body.clientCert?.verifyError, 'CERT_REVOKED')
  const valid = albHeaders('bob')
  const bobWhole = await fromTrustedPeer(app, '/whoami', { ...valid.leaf, ...valid.details })
  t.equal(bobWhole.status, 200)
  t.equal(bobWhole.body.fingerprint256, fingerprint('bob'))
  t.equal((await fromTrustedPeer(app, '/whoami', valid.details)).status, 400, "bob's names without his leaf: 400 too")
})

// What a Google Cloud load balancer sends, with the custom request headers of the gcp preset.
function gcpHeaders (leaf: LeafName): { leaf: Record<string, string>, details: Record<string, string> } {
  const { der, certPem } = corpus.leaves[leaf]
  const identity = identityFromCertificate(certPem)
  const b64List = (values: string[]): string => values.map((v) => Buffer.from(v).toString('base64')).join(',')
  const otherUris = identity.san!.uri.filter((uri) => uri !== identity.spiffeId)
  const details: Record<string, string> = {
    'X-Client-Cert-Present': 'true',
    'X-Client-Cert-Chain-Verified': 'true',
    'X-Client-Cert-Error': '',
    'X-Client-Cert-Hash': createHash('sha256').update(der).digest('base64').replace(/=+$/, ''),
    'X-Client-Cert-Serial-Number': identity.serialNumber!.replace(/(..)(?!$)/g, '$1:').toLowerCase(),
    'X-Client-Cert-Valid-Not-Before': identity.notBefore!.toISOString().replace('.000Z', '+00:00'),
    'X-Client-Cert-Valid-Not-After': identity.notAfter!.toISOString().replace('.000Z', '+00:00')
  }
  if (identity.spiffeId !== null) details['X-Client-Cert-SPIFFE'] = identity.spiffeId
  if (otherUris.length > 0) details['X-Client-Cert-URI-SANs'] = b64List(otherUris)
  if (identity.san!.dns.length > 0) details['X-Client-Cert-DNSName-SANs'] = b64List(identity.san!.dns)
  return { leaf: { 'X-Client-Cert-Leaf': `:${der.toString('base64')}:` }, details }
}

t.test('gcp: a verified certificate described without its leaf is refused (400), never judged on the description', async (t) => {
  const app = await startApp(t, { proxy: { preset: 'gcp', trust: ['127.0.0.1'] }, crl })
  const revoked = gcpHeaders('san')
  t.ok(revoked.details['X-Client-Cert-SPIFFE'], 'the description carries a SPIFFE ID')
  for (const path of ['/whoami', '/maybe']) {
    const downgraded = await fromTrustedPeer(app, path, revoked.details)
    t.equal(downgraded.status, 400, `${path}: hash, serial, SPIFFE ID, SANs and validity of a revoked certificate, no leaf`)
    t.equal(downgraded.body.code, 'FST_CLIENT_CERT_BAD_HEADER')
  }
  const bare = await fromTrustedPeer(app, '/whoami', { 'X-Client-Cert-Present': 'true', 'X-Client-Cert-Chain-Verified': 'true' })
  t.equal(bare.status, 400, 'present and verified, nothing more: 400')

  const whole = await fromTrustedPeer(app, '/whoami', { ...revoked.details, ...revoked.leaf })
  t.equal(whole.status, 401, 'with the leaf: judged on the certificate, revoked')
  t.equal(whole.body.code, 'FST_CLIENT_CERT_INVALID')
  t.equal((await fromTrustedPeer(app, '/maybe', { ...revoked.details, ...revoked.leaf })).body.clientCert?.verifyError, 'CERT_REVOKED')
  const valid = gcpHeaders('bob')
  const bobWhole = await fromTrustedPeer(app, '/whoami', { ...valid.details, ...valid.leaf })
  t.equal(bobWhole.status, 200)
  t.equal(bobWhole.body.fingerprint256, fingerprint('bob'))

  // ALLOW_INVALID_OR_MISSING_CLIENT_CERT: Google forwards a certificate that failed validation without its leaf.
  const failed = { ...valid.details, 'X-Client-Cert-Chain-Verified': 'false', 'X-Client-Cert-Error': 'client_cert_chain_invalid_eku' }
  const unverified = await fromTrustedPeer(app, '/whoami', failed)
  t.equal(unverified.status, 401, 'a failed validation, described: not verified')
  t.equal(unverified.body.code, 'FST_CLIENT_CERT_INVALID')
})

t.test('custom mapping of cert + subject, issuer, serial: the names without the certificate are refused (400)', async (t) => {
  const mapping = {
    cert: { name: 'X-SSL-Client-Escaped-Cert', encoding: 'pem-urlencoded' },
    subject: { name: 'X-SSL-Client-S-DN', encoding: 'dn-rfc4514' },
    issuer: { name: 'X-SSL-Client-I-DN', encoding: 'dn-rfc4514' },
    serial: { name: 'X-SSL-Client-Serial' },
    verified: { header: 'X-SSL-Client-Verify', success: ['SUCCESS'], none: ['NONE'] }
  } as const
  const app = await startApp(t, { proxy: { headers: mapping, trust: ['127.0.0.1'] }, crl })
  // nginx's $ssl_client_s_dn, $ssl_client_i_dn, $ssl_client_serial and $ssl_client_verify for alice (revoked).
  const names = {
    'X-SSL-Client-S-DN': opensslName(alice.certPath, 'subject', 'RFC2253'),
    'X-SSL-Client-I-DN': opensslName(alice.certPath, 'issuer', 'RFC2253'),
    'X-SSL-Client-Serial': opensslSerial(alice.certPath),
    'X-SSL-Client-Verify': 'SUCCESS'
  }
  for (const cert of [undefined, '', '-', '(null)']) {
    const headers = cert === undefined ? names : { ...names, 'X-SSL-Client-Escaped-Cert': cert }
    const downgraded = await fromTrustedPeer(app, '/whoami', headers)
    t.equal(downgraded.status, 400, `certificate header ${cert === undefined ? 'absent' : JSON.stringify(cert)}: 400`)
    t.equal(downgraded.body.code, 'FST_CLIENT_CERT_BAD_HEADER')
  }
  const subjectOnly = await fromTrustedPeer(app, '/maybe', { 'X-SSL-Client-S-DN': names['X-SSL-Client-S-DN'], 'X-SSL-Client-Verify': 'SUCCESS' })
  t.equal(subjectOnly.status, 400, 'the subject alone, on an optional route: 400')
  const whole = await fromTrustedPeer(app, '/maybe', { ...names, 'X-SSL-Client-Escaped-Cert': encodeURIComponent(alice.certPem) })
  t.equal(whole.body.clientCert?.verifyError, 'CERT_REVOKED', 'with the certificate: judged on it, revoked')
})
