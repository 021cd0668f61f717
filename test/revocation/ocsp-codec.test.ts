// The OCSP codec alone: responders read from authorityInfoAccess, requests openssl reads, and responses refused
// for each thing that can be wrong with them (structure, signer, signature, CertID, times, nonce).
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { createPrivateKey, generateKeyPairSync, sign, X509Certificate } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { certIdOf, nonceValue, ocspRequest, readOcspResponse, responderOf, type Expected } from '../../lib/revocation/ocsp-codec.js'
import { oid, seq, tlv } from '../helpers/der-writer.js'
import { certIdFor, craftResponse, generalizedTime, makeOcspPki, singleResponse, type Craft } from '../helpers/ocsp-pki.js'
import type { CertFiles } from '../helpers/certs.js'

const pki = makeOcspPki()
t.teardown(pki.cleanup)
const leafFiles = pki.issue('leaf', 'http://127.0.0.1:9/')
const leaf = new X509Certificate(leafFiles.certPem)
const issuer = new X509Certificate(pki.root.certPem)
const certId = certIdOf(leaf, issuer)
const nonce = Buffer.alloc(16, 7)
const request = ocspRequest(certId, nonce)

function expected (overrides: Partial<Expected> = {}): Expected {
  return { certId, issuer, nonce, now: Date.now(), clockSkew: 300_000, maxAge: 3_600_000, ...overrides }
}

function craft (options: Partial<Craft> = {}): Buffer {
  return craftResponse(request, { signer: pki.responder, ...options })
}

t.test('the request: openssl reads it, and answers it', async (t) => {
  const path = join(pki.dir, 'codec-request.der')
  writeFileSync(path, request)
  const text = execFileSync('openssl', ['ocsp', '-reqin', path, '-req_text'], { encoding: 'utf8' })
  t.match(text, /Hash Algorithm: sha1/)
  t.match(text, `Serial Number: ${leaf.serialNumber}`)
  t.match(text, /OCSP Nonce:\s+0410(07){16}/)
  const response = join(pki.dir, 'codec-response.der')
  execFileSync('openssl', ['ocsp', '-index', pki.index, '-CA', pki.root.certPath, '-rsigner', pki.responder.certPath, '-rkey', pki.responder.keyPath,
    '-reqin', path, '-respout', response, '-nmin', '5'], { stdio: 'ignore' })
  const { readFileSync } = await import('node:fs')
  t.match(readOcspResponse(readFileSync(response), expected()), { status: 'good', revokedAt: null, reason: null })
  t.ok(ocspRequest(certId, null).length < request.length, 'without the nonce extension')
  t.same(nonceValue(Buffer.from([1])), Buffer.from([4, 1, 1]))
})

t.test('responders from authorityInfoAccess: the first http OCSP URI; others, and unreadable extensions, give none', async (t) => {
  const of = (name: string, lines: string[]): string | null => responderOf(new X509Certificate(pki.issue(name, null, { lines, indexed: false }).certPem))?.href ?? null
  t.equal(of('aia1', ['authorityInfoAccess = caIssuers;URI:http://ca.example/ca.crt, OCSP;URI:https://secure.example/, OCSP;DNS:ocsp.example, OCSP;URI:http://ocsp.example/a, OCSP;URI:http://ocsp.example/b']),
    'http://ocsp.example/a')
  t.equal(of('aia2', [`authorityInfoAccess = OCSP;URI:http://ocsp.example/${'x'.repeat(2100)}`]), null, 'too long')
  t.equal(of('aia3', ['authorityInfoAccess = OCSP;URI:ldap://ocsp.example/']), null, 'not http')
  t.equal(of('aia4', ['1.3.6.1.5.5.7.1.1 = DER:0500']), null, 'an extension that does not read')
  t.equal(of('aia5', []), null, 'no extension')
  t.equal(responderOf(leaf), responderOf(leaf), 'read once per certificate')
})

