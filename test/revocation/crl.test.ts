import t from 'tap'
import type { Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { X509Certificate, constants, createPrivateKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { RevocationList, certificatesOf } from '../../lib/revocation/crl.js'
import { bigCrl, crlPem, subjectName } from '../helpers/crl.js'
import { ClientCertInvalidOptionError } from '../../lib/errors.js'

// Everything is generated here, by the openssl CLI where it can say it, and by a small DER builder
// for the shapes openssl will not produce (indirect entries, v1 lists, mixed string types, broken input).

const root = t.testdir({})

const CA_CONFIG = `
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = .
database = ./index.txt
new_certs_dir = ./newcerts
certificate = ./ca.pem
private_key = ./ca.key
default_md = default
default_crl_days = 30
crlnumber = ./crlnumber
[ idp_user ]
issuingDistributionPoint = critical, @idp_user_section
[ idp_user_section ]
fullname = URI:http://example.test/ca.crl
onlyuser = TRUE
[ idp_ca ]
issuingDistributionPoint = critical, @idp_ca_section
[ idp_ca_section ]
onlyCA = TRUE
[ delta ]
deltaCRL = critical, DER:02:01:01
[ critical_unknown ]
1.3.6.1.4.1.55555.1 = critical, ASN1:NULL
[ noncritical_unknown ]
1.3.6.1.4.1.55555.1 = ASN1:NULL
`

function openssl (cwd: string, ...args: string[]): string {
  return execFileSync('openssl', args, { cwd, encoding: 'latin1', stdio: ['ignore', 'pipe', 'pipe'] })
}

interface CA {
  readonly dir: string
  readonly cert: X509Certificate
  readonly key: KeyObject
  issue (serial: string, cn: string): X509Certificate
  revoke (cert: X509Certificate, ...args: string[]): void
  crl (...args: string[]): string
}

function makeCA (id: string, subject: string, ...keyArgs: string[]): CA {
  const dir = join(root, id)
  mkdirSync(join(dir, 'newcerts'), { recursive: true })
  writeFileSync(join(dir, 'index.txt'), '')
  writeFileSync(join(dir, 'crlnumber'), '01\n')
  writeFileSync(join(dir, 'ca.cnf'), CA_CONFIG)
  openssl(dir, 'req', '-x509', ...keyArgs, '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', subject, '-days', '30')
  openssl(dir, 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'leaf.key')
  let n = 0
  return {
    dir,
    cert: new X509Certificate(readFileSync(join(dir, 'ca.pem'))),
    key: createPrivateKey(readFileSync(join(dir, 'ca.key'))),
    issue (serial, cn) {
      const file = `leaf${n++}.pem`
      openssl(dir, 'req', '-new', '-key', 'leaf.key', '-subj', `/CN=${cn}`, '-x509', '-CA', 'ca.pem', '-CAkey', 'ca.key',
        '-set_serial', serial, '-days', '5', '-out', file)
      return new X509Certificate(readFileSync(join(dir, file)))
    },
    revoke (cert, ...args) {
      const file = `revoke${n++}.pem`
      writeFileSync(join(dir, file), cert.toString())
      openssl(dir, 'ca', '-config', 'ca.cnf', '-revoke', file, ...args)
    },
    crl (...args) {
      const file = `crl${n++}.pem`
      openssl(dir, 'ca', '-config', 'ca.cnf', '-gencrl', '-out', file, ...args)
      return readFileSync(join(dir, file), 'latin1')
    },
  }
}

function toDer (pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, ''), 'base64')
}

const OK = { revoked: false, error: null }
const REVOKED = { revoked: true, error: 'CERT_REVOKED' }
const EXPIRED = { revoked: false, error: 'CRL_HAS_EXPIRED' }
const UNKNOWN = { revoked: false, error: 'UNABLE_TO_GET_CRL' }
const BAD_SIGNATURE = { revoked: false, error: 'CRL_SIGNATURE_FAILURE' }
const HOUR = 3_600_000

const EC_ARGS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']
const caA = makeCA('a', '/C=US/O=Example/CN=Test CA', ...EC_ARGS)
const good = caA.issue('0x1001', 'good')
const high = caA.issue('0x80FF', 'high')
const zero = caA.issue('0', 'zero')
const negative = caA.issue('-5', 'negative')
const emptyA = caA.crl()
const shortA = caA.crl('-crlhours', '1')
caA.revoke(high, '-crl_reason', 'keyCompromise')
caA.revoke(zero)
caA.revoke(negative)
const crlA = caA.crl()
const crlA384 = caA.crl('-md', 'sha384')
const shortRevokedA = caA.crl('-crlhours', '1')
const generalizedA = caA.crl('-crl_nextupdate', '20510101000000Z')

const caB = makeCA('b', '/CN=RSA CA', '-newkey', 'rsa:2048')
const leafB = caB.issue('0x42', 'leaf b')
caB.revoke(leafB)
const crlB = caB.crl('-md', 'sha512')
const pssB = caB.crl('-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32')

const impostor = makeCA('impostor', '/C=US/O=Example/CN=Test CA', ...EC_ARGS)
const impostorCrl = impostor.crl()

const caEd = makeCA('ed', '/CN=Ed CA', '-newkey', 'ed25519')
const leafEd = caEd.issue('0x77', 'leaf ed')
caEd.revoke(leafEd)
const crlEd = caEd.crl()

const caC = makeCA('c', '/CN=No CRL CA', ...EC_ARGS)
const leafC = caC.issue('0x80FF', 'leaf c')

t.test('a PEM CRL: listed serials are revoked, others not', async (t) => {
  const list = RevocationList.from(crlA, 'crl')
  t.equal(list.size, 1)
  t.same(list.check(good), OK)
  t.same(list.check(high), REVOKED)
  t.same(list.check(zero), REVOKED)
  t.same(list.check(negative), REVOKED)
  t.same(list.check(high, caA.cert), REVOKED, 'signature verifies with the issuer')
  t.same(list.check(good, caA.cert), OK)
  t.same(list.check(high, caA.cert), REVOKED, 'and the verdict is remembered')
  t.ok(Object.isFrozen(list))
})

