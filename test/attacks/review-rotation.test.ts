// Attacker review of SPIFFE trust domains bound to their bundles and of trust that rotates without a restart.
// The attackers: a federated partner whose CA we trust for its own workloads and who mints OUR IDs (URI SAN
// spelling tricks, chains that mix its CAs with ours, odd bundles it serves); a client of a CA we retire, still
// holding a keep-alive connection, an HTTP/2 session or a TLS session to resume; and whoever can make a watched
// file half-written, mismatched, replaced by a directory or deleted. Each test asserts the secure behaviour.
import t from 'tap'
import type { Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { execFileSync } from 'node:child_process'
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { connect as http2Connect } from 'node:http2'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls'
import { Agent, request } from 'undici'
import { fastifyClientCert, type FastifyClientCertOptions } from '../../lib/index.js'
import { bigCrl, subjectName } from '../helpers/crl.js'
import { SecretVolume } from '../helpers/rotation.js'
import { getSpiffePki, jwkSet, OUR_ADMIN, type Issued } from '../helpers/spiffe-pki.js'

t.setTimeout(240_000)

const pki = getSpiffePki()
const { leaves } = pki
const trusted = '127.0.0.1'
const work = mkdtempSync(join(tmpdir(), 'review-rotation-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))

// ---------------------------------------------------------------------------------------------------------------
// Certificates of our own making: the odd ones an attacker's CA signs.

const SVID = ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature', 'extendedKeyUsage = clientAuth, serverAuth']
const CA = ['basicConstraints = critical, CA:TRUE', 'keyUsage = critical, keyCertSign, cRLSign']
let serial = 1000

/** A certificate issued by `issuer` (self-signed when null), with an openssl `-subj` and extension lines. */
function issue (name: string, subject: string, issuer: Issued | null, extensions: readonly string[]): Issued {
  const dir = join(work, 'pki')
  mkdirSync(dir, { recursive: true })
  const file = (ext: string): string => join(dir, `${name}.${ext}`)
  writeFileSync(file('ext'), extensions.join('\n') + '\n')
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file('key'), '-subj', subject, '-out', file('csr')], { stdio: 'ignore' })
  let signer = ['-signkey', file('key')]
  if (issuer !== null) {
    writeFileSync(file('issuer.pem'), issuer.pem)
    writeFileSync(file('issuer.key'), issuer.keyPem)
    signer = ['-CA', file('issuer.pem'), '-CAkey', file('issuer.key'), '-set_serial', String(serial++)]
  }
  execFileSync('openssl', ['x509', '-req', '-in', file('csr'), ...signer, '-days', '2', '-extfile', file('ext'), '-out', file('pem')], { stdio: 'ignore' })
  const pem = readFileSync(file('pem'), 'utf8')
  const x509 = new X509Certificate(pem)
  return { pem, keyPem: readFileSync(file('key'), 'utf8'), der: x509.raw, x509 }
}

const svid = (name: string, issuer: Issued, uris: string[], extensions = SVID): Issued =>
  issue(name, `/O=Review/CN=${name}`, issuer, uris.length === 0 ? extensions : [...extensions, `subjectAltName = ${uris.map((u) => `URI:${u}`).join(', ')}`])

// The partner's CA spelling our admin's ID so that some parser might read it as ours.
const spellings: Record<string, string[]> = {
  'upper-case scheme': ['SPIFFE://example.org/ns/admin/api'],
  'upper-case trust domain': ['spiffe://Example.org/ns/admin/api'],
  'percent-encoded trust domain': ['spiffe://example%2Eorg/ns/admin/api'],
  'percent-encoded path': ['spiffe://example.org/ns/%61dmin/api'],
  'trailing dot in the trust domain': ['spiffe://example.org./ns/admin/api'],
  port: ['spiffe://example.org:443/ns/admin/api'],
  userinfo: ['spiffe://admin@example.org/ns/admin/api'],
  'trailing slash': ['spiffe://example.org/ns/admin/api/'],
  'dot-dot segment': ['spiffe://example.org/ns/other/../admin/api'],
  'no authority slashes': ['spiffe:example.org/ns/admin/api'],
  'our ID beside the partner\'s own': ['spiffe://partner.example/ns/billing', OUR_ADMIN],
  'the partner\'s own ID beside our ID': [OUR_ADMIN, 'spiffe://partner.example/ns/billing'],
  'our ID beside an https URI': ['https://partner.example/', OUR_ADMIN]
}
const forgedSpellings = Object.fromEntries(Object.entries(spellings).map(([label, uris], i) => [label, svid(`spelling${i}`, pki.partnerRoot, uris)]))
// The ID in the subject's CN only, no URI SAN: not an SVID, and never our admin.
const cnOnly = issue('cnOnly', '/O=Review/CN=spiffe:\\/\\/example.org\\/ns\\/admin\\/api', pki.partnerRoot, SVID)
// Our own CA minting the partner's IDs: the partner's bundle does not vouch for them.
const oursMintsPartner = svid('oursMintsPartner', pki.ourRoot, ['spiffe://partner.example/ns/billing'])
// An intermediate of the partner, and one named exactly like our root (a look-alike), each minting our admin.
const partnerIntermediate = issue('partnerIntermediate', '/O=Partner/CN=partner.example intermediate', pki.partnerRoot, CA)
const viaPartnerIntermediate = svid('viaPartnerIntermediate', partnerIntermediate, [OUR_ADMIN])
const lookAlikeRoot = issue('lookAlikeRoot', '/O=Example Org/CN=example.org SPIFFE root', pki.partnerRoot, CA)
const viaLookAlike = svid('viaLookAlike', lookAlikeRoot, [OUR_ADMIN])
// Our intermediate restricted by name constraints: the in-app path check does not evaluate them, so it fails closed.
const constrained = issue('constrained', '/O=Example Org/CN=constrained', pki.ourRoot, [...CA, 'nameConstraints = critical, permitted;URI:example.org'])
const viaConstrained = svid('viaConstrained', constrained, [OUR_ADMIN])
// Legitimate: an SVID whose key usage has more than digitalSignature (X509-SVID allows keyEncipherment, keyAgreement).
const extraUsage = svid('extraUsage', pki.ourRoot, [OUR_ADMIN], ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature, keyEncipherment, keyAgreement', 'extendedKeyUsage = clientAuth'])
// Server-auth only: no client may use it.
const serverOnly = svid('serverOnly', pki.ourRoot, [OUR_ADMIN], ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature', 'extendedKeyUsage = serverAuth'])
// A second server certificate for the rotation tests.
const server2 = issue('server2', '/O=Review/CN=server2', pki.ourRoot, ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature', 'extendedKeyUsage = serverAuth', 'subjectAltName = DNS:localhost'])
const server3 = issue('server3', '/O=Review/CN=server3', pki.ourRoot, ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature', 'extendedKeyUsage = serverAuth', 'subjectAltName = DNS:localhost'])

const bundles = { 'example.org': pki.ourRoot.pem, 'partner.example': JSON.stringify(jwkSet(pki.partnerRoot)) }

// ---------------------------------------------------------------------------------------------------------------
// Behind a proxy (RFC 9440: the leaf and the chain the client sent), through inject(): the binding alone decides.

function routes (app: FastifyInstance): void {
  app.get('/admin', { config: { clientCert: { allow: { spiffe: ['spiffe://example.org/ns/admin/*'] } } } }, async (request) => ({ spiffeId: request.clientCert?.spiffeId ?? null }))
  app.get('/admin-uri', { config: { clientCert: { allow: { uris: [OUR_ADMIN] } } } }, async () => ({ ok: true }))
  app.get('/partner', { config: { clientCert: { allow: { spiffe: ['spiffe://partner.example/*'] } } } }, async () => ({ ok: true }))
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => ({
    verified: request.clientCert?.verified ?? null,
    verifyError: request.clientCert?.verifyError ?? null,
    spiffeId: request.clientCert?.spiffeId ?? null
  }))
  app.get('/port', async (request) => ({ port: request.raw.socket.remotePort ?? null, verified: request.clientCert?.verified }))
}

async function proxyApp (t: Test, extra: Partial<FastifyClientCertOptions> = {}): Promise<FastifyInstance> {
  const app = Fastify() as unknown as FastifyInstance
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'rfc9440', trust: trusted }, spiffe: { bundles }, ...extra } as FastifyClientCertOptions)
  routes(app)
  t.teardown(() => app.close())
  return app
}

const item = (c: Issued | Buffer): string => `:${(Buffer.isBuffer(c) ? c : c.der).toString('base64')}:`

async function forward (app: FastifyInstance, path: string, leaf: Issued, chain: Issued[] = []): Promise<{ status: number, body: Record<string, unknown> }> {
  const headers: Record<string, string> = { 'client-cert': item(leaf) }
  if (chain.length > 0) headers['client-cert-chain'] = chain.map(item).join(', ')
  const response = await app.inject({ url: path, remoteAddress: trusted, headers })
  return { status: response.statusCode, body: response.json() }
}

t.test('the partner\'s CA spelling our admin\'s ID oddly (case, percent-encoding, trailing dot, port, userinfo, slashes, dot segments, two URIs) is never our admin', async (t) => {
  const app = await proxyApp(t)
  for (const [label, leaf] of Object.entries(forgedSpellings)) {
    t.not((await forward(app, '/admin', leaf)).status, 200, `${label}: allow.spiffe`)
    t.not((await forward(app, '/admin-uri', leaf)).status, 200, `${label}: allow.uris`)
    const seen = (await forward(app, '/maybe', leaf)).body
    t.equal(seen.verified, false, `${label}: a certificate naming a spiffe: URI that its bundle does not vouch for is not verified (${String(seen.verifyError)})`)
  }
})

t.test('a SPIFFE ID in the subject CN only is no SPIFFE ID: spiffeId null, allow.spiffe and allow.uris refuse', async (t) => {
  const app = await proxyApp(t)
  t.equal((await forward(app, '/maybe', cnOnly)).body.spiffeId, null)
  t.equal((await forward(app, '/admin', cnOnly)).status, 403)
  t.equal((await forward(app, '/admin-uri', cnOnly)).status, 403)
})

t.test('our own CA minting the partner\'s IDs is refused by the partner\'s bundle (SPIFFE_TRUST_DOMAIN_MISMATCH)', async (t) => {
  const app = await proxyApp(t)
  t.equal((await forward(app, '/partner', oursMintsPartner)).status, 401)
  t.equal((await forward(app, '/maybe', oursMintsPartner, [pki.ourRoot, pki.partnerRoot])).body.verifyError, 'SPIFFE_TRUST_DOMAIN_MISMATCH')
})

t.test('a forwarded chain with the partner\'s intermediate and our root ends in the partner\'s bundle, not ours', async (t) => {
  const app = await proxyApp(t)
  for (const chain of [[partnerIntermediate], [partnerIntermediate, pki.ourRoot], [pki.ourRoot, partnerIntermediate], [partnerIntermediate, pki.partnerRoot, pki.ourRoot]]) {
    t.equal((await forward(app, '/admin', viaPartnerIntermediate, chain)).status, 401)
    t.equal((await forward(app, '/maybe', viaPartnerIntermediate, chain)).body.verifyError, 'SPIFFE_TRUST_DOMAIN_MISMATCH')
  }
})

t.test('an intermediate of the partner named exactly like our root does not lead to our bundle, however many are sent', async (t) => {
  const app = await proxyApp(t)
  t.equal((await forward(app, '/admin', viaLookAlike)).status, 401)
  t.equal((await forward(app, '/admin', viaLookAlike, [lookAlikeRoot])).status, 401)
  t.equal((await forward(app, '/admin', viaLookAlike, [lookAlikeRoot, pki.partnerRoot, pki.ourRoot])).status, 401)
  // Look-alikes that each cost a signature check: the budget runs out, and running out is a refusal.
  const many = Array.from({ length: 12 }, (_, i) => issue(`lookAlike${i}`, '/O=Example Org/CN=example.org SPIFFE root', pki.partnerRoot, CA))
  const answer = await forward(app, '/maybe', viaLookAlike, [...many, lookAlikeRoot])
  t.equal(answer.body.verified, false)
})

t.test('the bundle root (or our intermediate) forwarded as the leaf is no workload: not verified', async (t) => {
  const app = await proxyApp(t)
  for (const [leaf, chain] of [[pki.ourRoot, []], [pki.ourRoot, [pki.ourRoot]], [pki.ourIntermediate, [pki.ourRoot]]] as Array<[Issued, Issued[]]>) {
    t.not((await forward(app, '/admin', leaf, chain)).status, 200)
    t.not((await forward(app, '/admin-uri', leaf, chain)).status, 200)
    t.equal((await forward(app, '/maybe', leaf, chain)).body.verified, false)
  }
})

t.test('an SVID under a name-constrained intermediate of ours fails closed (name constraints are not evaluated in the app)', async (t) => {
  const app = await proxyApp(t)
  const seen = (await forward(app, '/maybe', viaConstrained, [constrained])).body
  t.equal(seen.verified, false)
  t.equal(seen.verifyError, 'NAME_CONSTRAINTS_UNSUPPORTED')
})

t.test('key usage: extra usages X509-SVID allows pass; a server-only SVID cannot be a client', async (t) => {
  const app = await proxyApp(t)
  t.equal((await forward(app, '/admin', extraUsage)).status, 200)
  const seen = (await forward(app, '/maybe', serverOnly)).body
  t.equal(seen.verified, false)
})

t.test('a leaf-only preset (nginx) binds only leaves issued directly by a bundle CA: an intermediate-issued SVID is refused', async (t) => {
  const app = Fastify() as unknown as FastifyInstance
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'nginx', trust: trusted }, spiffe: { bundles } })
  routes(app)
  t.teardown(() => app.close())
  const nginx = (leaf: Issued): Record<string, string> => ({ 'x-ssl-client-cert': encodeURIComponent(leaf.pem), 'x-ssl-client-verify': 'SUCCESS' })
  t.equal((await app.inject({ url: '/admin', remoteAddress: trusted, headers: nginx(leaves.ourAdmin) })).statusCode, 200)
  const batch = await app.inject({ url: '/maybe', remoteAddress: trusted, headers: nginx(leaves.ourBatch) })
  t.equal(batch.json().verifyError, 'SPIFFE_TRUST_DOMAIN_MISMATCH')
  t.equal((await app.inject({ url: '/admin', remoteAddress: trusted, headers: nginx(viaPartnerIntermediate) })).statusCode, 401)
})

