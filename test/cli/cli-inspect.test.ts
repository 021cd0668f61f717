// The CLI's helpers for setting up and debugging: inspect and proxy-config, run in-process through
// main(argv, io); then the built bin as users run it, and the plugin's independence from the CLI.
import t, { type Test } from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { certificateHeaders } from '../../lib/cli/inspect.js'
import { proxyConfigFlags } from '../../lib/cli/proxy.js'
import { identityFromCertificate } from '../../lib/identity.js'
import { getPreset, presetNames } from '../../lib/sources/presets/index.js'
import { proxyConfig, proxyKinds } from '../../lib/cli/proxy-config.js'
import { getCorpus } from '../helpers/certs.js'
import { cliRunner } from '../helpers/cli.js'
import { requireProxy } from '../helpers/proxies.js'

const root = mkdtempSync(join(tmpdir(), 'fastify-client-cert-cli-inspect-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))

const run = cliRunner(root)

async function json (t: Test, args: string[], options: Parameters<typeof run>[1] = {}): Promise<any> {
  const result = await run([...args, '--json'], options)
  t.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`)
  return JSON.parse(result.stdout)
}

async function fails (t: Test, args: string[], code: number, message: string | RegExp, options: Parameters<typeof run>[1] = {}): Promise<void> {
  const result = await run(args, options)
  t.equal(result.code, code, `${args.join(' ')} exits with ${code}`)
  t.match(result.stderr, message)
}

/** What `inspect --json` prints for an identity: JSON, with the certificate as PEM. */
function expected (identity: ReturnType<typeof identityFromCertificate>): unknown {
  return JSON.parse(JSON.stringify({ ...identity, certificate: identity.certificate?.toString() ?? null }))
}

async function setup (): Promise<{ dir: string, alice: any, bob: any, password: string }> {
  const dir = join(root, 'pki')
  const password = join(root, 'password')
  writeFileSync(password, 'p12 secret\n')
  for (const args of [['ca', '--dir', dir, '--intermediate']]) t.equal((await run(args)).code, 0)
  const issue = async (...args: string[]): Promise<any> => JSON.parse((await run(['issue', ...args, '--dir', dir, '--json'])).stdout)
  const alice = await issue('alice', '--subject', 'CN=Alice Example,O=Example Corp', '--email', 'alice@example.com',
    '--spiffe', 'spiffe://example.org/ns/prod/sa/alice', '--password-file', password)
  const bob = await issue('bob')
  t.equal((await run(['revoke', bob.serialNumber, '--dir', dir])).code, 0)
  return { dir, alice, bob, password }
}

const ready = setup()

t.test('inspect: a certificate gives exactly identityFromCertificate', async (t) => {
  const { dir, alice } = await ready
  const pem = readFileSync(alice.certificate, 'utf8')
  const identity = identityFromCertificate(pem)
  t.same(await json(t, ['inspect', alice.certificate]), expected(identity), 'PEM file')
  const der = join(root, 'alice.der')
  writeFileSync(der, new X509Certificate(pem).raw)
  t.same(await json(t, ['inspect', der]), expected(identity), 'DER file')
  t.same(await json(t, ['inspect', '-'], { stdin: pem }), expected(identity), 'standard input')
  t.same(await json(t, ['inspect', alice.chain]), expected(identity), 'a chain file: its first certificate')
  const noisy = join(root, 'noisy.pem')
  writeFileSync(noisy, `Bag Attributes\n    friendlyName: x\nsubject=CN = x\n${pem}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n`)
  t.same(await json(t, ['inspect', noisy]), expected(identity), 'text and other blocks around it are skipped')

  const human = await run(['inspect', alice.certificate])
  t.equal(human.code, 0)
  t.match(human.stdout, 'The identity the plugin would build (request.clientCert):')
  t.match(human.stdout, /source +tls/)
  t.match(human.stdout, /subject +CN=Alice Example,O=Example Corp\n/)
  t.match(human.stdout, /email SANs +alice@example.com\n/)
  t.match(human.stdout, /DNS SANs +-\n/)
  t.match(human.stdout, /spiffeId +spiffe:\/\/example.org\/ns\/prod\/sa\/alice\n/)
  t.match(human.stdout, `serialNumber    ${alice.serialNumber as string}\n`)
  t.match(human.stdout, /verified +not checked \(give --ca/)

  const checked = await json(t, ['inspect', alice.certificate, '--ca', join(dir, 'ca.crt'), '--crl', join(dir, 'crl.pem')])
  t.same(checked, expected(identityFromCertificate(pem, { verified: true })), 'verified against --ca and --crl')
  const yes = await run(['inspect', alice.chain, '--ca', join(dir, 'root.crt')])
  t.match(yes.stdout, /verified +yes\n/, 'the intermediate comes from the chain file')
})

/** `inspect … --json` of a certificate that does not verify: the identity is printed, and the exit code is 3. */
async function refused (t: Test, args: string[], options: Parameters<typeof run>[1] = {}): Promise<any> {
  const result = await run([...args, '--json'], options)
  t.equal(result.code, 3, `${args.join(' ')} exits with 3 (not verified): ${result.stderr}`)
  t.equal(result.stderr, '')
  return JSON.parse(result.stdout)
}

t.test('inspect: verdicts as the plugin reaches them', async (t) => {
  const { dir, bob } = await ready
  const corpus = await getCorpus()
  const revoked = await refused(t, ['inspect', bob.certificate, '--ca', join(dir, 'ca.crt'), '--crl', join(dir, 'crl.pem')])
  t.equal(revoked.verified, false)
  t.equal(revoked.verifyError, 'CERT_REVOKED')
  const human = await run(['inspect', bob.certificate, '--ca', join(dir, 'ca.crt'), '--crl', join(dir, 'crl.pem')])
  t.match(human.stdout, /verified +no: CERT_REVOKED\n/)
  t.equal(human.code, 3, 'a revoked certificate exits with 3, as openssl verify exits non-zero')
  const expired = await refused(t, ['inspect', corpus.leaves.expired.certPath, '--ca', corpus.caPath])
  t.equal(expired.verifyError, 'CERT_HAS_EXPIRED')
  const foreign = await refused(t, ['inspect', bob.certificate, '--ca', corpus.caPath])
  t.equal(foreign.verifyError, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'another CA: the chain check fails')
  const serverCert = await refused(t, ['inspect', corpus.leaves.serverauth.certPath, '--ca', corpus.caPath])
  t.equal(serverCert.verifyError, 'INVALID_PURPOSE')
  t.equal((await run(['inspect', bob.certificate])).code, 0, 'nothing to check without --ca: 0')
  await fails(t, ['inspect', bob.certificate, '--crl', join(dir, 'crl.pem')], 2, '--crl needs --ca to check a certificate file')
})

t.test('inspect: PKCS#12', async (t) => {
  const { alice, password } = await ready
  const identity = expected(identityFromCertificate(readFileSync(alice.certificate)))
  t.same(await json(t, ['inspect', alice.p12, '--password-file', password]), identity)
  const renamed = join(root, 'alice.bin')
  writeFileSync(renamed, readFileSync(alice.p12))
  t.same(await json(t, ['inspect', '-', '--password-file', password], { stdin: readFileSync(alice.p12) }), identity, 'from standard input')
  const wrong = join(root, 'wrong')
  writeFileSync(wrong, 'not it\n')
  await fails(t, ['inspect', alice.p12, '--password-file', wrong], 1, `wrong password for ${alice.p12 as string}`)
  await fails(t, ['inspect', alice.p12], 1, 'is a PKCS#12 file: give its password with --password-file')
  await fails(t, ['inspect', alice.certificate, '--password-file', password], 1, /cannot read .*alice\.crt as PKCS#12 \(openssl pkcs12 failed/)
  await fails(t, ['inspect', alice.p12, '--password-file', password], 1, 'needs the openssl command-line tool', { env: { OPENSSL: '/nonexistent/openssl' } })
})

t.test('inspect: bad input', async (t) => {
  const { dir, alice } = await ready
  const garbage = join(root, 'garbage')
  writeFileSync(garbage, 'hello')
  await fails(t, ['inspect', garbage], 1, 'garbage holds no certificate (PEM or DER); a PKCS#12 file needs --password-file')
  const keyOnly = join(root, 'key.pem')
  writeFileSync(keyOnly, readFileSync(join(dir, 'root.key')))
  await fails(t, ['inspect', keyOnly], 1, 'key.pem holds no certificate')
  const cut = join(root, 'cut.pem')
  writeFileSync(cut, readFileSync(alice.certificate, 'utf8').slice(0, 200))
  await fails(t, ['inspect', cut], 1, 'cut.pem holds no certificate')
  await fails(t, ['inspect', '-'], 1, 'standard input holds no certificate')
  await fails(t, ['inspect', join(root, 'missing.pem')], 1, /cannot read the input .*missing\.pem: no such file/)
  await fails(t, ['inspect', alice.certificate, '--ca', garbage], 1, /^fastify-client-cert: --ca: holds something that is not a valid X.509 certificate/)
  await fails(t, ['inspect', alice.certificate, '--ca', keyOnly], 1, /^fastify-client-cert: --ca: holds no PEM certificate/)
  await fails(t, ['inspect', alice.certificate, '--ca', join(root, 'nope')], 1, 'cannot read the --ca file')
  await fails(t, ['inspect', alice.certificate, '--crl', garbage], 1, /^fastify-client-cert: --crl: /)
  await fails(t, ['inspect', alice.certificate, '--header', 'A: b'], 2, '--header needs --preset')
})

t.test('inspect --preset: forwarded headers give the identity of the plugin in proxy mode', async (t) => {
  const { dir, alice, bob } = await ready
  const pem = readFileSync(alice.certificate, 'utf8')
  const escaped = encodeURIComponent(pem)
  const proxied = expected(identityFromCertificate(pem, { source: 'proxy', proxy: 'nginx', verified: true }))
  t.same(await json(t, ['inspect', '-', '--preset', 'nginx', '--header', 'X-SSL-Client-Verify: SUCCESS'], { stdin: escaped + '\n' }), proxied, 'a bare value goes to the certificate header')
  const dump = `X-SSL-Client-Cert: ${escaped}\r\nHost: app.example\r\n\r\nX-SSL-Client-Verify:   SUCCESS  \r\n`
  t.same(await json(t, ['inspect', '-', '--preset', 'nginx'], { stdin: dump }), proxied, 'a header dump')
  const failed = await refused(t, ['inspect', '-', '--preset', 'nginx', '--header', 'X-SSL-Client-Verify: FAILED:certificate revoked'], { stdin: escaped })
  t.equal(failed.verified, false)
  t.equal(failed.verifyError, 'certificate revoked', "the proxy's own words")
  const human = await run(['inspect', '-', '--preset', 'nginx', '--header', 'X-SSL-Client-Verify: FAILED:certificate revoked'], { stdin: escaped })
  t.match(human.stdout, /source +proxy \(nginx\)/)
  t.match(human.stdout, /verified +no: certificate revoked/)

  const apache = await json(t, ['inspect', '-', '--preset', 'apache', '--header', 'X-SSL-Client-Verify: SUCCESS', '--ca', join(dir, 'ca.crt')],
    { stdin: pem.replace(/\n/g, ' ') })
  t.same(apache, expected(identityFromCertificate(pem, { source: 'proxy', proxy: 'apache', verified: true })))
  const haproxy = await refused(t, ['inspect', '-', '--preset', 'haproxy', '--header', 'X-SSL-Client-Verify: 0', '--header', 'X-SSL-Client-Used: 1',
    '--crl', join(dir, 'crl.pem')], { stdin: new X509Certificate(readFileSync(bob.certificate)).raw.toString('base64') })
  t.equal(haproxy.verifyError, 'CERT_REVOKED', '--crl without --ca: the CRL is trusted as configured')
  const azure = await json(t, ['inspect', '-', '--preset', 'azure', '--ca', join(dir, 'ca.crt')], { stdin: new X509Certificate(pem).raw.toString('base64') })
  t.equal(azure.verified, true, 'azure forwards unverified certificates: --ca decides')

  const none = await run(['inspect', '-', '--preset', 'apache'], { stdin: 'X-SSL-Client-Cert: (null)\nX-SSL-Client-Verify: NONE\n' })
  t.equal(none.code, 0)
  t.match(none.stdout, 'No certificate: the headers say the client sent none (request.clientCert would be null).')
  t.equal((await run(['inspect', '-', '--preset', 'apache', '--json'], { stdin: 'X-SSL-Client-Cert: (null)\n' })).stdout, 'null\n')

  const names = await run(['inspect', '-', '--preset', 'envoy'], { stdin: 'X-Forwarded-Client-Cert: Subject="O=Example Corp"\n' })
  t.equal(names.code, 0, 'a proxy that forwards names without the certificate')
  t.match(names.stdout, /subject +O=Example Corp\n/)
  for (const field of ['issuer', 'commonName', 'email SANs', 'spiffeId', 'serialNumber', 'fingerprint256', 'notBefore', 'notAfter']) {
    t.match(names.stdout, new RegExp(`${field} +-\\n`), `${field} is unknown`)
  }
  t.match(names.stdout, /verified +yes/)
  const namesIdentity = await refused(t, ['inspect', '-', '--preset', 'envoy', '--ca', join(dir, 'ca.crt')],
    { stdin: 'X-Forwarded-Client-Cert: Subject="CN=alice"\n' })
  t.equal(namesIdentity.subject, 'CN=alice')
  t.equal(namesIdentity.certificate, null)
  t.equal(namesIdentity.verified, false, 'with --ca (proxy.ca) a name alone cannot be checked: the plugin fails closed')
  t.equal(namesIdentity.verifyError, 'CERTIFICATE_NOT_FORWARDED')
  // A proxy that forwards the certificate and names of it: names without the certificate are a downgrade, refused.
  await fails(t, ['inspect', '-', '--preset', 'aws-alb'], 1,
    'the plugin would answer 400 (FST_CLIENT_CERT_BAD_HEADER): x-amzn-mtls-clientcert-leaf is missing beside headers that describe the certificate',
    { stdin: 'X-Amzn-Mtls-Clientcert-Subject: O=Example Corp\n' })

  await fails(t, ['inspect', '-', '--preset', 'nginx'], 1, 'the plugin would answer 400 (FST_CLIENT_CERT_BAD_HEADER): certificate forwarded without its x-ssl-client-verify status header', { stdin: escaped })
  await fails(t, ['inspect', '-', '--preset', 'nginx', '--header', 'X-SSL-Client-Verify: SUCCESS', '--header', 'x-ssl-client-verify: SUCCESS'], 1,
    'the plugin would answer 400 (FST_CLIENT_CERT_BAD_HEADER): a header is repeated or longer than 16384 bytes', { stdin: escaped })
  await fails(t, ['inspect', '-', '--preset', 'nginx'], 1, 'none of the nginx preset\'s headers is in the input (x-ssl-client-cert, x-ssl-client-verify)', { stdin: 'Host: x\n' })
  await fails(t, ['inspect', '-', '--preset', 'nginx'], 1, 'line 2 is not a "Name: value" header', { stdin: 'Host: x\nnonsense\n' })
  await fails(t, ['inspect', '-', '--preset', 'nginx'], 1, 'line 2 is not a "Name: value" header', { stdin: 'Host: x\nVia: a\rb\n' })
  // Run without fails(): a raw U+2028 in an assertion's name would split tap's own output line.
  const separator = await run(['inspect', '-', '--preset', 'nginx', '--header', 'Via: a\u2028b'], { stdin: escaped })
  t.equal(separator.code, 1)
  t.equal(separator.stderr, 'fastify-client-cert: --header Via: a\\u2028b is not a "Name: value" header\n', 'a line separator in --header, shown escaped')
  await fails(t, ['inspect', '-', '--preset', 'nginx'], 1, 'line 2 is not a "Name: value" header', { stdin: 'Host: x\nBad Name: y\n' })
  await fails(t, ['inspect', '-', '--preset', 'nginx', '--header', 'novalue'], 1, '--header novalue is not a "Name: value" header', { stdin: escaped })
  await fails(t, ['inspect', '-', '--preset', 'apache2'], 2, '--preset must be one of nginx, apache', { stdin: escaped })
  await fails(t, ['inspect', '-', '--preset', 'azure'], 1, 'the azure preset forwards certificates the proxy has not verified: give --ca', { stdin: escaped })
})

t.test('inspect --preset: every preset has a certificate header', async (t) => {
  t.same(Object.keys(certificateHeaders).sort(), [...presetNames].sort())
  for (const name of presetNames) t.ok(getPreset(name)!.headers.includes(certificateHeaders[name]), `${name}: ${certificateHeaders[name]}`)
})

t.test('proxy-config prints proxyConfig for the given ports and paths', async (t) => {
  await ready
  const etc = join(root, 'etc')
  mkdirSync(etc, { recursive: true })
  for (const file of ['server.pem', 'server.key', 'a', 'b', 'my server.crt', join('etc', 'server.crt'), join('etc', 'server.key'), join('etc', 'clients.crt')]) {
    writeFileSync(join(root, file), '')
  }
  for (const kind of proxyKinds) {
    const result = await run(['proxy-config', kind, '--cert', 'server.pem', '--key', kind === 'haproxy' ? 'server.pem' : 'server.key',
      '--listen', '8443', '--upstream', '127.0.0.1:3001'])
    t.equal(result.code, 0, result.stderr)
    t.equal(result.stdout, proxyConfig(kind, {
      listen: { host: '0.0.0.0', port: 8443 },
      upstream: { host: '127.0.0.1', port: 3001 },
      serverCertPath: join(root, 'server.pem'),
      serverKeyPath: join(root, kind === 'haproxy' ? 'server.pem' : 'server.key'),
      clientCaPath: join(root, 'pki/ca.crt'),
      verify: 'optional',
      workDir: join(root, `${kind}-work`)
    }), `${kind}: the same text`)
  }
  const options = {
    listen: { host: '::1', port: 443 },
    upstream: { socket: '/run/app.sock' },
    serverCertPath: join(etc, 'server.crt'),
    serverKeyPath: join(etc, 'server.key'),
    clientCaPath: join(etc, 'clients.crt'),
    verify: 'required' as const,
    workDir: '/var/lib/proxy',
    user: 'www-data',
    group: 'www',
    serverName: 'app.example',
    secret: { header: 'X-Proxy-Secret', value: 'c2VjcmV0LXZhbHVlLTEyMzQ1Njc4' },
    apacheModulesDir: '/usr/lib/httpd/modules'
  }
  const all = await json(t, ['proxy-config', 'apache', '--listen', '[::1]:443', '--upstream-socket', '/run/app.sock', '--cert', 'etc/server.crt',
    '--key', join(etc, 'server.key'), '--client-ca', 'etc/clients.crt', '--verify', 'required', '--work-dir', '/var/lib/proxy',
    '--user', 'www-data', '--group', 'www', '--server-name', 'app.example', '--secret-header', 'X-Proxy-Secret', '--secret-value', 'c2VjcmV0LXZhbHVlLTEyMzQ1Njc4',
    '--apache-modules-dir', '/usr/lib/httpd/modules'])
  t.same(all, { kind: 'apache', options, config: proxyConfig('apache', options) })
  const host = await json(t, ['proxy-config', 'caddy', '--cert', 'a', '--key', 'b', '--listen', 'localhost:9443', '--upstream', '3002'])
  t.same(host.options.listen, { host: 'localhost', port: 9443 })
  t.same(host.options.upstream, { host: '127.0.0.1', port: 3002 })

  await fails(t, ['proxy-config', 'traefik', '--cert', 'a', '--key', 'b'], 2, 'the proxy must be one of nginx, apache, haproxy, caddy')
  await fails(t, ['proxy-config', 'nginx', '--key', 'b'], 2, '--cert is required')
  await fails(t, ['proxy-config', 'nginx', '--cert', 'a', '--key', 'b', '--listen', 'localhost'], 2, '--listen must be host:port or a port number')
  await fails(t, ['proxy-config', 'nginx', '--cert', 'a', '--key', 'b', '--upstream', 'x:1', '--upstream-socket', '/s'], 2, 'give --upstream or --upstream-socket, not both')
  await fails(t, ['proxy-config', 'nginx', '--cert', 'a', '--key', 'b', '--secret-header', 'X-S'], 2, '--secret-header and --secret-value go together')
  await fails(t, ['proxy-config', 'nginx', '--cert', 'a', '--key', 'b', '--verify', 'maybe'], 2, '--verify must be one of optional, required')
  await fails(t, ['proxy-config', 'nginx', '--cert', 'my server.crt', '--key', 'b'], 1, /^fastify-client-cert: --cert must be an absolute path/)
  await fails(t, ['proxy-config', 'nginx', '--cert', 'a', '--key', 'b', '--listen', '99999'], 1, /^fastify-client-cert: --listen must be an integer from 1 to 65535/)
  await fails(t, ['proxy-config', 'haproxy', '--cert', 'a', '--key', 'b'], 1, /^fastify-client-cert: --key must be serverCertPath itself/)
  await fails(t, ['proxy-config', 'nginx', '--cert', 'a', '--key', 'b', '--group', 'www'], 1, /^fastify-client-cert: --group needs options.user/)
  await fails(t, ['proxy-config', 'caddy', '--cert', 'a', '--key', 'b', '--server-name', '10.0.0.1'], 1, /^fastify-client-cert: --server-name must be a host name/)
  await fails(t, ['proxy-config', 'nginx', '--cert', 'missing.crt', '--key', 'b'], 1, /^fastify-client-cert: --cert missing\.crt: no such file\n/)
  await fails(t, ['proxy-config', 'nginx', '--cert', 'a', '--key', join(root, 'nope', 'b')], 1, /^fastify-client-cert: --key .*nope\/b: no such file\n/)
  await fails(t, ['proxy-config', 'nginx', '--cert', 'a', '--key', 'b', '--client-ca', 'etc'], 1, 'fastify-client-cert: --client-ca etc: not a file\n')
  const inEtc = await cliRunner(etc)(['proxy-config', 'nginx', '--cert', '../a', '--key', '../b'])
  t.equal(inEtc.code, 1)
  t.equal(inEtc.stderr, 'fastify-client-cert: --client-ca pki/ca.crt: no such file\n', 'the default --client-ca must exist too')
  // Every option proxyConfig can name in an error has its flag.
  const named = new Set([...readFileSync('lib/cli/proxy-config.ts', 'utf8').matchAll(/'(kind|options(?:\.[A-Za-z]+)*)'/g)].map((m) => m[1]))
  t.ok(named.size > 10)
  for (const option of named) t.type(proxyConfigFlags[option], 'string', `${option} has a flag`)
})

t.test('the built bin runs as users run it', async (t) => {
  const bin = 'dist/esm/cli/bin.js'
  t.ok(existsSync(bin), `${bin} exists (npm run build)`)
  t.match(readFileSync(bin, 'utf8'), /^#!\/usr\/bin\/env node\n/, 'with its shebang')
  const { alice } = await ready
  // dist/ is build output, outside the coverage gate (package.json coverage-exclude).
  const env = { ...process.env, NODE_OPTIONS: '' }
  const inspected = spawnSync(process.execPath, [bin, 'inspect', '-', '--json'], { env, input: new X509Certificate(readFileSync(alice.certificate)).raw, encoding: 'utf8' })
  t.equal(inspected.status, 0, inspected.stderr)
  t.same(JSON.parse(inspected.stdout), expected(identityFromCertificate(readFileSync(alice.certificate))), 'binary standard input')
  const usage = spawnSync(process.execPath, [bin, 'issue'], { env, encoding: 'utf8' })
  t.equal(usage.status, 2)
  t.match(usage.stderr, 'issue needs exactly one argument')
  t.match(execFileSync(process.execPath, [bin, '--help'], { env, encoding: 'utf8' }), 'Usage: fastify-client-cert <command>')
})

t.test('proxy-config: each printed configuration, saved and started as its comment lines say, passes the proxy\'s own check', async (t) => {
  const { dir } = await ready
  const server = await json(t, ['issue', 'localhost', '--server', '--dir', dir])
  const combined = join(root, 'localhost.pem')
  writeFileSync(combined, readFileSync(server.chain, 'utf8') + readFileSync(server.key, 'utf8'))
  const env = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/usr/local/sbin:/sbin` }
  for (const kind of proxyKinds) {
    if (!requireProxy(t, kind)) continue
    const cwd = mkdtempSync(join(root, `${kind}-`))
    const files = kind === 'haproxy' ? ['--cert', combined, '--key', combined] : ['--cert', server.chain, '--key', server.key]
    const printed = await cliRunner(cwd)(['proxy-config', kind, ...files, '--client-ca', join(dir, 'ca.crt'), '--listen', '127.0.0.1:8443'])
    t.equal(printed.code, 0, printed.stderr)
    const name = /^# Save as ([^;/]+);/m.exec(printed.stdout)?.[1]
    t.ok(name, `${kind}: names the file to save it as`)
    const lines = [...printed.stdout.matchAll(/^# {3}(.+)$/gm)].map((match) => match[1])
    t.equal(lines.length, 3, `${kind}: the lines that make the work directory, check the file and run the proxy`)
    t.equal(lines[0], `mkdir -p ${join(cwd, `${kind}-work`)}`, `${kind}: the work directory is made first`)
    t.equal(lines[1].split(' ')[0], lines[2].split(' ')[0], `${kind}: checked and run by the same command`)
    writeFileSync(join(cwd, name!), printed.stdout)
    const check = spawnSync('sh', ['-e', '-c', `${lines[0]}\n${lines[1]}\n`], { cwd, env, encoding: 'utf8', timeout: 60_000 })
    t.equal(check.status, 0, `${kind}: ${lines[1]}\n${check.stdout}${check.stderr}`)
  }
})

t.test('a server importing the plugin loads nothing of the CLI', async (t) => {
  // Follows every relative import from lib/index.ts through the source tree.
  const seen = new Set<string>()
  const queue = [resolve('lib/index.ts')]
  while (queue.length > 0) {
    const file = queue.pop()!
    if (seen.has(file)) continue
    seen.add(file)
    for (const match of readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)) {
      queue.push(resolve(dirname(file), match[1].replace(/\.js$/, '.ts')))
    }
  }
  t.ok(seen.has(resolve('lib/plugin.ts')), 'the walk reaches the plugin')
  t.same([...seen].filter((file) => file.includes(`${join('lib', 'cli')}`)), [], 'no module of lib/cli')
})
