// OCSP (RFC 6960) on the wire: the request written, the responder's address read from a certificate, and the
// response read strictly with the project's DER reader and checked (signer, CertID, times, nonce). No Fastify here.
import { createHash, verify, X509Certificate, type KeyObject } from 'node:crypto'
import { BIT_STRING, CONTEXT_0, CONTEXT_1, Cursor, GENERALIZED_TIME, INTEGER, OCTET_STRING, OID, readTime, SEQUENCE, type Tlv } from '../codecs/der.js'
import { readBoolean, walkOf } from '../codecs/x509.js'
import { readExtensions } from '../policy/chain.js'
import { httpUrl } from './fetch.js'

/** A response that does not count, for a reason the log may show (never a client). */
export class OcspResponseError extends Error {}

function refuse (message: string): never {
  throw new OcspResponseError(message)
}

// OIDs as the hex of their DER content, which is what the reader has at hand.
const AUTHORITY_INFO_ACCESS = '2b06010505070101' // 1.3.6.1.5.5.7.1.1
const AD_OCSP = '2b06010505073001' // 1.3.6.1.5.5.7.48.1
const OCSP_BASIC = '2b0601050507300101' // 1.3.6.1.5.5.7.48.1.1
const OCSP_NONCE = '2b0601050507300102' // 1.3.6.1.5.5.7.48.1.2
const OCSP_SIGNING = '2b06010505070309' // 1.3.6.1.5.5.7.3.9
const SHA1 = '2b0e03021a'
const SHA256 = '608648016503040201'
const URI = 0x86
const ENUMERATED = 0x0a
const NULL = 0x05
const MAX_URL_LENGTH = 2048
// A response carries the delegated responder's certificate, perhaps its issuer: more is no reason to try more.
const MAX_RESPONSE_CERTIFICATES = 4

/** What identifies a certificate to its responder (RFC 6960 4.1.1 CertID), and the parts it is hashed from. */
export interface CertId {
  /** The CertID's DER (SHA-1 hashes), as the request sends it. */
  readonly der: Buffer
  /** The cache key: issuer key hash, issuer name hash and serial, in hex. */
  readonly key: string
  /** The issuer's subject Name, DER. */
  readonly issuerName: Buffer
  /** The issuer's public key: the subjectPublicKey BIT STRING's bits, without the unused-bits byte. */
  readonly issuerKey: Buffer
  /** The serial INTEGER's content. */
  readonly serial: Buffer
}

function tlv (tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts)
  const length: number[] = []
  for (let n = body.length; n > 0; n = Math.floor(n / 256)) length.unshift(n & 0xff)
  // DER: the short form below 128, else the count of length bytes first.
  const head = body.length < 0x80 ? [body.length] : [0x80 | length.length, ...length]
  return Buffer.concat([Buffer.from([tag, ...head]), body])
}

const SHA1_ALGORITHM = Buffer.from('300906052b0e03021a0500', 'hex')

/** The public key bits of a certificate's SubjectPublicKeyInfo: what key hashes (CertID, ResponderID byKey) cover. */
function keyBits (certificate: X509Certificate): { name: Buffer, key: Buffer } {
  const walk = walkOf(certificate)
  const spki = new Cursor(walk.der, walk.publicKey.contentStart, walk.publicKey.end)
  spki.read(SEQUENCE, 'the public key algorithm')
  const bits = spki.read(BIT_STRING, 'the public key')
  return { name: walk.der.subarray(walk.subject.start, walk.subject.end), key: walk.der.subarray(bits.contentStart + 1, bits.end) }
}

/** The CertID of `leaf` as issued by `issuer`; throws (CertificateParseError) when either does not read as DER. */
export function certIdOf (leaf: X509Certificate, issuer: X509Certificate): CertId {
  const walk = walkOf(leaf)
  const serial = walk.der.subarray(walk.serial.contentStart, walk.serial.end)
  const { name: issuerName, key: issuerKey } = keyBits(issuer)
  const nameHash = createHash('sha1').update(issuerName).digest()
  const keyHash = createHash('sha1').update(issuerKey).digest()
  const der = tlv(SEQUENCE, SHA1_ALGORITHM, tlv(OCTET_STRING, nameHash), tlv(OCTET_STRING, keyHash), tlv(INTEGER, serial))
  return { der, key: `${keyHash.toString('hex')}:${nameHash.toString('hex')}:${serial.toString('hex')}`, issuerName, issuerKey, serial }
}

