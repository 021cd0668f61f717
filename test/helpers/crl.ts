import { execFileSync } from 'node:child_process'
import { X509Certificate, createPublicKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { CertFiles } from './certs.js'

const config = `[ ca ]
default_ca = CA_default
[ CA_default ]
database = ./index.txt
crlnumber = ./crlnumber
default_md = sha256
default_crl_days = 7
[ idp_user ]
issuingDistributionPoint = critical, @idp_user_section
[ idp_user_section ]
onlyuser = TRUE
`

/**
 * A CRL signed by `issuer` that lists `revoked` (certificate PEM files), made with `openssl ca`; `validity`:
 * more `-gencrl` arguments (`['-crlexts', 'idp_user']`: a CRL of end-entity certificates only).
 */
export function makeCrl (issuer: CertFiles, revoked: readonly string[], validity: string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), 'client-cert-crl-'))
  try {
    writeFileSync(join(dir, 'index.txt'), '')
    writeFileSync(join(dir, 'crlnumber'), '01\n')
    writeFileSync(join(dir, 'ca.cnf'), config)
    const ca = ['-config', 'ca.cnf', '-cert', issuer.certPath, '-keyfile', issuer.keyPath]
    for (const certPath of revoked) {
      execFileSync('openssl', ['ca', ...ca, '-revoke', certPath], { cwd: dir, stdio: 'ignore' })
    }
    execFileSync('openssl', ['ca', ...ca, '-gencrl', '-out', 'crl.pem', ...validity], { cwd: dir, stdio: 'ignore' })
    return readFileSync(join(dir, 'crl.pem'), 'latin1')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** DER length octets. */
function derLength (n: number): Buffer {
  if (n < 0x80) return Buffer.from([n])
  const bytes: number[] = []
  for (let rest = n; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

function der (tag: number, ...parts: Buffer[]): Buffer {
  const content = Buffer.concat(parts)
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content])
}

/** The DER of a certificate's subject Name, byte for byte (what its CRLs must name as issuer). */
export function subjectName (certificate: X509Certificate): Buffer {
  const raw = certificate.raw
  // Certificate ::= SEQUENCE { tbs SEQUENCE { [0] version, serial, algorithm, issuer, validity, subject, … } }
  const skip = (pos: number): { start: number, content: number, end: number } => {
    let length = raw[pos + 1]
    let content = pos + 2
    if (length >= 0x80) {
      const count = length & 0x7f
      length = raw.readUIntBE(pos + 2, count)
      content += count
    }
    return { start: pos, content, end: content + length }
  }
  const tbs = skip(skip(0).content)
  let pos = tbs.content
  if (raw[pos] === 0xa0) pos = skip(pos).end
  for (let i = 0; i < 4; i++) pos = skip(pos).end // serial, algorithm, issuer, validity
  const subject = skip(pos)
  return raw.subarray(subject.start, subject.end)
}

export interface BigCrlOptions {
  /** The issuer Name (DER), e.g. `subjectName(ca)`. */
  issuer: Buffer
  /** The issuer's private key: EC (ecdsa-with-SHA256), RSA (sha256WithRSAEncryption) or Ed25519. */
  key: KeyObject
  /** How many filler entries (distinct 16-byte serials that no test certificate has). */
  count: number
  /** Serials (upper-case hex, as `X509Certificate#serialNumber`) listed before the fillers. */
  serials?: readonly string[]
  /** Default: a year from now. `null`: no nextUpdate. */
  nextUpdate?: Date | null
}

function utcTime (date: Date): Buffer {
  const text = date.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z'
  return der(0x17, Buffer.from(text, 'latin1'))
}

function algorithmOf (key: KeyObject): { id: Buffer, hash: string | null } {
  switch (key.asymmetricKeyType) {
    case 'ec': return { id: der(0x30, Buffer.from('06082a8648ce3d040302', 'hex')), hash: 'sha256' }
    case 'rsa': return { id: der(0x30, Buffer.from('06092a864886f70d01010b0500', 'hex')), hash: 'sha256' }
    case 'ed25519': return { id: der(0x30, Buffer.from('06032b6570', 'hex')), hash: null }
    default: throw new Error(`no CRL signature algorithm for a ${String(key.asymmetricKeyType)} key`)
  }
}

/**
 * A v2 CRL of any size, written and signed in-process (openssl takes minutes for a million entries):
 * `count` filler entries plus `serials`, each a serial and a revocation date, no extensions.
 */
export function bigCrl (options: BigCrlOptions): Buffer {
  const { id, hash } = algorithmOf(options.key)
  const revocationDate = utcTime(new Date(Date.UTC(2025, 0, 1)))
  const listed = (options.serials ?? []).map((hex) => {
    let bytes = Buffer.from(hex.length % 2 === 0 ? hex : '0' + hex, 'hex')
    if (bytes[0] >= 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes])
    return der(0x30, der(0x02, bytes), revocationDate)
  })
  // Fillers: 0x5A, a random 7-byte prefix per CRL, then a 64-bit counter; 37 bytes each.
  const fillerLength = 2 + 18 + revocationDate.length
  const fillers = Buffer.allocUnsafe(options.count * fillerLength)
  const prefix = randomBytes(7)
  for (let i = 0, at = 0; i < options.count; i++, at += fillerLength) {
    fillers[at] = 0x30
    fillers[at + 1] = fillerLength - 2
    fillers[at + 2] = 0x02
    fillers[at + 3] = 16
    fillers[at + 4] = 0x5a
    prefix.copy(fillers, at + 5)
    fillers.writeUInt32BE(Math.floor(i / 0x1_0000_0000), at + 12)
    fillers.writeUInt32BE(i % 0x1_0000_0000, at + 16)
    revocationDate.copy(fillers, at + 20)
  }
  const now = Date.now()
  const nextUpdate = options.nextUpdate === undefined ? new Date(now + 365 * 86_400_000) : options.nextUpdate
  const tbs = der(0x30,
    der(0x02, Buffer.from([1])),
    id,
    options.issuer,
    utcTime(new Date(now - 3_600_000)),
    ...(nextUpdate === null ? [] : [utcTime(nextUpdate)]),
    ...(listed.length + options.count > 0 ? [der(0x30, ...listed, fillers)] : [])
  )
  const signature = sign(hash, tbs, options.key)
  return der(0x30, tbs, id, der(0x03, Buffer.from([0]), signature))
}

