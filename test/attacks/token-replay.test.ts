// Certificate-bound access tokens (RFC 8705) under attack: a token stolen and replayed with another
// certificate (or none), a token bound to the issuing CA instead of the leaf, and thumbprints spelled so that a
// lenient base64 decoder would accept them, or that would crash a length-sensitive comparison.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyJwt from '@fastify/jwt'
import { X509Certificate } from 'node:crypto'
import { request } from 'undici'
import { certificateThumbprint, fastifyClientCert, trustCertificateBoundToken } from '../../lib/index.js'
import { getCorpus, type LeafName } from '../helpers/certs.js'
import { clientAgent, startTlsApp } from '../helpers/server.js'

const secret = 'a shared secret long enough for HS256 tests'
const corpus = await getCorpus()

function thumbprint (pem: string): string {
  return certificateThumbprint(new X509Certificate(pem))!
}

const bob = thumbprint(corpus.leaves.bob.certPem)

function routes (app: FastifyInstance): void {
  app.register(fastifyJwt, { secret, trusted: trustCertificateBoundToken })
  app.after(() => {
    const onRequest = async (request: { jwtVerify: () => Promise<unknown> }): Promise<void> => { await request.jwtVerify() }
    app.get('/bound', { onRequest }, async () => ({ ok: true }))
    app.get('/bound-optional', { onRequest, config: { clientCert: { required: false } } }, async () => ({ ok: true }))
  })
}

async function tlsGet (url: string, leaf: LeafName | null, token: string, chain = false): Promise<{ status: number, body: any }> {
  const dispatcher = await clientAgent(leaf, { chain })
  try {
    const response = await request(url, { dispatcher, headers: { authorization: `Bearer ${token}` } })
    return { status: response.statusCode, body: await response.body.json() }
  } finally {
    await dispatcher.close()
  }
}

t.test('attack: a token stolen from bob and replayed over mutual TLS with another certificate, or none, is refused', async (t) => {
  const { app, url } = await startTlsApp({ routes })
  t.teardown(() => app.close())
  const stolen = app.jwt.sign({ sub: 'bob', cnf: { 'x5t#S256': bob } })

  t.equal((await tlsGet(`${url}/bound`, 'bob', stolen)).status, 200, 'bob himself: admitted')
  for (const leaf of ['alice', 'rsa', 'tricky'] as const) {
    const replay = await tlsGet(`${url}/bound`, leaf, stolen)
    t.equal(replay.status, 401, `replayed with ${leaf}'s verified certificate: 401`)
    t.equal(replay.body.code, 'FST_CLIENT_CERT_TOKEN_MISMATCH')
  }
  const bare = await tlsGet(`${url}/bound-optional`, null, stolen)
  t.equal(bare.status, 401, 'replayed without a certificate on an optional route: 401')
  t.equal(bare.body.code, 'FST_CLIENT_CERT_MISSING')
  // Anyone can mint a certificate and a token bound to it; a certificate that does not verify binds nothing.
  const forged = await tlsGet(`${url}/bound-optional`, 'selfsigned', app.jwt.sign({ sub: 'bob', cnf: { 'x5t#S256': thumbprint(corpus.leaves.selfsigned.certPem) } }))
  t.equal(forged.status, 401, 'a token bound to an unverified certificate, with that certificate: 401')
  t.equal(forged.body.code, 'FST_CLIENT_CERT_INVALID')
})

t.test('attack: a token bound to the issuing CA instead of the leaf admits no one under that CA', async (t) => {
  const { app, url } = await startTlsApp({ routes })
  t.teardown(() => app.close())
  for (const ca of ['intermediate', 'root'] as const) {
    const token = app.jwt.sign({ sub: 'anyone', cnf: { 'x5t#S256': thumbprint(corpus[ca].certPem) } })
    for (const leaf of ['alice', 'bob'] as const) {
      const response = await tlsGet(`${url}/bound`, leaf, token, true)
      t.equal(response.status, 401, `${ca}'s thumbprint, ${leaf} sending her chain with the ${ca === 'root' ? 'root above it' : 'intermediate in it'}: 401`)
      t.equal(response.body.code, 'FST_CLIENT_CERT_TOKEN_MISMATCH')
    }
  }
})

