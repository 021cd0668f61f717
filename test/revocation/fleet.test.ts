// A fleet: three Fastify processes (test/helpers/fleet-member.ts) behind a real HAProxy, sharing one CRL
// distribution point served by an HTTP server in this test. The CA is the CLI's: `ca --intermediate --crl-url`,
// `issue --crl-url`, and `revoke`, whose new CRL is published at that URL. Every instance must then refuse the
// revoked certificate, on new connections and on connections opened before the revocation, by itself (each
// downloads the CRL), while the certificate that was not revoked is still admitted everywhere.
// (a) TCP passthrough: each instance does direct TLS; a client connection is one backend connection.
// (b) HTTP mode: HAProxy verifies and forwards (`haproxy` preset); each instance checks the whole certificate
//     against proxy.ca and the CRLs of its distribution points.
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { setTimeout as sleep } from 'node:timers/promises'
import { proxyConfig } from '../../lib/cli/proxy-config.js'
import { cliRunner } from '../helpers/cli.js'
import { startCrlServer, type CrlServer } from '../helpers/dp-pki.js'
import { proxyBinary, requireProxy } from '../helpers/proxies.js'

t.setTimeout(300_000)

const INSTANCES = ['a', 'b', 'c']
const REFRESH_MS = 1000
// A generous bound for the whole fleet to refuse (a slow, shared machine), not a timing assertion.
const DEADLINE_MS = 60_000

interface Pki {
  dir: string
  ca: string
  serverChain: string
  serverKey: string
  alice: { chain: string, key: string, cert: string }
  bob: { chain: string, key: string, cert: string }
  crls: CrlServer
}

