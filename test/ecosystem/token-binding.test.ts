// Certificate-bound access tokens (RFC 8705) with @fastify/jwt: over real mutual TLS, behind the nginx preset
// (inject from the trusted address) and through a real nginx; the thumbprint against the openssl CLI.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import fastifyAuth from '@fastify/auth'
import fastifyJwt from '@fastify/jwt'
import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { request } from 'undici'
import {
  certificateThumbprint,
  ClientCertInternalError,
  ClientCertTokenMismatchError,
  fastifyClientCert,
  identityFromCertificate,
  trustCertificateBoundToken,
  verifyCertificateBinding,
  type FastifyClientCertOptions
} from '../../lib/index.js'
import { getCorpus, type LeafName } from '../helpers/certs.js'
import { namesOnlyProxy } from '../helpers/names-only.js'
import { requireProxy, startProxy } from '../helpers/proxies.js'
import { clientAgent, startTlsApp } from '../helpers/server.js'

const secret = 'a shared secret long enough for HS256 tests'
const corpus = await getCorpus()
const challenge = 'Bearer error="invalid_token"'

function thumbprintOf (leaf: LeafName): string {
  return certificateThumbprint(new X509Certificate(corpus.leaves[leaf].certPem))!
}

/** What an authorization server issues: a token whose `cnf` names `leaf`'s certificate (or no `cnf`). */
function sign (app: FastifyInstance, leaf: LeafName | null, claims: Record<string, unknown> = {}): string {
  return app.jwt.sign({ sub: 'client-1', ...(leaf === null ? {} : { cnf: { 'x5t#S256': thumbprintOf(leaf) } }), ...claims })
}

type Style = 'trusted' | 'jwtVerify step' | '@fastify/auth'

/** The three ways docs/ecosystem.md offers, each on /bound (certificate required) and /bound-optional. */
function boundRoutes (app: FastifyInstance, style: Style): void {
  const handler = async (request: FastifyRequest): Promise<unknown> => ({ thumbprint: certificateThumbprint(request.clientCert!) })
  const onRequest = style === '@fastify/auth'
    ? app.auth([async (request) => { verifyCertificateBinding(request, await request.jwtVerify()) }])
    : style === 'jwtVerify step'
      ? async (request: FastifyRequest) => { verifyCertificateBinding(request, await request.jwtVerify()) }
      // jwt's `trusted` option runs the check inside jwtVerify.
      : async (request: FastifyRequest) => { await request.jwtVerify() }
  app.get('/bound', { onRequest }, handler)
  app.get('/bound-optional', { onRequest, config: { clientCert: { required: false } } }, handler)
}

async function tlsApp (t: Test, style: Style): Promise<{ app: FastifyInstance, url: string }> {
  const { app, url } = await startTlsApp({
    routes: (app) => {
      app.register(fastifyJwt, { secret, ...(style === 'trusted' ? { trusted: trustCertificateBoundToken } : {}) })
      if (style === '@fastify/auth') app.register(fastifyAuth)
      app.after(() => boundRoutes(app, style))
    }
  })
  t.teardown(() => app.close())
  return { app, url }
}

async function get (url: string, leaf: LeafName | null, token: string): Promise<{ status: number, body: any, challenge: string | undefined }> {
  const dispatcher = await clientAgent(leaf)
  try {
    const response = await request(url, { dispatcher, headers: { authorization: `Bearer ${token}` } })
    return { status: response.statusCode, body: await response.body.json(), challenge: response.headers['www-authenticate'] as string | undefined }
  } finally {
    await dispatcher.close()
  }
}

t.test('the thumbprint is what openssl x509 -outform DER | openssl dgst -sha256 -binary | base64url prints', async (t) => {
  for (const leaf of ['alice', 'bob', 'rsa', 'untrusted'] as const) {
    const der = execFileSync('openssl', ['x509', '-in', corpus.leaves[leaf].certPath, '-outform', 'DER'])
    const digest = execFileSync('openssl', ['dgst', '-sha256', '-binary'], { input: der })
    const base64 = execFileSync('openssl', ['base64', '-A'], { input: digest }).toString('ascii').trim()
    const expected = base64.replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '')
    t.equal(expected.length, 43)
    t.equal(thumbprintOf(leaf), expected, `${leaf}: from an X509Certificate`)
    t.equal(certificateThumbprint(identityFromCertificate(corpus.leaves[leaf].certPem)), expected, `${leaf}: from an identity`)
  }
})

t.test('certificateThumbprint: a names-only identity or a malformed fingerprint has none', async (t) => {
  t.equal(certificateThumbprint({ fingerprint256: null }), null)
  t.equal(certificateThumbprint({ fingerprint256: 'AB:CD' }), null)
  t.equal(certificateThumbprint({ fingerprint256: 'ab'.repeat(32) }), null, 'bare hex is not how an identity spells it')
  const lower = new X509Certificate(corpus.leaves.alice.certPem).fingerprint256.toLowerCase()
  t.equal(certificateThumbprint({ fingerprint256: lower }), thumbprintOf('alice'), 'either case of colon-hex')
})

