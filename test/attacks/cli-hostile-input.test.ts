// A certificate or header handed to the CLI by an attacker: `inspect` runs on what a user was sent (a
// certificate, a PKCS#12, a header dump from a log), so its input is the attacker's. It must not let that
// input drive the terminal, hang, or take quadratic time.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { identityFromCertificate } from '../../lib/identity.js'
import { cliRunner } from '../helpers/cli.js'

const root = mkdtempSync(join(tmpdir(), 'fastify-client-cert-cli-hostile-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))

const run = cliRunner(root)

function openssl (...args: string[]): void {
  execFileSync('openssl', args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
}

// Terminal controls, except the line feeds that end the CLI's own lines.
// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]/u

// A CN that erases its line, moves up and repaints the "verified" row; CSI as one C1 character; a right-to-left
// override; a line separator. The SANs carry ESC, the UTF-8 bytes of CSI (read back as latin1) and DEL.
const CN = 'alice\x1b[2K\r\x1b[1A  verified        yes \u009b31m\u202eevil\u2028end'
const ESCAPED_CN = 'alice\\x1b[2K\\x0d\\x1b[1A  verified        yes \\x9b31m\\u202eevil\\u2028end'

function hostileCertificate (): string {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-noenc', '-keyout', 'hostile.key', '-out', 'hostile.crt',
    '-days', '2', '-utf8', '-subj', `/O=Example/CN=${CN}`,
    '-addext', 'subjectAltName=DNS:a\x1b[31m.example,URI:https://x.example/\u009b2J,email:e\x7f@x.example',
    '-addext', 'extendedKeyUsage=clientAuth')
  return join(root, 'hostile.crt')
}

const hostile = hostileCertificate()

t.test('a CN and SANs with ANSI, C1 and bidi characters reach the terminal escaped', async (t) => {
  const result = await run(['inspect', hostile])
  t.equal(result.code, 0, result.stderr)
  t.notMatch(result.stdout, RAW_CONTROL, 'no raw control, bidi or separator character')
  t.match(result.stdout, `  commonName      ${ESCAPED_CN}\n`)
  t.match(result.stdout, '  subject         CN=alice\\1B[2K\\0D\\1B[1A  verified        yes \\x9b31m\\u202eevil\\u2028end,O=Example\n',
    'the DN codec escapes C0 as RFC 4514 hex; the CLI escapes the rest')
  t.match(result.stdout, '  DNS SANs        a\\x1b[31m.example\n')
  t.match(result.stdout, '  URI SANs        https://x.example/\u00c2\\x9b2J\n', 'the UTF-8 bytes of CSI, read as latin1: Â and a C1 control')
  t.match(result.stdout, '  email SANs      e\\x7f@x.example\n')
  t.equal(result.stdout.split('\n').filter((line) => /^ {2}verified /.test(line)).length, 1, 'a single verified row')
})

t.test('a hostile certificate in --json output stays exact JSON without raw C1, bidi or separators', async (t) => {
  const result = await run(['inspect', hostile, '--json'])
  t.equal(result.code, 0, result.stderr)
  t.notMatch(result.stdout, RAW_CONTROL)
  t.match(result.stdout, '\\u009b31m\\u202eevil\\u2028end')
  const identity = identityFromCertificate(readFileSync(hostile))
  t.equal(identity.commonName, CN)
  t.same(JSON.parse(result.stdout), JSON.parse(JSON.stringify({ ...identity, certificate: identity.certificate?.toString() ?? null })),
    'what a script parses is unchanged')
})

t.test('forwarded headers that quote attacker text reach the terminal escaped', async (t) => {
  const pem = readFileSync(hostile, 'utf8')
  const status = 'FAILED:\x1b[32mok\u009b0m\u202e'
  const result = await run(['inspect', '-', '--preset', 'nginx', '--header', `X-SSL-Client-Verify: ${status}`], { stdin: encodeURIComponent(pem) })
  t.equal(result.code, 3, 'exit 3: the proxy says the certificate did not verify')
  t.notMatch(result.stdout, RAW_CONTROL)
  t.match(result.stdout, '  verified        no: \\x1b[32mok\\x9b0m\\u202e\n', "the proxy's words, escaped")
  t.match(result.stdout, `  commonName      ${ESCAPED_CN}\n`)

  const refused = await run(['inspect', '-', '--preset', 'nginx', '--header', 'X\x1b]0;owned\x07\u009b2J'], { stdin: encodeURIComponent(pem) })
  t.equal(refused.code, 1)
  t.notMatch(refused.stderr, RAW_CONTROL)
  t.equal(refused.stderr, 'fastify-client-cert: --header X\\x1b]0;owned\\x07\\x9b2J is not a "Name: value" header\n', 'an error quoting input')
})

/** A minimal DER TLV reader and writer, enough to rewrite the MacData of a PFX. */
function tlvAt (der: Buffer, at: number): { end: number, content: number } {
  let length = der[at + 1]
  let content = at + 2
  if (length > 0x80) {
    const bytes = length - 0x80
    length = der.readUIntBE(content, bytes)
    content += bytes
  }
  return { content, end: content + length }
}

function children (der: Buffer, tlv: { content: number, end: number }): Buffer[] {
  const out: Buffer[] = []
  for (let at = tlv.content; at < tlv.end;) {
    const child = tlvAt(der, at)
    out.push(der.subarray(at, child.end))
    at = child.end
  }
  return out
}

function sequence (parts: Buffer[]): Buffer {
  const content = Buffer.concat(parts)
  const length = content.length < 0x80
    ? Buffer.from([content.length])
    : content.length < 0x100 ? Buffer.from([0x81, content.length]) : Buffer.from([0x82, content.length >> 8, content.length & 0xff])
  return Buffer.concat([Buffer.from([0x30]), length, content])
}

t.test('a PKCS#12 whose MAC iteration count is 2^31-1 ends with the timeout error', async (t) => {
  writeFileSync(join(root, 'password'), 'secret\n')
  // Made with a small count (a huge -iter would hang the export itself), then the MacData's count is rewritten.
  openssl('pkcs12', '-export', '-in', 'hostile.crt', '-inkey', 'hostile.key', '-passout', 'pass:secret', '-macalg', 'sha1', '-iter', '2048',
    '-out', 'small.p12')
  const der = readFileSync(join(root, 'small.p12'))
  const [version, authSafe, macData] = children(der, tlvAt(der, 0))
  const [digest, salt, iterations] = children(macData, tlvAt(macData, 0))
  t.same([...iterations], [0x02, 0x02, 0x08, 0x00], 'the MAC iteration count was 2048')
  const huge = sequence([version, authSafe, sequence([digest, salt, Buffer.from([0x02, 0x04, 0x7f, 0xff, 0xff, 0xff])])])
  writeFileSync(join(root, 'huge.p12'), huge)

  const result = await run(['inspect', 'huge.p12', '--password-file', 'password'], { env: { FASTIFY_CLIENT_CERT_OPENSSL_TIMEOUT: '1' } })
  t.equal(result.code, 1)
  t.equal(result.stdout, '')
  t.match(result.stderr, /^fastify-client-cert: openssl pkcs12 did not finish within 1 s and was stopped: /)
  t.match(result.stderr, 'FASTIFY_CLIENT_CERT_OPENSSL_TIMEOUT sets the limit in seconds')
})

t.test('a header dump with a 1 MB line of blanks, and a million blank lines, is parsed', async (t) => {
  const pem = readFileSync(hostile, 'utf8')
  const blanks = ' \t'.repeat(1 << 19)
  // Before, a lazy value followed by optional blanks, and blanks anchored at the end, backtracked on every one.
  const dump = `X-SSL-Client-Cert: ${encodeURIComponent(pem)}\r\nUser-Agent: a${blanks}b${blanks}\r\n${'\n'.repeat(1 << 20)}` +
    `X-SSL-Client-Verify:${blanks}SUCCESS${blanks}\n\n`
  const result = await run(['inspect', '-', '--preset', 'nginx', '--json'], { stdin: dump })
  t.equal(result.code, 0, result.stderr)
  const identity = identityFromCertificate(pem, { source: 'proxy', proxy: 'nginx', verified: true })
  t.same(JSON.parse(result.stdout), JSON.parse(JSON.stringify({ ...identity, certificate: identity.certificate?.toString() ?? null })),
    'the verify status is read without its blanks')

  const extra = await run(['inspect', '-', '--preset', 'nginx', '--header', 'X-SSL-Client-Verify: SUCCESS', '--header', `Via: a${blanks}b${blanks}`, '--json'],
    { stdin: encodeURIComponent(pem) })
  t.equal(extra.code, 0, extra.stderr)
  t.equal(JSON.parse(extra.stdout).verified, true, 'a 1 MB --header')
})