/** The nonce extension's value (RFC 8954: an OCTET STRING in the extnValue), as sent and as it must come back. */
export function nonceValue (nonce: Buffer): Buffer {
  return tlv(OCTET_STRING, nonce)
}

/** An unsigned OCSPRequest for one certificate, with the nonce extension when `nonce` is given. */
export function ocspRequest (certId: CertId, nonce: Buffer | null): Buffer {
  const requestList = tlv(SEQUENCE, tlv(SEQUENCE, certId.der))
  const extensions = nonce === null
    ? []
    : [tlv(0xa2, tlv(SEQUENCE, tlv(SEQUENCE, Buffer.from('06092b0601050507300102', 'hex'), tlv(OCTET_STRING, nonceValue(nonce)))))]
  return tlv(SEQUENCE, tlv(SEQUENCE, requestList, ...extensions))
}

const responders = new WeakMap<X509Certificate, URL | null>()

/**
 * The first `http:` OCSP responder of a certificate's authorityInfoAccess, or `null`. RFC 6960 responders are
 * plain HTTP (the answer is signed); an `https:` one would need TLS checks of its own, and `ldap:` and the like are
 * no responders. A certificate whose extension does not read is taken as having none.
 */
export function responderOf (certificate: X509Certificate): URL | null {
  let url = responders.get(certificate)
  if (url !== undefined) return url
  url = null
  try {
    const walk = walkOf(certificate)
    const extension = walk.extensions.find((ext) => ext.id === AUTHORITY_INFO_ACCESS)
    if (extension !== undefined) {
      const value = new Cursor(walk.der, extension.value.contentStart, extension.value.end)
      const descriptions = value.into(value.read(SEQUENCE, 'the authority information access'))
      while (!descriptions.done && url === null) {
        const description = descriptions.into(descriptions.read(SEQUENCE, 'an access description'))
        const method = description.hex(description.read(OID, 'an access method'))
        const location = description.any('an access location')
        if (method !== AD_OCSP || location.tag !== URI || location.end - location.contentStart > MAX_URL_LENGTH) continue
        const found = httpUrl(walk.der.toString('latin1', location.contentStart, location.end))
        if (found !== null && found.protocol === 'http:') url = found
      }
    }
  } catch {
    url = null
  }
  responders.set(certificate, url)
  return url
}

interface SignatureAlgorithm {
  readonly hash: string | null
  readonly keyType: string
  /** RSA's AlgorithmIdentifier may carry NULL parameters; the others carry none. */
  readonly nullParameters: boolean
}

const SIGNATURE_ALGORITHMS = new Map<string, SignatureAlgorithm>([
  ['2a864886f70d01010b', { hash: 'sha256', keyType: 'rsa', nullParameters: true }], // sha256WithRSAEncryption
  ['2a864886f70d01010c', { hash: 'sha384', keyType: 'rsa', nullParameters: true }],
  ['2a864886f70d01010d', { hash: 'sha512', keyType: 'rsa', nullParameters: true }],
  ['2a8648ce3d040302', { hash: 'sha256', keyType: 'ec', nullParameters: false }], // ecdsa-with-SHA256
  ['2a8648ce3d040303', { hash: 'sha384', keyType: 'ec', nullParameters: false }],
  ['2a8648ce3d040304', { hash: 'sha512', keyType: 'ec', nullParameters: false }],
  ['2b6570', { hash: null, keyType: 'ed25519', nullParameters: false }] // Ed25519
])

const CERT_ID_HASHES = new Map([[SHA1, 'sha1'], [SHA256, 'sha256']])

function readAlgorithm (c: Cursor): SignatureAlgorithm {
  const seq = c.into(c.read(SEQUENCE, 'the signature algorithm'))
  const algorithm = SIGNATURE_ALGORITHMS.get(seq.hex(seq.read(OID, 'the signature algorithm')))
  if (algorithm === undefined) refuse('the signature algorithm is not supported')
  if (algorithm.nullParameters && seq.peek() === NULL) readNull(seq, 'the signature algorithm parameters')
  seq.finish('the signature algorithm')
  return algorithm
}

