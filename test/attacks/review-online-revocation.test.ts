// Review of online revocation (OCSP, CRL distribution points, the CLI responder) from an attacker's seat: a holder
// of a revoked certificate, someone on the path to the responder or CRL host, or the author of a certificate's
// AIA/CDP URLs. Each test is one attack; real servers on 127.0.0.1, PKIs made with the openssl CLI.
import t, { type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { createHash, createPrivateKey, randomBytes, sign, X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { main } from '../../lib/cli/main.js'
import { certificateFields } from '../../lib/identity.js'
import { judge } from '../../lib/policy/verdict.js'
import { DistributionPoints, normalizeRevocation, REVOCATION_PENDING } from '../../lib/revocation/distribution-points.js'
import { fetchCrl } from '../../lib/revocation/fetch.js'
import { normalizeOcsp, OcspClient, type OcspCheck } from '../../lib/revocation/ocsp.js'
import { certIdOf, ocspRequest, readOcspResponse, responderOf, type Expected } from '../../lib/revocation/ocsp-codec.js'
import type { CertFiles } from '../helpers/certs.js'
import { oid, seq, tlv } from '../helpers/der-writer.js'
import { files, makeDpPki, startCrlServer, type DpPki } from '../helpers/dp-pki.js'
import { makeCrl } from '../helpers/crl.js'
import { certIdFor, craftResponse, generalizedTime, makeOcspPki, readRequest, singleResponse, startOcspResponder, type OcspPki } from '../helpers/ocsp-pki.js'

t.setTimeout(240_000)

const SHA1_OID = '1.3.14.3.2.26'
const SHA256_OID = '2.16.840.1.101.3.4.2.1'
const quiet = { warn: () => {}, info: () => {} }

const x509 = (certificate: CertFiles): X509Certificate => new X509Certificate(certificate.certPem)

async function waitFor (condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  if (!condition()) throw new Error('gave up waiting for ' + what)
}

// ---------------------------------------------------------------------------------------------------------------
// Forged, replayed and malformed OCSP responses, read by the codec (signature, signer, CertID, times, nonce).
// ---------------------------------------------------------------------------------------------------------------

let ocspPki: OcspPki
let lookAlikePki: OcspPki
t.before(() => {
  ocspPki = makeOcspPki()
  // Same root name ('CN=OCSP-Test-Root'), another key: a CA that looks like ours by name.
  lookAlikePki = makeOcspPki()
})
t.teardown(() => {
  ocspPki.cleanup()
  lookAlikePki.cleanup()
})

interface Case { leaf: CertFiles, expected: Expected, request: Buffer }

function caseFor (leaf: CertFiles, options: { nonce?: boolean, now?: number, clockSkew?: number, maxAge?: number } = {}): Case {
  const certId = certIdOf(x509(leaf), x509(ocspPki.root))
  const nonce = options.nonce === false ? null : randomBytes(16)
  return {
    leaf,
    request: ocspRequest(certId, nonce),
    expected: { certId, issuer: x509(ocspPki.root), nonce, now: options.now ?? Date.now(), clockSkew: options.clockSkew ?? 300_000, maxAge: options.maxAge ?? 3_600_000 }
  }
}

interface Assembled {
  responderId: Buffer
  singles: Buffer[]
  extensions?: Buffer[]
  key: CertFiles
  certs?: CertFiles[]
  algorithm?: Buffer
  hash?: string | null
  /** Bytes appended inside the BasicOCSPResponse's OCTET STRING. */
  inner?: Buffer
}

/** A response put together piece by piece, for the shapes craftResponse cannot make (a chosen ResponderID). */
function assemble (parts: Assembled): Buffer {
  const data = seq(parts.responderId, generalizedTime(Date.now()), seq(...parts.singles), ...(parts.extensions === undefined ? [] : [tlv(0xa1, seq(...parts.extensions))]))
  const key = createPrivateKey(parts.key.keyPem)
  const signature = sign(parts.hash === undefined ? 'sha256' : parts.hash, data, key)
  const certs = parts.certs ?? []
  const basic = seq(data, parts.algorithm ?? seq(oid('1.2.840.10045.4.3.2')), tlv(0x03, Buffer.from([0]), signature), ...(certs.length === 0 ? [] : [tlv(0xa0, seq(...certs.map((c) => c.der)))]))
  return seq(tlv(0x0a, Buffer.from([0])), tlv(0xa0, seq(oid('1.3.6.1.5.5.7.48.1.1'), tlv(0x04, basic, parts.inner ?? Buffer.alloc(0)))))
}

function subjectDer (certificate: CertFiles): Buffer {
  // tbs: [0] version, serial, algorithm, issuer, validity, subject
  const der = certificate.der
  let pos = 0
  const header = (at: number): { content: number, end: number } => {
    let length = der[at + 1]!
    let content = at + 2
    if (length >= 0x80) {
      const count = length & 0x7f
      length = der.readUIntBE(content, count)
      content += count
    }
    return { content, end: content + length }
  }
  pos = header(0).content // into Certificate
  pos = header(pos).content // into tbs
  for (let i = 0; i < 5; i++) pos = header(pos).end
  return der.subarray(pos, header(pos).end)
}

function keyHashOf (certificate: CertFiles): Buffer {
  return createHash('sha1').update(certIdKeyBits(x509(certificate).publicKey.export({ type: 'spki', format: 'der' }))).digest()
}

function certIdKeyBits (spki: Buffer): Buffer {
  // SEQUENCE { SEQUENCE alg, BIT STRING key }: skip the outer header and the algorithm.
  const skip = (at: number): { content: number, end: number } => {
    let length = spki[at + 1]!
    let content = at + 2
    if (length >= 0x80) {
      const count = length & 0x7f
      length = spki.readUIntBE(content, count)
      content += count
    }
    return { content, end: content + length }
  }
  const outer = skip(0)
  const algorithm = skip(outer.content)
  const bits = skip(algorithm.end)
  return spki.subarray(bits.content + 1, bits.end)
}

const byName = (certificate: CertFiles): Buffer => tlv(0xa1, subjectDer(certificate))
const byKey = (certificate: CertFiles): Buffer => tlv(0xa2, tlv(0x04, keyHashOf(certificate)))
const nonceExtension = (c: Case): Buffer => seq(oid('1.3.6.1.5.5.7.48.1.2'), tlv(0x04, readRequest(c.request).nonce!))

t.test('forged responses: each does not count', async (t) => {
  const pki = ocspPki
  const alice = pki.issue('alice', 'http://127.0.0.1:9/')
  const bob = pki.issue('bob', 'http://127.0.0.1:9/')
  const noEku = pki.sign('no-eku', ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature', 'authorityKeyIdentifier = keyid'], pki.root)
  const c = caseFor(alice)
  const now = Date.now()
  const refused = (name: string, der: Buffer, message: RegExp, expected = c.expected): void => {
    t.throws(() => readOcspResponse(der, expected), message, name)
  }
  const ok = readOcspResponse(craftResponse(c.request, { signer: pki.responder }), c.expected)
  t.equal(ok.status, 'good', 'control: the delegated responder\'s answer counts')

  refused('another certificate\'s good answer', craftResponse(c.request, { signer: pki.responder, certId: certIdFor(bob, pki.root, 'sha1', SHA1_OID) }), /does not answer for the certificate/)
  refused('the same serial under a look-alike CA (same name, other key)', craftResponse(c.request, { signer: pki.responder, certId: certIdFor(alice, lookAlikePki.root, 'sha1', SHA1_OID) }), /does not answer/)
  refused('a CertID hashed with SHA-384', craftResponse(c.request, { signer: pki.responder, certId: certIdFor(alice, pki.root, 'sha384', '2.16.840.1.101.3.4.2.2') }), /does not answer/)
  const id = c.expected.certId
  const paddedSerial = seq(seq(oid(SHA1_OID), Buffer.from([5, 0])), tlv(0x04, createHash('sha1').update(id.issuerName).digest()),
    tlv(0x04, createHash('sha1').update(id.issuerKey).digest()), tlv(0x02, Buffer.concat([Buffer.from([0]), id.serial])))
  refused('the serial with a leading zero byte', craftResponse(c.request, { signer: pki.responder, certId: paddedSerial }), /does not answer/)
  refused('two answers for the certificate (SHA-1 good, SHA-256 revoked)', craftResponse(c.request, {
    signer: pki.responder, extraSingles: [singleResponse(certIdFor(alice, pki.root, 'sha256', SHA256_OID), 'revoked', now - 1000, now + 3_600_000)]
  }), /answers twice/)
  const mixed = readOcspResponse(craftResponse(c.request, { signer: pki.responder, status: 'revoked', extraSingles: [singleResponse(certIdFor(bob, pki.root, 'sha1', SHA1_OID), 'good', now - 1000, now + 3_600_000)] }), c.expected)
  t.equal(mixed.status, 'revoked', 'another certificate\'s good SingleResponse beside mine does not make mine good')

  refused('the nonce stripped', craftResponse(c.request, { signer: pki.responder, nonce: null }), /does not echo the nonce/)
  refused('the nonce of another request', craftResponse(c.request, { signer: pki.responder, nonce: tlv(0x04, randomBytes(16)) }), /nonce does not match/)
  refused('the nonce without its inner OCTET STRING', craftResponse(c.request, { signer: pki.responder, nonce: readRequest(c.request).nonce!.subarray(2) }), /nonce does not match/)

  refused('signed by a look-alike CA that names itself as the issuer', craftResponse(c.request, { signer: lookAlikePki.root, certs: [] }), /signature does not verify/)
  refused('a delegated responder issued by a look-alike CA', craftResponse(c.request, { signer: lookAlikePki.responder }), /not issued by the certificate's issuer/)
  refused('a delegated responder without OCSPSigning', craftResponse(c.request, { signer: noEku }), /lacks the OCSPSigning/)
  const later = now + 40 * 86_400_000
  const expired = caseFor(alice, { now: later })
  refused('a delegated responder past its validity', craftResponse(expired.request, { signer: pki.responder, thisUpdate: later - 1000, nextUpdate: later + 3_600_000 }), /outside its validity/, expired.expected)
  const earlier = now - 2 * 86_400_000
  const early = caseFor(alice, { now: earlier })
  refused('a delegated responder not yet valid', craftResponse(early.request, { signer: pki.responder, thisUpdate: earlier - 1000, nextUpdate: earlier + 3_600_000 }), /outside its validity/, early.expected)
  refused('a delegated responder whose certificate is left out', craftResponse(c.request, { signer: pki.responder, certs: [] }), /neither the issuer nor/)

  const single = singleResponse(c.expected.certId.der, 'good', now - 1000, now + 3_600_000)
  refused('ResponderID names the issuer by key, signed by the delegate', assemble({ responderId: byKey(pki.root), singles: [single], extensions: [nonceExtension(c)], key: pki.responder, certs: [pki.responder] }), /signature does not verify/)
  refused('ResponderID names the delegate by key, signed by the issuer', assemble({ responderId: byKey(pki.responder), singles: [single], extensions: [nonceExtension(c)], key: pki.root, certs: [pki.responder] }), /signature does not verify/)
  refused('ResponderID names the issuer by name, signed by the delegate', assemble({ responderId: byName(pki.root), singles: [single], extensions: [nonceExtension(c)], key: pki.responder, certs: [pki.responder] }), /signature does not verify/)
  t.equal(readOcspResponse(assemble({ responderId: byKey(pki.responder), singles: [single], extensions: [nonceExtension(c)], key: pki.responder, certs: [pki.responder] }), c.expected).status, 'good',
    'control: the delegate named by key hash counts')

  refused('an ECDSA key under sha256WithRSAEncryption', craftResponse(c.request, { signer: pki.responder, algorithm: seq(oid('1.2.840.113549.1.1.11'), Buffer.from([5, 0])) }), /signature does not verify/)
  refused('RSASSA-PSS', craftResponse(c.request, { signer: pki.responder, algorithm: seq(oid('1.2.840.113549.1.1.10'), seq()) }), /not supported/)
  refused('Ed448', craftResponse(c.request, { signer: pki.responder, algorithm: seq(oid('1.3.101.113')) }), /not supported/)
  refused('ECDSA with NULL parameters', craftResponse(c.request, { signer: pki.responder, algorithm: seq(oid('1.2.840.10045.4.3.2'), Buffer.from([5, 0])) }), /trailing data/)
  refused('ecdsa-with-SHA256 signed with SHA-1', craftResponse(c.request, { signer: pki.responder, hash: 'sha1' }), /signature does not verify/)

  const good = craftResponse(c.request, { signer: pki.responder })
  refused('trailing garbage after the response', Buffer.concat([good, Buffer.from([0, 0])]), /trailing data/)
  refused('trailing garbage inside the BasicOCSPResponse OCTET STRING', assemble({ responderId: byName(pki.responder), singles: [single], extensions: [nonceExtension(c)], key: pki.responder, certs: [pki.responder], inner: Buffer.from([5, 0]) }), /trailing data/)
  const indefinite = Buffer.concat([Buffer.from([0x30, 0x80]), good.subarray(good[1]! < 0x80 ? 2 : 2 + (good[1]! & 0x7f)), Buffer.from([0, 0])])
  refused('an indefinite length (BER)', indefinite, /unsupported length/)
  let nested: Buffer = Buffer.from([0x05, 0x00])
  for (let i = 0; i < 10_000; i++) nested = tlv(0x30, nested)
  refused('10 000 nested SEQUENCEs', nested, /unexpected type|truncated|trailing/)
  refused('tryLater', Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x03]), /tryLater/)
  refused('an ENUMERATED status of two bytes', Buffer.from([0x30, 0x04, 0x0a, 0x02, 0x00, 0x00]), /unknown status|answered/)
  refused('five certificates', craftResponse(c.request, { signer: pki.responder, certs: [pki.responder, pki.responder, pki.responder, pki.responder, pki.responder] }), /too many certificates/)
  refused('an unknown critical response extension', craftResponse(c.request, {
    signer: pki.responder, responseExtensions: [nonceExtension(c), seq(oid('1.2.3.4'), tlv(0x01, Buffer.from([0xff])), tlv(0x04, Buffer.alloc(0)))]
  }), /unknown critical extension/)

  refused('thisUpdate in the future beyond clockSkew', craftResponse(c.request, { signer: pki.responder, thisUpdate: now + 301_000, nextUpdate: now + 3_600_000 }), /in the future/)
  t.equal(readOcspResponse(craftResponse(c.request, { signer: pki.responder, thisUpdate: now + 200_000, nextUpdate: now + 3_600_000 }), c.expected).status, 'good', 'thisUpdate in the future within clockSkew counts')
  refused('nextUpdate past (beyond clockSkew)', craftResponse(c.request, { signer: pki.responder, thisUpdate: now - 7_200_000, nextUpdate: now - 301_000 }), /stale/)
  refused('nextUpdate before thisUpdate', craftResponse(c.request, { signer: pki.responder, thisUpdate: now - 1000, nextUpdate: now - 2000 }), /before thisUpdate/)
  refused('no nextUpdate and thisUpdate older than cacheTtl + clockSkew', craftResponse(c.request, { signer: pki.responder, thisUpdate: now - 3_600_000 - 301_000, nextUpdate: null }), /too old/)
})

// ---------------------------------------------------------------------------------------------------------------
// The OCSP client: cache, replay, stale answers, sharing, close.
// ---------------------------------------------------------------------------------------------------------------

async function settledCheck (client: OcspClient, leaf: X509Certificate, anchors: X509Certificate[], now = Date.now(), fallback = false): Promise<OcspCheck> {
  let check = client.check(leaf, [], anchors, now, fallback)
  if (check.error === REVOCATION_PENDING) {
    await client.settled()
    check = client.check(leaf, [], anchors, now, fallback)
  }
  return check
}

t.test('replay: an older good answer does not replace a newer revoked one (nonce: false, pre-signed responders)', async (t) => {
  const pki = ocspPki
  const responder = await startOcspResponder(pki)
  t.teardown(responder.close)
  const leaf = pki.issue('replayed', responder.url)
  const warnings: object[] = []
  let changes = 0
  const client = new OcspClient(normalizeOcsp({ ocsp: { nonce: false } })!, { warn: (details) => { warnings.push(details) }, info: () => {} }, () => { changes++ }, () => [x509(pki.root)])
  t.teardown(() => client.close())
  const start = Date.now()
  // Captured by the attacker while the certificate was good: valid for a day.
  let captured: Buffer | null = null
  responder.handler = (request) => {
    captured = craftResponse(request, { signer: pki.responder, status: 'good', thisUpdate: start - 3_600_000, nextUpdate: start + 86_400_000 })
    return craftResponse(request, { signer: pki.responder, status: 'revoked', thisUpdate: start - 1000, nextUpdate: start + 60_000 })
  }
  t.equal((await settledCheck(client, x509(leaf), [x509(pki.root)])).error, 'CERT_REVOKED', 'the responder says revoked')
  // The attacker on the path now answers every request with the captured good answer.
  responder.handler = () => captured!
  const later = start + 61_000
  client.check(x509(leaf), [], [x509(pki.root)], later, false)
  await waitFor(() => responder.requests.length >= 2 && (warnings.length > 0 || changes > 0), 'the refresh')
  t.equal(client.check(x509(leaf), [], [x509(pki.root)], later, false).error, 'CERT_REVOKED', 'the replayed older good answer does not un-revoke the certificate')
  t.equal(changes, 0, 'no verdict change')
})

t.test('a revoked answer is not forgotten when it goes stale while the responder is blocked', async (t) => {
  const pki = ocspPki
  const responder = await startOcspResponder(pki)
  t.teardown(responder.close)
  const leaf = pki.issue('stale-revoked', responder.url)
  const start = Date.now()
  responder.handler = (request) => craftResponse(request, { signer: pki.responder, status: 'revoked', thisUpdate: start - 1000, nextUpdate: start + 60_000 })
  for (const [mode, fallback] of [['soft-fail', false], ['strict', true]] as const) {
    const client = new OcspClient(normalizeOcsp({ ocsp: { mode, clockSkew: 0 } })!, quiet, () => {}, () => [x509(pki.root)])
    t.teardown(() => client.close())
    responder.mode = 'ok'
    t.equal((await settledCheck(client, x509(leaf), [x509(pki.root)], start, fallback)).error, 'CERT_REVOKED', `${mode}: revoked while the responder answers`)
    responder.mode = 'down'
    const check = await settledCheck(client, x509(leaf), [x509(pki.root)], start + 120_000, fallback)
    t.equal(check.error, 'CERT_REVOKED', `${mode}${fallback ? ' (ocsp-then-crl)' : ''}: still refused once the revoked answer is past nextUpdate and no new one comes`)
  }
})

t.test('cache poisoning: the same serial under two CAs is two cache entries', async (t) => {
  const pki = ocspPki
  const responder = await startOcspResponder(pki)
  t.teardown(responder.close)
  const dir = mkdtempSync(join(tmpdir(), 'review15-serial-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const serial = '0x' + randomBytes(8).toString('hex')
  const leafUnder = (ca: CertFiles, name: string): CertFiles => {
    writeFileSync(join(dir, 'ext'), `basicConstraints = critical, CA:FALSE\nextendedKeyUsage = clientAuth\nauthorityInfoAccess = OCSP;URI:${responder.url}\n`)
    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', name + '.key', '-out', name + '.csr', '-subj', '/CN=same-serial', '-config', '/dev/null'], { cwd: dir, stdio: 'ignore' })
    execFileSync('openssl', ['x509', '-req', '-in', name + '.csr', '-CA', ca.certPath, '-CAkey', ca.keyPath, '-set_serial', serial, '-days', '5', '-extfile', 'ext', '-out', name + '.pem'], { cwd: dir, stdio: 'ignore' })
    return files(dir, name)
  }
  const ours = leafUnder(pki.root, 'ours')
  const theirs = leafUnder(lookAlikePki.root, 'theirs')
  t.equal(x509(ours).serialNumber, x509(theirs).serialNumber, 'same serial, same issuer name')
  const lookAlikeKeyHash = createHash('sha1').update(certIdOf(x509(theirs), x509(lookAlikePki.root)).issuerKey).digest()
  responder.handler = (request) => {
    const theirsAsked = readRequest(request).certId.includes(lookAlikeKeyHash)
    return craftResponse(request, theirsAsked ? { signer: lookAlikePki.root, certs: [], status: 'good' } : { signer: pki.root, certs: [], status: 'revoked' })
  }
  const client = new OcspClient(normalizeOcsp({ ocsp: true })!, quiet, () => {}, () => [x509(pki.root), x509(lookAlikePki.root)])
  t.teardown(() => client.close())
  t.equal((await settledCheck(client, x509(theirs), [x509(lookAlikePki.root)])).error, null, 'the look-alike CA\'s certificate is good')
  t.equal((await settledCheck(client, x509(ours), [x509(pki.root)])).error, 'CERT_REVOKED', 'ours is revoked: the other CA\'s good answer is not used for it')
  t.equal(responder.requests.length, 2, 'one request per (issuer, serial)')
})

t.test('many concurrent checks share one request; a responder redirect is not followed', async (t) => {
  const pki = ocspPki
  const responder = await startOcspResponder(pki)
  t.teardown(responder.close)
  const leaf = pki.issue('shared', responder.url)
  const client = new OcspClient(normalizeOcsp({ ocsp: true })!, quiet, () => {}, () => [x509(pki.root)])
  t.teardown(() => client.close())
  const checks = Array.from({ length: 50 }, () => client.check(x509(leaf), [], [x509(pki.root)], Date.now(), false))
  t.ok(checks.every((check) => check.error === REVOCATION_PENDING), 'all wait')
  await client.settled()
  t.equal(responder.requests.length, 1, 'one request for fifty checks')

  let followed = 0
  const target = createServer((_request, response) => { followed++; response.writeHead(200).end() })
  const redirector = createServer((_request, response) => { response.writeHead(307, { location: responder.url }).end() })
  await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve))
  await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { target.close(); redirector.close() })
  const redirected = new OcspClient(normalizeOcsp({ ocsp: { url: `http://127.0.0.1:${(redirector.address() as AddressInfo).port}/` } })!, quiet, () => {}, () => [x509(pki.root)])
  t.teardown(() => redirected.close())
  t.equal((await settledCheck(redirected, x509(leaf), [x509(pki.root)])).error, 'REVOCATION_UNAVAILABLE', 'strict: a redirect is no answer')
  t.equal(followed + responder.requests.length, 1, 'the redirect was not followed')
})

t.test('a fetch that ends after close changes nothing', async (t) => {
  const pki = ocspPki
  const responder = await startOcspResponder(pki)
  t.teardown(responder.close)
  const leaf = pki.issue('closing', responder.url)
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  responder.handler = async (request) => { await gate; return craftResponse(request, { signer: pki.responder, status: 'revoked' }) }
  let changes = 0
  const client = new OcspClient(normalizeOcsp({ ocsp: true })!, quiet, () => { changes++ }, () => [x509(pki.root)])
  t.equal(client.check(x509(leaf), [], [x509(pki.root)], Date.now(), false).error, REVOCATION_PENDING)
  client.close()
  release()
  await client.settled()
  t.equal(changes, 0, 'no generation bump after close')
  t.equal(client.check(x509(leaf), [], [x509(pki.root)], Date.now(), false).error, 'REVOCATION_UNAVAILABLE', 'closed: strict refuses, nothing fetched')
  t.equal(responder.requests.length, 1)
})

t.test('strict OCSP: responder down, HTTP 500, wrong type, hang past timeout: no admission', async (t) => {
  const pki = ocspPki
  const responder = await startOcspResponder(pki)
  t.teardown(responder.close)
  const leaf = pki.issue('failing', responder.url)
  for (const mode of ['down', 'error', 'hang'] as const) {
    const client = new OcspClient(normalizeOcsp({ ocsp: { timeout: 300 } })!, quiet, () => {}, () => [x509(pki.root)])
    t.teardown(() => client.close())
    responder.mode = mode
    t.equal((await settledCheck(client, x509(leaf), [x509(pki.root)])).error, 'REVOCATION_UNAVAILABLE', mode)
  }
  responder.mode = 'ok'
  const wrongType = createServer((_request, response) => { response.writeHead(200, { 'content-type': 'text/html' }).end(Buffer.alloc(10)) })
  await new Promise<void>((resolve) => wrongType.listen(0, '127.0.0.1', resolve))
  t.teardown(() => wrongType.close())
  const client = new OcspClient(normalizeOcsp({ ocsp: { url: `http://127.0.0.1:${(wrongType.address() as AddressInfo).port}/` } })!, quiet, () => {}, () => [x509(pki.root)])
  t.teardown(() => client.close())
  t.equal((await settledCheck(client, x509(leaf), [x509(pki.root)])).error, 'REVOCATION_UNAVAILABLE', 'text/html')
})

t.test('an AIA with file:, https:, credentials or ldap: is not a responder', async (t) => {
  const pki = ocspPki
  for (const url of ['file:///etc/passwd', 'ldap://127.0.0.1/cn=x', 'http://user:pw@127.0.0.1/', 'https://127.0.0.1/']) {
    t.equal(responderOf(x509(pki.issue('aia-' + createHash('sha1').update(url).digest('hex').slice(0, 6), url))), null, url)
  }
})

// ---------------------------------------------------------------------------------------------------------------
// The verdict: order and fall-through (verdict.ts).
// ---------------------------------------------------------------------------------------------------------------

/** The verdict on a leaf with a responder (blocked) and no distribution point, OCSP in `mode`, CRLs strict. */
async function blockedResponderVerdict (t: Test, mode: 'strict' | 'soft-fail', name: string): Promise<[boolean, string | null]> {
  const pki = ocspPki
  const responder = await startOcspResponder(pki)
  t.teardown(responder.close)
  responder.mode = 'down'
  const leaf = pki.issue(name, responder.url)
  const anchors = (): X509Certificate[] => [x509(pki.root)]
  const ocsp = new OcspClient(normalizeOcsp({ ocsp: { mode }, distributionPoints: { mode: 'strict' }, order: 'ocsp-then-crl' })!, quiet, () => {}, anchors)
  const points = new DistributionPoints(normalizeRevocation({ distributionPoints: { mode: 'strict' } })!, quiet, () => {}, anchors)
  t.teardown(() => { ocsp.close(); points.close() })
  const lists = { proxyCa: null, crl: null, ocsp, distributionPoints: points }
  const fields = certificateFields(x509(leaf))
  let verdict = judge(lists, fields, true, null, null, null, Date.now())
  if (verdict.verifyError === REVOCATION_PENDING) {
    await ocsp.settled()
    verdict = judge(lists, fields, true, null, null, null, Date.now())
  }
  return [verdict.verified, verdict.verifyError]
}

t.test('ocsp-then-crl, both strict: a blocked responder does not admit a leaf that no CRL covers', async (t) => {
  t.same(await blockedResponderVerdict(t, 'strict', 'no-cdp'), [false, 'REVOCATION_UNAVAILABLE'],
    'no OCSP answer and no CRL that covers the leaf: strict on both sides must not admit it')
})

t.test('ocsp-then-crl, OCSP soft-fail: a blocked responder with no CRL covering the leaf admits, as soft-fail says', async (t) => {
  t.same(await blockedResponderVerdict(t, 'soft-fail', 'no-cdp-soft'), [true, null], 'OCSP soft-fail decides a leaf no CRL covers: admitted (and logged)')
})

t.test('a certificate that did not verify never makes the server contact its responder', async (t) => {
  const pki = ocspPki
  const responder = await startOcspResponder(pki)
  t.teardown(responder.close)
  const leaf = pki.issue('unverified', responder.url)
  const ocsp = new OcspClient(normalizeOcsp({ ocsp: true })!, quiet, () => {}, () => [x509(pki.root)])
  t.teardown(() => ocsp.close())
  const verdict = judge({ proxyCa: null, crl: null, ocsp }, certificateFields(x509(leaf)), false, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', null, null, Date.now())
  t.equal(verdict.verified, false)
  await ocsp.settled()
  t.equal(responder.requests.length, 0, 'no request')
})

// ---------------------------------------------------------------------------------------------------------------
// CRL distribution points: rollback, substitution, unverified URLs; fetch limits.
// ---------------------------------------------------------------------------------------------------------------

let dpPki: DpPki
let dpLookAlike: DpPki
t.before(() => {
  dpPki = makeDpPki()
  dpLookAlike = makeDpPki() // 'CN=DP Test Root' under another key
})
t.teardown(() => {
  dpPki.cleanup()
  dpLookAlike.cleanup()
})

function crlAt (issuer: CertFiles, revoked: CertFiles[], lastUpdate: number): string {
  const stamp = new Date(lastUpdate).toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z'
  return makeCrl(issuer, revoked.map((c) => c.certPath), ['-crl_lastupdate', stamp, '-crldays', '7'])
}

async function nextDownload (server: { counts: { full: number } }, after: number): Promise<void> {
  await waitFor(() => server.counts.full > after, 'a download')
  // The download's CRL is parsed and put in place a few ticks after the server answered.
  await new Promise((resolve) => setTimeout(resolve, 200))
}

t.test('CRL rollback: an older, still current, genuinely signed CRL does not replace a newer one', async (t) => {
  const server = await startCrlServer()
  t.teardown(server.close)
  const leaf = dpPki.issue('rolled-back', [`crlDistributionPoints = URI:${server.url}/root.crl`])
  const now = Date.now()
  const before = crlAt(dpPki.root, [], now - 3_600_000)
  server.body = crlAt(dpPki.root, [leaf], now - 60_000)
  const points = new DistributionPoints(normalizeRevocation({ distributionPoints: { refresh: 50 } })!, quiet, () => {}, () => [x509(dpPki.root)])
  t.teardown(() => points.close())
  const check = async (): Promise<string | null> => {
    let status = points.check(x509(leaf), [], [x509(dpPki.root)], Date.now())
    if (status.error === REVOCATION_PENDING) {
      await points.settled()
      status = points.check(x509(leaf), [], [x509(dpPki.root)], Date.now())
    }
    return status.error
  }
  t.equal(await check(), 'CERT_REVOKED', 'the current CRL lists it')
  server.body = before
  await nextDownload(server, server.counts.full)
  t.equal(await check(), 'CERT_REVOKED', 'the CRL from before the revocation does not roll it back')
})

t.test('configured URL: a forged CRL, or another CA\'s, does not replace the one that listed the certificate', async (t) => {
  const server = await startCrlServer()
  t.teardown(server.close)
  const leaf = dpPki.issue('configured-only', [])
  const other = makeDpPki('Some Other CA')
  t.teardown(other.cleanup)
  server.body = dpPki.crl([leaf])
  const points = new DistributionPoints(normalizeRevocation({ distributionPoints: { refresh: 50, urls: [server.url + '/ca.crl'] } })!, quiet, () => {}, () => [x509(dpPki.root)])
  t.teardown(() => points.close())
  points.start()
  await points.settled()
  t.equal(points.check(x509(leaf), [], [x509(dpPki.root)], Date.now()).error, 'CERT_REVOKED', 'the configured CRL lists it')
  for (const [name, body] of [['a CRL naming the issuer, signed by a look-alike key', dpLookAlike.crl([])], ['a genuine CRL of another CA', other.crl([])]] as const) {
    server.body = body
    await nextDownload(server, server.counts.full)
    t.equal(points.check(x509(leaf), [], [x509(dpPki.root)], Date.now()).error, 'CERT_REVOKED', name + ': the last good CRL stays in force')
  }
})

t.test('configured URL, first download forged: the issuer\'s certificates are not admitted as "not covered"', async (t) => {
  const server = await startCrlServer()
  t.teardown(server.close)
  const leaf = dpPki.issue('configured-forged', [])
  server.body = dpLookAlike.crl([])
  const points = new DistributionPoints(normalizeRevocation({ distributionPoints: { urls: [server.url + '/ca.crl'] } })!, quiet, () => {}, () => [])
  t.teardown(() => points.close())
  points.start()
  await points.settled()
  t.equal(points.check(x509(leaf), [x509(dpPki.root)], [], Date.now()).error, 'REVOCATION_UNAVAILABLE',
    'strict: a CRL that names the issuer but that its key did not sign is no CRL')
})

t.test('an intermediate nobody verified (proxy without proxy.ca) cannot aim the server at a URL', async (t) => {
  // The forged intermediate bears the real CA's name and key (so the leaf's signature checks out under it) but was
  // issued by the attacker's own root: its CRL distribution point is the attacker's choice.
  let trapped = 0
  const trap = createServer((_request, response) => { trapped++; response.writeHead(404).end() })
  await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve))
  t.teardown(() => trap.close())
  const dir = dpPki.dir
  const attacker = makeDpPki('Attacker Root')
  t.teardown(attacker.cleanup)
  execFileSync('openssl', ['pkey', '-in', dpPki.root.keyPath, '-pubout', '-out', 'root.pub'], { cwd: dir, stdio: 'ignore' })
  writeFileSync(join(dir, 'forged.ext'), `basicConstraints = critical, CA:TRUE\nsubjectKeyIdentifier = hash\nkeyUsage = critical, keyCertSign, cRLSign\ncrlDistributionPoints = URI:http://127.0.0.1:${(trap.address() as AddressInfo).port}/admin/delete-everything\n`)
  execFileSync('openssl', ['x509', '-new', '-subj', '/CN=DP Test Root', '-force_pubkey', 'root.pub', '-CA', attacker.root.certPath, '-CAkey', attacker.root.keyPath,
    '-set_serial', '0x0badc0de', '-days', '5', '-extfile', 'forged.ext', '-out', 'forged.pem'], { cwd: dir, stdio: 'ignore' })
  const forged = new X509Certificate(readFileSync(join(dir, 'forged.pem')))
  const leaf = dpPki.issue('chain-forwarder', [])
  t.ok(x509(leaf).verify(forged.publicKey), 'the leaf checks out under the forged intermediate')
  const points = new DistributionPoints(normalizeRevocation({ distributionPoints: { mode: 'soft-fail' } })!, quiet, () => {}, () => [])
  t.teardown(() => points.close())
  points.check(x509(leaf), [forged, x509(attacker.root)], [], Date.now())
  await points.settled()
  t.equal(trapped, 0, 'the forged intermediate\'s distribution point was not requested')
})

