// Attacker: a client that renegotiates or resumes TLS sessions to change, or keep, the certificate it is judged by.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { execFile, execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer as createTlsServer, TLSSocket } from 'node:tls'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { fastifyClientCert, type FastifyClientCertOptions } from '../../lib/index.js'
import { getCorpus, type LeafName } from '../helpers/certs.js'
import { makeCrl } from '../helpers/crl.js'
import { rawRequest, startTlsApp } from '../helpers/server.js'

const run = promisify(execFile)
t.setTimeout(180_000)
const work = mkdtempSync(join(tmpdir(), 'client-cert-renegotiate-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))

/** The renegotiating client, compiled against libssl; null (after failing or skipping `t`) when it cannot be built. */
function buildClient (t: Test): string | null {
  const source = fileURLToPath(new URL('./renegotiate-client.c', import.meta.url))
  const binary = join(work, 'renegotiate-client')
  try {
    execFileSync('cc', ['-O1', '-o', binary, source, '-lssl', '-lcrypto'], { stdio: 'pipe' })
    return binary
  } catch (error) {
    const message = `cannot build test/attacks/renegotiate-client.c (needs cc and libssl-dev): ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`
    if (process.env.MTLS_REQUIRE_PROXIES === '1') {
      t.fail(message)
    } else {
      console.error(`# SKIPPED: ${message} (set MTLS_REQUIRE_PROXIES=1 to make this a failure)`)
      t.skip(message, () => {})
    }
    return null
  }
}

/**
 * The attacker's certificate: issued by an unknown self-signed CA that carries the real issuing CA's name, so
 * its issuer *name* is the real one; subject CN=admin,O=admins and an admin SPIFFE ID.
 */
function forgeAdmin (realIssuerName: string): { certPath: string, keyPath: string } {
  const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: work, stdio: 'pipe' })
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-noenc']
  openssl(['req', '-x509', ...ec, '-subj', realIssuerName, '-keyout', 'forged-ca.key', '-out', 'forged-ca.crt', '-days', '2',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
  openssl(['req', '-new', ...ec, '-subj', '/O=admins/CN=admin', '-keyout', 'forged.key', '-out', 'forged.csr'])
  writeFileSync(join(work, 'forged.ext'), [
    'basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=clientAuth',
    'subjectAltName=URI:spiffe://example.org/ns/admin/sa/root', ''
  ].join('\n'))
  openssl(['x509', '-req', '-in', 'forged.csr', '-CA', 'forged-ca.crt', '-CAkey', 'forged-ca.key', '-days', '2',
    '-extfile', 'forged.ext', '-out', 'forged.crt'])
  return { certPath: join(work, 'forged.crt'), keyPath: join(work, 'forged.key') }
}

interface Swap {
  /** `bob` is revoked by the loaded CRL. */
  from: 'alice' | 'bob'
  /** `forged`: the attacker's admin certificate. */
  to: 'forged' | 'rsa' | 'alice'
  /** Renegotiate before the first request: the plugin first looks at the connection after the new handshake. */
  early: boolean
  /** Routes the forged certificate would pass by `allow` on subject, SPIFFE ID or issuer name, and an optional one. */
  paths: string[]
}
const allPaths = ['/admin', '/spiffe', '/issuer', '/maybe']
const swaps: Swap[] = [
  ...(['alice', 'bob'] as const).flatMap((from) => [false, true].map((early) => ({ from, to: 'forged' as const, early, paths: allPaths }))),
  { from: 'alice', to: 'rsa', early: false, paths: ['/issuer', '/maybe'] },
  { from: 'bob', to: 'alice', early: false, paths: ['/issuer', '/maybe'] }
]
const servers = [
  { mode: 'tls', http2: false }, { mode: 'tls', http2: true }, { mode: 'auto', http2: false }, { mode: 'auto', http2: true }
] as const
const serverTitle = (server: typeof servers[number]) => `mode '${server.mode}', ${server.http2 ? 'HTTP/2 server with allowHTTP1' : 'HTTPS server'}`
const swapTitle = ({ from, to, early }: Swap) =>
  `${from}${from === 'bob' ? ' (revoked)' : ''} to ${to === 'forged' ? 'the forged admin certificate' : `another valid certificate (${to})`}${early ? ', before any request' : ''}`

const adminSpiffe = 'spiffe://example.org/ns/admin/sa/root'

let prepared: ReturnType<typeof prepare> | undefined
const setup = () => { prepared ??= prepare(); return prepared }

async function prepare () {
  const corpus = await getCorpus()
  const intermediateName = new X509Certificate(corpus.intermediate.certPem).subject
  const forged = forgeAdmin('/' + intermediateName.split('\n').join('/'))
  const crl = makeCrl(corpus.intermediate, [corpus.leaves.bob.certPath])
  const files = (name: 'forged' | LeafName) => name === 'forged' ? forged : corpus.leaves[name]
  return { corpus, forged, crl, files }
}

/** Routes whose `allow` rules the forged certificate would pass on its subject, its issuer name or its SPIFFE ID. */
function routes (seen: unknown[]) {
  return (app: FastifyInstance) => {
    const echo = async (request: { clientCert: unknown }) => {
      seen.push(request.clientCert)
      const identity = request.clientCert as { subject: string, verified: boolean, verifyError: string | null } | null
      return identity === null ? null : { subject: identity.subject, verified: identity.verified, verifyError: identity.verifyError }
    }
    app.get('/whoami', echo)
    app.get('/maybe', { config: { clientCert: { required: false } } }, echo)
    app.get('/admin', { config: { clientCert: { allow: { subjects: ['CN=admin,O=admins'] } } } }, echo)
    app.get('/spiffe', { config: { clientCert: { allow: { spiffe: [adminSpiffe] } } } }, echo)
    app.get('/issuer', { config: { clientCert: { allow: { issuers: [{ CN: 'Example Intermediate CA' }] } } } }, echo)
  }
}

function pluginOptions (mode: 'tls' | 'auto', crl: string): FastifyClientCertOptions {
  // 'auto' trusts a proxy address the test never uses, so the client's own TLS certificate is judged.
  return mode === 'tls' ? { crl } : { mode: 'auto', proxy: { preset: 'nginx', trust: ['192.0.2.1'] }, crl }
}

/** Runs the C client; resolves with its lines by step (FIRST, RENEGOTIATE, SECOND, ALPN). */
async function renegotiate (binary: string, port: number, caPath: string, from: { certPath: string, keyPath: string }, to: { certPath: string, keyPath: string }, path: string, flag: '' | 'early' | 'h2'): Promise<Record<string, string>> {
  const { stdout } = await run(binary, [String(port), caPath, from.certPath, from.keyPath, to.certPath, to.keyPath, path, flag])
  const steps: Record<string, string> = {}
  for (const line of stdout.split('\n').filter(Boolean)) {
    const space = line.indexOf(' ')
    steps[line.slice(0, space)] = line.slice(space + 1)
  }
  return steps
}

t.test('TLS 1.2 renegotiation to another certificate is refused: the connection closes, no second request is answered', async (t) => {
  const binary = buildClient(t)
  if (binary === null) return
  const { corpus, crl, files } = await setup()
  for (const server of servers) {
    await t.test(serverTitle(server), async (t) => {
      const seen: unknown[] = []
      const { app, port } = await startTlsApp({ http2: server.http2, plugin: pluginOptions(server.mode, crl), routes: routes(seen) })
      t.teardown(() => app.close())
      const refused: string[] = []
      app.server.on('clientError', (error: NodeJS.ErrnoException) => { refused.push(String(error.code)) })
      const runs = await Promise.all(swaps.map(async (swap) => await Promise.all(swap.paths.map((path) =>
        renegotiate(binary, port, corpus.caPath, corpus.leaves[swap.from], files(swap.to), path, swap.early ? 'early' : '')))))
      for (const [n, swap] of swaps.entries()) {
        for (const [i, steps] of runs[n]!.entries()) {
          const path = swap.paths[i]!
          const name = `${swapTitle(swap)}, ${path}`
          if (!swap.early) {
            const expected = swap.from === 'bob' ? (path === '/maybe' ? 200 : 401) : (path === '/admin' || path === '/spiffe' ? 403 : 200)
            t.equal(Number(steps.FIRST?.split(' ')[0]), expected, `${name}: the first request is judged by the first certificate`)
          }
          t.match(steps.RENEGOTIATE, /^ERROR /, `${name}: the renegotiation fails`)
          t.equal(steps.SECOND, undefined, `${name}: nothing answers a second request`)
        }
      }
      const clients = swaps.reduce((sum, swap) => sum + swap.paths.length, 0)
      t.same(refused, Array(clients).fill('ERR_TLS_RENEGOTIATION_DISABLED'), 'the server refused each renegotiation')
      // Before renegotiating, alice's requests reach /issuer and /maybe, bob's (revoked) only /maybe; never a second request.
      t.equal(seen.length, 2 + 1 + 2 + 1, 'only first requests reached a handler')
    })
  }
})

t.test('a connection whose handshake changed is never verified, even if a renegotiation gets through', async (t) => {
  const binary = buildClient(t)
  if (binary === null) return
  const { corpus, crl, files } = await setup()
  // Defence in depth: with renegotiation let through, the handshake check alone must refuse the new and the old identity.
  const disable = TLSSocket.prototype.disableRenegotiation
  TLSSocket.prototype.disableRenegotiation = function allowRenegotiation () {}
  t.teardown(() => { TLSSocket.prototype.disableRenegotiation = disable })
  for (const server of servers) {
    await t.test(serverTitle(server), async (t) => {
      const { app, port } = await startTlsApp({ http2: server.http2, plugin: pluginOptions(server.mode, crl), routes: routes([]) })
      t.teardown(() => app.close())
      const runs = await Promise.all(swaps.map(async (swap) => await Promise.all(['/whoami', ...swap.paths].map((path) =>
        renegotiate(binary, port, corpus.caPath, corpus.leaves[swap.from], files(swap.to), path, swap.early ? 'early' : '')))))
      for (const [n, swap] of swaps.entries()) {
        const outcomes = runs[n]!
        const name = swapTitle(swap)
        for (const steps of outcomes) t.equal(steps.RENEGOTIATE, 'OK', `${name}: renegotiated`)
        for (const steps of outcomes.slice(0, -1)) {
          t.match(steps.SECOND, /^401 \{"statusCode":401,"code":"FST_CLIENT_CERT_INVALID"/, `${name}: a required route refuses the second request`)
        }
        const subject = new X509Certificate(readFileSync(files(swap.to).certPath)).subject.split('\n').reverse().join(',')
        t.same(JSON.parse(outcomes.at(-1)!.SECOND!.slice(4)), { subject, verified: false, verifyError: 'TLS_RENEGOTIATED' },
          `${name}: an optional route sees the new certificate, not verified`)
      }
    })
  }
})

t.test('an HTTP/2 session refuses renegotiation (Node disables it for HTTP/2; the plugin does too)', async (t) => {
  const binary = buildClient(t)
  if (binary === null) return
  const { corpus, crl, files } = await setup()
  for (const mode of ['tls', 'auto'] as const) {
    const { app, port } = await startTlsApp({ http2: true, plugin: pluginOptions(mode, crl), routes: routes([]) })
    t.teardown(() => app.close())
    const steps = await renegotiate(binary, port, corpus.caPath, corpus.leaves.alice, files('forged'), '/whoami', 'h2')
    t.equal(steps.ALPN, 'h2', `${mode}: an HTTP/2 session`)
    t.match(steps.RENEGOTIATE, /^ERROR /, `${mode}: the renegotiation fails`)
  }
})

for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
  t.test(`${version}: resuming a session that had no certificate gives no identity, whatever \`authorized\` says`, async (t) => {
    const { app, port } = await startTlsApp({ routes: routes([]) })
    t.teardown(() => app.close())
    const options = { minVersion: version, maxVersion: version }
    const first = await rawRequest(port, '/maybe', options)
    t.equal(first.body, 'null')
    for (const path of ['/whoami', '/admin', '/maybe']) {
      const resumed = await rawRequest(port, path, { ...options, session: first.session })
      t.equal(resumed.reused, true, `${path}: resumed`)
      if (path === '/maybe') t.equal(resumed.body, 'null', 'no identity')
      else t.equal(resumed.status, 401, `${path}: no certificate`)
    }
  })

  t.test(`${version}: resuming a session keeps exactly the identity of the certificate it was made with`, async (t) => {
    const corpus = await getCorpus()
    const seen: unknown[] = []
    const { app, port } = await startTlsApp({ routes: routes(seen) })
    t.teardown(() => app.close())
    const alice = { cert: corpus.leaves.alice.certPem, key: corpus.leaves.alice.keyPem, minVersion: version, maxVersion: version }
    const first = await rawRequest(port, '/whoami', alice)
    // Offering the session while presenting bob's certificate, or none: the session's certificate stands.
    const asBob = await rawRequest(port, '/whoami', { ...alice, cert: corpus.leaves.bob.certPem, key: corpus.leaves.bob.keyPem, session: first.session })
    const bare = await rawRequest(port, '/whoami', { minVersion: version, maxVersion: version, session: first.session })
    for (const resumed of [asBob, bare]) {
      t.equal(resumed.reused, true, 'resumed')
      t.equal(resumed.status, 200)
      t.same(JSON.parse(resumed.body), JSON.parse(first.body))
    }
    const fingerprints = seen.map((identity) => (identity as { fingerprint256: string }).fingerprint256)
    t.same(fingerprints, Array(3).fill(new X509Certificate(corpus.leaves.alice.certPem).fingerprint256), 'alice\'s certificate each time')
  })
}

t.test('a TLS connection handed to Fastify by other code, whose handshake the plugin never saw, is never verified', async (t) => {
  const corpus = await getCorpus()
  const app = Fastify()
  await app.register(fastifyClientCert, { mode: 'auto', proxy: { preset: 'nginx', trust: ['192.0.2.1'] } })
  routes([])(app)
  await app.ready()
  // Its history (renegotiations included) is unknown to the plugin: `authorized` cannot be believed.
  const server = createTlsServer({
    key: corpus.leaves.serverauth.keyPem,
    cert: corpus.leaves.serverauth.chainPem,
    ca: corpus.caPem,
    requestCert: true,
    rejectUnauthorized: false
  }, (socket) => { app.server.emit('connection', socket) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close(); return app.close() })
  const port = (server.address() as { port: number }).port
  const alice = { cert: corpus.leaves.alice.certPem, key: corpus.leaves.alice.keyPem, maxVersion: 'TLSv1.2' as const }
  t.equal((await rawRequest(port, '/whoami', alice)).status, 401)
  t.same(JSON.parse((await rawRequest(port, '/maybe', alice)).body), {
    subject: 'emailAddress=alice@example.com,CN=alice,O=Example Corp,C=US',
    verified: false,
    verifyError: 'TLS_HANDSHAKE_UNSEEN'
  })
})

t.test('sibling registrations on one server refuse renegotiation with one listener', async (t) => {
  const corpus = await getCorpus()
  const https = { key: corpus.leaves.serverauth.keyPem, cert: corpus.leaves.serverauth.chainPem, ca: corpus.caPem, requestCert: true, rejectUnauthorized: false }
  const app = Fastify({ https })
  app.register(async (api) => { await api.register(fastifyClientCert) })
  app.register(async (admin) => { await admin.register(fastifyClientCert, { mode: 'tls' }) })
  await app.ready()
  t.teardown(() => app.close())
  const guards = app.server.listeners('secureConnection').filter((listener) => listener.name === 'clientCertFirstHandshake')
  t.equal(guards.length, 1)
})