/** PEM text of a DER CRL. */
export function crlPem (crl: Buffer): string {
  return `-----BEGIN X509 CRL-----\n${crl.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END X509 CRL-----\n`
}

/**
 * A self-signed CA certificate bearing `ca`'s subject under a fresh key and without key identifiers, so
 * `checkIssued` takes it for the issuer of `ca`'s certificates: a look-alike a client can mint at will.
 */
export function lookAlike (ca: X509Certificate, serial: number, options: { privateKey?: KeyObject, expired?: boolean } = {}): X509Certificate {
  const pair = options.privateKey === undefined ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : { privateKey: options.privateKey, publicKey: createPublicKey(options.privateKey) }
  const { privateKey, publicKey } = pair
  const { id } = algorithmOf(privateKey)
  const name = subjectName(ca)
  const now = Date.now()
  const serialBytes = Buffer.alloc(8)
  serialBytes.writeUInt32BE(0x10000000 + serial, 0)
  const basicConstraints = der(0x30, der(0x06, Buffer.from('551d13', 'hex')), der(0x01, Buffer.from([0xff])),
    der(0x04, der(0x30, der(0x01, Buffer.from([0xff])))))
  const tbs = der(0x30,
    der(0xa0, der(0x02, Buffer.from([2]))),
    der(0x02, serialBytes),
    id,
    name,
    der(0x30, utcTime(new Date(now - 2 * 86_400_000)), utcTime(new Date(now + (options.expired === true ? -86_400_000 : 86_400_000)))),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    der(0xa3, der(0x30, basicConstraints))
  )
  return new X509Certificate(der(0x30, tbs, id, der(0x03, Buffer.from([0]), sign('sha256', tbs, privateKey))))
}