t.test('fetch: redirects to file:, too many redirects, oversized and endless bodies are refused', async (t) => {
  const limits = { timeout: 1000, maxBytes: 1024, dispatcher: undefined }
  const none = { etag: null, lastModified: null }
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const path = request.url ?? '/'
    if (path === '/file') response.writeHead(302, { location: 'file:///etc/passwd' }).end()
    else if (path.startsWith('/loop')) response.writeHead(302, { location: '/loop' + path.length }).end()
    else if (path === '/big') response.writeHead(200, { 'content-length': '1000000' }).end()
    else if (path === '/chunked') {
      response.writeHead(200)
      response.end(Buffer.alloc(4096))
    } else if (path === '/slow') {
      response.writeHead(200)
      const timer = setInterval(() => { response.write('x') }, 50)
      response.on('close', () => clearInterval(timer))
    } else response.writeHead(404).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  await t.rejects(fetchCrl(new URL(base + '/file'), none, limits), /scheme other than http/)
  await t.rejects(fetchCrl(new URL(base + '/loop'), none, limits), /too many redirects/)
  await t.rejects(fetchCrl(new URL(base + '/big'), none, limits), /larger than maxBytes/)
  await t.rejects(fetchCrl(new URL(base + '/chunked'), none, limits), /larger than maxBytes/)
  await t.rejects(fetchCrl(new URL(base + '/slow'), none, { ...limits, maxBytes: 1_000_000 }), 'a body that trickles forever is cut by the timeout')
})

