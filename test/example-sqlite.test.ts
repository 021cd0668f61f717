import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { FastifyInstance } from 'fastify'
import { Agent, request } from 'undici'
import { getCorpus, type LeafName } from './helpers/certs.js'

// The example is plain JavaScript that imports the built package by name, as its users' apps would. It is a
// package of its own (better-sqlite3 compiles from source): `npm --prefix examples/sqlite-users ci`, which .ci/run does.
type Build = (options: {
  https: { key: string, cert: string, ca: string }
  database?: string
  enrollmentCodes?: Array<{ code: string, name: string }>
  codeTtl?: number
}) => FastifyInstance
const exampleDir = new URL('../examples/sqlite-users/', import.meta.url)
const installed = existsSync(new URL('node_modules/better-sqlite3/package.json', exampleDir))
const missing = 'examples/sqlite-users has no node_modules: npm --prefix examples/sqlite-users ci'
if (!installed) {
  // As with the real proxies: CI (MTLS_REQUIRE_PROXIES=1) fails, a developer's run skips, loudly.
  if (process.env.MTLS_REQUIRE_PROXIES === '1' || process.env.CI !== undefined) {
    t.fail(missing)
  } else {
    console.error(`# SKIPPED: ${missing} (set MTLS_REQUIRE_PROXIES=1 to make this a failure)`)
  }
}
const skip = installed ? false : missing
const { build } = installed
  ? await import(new URL('app.js', exampleDir).href) as { build: Build }
  : { build: null as unknown as Build }

const run = promisify(execFile)
const bootstrap = { code: 'first-admin-code-0123456789', name: 'Carol' }

interface Credentials { cert: string, key: string }
interface Started { url: string, close: () => Promise<void> }
interface Reply { status: number, body: Record<string, any> }

