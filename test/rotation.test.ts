import t from 'tap'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { connect, type TLSSocket } from 'node:tls'
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2'
import { Agent, request } from 'undici'
import { fastifyClientCert, type FastifyClientCertOptions } from '../lib/index.js'
import { FileWatcher, type WatchedMaterial, type WatchSettings } from '../lib/rotation.js'
import { makeCrl } from './helpers/crl.js'
import { make, SecretVolume, type Made } from './helpers/rotation.js'

const dir = mkdtempSync(join(tmpdir(), 'client-cert-rotation-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const pkiDir = join(dir, 'pki')
mkdirSync(pkiDir)

// Server certificates chain to serverRoot, which clients trust throughout; client CAs rotate.
const serverRoot = make(pkiDir, 'serverRoot', null, 'ca')
const serverA = make(pkiDir, 'serverA', serverRoot, 'server')
const serverB = make(pkiDir, 'serverB', serverRoot, 'server')
const caOld = make(pkiDir, 'caOld', null, 'ca')
const caNew = make(pkiDir, 'caNew', null, 'ca')
const clientOld = make(pkiDir, 'clientOld', caOld, 'client')
const clientNew = make(pkiDir, 'clientNew', caNew, 'client')
const revokedNew = make(pkiDir, 'revokedNew', caNew, 'client')
const svidCa = make(pkiDir, 'svidCa', null, 'ca', ['subjectAltName = URI:spiffe://example.org'])
const svid = make(pkiDir, 'svid', svidCa, 'client', ['subjectAltName = URI:spiffe://example.org/ns/a/b'])

let counter = 0
function fresh (): string {
  const path = join(dir, `case-${counter++}`)
  mkdirSync(path)
  return path
}

async function waitFor (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<number> {
  const start = Date.now()
  for (;;) {
    if (await check()) return Date.now() - start
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

interface Logged { level: number, msg: string, [key: string]: unknown }

function capture (): { logs: Logged[], logger: { level: string, stream: { write: (line: string) => void } } } {
  const logs: Logged[] = []
  return { logs, logger: { level: 'info', stream: { write: (line) => { logs.push(JSON.parse(line)) } } } }
}

function settings (files: Partial<WatchSettings>): WatchSettings {
  return { https: null, crl: null, proxyCa: null, spiffe: null, interval: 60_000, ...files }
}

/** A FileWatcher whose apply refuses content that says "bad" and records what it applied. */
function recorder (watched: Partial<WatchSettings>): { watcher: FileWatcher, applied: WatchedMaterial[], warnings: Array<Record<string, unknown>>, infos: number[] } {
  const applied: WatchedMaterial[] = []
  const warnings: Array<Record<string, unknown>> = []
  const infos: number[] = []
  const watcher = new FileWatcher(settings(watched), async (material) => {
    if (Object.values(material).flat().some((content) => Buffer.isBuffer(content) && content.includes('bad'))) {
      throw new Error('refused: bad content')
    }
    applied.push(material)
  }, { info: () => { infos.push(1) }, warn: (object) => { warnings.push(object) } })
  return { watcher, applied, warnings, infos }
}

const text = (material: WatchedMaterial | undefined): string[] => (material?.crl ?? []).map((b) => b.toString())

t.test('watcher: an in-place write is applied, found by the directory event', async (t) => {
  const base = fresh()
  const file = join(base, 'crl.pem')
  writeFileSync(file, 'one')
  const { watcher, applied } = recorder({ crl: [file] })
  t.teardown(() => watcher.close())
  await watcher.start()
  t.same(text(applied[0]), ['one'])
  writeFileSync(file, 'two')
  await waitFor('the write to be applied', () => applied.length === 2)
  t.same(text(applied[1]), ['two'])
  t.same(Object.keys(applied[1]), ['crl'], 'only the group that changed')
})

t.test('watcher: a file renamed over the watched one is applied', async (t) => {
  const base = fresh()
  const file = join(base, 'crl.pem')
  writeFileSync(file, 'one')
  const { watcher, applied } = recorder({ crl: [file] })
  t.teardown(() => watcher.close())
  await watcher.start()
  writeFileSync(join(base, 'crl.pem.tmp'), 'two')
  renameSync(join(base, 'crl.pem.tmp'), file)
  await waitFor('the rename to be applied', () => applied.length === 2)
  t.same(text(applied[1]), ['two'])
})

t.test('watcher: a Kubernetes ..data symlink swap is applied, every file of the group together', async (t) => {
  const volume = new SecretVolume(join(fresh(), 'secret'), { 'tls.key': 'key-1', 'tls.crt': 'crt-1', 'ca.crt': 'ca-1' })
  const { watcher, applied } = recorder({ https: { key: volume.path('tls.key'), cert: volume.path('tls.crt'), ca: [volume.path('ca.crt')] } })
  t.teardown(() => watcher.close())
  await watcher.start()
  volume.swap({ 'tls.key': 'key-2', 'tls.crt': 'crt-2', 'ca.crt': 'ca-1' })
  await waitFor('the swap to be applied', () => applied.length === 2)
  const https = applied[1]!.https!
  t.same([String(https.key), String(https.cert), (https.ca as Buffer[]).map(String)], ['key-2', 'crt-2', ['ca-1']])
})

t.test('watcher: polling finds what no event announced', async (t) => {
  const base = fresh()
  const file = join(base, 'ca.pem')
  writeFileSync(file, 'one')
  const watcher = new FileWatcher(settings({ proxyCa: [file], interval: 100 }), async (material) => { applied.push(material) }, { info () {}, warn () {} })
  const applied: WatchedMaterial[] = []
  t.teardown(() => watcher.close())
  await watcher.start()
  // Events of this directory are not what finds it: the watcher of the directory is gone.
  rmSync(base, { recursive: true })
  mkdirSync(base)
  writeFileSync(file, 'two')
  await waitFor('the poll to apply it', () => applied.length === 2)
  t.same(applied[1]!.ca!.map(String), ['two'])
})

t.test('watcher: a refused change keeps what is in force and is logged once, until the file changes again', async (t) => {
  const base = fresh()
  const crl = join(base, 'crl.pem')
  const ca = join(base, 'ca.pem')
  writeFileSync(crl, 'one')
  writeFileSync(ca, 'ca-one')
  const { watcher, applied, warnings, infos } = recorder({ crl: [crl], proxyCa: [ca] })
  t.teardown(() => watcher.close())
  await watcher.start()
  writeFileSync(crl, 'bad one')
  writeFileSync(ca, 'ca-two')
  await watcher.check()
  await watcher.check()
  await watcher.check()
  t.equal(applied.length, 1, 'nothing applied: the good CA changed together with the bad CRL')
  t.equal(warnings.length, 1, 'logged once')
  t.match(warnings[0], { reason: 'refused: bad content', files: [crl, ca] })
  writeFileSync(crl, 'bad two')
  await watcher.check()
  t.equal(warnings.length, 2, 'a new failure is logged')
  writeFileSync(crl, 'three')
  await watcher.check()
  t.equal(applied.length, 2)
  t.same([text(applied[1]), applied[1]!.ca!.map(String)], [['three'], ['ca-two']], 'the good CA comes with the fixed CRL')
  t.equal(infos.length, 1)
  await watcher.check()
  t.equal(applied.length, 2, 'nothing changed since')
})

t.test('watcher: a file that cannot be read keeps what is in force, logged once', async (t) => {
  const base = fresh()
  const file = join(base, 'crl.pem')
  writeFileSync(file, 'one')
  const { watcher, applied, warnings } = recorder({ crl: [file] })
  t.teardown(() => watcher.close())
  await watcher.start()
  unlinkSync(file)
  await watcher.check()
  await watcher.check()
  t.equal(warnings.length, 1)
  t.match(warnings[0], { reason: /ENOENT/ })
  writeFileSync(file, 'one')
  await watcher.check()
  t.equal(applied.length, 1, 'the same content again: nothing to apply')
  unlinkSync(file)
  await watcher.check()
  t.equal(warnings.length, 2, 'a new outage is logged again')
  writeFileSync(file, 'two')
  await watcher.check()
  t.same(text(applied[1]), ['two'])
})

t.test('watcher: checks asked while one runs are folded into one more; close stops everything', async (t) => {
  const base = fresh()
  const file = join(base, 'crl.pem')
  writeFileSync(file, 'one')
  let release: () => void = () => {}
  const applied: string[] = []
  const watcher = new FileWatcher(settings({ crl: [file] }), async (material) => {
    applied.push(text(material)[0]!)
    if (applied.length === 2) await new Promise<void>((resolve) => { release = resolve })
  }, { info () {}, warn () {} })
  await watcher.start()
  writeFileSync(file, 'two')
  const first = watcher.check()
  await waitFor('the apply to start', () => applied.length === 2)
  writeFileSync(file, 'three')
  const second = watcher.check()
  watcher.check()
  t.equal(first, second, 'the running check is returned')
  release()
  await first
  await waitFor('the folded check', () => applied.length === 3)
  t.same(applied, ['one', 'two', 'three'])
  watcher.close()
  writeFileSync(file, 'four')
  await watcher.check()
  t.equal(applied.length, 3, 'closed: nothing more')
})

t.test('watcher: a change read before close is not applied after it', async (t) => {
  const base = fresh()
  const file = join(base, 'crl.pem')
  writeFileSync(file, 'one')
  const { watcher, applied } = recorder({ crl: [file] })
  await watcher.start()
  writeFileSync(file, 'two')
  const pending = watcher.check()
  watcher.close()
  await pending
  t.equal(applied.length, 1)
})

// Plugin level: a real HTTPS server.

interface Started { app: FastifyInstance, port: number, logs: Logged[] }

async function startServer (options: FastifyClientCertOptions, https: Record<string, unknown> = {}): Promise<Started> {
  const { logs, logger } = capture()
  const app = Fastify({
    logger,
    https: { key: serverA.keyPem, cert: serverA.certPem, ca: caOld.certPem, requestCert: true, rejectUnauthorized: false, ...https }
  } as unknown as FastifyServerOptions) as unknown as FastifyInstance
  await app.register(fastifyClientCert, options)
  app.get('/whoami', async (request) => ({ subject: request.clientCert?.subject, spiffeId: request.clientCert?.spiffeId }))
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => ({
    verified: request.clientCert?.verified ?? null,
    verifyError: request.clientCert?.verifyError ?? null
  }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, port: (app.server.address() as { port: number }).port, logs }
}

async function ask (port: number, client: Made | null, path = '/whoami'): Promise<{ status: number, body: any }> {
  const agent = new Agent({
    connect: { ca: serverRoot.certPem, servername: 'localhost', ...(client === null ? {} : { cert: client.certPem, key: client.keyPem }) }
  })
  try {
    const response = await request(`https://localhost:${port}${path}`, { dispatcher: agent })
    return { status: response.statusCode, body: await response.body.json() }
  } finally {
    await agent.close()
  }
}

async function servedFingerprint (port: number): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: serverRoot.certPem }, () => {
      resolve(socket.getPeerX509Certificate()!.fingerprint256)
      socket.destroy()
    })
    socket.on('error', reject)
  })
}