t.test('a forwarded certificate verified before reload() is judged by the new bundles after it (the verdict cache follows the reload)', async (t) => {
  const app = await proxyApp(t)
  t.equal((await forward(app, '/admin', leaves.ourAdmin)).status, 200)
  t.equal((await forward(app, '/admin', leaves.ourAdmin)).status, 200)
  await app.clientCert.reload({ spiffe: { bundles: { 'partner.example': pki.partnerRoot.pem } } })
  t.equal((await forward(app, '/admin', leaves.ourAdmin)).status, 401)
  t.equal((await forward(app, '/maybe', leaves.ourAdmin)).body.verifyError, 'SPIFFE_TRUST_DOMAIN_UNKNOWN')
  // The partner now rolls its bundle to a CA that is ours: its own IDs from our root then count, never ours.
  await app.clientCert.reload({ spiffe: { bundles: { 'partner.example': pki.ourRoot.pem } } })
  t.equal((await forward(app, '/partner', oursMintsPartner)).status, 200)
  t.equal((await forward(app, '/admin', leaves.ourAdmin)).status, 401)
})

// ---------------------------------------------------------------------------------------------------------------
// Bundles in the SPIFFE bundle format (JWK Set), as a partner's bundle endpoint might serve them.

async function registers (bundle: unknown): Promise<Error | null> {
  const app = Fastify()
  try {
    await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'rfc9440', trust: trusted }, spiffe: { bundles: { 'partner.example': bundle } } } as unknown as FastifyClientCertOptions)
    await app.ready()
    return null
  } catch (error) {
    return error as Error
  } finally {
    await app.close()
  }
}