function readNull (c: Cursor, what: string): void {
  const tlv = c.read(NULL, what)
  if (tlv.end !== tlv.contentStart) refuse(`${what} are not NULL`)
}

function readGeneralizedTime (c: Cursor, what: string): number {
  if (c.peek() !== GENERALIZED_TIME) refuse(`${what} is not a GeneralizedTime`)
  return readTime(c, what)
}

/** The value inside an EXPLICIT tag, which must hold exactly one. */
function explicit (c: Cursor, tlv: Tlv, what: string): Cursor {
  const inner = c.into(tlv)
  const value = inner.any(what)
  inner.finish(what)
  return new Cursor(c.buf, value.start, value.end)
}

/** Extensions { id → value TLV }; a critical one not in `known` refuses the response. */
function readExtensionsList (c: Cursor, known: ReadonlySet<string>, what: string): Map<string, Tlv> {
  const list = c.into(c.read(SEQUENCE, what))
  const found = new Map<string, Tlv>()
  while (!list.done) {
    const extension = list.into(list.read(SEQUENCE, 'an extension'))
    const id = extension.hex(extension.read(OID, 'an extension ID'))
    if (found.has(id)) refuse('an extension is repeated')
    const flag = extension.optional(0x01, 'the critical flag')
    const value = extension.read(OCTET_STRING, 'the extension value')
    extension.finish('an extension')
    if (flag !== null && readBoolean(c.buf, flag) && !known.has(id)) refuse(`${what} hold an unknown critical extension`)
    found.set(id, value)
  }
  return found
}

export type CertStatus = 'good' | 'revoked' | 'unknown'

/** The answer for our certificate, from a response that verified. */
export interface SingleAnswer {
  readonly status: CertStatus
  readonly thisUpdate: number
  readonly nextUpdate: number | null
  readonly revokedAt: number | null
  /** RFC 5280 CRLReason, when the responder gave one. */
  readonly reason: number | null
}

export interface Expected {
  readonly certId: CertId
  readonly issuer: X509Certificate
  /** The nonce sent, or `null` when none was. */
  readonly nonce: Buffer | null
  readonly now: number
  readonly clockSkew: number
  /** An answer without nextUpdate older than this (plus clockSkew) is too old to count. */
  readonly maxAge: number
}

const RESPONSE_STATUS = ['successful', 'malformedRequest', 'internalError', 'tryLater', '4', 'sigRequired', 'unauthorized']

interface Single {
  readonly matches: boolean
  readonly answer: SingleAnswer
}

function readSingle (c: Cursor, expected: Expected): Single {
  const single = c.into(c.read(SEQUENCE, 'a single response'))
  const certId = single.into(single.read(SEQUENCE, 'a CertID'))
  const algorithm = certId.into(certId.read(SEQUENCE, 'the CertID hash algorithm'))
  const hash = CERT_ID_HASHES.get(algorithm.hex(algorithm.read(OID, 'the CertID hash algorithm')))
  if (!algorithm.done) readNull(algorithm, 'the CertID hash algorithm parameters')
  algorithm.finish('the CertID hash algorithm')
  const nameHash = certId.read(OCTET_STRING, 'the issuer name hash')
  const keyHash = certId.read(OCTET_STRING, 'the issuer key hash')
  const serial = certId.read(INTEGER, 'the serial number')
  certId.finish('a CertID')
  const buf = c.buf
  const ours = expected.certId
  // A CertID hashed another way than SHA-1 or SHA-256 cannot be ours: another certificate's, as far as we know.
  const matches = hash !== undefined &&
    buf.subarray(serial.contentStart, serial.end).equals(ours.serial) &&
    buf.subarray(nameHash.contentStart, nameHash.end).equals(createHash(hash).update(ours.issuerName).digest()) &&
    buf.subarray(keyHash.contentStart, keyHash.end).equals(createHash(hash).update(ours.issuerKey).digest())
  const statusTlv = single.any('the certificate status')
  let status: CertStatus
  let revokedAt: number | null = null
  let reason: number | null = null
  if (statusTlv.tag === 0x80 || statusTlv.tag === 0x82) {
    if (statusTlv.end !== statusTlv.contentStart) refuse('the certificate status is not NULL')
    status = statusTlv.tag === 0x80 ? 'good' : 'unknown'
  } else if (statusTlv.tag === CONTEXT_1) {
    status = 'revoked'
    const info = single.into(statusTlv)
    revokedAt = readGeneralizedTime(info, 'the revocation time')
    const reasonTag = info.optional(CONTEXT_0, 'the revocation reason')
    if (reasonTag !== null) {
      const value = explicit(info, reasonTag, 'the revocation reason')
      const enumerated = value.read(ENUMERATED, 'the revocation reason')
      if (enumerated.end - enumerated.contentStart !== 1) refuse('the revocation reason is out of range')
      reason = buf[enumerated.contentStart]!
    }
    info.finish('the revocation information')
  } else {
    refuse('the certificate status is not good, revoked or unknown')
  }
  const thisUpdate = readGeneralizedTime(single, 'thisUpdate')
  const next = single.optional(CONTEXT_0, 'nextUpdate')
  const nextUpdate = next === null ? null : readGeneralizedTime(explicit(single, next, 'nextUpdate'), 'nextUpdate')
  const extensions = single.optional(CONTEXT_1, 'the single extensions')
  if (extensions !== null) readExtensionsList(explicit(single, extensions, 'the single extensions'), new Set(), 'the single extensions')
  single.finish('a single response')
  return { matches, answer: { status, thisUpdate, nextUpdate, revokedAt, reason } }
}