/** The CLI's CA, whose intermediate and leaves name the CRL server's URL, and that server serving `crl.pem`. */
async function makePki (t: Test): Promise<Pki> {
  const dir = mkdtempSync(join(tmpdir(), 'client-cert-fleet-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const crls = await startCrlServer()
  t.teardown(crls.close)
  const crlUrl = `${crls.url}/ca.crl`
  const cli = cliRunner(dir)
  const ok = async (args: string[]): Promise<any> => {
    const result = await cli([...args, '--dir', join(dir, 'pki'), '--json'])
    t.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`)
    return JSON.parse(result.stdout)
  }
  await ok(['ca', '--intermediate', '--crl-url', crlUrl])
  const server = await ok(['issue', 'localhost', '--server', '--ip', '127.0.0.1'])
  const alice = await ok(['issue', 'alice', '--crl-url', crlUrl])
  const bob = await ok(['issue', 'bob', '--crl-url', crlUrl])
  await ok(['crl'])
  crls.body = readFileSync(join(dir, 'pki', 'crl.pem'))
  return {
    dir,
    ca: join(dir, 'pki', 'ca.crt'),
    serverChain: server.chain,
    serverKey: server.key,
    alice: { chain: alice.chain, key: alice.key, cert: alice.certificate },
    bob: { chain: bob.chain, key: bob.key, cert: bob.certificate },
    crls
  }
}

/** Revokes with the CLI and publishes the new CRL at the distribution point. */
async function revokeAndPublish (t: Test, pki: Pki, cert: string): Promise<void> {
  const result = await cliRunner(pki.dir)(['revoke', cert, '--dir', join(pki.dir, 'pki')])
  t.equal(result.code, 0, result.stderr)
  pki.crls.body = readFileSync(join(pki.dir, 'pki', 'crl.pem'))
}

async function exited (child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true
  return await Promise.race([once(child, 'exit').then(() => true), sleep(ms).then(() => false)])
}

/** Starts the fleet: three member processes, each on its own port. */
async function startFleet (t: Test, pki: Pki, mode: 'tls' | 'proxy'): Promise<number[]> {
  return await Promise.all(INSTANCES.map(async (name) => {
    const child = spawn(process.execPath, ['--import', '@tapjs/typescript/import', 'test/helpers/fleet-member.ts'], {
      cwd: resolve('.'),
      env: {
        ...process.env,
        TS_NODE_TRANSPILE_ONLY: '1',
        FLEET_MEMBER: JSON.stringify({ name, mode, cert: pki.serverChain, key: pki.serverKey, ca: pki.ca, refresh: REFRESH_MS })
      },
      stdio: ['pipe', 'pipe', 'pipe']
    })
    t.teardown(async () => {
      child.stdin!.end()
      if (!await exited(child, 5000)) child.kill('SIGKILL')
    })
    let stdout = ''
    let stderr = ''
    child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    return await new Promise<number>((resolve, reject) => {
      child.stdout!.on('data', (chunk: Buffer) => {
        stdout += chunk.toString()
        const found = /listening (\d+)\n/.exec(stdout)
        if (found !== null) resolve(Number(found[1]))
      })
      child.once('exit', (code) => { reject(new Error(`fleet member ${name} exited (${code}): ${stderr}`)) })
    })
  }))
}

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Runs HAProxy with `config(port)` until the test ends; resolves once it accepts connections. */
async function startHaproxy (t: Test, config: (port: number, workDir: string) => string): Promise<{ port: number, config: string }> {
  const workDir = mkdtempSync(join(tmpdir(), 'client-cert-fleet-haproxy-'))
  t.teardown(() => rmSync(workDir, { recursive: true, force: true }))
  const port = await freePort()
  const text = config(port, workDir)
  writeFileSync(join(workDir, 'haproxy.cfg'), text)
  const output = openSync(join(workDir, 'output.log'), 'a')
  // Its own process group, so that its workers go with it.
  const child = spawn(proxyBinary('haproxy')!, ['-db', '-f', join(workDir, 'haproxy.cfg')], { cwd: workDir, detached: true, stdio: ['ignore', output, output] })
  closeSync(output)
  t.teardown(async () => {
    child.kill('SIGTERM')
    if (!await exited(child, 5000)) {
      try { process.kill(-child.pid!, 'SIGKILL') } catch {}
    }
  })
  const deadline = Date.now() + 15_000
  for (;;) {
    if (child.exitCode !== null) throw new Error('haproxy exited: ' + readFileSync(join(workDir, 'output.log'), 'utf8'))
    const accepted = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => { resolve(false) })
    })
    if (accepted) return { port, config: text }
    if (Date.now() > deadline) throw new Error('haproxy does not accept connections: ' + readFileSync(join(workDir, 'output.log'), 'utf8'))
    await sleep(50)
  }
}

interface Answer { status: number, instance: string, connection: string, body: any }

/**
 * One TLS connection to HAProxy, kept alive, carrying requests one after the other (HTTP/1.1 by hand, so the
 * connection is certainly the same one: if it closed, the next request fails).
 */
class Connection {
  readonly #socket: TLSSocket
  #buffer = ''
  #waiting: ((text: string) => void) | null = null
  #closed = false

  private constructor (socket: TLSSocket) {
    this.#socket = socket
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      this.#buffer += chunk
      this.#deliver()
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.#closed = true
      this.#waiting?.('')
    })
  }

  static async open (port: number, client: { chain: string, key: string }, ca: string): Promise<Connection> {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(ca), cert: readFileSync(client.chain), key: readFileSync(client.key) })
    await once(socket, 'secureConnect')
    return new Connection(socket)
  }

  #deliver (): void {
    const end = this.#buffer.indexOf('\r\n\r\n')
    if (end < 0 || this.#waiting === null) return
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(this.#buffer.slice(0, end))?.[1] ?? 0)
    if (this.#buffer.length < end + 4 + length) return
    const text = this.#buffer.slice(0, end + 4 + length)
    this.#buffer = this.#buffer.slice(end + 4 + length)
    const waiting = this.#waiting
    this.#waiting = null
    waiting(text)
  }

  async get (path = '/'): Promise<Answer> {
    if (this.#closed) throw new Error('the kept-alive connection was closed')
    const text = await new Promise<string>((resolve) => {
      this.#waiting = resolve
      this.#socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`)
      this.#deliver()
    })
    if (text === '') throw new Error('the kept-alive connection was closed')
    const [head, body] = [text.slice(0, text.indexOf('\r\n\r\n')), text.slice(text.indexOf('\r\n\r\n') + 4)]
    const header = (name: string): string => new RegExp(`\\r\\n${name}: *([^\\r]*)`, 'i').exec(head)?.[1] ?? ''
    return { status: Number(head.split(' ')[1]), instance: header('x-instance'), connection: header('x-connection'), body: JSON.parse(body) }
  }

  close (): void {
    this.#socket.destroy()
  }
}