async function proxyApp (t: Test): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'nginx', trust: ['127.0.0.1'] } })
  routes(app)
  await app.ready()
  t.teardown(() => app.close())
  return app
}

// Keys are generated per run: the holder is a verified leaf whose thumbprint has a character that the two
// base64 alphabets spell differently (one of ten leaves has one but for a chance of about 1e-6).
const holder = (['alice', 'bob', 'rsa', 'tricky', 'utf8', 'multirdn', 'twoou', 'nocn', 'san', 'ctrl'] as const)
  .find((leaf) => /[-_]/.test(thumbprint(corpus.leaves[leaf].certPem))) ?? 'bob'
const bound = thumbprint(corpus.leaves[holder].certPem)

async function asHolder (app: FastifyInstance, cnf: unknown): Promise<{ statusCode: number, json: () => any }> {
  return await app.inject({
    url: '/bound',
    remoteAddress: '127.0.0.1',
    headers: {
      'x-ssl-client-cert': encodeURIComponent(corpus.leaves[holder].certPem),
      'x-ssl-client-verify': 'SUCCESS',
      authorization: `Bearer ${app.jwt.sign({ sub: holder, ...(cnf === undefined ? {} : { cnf }) })}`
    }
  })
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

// Each names the holder's own certificate, or nearly: a decoder that repairs or truncates would admit or crash.
function misspellings (): Array<[string, unknown]> {
  const digest = Buffer.from(bound, 'base64url')
  const standard = digest.toString('base64')
  const lastBits = bound.slice(0, 42) + ALPHABET[ALPHABET.indexOf(bound[42]!) + 1]
  const fingerprint = new X509Certificate(corpus.leaves[holder].certPem).fingerprint256
  return [
    ['base64url with padding', { 'x5t#S256': bound + '=' }],
    ['standard base64 alphabet and padding', { 'x5t#S256': standard }],
    ['standard base64 alphabet without padding', { 'x5t#S256': standard.slice(0, 43) }],
    ['unused low bits set in the last character (a second spelling of the same digest)', { 'x5t#S256': lastBits }],
    ['truncated to 42 characters', { 'x5t#S256': bound.slice(0, 42) }],
    ['one character longer', { 'x5t#S256': bound + 'A' }],
    ['surrounded by blanks', { 'x5t#S256': ` ${bound} ` }],
    ['hex SHA-256 instead of base64url', { 'x5t#S256': digest.toString('hex') }],
    ['colon-hex fingerprint256 instead of base64url', { 'x5t#S256': fingerprint }],
    ['the thumbprint in an array', { 'x5t#S256': [bound] }],
    ['a number', { 'x5t#S256': 42 }],
    ['key in another case', { 'X5T#S256': bound }],
    ['SHA-1 x5t only', { x5t: bound }],
    ['cnf as a string', bound],
    ['cnf as an array', [{ 'x5t#S256': bound }]],
    ['cnf null', null]
  ]
}

t.test('attack: thumbprints spelled other than canonical unpadded base64url of 32 bytes are refused as unbound (401, never 500, never admitted)', async (t) => {
  const app = await proxyApp(t)
  t.match(bound, /[-_]/, 'the holder\'s thumbprint differs between the two alphabets')
  t.equal((await asHolder(app, { 'x5t#S256': bound })).statusCode, 200, 'the canonical spelling admits the holder')
  for (const [what, cnf] of misspellings()) {
    const response = await asHolder(app, cnf)
    t.equal(response.statusCode, 401, `${what}: 401`)
    t.equal(response.json().code, 'FST_CLIENT_CERT_TOKEN_UNBOUND', `${what}: unbound`)
  }
})

t.test('attack: a polluted Object.prototype.cnf does not bind a token that has no cnf', async (t) => {
  const app = await proxyApp(t)
  const proto = Object.prototype as Record<string, unknown>
  proto.cnf = { 'x5t#S256': bound }
  try {
    const response = await asHolder(app, undefined)
    t.equal(response.statusCode, 401)
    t.equal(response.json().code, 'FST_CLIENT_CERT_TOKEN_UNBOUND')
  } finally {
    delete proto.cnf
  }
})