/** Whether the ResponderID names this certificate: its subject Name's DER, or the SHA-1 of its key bits. */
function responderIs (responder: Tlv, buf: Buffer, certificate: X509Certificate): boolean {
  const { name, key } = keyBits(certificate)
  const inner = new Cursor(buf, responder.contentStart, responder.end)
  if (responder.tag === CONTEXT_1) {
    const value = inner.read(SEQUENCE, 'the responder name')
    return buf.subarray(value.start, value.end).equals(name)
  }
  const value = inner.read(OCTET_STRING, 'the responder key hash')
  return buf.subarray(value.contentStart, value.end).equals(createHash('sha1').update(key).digest())
}

/**
 * The key that must have signed the response (RFC 6960 4.2.2.2): the issuer's own when the ResponderID names
 * it; else that of a certificate in `certs` the ResponderID names, issued by the issuer (names and its key's
 * signature), with extendedKeyUsage id-kp-OCSPSigning, within its validity. Nothing else is trusted: a responder
 * certificate issued by another CA, or without the usage, refuses the response.
 */
function signerKey (responder: Tlv, buf: Buffer, certs: readonly Tlv[], expected: Expected): KeyObject {
  const { issuer, now } = expected
  if (responderIs(responder, buf, issuer)) return issuer.publicKey
  let reason = 'the responder is neither the issuer nor a certificate the response carries'
  for (const tlv of certs) {
    let candidate: X509Certificate
    try {
      candidate = new X509Certificate(buf.subarray(tlv.start, tlv.end))
      if (!responderIs(responder, buf, candidate)) continue
    } catch {
      continue
    }
    const usage = readExtensions(candidate)?.extendedKeyUsage
    if (!candidate.checkIssued(issuer) || !candidate.verify(issuer.publicKey)) {
      reason = 'the responder certificate is not issued by the certificate\'s issuer'
    } else if (usage == null || !usage.includes(OCSP_SIGNING)) {
      reason = 'the responder certificate lacks the OCSPSigning extended key usage'
    } else if (now < Date.parse(candidate.validFrom) || now > Date.parse(candidate.validTo)) {
      reason = 'the responder certificate is outside its validity'
    } else {
      return candidate.publicKey
    }
  }
  return refuse(reason)
}

/**
 * Reads an OCSPResponse (RFC 6960 4.2.1) and returns the answer for `expected.certId`. Throws for anything that
 * does not count: not DER, an unsuccessful responseStatus, not a BasicOCSPResponse, a signature that does not
 * verify with the issuer's key or a delegated responder's (an unsupported algorithm, a key of another type), no
 * answer or two answers for our certificate, thisUpdate in the future or nextUpdate past (beyond clockSkew), a
 * nonce sent and not echoed byte for byte.
 */