const x509Key = (certificates: Array<Issued | string>): Record<string, unknown> =>
  ({ kty: 'EC', use: 'x509-svid', x5c: certificates.map((c) => typeof c === 'string' ? c : c.der.toString('base64')) })

t.test('JWK Set bundles with odd keys are refused at registration, never read leniently', async (t) => {
  const refused: Array<[string, unknown]> = [
    ['a non-CA certificate first in x5c', { keys: [x509Key([leaves.partnerBilling, pki.partnerRoot])] }],
    ['a non-CA certificate as a PEM bundle', leaves.partnerBilling.pem],
    ['use in upper case only', { keys: [{ ...x509Key([pki.partnerRoot]), use: 'X509-SVID' }] }],
    ['no use at all', { keys: [{ kty: 'EC', x5c: [pki.partnerRoot.der.toString('base64')] }] }],
    ['jwt-svid keys only', { keys: [{ ...x509Key([pki.partnerRoot]), use: 'jwt-svid' }] }],
    ['x5c as a string, not a list', { keys: [{ use: 'x509-svid', x5c: pki.partnerRoot.der.toString('base64') }] }],
    ['x5c in base64url', { keys: [x509Key([pki.partnerRoot.der.toString('base64url')])] }],
    ['x5c wrapped in lines', { keys: [x509Key([pki.partnerRoot.der.toString('base64').replace(/.{64}/g, '$&\n')])] }],
    ['x5c as PEM', { keys: [x509Key([pki.partnerRoot.pem])] }],
    ['not a JWK Set', { keys: { use: 'x509-svid' } }],
    ['JSON text that does not parse', '{"keys": ['],
    ['a byte-order mark before the JSON', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(jwkSet(pki.partnerRoot)))])],
    ['an empty list', []]
  ]
  for (const [label, bundle] of refused) {
    const error = await registers(bundle)
    t.equal(error?.name === 'FastifyError' ? (error as Error & { code?: string }).code : error, 'FST_CLIENT_CERT_INVALID_OPTION', label)
  }
  // A huge set of keys of other uses beside one CA: read, and only the CA counts.
  const huge = { keys: [...Array.from({ length: 20_000 }, (_, i) => ({ kty: 'oct', kid: String(i), use: 'jwt-svid', k: 'x'.repeat(32) })), x509Key([pki.partnerRoot])] }
  t.equal(await registers(JSON.stringify(huge)), null)
  // Duplicate kids name two CAs: both are the partner's to vouch with.
  t.equal(await registers({ keys: [{ ...x509Key([pki.partnerRoot]), kid: 'k' }, { ...x509Key([pki.ourIntermediate]), kid: 'k' }] }), null)
})