t.test('watch.https: a new key and certificate serve new handshakes; requestCert and rejectUnauthorized stay', async (t) => {
  const volume = new SecretVolume(join(fresh(), 'tls'), { 'tls.key': serverA.keyPem, 'tls.crt': serverA.certPem, 'ca.crt': caOld.certPem })
  const { app, port, logs } = await startServer({ watch: { https: { key: volume.path('tls.key'), cert: volume.path('tls.crt'), ca: volume.path('ca.crt') } } })
  t.teardown(() => app.close())
  t.equal(await servedFingerprint(port), serverA.x509.fingerprint256)
  volume.swap({ 'tls.key': serverB.keyPem, 'tls.crt': serverB.certPem, 'ca.crt': caOld.certPem })
  const took = await waitFor('the new certificate', async () => await servedFingerprint(port) === serverB.x509.fingerprint256)
  t.ok(took < 5000, `served within ${took} ms`)
  const server = app.server as unknown as { requestCert: boolean, rejectUnauthorized: boolean }
  t.same([server.requestCert, server.rejectUnauthorized], [true, false])
  t.equal((await ask(port, clientOld)).status, 200, 'clients still asked for and verified')
  t.equal((await ask(port, null, '/maybe')).status, 200, 'and still not refused by TLS without one')
  t.ok(logs.some((line) => line.msg === 'fastify-client-cert: rotated files applied'))
})