// ---------------------------------------------------------------------------------------------------------------
// The CLI responder and URL options.
// ---------------------------------------------------------------------------------------------------------------

const cliRoot = mkdtempSync(join(tmpdir(), 'review15-cli-'))
t.teardown(() => rmSync(cliRoot, { recursive: true, force: true }))

async function cli (args: string[], signal?: AbortSignal, onStdout?: (text: string) => void): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await main(args, {
    stdout: (text) => { stdout += text; onStdout?.(text) },
    stderr: (text) => { stderr += text },
    stdin: async () => Buffer.alloc(0),
    env: { ...process.env },
    cwd: cliRoot,
    stopped: () => signal ?? AbortSignal.abort()
  })
  return { code, stdout, stderr }
}

async function startCliResponder (t: Test, dir: string): Promise<string> {
  const controller = new AbortController()
  let output = ''
  let listening: (url: string) => void = () => {}
  const ready = new Promise<string>((resolve) => { listening = resolve })
  const done = cli(['ocsp', '--dir', dir, '--port', '0'], controller.signal, (text) => {
    output += text
    const found = / at (http:\/\/[^ ]+\/)\n/.exec(output)
    if (found !== null) listening(found[1]!)
  })
  t.teardown(async () => { controller.abort(); await done })
  return await Promise.race([ready, done.then((result) => { throw new Error('ocsp ended: ' + result.stderr) })])
}