t.test('serial numbers are matched in X509Certificate#serialNumber form', async (t) => {
  t.equal(high.serialNumber, '80FF')
  t.ok(toDer(crlA).includes(Buffer.from('02030080ff', 'hex')), 'the CRL encodes 0x80FF with a sign byte')
  t.equal(zero.serialNumber, '0')
  t.equal(negative.serialNumber, '-05')
  const list = RevocationList.from(crlA, 'crl')
  t.same(list.check(high), REVOKED)
  t.same(list.check(caA.issue('0x80', 'sign byte only')), OK, '0x80 is not 0x80FF')
  t.same(list.check(caA.issue('5', 'positive five')), OK, '5 is not -5')
})

t.test('DER input, Uint8Array input, and PEM text around blocks', async (t) => {
  const der = toDer(crlA)
  t.same(RevocationList.from(der, 'crl').check(high), REVOKED)
  t.same(RevocationList.from(new Uint8Array(der), 'crl').check(high, caA.cert), REVOKED)
  writeFileSync(join(caA.dir, 'text.pem'), crlA)
  const withText = openssl(caA.dir, 'crl', '-in', 'text.pem', '-text')
  t.match(withText, /^Certificate Revocation List/)
  t.same(RevocationList.from(Buffer.from(withText), 'crl').check(high), REVOKED)
})

t.test('the list does not change when the caller reuses its Buffer', async (t) => {
  const der = toDer(crlA)
  const list = RevocationList.from(der, 'crl')
  der.fill(0)
  t.same(list.check(high, caA.cert), REVOKED)
})

t.test('several CRLs in one PEM string or an array; each applies to its own issuer', async (t) => {
  for (const list of [
    RevocationList.from(crlA + '\n' + crlB, 'crl'),
    RevocationList.from([crlA, toDer(crlB)], 'crl'),
  ]) {
    t.equal(list.size, 2)
    t.same(list.check(high), REVOKED)
    t.same(list.check(good), OK)
    t.same(list.check(leafB, caB.cert), REVOKED)
    t.same(list.check(leafC, caC.cert), OK, 'an issuer without a CRL is not checked, even with a listed serial')
  }
  t.same(RevocationList.from(crlB, 'crl').check(high), OK, 'another issuer\'s CRL does not affect')
})

t.test('an empty list of CRLs, and a CRL with no revoked entries', async (t) => {
  const none = RevocationList.from([], 'crl')
  t.equal(none.size, 0)
  t.same(none.check(high), OK)
  const empty = RevocationList.from(emptyA, 'crl')
  t.equal(empty.size, 1)
  t.same(empty.check(high, caA.cert), OK)
})

t.test('an expired CRL fails closed; a listed serial stays revoked', async (t) => {
  const list = RevocationList.from(shortA, 'crl')
  t.same(list.check(good, null, Date.now()), OK)
  t.same(list.check(good, null, Date.now() + 2 * HOUR), EXPIRED)
  t.same(list.check(high, caA.cert, Date.now() + 2 * HOUR), EXPIRED, 'the expired CRL predates the revocation')
  const revoked = RevocationList.from(shortRevokedA, 'crl')
  t.same(revoked.check(high, null, Date.now() + 2 * HOUR), REVOKED)
  t.same(revoked.check(good, caA.cert, Date.now() + 2 * HOUR), EXPIRED)
  const overlap = RevocationList.from([shortA, crlA], 'crl')
  t.same(overlap.check(good, null, Date.now() + 2 * HOUR), OK, 'one current CRL of the issuer suffices')
  t.same(overlap.check(high, null, Date.now() + 2 * HOUR), REVOKED)
})

t.test('GeneralizedTime nextUpdate (2050 and later)', async (t) => {
  const list = RevocationList.from(generalizedA, 'crl')
  t.same(list.check(good, caA.cert, Date.UTC(2050, 11, 31)), OK)
  t.same(list.check(good, caA.cert, Date.UTC(2051, 0, 1, 0, 0, 1)), EXPIRED)
})

t.test('UTCTime years: 50 to 99 are 19xx, 00 to 49 are 20xx', async (t) => {
  const old = RevocationList.from(buildCrl({ thisUpdate: time('990101000000Z'), nextUpdate: time('991231235959Z') }), 'crl')
  t.same(old.check(good, caA.cert, Date.UTC(1999, 11, 31, 23, 59, 59)), OK)
  t.same(old.check(good, caA.cert, Date.UTC(1999, 11, 31, 23, 59, 59) + 1), EXPIRED)
  const late = RevocationList.from(buildCrl({ nextUpdate: time('491231235959Z') }), 'crl')
  t.same(late.check(good, caA.cert, Date.UTC(2049, 11, 31)), OK)
  t.same(late.check(good, caA.cert, Date.UTC(2050, 0, 1)), EXPIRED)
})

t.test('signatures: the issuer\'s key must have signed the CRL', async (t) => {
  const forged = RevocationList.from(impostorCrl, 'crl')
  t.same(forged.check(high, caA.cert), BAD_SIGNATURE)
  t.same(forged.check(high), OK, 'without the issuer, the CRL is trusted as configured')
  const both = RevocationList.from([impostorCrl, crlA], 'crl')
  t.same(both.check(high, caA.cert), REVOKED, 'only the CRL the issuer signed counts')
  t.same(both.check(good, caA.cert), OK)
  t.same(both.check(high, impostor.cert), OK, 'a different issuer certificate picks the other list')
  t.same(RevocationList.from(crlA, 'crl').check(high, caB.cert), BAD_SIGNATURE, 'RSA key, ECDSA signature')
  t.same(RevocationList.from(crlA, 'crl').check(high, caEd.cert), BAD_SIGNATURE, 'Ed25519 key, ECDSA signature')
  t.same(RevocationList.from(crlA384, 'crl').check(high, caA.cert), REVOKED, 'ECDSA with SHA-384')
  t.same(RevocationList.from(crlB, 'crl').check(leafB, caB.cert), REVOKED, 'RSA PKCS#1 v1.5 with SHA-512')
  t.same(RevocationList.from(pssB, 'crl').check(leafB, caB.cert), REVOKED, 'RSA-PSS')
  t.same(RevocationList.from(crlEd, 'crl').check(leafEd, caEd.cert), REVOKED, 'Ed25519')
})