t.test('watch.https: a key that does not match its certificate, or a corrupt one, never takes effect', async (t) => {
  const volume = new SecretVolume(join(fresh(), 'tls'), { 'tls.key': serverA.keyPem, 'tls.crt': serverA.certPem })
  const { app, port, logs } = await startServer({ watch: { https: { key: volume.path('tls.key'), cert: volume.path('tls.crt') }, interval: 100 } })
  t.teardown(() => app.close())
  volume.swap({ 'tls.key': serverA.keyPem, 'tls.crt': serverB.certPem })
  await waitFor('the refusal to be logged', () => logs.some((line) => line.level === 40))
  t.match(logs.find((line) => line.level === 40), { reason: /watch\.https\.cert: does not match watch\.https\.key/ })
  volume.swap({ 'tls.key': 'garbage', 'tls.crt': serverB.certPem })
  await waitFor('the second refusal', () => logs.filter((line) => line.level === 40).length === 2)
  t.match(logs.filter((line) => line.level === 40)[1], { reason: /watch\.https\.key: is not a private key/ })
  volume.swap({ 'tls.key': serverB.keyPem, 'tls.crt': 'garbage' })
  await waitFor('the third refusal', () => logs.filter((line) => line.level === 40).length === 3)
  t.match(logs.filter((line) => line.level === 40)[2], { reason: /watch\.https\.cert: is not a PEM certificate/ })
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(logs.filter((line) => line.level === 40).length, 3, 'each failure logged once, not every poll')
  t.equal(await servedFingerprint(port), serverA.x509.fingerprint256, 'the old pair still serves')
  t.equal((await ask(port, clientOld)).status, 200)
})