/** One request on a connection of its own. */
async function fresh (port: number, client: { chain: string, key: string }, ca: string, path = '/'): Promise<Answer> {
  const connection = await Connection.open(port, client, ca)
  try {
    return await connection.get(path)
  } finally {
    connection.close()
  }
}

/**
 * The fleet test proper, for either HAProxy mode: connections kept alive from before the revocation, the
 * revocation published, then polling until every instance refuses on new and on kept connections.
 */
async function fleetRefuses (t: Test, port: number, pki: Pki, kept: Connection[], keptInstances: (connection: Connection, answer: Answer) => void): Promise<void> {
  const { alice, bob, ca } = pki
  const fullBefore = pki.crls.counts.full
  const started = Date.now()
  await revokeAndPublish(t, pki, alice.cert)

  const refusedFresh = new Set<string>()
  const refusedKept = new Set<string>()
  for (;;) {
    const answer = await fresh(port, alice, ca)
    if (answer.status === 401) refusedFresh.add(answer.instance)
    for (const connection of kept) {
      const onKept = await connection.get()
      keptInstances(connection, onKept)
      if (onKept.status === 401) refusedKept.add(onKept.instance)
    }
    if (refusedFresh.size === INSTANCES.length && refusedKept.size === INSTANCES.length) break
    if (Date.now() - started > DEADLINE_MS) {
      t.fail(`not every instance refuses within ${DEADLINE_MS} ms: new connections ${[...refusedFresh].join(',')}, kept ${[...refusedKept].join(',')}`)
      return
    }
    await sleep(50)
  }
  t.comment(`every instance refused ${Date.now() - started} ms after the revocation (refresh ${REFRESH_MS} ms)`)
  t.ok(pki.crls.counts.full - fullBefore >= INSTANCES.length, 'each instance downloaded the new CRL itself')

  // Once refused, always refused: new connections (round robin: each instance twice), kept ones, and the reason.
  const freshAnswers = []
  for (let i = 0; i < 2 * INSTANCES.length; i++) freshAnswers.push(await fresh(port, alice, ca))
  t.same(freshAnswers.map((answer) => answer.status), Array(2 * INSTANCES.length).fill(401), 'new connections: refused')
  t.same(new Set(freshAnswers.map((answer) => answer.instance)), new Set(INSTANCES), 'by every instance')
  for (const answer of freshAnswers) t.equal(answer.body.code, 'FST_CLIENT_CERT_INVALID')
  const keptAnswers = []
  for (const connection of kept) {
    for (let i = 0; i < INSTANCES.length; i++) {
      const answer = await connection.get()
      keptInstances(connection, answer)
      keptAnswers.push(answer)
    }
  }
  t.ok(keptAnswers.every((answer) => answer.status === 401), 'connections opened before the revocation: refused')
  const reasons = []
  for (let i = 0; i < INSTANCES.length; i++) reasons.push(await fresh(port, alice, ca, '/status'))
  t.same(reasons.map((answer) => [answer.instance, answer.body.verifyError]).sort(), INSTANCES.map((name) => [name, 'CERT_REVOKED']), 'every instance: CERT_REVOKED')

  const admitted = []
  for (let i = 0; i < INSTANCES.length; i++) admitted.push(await fresh(port, bob, ca))
  t.same(admitted.map((answer) => [answer.instance, answer.status, answer.body.subject]).sort(), INSTANCES.map((name) => [name, 200, 'CN=bob']),
    'the certificate that was not revoked is admitted by every instance')
}

