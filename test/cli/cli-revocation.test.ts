// The CLI's online revocation: URLs embedded by issue and ca (--crl-url, --ocsp-url), and the ocsp responder,
// queried with `openssl ocsp -issuer -cert -url` as a user would, before and after a revocation.
import t, { type Test } from 'tap'
import { execFile, execFileSync, spawn } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { once } from 'node:events'
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { main } from '../../lib/cli/main.js'
import { responderFor } from '../../lib/cli/ocsp.js'
import { loadIssuer } from '../../lib/cli/pki.js'
import { distributionPointsOf } from '../../lib/revocation/distribution-points.js'

const execFileAsync = promisify(execFile)

interface Result { code: number, stdout: string, stderr: string }

const root = mkdtempSync(join(tmpdir(), 'fastify-client-cert-cli-revocation-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))

interface RunOptions { env?: Record<string, string>, signal?: AbortSignal | null, onStdout?: (text: string) => void }

async function run (args: string[], options: RunOptions = {}): Promise<Result> {
  let stdout = ''
  let stderr = ''
  const code = await main(args, {
    stdout: (text) => { stdout += text; options.onStdout?.(text) },
    stderr: (text) => { stderr += text },
    stdin: async () => Buffer.alloc(0),
    env: { ...process.env, ...options.env },
    cwd: root,
    ...(options.signal === null ? {} : { stopped: () => options.signal ?? AbortSignal.abort() })
  })
  return { code, stdout, stderr }
}

async function json (t: Test, args: string[]): Promise<any> {
  const result = await run([...args, '--json'])
  t.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`)
  return JSON.parse(result.stdout)
}

async function usage (t: Test, args: string[], message: string, code = 2): Promise<void> {
  const result = await run(args)
  t.equal(result.code, code, `exits with ${code}: ${message}`)
  t.match(result.stderr, message)
}

function text (path: string): string {
  return execFileSync('openssl', ['x509', '-in', path, '-noout', '-text'], { encoding: 'utf8' })
}

t.test('issue --crl-url / --ocsp-url: the extensions openssl prints, and the distribution points the plugin reads', async (t) => {
  const dir = join(root, 'pki-urls')
  t.equal((await run(['ca', '--dir', dir])).code, 0)
  const crl1 = 'http://127.0.0.1:8080/ca.crl'
  const crl2 = 'https://crl.example.com/a/b.crl?x=1#y'
  const ocsp = 'http://127.0.0.1:8888/'
  const issued = await json(t, ['issue', 'alice', '--dir', dir, '--crl-url', crl1, '--crl-url', crl2, '--ocsp-url', ocsp, '--ocsp-url', 'https://ocsp.example.com'])
  t.same(issued.crlUrls, [crl1, crl2])
  t.same(issued.ocspUrls, [ocsp, 'https://ocsp.example.com'])
  const printed = text(issued.certificate)
  t.match(printed, /X509v3 CRL Distribution Points:\s+Full Name:\s+URI:http:\/\/127\.0\.0\.1:8080\/ca\.crl\s+Full Name:\s+URI:https:\/\/crl\.example\.com\/a\/b\.crl\?x=1#y/, 'one distribution point per URL')
  t.match(printed, /Authority Information Access:\s+OCSP - URI:http:\/\/127\.0\.0\.1:8888\/\s+OCSP - URI:https:\/\/ocsp\.example\.com/)
  t.same(distributionPointsOf(new X509Certificate(readFileSync(issued.certificate))), [crl1, crl2], "the plugin's reader finds both")

  const plain = await run(['issue', 'bob', '--dir', dir, '--crl-url', crl1, '--ocsp-url', ocsp])
  t.equal(plain.code, 0)
  t.match(plain.stdout, `  CRL at ${crl1}\n`)
  t.match(plain.stdout, `  OCSP at ${ocsp}\n`)
  const without = await json(t, ['issue', 'carol', '--dir', dir])
  t.same([without.crlUrls, without.ocspUrls], [[], []])
  t.notMatch(text(without.certificate), /CRL Distribution Points|Authority Information Access/, 'no URL given, no extension')
  t.same(distributionPointsOf(new X509Certificate(readFileSync(without.certificate))), [])

  const help = await run(['issue', '--help'])
  t.match(help.stdout, '--crl-url <url>')
  t.match(help.stdout, '--ocsp-url <url>')
})

t.test('issue: bad URLs are command-line mistakes (exit 2), in our words', async (t) => {
  const dir = join(root, 'pki-bad-urls')
  t.equal((await run(['ca', '--dir', dir])).code, 0)
  const issue = ['issue', 'alice', '--dir', dir]
  await usage(t, [...issue, '--crl-url', 'ldap://ldap.example.com/cn=CA'], '--crl-url ldap://ldap.example.com/cn=CA: only http and https URLs are fetched (not ldap:)')
  await usage(t, [...issue, '--ocsp-url', 'file:///etc/passwd'], '--ocsp-url file:///etc/passwd: only http and https URLs are fetched (not file:)')
  await usage(t, [...issue, '--crl-url', 'crl.example.com/ca.crl'], '--crl-url crl.example.com/ca.crl is not a URL (see')
  await usage(t, [...issue, '--crl-url', 'http://crl.example.com/a b.crl'], '--crl-url http://crl.example.com/a b.crl is not a URL (printable ASCII without spaces')
  await usage(t, [...issue, '--crl-url', 'http://é.example/ca.crl'], 'is not a URL (printable ASCII')
  await usage(t, [...issue, '--crl-url', 'http://x/' + 'a'.repeat(2048)], 'at most 2048 characters')
  await usage(t, [...issue, '--ocsp-url', 'http://user:secret@ocsp.example.com/'], 'a URL in a certificate carries no user name or password')
  await usage(t, [...issue, '--crl-url', 'http://crl.example.com/a,b.crl'], 'openssl cannot write a comma in an extension (write it %2C)')
  await usage(t, [...issue, '--crl-url'], '--crl-url needs a value')
  await usage(t, [...issue, '--crl-urls', 'http://x/'], 'unknown option --crl-urls (did you mean --crl-url?)')
  // Characters the openssl configuration file gives a meaning to reach the certificate unchanged.
  const odd = "http://crl.example.com/$HOME/'a'#\"b\"\\c"
  const issued = await json(t, [...issue, '--crl-url', odd])
  t.same(distributionPointsOf(new X509Certificate(readFileSync(issued.certificate))), [new URL(odd).href])
  t.match(text(issued.certificate), `URI:${odd}`)
})

t.test('ca --intermediate --crl-url: the intermediate names where the root\'s CRL is published', async (t) => {
  const dir = join(root, 'pki-intermediate')
  const url = 'http://127.0.0.1:8080/ca.crl'
  const made = await run(['ca', '--dir', dir, '--intermediate', '--crl-url', url])
  t.equal(made.code, 0, made.stderr)
  t.match(made.stdout, `  CRL of the root at ${url}\n`)
  const intermediate = new X509Certificate(readFileSync(join(dir, 'intermediate.crt')))
  t.same(distributionPointsOf(intermediate), [url])
  t.same(distributionPointsOf(new X509Certificate(readFileSync(join(dir, 'root.crt')))), [], 'a root names none')
  t.match(text(join(dir, 'intermediate.crt')), /X509v3 CRL Distribution Points:\s+Full Name:\s+URI:http:\/\/127\.0\.0\.1:8080\/ca\.crl/)
  const again = await json(t, ['ca', '--dir', dir, '--intermediate', '--force', '--crl-url', url, '--crl-url', 'http://127.0.0.1:8081/ca.crl'])
  t.same(again.intermediate.crlUrls, [url, 'http://127.0.0.1:8081/ca.crl'])
  const plain = await json(t, ['ca', '--dir', join(root, 'pki-intermediate-plain'), '--intermediate'])
  t.same(plain.intermediate.crlUrls, [])
  await usage(t, ['ca', '--dir', join(root, 'pki-unused'), '--crl-url', url], '--crl-url needs --intermediate')
  await usage(t, ['ca', '--dir', join(root, 'pki-unused'), '--intermediate', '--crl-url', 'ftp://x/'], 'only http and https URLs are fetched')
  await usage(t, ['ca', '--dir', join(root, 'pki-unused'), '--intermediate', '--ocsp-url', url], 'unknown option --ocsp-url')
  t.match((await run(['ca', '--help'])).stdout, '--crl-url <url>')
})

/** Starts `ocsp` in-process; resolves with its URL once it listens, and a stop that resolves with its result. */
async function responder (args: string[]): Promise<{ url: string, output: () => string, stop: () => Promise<Result> }> {
  const controller = new AbortController()
  let output = ''
  let listening: (url: string) => void
  const ready = new Promise<string>((resolve) => { listening = resolve })
  const done = run(['ocsp', '--port', '0', ...args], {
    signal: controller.signal,
    onStdout: (text) => {
      output += text
      const found = / at (http:\/\/127\.0\.0\.1:\d+\/)\n/.exec(output)
      if (found !== null) listening(found[1])
    }
  })
  const url = await Promise.race([ready, done.then((result) => { throw new Error('ocsp ended: ' + result.stderr) })])
  return {
    url,
    output: () => output,
    stop: async () => {
      controller.abort()
      return await done
    }
  }
}

/** `openssl ocsp` as a client: the status line it prints for the certificate, and whether the response verified. */
async function query (args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await execFileAsync('openssl', ['ocsp', ...args], { encoding: 'utf8' })
    return stdout + stderr
  } catch (error) {
    return String((error as { stdout: string }).stdout) + String((error as { stderr: string }).stderr)
  }
}

t.test('ocsp: a responder for the CA\'s database, signed by a delegated OCSPSigning certificate; revoke is answered at once', async (t) => {
  const dir = join(root, 'pki-ocsp')
  t.equal((await run(['ca', '--dir', dir, '--intermediate'])).code, 0)
  const running = await responder(['--dir', dir, '--minutes', '7'])
  t.teardown(async () => { await running.stop() })
  const alice = await json(t, ['issue', 'alice', '--dir', dir, '--ocsp-url', running.url])
  const bob = await json(t, ['issue', 'bob', '--dir', dir, '--ocsp-url', running.url])
  t.match(text(alice.certificate), `OCSP - URI:${running.url}`)
  const issuing = join(dir, 'intermediate.crt')
  const ask = async (cert: string): Promise<string> => await query(['-issuer', issuing, '-cert', cert, '-url', running.url, '-CAfile', join(dir, 'ca.crt')])

  const good = await ask(alice.certificate)
  t.match(good, 'Response verify OK', 'signed by a responder the CA delegated to')
  t.match(good, `${alice.certificate}: good`)
  t.match(good, /Next Update: /, 'with a nextUpdate')
  t.notMatch(good, /nonce/i, "openssl's nonce came back (it warns when none does, and fails when another does)")
  t.match(running.output(), `POST ${alice.serialNumber} good\n`)

  t.equal((await run(['revoke', bob.certificate, '--dir', dir, '--reason', 'keyCompromise'])).code, 0)
  const revoked = await ask(bob.certificate)
  t.match(revoked, `${bob.certificate}: revoked`, 'the revocation is answered without a restart')
  t.match(revoked, 'Reason: keyCompromise')
  t.match(await ask(alice.certificate), `${alice.certificate}: good`)
  const unknown = await query(['-issuer', issuing, '-serial', '0x0123456789', '-url', running.url, '-CAfile', join(dir, 'ca.crt')])
  t.match(unknown, '0x0123456789: unknown', 'a serial the CA never issued')

  const responderText = text(join(dir, 'ocsp.crt'))
  t.match(responderText, /X509v3 Extended Key Usage:\s+OCSP Signing/)
  t.match(responderText, 'OCSP No Check')
  t.match(responderText, /CA:FALSE/)
  const responderCert = new X509Certificate(readFileSync(join(dir, 'ocsp.crt')))
  t.ok(responderCert.checkIssued(new X509Certificate(readFileSync(issuing))), 'issued by the issuing CA')

  // RFC 6960 A.1: GET with the URL-encoded base64 of the request.
  const request = join(root, 'request.der')
  execFileSync('openssl', ['ocsp', '-issuer', issuing, '-cert', alice.certificate, '-no_nonce', '-reqout', request])
  const get = await fetch(running.url + encodeURIComponent(readFileSync(request).toString('base64')))
  t.equal(get.status, 200)
  t.equal(get.headers.get('content-type'), 'application/ocsp-response')
  const response = join(root, 'response.der')
  writeFileSync(response, Buffer.from(await get.arrayBuffer()))
  t.match(await query(['-respin', response, '-issuer', issuing, '-cert', alice.certificate, '-CAfile', join(dir, 'ca.crt')]), `${alice.certificate}: good`)
  t.match(running.output(), `GET ${alice.serialNumber} good\n`)

  const malformed = Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x01])
  const garbage = await fetch(running.url, { method: 'POST', body: 'not an OCSP request' })
  t.same(Buffer.from(await garbage.arrayBuffer()), malformed, 'malformedRequest for what openssl cannot read')
  const badGet = await fetch(running.url + '%E0%A4%A')
  t.same(Buffer.from(await badGet.arrayBuffer()), malformed, 'and for a GET path that is no URL encoding')
  t.match(running.output(), 'POST malformed request\n')
  t.equal((await fetch(running.url, { method: 'PUT', body: 'x' })).status, 405)
  t.equal((await fetch(running.url, { method: 'POST', body: Buffer.alloc(70 * 1024) })).status, 413, 'a body past 64 KiB is refused')

  const stopped = await running.stop()
  t.equal(stopped.code, 0)
  t.match(stopped.stdout, /Stopped after \d+ requests\.\n$/)
  t.match(stopped.stdout, '(OCSPSigning, made now)')
})

t.test('ocsp: the responder certificate is kept while it serves this CA, and made again when it would not', async (t) => {
  const dir = join(root, 'pki-responder')
  t.equal((await run(['ca', '--dir', dir])).code, 0)
  const once = await json(t, ['ocsp', '--dir', dir, '--port', '0'])
  t.equal(once.requests, 0, 'stopped at once')
  t.match(once.url, /^http:\/\/127\.0\.0\.1:\d+\/$/)
  const first = readFileSync(join(dir, 'ocsp.crt'), 'utf8')
  t.match((await run(['ocsp', '--dir', dir, '--port', '0'])).stdout, 'kept from before')
  t.equal(readFileSync(join(dir, 'ocsp.crt'), 'utf8'), first)

  const issuer = loadIssuer(root, dir)
  const io = { stdout: () => {}, stderr: () => {}, stdin: async () => Buffer.alloc(0), env: process.env, cwd: root }
  t.equal(responderFor(io, issuer).made, false)
  t.equal(responderFor(io, issuer, Date.now() + 29.5 * 86_400_000).made, true, 'a day before it ends')
  t.not(readFileSync(join(dir, 'ocsp.crt'), 'utf8'), first)
  const other = join(root, 'pki-responder-other')
  t.equal((await run(['ca', '--dir', other])).code, 0)
  t.equal(responderFor(io, loadIssuer(root, other)).made, true)
  copyFileSync(join(other, 'ocsp.crt'), join(dir, 'ocsp.crt'))
  copyFileSync(join(other, 'ocsp.key'), join(dir, 'ocsp.key'))
  t.equal(responderFor(io, issuer).made, true, "another CA's responder")
  writeFileSync(join(dir, 'ocsp.key'), 'damaged')
  t.equal(responderFor(io, issuer).made, true, 'a damaged key')
  const kept = readFileSync(join(dir, 'ocsp.key'))
  t.equal(responderFor(io, issuer).made, false)
  t.same(readFileSync(join(dir, 'ocsp.key')), kept)

  // The default directory, and an IPv6 address written as URLs write it.
  t.equal((await run(['ca'])).code, 0)
  const defaults = await json(t, ['ocsp', '--port', '0', '--host', '::1'])
  t.match(defaults.url, /^http:\/\/\[::1\]:\d+\/$/)
  t.equal(defaults.index, join(root, 'pki', 'index.txt'))

  // --force on the CA removes the responder of the old CA with the rest.
  t.equal((await run(['ca', '--dir', dir, '--force'])).code, 0)
  t.match((await run(['ocsp', '--dir', dir, '--port', '0'])).stdout, 'made now')
})

t.test('ocsp: options, a port in use, a stop nobody can give, openssl failing mid-run', async (t) => {
  const dir = join(root, 'pki-ocsp-options')
  t.equal((await run(['ca', '--dir', dir])).code, 0)
  await usage(t, ['ocsp', '--dir', dir, '--port', '70000'], '--port must be a port number from 0 (any free port) to 65535')
  await usage(t, ['ocsp', '--dir', dir, '--port', 'http'], '--port must be')
  await usage(t, ['ocsp', '--dir', dir, '--minutes', '0'], '--minutes must be a whole number of minutes from 1 to 525600')
  await usage(t, ['ocsp', '--dir', dir, '--minutes', 'ten'], '--minutes must be')
  await usage(t, ['ocsp', '--dir', dir, 'extra'], 'ocsp takes no argument')
  await usage(t, ['ocsp', '--dir', join(root, 'nowhere')], 'no CA in', 1)
  const noStop = await run(['ocsp', '--dir', dir, '--port', '0'], { signal: null })
  t.equal(noStop.code, 1)
  t.match(noStop.stderr, 'ocsp runs until it is stopped, and nothing here can stop it')

  const taken = createServer()
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => taken.close())
  const port = (taken.address() as { port: number }).port
  await usage(t, ['ocsp', '--dir', dir, '--port', String(port)], `cannot listen on 127.0.0.1:${port}: `, 1)

  const index = join(dir, 'index.txt')
  const saved = readFileSync(index)
  rmSync(index)
  await usage(t, ['ocsp', '--dir', dir, '--port', '0'], 'the CA database', 1)
  writeFileSync(index, saved)

  // openssl missing once the responder certificate exists: internalError, and the responder keeps running.
  const alice = await json(t, ['issue', 'alice', '--dir', dir])
  const controller = new AbortController()
  let output = ''
  let listening: (url: string) => void
  const ready = new Promise<string>((resolve) => { listening = resolve })
  const done = run(['ocsp', '--dir', dir, '--port', '0'], {
    signal: controller.signal,
    env: { OPENSSL: join(root, 'no-such-openssl') },
    onStdout: (text) => {
      output += text
      const found = / at (http:\/\/127\.0\.0\.1:\d+\/)\n/.exec(output)
      if (found !== null) listening(found[1])
    }
  })
  const url = await ready
  const request = join(root, 'request-internal.der')
  execFileSync('openssl', ['ocsp', '-issuer', join(dir, 'root.crt'), '-cert', alice.certificate, '-reqout', request])
  const answer = await fetch(url, { method: 'POST', body: readFileSync(request) })
  t.same(Buffer.from(await answer.arrayBuffer()), Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x02]), 'internalError')
  t.match(output, 'POST failed: this command needs the openssl command-line tool')
  controller.abort()
  t.equal((await done).code, 0)
})

t.test('the built bin: ocsp answers until Ctrl-C (SIGINT), then exits with 0', async (t) => {
  const dir = join(root, 'pki-bin')
  t.equal((await run(['ca', '--dir', dir])).code, 0)
  const alice = await json(t, ['issue', 'alice', '--dir', dir])
  // dist/ is build output (npm run build), outside tap's coverage, run as users run it.
  const child = spawn(process.execPath, ['dist/esm/cli/bin.js', 'ocsp', '--dir', dir, '--port', '0'], {
    env: { ...process.env, NODE_OPTIONS: '', NODE_V8_COVERAGE: '' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      const found = / at (http:\/\/127\.0\.0\.1:\d+\/)\n/.exec(stdout)
      if (found !== null) resolve(found[1])
    })
    child.once('close', () => { reject(new Error('ocsp ended: ' + stderr)) })
  })
  const answer = await query(['-issuer', join(dir, 'root.crt'), '-cert', alice.certificate, '-url', url, '-CAfile', join(dir, 'ca.crt')])
  t.match(answer, `${alice.certificate}: good`)
  t.match(answer, 'Response verify OK')
  const closed = once(child, 'close')
  child.kill('SIGINT')
  const [code] = await closed as [number | null]
  t.equal(code, 0, stderr)
  t.match(stdout, 'Stopped after 1 request.\n')
})