t.test('a JWK whose x5c carries our root after the partner\'s CA gives the partner only its first certificate', async (t) => {
  const app = Fastify() as unknown as FastifyInstance
  const partner = { keys: [x509Key([pki.partnerRoot, pki.ourRoot])] }
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'rfc9440', trust: trusted }, spiffe: { bundles: { 'example.org': pki.ourRoot.pem, 'partner.example': partner } } } as unknown as FastifyClientCertOptions)
  routes(app)
  t.teardown(() => app.close())
  t.equal((await forward(app, '/partner', leaves.partnerBilling)).status, 200)
  t.equal((await forward(app, '/maybe', oursMintsPartner)).body.verifyError, 'SPIFFE_TRUST_DOMAIN_MISMATCH')
})

t.test('reload() with a concurrent UserCache lookup: a user resolved before the reload is not served after it', async (t) => {
  let calls = 0
  let release: () => void = () => {}
  let started: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const lookingUp = new Promise<void>((resolve) => { started = resolve })
  const app = await proxyApp(t, {
    resolveUser: async () => {
      calls++
      if (calls === 1) {
        started()
        await gate
      }
      return { calls }
    }
  })
  const first = forward(app, '/admin', leaves.ourAdmin)
  await lookingUp
  await app.clientCert.reload({ spiffe: { bundles } })
  release()
  t.equal((await first).status, 200)
  t.equal((await forward(app, '/admin', leaves.ourAdmin)).status, 200)
  t.equal(calls, 2, 'the lookup that started before the reload did not fill the cache')
})

