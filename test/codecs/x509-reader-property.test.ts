// The DER reader against OpenSSL: over certificates generated here (every string type, escapes, multi-valued RDNs,
// empty names, all SAN kinds, long and negative-looking serials, time edges, critical extensions), over the
// corpus, and over truncations and bit flips of them, the identity's fields read from the DER are exactly those
// `X509Certificate` and the codecs gave before, or the reader refuses; never a different identity.
import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { formatDN } from '../../lib/codecs/dn.js'
import { parseNodeSAN } from '../../lib/codecs/san.js'
import { spiffeIdFromUris } from '../../lib/codecs/spiffe.js'
import { certificateNames } from '../../lib/codecs/x509-names.js'
import { CertificateParseError } from '../../lib/codecs/parse-error.js'
import { certificateFields, commonNameOf } from '../../lib/identity.js'
import { getCorpus, LEAF_NAMES } from '../helpers/certs.js'
import * as w from '../helpers/der-writer.js'

/** The fields as the plugin read them before the DER reader: Node's getters, names from the DER. */
function oracle (der: Buffer): Record<string, unknown> | 'refused' {
  let certificate: X509Certificate
  try {
    certificate = new X509Certificate(der)
  } catch {
    return 'refused'
  }
  try {
    const names = certificateNames(certificate.raw)
    const san = parseNodeSAN(certificate.subjectAltName)
    return {
      subject: formatDN(names.subject),
      issuer: formatDN(names.issuer),
      subjectRDNs: names.subject,
      issuerRDNs: names.issuer,
      commonName: commonNameOf(names.subject),
      san,
      spiffeId: spiffeIdFromUris(san.uri),
      serialNumber: certificate.serialNumber,
      fingerprint256: certificate.fingerprint256,
      notBefore: new Date(certificate.validFrom).getTime(),
      notAfter: new Date(certificate.validTo).getTime()
    }
  } catch {
    return 'refused'
  }
}

function read (der: Buffer): Record<string, unknown> | 'refused' {
  try {
    const f = certificateFields(der)
    return { ...f, certificate: undefined, notBefore: f.notBefore!.getTime(), notAfter: f.notAfter!.getTime() }
  } catch (error) {
    if (!(error instanceof CertificateParseError)) throw error
    return 'refused'
  }
}

const plain = (value: Record<string, unknown> | 'refused'): unknown => value === 'refused'
  ? value
  : JSON.parse(JSON.stringify({ ...value, certificate: undefined }))

class Rng {
  constructor (private state: number) {}
  next (): number {
    this.state = (this.state * 1103515245 + 12345) >>> 0
    return this.state / 2 ** 32
  }

  int (n: number): number { return Math.floor(this.next() * n) }
  pick<T> (items: readonly T[]): T { return items[this.int(items.length)]! }
  bytes (n: number): Buffer { return Buffer.from(Array.from({ length: n }, () => this.int(256))) }
}

const ATTRIBUTES = ['2.5.4.3', '2.5.4.6', '2.5.4.10', '2.5.4.11', '2.5.4.7', '1.2.840.113549.1.9.1', '0.9.2342.19200300.100.1.25', '1.3.6.1.4.1.99999.7', '2.5.4.5']
const TEXTS = ['alice', 'a,b', 'a+b', ' lead', 'trail ', '#hash', 'quo"te', 'back\\slash', 'semi;colon', 'lt<gt>', 'eq=', 'ümlaut', '试', '😀', '', 'tab\there', 'nul\u0000', 'x\u007f', 'new\nline']

function stringValue (rng: Rng): [number, Buffer] {
  const text = rng.pick(TEXTS) + (rng.int(3) === 0 ? rng.pick(TEXTS) : '')
  switch (rng.int(8)) {
    case 0: return [0x13, Buffer.from(text.replace(/[^ -~]/g, 'x'), 'latin1')] // PrintableString (content not policed by OpenSSL)
    // eslint-disable-next-line no-control-regex -- the point is to keep only these characters
    case 1: return [0x16, Buffer.from(text.replace(/[^\u0000-\u007f]/g, 'y'), 'latin1')] // IA5String
    case 2: return [0x1e, Buffer.from(text.replace(/[\ud800-\udfff]/g, 'z'), 'utf16le').swap16()] // BMPString
    // eslint-disable-next-line no-control-regex -- the same
    case 3: return [0x14, Buffer.from(text.replace(/[^\u0000-\u00ff]/g, 'w'), 'latin1')] // T61String
    case 4: { // UniversalString
      const cps = [...text].map((c) => c.codePointAt(0)!)
      const out = Buffer.alloc(cps.length * 4)
      cps.forEach((cp, i) => out.writeUInt32BE(cp, i * 4))
      return [0x1c, out]
    }
    case 5: return [rng.pick([0x07, 0x12, 0x1a, 0x30 | 0, 0x03]), Buffer.from([0, 0x61, 0x62])] // dumped as # and DER, or refused
    default: return [0x0c, Buffer.from(text)] // UTF8String
  }
}

