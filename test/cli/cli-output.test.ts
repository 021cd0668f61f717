// The built bin's standard output when its reader goes away: a closed pipe (`inspect … | head -1`) is not an
// error, a failed write (a full disk) is. Runs dist/ (npm run build) as users run it, each in a process of its own.
import t from 'tap'
import { spawn } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { once } from 'node:events'
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cliRunner } from '../helpers/cli.js'

const BIN = 'dist/esm/cli/bin.js'
const root = mkdtempSync(join(tmpdir(), 'fastify-client-cert-cli-output-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))

interface Exit { code: number | null, stdout: string, stderr: string }

async function setup (): Promise<{ ca: string, crl: string, alice: string, bob: string }> {
  const run = cliRunner(root)
  const dir = join(root, 'pki')
  t.equal((await run(['ca', '--dir', dir])).code, 0)
  const issue = async (name: string): Promise<string> => JSON.parse((await run(['issue', name, '--dir', dir, '--json'])).stdout).certificate
  const alice = await issue('alice')
  const bob = await issue('bob')
  t.equal((await run(['revoke', bob, '--dir', dir])).code, 0)
  return { ca: join(dir, 'ca.crt'), crl: join(dir, 'crl.pem'), alice, bob }
}

const ready = setup()

/** The built CLI, stdout to a pipe or to an open file; outside tap's coverage (dist/ is build output). */
async function cli (args: string[], options: { stdout?: number, closeEarly?: boolean } = {}): Promise<Exit> {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, NODE_OPTIONS: '', NODE_V8_COVERAGE: '' },
    stdio: ['ignore', options.stdout ?? 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  // Closed before the CLI has even started: every write it makes meets a pipe without a reader (EPIPE).
  if (options.closeEarly === true) child.stdout!.destroy()
  else child.stdout?.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const [code] = await once(child, 'close') as [number | null]
  return { code, stdout, stderr }
}

t.before(() => { t.ok(existsSync(BIN), `${BIN} exists (npm run build)`) })

t.test('a reader that closes the pipe early (inspect … | head -1): no EPIPE stack trace, the exit code stays the command\'s own', async (t) => {
  const { ca, crl, alice, bob } = await ready
  const whole = await cli(['inspect', alice, '--json'])
  t.equal(whole.code, 0, whole.stderr)
  t.equal(JSON.parse(whole.stdout).fingerprint256, new X509Certificate(readFileSync(alice)).fingerprint256, 'a reader that stays gets it all')

  const verified = await cli(['inspect', alice, '--ca', ca, '--crl', crl], { closeEarly: true })
  t.equal(verified.stderr, '', 'nothing on stderr')
  t.equal(verified.code, 0, 'a certificate that verifies: 0')
  const revoked = await cli(['inspect', bob, '--ca', ca, '--crl', crl], { closeEarly: true })
  t.equal(revoked.stderr, '', 'nothing on stderr')
  t.equal(revoked.code, 3, 'a revoked certificate: 3, as with a reader')
})

t.test('a failed write that is no closed pipe (a full disk behind > file) exits with 1 and says so', { skip: existsSync('/dev/full') ? false : 'no /dev/full' }, async (t) => {
  const { alice } = await ready
  const full = openSync('/dev/full', 'w')
  t.teardown(() => closeSync(full))
  const result = await cli(['inspect', alice], { stdout: full })
  t.equal(result.code, 1)
  t.equal(result.stderr, 'fastify-client-cert: cannot write the output: ENOSPC: no space left on device, write\n')
})