// ---------------------------------------------------------------------------------------------------------------
// Direct TLS: rotation of the client CA bundle, the server's own certificate and the SPIFFE bundles.

interface TlsApp { app: FastifyInstance, port: number, url: string, lines: Array<Record<string, unknown>>, logged: (msg: string, from: number) => Promise<Record<string, unknown>> }

function logSink (): { stream: Writable, lines: Array<Record<string, unknown>>, logged: TlsApp['logged'] } {
  const lines: Array<Record<string, unknown>> = []
  const waiters: Array<() => void> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line))
      for (const wake of waiters.splice(0)) wake()
      callback()
    }
  })
  const logged = async (msg: string, from: number): Promise<Record<string, unknown>> => {
    for (;;) {
      const found = lines.slice(from).find((line) => String(line.msg).includes(msg))
      if (found !== undefined) return found
      await new Promise<void>((resolve) => waiters.push(resolve))
    }
  }
  return { stream, lines, logged }
}

async function tlsApp (t: Test, https: Record<string, unknown>, options: Partial<FastifyClientCertOptions> = {}, http2 = false): Promise<TlsApp> {
  const sink = logSink()
  const app = Fastify({
    ...(http2 ? { http2: true } : {}),
    https: { key: leaves.server.keyPem, cert: leaves.server.pem, ca: [pki.ourRoot.pem, pki.partnerRoot.pem], requestCert: true, rejectUnauthorized: false, ...https },
    logger: { level: 'info', stream: sink.stream }
  } as unknown as FastifyServerOptions) as unknown as FastifyInstance
  await app.register(fastifyClientCert, options as FastifyClientCertOptions)
  routes(app)
  await app.listen({ host: trusted, port: 0 })
  t.teardown(() => app.close())
  const port = (app.server.address() as { port: number }).port
  return { app, port, url: `https://localhost:${port}`, lines: sink.lines, logged: sink.logged }
}

function agentFor (t: Test, leaf: Issued, sent: Issued[] = []): Agent {
  const agent = new Agent({ connections: 1, connect: { ca: pki.ourRoot.pem, servername: 'localhost', cert: leaf.pem + sent.map((c) => c.pem).join(''), key: leaf.keyPem } })
  t.teardown(() => agent.close())
  return agent
}

async function get (agent: Agent, url: string, path: string): Promise<{ status: number, body: Record<string, unknown> }> {
  const response = await request(url + path, { dispatcher: agent })
  return { status: response.statusCode, body: await response.body.json() as Record<string, unknown> }
}

