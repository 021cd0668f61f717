// The CLI's certificate authority: ca, issue, revoke, crl, run in-process through main(argv, io).
import t, { type Test } from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { once } from 'node:events'
import { isIP, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { checkServerIdentity, connect, createServer } from 'node:tls'
import { RevocationList } from '../../lib/revocation/crl.js'
import { main } from '../../lib/cli/main.js'
import { loadIssuer } from '../../lib/cli/pki.js'

interface Result { code: number, stdout: string, stderr: string }

const root = mkdtempSync(join(tmpdir(), 'fastify-client-cert-cli-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))

async function run (args: string[], options: { cwd?: string, env?: Record<string, string>, onStdout?: (text: string) => void } = {}): Promise<Result> {
  let stdout = ''
  let stderr = ''
  const code = await main(args, {
    stdout: (text) => { stdout += text; options.onStdout?.(text) },
    stderr: (text) => { stderr += text },
    stdin: async () => Buffer.alloc(0),
    env: { ...process.env, ...options.env },
    cwd: options.cwd ?? root
  })
  return { code, stdout, stderr }
}

async function ok (t: Test, args: string[], options: Parameters<typeof run>[1] = {}): Promise<Result> {
  const result = await run(args, options)
  t.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`)
  return result
}

async function json (t: Test, args: string[], options: Parameters<typeof run>[1] = {}): Promise<any> {
  const result = await ok(t, [...args, '--json'], options)
  return JSON.parse(result.stdout)
}

async function fails (t: Test, args: string[], code: number, message: string | RegExp, options: Parameters<typeof run>[1] = {}): Promise<Result> {
  const result = await run(args, options)
  t.equal(result.code, code, `${args.join(' ')} exits with ${code}`)
  t.match(result.stderr, message)
  t.equal(result.stdout.includes('{'), false, 'no JSON result')
  return result
}

function openssl (...args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

/** `openssl pkcs12 -info` prints the algorithms on stderr. */
function p12Info (path: string, secret: string): string {
  const result = spawnSync('openssl', ['pkcs12', '-in', path, '-info', '-noout', '-passin', 'env:P12'], { env: { ...process.env, P12: secret }, encoding: 'utf8' })
  return result.stdout + result.stderr
}

function hasTool (tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

const password = join(root, 'password')
writeFileSync(password, 'pass word $#\\"\'\nsecond line ignored\n')

t.test('help, usage errors and exit codes', async (t) => {
  const none = await run([])
  t.equal(none.code, 2, 'no command is a usage error')
  t.match(none.stdout, 'Usage: fastify-client-cert <command>')
  for (const help of ['--help', '-h', 'help']) {
    const result = await run([help])
    t.equal(result.code, 0)
    t.match(result.stdout, /ca +create a development CA/)
    t.match(result.stdout, /proxy-config +print the tested configuration/)
  }
  const issueHelp = await ok(t, ['issue', '--help'])
  t.match(issueHelp.stdout, 'Usage: fastify-client-cert issue <name>')
  t.match(issueHelp.stdout, '--json')
  await fails(t, ['frobnicate'], 2, 'unknown command "frobnicate" (see "fastify-client-cert --help")')
  await fails(t, ['issue', 'alice', '--colour'], 2, 'fastify-client-cert: unknown option --colour (see "fastify-client-cert issue --help")\n')
  await fails(t, ['ca', 'extra'], 2, 'ca takes no argument ("extra")')
  await fails(t, ['issue'], 2, 'issue needs exactly one argument')
  await fails(t, ['issue', 'a', 'b'], 2, 'issue needs exactly one argument')
})

t.test('option errors in our own words, with a suggestion, never parseArgs text; exit code 2', async (t) => {
  const usage = async (args: string[], message: string): Promise<void> => {
    const result = await fails(t, args, 2, message)
    t.equal(result.stderr, `fastify-client-cert: ${message}\n`, `${args.join(' ')}: exactly our message`)
    t.notMatch(result.stderr, /ERR_PARSE_ARGS|To specify a positional|argument missing|ambiguous/, 'no parseArgs text')
  }
  const help = (command: string): string => ` (see "fastify-client-cert ${command}--help")`
  await usage(['ca', '--dyas', '30'], 'unknown option --dyas (did you mean --days?)')
  await usage(['issue', 'alice', '--subjet', 'CN=a'], 'unknown option --subjet (did you mean --subject?)')
  await usage(['issue', 'alice', '--jsno'], 'unknown option --jsno (did you mean --json?)')
  await usage(['issue', 'alice', '--serv'], 'unknown option --serv (did you mean --server?)')
  await usage(['issue', 'alice', '--p12format', 'aes'], 'unknown option --p12format (did you mean --p12-format?)')
  await usage(['ca', '--zzz'], 'unknown option --zzz' + help('ca '))
  await usage(['ca', '-x'], 'unknown option -x' + help('ca '))
  await usage(['ca', '--days'], '--days needs a value (--days <value>, or --days=<value> for one that starts with -)' + help('ca '))
  await usage(['ca', '--days', '--json'], '--days needs a value (--days <value>, or --days=<value> for one that starts with -)' + help('ca '))
  await usage(['ca', '--json=yes'], '--json takes no value (give "--json" alone)' + help('ca '))
  await usage(['ca', '--days', '3', '--days', '4'], '--days is given twice' + help('ca '))
  await usage(['ca', '--days', 'soon'], '--days must be a whole number of days from 1 to 36500' + help('ca '))
  await usage(['isue', 'alice'], 'unknown command "isue" (did you mean issue?)')
  await usage(['inpsect', 'x'], 'unknown command "inpsect" (did you mean inspect?)')
  // What still works: -h, "--" before an operand that starts with -, an inline value, a repeatable flag.
  t.equal((await run(['ca', '-h'])).code, 0)
  const dir = join(root, 'options-ok')
  await ok(t, ['ca', '--dir=' + dir, '--days=3000'])
  const issued = await json(t, ['issue', 'alice', '--dir', dir, '--dns', 'a.example', '--dns', 'b.example'])
  t.same(issued.san.dns, ['a.example', 'b.example'])
  await fails(t, ['ca', '--dir', join(root, 'unused'), '--days=-1'], 2, '--days must be a whole number') // an inline value may start with -
  await fails(t, ['inspect', '--', '--not-a-flag'], 1, 'cannot read the input --not-a-flag: no such file')
})

t.test('ca: a root CA with defaults, then refusal to overwrite its key', async (t) => {
  const cwd = join(root, 'simple')
  mkdirSync(cwd)
  const result = await ok(t, ['ca'], { cwd })
  t.match(result.stdout, 'Creating a development CA in pki (EC P-256 keys)...')
  t.match(result.stdout, 'pki/root.key  private key (keep it secret)')
  t.match(result.stdout, 'Next: fastify-client-cert issue alice --dir pki')
  const cert = new X509Certificate(readFileSync(join(cwd, 'pki/root.crt')))
  t.ok(cert.ca, 'a CA certificate')
  t.match(cert.subject, /CN=Development Root CA [0-9A-F]{6}/)
  t.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1', 'EC P-256 by default')
  t.ok(cert.checkIssued(cert), 'self-signed')
  const days = (Date.parse(cert.validTo) - Date.now()) / 86_400_000
  t.ok(days > 3649 && days < 3651, 'valid 3650 days')
  t.equal(statSync(join(cwd, 'pki/root.key')).mode & 0o777, 0o600, 'the key is private')
  t.equal(statSync(join(cwd, 'pki')).mode & 0o777, 0o700, 'so is the directory')
  t.equal(readFileSync(join(cwd, 'pki/ca.crt'), 'utf8'), readFileSync(join(cwd, 'pki/root.crt'), 'utf8'), 'the bundle is the root alone')
  t.match(openssl('x509', '-in', join(cwd, 'pki/root.crt'), '-noout', '-ext', 'basicConstraints,keyUsage'), /CA:TRUE[\s\S]*Certificate Sign, CRL Sign/)

  const before = readFileSync(join(cwd, 'pki/root.key'))
  await fails(t, ['ca'], 1, "pki/root.key exists: refusing to overwrite the CA's private key (--force replaces the CA", { cwd })
  t.same(readFileSync(join(cwd, 'pki/root.key')), before, 'the key is untouched')

  const issued = await ok(t, ['issue', 'alice'], { cwd })
  t.match(issued.stdout, 'pki/issued/alice.key  private key')
  const serial = new X509Certificate(readFileSync(join(cwd, 'pki/issued/alice.crt'))).serialNumber
  await ok(t, ['revoke', serial], { cwd })
  const crl = await ok(t, ['crl'], { cwd })
  t.match(crl.stdout, 'Wrote pki/crl.pem: 1 revoked certificate, valid until')
})

t.test('ca: options, --json, --force and bad values', async (t) => {
  const dir = join(root, 'options')
  const first = await json(t, ['ca', '--dir', dir, '--intermediate', '--key-type', 'ec-p384', '--subject', 'CN=Test Root,O=Example',
    '--intermediate-subject', 'CN=Test Issuing,O=Example', '--days', '100', '--intermediate-days', '50'])
  t.equal(first.keyType, 'ec-p384')
  t.equal(first.root.subject, 'CN=Test Root,O=Example')
  t.equal(first.intermediate.subject, 'CN=Test Issuing,O=Example')
  t.equal(first.bundle, join(dir, 'ca.crt'))
  const intermediate = new X509Certificate(readFileSync(join(dir, 'intermediate.crt')))
  const rootCert = new X509Certificate(readFileSync(join(dir, 'root.crt')))
  t.ok(intermediate.checkIssued(rootCert) && intermediate.verify(rootCert.publicKey), 'the root signs the intermediate')
  t.equal(intermediate.publicKey.asymmetricKeyDetails?.namedCurve, 'secp384r1')
  t.match(openssl('x509', '-in', join(dir, 'intermediate.crt'), '-noout', '-text'), /ecdsa-with-SHA384[\s\S]*pathlen:0/)
  t.equal(first.intermediate.notAfter.slice(0, 10), new Date(Date.now() + 50 * 86_400_000).toISOString().slice(0, 10))
  t.equal(readFileSync(join(dir, 'ca.crt'), 'utf8'), readFileSync(join(dir, 'root.crt'), 'utf8') + readFileSync(join(dir, 'intermediate.crt'), 'utf8'))
  await ok(t, ['issue', 'someone', '--dir', dir, '--days', '20'])
  t.ok(existsSync(join(dir, 'issued/someone.crt')))

  const second = await json(t, ['ca', '--dir', dir, '--force', '--key-type', 'rsa-2048'])
  t.not(second.root.fingerprint256, first.root.fingerprint256, '--force replaced the CA')
  t.equal(second.intermediate, null)
  t.notOk(existsSync(join(dir, 'intermediate.crt')), 'the old intermediate is gone: it would issue for the new root')
  t.equal(readFileSync(join(dir, 'index.txt'), 'utf8'), '', 'and so is the old database')
  t.same(new X509Certificate(readFileSync(join(dir, 'root.crt'))).publicKey.asymmetricKeyDetails?.modulusLength, 2048)

  const cwd = join(root, 'dot')
  mkdirSync(cwd)
  const dot = await ok(t, ['ca', '--dir', '.'], { cwd })
  t.match(dot.stdout, `Creating a development CA in ${cwd} `, 'a directory is named absolute when it is the working directory')

  await fails(t, ['ca', '--dir', join(root, 'x'), '--key-type', 'dsa'], 2, '--key-type must be one of ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096')
  await fails(t, ['ca', '--dir', join(root, 'x'), '--days', '0'], 2, '--days must be a whole number of days from 1 to 36500')
  await fails(t, ['ca', '--dir', join(root, 'x'), '--days', '1e3'], 2, '--days must be')
  await fails(t, ['ca', '--dir', join(root, 'x'), '--intermediate', '--days', '10', '--intermediate-days', '11'], 2, 'cannot exceed --days')
  await fails(t, ['ca', '--dir', join(root, 'x'), '--intermediate-days', '11'], 2, 'need --intermediate')
  await fails(t, ['ca', '--dir', join(root, 'x'), '--subject', ''], 1, 'a CA needs a subject')
  await fails(t, ['ca', '--dir', join(root, 'x'), '--subject', 'CN=a,,'], 1, '--subject: ')
  await fails(t, ['ca', '--dir', join(root, 'x'), '--subject', '1.2.3.4=x'], 1, '--subject: openssl cannot write the attribute 1.2.3.4')
  await fails(t, ['ca', '--dir', join(root, 'x'), '--subject', 'CN='], 1, '--subject: the CN attribute is empty')
  await fails(t, ['ca', '--dir', join(root, 'x'), '--subject', 'CN=a\\0Ab'], 1, '--subject holds a control character')
  t.notOk(existsSync(join(root, 'x')), 'nothing was written')
  writeFileSync(join(root, 'plainfile'), '')
  await fails(t, ['ca', '--dir', join(root, 'plainfile', 'pki')], 1, /cannot create the directory .*plainfile\/pki/)
})

t.test('openssl missing or failing', async (t) => {
  const dir = join(root, 'no-openssl')
  await fails(t, ['ca', '--dir', dir], 1, 'this command needs the openssl command-line tool (OpenSSL 3 or 1.1.1), and "/nonexistent/openssl" was not found', { env: { OPENSSL: '/nonexistent/openssl' } })
  t.notOk(existsSync(dir), 'a failure leaves nothing behind')
  const notExecutable = join(root, 'not-executable')
  writeFileSync(notExecutable, '', { mode: 0o644 })
  await fails(t, ['ca', '--dir', dir], 1, `cannot run ${notExecutable}: `, { env: { OPENSSL: notExecutable } })
  await fails(t, ['ca', '--dir', dir], 1, 'openssl req failed', { env: { OPENSSL: '/bin/false' } })
  for (const bad of ['0', '0.0', 'ten', '1e3', '-1', '86401', '1.0001']) {
    await fails(t, ['ca', '--dir', dir], 1, 'FASTIFY_CLIENT_CERT_OPENSSL_TIMEOUT must be a number of seconds above 0 and at most 86400 (default 30)',
      { env: { FASTIFY_CLIENT_CERT_OPENSSL_TIMEOUT: bad } })
  }
  t.notOk(existsSync(dir), 'a refused timeout leaves nothing behind')
  // A slow openssl is stopped at the bound: every command runs under it.
  const slow = join(root, 'slow-openssl')
  writeFileSync(slow, '#!/bin/sh\nexec sleep 30\n', { mode: 0o755 })
  await fails(t, ['ca', '--dir', dir], 1, /^fastify-client-cert: openssl req did not finish within 0\.2 s and was stopped: /,
    { env: { OPENSSL: slow, FASTIFY_CLIENT_CERT_OPENSSL_TIMEOUT: '0.2' } })
  await ok(t, ['ca', '--dir', dir], { env: { FASTIFY_CLIENT_CERT_OPENSSL_TIMEOUT: '' } })
  await ok(t, ['ca', '--dir', join(root, 'timeout-set'), '--json'], { env: { FASTIFY_CLIENT_CERT_OPENSSL_TIMEOUT: '60.5' } })
})

t.test('issue: a client certificate, its files and its PKCS#12', async (t) => {
  const dir = join(root, 'pki-issue')
  await ok(t, ['ca', '--dir', dir, '--intermediate'])
  const result = await ok(t, ['issue', 'alice', '--dir', dir, '--subject', 'CN=Alice Example,OU=Engineering,O=Example Corp',
    '--email', 'alice@example.com', '--dns', 'alice.example.com', '--uri', 'https://example.com/~alice?x=$1#frag',
    '--spiffe', 'spiffe://example.org/ns/prod/sa/alice', '--ip', '10.0.0.1', '--ip', '2001:db8::1', '--password-file', password], { cwd: root })
  t.match(result.stdout, 'Issuing a client certificate for alice (EC P-256 key, 365 days)...')
  t.match(result.stdout, 'Issued CN=Alice Example,OU=Engineering,O=Example Corp by CN=Development Intermediate CA')
  t.match(result.stdout, 'PKCS#12 password: the one in the --password-file')
  t.match(result.stdout, '3DES, SHA-1 MAC: imports everywhere')
  const issued = join(dir, 'issued')
  const certPem = readFileSync(join(issued, 'alice.crt'), 'utf8')
  const cert = new X509Certificate(certPem)
  t.equal(cert.subject, 'CN=Alice Example\nOU=Engineering\nO=Example Corp'.split('\n').reverse().join('\n'))
  t.equal(cert.subjectAltName, 'email:alice@example.com, DNS:alice.example.com, URI:https://example.com/~alice?x=$1#frag, URI:spiffe://example.org/ns/prod/sa/alice, IP Address:10.0.0.1, IP Address:2001:DB8:0:0:0:0:0:1')
  t.same(cert.keyUsage, ['1.3.6.1.5.5.7.3.2'], 'clientAuth only')
  t.notOk(cert.ca)
  const text = openssl('x509', '-in', join(issued, 'alice.crt'), '-noout', '-text')
  t.match(text, /Key Usage: critical\s+Digital Signature/)
  t.match(text, /Basic Constraints: critical\s+CA:FALSE/)
  t.match(text, 'Authority Key Identifier')
  const intermediatePem = readFileSync(join(dir, 'intermediate.crt'), 'utf8')
  t.ok(cert.verify(new X509Certificate(intermediatePem).publicKey))
  t.equal(readFileSync(join(issued, 'alice.chain.pem'), 'utf8'), certPem + intermediatePem, 'the chain is the certificate and the intermediate')
  t.ok(cert.checkPrivateKey((await import('node:crypto')).createPrivateKey(readFileSync(join(issued, 'alice.key')))))
  t.equal(statSync(join(issued, 'alice.key')).mode & 0o777, 0o600)
  t.equal(statSync(join(issued, 'alice.p12')).mode & 0o777, 0o600)
  t.ok(existsSync(join(dir, 'certs', `${cert.serialNumber}.pem`)), 'the CA keeps a copy, named by serial as openssl ca does')
  t.match(readFileSync(join(dir, 'index.txt'), 'utf8'), new RegExp(`^V\\t\\d{12}Z\\t\\t${cert.serialNumber}\\t`))
  t.match(openssl('verify', '-purpose', 'sslclient', '-CAfile', join(dir, 'ca.crt'), join(issued, 'alice.crt')), 'OK')

  t.match(p12Info(join(issued, 'alice.p12'), 'pass word $#\\"\''), /MAC: sha1[\s\S]*pbeWithSHA1And3-KeyTripleDES-CBC/)
  const bags = execFileSync('openssl', ['pkcs12', '-in', join(issued, 'alice.p12'), '-nokeys', '-passin', 'env:P12'],
    { env: { ...process.env, P12: 'pass word $#\\"\'' }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  t.match(bags, 'friendlyName: Alice Example')
  t.equal(bags.match(/BEGIN CERTIFICATE/g)?.length, 3, 'the certificate, the intermediate and the root')

  if (hasTool('pk12util')) {
    const nss = join(root, 'nssdb')
    mkdirSync(nss)
    execFileSync('certutil', ['-N', '-d', `sql:${nss}`, '--empty-password'])
    const out = execFileSync('pk12util', ['-i', join(issued, 'alice.p12'), '-d', `sql:${nss}`, '-w', password], { encoding: 'utf8' })
    t.match(out, 'PKCS12 IMPORT SUCCESSFUL', 'NSS (Chrome, Firefox) imports it')
    t.match(execFileSync('certutil', ['-L', '-d', `sql:${nss}`], { encoding: 'utf8' }), /Alice Example\s+u,u,u/, 'with its private key')
  } else {
    console.error('# cli.test.ts: pk12util is missing (apt-get install libnss3-tools): NSS import not checked')
    t.pass('pk12util missing', { skip: 'pk12util missing' })
  }
})

t.test('issue: --json, generated password, AES PKCS#12, RSA, empty subject, --out, --force', async (t) => {
  const dir = join(root, 'pki-json')
  await ok(t, ['ca', '--dir', dir])
  const bob = await json(t, ['issue', 'bob', '--dir', dir, '--p12-format', 'aes', '--key-type', 'rsa-2048', '--days', '10'])
  t.equal(bob.subject, 'CN=bob', 'the name is the default CN')
  t.equal(bob.usage, 'clientAuth')
  t.match(bob.issuer, /^CN=Development Root CA/)
  t.equal(bob.p12Format, 'aes')
  t.match(bob.p12Password, /^[A-Za-z0-9_-]{16}$/, 'a generated password, given once')
  t.equal(bob.chain, join(dir, 'issued', 'bob.chain.pem'))
  t.equal(readFileSync(bob.chain, 'utf8'), readFileSync(bob.certificate, 'utf8'), 'no intermediate: the chain is the certificate')
  t.same(bob.san, { dns: [], email: [], uri: [], ip: [] })
  t.equal(new Date(bob.notAfter).toISOString().slice(0, 10), new Date(Date.now() + 10 * 86_400_000).toISOString().slice(0, 10))
  t.match(p12Info(bob.p12, bob.p12Password), /MAC: sha256[\s\S]*AES-256-CBC/)
  t.equal(new X509Certificate(readFileSync(bob.certificate)).publicKey.asymmetricKeyDetails?.modulusLength, 2048)

  const human = await ok(t, ['issue', 'carol', '--dir', dir, '--p12-format', 'aes'])
  t.match(human.stdout, /PKCS#12 password: [A-Za-z0-9_-]{16} {2}\(generated; --password-file chooses one\)/)
  t.match(human.stdout, '(AES-256, SHA-256 MAC)')

  const out = join(root, 'elsewhere')
  const anonymous = await ok(t, ['issue', 'device-7', '--dir', dir, '--subject', '', '--uri', 'urn:uuid:4b3c3d0e-9a59-4c4c-8f3e-7a2c1e5e4f10', '--out', out])
  t.match(anonymous.stdout, 'Issued (empty subject) by')
  const text = openssl('x509', '-in', join(out, 'device-7.crt'), '-noout', '-text')
  t.match(text, /Subject: *\n/, 'an empty subject')
  t.match(text, /Subject Alternative Name: critical/, 'and then the SAN is critical')
  t.match(execFileSync('openssl', ['pkcs12', '-in', join(out, 'device-7.p12'), '-nokeys', '-passin', 'env:P12'],
    { env: { ...process.env, P12: anonymous.stdout.match(/password: (\S+)/)![1] }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }), 'friendlyName: device-7', 'named after the file without a CN')

  const oldKey = readFileSync(bob.key)
  await fails(t, ['issue', 'bob', '--dir', dir], 1, 'fastify-client-cert: pki-json/issued/bob.key exists: refusing to overwrite a private key (use --force to replace it)')
  t.same(readFileSync(bob.key), oldKey)
  rmSync(bob.key)
  await fails(t, ['issue', 'bob', '--dir', dir], 1, 'bob.p12 exists: refusing')
  const again = await json(t, ['issue', 'bob', '--dir', dir, '--force'])
  t.not(again.serialNumber, bob.serialNumber, 'a new certificate with --force')
  t.equal(statSync(bob.key).mode & 0o777, 0o600)

  // Another process creating the key between the check and the write is caught by the exclusive create.
  const racing = join(dir, 'issued', 'dave.key')
  await fails(t, ['issue', 'dave', '--dir', dir], 1, 'dave.key exists: refusing to overwrite a private key', {
    onStdout: (line) => { if (line.startsWith('Issuing')) writeFileSync(racing, 'theirs') }
  })
  t.equal(readFileSync(racing, 'utf8'), 'theirs')
})

t.test('issue: server certificates', async (t) => {
  const dir = join(root, 'pki-server')
  await ok(t, ['ca', '--dir', dir, '--intermediate'])
  const server = await json(t, ['issue', 'localhost', '--dir', dir, '--server', '--dns', 'localhost', '--ip', '127.0.0.1', '--ip', '::1'])
  t.equal(server.usage, 'serverAuth')
  t.equal(server.p12, null, 'no PKCS#12 for a server')
  t.notOk(existsSync(join(dir, 'issued', 'localhost.p12')))
  t.match(openssl('verify', '-purpose', 'sslserver', '-untrusted', join(dir, 'intermediate.crt'), '-CAfile', join(dir, 'root.crt'), server.certificate), 'OK')
  const chain = readFileSync(server.chain, 'utf8')
  t.equal(chain.match(/BEGIN CERTIFICATE/g)?.length, 2, 'the chain a server presents holds the intermediate')
  t.same(server.san.dns, ['localhost'], 'the name given by --dns is not repeated')
  t.same(server.san.ip, ['127.0.0.1', '::1'])
  const rsa = await json(t, ['issue', 'rsa.example', '--dir', dir, '--server', '--dns', '*.example.org', '--key-type', 'rsa-2048', '--p12'])
  t.same(rsa.san.dns, ['rsa.example', '*.example.org'], 'the name comes first, then --dns')
  t.match(openssl('x509', '-in', rsa.certificate, '-noout', '-ext', 'keyUsage'), 'Digital Signature, Key Encipherment', 'RSA server keys may encipher')
  t.equal(rsa.p12Format, 'compat', '--p12 writes one for a server too')
  t.ok(existsSync(rsa.p12))
  await fails(t, ['issue', 'web_1', '--dir', dir, '--server'], 2, 'with --server the name is the host the certificate is for, and "web_1" is not a DNS name or an IP address')
})

t.test('issue NAME --server: NAME is in the SANs, so a TLS client connecting to that host accepts the certificate', async (t) => {
  const dir = join(root, 'pki-server-name')
  await ok(t, ['ca', '--dir', dir, '--intermediate'])
  const byName = await json(t, ['issue', 'localhost', '--dir', dir, '--server'])
  t.same(byName.san, { dns: ['localhost'], email: [], uri: [], ip: [] }, 'a DNS SAN')
  const byAddress = await json(t, ['issue', '127.0.0.1', '--dir', dir, '--server'])
  t.same(byAddress.san, { dns: [], email: [], uri: [], ip: ['127.0.0.1'] }, 'an IP SAN for an IP address')
  const mixed = await json(t, ['issue', 'Api.Example.org', '--dir', dir, '--server', '--dns', 'api.example.org', '--ip', '10.0.0.1'])
  t.same(mixed.san.dns, ['api.example.org'], 'DNS names compare without case')
  t.same(mixed.san.ip, ['10.0.0.1'])
  const client = await json(t, ['issue', 'localhost-client', '--dir', dir])
  t.same(client.san.dns, [], 'a client certificate gets no SAN from its name')

  // A real handshake: the client checks the host it connects to against the SANs (never the CN).
  const ca = readFileSync(join(dir, 'ca.crt'))
  for (const [issued, host] of [[byName, 'localhost'], [byAddress, '127.0.0.1']]) {
    const server = createServer({ key: readFileSync(issued.key), cert: readFileSync(issued.chain) }, (socket) => socket.end())
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as AddressInfo
    const socket = connect({ host: '127.0.0.1', port, ca, ...(isIP(host) === 0 ? { servername: host } : {}), checkServerIdentity: (_name, cert) => checkServerIdentity(host, cert) })
    const [error] = await Promise.race([once(socket, 'secureConnect').then(() => [null]), once(socket, 'error')])
    t.equal(error, null, `a client connecting to ${host as string} accepts ${issued.name as string}'s certificate`)
    socket.destroy()
    await new Promise((resolve) => server.close(resolve))
  }
})

t.test('issue: bad input', async (t) => {
  const dir = join(root, 'pki-bad')
  await ok(t, ['ca', '--dir', dir, '--days', '400'])
  await fails(t, ['issue', '../alice', '--dir', dir], 2, 'the name "../alice" must be letters, digits and ._@-')
  await fails(t, ['issue', 'a', '--dir', dir, '--email', 'not an address'], 2, '--email not an address is not an e-mail address')
  await fails(t, ['issue', 'a', '--dir', dir, '--email', 'a\u0001b@example.com'], 1, '--email holds a control character')
  await fails(t, ['issue', 'a', '--dir', dir, '--dns', 'bad_name.example'], 2, '--dns bad_name.example is not a DNS name')
  await fails(t, ['issue', 'a', '--dir', dir, '--dns', `${'a'.repeat(60)}.`.repeat(5) + 'org'], 2, 'is not a DNS name')
  await fails(t, ['issue', 'a', '--dir', dir, '--ip', '10.0.0.300'], 2, '--ip 10.0.0.300 is not an IP address')
  await fails(t, ['issue', 'a', '--dir', dir, '--uri', 'no scheme'], 2, '--uri no scheme is not a URI')
  await fails(t, ['issue', 'a', '--dir', dir, '--uri', 'relative/path'], 2, 'is not a URI')
  await fails(t, ['issue', 'a', '--dir', dir, '--spiffe', 'spiffe://Example.org/x'], 2, 'is not a SPIFFE ID')
  await fails(t, ['issue', 'a', '--dir', dir, '--subject', ''], 2, 'a certificate with an empty --subject needs at least one SAN')
  await fails(t, ['issue', 'a', '--dir', dir, '--days', '401'], 1, /--days 401 would outlive the CA, valid until .*: give at most --days (399|400)/)
  await fails(t, ['issue', 'a', '--dir', dir, '--p12-format', 'rc2'], 2, '--p12-format must be one of compat, aes')
  await fails(t, ['issue', 'a', '--dir', dir, '--password-file', join(root, 'missing')], 1, /cannot read the --password-file .*missing: no such file/)
  await fails(t, ['issue', 'a', '--dir', dir, '--password-file', root], 1, 'it is a directory')
  await fails(t, ['issue', 'a', '--dir', dir, '--password-file', join(root, 'plainfile', 'x')], 1, 'ENOTDIR')
  writeFileSync(join(root, 'empty-password'), '\nsecond\n')
  await fails(t, ['issue', 'a', '--dir', dir, '--password-file', join(root, 'empty-password')], 1, 'the first line of the --password-file')
  await fails(t, ['issue', 'a', '--dir', join(root, 'nowhere')], 1, /no CA in .*nowhere \(.*root\.crt is missing\): create one with "fastify-client-cert ca --dir/)
  t.notOk(existsSync(join(dir, 'issued', 'a.key')), 'nothing was issued')

  const broken = join(root, 'pki-broken')
  await ok(t, ['ca', '--dir', broken, '--intermediate'])
  const intermediateCert = readFileSync(join(broken, 'intermediate.crt'))
  const intermediateKey = readFileSync(join(broken, 'intermediate.key'))
  const rootCert = readFileSync(join(broken, 'root.crt'))
  const rootKey = readFileSync(join(broken, 'root.key'))
  writeFileSync(join(broken, 'intermediate.key'), rootKey)
  await fails(t, ['issue', 'a', '--dir', broken], 1, /the CA key .*intermediate\.key does not match the CA certificate .*intermediate\.crt/)
  writeFileSync(join(broken, 'intermediate.key'), 'not a key')
  await fails(t, ['issue', 'a', '--dir', broken], 1, 'intermediate.key is not an unencrypted private key')
  writeFileSync(join(broken, 'intermediate.key'), intermediateKey)
  writeFileSync(join(broken, 'intermediate.crt'), 'not a certificate')
  await fails(t, ['issue', 'a', '--dir', broken], 1, 'intermediate.crt is not a certificate')
  writeFileSync(join(broken, 'intermediate.crt'), readFileSync(join(dir, 'root.crt')))
  writeFileSync(join(broken, 'intermediate.key'), readFileSync(join(dir, 'root.key')))
  await fails(t, ['issue', 'a', '--dir', broken], 1, /intermediate\.crt was not issued by .*root\.crt/)
  writeFileSync(join(broken, 'intermediate.crt'), intermediateCert)
  writeFileSync(join(broken, 'intermediate.key'), intermediateKey)
  const leaf = await json(t, ['issue', 'leaf', '--dir', broken])
  writeFileSync(join(broken, 'root.crt'), readFileSync(leaf.certificate))
  await fails(t, ['issue', 'a', '--dir', broken], 1, 'root.crt is not a CA certificate')
  writeFileSync(join(broken, 'root.crt'), rootCert)
  t.throws(() => loadIssuer(root, broken, Date.parse('2099-01-01')), { message: /the CA certificate .*expired on/ }, 'an expired CA is refused')
  rmSync(join(broken, 'index.txt'))
  await fails(t, ['issue', 'a', '--dir', broken], 1, 'the CA database')
})

t.test('revoke and crl: the plugin and OpenSSL honour the list', async (t) => {
  const dir = join(root, 'pki-revoke')
  await ok(t, ['ca', '--dir', dir, '--intermediate'])
  const alice = await json(t, ['issue', 'alice', '--dir', dir])
  const bob = await json(t, ['issue', 'bob', '--dir', dir])
  const carol = await json(t, ['issue', 'carol', '--dir', dir])
  const nameless = await json(t, ['issue', 'thing', '--dir', dir, '--subject', '', '--dns', 'thing.example'])

  const empty = await ok(t, ['crl', '--dir', dir])
  t.match(empty.stdout, /Wrote .*crl\.pem: 0 revoked certificates, valid until /)
  t.match(empty.stdout, 'the plugin refuses every certificate of this CA once its CRL has expired')

  const serial = (alice.serialNumber as string).toLowerCase().match(/../g)!.join(':')
  const revoked = await ok(t, ['revoke', serial, '--dir', dir, '--reason', 'keyCompromise'])
  t.match(revoked.stdout, `Revoking CN=alice (serial ${alice.serialNumber}), reason: keyCompromise...`)
  t.match(revoked.stdout, '1 revoked certificate, valid until')
  const byFile = await json(t, ['revoke', bob.certificate, '--dir', dir, '--crl-days', '3'])
  t.equal(byFile.serialNumber, bob.serialNumber, 'a certificate file names its serial')
  t.equal(byFile.reason, null)
  t.equal(byFile.crl.revoked, 2)
  t.equal(byFile.crl.crls, 2, "the intermediate's CRL and the root's")
  t.equal(byFile.crl.nextUpdate.slice(0, 10), new Date(Date.now() + 3 * 86_400_000).toISOString().slice(0, 10))
  const anonymous = await ok(t, ['revoke', nameless.serialNumber, '--dir', dir])
  t.match(anonymous.stdout, 'Revoking (empty subject)')

  const crlPem = readFileSync(join(dir, 'crl.pem'))
  const list = RevocationList.from(crlPem, 'crl')
  const intermediate = new X509Certificate(readFileSync(join(dir, 'intermediate.crt')))
  const check = (path: string): string | null => list.check(new X509Certificate(readFileSync(path)), intermediate).error
  t.equal(check(alice.certificate), 'CERT_REVOKED', 'the plugin refuses a revoked certificate')
  t.equal(check(bob.certificate), 'CERT_REVOKED')
  t.equal(check(carol.certificate), null, 'and admits the others')
  const rootCert = new X509Certificate(readFileSync(join(dir, 'root.crt')))
  t.equal(list.check(intermediate, rootCert).error, null, "the root's CRL covers the intermediate")
  // nginx, Apache and HAProxy check every level of the chain (OpenSSL's crl_check_all) once a CRL is set.
  const verify = (path: string): string => {
    try {
      return openssl('verify', '-crl_check_all', '-CAfile', join(dir, 'ca.crt'), '-CRLfile', join(dir, 'crl.pem'), path)
    } catch (error) {
      return String((error as { stdout: string }).stdout) + String((error as { stderr: string }).stderr)
    }
  }
  t.match(verify(alice.certificate), 'certificate revoked')
  t.match(verify(carol.certificate), ': OK')
  t.match(openssl('crl', '-in', join(dir, 'crl.pem'), '-noout', '-text'), 'Key Compromise')

  const out = join(root, 'other-crl.pem')
  const written = await json(t, ['crl', '--dir', dir, '--out', out, '--crl-days', '7'])
  t.equal(written.path, out)
  t.equal(written.revoked, 3)
  t.ok(existsSync(out))

  await fails(t, ['revoke', alice.serialNumber, '--dir', dir], 1, `the certificate with serial ${alice.serialNumber} is already revoked`)
  await fails(t, ['revoke', '0ABCDEF0', '--dir', dir], 1, 'has no record of a certificate with serial 0ABCDEF0')
  await fails(t, ['revoke', 'zz-top', '--dir', dir], 1, '"zz-top" is neither a certificate file nor a serial number in hex')
  await fails(t, ['revoke', password, '--dir', dir], 1, 'password is not a certificate')
  const other = join(root, 'pki-other')
  await ok(t, ['ca', '--dir', other])
  const stranger = await json(t, ['issue', 'stranger', '--dir', other])
  await fails(t, ['revoke', stranger.certificate, '--dir', dir], 1, /stranger\.crt was not issued by the CA in .*pki-revoke/)
  await fails(t, ['revoke', carol.serialNumber, '--dir', dir, '--reason', 'certificateHold'], 2, '--reason must be one of unspecified, keyCompromise')
  await fails(t, ['crl', '--dir', dir, '--crl-days', 'soon'], 2, '--crl-days must be')
  await fails(t, ['crl', '--dir', dir, '--out', join(root, 'plainfile', 'crl.pem')], 1, /cannot write .*plainfile\/crl\.pem/)

  // A root-only CA writes one CRL.
  const rootOnly = await json(t, ['crl', '--dir', other])
  t.equal(rootOnly.crls, 1)
  const single = await json(t, ['revoke', stranger.serialNumber, '--dir', other, '--reason', 'superseded'])
  t.equal(single.reason, 'superseded')
  t.equal(RevocationList.from(readFileSync(join(other, 'crl.pem')), 'crl').check(new X509Certificate(readFileSync(stranger.certificate))).error, 'CERT_REVOKED')

  // A damaged CA directory.
  rmSync(join(dir, 'certs', `${carol.serialNumber}.pem`))
  await fails(t, ['revoke', carol.serialNumber, '--dir', dir], 1, `has no record of a certificate with serial ${carol.serialNumber}`)
  const dave = await json(t, ['issue', 'dave', '--dir', dir])
  writeFileSync(join(dir, 'certs', `${dave.serialNumber}.pem`), 'garbage')
  await fails(t, ['revoke', dave.serialNumber, '--dir', dir], 1, 'fastify-client-cert: unexpected error: ')
  rmSync(join(dir, 'index.txt'))
  await fails(t, ['revoke', dave.serialNumber, '--dir', dir], 1, 'has no record')
})