export function readOcspResponse (der: Buffer, expected: Expected): SingleAnswer {
  const top = new Cursor(der, 0, der.length)
  const outer = top.into(top.read(SEQUENCE, 'the OCSP response'))
  top.finish('the OCSP response')
  const status = outer.read(ENUMERATED, 'the response status')
  if (status.end - status.contentStart !== 1 || der[status.contentStart] !== 0) {
    refuse(`the responder answered ${RESPONSE_STATUS[der[status.contentStart]!] ?? 'an unknown status'}`)
  }
  const bytesTag = outer.read(CONTEXT_0, 'the response bytes')
  outer.finish('the OCSP response')
  const bytes = explicit(outer, bytesTag, 'the response bytes')
  const responseBytes = bytes.into(bytes.read(SEQUENCE, 'the response bytes'))
  if (responseBytes.hex(responseBytes.read(OID, 'the response type')) !== OCSP_BASIC) refuse('the response is not a basic OCSP response')
  const octets = responseBytes.read(OCTET_STRING, 'the basic response')
  responseBytes.finish('the response bytes')
  const wrapper = responseBytes.into(octets)
  const basic = wrapper.into(wrapper.read(SEQUENCE, 'the basic response'))
  wrapper.finish('the basic response')
  const tbs = basic.read(SEQUENCE, 'the response data')
  const algorithm = readAlgorithm(basic)
  const signature = basic.read(BIT_STRING, 'the signature')
  if (signature.end === signature.contentStart || der[signature.contentStart] !== 0) refuse('the signature is not whole bytes')
  const certs: Tlv[] = []
  const certsTag = basic.optional(CONTEXT_0, 'the certificates')
  if (certsTag !== null) {
    const list = explicit(basic, certsTag, 'the certificates')
    const sequence = list.into(list.read(SEQUENCE, 'the certificates'))
    while (!sequence.done) certs.push(sequence.read(SEQUENCE, 'a certificate'))
    if (certs.length > MAX_RESPONSE_CERTIFICATES) refuse('the response carries too many certificates')
  }
  basic.finish('the basic response')

  const data = basic.into(tbs)
  if (data.peek() === CONTEXT_0) refuse('the response version is not v1')
  const responder = data.any('the responder ID')
  if (responder.tag !== CONTEXT_1 && responder.tag !== 0xa2) refuse('the responder ID is neither a name nor a key hash')
  readGeneralizedTime(data, 'producedAt')
  const responses = data.into(data.read(SEQUENCE, 'the responses'))
  const extensionsTag = data.optional(CONTEXT_1, 'the response extensions')
  data.finish('the response data')

  const key = signerKey(responder, der, certs, expected)
  // A key of another type than the algorithm's (an RSA key for an ECDSA signature) did not make it. Node's verify
  // throws only for a digest it lacks, and every digest of the table is one it has.
  const valid = key.asymmetricKeyType === algorithm.keyType &&
    verify(algorithm.hash, der.subarray(tbs.start, tbs.end), key, der.subarray(signature.contentStart + 1, signature.end))
  if (!valid) refuse('the signature does not verify with the responder\'s key')

  const extensions = extensionsTag === null ? new Map<string, Tlv>() : readExtensionsList(explicit(data, extensionsTag, 'the response extensions'), new Set([OCSP_NONCE]), 'the response extensions')
  if (expected.nonce !== null) {
    const echoed = extensions.get(OCSP_NONCE)
    if (echoed === undefined) refuse('the response does not echo the nonce')
    if (!der.subarray(echoed.contentStart, echoed.end).equals(nonceValue(expected.nonce))) refuse('the nonce does not match the request\'s')
  }

  let answer: SingleAnswer | null = null
  while (!responses.done) {
    const single = readSingle(responses, expected)
    if (!single.matches) continue
    if (answer !== null) refuse('the response answers twice for the certificate')
    answer = single.answer
  }
  if (answer === null) refuse('the response does not answer for the certificate')
  const { now, clockSkew } = expected
  if (answer.thisUpdate > now + clockSkew) refuse('thisUpdate is in the future')
  if (answer.nextUpdate !== null) {
    if (answer.nextUpdate < answer.thisUpdate) refuse('nextUpdate is before thisUpdate')
    if (answer.nextUpdate < now - clockSkew) refuse('the answer is stale: nextUpdate has passed')
  } else if (answer.thisUpdate < now - clockSkew - expected.maxAge) {
    refuse('the answer is too old: thisUpdate is past cacheTtl, without nextUpdate')
  }
  return answer
}