t.test('verifyCertificateBinding on any payload shape: only an own cnf object with a canonical thumbprint binds', async (t) => {
  const logged: string[] = []
  const log = { info: (fields: { reason: string }) => { logged.push(fields.reason) }, error: (message: string) => { logged.push(message) } }
  const alice = identityFromCertificate(corpus.leaves.alice.certPem, { verified: true })
  const fake = (clientCert: unknown): FastifyRequest => ({ clientCert, log }) as unknown as FastifyRequest
  const code = (clientCert: unknown, payload: unknown): string | null => {
    try {
      verifyCertificateBinding(fake(clientCert), payload)
      return null
    } catch (error) {
      return (error as { code: string }).code
    }
  }
  const thumbprint = thumbprintOf('alice')
  t.equal(code(alice, { cnf: { 'x5t#S256': thumbprint } }), null)
  for (const payload of [null, undefined, 'token', 42, [], [{ cnf: { 'x5t#S256': thumbprint } }], {}, { cnf: null }, { cnf: [] }, { cnf: 'x' }, { cnf: {} }, { cnf: { 'x5t#S256': null } }]) {
    t.equal(code(alice, payload), 'FST_CLIENT_CERT_TOKEN_UNBOUND', `${JSON.stringify(payload)}: unbound`)
  }
  t.equal(code(undefined, { cnf: { 'x5t#S256': thumbprint } }), 'FST_CLIENT_CERT_MISSING', 'no plugin decoration: missing')
  t.equal(code({ ...alice, verified: false }, { cnf: { 'x5t#S256': thumbprint } }), 'FST_CLIENT_CERT_INVALID')
  t.equal(code({ ...alice, fingerprint256: null, certificate: null }, { cnf: { 'x5t#S256': thumbprint } }), 'FST_CLIENT_CERT_INTERNAL', 'names only: 500')
  t.match(logged.at(-1), /no SHA-256 fingerprint/, 'the log says why')
  t.ok(logged.includes('no cnf claim') && logged.includes('malformed cnf claim') && logged.includes('no cnf["x5t#S256"] member') && logged.includes('malformed cnf["x5t#S256"] thumbprint'), 'each reason is logged')
  // A lazily built certificate object is not needed: the digest alone decides.
  t.equal(code({ ...alice, certificate: null }, { cnf: { 'x5t#S256': thumbprint } }), null, 'certificate null, fingerprint256 known: bound')
})

for (const style of ['trusted', 'jwtVerify step', '@fastify/auth'] as const) {
  t.test(`@fastify/jwt over mutual TLS (${style})`, async (t) => {
    const { app, url } = await tlsApp(t, style)

    const bound = await get(`${url}/bound`, 'alice', sign(app, 'alice'))
    t.equal(bound.status, 200, "alice's token with alice's certificate: admitted")
    t.same(bound.body, { thumbprint: thumbprintOf('alice') })

    const other = await get(`${url}/bound`, 'alice', sign(app, 'bob'))
    t.equal(other.status, 401, "bob's token with alice's certificate: refused")
    t.equal(other.body.code, 'FST_CLIENT_CERT_TOKEN_MISMATCH')
    t.equal(other.body.message, 'The access token is bound to another client certificate')
    t.equal(other.challenge, challenge, 'RFC 8705 §3: invalid_token')

    const unbound = await get(`${url}/bound`, 'alice', sign(app, null))
    t.equal(unbound.status, 401, 'a token without cnf: refused')
    t.equal(unbound.body.code, 'FST_CLIENT_CERT_TOKEN_UNBOUND')
    t.equal(unbound.challenge, challenge)

    const none = await get(`${url}/bound-optional`, null, sign(app, 'alice'))
    t.equal(none.status, 401, "alice's token and no certificate, on an optional route: refused")
    t.equal(none.body.code, 'FST_CLIENT_CERT_MISSING')
    t.equal(none.challenge, challenge)

    const unverified = await get(`${url}/bound-optional`, 'untrusted', sign(app, 'untrusted'))
    t.equal(unverified.status, 401, 'a certificate that does not verify, with a token bound to it: refused')
    t.equal(unverified.body.code, 'FST_CLIENT_CERT_INVALID')

    const optional = await get(`${url}/bound-optional`, 'bob', sign(app, 'bob'))
    t.equal(optional.status, 200, "bob's token with bob's certificate on the optional route: admitted")
  })
}

async function proxyApp (t: Test, proxy: NonNullable<FastifyClientCertOptions['proxy']>): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(fastifyClientCert, { mode: 'proxy', proxy })
  await app.register(fastifyJwt, { secret, trusted: trustCertificateBoundToken })
  boundRoutes(app, 'trusted')
  t.teardown(() => app.close())
  return app
}

