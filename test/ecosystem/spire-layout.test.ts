// The SPIRE-style example run as its README says: rotate.js plays the SPIRE agent and rewrites the SVID and the
// bundle every second; server.js (the built package, outside coverage) must keep serving across the rotations,
// present the new SVID, admit the clients of the current CA and refuse those of the CA the bundle dropped.
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from 'node:tls'
import { X509Certificate } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent, request } from 'undici'

const example = (name: string): string => new URL(`../../examples/spire-layout/${name}`, import.meta.url).pathname

function run (t: Test, script: string, args: string[], env: Record<string, string> = {}): { child: ChildProcess, output: () => string } {
  let output = ''
  const child = spawn(process.execPath, [example(script), ...args], {
    env: { ...process.env, NODE_OPTIONS: '', NODE_V8_COVERAGE: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  child.stdout!.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString() })
  t.teardown(() => { child.kill() })
  return { child, output: () => output }
}

async function until (what: string, check: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

interface Client { cert: string, key: string }

t.test('examples/spire-layout: SVID and bundle rotate under a running server', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'spire-example-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const agent = run(t, 'rotate.js', [dir, '--every', '1'])
  await until('the first SVIDs', () => agent.output().includes('generation 0'))
  const port = await freePort()
  const server = run(t, 'server.js', [dir], { PORT: String(port) })
  await until('the server to listen', () => server.output().includes('Server listening'))

  const read = (): Client => ({ cert: readFileSync(join(dir, 'client', 'svid.pem'), 'utf8'), key: readFileSync(join(dir, 'client', 'svid_key.pem'), 'utf8') })
  const bundle = (): string => readFileSync(join(dir, 'bundle.pem'), 'utf8')
  const call = async (client: Client): Promise<{ status: number, body: string }> => {
    const dispatcher = new Agent({ connect: { ca: bundle(), servername: 'localhost', cert: client.cert, key: client.key } })
    try {
      const response = await request(`https://127.0.0.1:${port}/admin`, { dispatcher })
      return { status: response.statusCode, body: await response.body.text() }
    } finally {
      await dispatcher.close()
    }
  }
  const served = async (): Promise<X509Certificate> => await new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false }, () => {
      resolve(new X509Certificate(socket.getPeerCertificate().raw))
      socket.end()
    })
    socket.on('error', reject)
  })

  const first = read()
  const firstIssuer = new X509Certificate(first.cert).issuer
  const answer = await call(first)
  t.equal(answer.status, 200, 'the first client is admitted')
  t.same(JSON.parse(answer.body).caller, 'spiffe://example.org/ns/admin/cli', 'with its SPIFFE ID')
  const firstServed = (await served()).fingerprint256

  // Generation 3 is the first signed by the next CA, and its bundle no longer holds the first one.
  await until('a rotation of the CA', () => agent.output().includes('generation 4'))
  agent.child.kill()
  const current = read()
  t.not(new X509Certificate(current.cert).issuer, firstIssuer, 'the agent now issues under another CA')
  await until('the server to present an SVID of the new CA', async () => (await served()).issuer === new X509Certificate(current.cert).issuer)
  t.not((await served()).fingerprint256, firstServed, 'the server presents a new SVID, without a restart')
  await until('the current client to be admitted', async () => (await call(current)).status === 200)
  const old = await call(first)
  t.equal(old.status, 401, 'a client of the CA the bundle dropped is refused')
  t.match(JSON.parse(old.body), { code: 'FST_CLIENT_CERT_INVALID' })
  t.notMatch(server.output(), /"level":[56]0/, 'the server logged no error while the files rotated')
})
