// A certificate holder (or a CA that reuses serials) whose names differ from another's in ways the plugin
// could fold together: a user cached under issuer and serial alone, a DER value `#04…` read as the text `#04…`.
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fastifyClientCert, type AllowRules, type FastifyClientCertOptions } from '../../lib/index.js'
import { namesOnlyProxy } from '../helpers/names-only.js'

// A proxy that forwards names alone, as Apache's SSL_CLIENT_S_DN / _I_DN / _M_SERIAL.
const namesOnly = namesOnlyProxy

// A proxy that forwards the whole certificate, verified by the proxy.
const wholeCert = {
  trust: '127.0.0.1',
  headers: { cert: { name: 'x-cert', encoding: 'pem-urlencoded' as const }, verified: 'present' as const }
}

async function app (options: Partial<FastifyClientCertOptions>): Promise<FastifyInstance> {
  const fastify = Fastify() as unknown as FastifyInstance
  await fastify.register(fastifyClientCert, { mode: 'proxy', ...options } as FastifyClientCertOptions)
  fastify.get('/me', async (request) => ({ subject: request.clientCert?.subject, user: (request as unknown as { user: unknown }).user ?? null }))
  return fastify
}

function names (subject: string, issuer = 'CN=Corp CA', serial = '10'): Record<string, string> {
  return { 'x-client-s-dn': subject, 'x-client-i-dn': issuer, 'x-client-serial': serial, 'x-client-verify': 'SUCCESS' }
}

t.test('user cache: another subject under the same issuer and serial does not get the cached user', async (t) => {
  let calls = 0
  const fastify = await app({
    proxy: namesOnly,
    resolveUser: async (identity) => { calls++; return { name: identity.commonName } }
  } as Partial<FastifyClientCertOptions>)
  t.teardown(() => fastify.close())
  const alice = await fastify.inject({ url: '/me', headers: names('CN=alice,O=Old') })
  t.same(alice.json().user, { name: 'alice' })
  const mallory = await fastify.inject({ url: '/me', headers: names('CN=mallory,O=New') })
  t.equal(mallory.statusCode, 200)
  t.same(mallory.json().user, { name: 'mallory' }, 'the second subject is looked up, not served alice')
  t.equal(calls, 2)
  // The same names again are served from the cache; a DER value is not its hex text either.
  t.same((await fastify.inject({ url: '/me', headers: names('CN=alice,O=Old') })).json().user, { name: 'alice' })
  t.equal(calls, 2, 'the same names hit the cache')
  // An OCTET STRING stays DER (`der: true`); the escaped text spells the same characters.
  await fastify.inject({ url: '/me', headers: names('CN=#0405616C696365,O=Old') })
  await fastify.inject({ url: '/me', headers: names('CN=\\#0405616C696365,O=Old') })
  t.equal(calls, 4, 'the DER value and the text that spells it are two keys')
})

// The text `#04056164616D73` in a certificate's CN, against the OCTET STRING 'adams' written `#04056164616D73`.
const HEX = '#04056164616D73'
const dir = mkdtempSync(join(tmpdir(), 'client-cert-confusion-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'k.pem'),
  '-out', join(dir, 'c.pem'), '-subj', `/O=Red/CN=${HEX}`, '-days', '2'], { stdio: 'ignore' })
const hashText = readFileSync(join(dir, 'c.pem'), 'latin1')

t.test('allow: a string rule with a DER value (CN=#04…) does not admit a certificate whose CN is the text #04…', async (t) => {
  const fastify = await app({ proxy: wholeCert, allow: { subjects: [`CN=${HEX},O=Red`] } })
  t.teardown(() => fastify.close())
  const res = await fastify.inject({ url: '/me', headers: { 'x-cert': encodeURIComponent(hashText) } })
  t.equal(res.statusCode, 403)
  t.equal(res.json().code, 'FST_CLIENT_CERT_FORBIDDEN')
  // The text rule, escaped as RFC 4514 writes a leading #, does match it.
  const text = await app({ proxy: wholeCert, allow: { subjects: [`CN=\\${HEX},O=Red`] } })
  t.teardown(() => text.close())
  t.equal((await text.inject({ url: '/me', headers: { 'x-cert': encodeURIComponent(hashText) } })).statusCode, 200)
})

t.test('allow: a string rule with the text \\#04… does not admit a forwarded name whose CN is the DER value #04…', async (t) => {
  const fastify = await app({ proxy: namesOnly, allow: { subjects: [`CN=\\${HEX},O=Red`] } })
  t.teardown(() => fastify.close())
  t.equal((await fastify.inject({ url: '/me', headers: names(`CN=${HEX},O=Red`) })).statusCode, 403)
  t.equal((await fastify.inject({ url: '/me', headers: names(`CN=\\${HEX},O=Red`) })).statusCode, 200)
  const der = await app({ proxy: namesOnly, allow: { subjects: [`CN=${HEX},O=Red`] } })
  t.teardown(() => der.close())
  t.equal((await der.inject({ url: '/me', headers: names(`CN=${HEX.toLowerCase()},O=Red`) })).statusCode, 200, 'DER against DER matches')
})

t.test('allow: an object rule value never matches a DER value, even one that is the same string', async (t) => {
  const rules: AllowRules = { subjects: [{ CN: HEX }] }
  const fastify = await app({ proxy: namesOnly, allow: rules })
  t.teardown(() => fastify.close())
  t.equal((await fastify.inject({ url: '/me', headers: names(`CN=${HEX},O=Red`) })).statusCode, 403)
  t.equal((await fastify.inject({ url: '/me', headers: names(`CN=\\${HEX},O=Red`) })).statusCode, 200, 'the text value matches')
  const cert = await app({ proxy: wholeCert, allow: rules })
  t.teardown(() => cert.close())
  t.equal((await cert.inject({ url: '/me', headers: { 'x-cert': encodeURIComponent(hashText) } })).statusCode, 200, 'a certificate holding the text matches')
})
