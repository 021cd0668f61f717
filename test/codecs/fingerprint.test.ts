import t from 'tap'
import { execFileSync } from 'node:child_process'
import { X509Certificate, createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { normalizeFingerprint256, normalizeSerial } from '../../lib/codecs/fingerprint.js'
import { CertificateParseError } from '../../lib/codecs/parse-error.js'

// Captured for the proxy lab's `alice` certificate: Node's X509Certificate fields and what Caddy forwarded.
const ALICE_FINGERPRINT256 = '3F:6A:D8:73:B3:E9:16:85:22:4A:12:7B:87:86:8A:25:02:DE:7A:EA:0B:59:62:54:B1:F6:62:B6:65:1B:5A:AE'
const ALICE_CADDY_FINGERPRINT = '3f6ad873b3e91685224a127b87868a2502de7aea0b596254b1f662b6651b5aae'

const dir = mkdtempSync(join(tmpdir(), 'fingerprint-test-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const key = join(dir, 'key.pem')
const config = join(dir, 'req.cnf')
execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key])
writeFileSync(config, '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = serial test\n')

function certWithSerial (serial: string): { cert: X509Certificate, opensslSerial: string } {
  const pem = execFileSync('openssl', ['req', '-x509', '-new', '-key', key, '-config', config, '-days', '1', '-set_serial', serial])
  const opensslSerial = execFileSync('openssl', ['x509', '-noout', '-serial'], { input: pem }).toString().trim()
  return { cert: new X509Certificate(pem), opensslSerial: opensslSerial.replace(/^serial=/, '') }
}

t.test('normalizeFingerprint256: every spelling of the captured alice digest', async (t) => {
  const bytes = Buffer.from(ALICE_CADDY_FINGERPRINT, 'hex')
  const spellings = {
    'Node colon-hex': ALICE_FINGERPRINT256,
    'colon-hex, lower case': ALICE_FINGERPRINT256.toLowerCase(),
    'Caddy bare lower-case hex': ALICE_CADDY_FINGERPRINT,
    'bare upper-case hex': ALICE_CADDY_FINGERPRINT.toUpperCase(),
    'base64, padded': bytes.toString('base64'),
    'base64, unpadded': bytes.toString('base64').replace(/=$/, ''),
    'base64url, unpadded': bytes.toString('base64url'),
    'base64url, padded': bytes.toString('base64url') + '='
  }
  t.equal(bytes.toString('base64'), 'P2rYc7PpFoUiShJ7h4aKJQLeeuoLWWJUsfZitmUbWq4=')
  for (const [name, spelling] of Object.entries(spellings)) {
    t.equal(normalizeFingerprint256(spelling), ALICE_FINGERPRINT256, name)
  }
})

t.test('normalizeFingerprint256 agrees with X509Certificate#fingerprint256 on a fresh certificate', async (t) => {
  const { cert } = certWithSerial('1')
  const digest = createHash('sha256').update(cert.raw).digest()
  t.equal(normalizeFingerprint256(digest.toString('hex')), cert.fingerprint256)
  t.equal(normalizeFingerprint256(digest.toString('base64')), cert.fingerprint256)
  t.equal(normalizeFingerprint256(digest.toString('base64url')), cert.fingerprint256)
  t.equal(normalizeFingerprint256(cert.fingerprint256), cert.fingerprint256)
})

t.test('normalizeFingerprint256 refuses wrong lengths, charsets and spellings', async (t) => {
  const bytes = Buffer.from(ALICE_CADDY_FINGERPRINT, 'hex')
  const b64 = bytes.toString('base64') // ends in "q4="
  const bad = {
    empty: '',
    'SHA-1 hex (20 bytes)': '3cc62b3a5d00191fdcdf0291933f0e02d29dee82',
    'SHA-1 colon-hex': '3C:C6:2B:3A:5D:00:19:1F:DC:DF:02:91:93:3F:0E:02:D2:9D:EE:82',
    '31 bytes hex': ALICE_CADDY_FINGERPRINT.slice(2),
    '33 bytes hex': ALICE_CADDY_FINGERPRINT + 'aa',
    '63 hex digits': ALICE_CADDY_FINGERPRINT.slice(1),
    'non-hex digit': 'g' + ALICE_CADDY_FINGERPRINT.slice(1),
    'colons misplaced': '3F6:AD8' + ALICE_FINGERPRINT256.slice(7),
    'some colons missing': ALICE_FINGERPRINT256.replace(':', ''),
    'dashes instead of colons': ALICE_FINGERPRINT256.replaceAll(':', '-'),
    'trailing colon': ALICE_FINGERPRINT256 + ':',
    spaces: ALICE_FINGERPRINT256.replaceAll(':', ' '),
    'surrounding whitespace': ` ${ALICE_CADDY_FINGERPRINT}`,
    'openssl label': 'sha256 Fingerprint=' + ALICE_FINGERPRINT256,
    'base64 of 31 bytes': bytes.subarray(1).toString('base64'),
    'base64 of 33 bytes': Buffer.concat([bytes, Buffer.from([0])]).toString('base64'),
    'base64 with two pad characters': b64 + '=',
    'base64 mixing both alphabets': '+_' + b64.slice(2),
    'base64, non-canonical last character': b64.slice(0, 42) + 'r=',
    'base64url, non-canonical last character': bytes.toString('base64url').slice(0, 42) + 'r'
  }
  t.equal(b64.slice(42), '4=')
  for (const [name, input] of Object.entries(bad)) {
    const err = t.throws(() => normalizeFingerprint256(input), CertificateParseError, name) as Error
    t.notOk(input !== '' && err.message.includes(input), 'message does not echo the input')
  }
})

t.test('normalizeSerial agrees with X509Certificate#serialNumber and openssl -serial', async (t) => {
  const cases: Array<[string, string, string]> = [
    // [openssl -set_serial, decimal spelling (Caddy), Node serialNumber]
    ['0xA1B2C3D4E5F60718', '11651590505119483672', 'A1B2C3D4E5F60718'],
    ['15', '15', '0F'],
    ['255', '255', 'FF'],
    ['256', '256', '0100'],
    ['0x1003', '4099', '1003'],
    ['0x00FF', '255', 'FF'],
    ['0', '0', '0'],
    ['0x8000000000000000000000000000000000000000', (2n ** 159n).toString(), '8000000000000000000000000000000000000000']
  ]
  for (const [setSerial, decimal, expected] of cases) {
    const { cert, opensslSerial } = certWithSerial(setSerial)
    t.equal(cert.serialNumber, expected, `Node prints ${setSerial} as ${expected}`)
    t.equal(normalizeSerial(decimal, 'decimal'), expected, `decimal ${decimal}`)
    t.equal(normalizeSerial(opensslSerial), expected, `openssl -serial ${opensslSerial}`)
    t.equal(normalizeSerial(expected), expected, 'idempotent')
  }
})

t.test('normalizeSerial: hex spellings', async (t) => {
  const cases: Array<[string, string]> = [
    ['A1B2C3D4E5F60718', 'A1B2C3D4E5F60718'],
    ['a1b2c3d4e5f60718', 'A1B2C3D4E5F60718'],
    ['0xa1b2c3d4e5f60718', 'A1B2C3D4E5F60718'],
    ['0XA1B2C3D4E5F60718', 'A1B2C3D4E5F60718'],
    ['00a1b2c3d4e5f60718', 'A1B2C3D4E5F60718'],
    ['00:a1:b2:c3:d4:e5:f6:07:18', 'A1B2C3D4E5F60718'], // openssl x509 -text, with the DER sign byte
    ['A1:B2:C3:D4:E5:F6:07:18', 'A1B2C3D4E5F60718'],
    ['a1 b2 c3 d4 e5 f6 07 18', 'A1B2C3D4E5F60718'],
    ['f', '0F'],
    ['0f', '0F'],
    ['0x0F', '0F'],
    ['000F', '0F'],
    ['100', '0100'],
    ['00', '0'],
    ['0', '0'],
    ['0x0', '0'],
    ['ff'.repeat(32), 'FF'.repeat(32)],
    ['00'.repeat(20) + 'ff'.repeat(32), 'FF'.repeat(32)]
  ]
  for (const [input, expected] of cases) t.equal(normalizeSerial(input), expected, input)
  t.equal(normalizeSerial('0f', 'hex'), '0F', 'explicit hex radix')
})

t.test('normalizeSerial: decimal spellings', async (t) => {
  t.equal(normalizeSerial('11651590505119483672', 'decimal'), 'A1B2C3D4E5F60718')
  t.equal(normalizeSerial('0015', 'decimal'), '0F')
  t.equal(normalizeSerial((2n ** 256n - 1n).toString(), 'decimal'), 'FF'.repeat(32))
})

t.test('normalizeSerial refuses negative, empty, oversized and junk input', async (t) => {
  const badHex = ['', '0x', '-0F', '-05', '+0F', 'xyz', '0F ', ' 0F', '0F:', ':0F', 'a1:b2 c3', 'a1::b2', 'a:b2', 'a1:b2c',
    '0x-1', '0xx1', 'g1', '１２', 'ff'.repeat(33), '01' + 'ff'.repeat(32), '0'.repeat(129)]
  for (const input of badHex) {
    const err = t.throws(() => normalizeSerial(input), CertificateParseError, JSON.stringify(input)) as Error
    t.notOk(input.length > 1 && err.message.includes(input), 'message does not echo the input')
  }
  const badDecimal = ['', '-15', '+15', '15.0', '1e3', '0x0F', 'ff', ' 15', '15 ', '１５', (2n ** 256n).toString(),
    '1'.repeat(129)]
  for (const input of badDecimal) {
    t.throws(() => normalizeSerial(input, 'decimal'), CertificateParseError, `decimal ${JSON.stringify(input)}`)
  }
  t.throws(() => normalizeSerial('0F', 'octal' as 'hex'), CertificateParseError, 'unknown radix')
})