async function start (t: Test, options: Partial<Parameters<Build>[0]> = {}): Promise<Started> {
  const corpus = await getCorpus()
  const server = corpus.leaves.serverauth
  const app = build({
    https: { key: server.keyPem, cert: server.chainPem, ca: corpus.caPem },
    enrollmentCodes: [bootstrap],
    ...options
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as { port: number }
  let closed = false
  const close = async () => {
    if (!closed) await app.close()
    closed = true
  }
  t.teardown(close)
  return { url: `https://localhost:${port}`, close }
}

/** A client with one keep-alive connection presenting `credentials` (a corpus leaf, others, or none). */
async function client (t: Test, credentials: LeafName | Credentials | null) {
  const corpus = await getCorpus()
  const presented = typeof credentials === 'string'
    ? { cert: corpus.leaves[credentials].certPem, key: corpus.leaves[credentials].keyPem }
    : credentials ?? {}
  const agent = new Agent({ connect: { ca: corpus.caPem, servername: 'localhost', ...presented }, connections: 1 })
  t.teardown(() => agent.close())
  return async function call (url: string, method: 'GET' | 'POST' = 'GET', body?: unknown): Promise<Reply> {
    const response = await request(url, {
      dispatcher: agent,
      method,
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    })
    return { status: response.statusCode, body: await response.body.json() as Record<string, any> }
  }
}

/** A renewal: a new key and certificate for `subject`, issued by the corpus's intermediate CA. */
async function renew (t: Test, subject: string): Promise<Credentials> {
  const corpus = await getCorpus()
  const dir = mkdtempSync(join(tmpdir(), 'sqlite-example-renewal-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'ext'), 'basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = clientAuth\n')
  await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-noenc',
    '-subj', subject, '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'csr.pem')])
  await run('openssl', ['x509', '-req', '-in', join(dir, 'csr.pem'), '-days', '1', '-extfile', join(dir, 'ext'),
    '-CA', corpus.intermediate.certPath, '-CAkey', corpus.intermediate.keyPath, '-set_serial', '0x5EED01',
    '-out', join(dir, 'cert.pem')])
  return { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') }
}

t.test('enrollment by one-time code, /me and the admin routes, over real HTTPS', { skip }, async (t) => {
  const { url } = await start(t)
  const anonymous = await client(t, null)
  const alice = await client(t, 'alice')
  const carol = await client(t, 'twoou') // CN=carol, OU=Platform
  const bob = await client(t, 'bob')
  const rogue = await client(t, 'untrusted') // CN=alice, issued by a CA the server does not trust

  t.equal((await anonymous(url + '/me')).body.code, 'FST_CLIENT_CERT_MISSING')
  t.equal((await anonymous(url + '/enroll', 'POST', bootstrap)).status, 401)
  t.same((await alice(url + '/me')).body, {
    statusCode: 403,
    code: 'FST_CLIENT_CERT_FORBIDDEN',
    error: 'Forbidden',
    message: 'The client certificate is not allowed to access this resource'
  }, 'a verified certificate that is no user')

  t.equal((await alice(url + '/enroll', 'POST', {})).status, 400, 'no code')
  t.same((await alice(url + '/enroll', 'POST', { code: 'guessed' })).body, { statusCode: 403, error: 'Forbidden', message: 'Unknown, used or expired enrollment code' })
  t.equal((await rogue(url + '/enroll', 'POST', bootstrap)).body.code, 'FST_CLIENT_CERT_INVALID', 'an unverified certificate cannot enroll')

  const enrolled = await carol(url + '/enroll', 'POST', bootstrap)
  t.equal(enrolled.status, 201)
  t.same(enrolled.body, { id: 1, name: 'Carol', pinned: false })
  const me = await carol(url + '/me')
  t.equal(me.status, 200, 'the next request on the same connection resolves: the refusal before was not cached')
  t.same(me.body.user, { id: 1, name: 'Carol' })
  t.equal(me.body.certificate.subject, 'CN=carol,OU=Platform,OU=Engineering,O=Example Corp,C=US')
  t.equal((await carol(url + '/enroll', 'POST', { code: 'anything' })).status, 409, 'enrolled once')
  t.equal((await alice(url + '/enroll', 'POST', bootstrap)).status, 403, 'the code was used')

  const users = await carol(url + '/admin/users')
  t.equal(users.status, 200, 'OU=Platform passes the admin allow rule')
  t.match(users.body, [{ id: 1, name: 'Carol', subject: me.body.certificate.subject, issuer: me.body.certificate.issuer, fingerprint256: null, enrolledAt: String }])
  t.equal((await carol(url + '/admin/enrollment-codes', 'POST', {})).status, 400, 'a code needs a name')
  const minted = await carol(url + '/admin/enrollment-codes', 'POST', { name: 'Alice' })
  t.equal(minted.status, 201)
  t.match(minted.body, { code: /^[\w-]{24}$/, name: 'Alice', expiresAt: String })
  t.ok(Date.parse(minted.body.expiresAt) > Date.now(), 'the code expires later')

  t.equal((await alice(url + '/me')).status, 403)
  t.same((await alice(url + '/enroll', 'POST', { code: minted.body.code })).body, { id: 2, name: 'Alice', pinned: false })
  t.same((await alice(url + '/me')).body.user, { id: 2, name: 'Alice' }, 'enrollment takes effect at once')
  t.equal((await alice(url + '/admin/users')).body.code, 'FST_CLIENT_CERT_FORBIDDEN', 'an enrolled user without OU=Platform is no admin')
  t.equal((await bob(url + '/admin/enrollment-codes', 'POST', { name: 'Mallory' })).status, 403)
  t.equal((await rogue(url + '/me')).body.code, 'FST_CLIENT_CERT_INVALID', 'same subject as alice, other CA: not verified, so never looked up')
})

t.test('renewal: a subject + issuer key survives it, a fingerprint pin does not', { skip }, async (t) => {
  const corpus = await getCorpus()
  const { url } = await start(t, {
    enrollmentCodes: [{ code: 'code-for-alice-0001', name: 'Alice' }, { code: 'code-for-bob-0002', name: 'Bob' },
      { code: 'code-for-nocn-0003', name: 'Service' }, { code: 'code-for-bob-0004', name: 'Bob (renewed)' }]
  })
  const [renewedAlice, renewedBob] = await Promise.all([
    renew(t, '/C=US/O=Example Corp/CN=alice/emailAddress=alice@example.com'),
    renew(t, '/C=US/O=Example Corp/CN=bob')
  ])
  const original = new X509Certificate(corpus.leaves.alice.certPem)
  const renewed = new X509Certificate(renewedAlice.cert)
  t.equal(renewed.subject, original.subject, 'same subject')
  t.equal(renewed.issuer, original.issuer, 'same issuer')
  t.not(renewed.fingerprint256, original.fingerprint256, 'another certificate')

  const alice = await client(t, 'alice')
  t.same((await alice(url + '/enroll', 'POST', { code: 'code-for-alice-0001' })).body, { id: 1, name: 'Alice', pinned: false })
  const bob = await client(t, 'bob')
  t.same((await bob(url + '/enroll', 'POST', { code: 'code-for-bob-0002', pin: true })).body, { id: 2, name: 'Bob', pinned: true })
  t.same((await bob(url + '/me')).body.user, { id: 2, name: 'Bob' })

  const aliceAgain = await (await client(t, renewedAlice))(url + '/me')
  t.equal(aliceAgain.status, 200, 'the renewed certificate maps to the same user')
  t.same(aliceAgain.body.user, { id: 1, name: 'Alice' })
  t.equal(aliceAgain.body.certificate.fingerprint256, renewed.fingerprint256)
  const bobAgain = await client(t, renewedBob)
  t.equal((await bobAgain(url + '/me')).status, 403, 'a pin names one certificate: its renewal needs a new enrollment')
  t.same((await bobAgain(url + '/enroll', 'POST', { code: 'code-for-bob-0004' })).body, { id: 3, name: 'Bob (renewed)', pinned: false })
  t.same((await bob(url + '/me')).body.user, { id: 2, name: 'Bob' }, 'the pin still wins over the subject row that now matches it too')

  const nocn = await client(t, 'nocn')
  t.same((await nocn(url + '/enroll', 'POST', { code: 'code-for-nocn-0003' })).body,
    { statusCode: 400, error: 'Bad Request', message: 'A certificate without a subject can only be pinned' })
  t.same((await nocn(url + '/enroll', 'POST', { code: 'code-for-nocn-0003', pin: true })).body, { id: 4, name: 'Service', pinned: true },
    'the refusal left the code unused')
  t.equal((await nocn(url + '/me')).status, 200)
})

t.test('a database file keeps users and used codes across restarts; codes expire', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sqlite-example-db-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const database = join(dir, 'users.db')

  const first = await start(t, { database })
  t.equal((await (await client(t, 'twoou'))(first.url + '/enroll', 'POST', bootstrap)).status, 201)
  await first.close()

  const second = await start(t, { database })
  t.same((await (await client(t, 'twoou'))(second.url + '/me')).body.user, { id: 1, name: 'Carol' })
  t.equal((await (await client(t, 'alice'))(second.url + '/enroll', 'POST', bootstrap)).status, 403,
    'seeding the same code again on restart does not revive it')
  await second.close()

  const expired = await start(t, { codeTtl: 0 })
  t.equal((await (await client(t, 'alice'))(expired.url + '/enroll', 'POST', bootstrap)).status, 403, 'an expired code')
})
