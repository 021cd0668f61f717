// A certificate holder whose CA signs odd SANs and names: the certificate is genuine and verifies, but its
// names hold text that a proxy's header format, or a name parser, could read as more names. Envoy writes
// URI, DNS and By values raw into X-Forwarded-Client-Cert, so such text can look like more keys or elements.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { execFile } from 'node:child_process'
import { createHash, X509Certificate } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Agent, request } from 'undici'
import { fastifyClientCert, type AllowRules, type FastifyClientCertOptions, type XfccOptions } from '../../lib/index.js'
import { getCorpus } from '../helpers/certs.js'
import { opensslName } from '../helpers/openssl.js'
import { startTlsApp, toJSON } from '../helpers/server.js'

const run = promisify(execFile)
// Some twenty certificates from the openssl CLI and an app per case on two shared cores.
t.setTimeout(180_000)
const corpus = await getCorpus()

const ADMIN_SPIFFE = 'spiffe://example.org/ns/admin/sa/root'
const ADMIN_DNS = 'admin.example.org'

interface Holder {
  pem: string
  key: string
  path: string
  der: Buffer
  /** hex SHA-256 of the DER, as Envoy writes `Hash` */
  hash: string
  uri: string[]
  dns: string[]
}

const dir = mkdtempSync(join(tmpdir(), 'client-cert-holder-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

// An OpenSSL config value: quoted, with `"` and `\` escaped, so commas, semicolons and quotes reach the certificate as written.
const configValue = (value: string): string => `"${value.replace(/["\\]/g, (c) => '\\' + c)}"`

let serial = 0x4000
/** A certificate signed by the corpus intermediate: the CA the app trusts, with whatever names the holder asked for. */
async function issue (name: string, subject: Array<[string, string]>, san: { uri?: string[], dns?: string[] }): Promise<Holder> {
  const base = join(dir, name)
  const uri = san.uri ?? []
  const dns = san.dns ?? []
  const alt = [...uri.map((u, i) => `URI.${i} = ${configValue(u)}`), ...dns.map((d, i) => `DNS.${i} = ${configValue(d)}`)]
  await writeFile(`${base}.req.cnf`, ['[req]', 'distinguished_name = dn', 'prompt = no', 'utf8 = yes', 'string_mask = utf8only', '[dn]',
    ...subject.map(([type, value], i) => `${i}.${type} = ${configValue(value)}`), ''].join('\n'))
  await writeFile(`${base}.ext.cnf`, ['[ext]', 'basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature',
    'extendedKeyUsage = clientAuth', 'authorityKeyIdentifier = keyid',
    ...(alt.length > 0 ? ['subjectAltName = @alt', '[alt]', ...alt] : []), ''].join('\n'))
  await run('openssl', ['req', '-new', '-config', `${base}.req.cnf`, '-noenc', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-keyout', `${base}.key`, '-out', `${base}.csr`])
  await run('openssl', ['x509', '-req', '-in', `${base}.csr`, '-CA', corpus.intermediate.certPath, '-CAkey', corpus.intermediate.keyPath,
    '-set_serial', String(serial++), '-days', '2', '-sha256', '-extfile', `${base}.ext.cnf`, '-extensions', 'ext', '-out', `${base}.crt`])
  const pem = await readFile(`${base}.crt`, 'utf8')
  const der = new X509Certificate(pem).raw
  return { pem, key: await readFile(`${base}.key`, 'utf8'), path: `${base}.crt`, der, hash: createHash('sha256').update(der).digest('hex'), uri, dns }
}

// Envoy's urlEncodedPemEncodedPeerCertificate
const envoyEncode = (pem: string): string =>
  pem.replaceAll('\n', '%0A').replaceAll(' ', '%20').replaceAll('+', '%2B').replaceAll('/', '%2F').replaceAll('=', '%3D')

const ORG: Array<[string, string]> = [['C', 'US'], ['O', 'Example Corp']]
const admin = await issue('admin', [['C', 'US'], ['O', 'admins'], ['CN', 'root']], { uri: [ADMIN_SPIFFE], dns: [ADMIN_DNS] })
const ADMIN_SUBJECT = 'CN=root,O=admins,C=US'
const dev = await issue('dev', [...ORG, ['CN', 'dev']], { uri: ['spiffe://example.org/ns/dev/sa/app'] })
const mallory = (name: string, san: { uri?: string[], dns?: string[] }, subject: Array<[string, string]> = [...ORG, ['CN', 'mallory']]): Promise<Holder> =>
  issue(name, subject, san)

interface Details { cert?: boolean, subject?: boolean, uri?: boolean, dns?: boolean }
/** Istio's default: subject, URI and DNS, no certificate. */
const NAMES: Details = { subject: true, uri: true, dns: true }
const WITH_CERT: Details = { cert: true, subject: true, uri: true, dns: true }

/**
 * One XFCC element byte for byte as Envoy's conn_manager_utility.cc writes it: `By=` per URI SAN of its own
 * certificate, `Hash=`, then `Cert="…"`, `Subject="…"` (OpenSSL's RFC 2253 text, not escaped further), one
 * `URI=` per URI SAN (`URI=` when none) and one `DNS=` per DNS SAN, joined by `;`, no value escaped.
 */
function envoyElement (holder: Holder, details: Details, by = ['spiffe://example.org/ns/edge/sa/envoy']): string {
  const pairs = by.map((u) => `By=${u}`)
  pairs.push(`Hash=${holder.hash}`)
  if (details.cert === true) pairs.push(`Cert="${envoyEncode(holder.pem)}"`)
  if (details.subject === true) pairs.push(`Subject="${opensslName(holder.path, 'subject', 'RFC2253')}"`)
  if (details.uri === true) pairs.push(...(holder.uri.length === 0 ? ['URI='] : holder.uri.map((u) => `URI=${u}`)))
  if (details.dns === true) pairs.push(...holder.dns.map((d) => `DNS=${d}`))
  return pairs.join(';')
}

interface EnvoyApp { port: number, seen: Array<Record<string, any>> }

/** A Fastify app behind Envoy (preset 'envoy', the Envoy at 127.0.0.1), over real HTTP. */
async function envoyApp (t: Test, xfcc?: XfccOptions, extra: Partial<FastifyClientCertOptions> = {}): Promise<EnvoyApp> {
  const app = Fastify() as unknown as FastifyInstance
  const seen: Array<Record<string, any>> = []
  await app.register(fastifyClientCert, {
    mode: 'proxy',
    proxy: { preset: 'envoy', trust: ['127.0.0.1'], ...(xfcc === undefined ? {} : { xfcc }) },
    ...extra
  })
  app.get('/whoami', async (req) => {
    const identity = toJSON(req.clientCert) as Record<string, any>
    seen.push(identity)
    return identity
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  return { port: (app.server.address() as { port: number }).port, seen }
}

/** Sends the header from the trusted peer exactly as given, bytes and all, on a raw HTTP/1.1 connection. */
async function sendXfcc (port: number, xfcc: string): Promise<{ status: number, body: any }> {
  return await new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port })
    const chunks: Buffer[] = []
    socket.on('connect', () => {
      socket.write(Buffer.from(`GET /whoami HTTP/1.1\r\nHost: app\r\nX-Forwarded-Client-Cert: ${xfcc}\r\nConnection: close\r\n\r\n`, 'latin1'))
    })
    socket.on('data', (chunk) => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      const at = text.indexOf('\r\n\r\n')
      resolve({ status: Number(text.slice(9, 12)), body: JSON.parse(text.slice(at + 4)) })
    })
  })
}

const BAD_HEADER = {
  statusCode: 400,
  code: 'FST_CLIENT_CERT_BAD_HEADER',
  error: 'Bad Request',
  message: 'The forwarded client certificate headers are malformed'
}

function neverAdmin (t: Test, seen: ReadonlyArray<Record<string, any>>): void {
  for (const identity of seen) {
    t.not(identity.spiffeId, ADMIN_SPIFFE, 'not the admin SPIFFE ID')
    t.notOk(identity.san?.uri?.includes(ADMIN_SPIFFE), 'not the admin URI')
    t.notOk(identity.san?.dns?.includes(ADMIN_DNS), 'not the admin DNS name')
    t.not(identity.subject, ADMIN_SUBJECT, 'not the admin subject')
    t.not(identity.fingerprint256, new X509Certificate(admin.pem).fingerprint256, 'not the admin certificate')
  }
}

/** Sends the holder's element as Envoy writes it, with and without Cert: 400 each time, no handler runs. */
async function refusedEitherWay (t: Test, holder: Holder, names: Details = NAMES, withCert: Details = WITH_CERT): Promise<void> {
  for (const [label, details, xfcc] of [['names only', names, undefined], ['Cert forwarded', withCert, { cert: true }]] as const) {
    const { port, seen } = await envoyApp(t, xfcc)
    const header = envoyElement(holder, details)
    const answer = await sendXfcc(port, header)
    t.equal(answer.status, 400, `${label}: 400`)
    t.same(answer.body, BAD_HEADER, `${label}: bad header`)
    t.same(seen, [], `${label}: no handler ran`)
    neverAdmin(t, seen)
  }
}

t.test('control: a plain certificate through the same Envoy app gets its own identity, with and without Cert', async (t) => {
  for (const [details, xfcc] of [[NAMES, undefined], [WITH_CERT, { cert: true }]] as const) {
    const { port } = await envoyApp(t, xfcc)
    const answer = await sendXfcc(port, envoyElement(dev, details))
    t.equal(answer.status, 200)
    t.match(answer.body, { source: 'proxy', proxy: 'envoy', verified: true, spiffeId: 'spiffe://example.org/ns/dev/sa/app', subject: 'CN=dev,O=Example Corp,C=US' })
  }
  const { port } = await envoyApp(t, { cert: true })
  t.match((await sendXfcc(port, envoyElement(admin, WITH_CERT))).body, { spiffeId: ADMIN_SPIFFE, subject: ADMIN_SUBJECT }, 'and the real admin is admin')
})

t.test('a URI SAN holding ",URI=spiffe://…admin" adds an element that would read as the last one: 400', async (t) => {
  await refusedEitherWay(t, await mallory('comma-uri', { uri: [`https://apps.example/m,URI=${ADMIN_SPIFFE}`] }))
})

t.test('a URI SAN holding ",Cert=<URL-encoded PEM of the admin certificate>" adds an element with a genuine certificate: 400', async (t) => {
  await refusedEitherWay(t, await mallory('comma-cert', { uri: [`https://apps.example/m,Cert=${envoyEncode(admin.pem)}`] }))
})

t.test('a URI SAN holding a whole forged element (By, Hash, quoted Cert, Subject, URI of the admin): 400', async (t) => {
  const element = `By=spiffe://example.org/ns/edge/sa/envoy;Hash=${admin.hash};Cert="${envoyEncode(admin.pem)}";Subject="${ADMIN_SUBJECT}";URI=${ADMIN_SPIFFE}`
  await refusedEitherWay(t, await mallory('comma-element', { uri: [`https://apps.example/m,${element}`] }))
})

t.test('a URI SAN holding ";URI=spiffe://…admin" reads as a second URI SAN: 400', async (t) => {
  await refusedEitherWay(t, await mallory('semicolon-uri', { uri: [`https://apps.example/m;URI=${ADMIN_SPIFFE}`] }))
})

t.test('a URI SAN holding ";DNS=admin.example.org" reads as a DNS SAN: 400', async (t) => {
  await refusedEitherWay(t, await mallory('semicolon-dns', { uri: [`spiffe://example.org/ns/dev/sa/m;DNS=${ADMIN_DNS}`] }))
})

t.test('a DNS SAN holding ";DNS=admin.example.org" reads as a second DNS SAN: 400', async (t) => {
  await refusedEitherWay(t, await mallory('dns-dns', { dns: [`m.example.org;DNS=${ADMIN_DNS}`] }))
})

t.test('a URI SAN holding ";Subject=\\"CN=root,O=admins\\"" sent to an Envoy that forwards no Subject: 400', async (t) => {
  await refusedEitherWay(t, await mallory('semicolon-subject', { uri: [`https://apps.example/m;Subject="${ADMIN_SUBJECT}"`] }),
    { uri: true }, { cert: true, uri: true })
})

t.test('a URI SAN holding ";Cert=\\"<admin PEM>\\"" (the key injection Envoy\'s Hash already gave away): 400', async (t) => {
  await refusedEitherWay(t, await mallory('semicolon-cert', { uri: [`https://apps.example/m;Cert="${envoyEncode(admin.pem)}"`] }))
})

t.test('a URI SAN holding ";Hash=<admin hash>": 400', async (t) => {
  await refusedEitherWay(t, await mallory('semicolon-hash', { uri: [`https://apps.example/m;Hash=${admin.hash}`] }))
})

t.test('key injection through By=: a URI SAN holding ";By=…" or a fake hop ",By=…;URI=spiffe://…admin": 400', async (t) => {
  await refusedEitherWay(t, await mallory('semicolon-by', { uri: [`https://apps.example/m;By=${ADMIN_SPIFFE}`] }))
  await refusedEitherWay(t, await mallory('comma-by', { uri: [`https://apps.example/m,By=spiffe://example.org/ns/edge/sa/gateway;URI=${ADMIN_SPIFFE}`] }))
})

t.test('a URI SAN that is the admin SPIFFE ID between literal quotes is not unwrapped: 400', async (t) => {
  await refusedEitherWay(t, await mallory('quoted-uri', { uri: [`"${ADMIN_SPIFFE}"`] }))
})

t.test('Subject quotes: a subject ending in a backslash cannot make a SAN close Envoy\'s quoted Subject: 400', async (t) => {
  // Envoy writes Subject="CN=mallory\\";URI=a";URI=spiffe://…admin: read with \" as a quote, a SAN's quote would end the Subject.
  const holder = await mallory('subject-backslash', { uri: [`https://apps.example/a";URI=${ADMIN_SPIFFE}`] }, [['CN', 'mallory\\']])
  await refusedEitherWay(t, holder)
})

t.test('Subject quotes: a CN holding `", O=admins` stays one CN in Envoy\'s Subject (OpenSSL escapes the quote)', async (t) => {
  const holder = await mallory('subject-quote', { uri: ['spiffe://example.org/ns/dev/sa/q'] }, [...ORG, ['CN', 'q", O=admins']])
  for (const [details, xfcc] of [[NAMES, undefined], [WITH_CERT, { cert: true }]] as const) {
    const { port, seen } = await envoyApp(t, xfcc, { allow: { subjects: [{ O: 'admins' }] } })
    const answer = await sendXfcc(port, envoyElement(holder, details))
    t.equal(answer.status, 403, 'O=admins is not in the name')
    t.same(seen, [])
    const open = await envoyApp(t, xfcc)
    t.match((await sendXfcc(open.port, envoyElement(holder, details))).body, { commonName: 'q", O=admins', subject: 'CN=q\\"\\, O=admins,O=Example Corp,C=US' })
  }
})

t.test('Cert forwarded: the element\'s names must be the certificate\'s, else 400 (a hop that rewrote or a SAN that split them)', async (t) => {
  const { port, seen } = await envoyApp(t, { cert: true })
  const cert = `Hash=${dev.hash};Cert="${envoyEncode(dev.pem)}"`
  for (const [name, header] of Object.entries({
    'admin subject beside the dev certificate': `${cert};Subject="${ADMIN_SUBJECT}";URI=spiffe://example.org/ns/dev/sa/app`,
    'admin URI beside the dev certificate': `${cert};Subject="CN=dev,O=Example Corp,C=US";URI=${ADMIN_SPIFFE}`,
    'an extra DNS beside the dev certificate': `${cert};Subject="CN=dev,O=Example Corp,C=US";URI=spiffe://example.org/ns/dev/sa/app;DNS=${ADMIN_DNS}`,
    'the admin hash beside the dev certificate': `Hash=${admin.hash};Cert="${envoyEncode(dev.pem)}"`
  })) {
    const answer = await sendXfcc(port, header)
    t.equal(answer.status, 400, name)
    t.same(answer.body, BAD_HEADER, name)
  }
  t.same(seen, [])
})

t.test('cert: true refuses an element without Cert (the names-only downgrade)', async (t) => {
  const { port, seen } = await envoyApp(t, { cert: true })
  const answer = await sendXfcc(port, envoyElement(admin, NAMES))
  t.equal(answer.status, 400)
  t.same(answer.body, BAD_HEADER)
  t.same(seen, [])
})

t.test('a URI SAN with a trailing space, which HTTP strips at the end of the header: cert: true sees it (names only cannot)', async (t) => {
  const holder = await mallory('trailing-space', { uri: [`${ADMIN_SPIFFE} `] })
  const { port, seen } = await envoyApp(t, { cert: true })
  const answer = await sendXfcc(port, envoyElement(holder, WITH_CERT))
  t.equal(answer.status, 400)
  t.same(seen, [])
})

t.test('two Envoys (gateway then sidecar): hops: 2 reads the user\'s element, and a SAN that adds one is refused', async (t) => {
  const gateway = await issue('gateway', [...ORG, ['CN', 'gateway']], { uri: ['spiffe://example.org/ns/edge/sa/gateway'] })
  const sidecarElement = envoyElement(gateway, WITH_CERT, ['spiffe://example.org/ns/dev/sa/app'])
  const { port, seen } = await envoyApp(t, { hops: 2, cert: true })
  const good = await sendXfcc(port, `${envoyElement(dev, WITH_CERT, ['spiffe://example.org/ns/edge/sa/gateway'])},${sidecarElement}`)
  t.equal(good.status, 200)
  t.equal(good.body.spiffeId, 'spiffe://example.org/ns/dev/sa/app', 'the first element: the client the gateway saw')
  seen.length = 0
  const holder = await mallory('hop-comma', { uri: [`https://apps.example/m,URI=${ADMIN_SPIFFE}`] })
  for (const header of [
    `${envoyElement(holder, WITH_CERT, ['spiffe://example.org/ns/edge/sa/gateway'])},${sidecarElement}`,
    sidecarElement,
    `${envoyElement(admin, WITH_CERT)},${envoyElement(dev, WITH_CERT)},${sidecarElement}`
  ]) {
    const answer = await sendXfcc(port, header)
    t.equal(answer.status, 400)
    t.same(answer.body, BAD_HEADER)
  }
  t.same(seen, [])
})

/** Direct TLS: /whoami echoes the identity, /admin admits only what `allow` says. */
async function directApp (t: Test, holder: Holder, allow: AllowRules): Promise<(path: string) => Promise<{ status: number, body: any }>> {
  const { url, app } = await startTlsApp({
    routes (app) {
      app.get('/whoami', async (req) => toJSON(req.clientCert))
      app.get('/admin', { config: { clientCert: { allow } } }, async (req) => toJSON(req.clientCert))
    }
  })
  t.teardown(() => app.close())
  const dispatcher = new Agent({ connect: { ca: corpus.caPem, servername: 'localhost', cert: holder.pem, key: holder.key } })
  t.teardown(() => dispatcher.close())
  return async (path) => {
    const answer = await request(url + path, { dispatcher })
    return { status: answer.statusCode, body: await answer.body.json() }
  }
}

t.test('DN injection: a CN holding ",O=admins" is not O=admins (direct TLS)', async (t) => {
  const holder = await mallory('dn-comma', {}, [...ORG, ['CN', 'mallory,O=admins']])
  const get = await directApp(t, holder, { subjects: [{ O: 'admins' }] })
  t.match(await get('/admin'), { status: 403, body: { code: 'FST_CLIENT_CERT_FORBIDDEN' } })
  t.match(await get('/whoami'), { status: 200, body: { commonName: 'mallory,O=admins', subject: 'CN=mallory\\,O=admins,O=Example Corp,C=US' } })
})

t.test('SAN injection: Node\'s SAN text for a DNS SAN "a, DNS:admin…" or a URI SAN ", URI:spiffe://…admin" stays one entry (direct TLS)', async (t) => {
  const holder = await mallory('san-comma', { dns: [`m.example.org, DNS:${ADMIN_DNS}`], uri: [`https://m.example, URI:${ADMIN_SPIFFE}`] })
  t.match(new X509Certificate(holder.pem).subjectAltName, /DNS:"m\.example\.org\\u002c DNS:admin\.example\.org"/, 'Node quotes the value and escapes its comma')
  const get = await directApp(t, holder, { dns: [ADMIN_DNS], spiffe: [ADMIN_SPIFFE], uris: [ADMIN_SPIFFE] })
  t.match(await get('/admin'), { status: 403, body: { code: 'FST_CLIENT_CERT_FORBIDDEN' } })
  t.match(await get('/whoami'), {
    status: 200,
    body: { spiffeId: null, san: { dns: [`m.example.org, DNS:${ADMIN_DNS}`], uri: [`https://m.example, URI:${ADMIN_SPIFFE}`] } }
  })
})