function nginxHeaders (leaf: LeafName, verify = 'SUCCESS'): Record<string, string> {
  return { 'x-ssl-client-cert': encodeURIComponent(corpus.leaves[leaf].certPem), 'x-ssl-client-verify': verify }
}

t.test('behind a proxy (nginx preset, inject from the trusted address)', async (t) => {
  const app = await proxyApp(t, { preset: 'nginx', trust: ['127.0.0.1'] })
  const inject = async (url: string, headers: Record<string, string>, token: string): Promise<{ statusCode: number, json: () => any, headers: Record<string, unknown> }> =>
    await app.inject({ url, remoteAddress: '127.0.0.1', headers: { ...headers, authorization: `Bearer ${token}` } })

  const bound = await inject('/bound', nginxHeaders('alice'), sign(app, 'alice'))
  t.equal(bound.statusCode, 200)
  t.same(bound.json(), { thumbprint: thumbprintOf('alice') })

  const other = await inject('/bound', nginxHeaders('alice'), sign(app, 'bob'))
  t.equal(other.statusCode, 401)
  t.equal(other.json().code, 'FST_CLIENT_CERT_TOKEN_MISMATCH')
  t.equal(other.headers['www-authenticate'], challenge)

  const failed = await inject('/bound-optional', nginxHeaders('alice', 'FAILED:certificate has expired'), sign(app, 'alice'))
  t.equal(failed.statusCode, 401, 'the proxy says the certificate failed: refused even with its own token')
  t.equal(failed.json().code, 'FST_CLIENT_CERT_INVALID')

  const none = await inject('/bound-optional', { 'x-ssl-client-verify': 'NONE' }, sign(app, 'alice'))
  t.equal(none.statusCode, 401)
  t.equal(none.json().code, 'FST_CLIENT_CERT_MISSING')
})

t.test('behind a proxy that forwards names only: refused with a 500 that names the cause in the log, never admitted', async (t) => {
  const app = await proxyApp(t, namesOnlyProxy)
  const identity = identityFromCertificate(corpus.leaves.alice.certPem)
  const response = await app.inject({
    url: '/bound',
    remoteAddress: '127.0.0.1',
    headers: {
      'x-client-s-dn': identity.subject!,
      'x-client-i-dn': identity.issuer!,
      'x-client-serial': identity.serialNumber!,
      'x-client-verify': 'SUCCESS',
      authorization: `Bearer ${sign(app, 'alice')}`
    }
  })
  t.equal(response.statusCode, 500)
  t.equal(response.json().code, new ClientCertInternalError().code)
})

t.test('behind a proxy that forwards names and the SHA-256 only: the digest is enough', async (t) => {
  const app = await proxyApp(t, { ...namesOnlyProxy, headers: { ...namesOnlyProxy.headers, fingerprint: { name: 'x-client-sha256' } } })
  const identity = identityFromCertificate(corpus.leaves.alice.certPem)
  const headers = {
    'x-client-s-dn': identity.subject!,
    'x-client-i-dn': identity.issuer!,
    'x-client-serial': identity.serialNumber!,
    'x-client-sha256': identity.fingerprint256!,
    'x-client-verify': 'SUCCESS'
  }
  const bound = await app.inject({ url: '/bound', remoteAddress: '127.0.0.1', headers: { ...headers, authorization: `Bearer ${sign(app, 'alice')}` } })
  t.equal(bound.statusCode, 200)
  const other = await app.inject({ url: '/bound', remoteAddress: '127.0.0.1', headers: { ...headers, authorization: `Bearer ${sign(app, 'bob')}` } })
  t.equal(other.statusCode, 401)
  t.equal(other.json().code, new ClientCertTokenMismatchError().code)
})

t.test('through a real nginx: the token is bound to the certificate nginx verified', async (t) => {
  if (!requireProxy(t, 'nginx')) return
  const app = await proxyApp(t, { preset: 'nginx', trust: ['127.0.0.1'] })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const proxy = await startProxy('nginx', { upstream: { host: '127.0.0.1', port: (app.server.address() as { port: number }).port } })
  t.teardown(() => proxy.stop())
  const through = async (leaf: LeafName, token: string): Promise<{ status: number, body: any }> => {
    const dispatcher = await clientAgent(leaf)
    try {
      const response = await request(`${proxy.url}/bound`, { dispatcher, headers: { host: 'localhost', authorization: `Bearer ${token}` } })
      return { status: response.statusCode, body: await response.body.json() }
    } finally {
      await dispatcher.close()
    }
  }
  const bound = await through('bob', sign(app, 'bob'))
  t.equal(bound.status, 200, "bob's token with bob's certificate")
  t.same(bound.body, { thumbprint: thumbprintOf('bob') })
  const stolen = await through('alice', sign(app, 'bob'))
  t.equal(stolen.status, 401, "bob's token with alice's certificate")
  t.equal(stolen.body.code, 'FST_CLIENT_CERT_TOKEN_MISMATCH')
})