/** A BasicOCSPResponse assembled from parts, signed by the issuer (ResponderID by name) unless said otherwise. */
function assemble (parts: {
  status?: Buffer
  type?: string
  version?: boolean
  responderId?: Buffer
  producedAt?: Buffer
  singles?: Buffer[]
  extensions?: Buffer[] | null
  algorithm?: Buffer
  signature?: Buffer
  certs?: Buffer[]
  signer?: CertFiles
} = {}): Buffer {
  const signer = parts.signer ?? pki.root
  const data = seq(
    ...(parts.version === true ? [tlv(0xa0, tlv(0x02, Buffer.from([0])))] : []),
    parts.responderId ?? tlv(0xa1, subjectName(signer)),
    parts.producedAt ?? generalizedTime(Date.now()),
    seq(...(parts.singles ?? [singleResponse(certId.der, 'good', Date.now() - 1000, Date.now() + 3_600_000)])),
    ...(parts.extensions === null ? [] : [tlv(0xa1, seq(...(parts.extensions ?? [seq(oid('1.3.6.1.5.5.7.48.1.2'), tlv(0x04, nonceValue(nonce)))])))])
  )
  const signature = parts.signature ?? tlv(0x03, Buffer.from([0]), sign('sha256', data, createPrivateKey(signer.keyPem)))
  const basic = seq(data, parts.algorithm ?? seq(oid('1.2.840.10045.4.3.2')), signature, ...(parts.certs === undefined ? [] : [tlv(0xa0, seq(...parts.certs))]))
  return seq(parts.status ?? tlv(0x0a, Buffer.from([0])), tlv(0xa0, seq(oid(parts.type ?? '1.3.6.1.5.5.7.48.1.1'), tlv(0x04, basic))))
}

/** The subject Name DER of a certificate (what a ResponderID byName holds): the issuer name of a CertID it issued. */
function subjectName (certificate: CertFiles): Buffer {
  const x509 = new X509Certificate(certificate.certPem)
  return certIdOf(x509, x509).issuerName
}

t.test('responses assembled here that read: issuer-signed, revoked with a reason, SHA-256 CertID', async (t) => {
  t.match(readOcspResponse(assemble(), expected()), { status: 'good' })
  const revokedAt = Date.now() - 60_000
  const revoked = seq(certId.der, tlv(0xa1, generalizedTime(revokedAt), tlv(0xa0, tlv(0x0a, Buffer.from([1])))), generalizedTime(Date.now() - 1000))
  t.match(readOcspResponse(assemble({ singles: [revoked] }), expected()), { status: 'revoked', reason: 1, nextUpdate: null })
  const bare = seq(certId.der, tlv(0xa1, generalizedTime(revokedAt)), generalizedTime(Date.now() - 1000))
  t.match(readOcspResponse(assemble({ singles: [bare] }), expected()), { status: 'revoked', reason: null })
  const sha256 = certIdFor(leafFiles, pki.root, 'sha256', '2.16.840.1.101.3.4.2.1')
  t.match(readOcspResponse(assemble({ singles: [singleResponse(sha256, 'unknown', Date.now() - 1000, null)] }), expected()), { status: 'unknown' })
  const withNull = seq(seq(oid('1.3.14.3.2.26'), Buffer.from([5, 0])), ...certIdParts())
  t.match(readOcspResponse(assemble({ singles: [singleResponse(withNull, 'good', Date.now() - 1000, null)] }), expected()), { status: 'good' }, 'SHA-1 with NULL parameters')
  const otherHash = seq(seq(oid('2.16.840.1.101.3.4.2.3')), ...certIdParts())
  const single = singleResponse(certId.der, 'good', Date.now() - 1000, null)
  t.match(readOcspResponse(assemble({ singles: [singleResponse(otherHash, 'revoked', Date.now() - 1000, null), single] }), expected()), { status: 'good' }, 'a CertID hashed with SHA-512 is not ours')
  const extensions = tlv(0xa1, seq(seq(oid('1.3.6.1.5.5.7.48.1.6'), tlv(0x04, generalizedTime(0)))))
  const withExtensions = seq(certId.der, Buffer.from([0x80, 0]), generalizedTime(Date.now() - 1000), extensions)
  t.match(readOcspResponse(assemble({ singles: [withExtensions] }), expected()), { status: 'good' }, 'non-critical single extensions')
  t.match(readOcspResponse(assemble({ extensions: null }), expected({ nonce: null })), { status: 'good' }, 'no nonce asked, none given')
  t.match(readOcspResponse(assemble({ algorithm: seq(oid('1.2.840.10045.4.3.2')) }), expected()), { status: 'good' })
})

/** The CertID's hashes and serial, after its algorithm. */
function certIdParts (): Buffer[] {
  const der = certId.der
  // SEQUENCE { algorithm (11 bytes), nameHash, keyHash, serial }
  const body = der.subarray(2)
  return [body.subarray(11)]
}