/** One request on a fresh TLS connection (optionally resuming `session`); the server's certificate and the answer. */
async function rawGet (port: number, path: string, options: ConnectionOptions): Promise<{ status: number, body: string, reused: boolean, session: Buffer | undefined, serverFingerprint: string | null }> {
  return await new Promise((resolve, reject) => {
    let session: Buffer | undefined
    let reused = false
    let serverFingerprint: string | null = null
    const socket = tlsConnect({ host: trusted, port, servername: 'localhost', ca: pki.ourRoot.pem, ...options })
    socket.on('session', (data) => { session = data })
    socket.once('secureConnect', () => {
      reused = socket.isSessionReused()
      serverFingerprint = socket.getPeerX509Certificate()?.fingerprint256 ?? null
      socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`)
    })
    let text = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk) => { text += chunk })
    socket.on('error', reject)
    socket.on('close', () => {
      const [head = '', ...rest] = text.split('\r\n\r\n')
      resolve({ status: Number(head.split(' ')[1]), body: rest.join('\r\n\r\n'), reused, session, serverFingerprint })
    })
  })
}

const clientOf = (leaf: Issued, sent: Issued[] = []): ConnectionOptions => ({ cert: leaf.pem + sent.map((c) => c.pem).join(''), key: leaf.keyPem })

t.test('a keep-alive connection of a CA removed by reload({ https: { ca } }) is refused on its next request; a client of the CA kept is not', async (t) => {
  const { app, url } = await tlsApp(t, {})
  const partner = agentFor(t, leaves.partnerBilling)
  const ours = agentFor(t, leaves.ourBatch, [pki.ourIntermediate])
  const before = await get(partner, url, '/port')
  t.equal(before.status, 200)
  t.equal((await get(ours, url, '/port')).status, 200)
  await app.clientCert.reload({ https: { ca: pki.ourRoot.pem } })
  const after = await get(partner, url, '/port')
  t.equal(after.status, 401, 'the retired CA\'s client on its open connection')
  const kept = await get(ours, url, '/port')
  t.equal(kept.status, 200, 'our client, through the intermediate it sent, on its open connection')
})

t.test('an HTTP/2 session of a CA removed by reload() is refused on its next stream', async (t) => {
  const { app, url } = await tlsApp(t, { allowHTTP1: false }, {}, true)
  const session = http2Connect(url, { ca: pki.ourRoot.pem, servername: 'localhost', cert: leaves.partnerBilling.pem, key: leaves.partnerBilling.keyPem })
  t.teardown(() => session.close())
  const stream = async (path: string): Promise<number> => await new Promise((resolve, reject) => {
    const req = session.request({ ':path': path })
    req.on('response', (headers) => { resolve(Number(headers[':status'])) })
    req.on('error', reject)
    req.resume()
    req.end()
  })
  t.equal(await stream('/port'), 200)
  await app.clientCert.reload({ https: { ca: pki.ourRoot.pem } })
  t.equal(await stream('/port'), 401)
})

for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
  t.test(`a ${version} session of a retired CA's client, resumed with ticket keys the server keeps (ticketKeys option), is refused`, async (t) => {
    const { app, port } = await tlsApp(t, { ticketKeys: randomBytes(48), maxVersion: version })
    const first = await rawGet(port, '/port', { ...clientOf(leaves.partnerBilling), maxVersion: version })
    t.equal(first.status, 200)
    t.ok(first.session !== undefined, 'a session to resume')
    await app.clientCert.reload({ https: { ca: pki.ourRoot.pem } })
    const resumed = await rawGet(port, '/port', { ...clientOf(leaves.partnerBilling), maxVersion: version, session: first.session })
    t.comment(`session reused: ${String(resumed.reused)}`)
    t.equal(resumed.status, 401)
  })

  t.test(`a ${version} session resumed after a CA reload by our client whose certificate came through an intermediate is still admitted`, async (t) => {
    const { app, port } = await tlsApp(t, { maxVersion: version }, { spiffe: { bundles } })
    // Any https.ca reload puts the plugin's own check of open connections in force.
    await app.clientCert.reload({ https: { ca: [pki.ourRoot.pem, pki.partnerRoot.pem] } })
    const options = { ...clientOf(leaves.ourBatch, [pki.ourIntermediate]), maxVersion: version }
    const first = await rawGet(port, '/maybe', options)
    t.same(JSON.parse(first.body), { verified: true, verifyError: null, spiffeId: 'spiffe://example.org/ns/admin/batch' })
    const resumed = await rawGet(port, '/maybe', { ...options, session: first.session })
    t.comment(`session reused: ${String(resumed.reused)}`)
    t.same(JSON.parse(resumed.body), { verified: true, verifyError: null, spiffeId: 'spiffe://example.org/ns/admin/batch' })
  })
}

t.test('a resumed session of our SVID issued through an intermediate keeps its SPIFFE binding (no reload at all)', async (t) => {
  const { port } = await tlsApp(t, { maxVersion: 'TLSv1.2' }, { spiffe: { bundles } })
  const options = clientOf(leaves.ourBatch, [pki.ourIntermediate])
  const first = await rawGet(port, '/maybe', options)
  t.same(JSON.parse(first.body), { verified: true, verifyError: null, spiffeId: 'spiffe://example.org/ns/admin/batch' })
  const resumed = await rawGet(port, '/maybe', { ...options, session: first.session })
  t.ok(resumed.reused)
  t.same(JSON.parse(resumed.body), { verified: true, verifyError: null, spiffeId: 'spiffe://example.org/ns/admin/batch' })
  // A leaf our root issued directly needs no intermediate, resumed or not; the partner's forgery stays refused.
  const admin = await rawGet(port, '/maybe', clientOf(leaves.ourAdmin))
  t.equal(JSON.parse((await rawGet(port, '/maybe', { ...clientOf(leaves.ourAdmin), session: admin.session })).body).verified, true)
  const forged = await rawGet(port, '/maybe', clientOf(leaves.forgedAdmin, [pki.ourIntermediate]))
  t.equal(JSON.parse((await rawGet(port, '/maybe', { ...clientOf(leaves.forgedAdmin), session: forged.session })).body).verifyError, 'SPIFFE_TRUST_DOMAIN_MISMATCH')
})

t.test('reload() is all or nothing: a good client CA with a bad SPIFFE bundle, or a key that is not the certificate\'s, changes nothing', async (t) => {
  const { app, port, url } = await tlsApp(t, { ca: pki.ourRoot.pem }, { spiffe: { bundles } })
  const partnerAgent = agentFor(t, leaves.partnerBilling)
  t.equal((await get(partnerAgent, url, '/partner')).status, 401, 'the partner is not in https.ca yet')
  t.throws(() => app.clientCert.reload({ https: { ca: [pki.ourRoot.pem, pki.partnerRoot.pem] }, spiffe: { bundles: { 'partner.example': leaves.partnerBilling.pem } } }), { code: 'FST_CLIENT_CERT_INVALID_OPTION' })
  t.equal((await rawGet(port, '/partner', clientOf(leaves.partnerBilling))).status, 401, 'the CA of the refused reload is not in force')
  t.throws(() => app.clientCert.reload({ https: { key: server2.keyPem, cert: server3.pem } }), { code: 'FST_CLIENT_CERT_INVALID_OPTION' })
  t.throws(() => app.clientCert.reload({ https: { key: server2.keyPem, cert: server2.pem, ca: leaves.partnerBilling.pem } }), { code: 'FST_CLIENT_CERT_INVALID_OPTION' })
  t.equal((await rawGet(port, '/port', clientOf(leaves.ourAdmin))).serverFingerprint, leaves.server.x509.fingerprint256, 'the server certificate in force stays')
  // A half-written certificate.
  t.throws(() => app.clientCert.reload({ https: { key: server2.keyPem, cert: server2.pem.slice(0, 200) } }), { code: 'FST_CLIENT_CERT_INVALID_OPTION' })
  t.equal((await rawGet(port, '/port', clientOf(leaves.ourAdmin))).serverFingerprint, leaves.server.x509.fingerprint256)
})

t.test('two reloads in flight (a large CRL makes them wait): the later one does not roll the server certificate back', async (t) => {
  // Over 512 KiB, so that every reload waits its turn (the CRL in force is bound again to the new trust).
  const crl = bigCrl({ issuer: subjectName(pki.ourRoot.x509), key: createPrivateKey(pki.ourRoot.keyPem), count: 16_000 })
  const { app, port } = await tlsApp(t, {}, { crl })
  const newKey = app.clientCert.reload({ https: { key: server2.keyPem, cert: server2.pem } })
  const newCa = app.clientCert.reload({ https: { ca: [pki.ourRoot.pem, pki.partnerRoot.pem] } })
  await Promise.all([newKey, newCa])
  const answer = await rawGet(port, '/port', clientOf(leaves.ourAdmin))
  t.equal(answer.status, 200)
  t.equal(answer.serverFingerprint, server2.x509.fingerprint256, 'the key and certificate of the first reload stay in force')
  // And the other way round: a later key rotation must not bring back a CA the earlier reload retired.
  const dropPartner = app.clientCert.reload({ https: { ca: [pki.ourRoot.pem] } })
  const rotateKey = app.clientCert.reload({ https: { key: server3.keyPem, cert: server3.pem } })
  await Promise.all([dropPartner, rotateKey])
  const server = app.server as unknown as { ca?: unknown, cert?: unknown }
  t.same(server.ca, [pki.ourRoot.pem], 'the TLS context trusts only the CA of the first reload')
  t.equal(server.cert, server3.pem)
})

t.test('two registrations on one server: a client CA removed through one registration\'s reload() is refused by the other on open connections', async (t) => {
  const sink = logSink()
  const app = Fastify({
    https: { key: leaves.server.keyPem, cert: leaves.server.pem, ca: [pki.ourRoot.pem, pki.partnerRoot.pem], requestCert: true, rejectUnauthorized: false },
    logger: { level: 'warn', stream: sink.stream }
  } as unknown as FastifyServerOptions) as unknown as FastifyInstance
  let first: FastifyInstance | undefined
  await app.register(async (scope) => {
    await scope.register(fastifyClientCert)
    scope.get('/a', async () => ({ ok: true }))
    first = scope
  })
  await app.register(async (scope) => {
    await scope.register(fastifyClientCert)
    scope.get('/b', async () => ({ ok: true }))
  })
  await app.listen({ host: trusted, port: 0 })
  t.teardown(() => app.close())
  const url = `https://localhost:${(app.server.address() as { port: number }).port}`
  const partner = agentFor(t, leaves.partnerBilling)
  t.equal((await get(partner, url, '/a')).status, 200)
  t.equal((await get(partner, url, '/b')).status, 200)
  await first!.clientCert.reload({ https: { ca: pki.ourRoot.pem } })
  t.equal((await get(partner, url, '/a')).status, 401)
  t.equal((await get(partner, url, '/b')).status, 401, 'the other registration judges the same connection by the same TLS trust')
})

t.test('a keep-alive SVID connection verified under the old SPIFFE bundles is judged by the new ones after reload()', async (t) => {
  const { app, url } = await tlsApp(t, {}, { spiffe: { bundles } })
  const admin = agentFor(t, leaves.ourAdmin)
  t.equal((await get(admin, url, '/admin')).status, 200)
  await app.clientCert.reload({ spiffe: { bundles: { 'partner.example': pki.partnerRoot.pem } } })
  t.equal((await get(admin, url, '/admin')).status, 401)
  t.equal((await get(admin, url, '/maybe')).body.verifyError, 'SPIFFE_TRUST_DOMAIN_UNKNOWN')
})

// ---------------------------------------------------------------------------------------------------------------
// watch: files that another process (or an attacker with write access to one of them) breaks.

t.test('watch: a half-written certificate, a key that does not match, a file replaced by a directory, deleted, or a dangling symlink keep the material in force', async (t) => {
  const dir = join(work, 'watched')
  mkdirSync(dir)
  const key = join(dir, 'tls.key')
  const cert = join(dir, 'tls.crt')
  const ca = join(dir, 'ca.crt')
  writeFileSync(key, leaves.server.keyPem)
  writeFileSync(cert, leaves.server.pem)
  writeFileSync(ca, pki.ourRoot.pem + pki.partnerRoot.pem)
  const { port, url, lines, logged } = await tlsApp(t, {}, { watch: { https: { key, cert, ca }, interval: 100 } })
  const served = async (): Promise<string | null> => (await rawGet(port, '/port', clientOf(leaves.ourAdmin))).serverFingerprint
  const partner = agentFor(t, leaves.partnerBilling)
  t.equal((await get(partner, url, '/port')).status, 200)

  let mark = lines.length
  writeFileSync(cert, server2.pem.slice(0, 300))
  await logged('rotated files refused', mark)
  t.equal(await served(), leaves.server.x509.fingerprint256, 'half-written: the old certificate stays')

  mark = lines.length
  writeFileSync(cert, server2.pem)
  await logged('rotated files refused', mark)
  t.equal(await served(), leaves.server.x509.fingerprint256, 'a certificate without its key: the old pair stays')

  mark = lines.length
  writeFileSync(key, server2.keyPem)
  await logged('rotated files applied', mark)
  t.equal(await served(), server2.x509.fingerprint256, 'the pair, once whole, is applied')

  for (const [label, breakIt] of [
    ['replaced by a directory', () => { rmSync(ca); mkdirSync(ca) }],
    ['deleted', () => { rmSync(ca, { recursive: true }) }],
    // Each differs from the one before in its read error, which is logged once until it changes.
    ['a symlink to a directory outside', () => { symlinkSync(tmpdir(), ca) }],
    ['a dangling symlink', () => { rmSync(ca); symlinkSync(join(dir, 'nowhere'), ca) }]
  ] as Array<[string, () => void]>) {
    mark = lines.length
    breakIt()
    await logged('cannot be read', mark)
    t.equal((await get(partner, url, '/port')).status, 200, `${label}: the CAs in force stay`)
    t.equal(await served(), server2.x509.fingerprint256, `${label}: the server certificate stays`)
  }
  rmSync(ca, { force: true, recursive: true })
  mark = lines.length
  writeFileSync(ca, pki.ourRoot.pem)
  await logged('rotated files applied', mark)
  t.equal((await get(partner, url, '/port')).status, 401, 'restored with the partner dropped: its open connection is refused')
  t.equal((await rawGet(port, '/port', clientOf(leaves.ourAdmin))).status, 200)
})

t.test('watch: a Kubernetes ..data swap that drops the partner CA and its SPIFFE bundle applies both at once; the partner\'s open connection is refused', async (t) => {
  const partnerBundle = JSON.stringify(jwkSet(pki.partnerRoot))
  const volume = new SecretVolume(join(work, 'volume'), {
    'ca.crt': pki.ourRoot.pem + pki.partnerRoot.pem,
    'example.org.pem': pki.ourRoot.pem,
    'partner.json': partnerBundle
  })
  const { port, url, lines, logged } = await tlsApp(t, {}, {
    watch: {
      https: { ca: volume.path('ca.crt') },
      spiffe: { bundles: { 'example.org': volume.path('example.org.pem'), 'partner.example': volume.path('partner.json') } },
      interval: 100
    }
  })
  const partner = agentFor(t, leaves.partnerBilling)
  t.equal((await get(partner, url, '/partner')).status, 200)
  // A half-written bundle in a swap: refused whole, the CA change beside it included.
  let mark = lines.length
  volume.swap({ 'ca.crt': pki.ourRoot.pem, 'example.org.pem': pki.ourRoot.pem, 'partner.json': partnerBundle.slice(0, 40) })
  await logged('rotated files refused', mark)
  t.equal((await get(partner, url, '/partner')).status, 200, 'nothing of the refused swap is in force')
  mark = lines.length
  volume.swap({ 'ca.crt': pki.ourRoot.pem, 'example.org.pem': pki.ourRoot.pem, 'partner.json': JSON.stringify(jwkSet(pki.ourIntermediate)) })
  await logged('rotated files applied', mark)
  t.equal((await get(partner, url, '/partner')).status, 401)
  t.equal((await rawGet(port, '/partner', clientOf(leaves.partnerBilling))).status, 401)
  t.equal((await rawGet(port, '/admin', clientOf(leaves.ourAdmin))).status, 200)
})
