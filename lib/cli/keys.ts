import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto'
import { UsageError } from './io.js'

export type KeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096'

export const keyTypes: readonly KeyType[] = Object.freeze(['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096'])

const labels: Record<KeyType, string> = {
  'ec-p256': 'EC P-256',
  'ec-p384': 'EC P-384',
  'rsa-2048': 'RSA 2048',
  'rsa-3072': 'RSA 3072',
  'rsa-4096': 'RSA 4096'
}

export function keyType (value: string | undefined): KeyType {
  const type = value ?? 'ec-p256'
  if (!(keyTypes as readonly string[]).includes(type)) throw new UsageError(`--key-type must be one of ${keyTypes.join(', ')}`)
  return type as KeyType
}

export function keyLabel (type: KeyType): string {
  return labels[type]
}

/** A new private key as unencrypted PKCS#8 PEM (Node generates it; openssl only reads it). */
export function generateKey (type: KeyType): string {
  const { privateKey } = type.startsWith('ec-')
    ? generateKeyPairSync('ec', { namedCurve: type === 'ec-p384' ? 'P-384' : 'P-256' })
    : generateKeyPairSync('rsa', { modulusLength: Number(type.slice(4)) })
  return privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
}

/** The digest a CA signs with: SHA-384 for a P-384 key (matching strength), SHA-256 otherwise. */
export function digestFor (key: KeyObject): 'sha256' | 'sha384' {
  return key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'sha384' : 'sha256'
}

/**
 * A random positive serial of 16 bytes (RFC 5280 allows 20; CAs use at least 8 random ones) as the
 * upper-case hex `X509Certificate#serialNumber` prints: the first byte is non-zero and below 0x80.
 */
export function randomSerial (): string {
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0] % 0x7f) + 1
  return bytes.toString('hex').toUpperCase()
}