t.test('verdicts are remembered for a bounded number of issuer certificates', async (t) => {
  const list = RevocationList.from(crlA, 'crl')
  for (let i = 0; i < 20; i++) {
    const other = crafted(A_NAME, (0x7000 + i).toString(16))
    t.same(list.check(high, other), BAD_SIGNATURE)
  }
  t.same(list.check(high, caA.cert), REVOKED, 'verified afresh once the memory is full')
  t.same(list.check(good, caA.cert), OK)
})

t.test('extensions openssl writes: reason codes, distribution points', async (t) => {
  t.same(RevocationList.from(caA.crl('-crlexts', 'idp_user'), 'crl').check(high, caA.cert), REVOKED)
  t.same(RevocationList.from(caA.crl('-crlexts', 'noncritical_unknown'), 'crl').check(high), REVOKED)
  refuses(t, caA.crl('-crlexts', 'idp_ca'), 'crl', /covers only some certificates/)
  refuses(t, caA.crl('-crlexts', 'delta'), 'crl', /delta CRLs are not supported/)
  refuses(t, caA.crl('-crlexts', 'critical_unknown'), 'crl', /unsupported critical extension/)
})

function refuses (t: Test, input: unknown, path: string, reason: RegExp): void {
  try {
    RevocationList.from(input as string, 'crl')
    t.fail('accepted')
  } catch (err) {
    t.ok(err instanceof ClientCertInvalidOptionError, 'ClientCertInvalidOptionError')
    t.equal((err as { code: string }).code, 'FST_CLIENT_CERT_INVALID_OPTION')
    const message = (err as Error).message
    t.ok(message.startsWith(`Invalid fastify-client-cert option ${path}: `), message)
    t.match(message, reason)
  }
}

// A DER builder for what openssl will not write.
function tlv (tag: number, ...parts: Buffer[]): Buffer {
  const content = Buffer.concat(parts)
  const n = content.length
  const length = n < 0x80
    ? [n]
    : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff]
  return Buffer.concat([Buffer.from([tag, ...length]), content])
}
function oid (dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number)
  const bytes = [40 * a + b]
  for (const arc of rest) {
    const group = [arc & 0x7f]
    for (let v = arc >> 7; v > 0; v >>= 7) group.unshift((v & 0x7f) | 0x80)
    bytes.push(...group)
  }
  return tlv(0x06, Buffer.from(bytes))
}
const seq = (...parts: Buffer[]): Buffer => tlv(0x30, ...parts)
const int = (hex: string): Buffer => tlv(0x02, Buffer.from(hex, 'hex'))
const str = (tag: number, value: string | Buffer): Buffer => tlv(tag, typeof value === 'string' ? Buffer.from(value, 'latin1') : value)
const utf8 = (value: string): Buffer => tlv(0x0c, Buffer.from(value, 'utf8'))
const time = (value: string): Buffer => tlv(value.length === 13 ? 0x17 : 0x18, Buffer.from(value))
const rdn = (...avas: Array<[string, Buffer]>): Buffer => tlv(0x31, ...avas.map(([type, value]) => seq(oid(type), value)))
const ext = (id: string, critical: boolean, value: Buffer): Buffer =>
  seq(oid(id), ...(critical ? [tlv(0x01, Buffer.from([0xff]))] : []), tlv(0x04, value))
const entry = (serial: string, ...exts: Buffer[]): Buffer =>
  seq(int(serial), time('260101000000Z'), ...(exts.length > 0 ? [seq(...exts)] : []))

const C = '2.5.4.6'
const O = '2.5.4.10'
const OU = '2.5.4.11'
const CN = '2.5.4.3'
const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'))
const A_NAME = seq(rdn([C, str(0x13, 'US')]), rdn([O, utf8('Example')]), rdn([CN, utf8('Test CA')]))

interface CrlSpec {
  issuer?: Buffer
  version?: Buffer | null
  algorithm?: Buffer
  innerAlgorithm?: Buffer
  thisUpdate?: Buffer
  nextUpdate?: Buffer | null
  entries?: Buffer[]
  extensions?: Buffer[]
  signer?: (tbs: Buffer) => Buffer
  signatureValue?: Buffer
}

function buildCrl (spec: CrlSpec = {}): Buffer {
  const algorithm = spec.algorithm ?? ECDSA_SHA256
  const fields = [
    spec.version === undefined ? int('01') : spec.version,
    spec.innerAlgorithm ?? algorithm,
    spec.issuer ?? A_NAME,
    spec.thisUpdate ?? time('260101000000Z'),
    spec.nextUpdate === undefined ? time('491231000000Z') : spec.nextUpdate,
    spec.entries === undefined ? null : seq(...spec.entries),
    spec.extensions === undefined ? null : tlv(0xa0, seq(...spec.extensions)),
  ].filter((field): field is Buffer => field !== null)
  const tbs = seq(...fields)
  const signer = spec.signer ?? ((data: Buffer) => sign('sha256', data, caA.key))
  return seq(tbs, algorithm, spec.signatureValue ?? tlv(0x03, Buffer.from([0]), signer(tbs)))
}

/** A certificate Node accepts, with any issuer name; signed by caA's key, which Node does not check. */
function crafted (issuer: Buffer, serial = '01', subject = seq(rdn([CN, utf8('crafted')]))): X509Certificate {
  const spki = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' })
  const tbs = seq(tlv(0xa0, int('02')), int(serial), ECDSA_SHA256, issuer,
    seq(time('260101000000Z'), time('491231000000Z')), subject, spki)
  return new X509Certificate(seq(tbs, ECDSA_SHA256, tlv(0x03, Buffer.from([0]), sign('sha256', tbs, caA.key))))
}

t.test('the DER builder writes CRLs openssl reads', async (t) => {
  const file = join(root, 'built.der')
  writeFileSync(file, buildCrl({ entries: [entry('1001')] }))
  const text = openssl(root, 'crl', '-inform', 'DER', '-in', file, '-noout', '-text')
  t.match(text, /Serial Number: 1001/)
  t.match(text, /Issuer: C = US, O = Example, CN = Test CA/)
})