t.test('watch.https.ca: a retired CA is refused, on new connections and on one opened before the swap', async (t) => {
  const base = fresh()
  const caFile = join(base, 'ca.pem')
  writeFileSync(caFile, caOld.certPem)
  const { app, port } = await startServer({ required: true, watch: { https: { ca: caFile }, interval: 100 } })
  t.teardown(() => app.close())
  const keepAlive = new Agent({ connect: { ca: serverRoot.certPem, servername: 'localhost', cert: clientOld.certPem, key: clientOld.keyPem }, connections: 1 })
  t.teardown(() => keepAlive.close())
  const open = async (path: string): Promise<{ status: number, body: any }> => {
    const response = await request(`https://localhost:${port}${path}`, { dispatcher: keepAlive })
    return { status: response.statusCode, body: await response.body.json() }
  }
  t.equal((await open('/whoami')).status, 200)
  t.equal((await ask(port, clientNew)).status, 401, 'the new CA is not trusted yet')
  writeFileSync(caFile, caNew.certPem)
  await waitFor('the new CA', async () => (await ask(port, clientNew)).status === 200)
  t.equal((await ask(port, clientOld)).status, 401, 'a new connection of the retired CA')
  t.same(await open('/maybe'), { status: 200, body: { verified: false, verifyError: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' } }, 'the open connection is judged again')
  t.equal((await open('/whoami')).status, 401)
})

t.test('watch.https over HTTP/2: new handshakes get the new pair and CA; an open session of the retired CA is judged again', async (t) => {
  const volume = new SecretVolume(join(fresh(), 'tls'), { 'tls.key': serverA.keyPem, 'tls.crt': serverA.certPem, 'ca.crt': caOld.certPem })
  const app = Fastify({
    http2: true,
    https: { allowHTTP1: true, key: serverA.keyPem, cert: serverA.certPem, ca: caOld.certPem, requestCert: true, rejectUnauthorized: false }
  } as unknown as FastifyServerOptions) as unknown as FastifyInstance
  await app.register(fastifyClientCert, { watch: { https: { key: volume.path('tls.key'), cert: volume.path('tls.crt'), ca: volume.path('ca.crt') }, interval: 100 } })
  app.get('/whoami', async (request) => ({ subject: request.clientCert?.subject ?? null }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const port = (app.server.address() as { port: number }).port
  const servedBy = new Map<ClientHttp2Session, string | undefined>()
  const session = (client: Made): ClientHttp2Session => {
    const opened = http2Connect(`https://localhost:${port}`, { ca: serverRoot.certPem, servername: 'localhost', cert: client.certPem, key: client.keyPem })
    opened.on('error', () => {})
    // Read once the handshake is done: the session keeps this one connection for its whole life.
    opened.on('connect', () => { servedBy.set(opened, (opened.socket as TLSSocket).getPeerX509Certificate()?.fingerprint256) })
    t.teardown(() => opened.close())
    return opened
  }
  const get = async (on: ClientHttp2Session): Promise<{ status: number, body: string, served: string | undefined }> => await new Promise((resolve, reject) => {
    const stream = on.request({ ':path': '/whoami' })
    let status = 0
    let body = ''
    stream.on('response', (headers) => { status = Number(headers[':status']) })
    stream.setEncoding('utf8')
    stream.on('data', (chunk: string) => { body += chunk })
    stream.on('end', () => { resolve({ status, body, served: servedBy.get(on) }) })
    stream.on('error', reject)
  })
  const before = session(clientOld)
  const first = await get(before)
  t.same([first.status, first.served], [200, serverA.x509.fingerprint256], 'HTTP/2 with the first pair and CA')
  volume.swap({ 'tls.key': serverB.keyPem, 'tls.crt': serverB.certPem, 'ca.crt': caNew.certPem })
  await waitFor('the new CA', async () => (await get(session(clientNew))).status === 200)
  const after = await get(session(clientNew))
  t.same([after.status, after.served], [200, serverB.x509.fingerprint256], 'a new session: the new pair, and a client of the new CA')
  t.equal((await get(session(clientOld))).status, 401, 'a new session of the retired CA')
  const reused = await get(before)
  t.same([reused.status, reused.served], [401, serverA.x509.fingerprint256], 'the session opened before the swap, still on the first pair, is judged again')
})

t.test('watch.crl and watch.spiffe: rotated lists and bundles are in force for the next request', async (t) => {
  const base = fresh()
  const crlFile = join(base, 'crl.pem')
  const bundleFile = join(base, 'bundle.pem')
  writeFileSync(crlFile, makeCrl(caNew, []))
  writeFileSync(bundleFile, caOld.certPem)
  const { app, port, logs } = await startServer({ watch: { crl: crlFile, spiffe: { bundles: { 'example.org': bundleFile } }, interval: 100 } }, { ca: [caNew.certPem, svidCa.certPem] })
  t.teardown(() => app.close())
  t.equal((await ask(port, revokedNew)).status, 200)
  t.same(await ask(port, svid, '/maybe'), { status: 200, body: { verified: false, verifyError: 'SPIFFE_TRUST_DOMAIN_MISMATCH' } })
  writeFileSync(crlFile, makeCrl(caNew, [revokedNew.certPath]))
  writeFileSync(bundleFile, JSON.stringify({ keys: [{ use: 'x509-svid', x5c: [svidCa.der.toString('base64')] }] }))
  await waitFor('the CRL', async () => (await ask(port, revokedNew)).status === 401)
  t.same((await ask(port, svid)).body, { subject: 'CN=svid,O=Rotation test', spiffeId: 'spiffe://example.org/ns/a/b' }, 'the JWKS bundle is read')
  t.equal((await ask(port, clientNew)).status, 200)
  writeFileSync(crlFile, 'not a CRL')
  await waitFor('the refusal', () => logs.some((line) => line.level === 40))
  t.equal((await ask(port, revokedNew)).status, 401, 'the loaded CRL stays')
})

t.test('watch.proxy.ca: the proxy CAs rotate (mode proxy)', async (t) => {
  const base = fresh()
  const caFile = join(base, 'proxy-ca.pem')
  writeFileSync(caFile, caOld.certPem)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'azure', trust: '127.0.0.1' }, watch: { proxy: { ca: caFile }, interval: 100 } })
  app.get('/', async () => 'ok')
  const as = async (client: Made): Promise<number> => (await app.inject({ url: '/', headers: { 'x-arr-clientcert': client.der.toString('base64') } })).statusCode
  t.equal(await as(clientOld), 200)
  t.equal(await as(clientNew), 401)
  writeFileSync(caFile, caNew.certPem)
  await waitFor('the new proxy CA', async () => await as(clientNew) === 200)
  t.equal(await as(clientOld), 401)
})

t.test('reload(): https and spiffe, all or nothing', async (t) => {
  const { app, port } = await startServer({})
  t.teardown(() => app.close())
  await app.clientCert.reload({ https: { key: serverB.keyPem, cert: serverB.certPem, ca: [caNew.certPem, svidCa.certPem] } })
  t.equal(await servedFingerprint(port), serverB.x509.fingerprint256)
  t.equal((await ask(port, clientNew)).status, 200)
  t.equal((await ask(port, clientOld)).status, 401)
  // A good CRL with a bad certificate: neither is replaced.
  t.throws(() => app.clientCert.reload({ crl: makeCrl(caNew, [revokedNew.certPath]), https: { key: serverA.keyPem, cert: serverB.certPem } }), { code: 'FST_CLIENT_CERT_INVALID_OPTION', message: /reload\.https\.cert: does not match reload\.https\.key/ })
  t.equal((await ask(port, revokedNew)).status, 200, 'the CRL did not take effect')
  t.equal(await servedFingerprint(port), serverB.x509.fingerprint256)
  await app.clientCert.reload({ spiffe: { bundles: { 'example.org': svidCa.certPem } } })
  t.equal((await ask(port, svid)).status, 200)
  await app.clientCert.reload({ spiffe: { bundles: { 'example.org': caNew.certPem } } })
  t.equal((await ask(port, svid)).status, 401)
  await app.clientCert.reload({ spiffe: null })
  t.equal((await ask(port, svid)).status, 200, 'the binding removed')
  await app.clientCert.reload({ https: { ca: caOld.certPem } })
  t.equal((await ask(port, clientOld)).status, 200)
  t.equal(await servedFingerprint(port), serverB.x509.fingerprint256, 'the key and certificate stay when only ca is given')
})

t.test('reload(): the https material is checked before anything changes', async (t) => {
  const { app } = await startServer({})
  t.teardown(() => app.close())
  const cases: Array<[unknown, RegExp]> = [
    [null, /reload\.https: must be \{ key, cert, ca \}/],
    [{ pfx: 'x' }, /reload\.https\.pfx: is not reloadable/],
    [{ key: serverA.keyPem }, /takes key and cert together/],
    [{}, /must give key and cert, or ca, or all three/],
    [{ key: 1, cert: serverA.certPem }, /reload\.https\.key: must be a PEM string or Buffer/],
    [{ key: serverA.keyPem, cert: 1 }, /reload\.https\.cert: must be a PEM string or Buffer/],
    [{ key: Buffer.from(serverA.keyPem), cert: Buffer.from(serverA.certPem), ca: clientOld.certPem }, /reload\.https\.ca: holds a certificate that is not a CA/],
    [{ key: serverA.keyPem, cert: serverA.certPem, ca: ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', caOld.certPem] }, /reload\.https\.ca\[0\]/]
  ]
  for (const [https, message] of cases) {
    t.throws(() => app.clientCert.reload({ https: https as never }), { code: 'FST_CLIENT_CERT_INVALID_OPTION', message })
  }
  t.throws(() => app.clientCert.reload({ other: 1 } as never), { message: /reload\.other: is not a reloadable list/ })
  t.throws(() => app.clientCert.reload(null as never), { message: /reload: takes \{ crl, ca \}, https, spiffe/ })
})

t.test('reload(): TLS refuses what it cannot build a context from', async (t) => {
  // The server's other options are rebuilt with the new material: a cipher list OpenSSL cannot match fails the whole.
  const { app } = await startServer({}, { ciphers: 'NOT-A-CIPHER:HIGH' })
  t.teardown(() => app.close())
  await app.clientCert.reload({ https: { ca: caNew.certPem } })
  ;(app.server as unknown as { ciphers: string }).ciphers = 'NOT-A-CIPHER'
  t.throws(() => app.clientCert.reload({ https: { ca: caOld.certPem } }), { message: /reload\.https: is refused by TLS/ })
})

t.test('reload({ https }) needs a TLS server', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1' } })
  t.throws(() => app.clientCert.reload({ https: { ca: caOld.certPem } }), { message: /reload\.https: is the TLS server's material/ })
})

t.test('watch: registration checks', async (t) => {
  const base = fresh()
  const file = join(base, 'ca.pem')
  writeFileSync(file, caOld.certPem)
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ watch: 'x' }, /watch: must be/],
    [{ watch: { interval: 1000 } }, /watch: names no file to watch/],
    [{ watch: { files: [] } }, /watch\.files: is not an option/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1' }, watch: { https: { ca: file } } }, /watch\.https: is the TLS server's material/],
    [{ watch: { https: 'x' } }, /watch\.https: must be \{ key, cert, ca \}/],
    [{ watch: { https: { key: file } } }, /watch\.https: takes key and cert together/],
    [{ watch: { https: {} } }, /watch\.https: must name key and cert, or ca/],
    [{ watch: { https: { key: [file, file], cert: file } } }, /watch\.https: takes one key file/],
    [{ watch: { https: { ca: [] } } }, /watch\.https\.ca: must not be empty/],
    [{ watch: { https: { ca: [file, 3] } } }, /watch\.https\.ca\[1\]: must be a file path/],
    [{ watch: { https: { ca: '' } } }, /watch\.https\.ca: must be a file path/],
    [{ watch: { proxy: { ca: file } } }, /watch\.proxy: is only used in mode 'proxy' or 'auto'/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1' }, watch: { proxy: 'x' } }, /watch\.proxy: must be \{ ca \}/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1', ca: caOld.certPem }, watch: { proxy: { ca: file } } }, /watch\.proxy\.ca: replaces proxy\.ca/],
    [{ mode: 'proxy', proxy: { headers: { subject: { name: 'x-dn', encoding: 'dn-rfc4514' }, verified: 'present' }, trust: '127.0.0.1' }, watch: { proxy: { ca: file } } }, /watch\.proxy\.ca: needs a mapping that forwards the whole certificate/],
    [{ crl: 'x', watch: { crl: file } }, /watch\.crl: replaces crl/],
    [{ spiffe: { bundles: { 'example.org': caOld.certPem } }, watch: { spiffe: { bundles: { 'example.org': file } } } }, /watch\.spiffe: replaces spiffe/],
    [{ watch: { spiffe: 'x' } }, /watch\.spiffe: must be \{ bundles \}/],
    [{ watch: { spiffe: { bundles: {} } } }, /watch\.spiffe\.bundles: must map at least one trust domain/],
    [{ watch: { spiffe: { bundles: { 'Example.org': file } } } }, /watch\.spiffe\.bundles\["Example\.org"\]: is not a trust domain name/],
    [{ watch: { crl: file, interval: 50 } }, /watch\.interval: must be at least 100/],
    [{ watch: { crl: join(base, 'missing.pem') } }, /watch: ENOENT.*missing\.pem/],
    [{ watch: { crl: file } }, /watch\.crl\[0\]/]
  ]
  for (const [options, message] of cases) {
    const app = Fastify({ https: { key: serverA.keyPem, cert: serverA.certPem, requestCert: true } } as unknown as FastifyServerOptions) as unknown as FastifyInstance
    await t.rejects(async () => { await app.register(fastifyClientCert, options as FastifyClientCertOptions).ready() }, { code: 'FST_CLIENT_CERT_INVALID_OPTION', message }, JSON.stringify(options))
    await app.close()
  }
})