function randomName (rng: Rng): Buffer {
  const rdns: w.Ava[][] = []
  const count = rng.int(5) // 0: an empty name
  for (let i = 0; i < count; i++) {
    const members = rng.int(4) === 0 ? 2 + rng.int(2) : 1
    rdns.push(Array.from({ length: members }, () => {
      const [tag, value] = stringValue(rng)
      return [rng.pick(ATTRIBUTES), tag, value] as w.Ava
    }))
  }
  return w.name(rdns)
}

const SAN_VALUES = ['example.com', '*.example.com', 'a,b.example', 'x"y', "it's", 'back\\slash', 'spiffe://example.org/ns/a', 'spiffe://example.org/ns/b',
  'SPIFFE://Example.org/x', 'https://example.com/a?b=c', 'user@example.com', 'ctl\u0001', 'high\u00e9', 'sp ace', '']

function randomSan (rng: Rng): Buffer {
  const names: Buffer[] = []
  for (let i = 1 + rng.int(5); i > 0; i--) {
    switch (rng.int(9)) {
      case 0: names.push(w.tlv(0x87, rng.bytes(4))); break
      case 1: names.push(w.tlv(0x87, rng.int(3) === 0 ? Buffer.concat([Buffer.alloc(10), Buffer.from([0xff, 0xff]), rng.bytes(4)]) : rng.int(2) === 0 ? Buffer.alloc(16) : rng.bytes(16))); break
      case 2: names.push(w.tlv(0x87, rng.bytes(rng.pick([0, 3, 5, 8, 17])))); break // an IP of no length Node prints
      case 3: names.push(w.tlv(0xa4, randomName(rng))); break // directoryName
      case 4: names.push(w.tlv(0xa0, w.oid('1.3.6.1.4.1.311.20.2.3'), w.tlv(0xa0, w.tlv(0x0c, Buffer.from('upn@example'))))); break // otherName
      case 5: names.push(w.tlv(0x88, w.oid('1.2.3.4').subarray(2))); break // registeredID
      default: names.push(w.tlv(rng.pick([0x81, 0x82, 0x86]), Buffer.from(rng.pick(SAN_VALUES), 'latin1')))
    }
  }
  return w.seq(...names)
}

const TIMES = ['491231235959Z', '500101000000Z', '000229120000Z', '991231235959Z', '250101000000Z', '20491231235959Z', '20500101000000Z',
  '19500101000000Z', '99991231235959Z', '20240229000000Z', '01000101000000Z', '00990101000000Z']
const BAD_TIMES = ['2501010000Z', '250101000000+0100', '20250101000000.5Z', '250230000000Z', '20250101000000', '251301000000Z', '250101240000Z', '2501010000000Z']

function randomTime (rng: Rng): Buffer {
  if (rng.int(12) === 0) {
    const text = rng.pick(BAD_TIMES)
    return text.length === 13 || text.length === 11 || text.length === 17 ? w.utcTime(text) : w.generalizedTime(text)
  }
  const text = rng.pick(TIMES)
  return text.length === 13 ? w.utcTime(text) : w.generalizedTime(text)
}

function randomSerial (rng: Rng): Buffer {
  switch (rng.int(5)) {
    case 0: return Buffer.from([0])
    case 1: return Buffer.concat([Buffer.from([0]), Buffer.from([0x80 | rng.int(128)]), rng.bytes(18)]) // 20 bytes, sign byte
    case 2: return Buffer.concat([Buffer.from([0x80 | rng.int(128)]), rng.bytes(rng.int(20))]) // negative
    case 3: return Buffer.concat([Buffer.from([0, 0, 1]), rng.bytes(3)]) // padded: OpenSSL refuses it
    default: return Buffer.concat([Buffer.from([1 + rng.int(127)]), rng.bytes(rng.int(31))])
  }
}

function randomCertificate (rng: Rng): Buffer {
  const extensions: Buffer[] = []
  if (rng.int(4) !== 0) extensions.push(w.extension('2.5.29.17', randomSan(rng), rng.int(2) === 0))
  if (rng.int(3) === 0) extensions.push(w.extension('2.5.29.15', w.tlv(0x03, Buffer.from([7, 0x80])), true))
  if (rng.int(4) === 0) extensions.push(w.extension('1.3.6.1.4.1.99999.1', Buffer.from([5, 0]), rng.int(2) === 0))
  if (rng.int(30) === 0) extensions.push(w.extension('2.5.29.17', w.seq(w.tlv(0x82, Buffer.from('dup.example')))))
  return w.build({
    version: rng.int(10) === 0 ? null : undefined,
    serial: randomSerial(rng),
    issuer: randomName(rng),
    subject: randomName(rng),
    notBefore: randomTime(rng),
    notAfter: randomTime(rng),
    extensions,
    uniqueIds: rng.int(15) === 0 ? [w.tlv(0x81, Buffer.from([0, 1, 2]))] : []
  })
}