t.test('v1 CRL: no version, no nextUpdate, no extensions; it never expires', async (t) => {
  const list = RevocationList.from(buildCrl({ version: null, nextUpdate: null, entries: [entry('1001')] }), 'crl')
  t.same(list.check(good, caA.cert, Date.UTC(3000, 0)), REVOKED)
  t.same(list.check(high, caA.cert, Date.UTC(3000, 0)), OK)
})

t.test('issuer names compare as OpenSSL does: string type, ASCII case and spaces do not matter', async (t) => {
  const bmp = Buffer.from('EXAMPLE', 'utf16le').swap16()
  const universal = Buffer.alloc(4 * 11)
  Array.from('  test  CA ').forEach((ch, i) => universal.writeUInt32BE(ch.codePointAt(0) as number, 4 * i))
  const issuer = seq(rdn([C, str(0x13, 'us')]), rdn([O, str(0x1e, bmp)]), rdn([CN, str(0x1c, universal)]))
  const list = RevocationList.from(buildCrl({ issuer, entries: [entry('0080FF')] }), 'crl')
  t.same(list.check(high, caA.cert), REVOKED, 'the certificate\'s issuer is encoded differently, and matches')
  t.same(list.check(good, caA.cert), OK)
  t.same(list.check(crafted(seq(rdn([C, str(0x13, 'US')]), rdn([O, utf8('Example')]), rdn([CN, utf8('Test  CB')])), '0080FF')), OK,
    'a different value does not match')
  t.same(list.check(crafted(seq(rdn([C, str(0x13, 'US')]), rdn([O, utf8('Example')])), '0080FF')), OK,
    'fewer RDNs do not match')
  t.same(list.check(crafted(seq(rdn([C, str(0x13, 'US')]), rdn([OU, utf8('Example')]), rdn([CN, utf8('Test CA')])), '0080FF')), OK,
    'another attribute type does not match')
  t.same(list.check(crafted(issuer, '0080FF')), REVOKED, 'a byte-equal issuer matches')
  t.same(list.check(crafted(issuer, '0080FF')), REVOKED)
})

t.test('multi-valued RDNs match in any order; other string types and non-string values', async (t) => {
  const ias = (...order: Array<[string, Buffer]>): Buffer => seq(rdn(...order), rdn([CN, str(0x14, 'Teletex \xe9')]))
  const issuer = ias([O, str(0x16, 'IA5')], [OU, str(0x13, 'Visible')], ['2.5.4.5', str(0x12, '123')])
  const list = RevocationList.from(buildCrl({ issuer, entries: [entry('01')] }), 'crl')
  t.same(list.check(crafted(ias(['2.5.4.5', str(0x12, '123')], [OU, str(0x13, 'visible')], [O, utf8('ia5')]))), REVOKED)
  t.same(list.check(crafted(ias([O, str(0x16, 'IA5')], [OU, str(0x13, 'Visible')], ['2.5.4.5', str(0x13, '123')]))), OK,
    'a NumericString is compared as its DER, not as text')
  t.same(list.check(crafted(seq(rdn([O, utf8('IA5')], [OU, utf8('Visible')]), rdn(['2.5.4.5', str(0x12, '123')]),
    rdn([CN, utf8('Teletex é')])))), OK, 'the same attributes split into other RDNs do not match')
})

t.test('a certificate whose issuer name cannot be read fails closed while CRLs are loaded', async (t) => {
  // OpenSSL accepts an empty RDN, which X.501 forbids; the reader refuses to guess what it equals.
  const broken = crafted(seq(rdn([CN, utf8('Test CA')]), tlv(0x31)))
  t.same(RevocationList.from(crlA, 'crl').check(broken), UNKNOWN)
  t.same(RevocationList.from([], 'crl').check(broken), OK, 'no CRLs, nothing to look up')
})

t.test('RSA-PSS parameters', async (t) => {
  const rsa = caB.key
  const pss = (...params: Buffer[]): Buffer => seq(oid('1.2.840.113549.1.1.10'), seq(...params))
  const hash = (name: string): Buffer => seq(oid(name))
  const SHA256 = '2.16.840.1.101.3.4.2.1'
  const MGF1 = '1.2.840.113549.1.1.8'
  const pssSigner = (digest: string, saltLength: number) => (tbs: Buffer) =>
    sign(digest, tbs, { key: rsa, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength })
  const issuer = seq(rdn([CN, utf8('RSA CA')]))
  const defaults = buildCrl({ issuer, algorithm: pss(), entries: [entry('42')], signer: pssSigner('sha1', 20) })
  t.same(RevocationList.from(defaults, 'crl').check(leafB, caB.cert), REVOKED, 'SHA-1, MGF1-SHA-1, salt 20 by default')
  const explicit = pss(tlv(0xa0, hash(SHA256)), tlv(0xa1, seq(oid(MGF1), hash(SHA256))), tlv(0xa2, int('40')), tlv(0xa3, int('01')))
  const crl = buildCrl({ issuer, algorithm: explicit, entries: [entry('42')], signer: pssSigner('sha256', 64) })
  t.same(RevocationList.from(crl, 'crl').check(leafB, caB.cert), REVOKED, 'every field given')
  t.same(RevocationList.from(buildCrl({ issuer, algorithm: explicit, entries: [entry('42')], signer: pssSigner('sha256', 32) }), 'crl')
    .check(leafB, caB.cert), BAD_SIGNATURE, 'another salt length does not verify')

  const refusesPss = (algorithm: Buffer, reason: RegExp): void => refuses(t, buildCrl({ issuer, algorithm, signer: pssSigner('sha256', 32) }), 'crl', reason)
  refusesPss(pss(tlv(0xa0, hash('1.2.840.113549.2.5'))), /RSA-PSS hash is not supported/)
  refusesPss(pss(tlv(0xa0, hash(SHA256))), /mask generation hash differs/)
  refusesPss(pss(tlv(0xa1, seq(oid('1.2.3.4'), hash(SHA256)))), /mask generation is not supported/)
  refusesPss(pss(tlv(0xa2, int('010000'))), /salt length is out of range/)
  refusesPss(pss(tlv(0xa2, int('80'))), /salt length is out of range/)
  refusesPss(pss(tlv(0xa2, tlv(0x02))), /salt length is out of range/)
  refusesPss(pss(tlv(0xa2, int('20'), int('20'))), /RSA-PSS salt length has unexpected trailing data/)
  refusesPss(pss(tlv(0xa3, int('02'))), /trailer field is not supported/)
  refusesPss(pss(tlv(0xa3, int('01')), int('00')), /RSA-PSS parameters has unexpected trailing data/)
  refusesPss(seq(oid('1.2.840.113549.1.1.10'), seq(), tlv(0x05)), /signature algorithm has unexpected trailing data/)
})

