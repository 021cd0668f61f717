// The whole flow where users live: the CLI issues a certificate, it is imported into a browser's NSS
// database, and headless Chromium presents it to examples/browser. Uses the built package (npm run build):
// the CLI's bin and the example run as a user runs them.
import t from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { autoSelectPolicy, browserUnavailable, loadPage, nssHome } from './helpers/browser.js'

const BIN = 'dist/esm/cli/bin.js'
const SHOTS = join('.tap', 'browser')
// The example runs as users run it; tap still follows child processes, so package.json's coverage-exclude
// keeps examples/ out of the coverage gate.
const env = { ...process.env, NODE_OPTIONS: '' }

const unavailable = browserUnavailable()
const required = process.env.MTLS_REQUIRE_PROXIES === '1' || process.env.MTLS_REQUIRE_BROWSER === '1'

if (unavailable !== null) {
  if (unavailable.fatal && required) {
    t.fail(`the browser test cannot run: ${unavailable.reason}`)
  } else {
    console.error(`# browser.test.ts SKIPPED: ${unavailable.reason}`)
    t.pass(`skipped: ${unavailable.reason}`, { skip: unavailable.reason })
  }
} else {
  t.test('a certificate issued by the CLI opens the example site in Chromium', async (t) => {
    t.ok(existsSync(BIN) && existsSync('dist/esm/index.js'), 'the package is built (npm run build)')
    const dir = mkdtempSync(join(tmpdir(), 'fastify-client-cert-browser-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const pki = join(dir, 'pki')
    const cli = (...args: string[]): string => execFileSync(process.execPath, [BIN, ...args], { env, encoding: 'utf8' })
    const passwordFile = join(dir, 'password')
    writeFileSync(passwordFile, 'correct horse battery staple\n')
    cli('ca', '--dir', pki, '--intermediate')
    cli('issue', 'localhost', '--dir', pki, '--server', '--dns', 'localhost', '--ip', '127.0.0.1')
    const alice = JSON.parse(cli('issue', 'alice', '--dir', pki, '--subject', 'CN=Alice Example,O=Example Corp',
      '--email', 'alice@example.com', '--password-file', passwordFile, '--json'))
    t.equal(alice.p12Format, 'compat', 'the PKCS#12 is in the format every browser imports')

    const server = spawn(process.execPath, ['examples/browser/server.js', '--pki', pki, '--port', '0'], { env, stdio: ['ignore', 'pipe', 'inherit'] })
    t.teardown(() => { server.kill() })
    const origin = await new Promise<string>((resolve, reject) => {
      let out = ''
      server.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk
        const match = /Listening on (https:\/\/localhost:\d+)\//.exec(out)
        if (match !== null) resolve(match[1])
      })
      server.once('exit', (code) => reject(new Error(`the example exited with ${code}`)))
    })

    const removePolicy = autoSelectPolicy(origin)
    t.teardown(removePolicy)
    mkdirSync(SHOTS, { recursive: true })
    const withCert = nssHome(join(dir, 'home-alice'), join(pki, 'root.crt'), { path: alice.p12, passwordFile })
    const withoutCert = nssHome(join(dir, 'home-nobody'), join(pki, 'root.crt'))

    const greeting = join(SHOTS, 'greeting.png')
    rmSync(greeting, { force: true })
    const greeted = await loadPage(`${origin}/`, { home: withCert, profile: join(dir, 'profile-1'), screenshot: greeting })
    t.notOk(greeted.timedOut, 'Chromium selected the certificate without asking')
    t.match(greeted.dom, '<h1>Hello, Alice Example</h1>', 'the page greets the holder by name')
    t.match(greeted.dom, 'alice@example.com')
    t.match(greeted.dom, alice.serialNumber, 'the certificate shown is the one issued')
    t.same(readFileSync(greeting).subarray(0, 8), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), 'a PNG screenshot was saved')
    if (process.env.UPDATE_DOCS_SCREENSHOT === '1') {
      mkdirSync('docs', { recursive: true })
      copyFileSync(greeting, join('docs', 'browser.png'))
    }

    const refusedShot = join(SHOTS, 'refused.png')
    const refused = await loadPage(`${origin}/`, { home: withoutCert, profile: join(dir, 'profile-2'), screenshot: refusedShot })
    t.notOk(refused.timedOut)
    t.match(refused.dom, '<h1>Access refused</h1>', 'without a certificate the page says access is refused')
    t.match(refused.dom, 'did not present a client certificate')
    t.notMatch(refused.dom, 'Alice')

    const open = await loadPage(`${origin}/public`, { home: withoutCert, profile: join(dir, 'profile-3') })
    t.match(open.dom, '<h1>Public page</h1>', 'the optional route serves visitors without a certificate')
    t.match(open.dom, 'did not present a certificate')
  })
}