t.test('TCP passthrough: three Fastify instances doing direct TLS refuse a revoked certificate on new and already-open connections', async (t) => {
  if (!requireProxy(t, 'haproxy')) return
  const pki = await makePki(t)
  const ports = await startFleet(t, pki, 'tls')
  const haproxy = await startHaproxy(t, (port, workDir) => [
    'global',
    `  pidfile ${workDir}/haproxy.pid`,
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 120s',
    '  timeout server 120s',
    'frontend fleet',
    `  bind 127.0.0.1:${port}`,
    '  default_backend fastify',
    'backend fastify',
    '  balance roundrobin',
    ...ports.map((backend, i) => `  server ${INSTANCES[i]} 127.0.0.1:${backend}`)
  ].join('\n') + '\n')

  // One kept-alive connection per instance: round robin spreads new connections, each bound to its backend.
  const kept = new Map<string, { connection: Connection, backendPort: string }>()
  for (let i = 0; i < 4 * INSTANCES.length && kept.size < INSTANCES.length; i++) {
    const connection = await Connection.open(haproxy.port, pki.alice, pki.ca)
    const answer = await connection.get()
    t.equal(answer.status, 200, 'admitted before the revocation')
    t.equal(answer.body.subject, 'CN=alice')
    if (kept.has(answer.instance)) connection.close()
    else kept.set(answer.instance, { connection, backendPort: answer.connection })
  }
  t.teardown(() => { for (const { connection } of kept.values()) connection.close() })
  t.same(new Set(kept.keys()), new Set(INSTANCES), 'a connection to each instance')
  const before = []
  for (let i = 0; i < INSTANCES.length; i++) before.push(await fresh(haproxy.port, pki.alice, pki.ca))
  t.same(before.map((answer) => answer.status), [200, 200, 200], 'new connections admitted before the revocation')

  const owner = new Map([...kept].map(([instance, held]) => [held.connection, { instance, backendPort: held.backendPort }]))
  let moved = 0
  await fleetRefuses(t, haproxy.port, pki, [...kept.values()].map((held) => held.connection), (connection, answer) => {
    const expected = owner.get(connection)!
    if (answer.instance !== expected.instance || answer.connection !== expected.backendPort) moved++
  })
  t.equal(moved, 0, 'each kept connection stayed the same TCP connection to the same instance throughout')
})

t.test('HTTP mode, haproxy preset: HAProxy terminates mTLS and forwards; three instances with proxy.ca refuse a revoked certificate', async (t) => {
  if (!requireProxy(t, 'haproxy')) return
  const pki = await makePki(t)
  const ports = await startFleet(t, pki, 'proxy')
  const serverPem = join(pki.dir, 'haproxy-server.pem')
  writeFileSync(serverPem, readFileSync(pki.serverChain, 'utf8') + readFileSync(pki.serverKey, 'utf8'), { mode: 0o600 })
  const haproxy = await startHaproxy(t, (port, workDir) => {
    // The configuration the CLI prints for HAProxy (and the README documents), with three servers instead of one.
    const single = proxyConfig('haproxy', {
      listen: { host: '127.0.0.1', port },
      upstream: { host: '127.0.0.1', port: ports[0] },
      serverCertPath: serverPem,
      serverKeyPath: serverPem,
      clientCaPath: pki.ca,
      verify: 'optional',
      workDir
    })
    const server = `  server fastify 127.0.0.1:${ports[0]}`
    t.ok(single.includes(server), 'the generated configuration has one server line')
    return single.replace(server, ['  balance roundrobin', ...ports.map((backend, i) => `  server ${INSTANCES[i]} 127.0.0.1:${backend}`)].join('\n'))
  })
  t.match(haproxy.config, 'http-request set-header X-SSL-Client-Cert %[ssl_c_der,base64]')

  // Client connections to HAProxy kept alive from before the revocation; HAProxy spreads their requests.
  const kept: Connection[] = []
  for (let i = 0; i < INSTANCES.length; i++) kept.push(await Connection.open(haproxy.port, pki.alice, pki.ca))
  t.teardown(() => { for (const connection of kept) connection.close() })
  const seen = new Set<string>()
  for (const connection of kept) {
    for (let i = 0; i < INSTANCES.length; i++) {
      const answer = await connection.get()
      t.equal(answer.status, 200, 'admitted before the revocation')
      seen.add(answer.instance)
    }
  }
  t.same(seen, new Set(INSTANCES), 'the kept connections reach every instance')

  const keptSeen = new Set<string>()
  await fleetRefuses(t, haproxy.port, pki, kept, (_connection, answer) => { keptSeen.add(answer.instance) })
  t.same(keptSeen, new Set(INSTANCES), 'requests on the kept connections were judged by every instance')
})