t.test('watch.proxy.ca stands for proxy.ca where the preset needs one; paths are resolved at registration', async (t) => {
  const base = fresh()
  writeFileSync(join(base, 'ca.pem'), caOld.certPem)
  const cwd = process.cwd()
  process.chdir(base)
  t.teardown(() => process.chdir(cwd))
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyClientCert, { mode: 'auto', proxy: { preset: 'azure', trust: '127.0.0.1' }, watch: { proxy: { ca: 'ca.pem' } } })
  await app.ready()
  process.chdir(cwd)
  t.pass()
})

t.test('app.close() stops the watchers: the process exits', async (t) => {
  const base = fresh()
  writeFileSync(join(base, 'ca.pem'), caOld.certPem)
  const script = join(base, 'exit.mts')
  writeFileSync(script, `
    import Fastify from ${JSON.stringify(resolve('node_modules/fastify/fastify.js'))}
    import { fastifyClientCert } from ${JSON.stringify(resolve('lib/index.ts'))}
    const app = Fastify({ https: { key: process.env.KEY, cert: process.env.CERT, requestCert: true } })
    await app.register(fastifyClientCert, { watch: { https: { ca: ${JSON.stringify(join(base, 'ca.pem'))} }, interval: 100 } })
    await app.listen({ host: '127.0.0.1', port: 0 })
    await app.close()
    console.log('closed')
  `)
  const child = spawn(process.execPath, ['--import', '@tapjs/typescript/import', script], {
    cwd: resolve('.'),
    env: { ...process.env, KEY: serverA.keyPem, CERT: serverA.certPem, TS_NODE_TRANSPILE_ONLY: '1' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  let out = ''
  child.stdout.on('data', (chunk) => { out += String(chunk) })
  const timer = setTimeout(() => child.kill(), 20_000)
  const code = await new Promise((resolve) => child.on('exit', resolve))
  clearTimeout(timer)
  t.equal(out.trim(), 'closed')
  t.equal(code, 0, 'exited by itself')
  t.ok(readFileSync(join(base, 'ca.pem')))
})
