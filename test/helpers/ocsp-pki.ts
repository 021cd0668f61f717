// A small PKI for OCSP tests, made with the openssl CLI: a root, a delegated responder certificate it issued (EKU
// OCSPSigning), leaves whose authorityInfoAccess names the test responder, and an index file `openssl ocsp`
// answers from. The responder listens on 127.0.0.1 (a node server) and answers each request with
// `openssl ocsp -index -reqin -respout` (its -port mode listens on every interface, with no way to say loopback).
// For the answers openssl will not write (stale, for another certificate, signed by a stranger) a response is
// crafted here and signed with node:crypto.
import { execFile, execFileSync } from 'node:child_process'
import { createHash, createPrivateKey, randomBytes, sign, X509Certificate } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Cursor } from '../../lib/codecs/der.js'
import type { CertFiles } from './certs.js'
import { oid, seq, tlv } from './der-writer.js'
import { files } from './dp-pki.js'

const execFileAsync = promisify(execFile)

export interface OcspPki {
  readonly dir: string
  readonly root: CertFiles
  /** The delegated responder: issued by the root, extendedKeyUsage OCSPSigning. */
  readonly responder: CertFiles
  /**
   * A client certificate signed by `issuer` (the root by default), its AIA naming `url` (none when null), listed in
   * the index as valid unless `indexed` is false (then the responder answers unknown).
   */
  issue: (name: string, url: string | null, options?: { issuer?: CertFiles, indexed?: boolean, lines?: string[] }) => CertFiles
  /** Any certificate: `lines` are its extensions, `issuer` signs it (self-signed when null). */
  sign: (name: string, lines: string[], issuer: CertFiles | null, days?: number) => CertFiles
  /** Marks a certificate revoked in the index (at once: the next answer says so). */
  revoke: (certificate: CertFiles) => void
  readonly index: string
  cleanup: () => void
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']

function indexTime (date: Date): string {
  return date.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z'
}

export function makeOcspPki (rootName = 'OCSP Test Root'): OcspPki {
  const dir = mkdtempSync(join(tmpdir(), 'client-cert-ocsp-'))
  const run = (args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' }) }
  const index = join(dir, 'index.txt')
  writeFileSync(index, '')
  const lines = new Map<string, string>()
  const writeIndex = (): void => { writeFileSync(index, [...lines.values()].map((line) => line + '\n').join('')) }
  const signCert = (name: string, extensions: string[], issuer: CertFiles | null, days = 30): CertFiles => {
    writeFileSync(join(dir, name + '.ext'), extensions.join('\n') + '\n')
    if (issuer === null) {
      run(['req', '-x509', ...EC, '-keyout', name + '.key', '-out', name + '.pem', '-subj', '/CN=' + name, '-days', String(days), '-config', '/dev/null',
        ...extensions.flatMap((line) => ['-addext', line.replace(/ = /, '=')])])
    } else {
      run(['req', '-new', ...EC, '-keyout', name + '.key', '-out', name + '.csr', '-subj', '/CN=' + name, '-config', '/dev/null'])
      run(['x509', '-req', '-in', name + '.csr', '-CA', issuer.certPath, '-CAkey', issuer.keyPath,
        '-set_serial', '0x' + createHash('sha1').update(name + Math.random()).digest('hex').slice(0, 16),
        '-days', String(days), '-extfile', name + '.ext', '-out', name + '.pem'])
    }
    return files(dir, name)
  }
  const root = signCert(rootName.replace(/\W/g, '-'), ['basicConstraints = critical, CA:TRUE', 'subjectKeyIdentifier = hash', 'keyUsage = critical, keyCertSign, cRLSign'], null)
  const responder = signCert('responder', ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature', 'extendedKeyUsage = OCSPSigning', 'authorityKeyIdentifier = keyid'], root)
  const entry = (certificate: CertFiles, revoked: Date | null): string => {
    const x509 = new X509Certificate(certificate.certPem)
    return [revoked === null ? 'V' : 'R', indexTime(new Date(x509.validTo)), revoked === null ? '' : indexTime(revoked), x509.serialNumber, 'unknown', '/CN=' + certificate.name].join('\t')
  }
  return {
    dir,
    root,
    responder,
    index,
    issue: (name, url, options = {}) => {
      const certificate = signCert(name, [
        'basicConstraints = critical, CA:FALSE',
        'keyUsage = critical, digitalSignature',
        'extendedKeyUsage = clientAuth',
        'authorityKeyIdentifier = keyid',
        ...(url === null ? [] : [`authorityInfoAccess = OCSP;URI:${url}`]),
        ...(options.lines ?? [])
      ], options.issuer ?? root)
      if (options.indexed !== false) {
        lines.set(name, entry(certificate, null))
        writeIndex()
      }
      return certificate
    },
    sign: signCert,
    revoke: (certificate) => {
      lines.set(certificate.name, entry(certificate, new Date(Date.now() - 60_000)))
      writeIndex()
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true })
  }
}

export type ResponderMode = 'ok' | 'down' | 'hang' | 'error'

/** The OCSP responder on 127.0.0.1: `openssl ocsp` per request, or `handler` when set. */
export interface OcspResponder {
  readonly url: string
  mode: ResponderMode
  /** The certificate (and key) openssl signs answers with: the delegated responder by default. */
  signer: CertFiles
  /** More `openssl ocsp` arguments: `['-nmin', '5']`, `['-resp_key_id']`, `['-rcid', 'sha256']` … */
  args: string[]
  /** Replaces openssl: answers the request (the DER it got) with these bytes. */
  handler: ((request: Buffer) => Buffer | Promise<Buffer>) | null
  /** Every request's DER, and the answers openssl gave, in order. */
  readonly requests: Buffer[]
  readonly answers: Buffer[]
  close: () => Promise<void>
}

export async function startOcspResponder (pki: OcspPki): Promise<OcspResponder> {
  const held = new Set<ServerResponse>()
  let count = 0
  const state: OcspResponder = {
    url: '',
    mode: 'ok',
    signer: pki.responder,
    args: [],
    handler: null,
    requests: [],
    answers: [],
    close: async () => {
      for (const response of held) response.destroy()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
  const answer = async (body: Buffer): Promise<Buffer> => {
    if (state.handler !== null) return await state.handler(body)
    const name = join(pki.dir, `request-${count++}`)
    await writeFile(name + '.der', body)
    await execFileAsync('openssl', ['ocsp', '-index', pki.index, '-CA', pki.root.certPath, '-rsigner', state.signer.certPath, '-rkey', state.signer.keyPath,
      '-reqin', name + '.der', '-respout', name + '.resp', ...state.args], { cwd: pki.dir })
    const response = await readFile(name + '.resp')
    state.answers.push(response)
    return response
  }
  const server: Server = createServer((request: IncomingMessage, response: ServerResponse) => {
    if (state.mode === 'down') {
      request.socket.destroy()
      return
    }
    if (state.mode === 'hang') {
      held.add(response)
      return
    }
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const body = Buffer.concat(chunks)
      state.requests.push(body)
      if (state.mode === 'error') {
        response.writeHead(500).end()
        return
      }
      answer(body).then((der) => {
        response.writeHead(200, { 'content-type': 'application/ocsp-response' }).end(der)
      }, (error: Error) => {
        response.writeHead(500).end(error.message)
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  ;(state as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
  return state
}

/** The CertID (DER) and the nonce extension's value (DER, or null) of an OCSP request. */
export function readRequest (der: Buffer): { certId: Buffer, nonce: Buffer | null } {
  const top = new Cursor(der, 0, der.length)
  const request = top.into(top.read(0x30, 'request'))
  const tbs = request.into(request.read(0x30, 'tbs'))
  const list = tbs.into(tbs.read(0x30, 'list'))
  const one = list.into(list.read(0x30, 'one'))
  const id = one.read(0x30, 'certId')
  let nonce: Buffer | null = null
  const extensions = tbs.optional(0xa2, 'extensions')
  if (extensions !== null) {
    const outer = tbs.into(extensions)
    const seqOf = outer.into(outer.read(0x30, 'extensions'))
    const extension = seqOf.into(seqOf.read(0x30, 'extension'))
    extension.read(0x06, 'id')
    const value = extension.read(0x04, 'value')
    nonce = der.subarray(value.contentStart, value.end)
  }
  return { certId: der.subarray(id.start, id.end), nonce }
}

export function generalizedTime (ms: number): Buffer {
  return tlv(0x18, Buffer.from(new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z', 'latin1'))
}

export interface Craft {
  /** Signs the answer; its certificate goes in `certs` unless `certs` says otherwise. */
  signer: CertFiles
  certs?: CertFiles[]
  responderId?: 'name' | 'key'
  status?: 'good' | 'revoked' | 'unknown'
  thisUpdate?: number
  nextUpdate?: number | null
  /** The CertID answered for (the request's by default). */
  certId?: Buffer
  /** The nonce extension's value: the request's by default ('echo'), another, or none. */
  nonce?: 'echo' | Buffer | null
  /** More SingleResponses after ours. */
  extraSingles?: Buffer[]
  /** Replaces the signature algorithm (DER AlgorithmIdentifier); the signature is still made with `hash`. */
  algorithm?: Buffer
  hash?: string | null
  /** The whole ResponseData's extensions (replacing the nonce's). */
  responseExtensions?: Buffer[]
}

function keyBits (certificate: CertFiles, hash = 'sha1'): { name: Buffer, keyHash: Buffer } {
  const der = certificate.der
  const c = new Cursor(der, 0, der.length)
  const cert = c.into(c.read(0x30, 'cert'))
  const tbs = cert.into(cert.read(0x30, 'tbs'))
  tbs.optional(0xa0, 'version')
  tbs.any('serial')
  tbs.any('alg')
  tbs.any('issuer')
  tbs.any('validity')
  const subject = tbs.any('subject')
  const spki = tbs.into(tbs.any('spki'))
  spki.any('alg')
  const bits = spki.read(0x03, 'key')
  return { name: der.subarray(subject.start, subject.end), keyHash: createHash(hash).update(der.subarray(bits.contentStart + 1, bits.end)).digest() }
}

/** The CertID of `leaf` under `issuer`, hashed with `hash` (`sha256`: what openssl's -rcid should make). */
export function certIdFor (leaf: CertFiles, issuer: CertFiles, hash: string, hashOid: string): Buffer {
  const { name, keyHash } = keyBits(issuer, hash)
  const serial = new X509Certificate(leaf.certPem).serialNumber
  const serialBytes = Buffer.from(serial, 'hex')
  const content = serialBytes[0]! >= 0x80 ? Buffer.concat([Buffer.from([0]), serialBytes]) : serialBytes
  return seq(seq(oid(hashOid)), tlv(0x04, createHash(hash).update(name).digest()), tlv(0x04, keyHash), tlv(0x02, content))
}

/** One SingleResponse for `certId`. */
export function singleResponse (certId: Buffer, status: 'good' | 'revoked' | 'unknown', thisUpdate: number, nextUpdate: number | null): Buffer {
  const certStatus = status === 'good' ? Buffer.from([0x80, 0]) : status === 'unknown' ? Buffer.from([0x82, 0]) : tlv(0xa1, generalizedTime(thisUpdate - 60_000), tlv(0xa0, tlv(0x0a, Buffer.from([1]))))
  return seq(certId, certStatus, generalizedTime(thisUpdate), ...(nextUpdate === null ? [] : [tlv(0xa0, generalizedTime(nextUpdate))]))
}

/** An OCSPResponse answering `request` as `craft` says, signed with the signer's key. */
export function craftResponse (request: Buffer, craft: Craft): Buffer {
  const asked = readRequest(request)
  const now = Date.now()
  const thisUpdate = craft.thisUpdate ?? now - 1000
  const nextUpdate = craft.nextUpdate === undefined ? now + 3_600_000 : craft.nextUpdate
  const { name, keyHash } = keyBits(craft.signer)
  const responderId = craft.responderId === 'key' ? tlv(0xa2, tlv(0x04, keyHash)) : tlv(0xa1, name)
  const nonce = craft.nonce === undefined || craft.nonce === 'echo' ? asked.nonce : craft.nonce
  const extensions = craft.responseExtensions ?? (nonce === null ? [] : [seq(oid('1.3.6.1.5.5.7.48.1.2'), tlv(0x04, nonce))])
  const data = seq(
    responderId,
    generalizedTime(now),
    seq(singleResponse(craft.certId ?? asked.certId, craft.status ?? 'good', thisUpdate, nextUpdate), ...(craft.extraSingles ?? [])),
    ...(extensions.length === 0 ? [] : [tlv(0xa1, seq(...extensions))])
  )
  const key = createPrivateKey(craft.signer.keyPem)
  const type = key.asymmetricKeyType
  const algorithm = craft.algorithm ?? (type === 'ec'
    ? seq(oid('1.2.840.10045.4.3.2'))
    : type === 'ed25519' ? seq(oid('1.3.101.112')) : seq(oid('1.2.840.113549.1.1.11'), Buffer.from([5, 0])))
  const hash = craft.hash !== undefined ? craft.hash : type === 'ed25519' ? null : 'sha256'
  const signature = sign(hash, data, key)
  const certs = craft.certs ?? [craft.signer]
  const basic = seq(data, algorithm, tlv(0x03, Buffer.from([0]), signature), ...(certs.length === 0 ? [] : [tlv(0xa0, seq(...certs.map((c) => c.der)))]))
  return seq(tlv(0x0a, Buffer.from([0])), tlv(0xa0, seq(oid('1.3.6.1.5.5.7.48.1.1'), tlv(0x04, basic))))
}

export function randomNonce (): Buffer {
  return tlv(0x04, randomBytes(16))
}