t.test('refused at load: input that is not a complete, supported CRL', async (t) => {
  const der = toDer(crlA)
  refuses(t, 42, 'crl', /must be PEM text, a DER Buffer, or an array of them/)
  refuses(t, [crlA, 42], 'crl[1]', /must be PEM text or a DER Buffer/)
  refuses(t, 'hello', 'crl', /no X509 CRL PEM block found/)
  refuses(t, Buffer.from('hello'), 'crl', /no X509 CRL PEM block found/)
  refuses(t, Buffer.alloc(0), 'crl', /no X509 CRL PEM block found/)
  refuses(t, caA.cert.toString(), 'crl', /a PEM block is not an X509 CRL/)
  refuses(t, '-----BEGIN X509 CRL', 'crl', /a PEM block is not an X509 CRL/)
  refuses(t, '-----BEGIN X509 CRL-----\nAAAA\n', 'crl', /no END X509 CRL line/)
  refuses(t, '-----BEGIN X509 CRL-----\nAA!A\n-----END X509 CRL-----\n', 'crl', /not valid base64/)
  refuses(t, '-----BEGIN X509 CRL-----\nAAA\n-----END X509 CRL-----\n', 'crl', /not valid base64/)
  refuses(t, '-----BEGIN X509 CRL-----\n-----END X509 CRL-----\n', 'crl', /the CRL is truncated/)
  refuses(t, der.subarray(0, der.length - 5), 'crl', /the CRL is truncated/)
  refuses(t, [crlA, Buffer.concat([der, Buffer.from([0, 0])])], 'crl[1]', /the CRL has unexpected trailing data/)
  refuses(t, crlA + pem(der.subarray(0, 40)), 'crl', /^.*: CRL #2: the CRL is truncated$/)
  try {
    RevocationList.from('hello', 'crl')
  } catch (err) {
    t.notMatch((err as Error).message, /hello/, 'the message does not echo the input')
  }
})

function pem (der: Buffer): string {
  return `-----BEGIN X509 CRL-----\n${der.toString('base64')}\n-----END X509 CRL-----\n`
}

t.test('refused at load: DER that is not strict', async (t) => {
  const der = toDer(crlA)
  const body = der.subarray(der[1] === 0x81 ? 3 : 4)
  refuses(t, Buffer.from([0x30, 0x80, ...body, 0, 0]), 'crl', /unsupported length/)
  refuses(t, Buffer.from([0x30, 0x85, 0, 0, 0, 0, 1]), 'crl', /unsupported length/)
  refuses(t, Buffer.from([0x30, 0x82, 0x00, 0x05, 1, 2, 3, 4, 5]), 'crl', /non-minimal length/)
  refuses(t, Buffer.from([0x30, 0x81, 0x05, 1, 2, 3, 4, 5]), 'crl', /non-minimal length/)
  refuses(t, Buffer.from([0x30, 0x82, 0x01]), 'crl', /the CRL is truncated/)
  refuses(t, Buffer.from([0x30]), 'crl', /the CRL is truncated/)
  refuses(t, seq(tlv(0x3f, Buffer.alloc(1))), 'crl', /the CRL content has an unsupported tag/)
  refuses(t, seq(int('01')), 'crl', /the CRL content has an unexpected type/)
  refuses(t, seq(seq(), seq()), 'crl', /the signature is truncated/)
})

t.test('refused at load: CRL fields out of the profile', async (t) => {
  const cases: Array<[CrlSpec, RegExp]> = [
    [{ version: int('02') }, /the CRL version is not v2/],
    [{ innerAlgorithm: seq(oid('1.2.840.10045.4.3.3')) }, /the two signature algorithms differ/],
    [{ algorithm: seq(oid('1.2.840.113549.1.1.4'), tlv(0x05)) }, /the signature algorithm is not supported/],
    [{ signatureValue: tlv(0x03, Buffer.from([1, 0xff])) }, /not a whole number of bytes/],
    [{ signatureValue: tlv(0x03, Buffer.from([0])) }, /not a whole number of bytes/],
    [{ thisUpdate: time('2601010000Z0Z') }, /thisUpdate is not a valid time/],
    [{ thisUpdate: time('20260101000000.5Z') }, /thisUpdate is not a valid time/],
    [{ nextUpdate: time('260231000000Z') }, /nextUpdate is not a valid time/],
    [{ thisUpdate: int('01') }, /thisUpdate has an unexpected type/],
    [{ entries: [seq(tlv(0x02), time('260101000000Z'))] }, /a serial number is empty/],
    [{ entries: [entry('01', ext('2.5.29.29', true, seq()))] }, /indirect CRLs are not supported/],
    [{ entries: [entry('01', ext('1.3.6.1.4.1.55555.2', true, tlv(0x05)))] }, /an entry has an unsupported critical extension/],
    [{ entries: [seq(int('01'), time('260101000000Z'), seq(), int('01'))] }, /a revoked certificate has unexpected trailing data/],
    [{ extensions: [ext('2.5.29.28', true, Buffer.concat([seq(), tlv(0x05)]))] }, /issuing distribution point has unexpected trailing data/],
    [{ issuer: seq(tlv(0x31)) }, /a name component is empty/],
    [{ issuer: seq(rdn([CN, str(0x0c, Buffer.from([0xc3, 0x28]))])) }, /a UTF8String is not valid UTF-8/],
    [{ issuer: seq(rdn([CN, str(0x1e, Buffer.from([0, 0x41, 0]))])) }, /a BMPString has an odd length/],
    [{ issuer: seq(rdn([CN, str(0x1c, Buffer.from([0, 0, 0, 0x41, 0]))])) }, /a UniversalString has a bad length/],
    [{ issuer: seq(rdn([CN, str(0x1c, Buffer.from([0, 0x11, 0, 0]))])) }, /a UniversalString holds an invalid character/],
    [{ issuer: seq(tlv(0x31, seq(oid(CN), utf8('x'), utf8('y')))) }, /a name attribute has unexpected trailing data/],
  ]
  for (const [spec, reason] of cases) refuses(t, buildCrl(spec), 'crl', reason)
})

t.test('accepted at load: non-critical entry and CRL extensions, an explicit non-critical flag', async (t) => {
  const list = RevocationList.from(buildCrl({
    entries: [entry('0080FF', ext('2.5.29.21', false, tlv(0x0a, Buffer.from([1]))), seq(oid('1.3.6.1.4.1.55555.3'), tlv(0x01, Buffer.from([0])), tlv(0x04, tlv(0x05))))],
    extensions: [ext('2.5.29.20', false, int('07'))],
  }), 'crl')
  t.same(list.check(high, caA.cert), REVOKED)
})

// Names as lib/codecs/dn.ts reads them from a header: RFC 4514 order, most specific RDN first.
type Names = Array<Array<{ oid: string, value: string, der?: true }>>
const namesOf = (...rdns: Array<[string, string]>): Names => rdns.map(([oid, value]) => [{ oid, value }])
const A_NAMES = namesOf([CN, 'Test CA'], [O, 'Example'], [C, 'US'])

t.test('names alone: an issuer value that is no string (#04… DER) finds its CRL, and its text look-alike does not', async (t) => {
  const issuer = seq(rdn([CN, str(0x04, 'Hi')]))
  const list = RevocationList.from(buildCrl({ issuer, entries: [entry('01')] }), 'crl')
  t.same(list.checkNames([[{ oid: CN, value: '#04024869', der: true }]], '01'), REVOKED, 'the DER value keys as the CRL\'s issuer does')
  t.same(list.checkNames([[{ oid: CN, value: '#04024869' }]], '01'), OK, 'the text "#04024869" is another issuer, with no CRL')
})

t.test('names alone: a certificate known by issuer name and serial is checked against its issuer\'s CRLs', async (t) => {
  const list = RevocationList.from(crlA, 'crl')
  t.same(list.checkNames(A_NAMES, high.serialNumber), REVOKED)
  t.same(list.checkNames(A_NAMES, good.serialNumber), OK)
  t.same(list.checkNames(namesOf([CN, '  test   ca '], [O, 'EXAMPLE'], [C, 'us']), '80ff'), REVOKED, 'case and spaces fold as X509_NAME_cmp folds them; hex in any case')
  t.same(list.checkNames(A_NAMES, '0080FF'), REVOKED, 'leading zero bytes do not matter')
  t.same(list.checkNames(A_NAMES, '080FF'), REVOKED, 'an odd digit count reads as a leading 0')
  t.same(list.checkNames(A_NAMES, negative.serialNumber), REVOKED, 'a negative serial, as Node prints it')
  t.same(list.checkNames(A_NAMES, '0'), REVOKED, 'serial zero')
  t.same(list.checkNames(namesOf([CN, 'No CRL CA']), null), OK, 'an issuer without a CRL is not checked, serial or not')
  t.same(list.checkNames(A_NAMES.slice(0, 2), high.serialNumber), OK, 'fewer RDNs: another issuer')
  t.same(list.checkNames([[{ oid: CN, value: 'Test CA' }, { oid: O, value: 'Example' }], [{ oid: C, value: 'US' }]], high.serialNumber), OK,
    'the same attributes in other RDNs: another issuer')
  t.same(list.checkNames(A_NAMES, good.serialNumber, Date.now() + 60 * 86_400_000), EXPIRED)

  t.same(list.checkNames(null, high.serialNumber), UNKNOWN, 'no issuer while CRLs are loaded: fails closed')
  t.same(list.checkNames(A_NAMES, null), UNKNOWN, 'no serial while the issuer has a CRL: fails closed')
  t.same(list.checkNames(A_NAMES, 'not hex'), UNKNOWN)
  t.same(list.checkNames(A_NAMES, ''), UNKNOWN)
  t.same(list.checkNames([[{ oid: 'CN', value: 'Test CA' }]], '01'), UNKNOWN, 'a type that is not a dotted OID')
  t.same(list.checkNames([[]], '01'), UNKNOWN, 'an empty RDN')
  t.same(RevocationList.from([], 'crl').checkNames(null, null), OK, 'no CRLs, nothing to check')
  t.same(RevocationList.from(impostorCrl, 'crl', [caA.cert]).checkNames(A_NAMES, good.serialNumber), BAD_SIGNATURE,
    'the CRL\'s signature must verify with the trusted certificate bearing its issuer\'s name')
})

t.test('names alone: the string type a header cannot show finds the CRL, and never lets a second issuer in', async (t) => {
  const SERIAL = '2.5.4.5'
  const numeric = seq(rdn([SERIAL, str(0x12, '123')]), rdn([CN, utf8('Numbered CA')]))
  const printable = seq(rdn([SERIAL, str(0x13, '123')]), rdn([CN, utf8('Numbered CA')]))
  const names = namesOf([CN, 'numbered ca'], [SERIAL, '123'])
  const onlyNumeric = RevocationList.from(buildCrl({ issuer: numeric, entries: [entry('01')] }), 'crl')
  t.same(onlyNumeric.checkNames(names, '01'), REVOKED, 'a NumericString in the CRL\'s issuer matches the forwarded text')
  t.same(onlyNumeric.check(crafted(printable, '01')), OK, 'a certificate says which type: OpenSSL tells them apart')
  const both = RevocationList.from([buildCrl({ issuer: numeric, entries: [entry('01')] }), buildCrl({ issuer: printable, entries: [entry('02')] })], 'crl')
  t.same(both.checkNames(names, '03'), UNKNOWN, 'two issuers the text cannot tell apart: fails closed')
  t.same(both.check(crafted(numeric, '01')), REVOKED)
  t.same(both.check(crafted(printable, '01')), OK)
  t.same(both.check(crafted(printable, '02')), REVOKED)
  const email = seq(rdn(['1.2.840.113549.1.9.1', str(0x16, 'ca@example.org')]))
  t.same(RevocationList.from(buildCrl({ issuer: email, entries: [entry('01')] }), 'crl').checkNames(namesOf(['1.2.840.113549.1.9.1', 'CA@example.org']), '01'), REVOKED,
    'an attribute type whose OID has arcs over 127')
  const general = seq(rdn([CN, str(0x1b, 'General CA')]))
  t.same(RevocationList.from(buildCrl({ issuer: general, entries: [entry('01')] }), 'crl').checkNames(namesOf([CN, 'General CA']), '01'), REVOKED, 'GeneralString')
  const binary = seq(rdn([CN, tlv(0x04, Buffer.from('CA'))]))
  t.same(RevocationList.from(buildCrl({ issuer: binary, entries: [entry('01')] }), 'crl').checkNames(namesOf([CN, 'CA']), '01'), OK,
    'a value that is not text is not matched by text')
  const visible = seq(rdn([C, str(0x13, 'US')]), rdn([O, str(0x1a, 'example')]), rdn([CN, str(0x1a, 'TEST CA')]))
  t.same(RevocationList.from(buildCrl({ issuer: visible, entries: [entry('0080FF')] }), 'crl').check(high), REVOKED,
    'a VisibleString compares as canonical text, as X509_NAME_cmp does')
})

t.test('trust decides whose signature counts, each checked once, never a certificate the client sent', async (t) => {
  t.same(RevocationList.from(crlA, 'crl', [caA.cert]).check(high), REVOKED)
  t.same(RevocationList.from(impostorCrl, 'crl', [caA.cert]).check(good), BAD_SIGNATURE)
  const both = RevocationList.from([impostorCrl, crlA], 'crl', [caA.cert])
  t.same(both.check(high), REVOKED, 'only the CRL the trusted issuer signed counts')
  t.same(both.check(good), OK)
  t.same(RevocationList.from(impostorCrl, 'crl', [caB.cert]).check(good), OK, 'no trusted certificate of that name: trusted as configured')
  t.same(RevocationList.from(impostorCrl, 'crl', [caA.cert, impostor.cert]).check(good), OK, 'a second trusted certificate of the same name (a key rollover) signed it')
  const unbound = RevocationList.from(impostorCrl, 'crl')
  t.same(unbound.check(good), OK)
  t.same(unbound.bind([caA.cert]).check(good), BAD_SIGNATURE, 'bind() applies another trust to the same CRLs')
  t.same((await unbound.bindLater([caA.cert])).check(good), BAD_SIGNATURE)
  t.same((await RevocationList.from(crlA, 'crl').bindLater([caA.cert])).check(high), REVOKED)
  const unreadable = crafted(A_NAME, '77', seq(rdn([CN, utf8('x')]), tlv(0x31)))
  t.same(RevocationList.from(impostorCrl, 'crl', [unreadable, unreadable]).check(good), OK, 'a trusted certificate whose subject cannot be read signs nothing')
  t.same(RevocationList.from(crlEd, 'crl', [caEd.cert]).check(leafEd), REVOKED, 'Ed25519')
  t.same(RevocationList.from(pssB, 'crl', [caB.cert]).check(leafB), REVOKED, 'RSA-PSS')
  t.same(RevocationList.from(crlA, 'crl', [caB.cert, caEd.cert]).check(high), REVOKED, 'certificates of other names do not matter')
})

t.test('load(): the same lists as from(), read in slices', async (t) => {
  const inputs: unknown[] = [crlA, toDer(crlA), Buffer.from(crlA), new Uint8Array(toDer(crlA)), [crlA, crlB], [], crlA + crlEd]
  for (const input of inputs) {
    const loaded = await RevocationList.load(input as string, 'crl', [caA.cert])
    const read = RevocationList.from(input as string, 'crl', [caA.cert])
    t.equal(loaded.size, read.size)
    t.equal(loaded.bytes, read.bytes)
    t.same(loaded.check(high), read.check(high))
  }
  t.throws(() => RevocationList.load(42 as never, 'reload.crl'), /reload\.crl: must be PEM text/, 'the wrong type throws at once')
  await t.rejects(RevocationList.load('hello', 'reload.crl'), /reload\.crl: no X509 CRL PEM block found/)
  await t.rejects(RevocationList.load([crlA, toDer(crlA).subarray(0, 40)], 'crl'), /crl\[1\]: the CRL is truncated/)
  t.equal(RevocationList.inputBytes([crlA, toDer(crlA)]), crlA.length + toDer(crlA).length)
  t.equal(RevocationList.inputBytes(42), 0)
})

t.test('large CRLs: PEM and DER over many slices, streamed signature checks', async (t) => {
  const issuer = subjectName(caA.cert)
  const big = bigCrl({ issuer, key: caA.key, count: 60_000, serials: [high.serialNumber, '00'] })
  t.ok(big.length > 2 * 1024 * 1024)
  const cases: Array<[string, unknown]> = [
    ['DER', big],
    ['PEM', crlPem(big)],
    ['PEM in a Buffer', Buffer.from(crlPem(big).replace(/\n/g, '\r\n'))],
    ['PEM on one line', `-----BEGIN X509 CRL-----${big.toString('base64')}-----END X509 CRL-----`]
  ]
  for (const [name, input] of cases) {
    const list = await RevocationList.load(input as string, 'crl', [caA.cert])
    t.same(list.check(high), REVOKED, name)
    t.same(list.check(good), OK, name)
    t.same(list.checkNames(A_NAMES, '00'), REVOKED, `${name}: serial zero`)
    t.same(RevocationList.from(input as string, 'crl', [caA.cert]).check(high), REVOKED, `${name}, at once`)
  }
  const forged = await RevocationList.load(bigCrl({ issuer, key: impostor.key, count: 60_000 }), 'crl', [caA.cert])
  t.same(forged.check(good), BAD_SIGNATURE, 'a large CRL signed by another key')
  const rsa = await RevocationList.load(bigCrl({ issuer: subjectName(caB.cert), key: caB.key, count: 40_000, serials: [leafB.serialNumber] }), 'crl', [caB.cert])
  t.same(rsa.check(leafB), REVOKED, 'RSA')
  const ed = await RevocationList.load(bigCrl({ issuer: subjectName(caEd.cert), key: caEd.key, count: 40_000, serials: [leafEd.serialNumber] }), 'crl', [caEd.cert])
  t.same(ed.check(leafEd), REVOKED, 'Ed25519')
  t.same(await RevocationList.load(bigCrl({ issuer, key: caA.key, count: 10, nextUpdate: null }), 'crl', [caA.cert]).then((l) => l.check(good, null, Date.UTC(3000, 0))), OK)
})

t.test('PEM bodies split across slices: padding, whitespace and errors at the boundary', async (t) => {
  const STEP = 1 << 20
  // A CRL whose base64 ends in '==' (its length is one more than a multiple of 3).
  let der = buildCrl({ entries: [entry('0080FF')] })
  for (let i = 2; der.length % 3 !== 1; i++) der = buildCrl({ entries: [entry('0080FF'), entry(i.toString(16).padStart(2, '0'))] })
  const b64 = der.toString('base64')
  t.ok(b64.endsWith('=='))
  const head = '-----BEGIN X509 CRL-----'
  // The body starts right after the label; the first slice ends STEP characters later.
  const split = (body: string, tail: string): string => `${head}${body}${' '.repeat(STEP - body.length)}${tail}-----END X509 CRL-----`
  t.same(RevocationList.from(split(b64.slice(0, -1), '=\n'), 'crl').check(high), REVOKED, '"=" then "=" in the next slice')
  t.same(RevocationList.from(split(b64, '\n'), 'crl').check(high), REVOKED, 'padding, then only whitespace')
  refuses(t, split(b64.slice(0, -1), '=A'), 'crl', /not valid base64/)
  refuses(t, split(b64, '='), 'crl', /not valid base64/)
  refuses(t, split(b64.slice(0, -2), '!'), 'crl', /not valid base64/)
  refuses(t, `${head}${'A!'.repeat(STEP)}`, 'crl', /no END X509 CRL line/)
  refuses(t, `${head}${'AAAA'.repeat(STEP / 2)}`, 'crl', /no END X509 CRL line/)
  refuses(t, Buffer.from(`${head}${'AAAA'.repeat(STEP / 2)}`), 'crl', /no END X509 CRL line/)
})

t.test('serials no index slot holds: negative, over 255 bytes', async (t) => {
  const long = '7B' + 'AB'.repeat(299)
  const list = RevocationList.from(buildCrl({ entries: [entry('FF'), entry(long), entry('0080FF')] }), 'crl')
  t.same(list.checkNames(A_NAMES, '-01'), REVOKED, 'the DER integer FF is -1')
  t.same(list.checkNames(A_NAMES, long.toLowerCase()), REVOKED)
  t.same(list.checkNames(A_NAMES, 'CD'.repeat(300)), OK)
  t.same(list.checkNames(A_NAMES, '80FF'), REVOKED)
  t.same(list.checkNames(A_NAMES, '-80FF'), OK)
})

t.test('revocation dates are checked as strictly as any time, without building a Date', async (t) => {
  const accepted = (value: string, tag = value.length === 13 ? 0x17 : 0x18): string => {
    try {
      RevocationList.from(buildCrl({ entries: [seq(int('01'), tlv(tag, Buffer.from(value, 'latin1')))] }), 'crl')
      return 'ok'
    } catch (err) {
      return (err as Error).message.replace(/^.*: /, '')
    }
  }
  const viaReadTime = (value: string, tag = value.length === 13 ? 0x17 : 0x18): string => {
    try {
      RevocationList.from(buildCrl({ thisUpdate: tlv(tag, Buffer.from(value, 'latin1')) }), 'crl')
      return 'ok'
    } catch (err) {
      return (err as Error).message.replace(/^.*: /, '').replace('thisUpdate', 'a revocation date')
    }
  }
  const samples = [
    '260101000000Z', '491231235959Z', '500101000000Z', '000229000000Z', '010229000000Z', '960229120000Z', '970229120000Z',
    '261301000000Z', '260001000000Z', '260100000000Z', '260132000000Z', '260431000000Z', '260101240000Z', '260101006000Z',
    '260101000060Z', '2601010000000', '26010100000Z', '260101000000+', 'A60101000000Z', '26010100000AZ',
    '20260101000000Z', '00500101000000Z', '00990101000000Z', '01000101000000Z', '99991231235959Z', '20000229000000Z',
    '19000229000000Z', '21000228000000Z', '2026010100000Z', '20260101000000.5Z', '2026010100000 Z'
  ]
  for (let i = 0; i < 200; i++) {
    const digits = Array.from({ length: i % 2 === 0 ? 12 : 14 }, () => String(Math.floor(Math.random() * 10))).join('')
    samples.push(digits + 'Z')
  }
  for (const sample of samples) t.equal(accepted(sample), viaReadTime(sample), sample)
  t.equal(accepted('260101000000Z', 0x04), viaReadTime('260101000000Z', 0x04), 'another type')
})

t.test('certificatesOf reads a TLS ca option as Node keeps it, skipping what it cannot read', async (t) => {
  const pems = caA.cert.toString() + caB.cert.toString()
  t.equal(certificatesOf(pems).length, 2)
  t.equal(certificatesOf([pems, caEd.cert.raw, Buffer.from(caA.cert.toString())]).length, 4)
  t.equal(certificatesOf([Buffer.from('garbage'), '-----BEGIN CERTIFICATE-----AAAA-----END CERTIFICATE-----', '-----BEGIN X', 42, undefined]).length, 0)
  t.equal(certificatesOf(undefined).length, 0)
})