function statusOf (der: Buffer): string {
  const file = join(cliRoot, 'response-' + randomBytes(4).toString('hex') + '.der')
  writeFileSync(file, der)
  return execFileSync('openssl', ['ocsp', '-respin', file, '-resp_text', '-noverify'], { encoding: 'utf8' })
}

t.test('CLI responder: another CA\'s CertID with a serial this CA issued is not answered good; hostile GET paths stay data', async (t) => {
  const dir = join(cliRoot, 'pki')
  const otherDir = join(cliRoot, 'other')
  t.equal((await cli(['ca', '--dir', dir])).code, 0)
  t.equal((await cli(['ca', '--dir', otherDir, '--subject', 'CN=Someone Else'])).code, 0)
  const url = await startCliResponder(t, dir)
  t.match(url, /^http:\/\/127\.0\.0\.1:/, 'listens on loopback by default')
  t.equal((await cli(['issue', 'alice', '--dir', dir, '--ocsp-url', url])).code, 0)
  const alice = new X509Certificate(readFileSync(join(dir, 'issued', 'alice.crt')))
  const ca = new X509Certificate(readFileSync(join(dir, 'ca.crt')))
  const otherCa = new X509Certificate(readFileSync(join(otherDir, 'ca.crt')))
  const post = async (body: Buffer): Promise<{ status: number, der: Buffer }> => {
    const response = await request(url, { method: 'POST', body, headers: { 'content-type': 'application/ocsp-request' } })
    return { status: response.statusCode, der: Buffer.from(await response.body.arrayBuffer()) }
  }
  t.match(statusOf((await post(ocspRequest(certIdOf(alice, ca), randomBytes(16)))).der), /Cert Status: good/, 'control: alice is good')
  const foreign = await post(ocspRequest(certIdOf(alice, otherCa), randomBytes(16)))
  t.notMatch(statusOf(foreign.der), /Cert Status: good/, 'alice\'s serial under another CA is not answered good')

  for (const path of ['/../../../../etc/passwd', '/-index%20%2Fetc%2Fpasswd', '/%ZZ', '/$(touch%20pwned)', '/;rm%20-rf%20~']) {
    const response = await request(url + path.slice(1), { method: 'GET' })
    const der = Buffer.from(await response.body.arrayBuffer())
    t.equal(response.statusCode, 200, path)
    t.same([...der], [0x30, 0x03, 0x0a, 0x01, 0x01], path + ': malformedRequest')
  }
  t.notOk(readFileSync(join(dir, 'index.txt'), 'utf8').includes('passwd'), 'the database is untouched')
  const big = await request(url, { method: 'POST', body: Buffer.alloc(70 * 1024), headers: { 'content-type': 'application/ocsp-request' } }).catch((error: Error) => error)
  t.equal(big instanceof Error ? 413 : big.statusCode, 413, 'a body over 64 KiB gets 413 (or the connection closed)')
})

t.test('CLI --ocsp-url / --crl-url: $VAR and quotes are written literally, not expanded by openssl', async (t) => {
  const dir = join(cliRoot, 'pki-urls')
  t.equal((await cli(['ca', '--dir', dir])).code, 0)
  const url = 'http://127.0.0.1:9/$HOME/"x"/#frag'
  const result = await cli(['issue', 'eve', '--dir', dir, '--ocsp-url', url])
  t.equal(result.code, 0, result.stderr)
  const eve = new X509Certificate(readFileSync(join(dir, 'issued', 'eve.crt')))
  t.equal(responderOf(eve)?.href, new URL(url).href, 'the AIA holds the URL as given')
  for (const bad of ['http://a/\nb', 'http://a/ b', 'gopher://a/', 'http://u:p@a/', 'http://a/,b']) {
    t.equal((await cli(['issue', 'mallory', '--dir', dir, '--ocsp-url', bad])).code, 2, JSON.stringify(bad))
  }
})
