// A small DER writer for certificates built in the test itself, signed with node:crypto: the odd encodings no CA
// tool writes (string types, long serials, time forms, unusual SANs) come out in microseconds each.
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto'

export function length (n: number): Buffer {
  if (n < 0x80) return Buffer.from([n])
  const bytes: number[] = []
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

export function tlv (tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content)
  return Buffer.concat([Buffer.from([tag]), length(body.length), body])
}

export const seq = (...content: Buffer[]): Buffer => tlv(0x30, ...content)
export const set = (...content: Buffer[]): Buffer => tlv(0x31, ...content)

export function oid (dotted: string): Buffer {
  const arcs = dotted.split('.').map(BigInt)
  const subs = [arcs[0]! * 40n + arcs[1]!, ...arcs.slice(2)]
  const bytes: number[] = []
  for (const sub of subs) {
    const group: number[] = [Number(sub & 0x7fn)]
    for (let v = sub >> 7n; v > 0n; v >>= 7n) group.unshift(Number(v & 0x7fn) | 0x80)
    bytes.push(...group)
  }
  return tlv(0x06, Buffer.from(bytes))
}

/** One attribute: `[oid, tag, value bytes]`; an RDN is a list of them. */
export type Ava = [type: string, tag: number, value: Buffer]

export function name (rdns: Ava[][]): Buffer {
  return seq(...rdns.map((rdn) => set(...rdn.map(([type, tag, value]) => seq(oid(type), tlv(tag, value))))))
}

export function utcTime (text: string): Buffer {
  return tlv(0x17, Buffer.from(text, 'latin1'))
}

export function generalizedTime (text: string): Buffer {
  return tlv(0x18, Buffer.from(text, 'latin1'))
}

export function extension (id: string, value: Buffer, critical = false): Buffer {
  return seq(oid(id), ...(critical ? [tlv(0x01, Buffer.from([0xff]))] : []), tlv(0x04, value))
}

export interface CertificateParts {
  version?: Buffer | null
  /** the INTEGER's content */
  serial?: Buffer
  issuer?: Buffer
  subject?: Buffer
  notBefore?: Buffer
  notAfter?: Buffer
  extensions?: Buffer[] | null
  uniqueIds?: Buffer[]
}

const key = generateKeyPairSync('ed25519')
const ED25519 = seq(oid('1.3.101.112'))

export const signingKey: { privateKey: KeyObject, publicKey: KeyObject } = key

export function body (parts: CertificateParts = {}): Buffer {
  const version = parts.version === undefined ? tlv(0xa0, tlv(0x02, Buffer.from([2]))) : parts.version
  const extensions = parts.extensions === undefined ? [] : parts.extensions
  return seq(
    ...(version === null ? [] : [version]),
    tlv(0x02, parts.serial ?? Buffer.from([1])),
    ED25519,
    parts.issuer ?? name([[['2.5.4.3', 0x0c, Buffer.from('Test CA')]]]),
    seq(parts.notBefore ?? utcTime('250101000000Z'), parts.notAfter ?? utcTime('350101000000Z')),
    parts.subject ?? name([[['2.5.4.3', 0x0c, Buffer.from('alice')]]]),
    key.publicKey.export({ type: 'spki', format: 'der' }),
    ...(parts.uniqueIds ?? []),
    ...(extensions === null || extensions.length === 0 ? [] : [tlv(0xa3, seq(...extensions))])
  )
}

/** A signed certificate around `tbs` (the signature is real, though nothing here checks it). */
export function certificate (tbs: Buffer): Buffer {
  return seq(tbs, ED25519, tlv(0x03, Buffer.from([0]), sign(null, tbs, key.privateKey)))
}

export function build (parts: CertificateParts = {}): Buffer {
  return certificate(body(parts))
}