t.test('RSA and Ed25519 signers; a key of another type than the algorithm', async (t) => {
  // openssl makes an EC key here; an RSA and an Ed25519 issuer are made from keys of their own.
  for (const type of ['rsa', 'ed25519'] as const) {
    const dir = pki.dir
    const name = type + '-issuer'
    execFileSync('openssl', ['req', '-x509', '-newkey', type === 'rsa' ? 'rsa:2048' : 'ed25519', '-nodes', '-keyout', name + '.key', '-out', name + '.pem', '-subj', '/CN=' + name, '-days', '2', '-config', '/dev/null',
      '-addext', 'basicConstraints=critical,CA:TRUE'], { cwd: dir, stdio: 'ignore' })
    const { readFileSync } = await import('node:fs')
    const files: CertFiles = { name, certPath: join(dir, name + '.pem'), keyPath: join(dir, name + '.key'), certPem: readFileSync(join(dir, name + '.pem'), 'latin1'), keyPem: readFileSync(join(dir, name + '.key'), 'latin1'), der: Buffer.alloc(0) }
    const ownIssuer = new X509Certificate(files.certPem)
    const ownLeafFiles = pki.issue('leaf-of-' + type, null, { issuer: files, indexed: false })
    const ownId = certIdOf(new X509Certificate(ownLeafFiles.certPem), ownIssuer)
    const ownRequest = ocspRequest(ownId, null)
    const response = craftResponse(ownRequest, { signer: { ...files, der: ownIssuer.raw }, certs: [] })
    t.match(readOcspResponse(response, { ...expected({ nonce: null }), certId: ownId, issuer: ownIssuer }), { status: 'good' }, type)
    const wrongType = craftResponse(ownRequest, { signer: { ...files, der: ownIssuer.raw }, certs: [], algorithm: seq(oid('1.2.840.10045.4.3.2')), hash: type === 'rsa' ? 'sha256' : null })
    t.throws(() => readOcspResponse(wrongType, { ...expected({ nonce: null }), certId: ownId, issuer: ownIssuer }), /the signature does not verify/, type + ' key, ECDSA algorithm')
  }
})

