/**
 * Certificate-bound access tokens (RFC 8705 §3): a token whose `cnf["x5t#S256"]` names the SHA-256 of the
 * client certificate it was issued to is only good on a connection that presents that certificate, so a
 * stolen token is useless without the holder's private key.
 */
import { timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import type { ClientCertIdentity } from '../identity.js'
import {
  ClientCertInternalError,
  ClientCertInvalidError,
  ClientCertMissingError,
  ClientCertTokenMismatchError,
  ClientCertTokenUnboundError
} from '../errors.js'

// What `X509Certificate#fingerprint256` prints: the SHA-256 of the DER, which is what x5t#S256 encodes.
// Reading it instead of the certificate object serves every source that knows the digest (a proxy's hash
// header included) and refuses, by its absence, a mapping that forwards names only.
const FINGERPRINT = /^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){31}$/
// 32 bytes are 43 base64url characters; the last one carries 4 bits and two zero bits, so only these 16
// letters end a canonical spelling. Padding, the standard alphabet and any second text for the same
// digest are refused: a claim is compared as the issuer wrote it, never repaired.
const THUMBPRINT = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/
// RFC 8705 §3 and RFC 6750 §3.1: a token used without its certificate is an invalid token.
const CHALLENGE = Object.freeze({ 'www-authenticate': 'Bearer error="invalid_token"' })

/** Anything that knows a certificate's SHA-256: a `ClientCertIdentity` or an `X509Certificate`. */
export interface CertificateDigestSource {
  readonly fingerprint256: string | null
}

function digestOf (source: CertificateDigestSource): Buffer | null {
  const fingerprint = source.fingerprint256
  if (typeof fingerprint !== 'string' || !FINGERPRINT.test(fingerprint)) return null
  return Buffer.from(fingerprint.replaceAll(':', ''), 'hex')
}

/**
 * The RFC 8705 `x5t#S256` thumbprint of a certificate: base64url, unpadded, of the SHA-256 of its DER.
 * What a token issuer puts in `cnf`. `null` when the source does not know the digest (an identity from a
 * proxy mapping that forwards names only).
 */
export function certificateThumbprint (source: CertificateDigestSource): string | null {
  return digestOf(source)?.toString('base64url') ?? null
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

type Binding = { thumbprint: Buffer } | { refused: 'no cnf claim' | 'no cnf["x5t#S256"] member' | 'malformed cnf claim' | 'malformed cnf["x5t#S256"] thumbprint' }

function bindingOf (payload: unknown): Binding {
  // Own properties only: a polluted Object.prototype must not bind every token.
  if (!isRecord(payload) || !Object.hasOwn(payload, 'cnf')) return { refused: 'no cnf claim' }
  const cnf = payload.cnf
  if (!isRecord(cnf)) return { refused: 'malformed cnf claim' }
  if (!Object.hasOwn(cnf, 'x5t#S256')) return { refused: 'no cnf["x5t#S256"] member' }
  const thumbprint = cnf['x5t#S256']
  if (typeof thumbprint !== 'string' || !THUMBPRINT.test(thumbprint)) return { refused: 'malformed cnf["x5t#S256"] thumbprint' }
  return { thumbprint: Buffer.from(thumbprint, 'base64url') }
}

function refuse (request: FastifyRequest, error: Error, reason: string): never {
  request.log.info({ reason }, 'certificate-bound access token refused')
  throw Object.assign(error, { headers: CHALLENGE })
}

/**
 * Checks that `payload` (a verified JWT payload or introspection result) is bound to the request's client
 * certificate by `cnf["x5t#S256"]`. Returns when it is; throws otherwise, so that it can follow
 * `await request.jwtVerify()` or run inside an `@fastify/auth` strategy:
 * - no certificate: `ClientCertMissingError`; a certificate that did not verify: `ClientCertInvalidError`;
 * - no usable `cnf["x5t#S256"]`: `ClientCertTokenUnboundError`; another certificate's: `ClientCertTokenMismatchError`;
 * all 401 with `WWW-Authenticate: Bearer error="invalid_token"` (RFC 8705 §3).
 * An identity without a SHA-256 (a proxy mapping that forwards names only) cannot prove any binding: that is
 * a deployment error, answered `ClientCertInternalError` (500) and logged.
 */
export function verifyCertificateBinding (request: FastifyRequest, payload: unknown): void {
  const identity: ClientCertIdentity | null | undefined = request.clientCert
  if (identity === null || identity === undefined) refuse(request, new ClientCertMissingError(), 'no client certificate')
  if (identity.verified !== true) refuse(request, new ClientCertInvalidError(), 'client certificate not verified')
  const presented = digestOf(identity)
  if (presented === null) {
    request.log.error('certificate-bound access token refused: the client certificate identity has no SHA-256 fingerprint; forward the whole certificate (or its hash) from the proxy')
    throw new ClientCertInternalError()
  }
  const binding = bindingOf(payload)
  if ('refused' in binding) refuse(request, new ClientCertTokenUnboundError(), binding.refused)
  if (!timingSafeEqual(presented, binding.thumbprint)) refuse(request, new ClientCertTokenMismatchError(), 'cnf["x5t#S256"] names another certificate')
}

/**
 * `verifyCertificateBinding` in the shape of `@fastify/jwt`'s `trusted` option: resolves `true` for a bound
 * token and rejects with the same errors otherwise, which `request.jwtVerify()` then rejects with.
 * `@fastify/jwt` hands it the payload; with `verify: { complete: true }` it would get the whole decoded
 * token, find no `cnf` at its top and refuse every token: use `verifyCertificateBinding` there.
 */
export async function trustCertificateBoundToken (request: FastifyRequest, decodedToken: unknown): Promise<boolean> {
  verifyCertificateBinding(request, decodedToken)
  return true
}