t.test('generated certificates: the DER reader gives the fields X509Certificate gave, or refuses what it refuses', async (t) => {
  const rng = new Rng(0x14)
  const counts = { same: 0, bothRefuse: 0, refusedBadForm: 0, refusedByNodeOnly: 0 }
  for (let i = 0; i < 400; i++) {
    const der = randomCertificate(rng)
    const expected = oracle(der)
    const got = read(der)
    if (expected === 'refused') {
      if (got !== 'refused') t.fail(`#${i}: OpenSSL or the codecs refuse it, the reader does not: ${der.toString('base64')}`)
      counts.bothRefuse++
    } else if (got === 'refused') {
      // Refusals the reader may add: RFC 5280 time forms only (Node would print a fraction, an offset, or an Invalid Date).
      const times = certificateTimes(der)
      if (times.every((time) => calendarTime(time) !== null && calendarTime(time)! >= Date.UTC(1000, 0, 1))) t.fail(`#${i}: the reader refused a certificate OpenSSL reads: ${der.toString('base64')}`)
      counts.refusedBadForm++
    } else {
      if (JSON.stringify(plain(got)) !== JSON.stringify(plain(expected))) t.same(plain(got), plain(expected), `#${i}: the same fields`)
      counts.same++
    }
  }
  t.ok(counts.same > 80, `most read alike (${JSON.stringify(counts)})`)
  t.ok(counts.bothRefuse > 10, 'and some are refused by both')
})

/** An RFC 5280 time as the calendar reads it, `null` for a form or date that is none (Node prints those wrong or as Invalid Date). */
function calendarTime (text: string): number | null {
  const match = /^(\d{2}|\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)
  if (match === null || (match[1]!.length === 2) !== (text.length === 13)) return null
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number) as [number, number, number, number, number, number]
  const full = match[1]!.length === 2 ? (year < 50 ? 2000 : 1900) + year : year
  const date = new Date(0)
  date.setUTCFullYear(full, month - 1, day)
  date.setUTCHours(hour, minute, second)
  return date.getUTCMonth() === month - 1 && date.getUTCDate() === day && hour < 24 && minute < 60 && second < 60 ? date.getTime() : null
}

/** The texts of notBefore and notAfter, found by walking to the validity. */
function certificateTimes (der: Buffer): string[] {
  const hex = der.toString('latin1')
  const times: string[] = []
  // eslint-disable-next-line no-control-regex -- the tags and lengths of the two times
  for (const match of hex.matchAll(/[\x17\x18]([\x0b-\x13])/g)) {
    const start = match.index! + 2
    const text = hex.slice(start, start + match[1]!.charCodeAt(0))
    if (/^\d{10}/.test(text)) times.push(text)
  }
  return times
}

t.test('the corpus: every certificate reads the same', async (t) => {
  const corpus = await getCorpus()
  const all = [corpus.root, corpus.intermediate, corpus.rogueRoot, ...LEAF_NAMES.map((name) => corpus.leaves[name])]
  for (const { name, der } of all) t.same(plain(read(der)), plain(oracle(der)), name)
})

t.test('truncations and bit flips: the same fields or a refusal, never another identity', async (t) => {
  const corpus = await getCorpus()
  const rng = new Rng(7)
  const seeds = [corpus.leaves.alice.der, corpus.intermediate.der, ...Array.from({ length: 6 }, () => randomCertificate(rng))]
  let differentButRefused = 0
  for (let i = 0; i < 600; i++) {
    const original = rng.pick(seeds)
    const der = Buffer.from(original)
    const kind = rng.int(3)
    let mutated: Buffer
    if (kind === 0) {
      mutated = der.subarray(0, rng.int(der.length))
    } else {
      for (let flips = 1 + rng.int(3); flips > 0; flips--) der[rng.int(der.length)] ^= 1 << rng.int(8)
      mutated = der
    }
    const got = read(mutated)
    if (got === 'refused') {
      differentButRefused++
      continue
    }
    const expected = oracle(mutated)
    if (JSON.stringify(plain(got)) !== JSON.stringify(plain(expected))) {
      t.same(plain(got), plain(expected), `mutation #${i} reads as X509Certificate reads it: ${mutated.toString('base64')}`)
    }
  }
  t.ok(differentButRefused > 0, 'some mutations are refused')
})