t.test('responses refused, each for its reason', async (t) => {
  const now = Date.now()
  const good = (): Buffer => singleResponse(certId.der, 'good', now - 1000, now + 3_600_000)
  const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const noEku = pki.sign('no-eku', ['basicConstraints = CA:FALSE', 'authorityKeyIdentifier = keyid'], pki.root)
  const badEku = pki.sign('bad-eku', ['basicConstraints = CA:FALSE', 'authorityKeyIdentifier = keyid', '2.5.29.37 = DER:30810A06082B06010505070309'], pki.root)
  const cases: Array<[string, Buffer, RegExp, Partial<Expected>?]> = [
    ['trailing data', Buffer.concat([assemble(), Buffer.from([0])]), /trailing data/],
    ['an unsuccessful status', assemble({ status: tlv(0x0a, Buffer.from([3])) }), /the responder answered tryLater/],
    ['an unknown status', assemble({ status: tlv(0x0a, Buffer.from([9])) }), /the responder answered an unknown status/],
    ['a long status', assemble({ status: tlv(0x0a, Buffer.from([0, 0])) }), /the responder answered successful/],
    ['no response bytes', seq(tlv(0x0a, Buffer.from([0]))), /the response bytes is truncated|the response bytes/],
    ['not a basic response', assemble({ type: '1.3.6.1.5.5.7.48.1.9' }), /not a basic OCSP response/],
    ['an unsupported algorithm', assemble({ algorithm: seq(oid('1.2.840.113549.1.1.5'), Buffer.from([5, 0])) }), /the signature algorithm is not supported/],
    ['ECDSA with parameters', assemble({ algorithm: seq(oid('1.2.840.10045.4.3.2'), Buffer.from([5, 0])) }), /unexpected trailing data/],
    ['RSA with parameters not NULL', assemble({ algorithm: seq(oid('1.2.840.113549.1.1.11'), Buffer.from([5, 1, 0])) }), /parameters are not NULL/],
    ['a signature of unused bits', assemble({ signature: tlv(0x03, Buffer.from([1, 0])) }), /not whole bytes/],
    ['an empty signature', assemble({ signature: tlv(0x03) }), /not whole bytes/],
    ['too many certificates', assemble({ certs: Array(5).fill(pki.responder.der) }), /too many certificates/],
    ['a version', assemble({ version: true }), /the response version is not v1/],
    ['a responder ID of another kind', assemble({ responderId: tlv(0xa3, seq()) }), /neither a name nor a key hash/],
    ['producedAt as UTCTime', assemble({ producedAt: tlv(0x17, Buffer.from('250101000000Z')) }), /producedAt is not a GeneralizedTime/],
    ['a signature by a stranger in the issuer\'s name', assemble({ signature: tlv(0x03, Buffer.from([0]), sign('sha256', Buffer.from('x'), stranger.privateKey)) }), /does not verify/],
    ['a delegated certificate that does not read', assemble({ signer: pki.responder, certs: [seq(tlv(0x02, Buffer.from([1])))] }), /neither the issuer nor a certificate the response carries/],
    ['a delegated certificate without EKU', assemble({ signer: noEku, certs: [noEku.der] }), /lacks the OCSPSigning/],
    ['a delegated certificate whose EKU is not DER (OpenSSL reads OCSPSigning there)', assemble({ signer: badEku, certs: [badEku.der] }), /lacks the OCSPSigning/],
    ['a delegated certificate not yet valid', assemble({ signer: pki.responder, certs: [pki.responder.der] }), /outside its validity/, { now: now - 86_400_000 * 2 }],
    ['a delegated certificate expired', assemble({ signer: pki.responder, certs: [pki.responder.der] }), /outside its validity/, { now: now + 86_400_000 * 60 }],
    ['a repeated response extension', assemble({ extensions: [seq(oid('1.3.6.1.5.5.7.48.1.2'), tlv(0x04, nonceValue(nonce))), seq(oid('1.3.6.1.5.5.7.48.1.2'), tlv(0x04, nonceValue(nonce)))] }), /an extension is repeated/],
    ['an unknown critical response extension', assemble({ extensions: [seq(oid('1.2.3.4'), tlv(0x01, Buffer.from([0xff])), tlv(0x04, Buffer.alloc(0)))] }), /unknown critical extension/],
    ['the nonce of another request', assemble({ extensions: [seq(oid('1.3.6.1.5.5.7.48.1.2'), tlv(0x04, nonceValue(Buffer.alloc(16, 8))))] }), /the nonce does not match/],
    ['no nonce', assemble({ extensions: null }), /does not echo the nonce/],
    ['answers twice', assemble({ singles: [good(), good()] }), /answers twice/],
    ['no answer', assemble({ singles: [] }), /does not answer for the certificate/],
    ['a status NULL with content', assemble({ singles: [seq(certId.der, Buffer.from([0x80, 1, 0]), generalizedTime(now))] }), /not NULL/],
    ['a status of another kind', assemble({ singles: [seq(certId.der, Buffer.from([0x83, 0]), generalizedTime(now))] }), /not good, revoked or unknown/],
    ['a long revocation reason', assemble({ singles: [seq(certId.der, tlv(0xa1, generalizedTime(now), tlv(0xa0, tlv(0x0a, Buffer.from([0, 1])))), generalizedTime(now))] }), /reason is out of range/],
    ['CertID parameters not NULL', assemble({ singles: [singleResponse(seq(seq(oid('1.3.14.3.2.26'), tlv(0x02, Buffer.from([0]))), ...certIdParts()), 'good', now, null)] }), /has an unexpected type/],
    ['a critical single extension', assemble({ singles: [seq(certId.der, Buffer.from([0x80, 0]), generalizedTime(now), tlv(0xa1, seq(seq(oid('1.2.3'), tlv(0x01, Buffer.from([0xff])), tlv(0x04)))))] }), /unknown critical extension/],
    ['nextUpdate before thisUpdate', assemble({ singles: [singleResponse(certId.der, 'good', now - 1000, now - 2000)] }), /nextUpdate is before thisUpdate/],
    ['too old without nextUpdate', assemble({ singles: [singleResponse(certId.der, 'good', now - 7_200_000, null)] }), /too old/],
    ['stale', assemble({ singles: [singleResponse(certId.der, 'good', now - 7_200_000, now - 3_600_000)] }), /stale/],
    ['in the future', craft({ thisUpdate: now + 3_600_000 }), /in the future/]
  ]
  for (const [name, der, message, overrides] of cases) t.throws(() => readOcspResponse(der, expected(overrides)), message, name)
  t.match(readOcspResponse(assemble({ singles: [singleResponse(certId.der, 'good', now - 7_200_000, null)] }), expected({ maxAge: 10_000_000 })), { status: 'good' }, 'old is a matter of cacheTtl')
  t.match(readOcspResponse(craft({ responderId: 'key' }), expected()), { status: 'good' }, 'a delegated responder by key hash')
  t.match(readOcspResponse(craft({ certs: [leafFiles, pki.responder] }), expected()), { status: 'good' }, 'another certificate carried before the responder\'s')
})

t.test('a long nonce: the request\'s lengths in long form, as openssl reads them', async (t) => {
  const long = ocspRequest(certId, Buffer.alloc(200, 1))
  t.equal(long[1], 0x82)
  const path = join(pki.dir, 'long-request.der')
  writeFileSync(path, long)
  t.match(execFileSync('openssl', ['ocsp', '-reqin', path, '-req_text'], { encoding: 'utf8' }), /OCSP Nonce:\s+0481C8(01)+/)
})
