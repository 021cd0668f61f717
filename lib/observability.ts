import { channel } from 'node:diagnostics_channel'
import type { FastifyRequest } from 'fastify'
import type { ClientCertIdentity } from './identity.js'

/**
 * The `node:diagnostics_channel` channel every authentication decision is published on, for metrics, audit
 * logs and traces: `diagnostics_channel.subscribe(decisionChannelName, (message) => …)`.
 */
export const decisionChannelName = 'fastify-client-cert:decision'

/**
 * One decision. Every key but `request` is an attribute, named after OpenTelemetry's semantic conventions where
 * one exists (`tls.client.*`, `http.*`, `error.type`), else under `client_cert.*`; `null` when not known. The
 * names and dates of a certificate that is not verified are the client's own claims: they stay `null` here
 * (`request.clientCert` still holds what was read).
 */
export interface ClientCertDecision {
  /** `'admitted'`: the route goes on (with or without a certificate); `'refused'`: it is answered with an error. */
  'client_cert.outcome': 'admitted' | 'refused'
  /** Why it was refused: the error's `code` (`FST_CLIENT_CERT_*`, or a hook's own), else its status as a string. */
  'error.type': string | null
  /** The status the refusal answers with (a `setErrorHandler` may still change it); `null` when admitted. */
  'http.response.status_code': number | null
  /** `null` when no certificate reached the app, or the request was refused before one was read (400). */
  'client_cert.verified': boolean | null
  /** Why the certificate is not verified (`CERT_HAS_EXPIRED`, `CERT_REVOKED`, the proxy's text…). */
  'client_cert.verify_error': string | null
  'client_cert.source': 'tls' | 'proxy' | null
  /** The proxy preset (or `'custom'`) when `source` is `'proxy'`. */
  'client_cert.proxy': string | null
  /** Upper-case hex, as `X509Certificate#serialNumber` prints it. */
  'client_cert.serial_number': string | null
  /** SHA-256 of the DER, upper-case hex without colons (OpenTelemetry's format; `fingerprint256` without `:`). */
  'tls.client.hash.sha256': string | null
  /** RFC 4514 subject, as `request.clientCert.subject`; verified certificates only. */
  'tls.client.subject': string | null
  'tls.client.issuer': string | null
  /** ISO 8601 (`2026-01-01T00:00:00.000Z`); verified certificates only. */
  'tls.client.not_before': string | null
  'tls.client.not_after': string | null
  'http.request.method': string
  /** The route's path as declared (`/users/:id`), or `null` outside a route (a 404 handler). */
  'http.route': string | null
  /** Not an attribute: the request decided, for its `id`, its logger or its `clientCert`. */
  request: FastifyRequest
}

const decisions = channel(decisionChannelName)

function isoDate (date: Date | null): string | null {
  // An out-of-range date must not make the publish throw into the request path.
  return date === null || Number.isNaN(date.getTime()) ? null : date.toISOString()
}

/**
 * Publishes a decision when someone listens; builds nothing otherwise. `refusal` is the error the request is
 * answered with, `null` when it goes on. Node runs each subscriber in a try/catch of its own: one that throws
 * never reaches the request (Node rethrows it on the next tick as an uncaught exception).
 */
export function publishDecision (request: FastifyRequest, identity: ClientCertIdentity | null, refusal: Error | null): void {
  if (!decisions.hasSubscribers) return
  let errorType: string | null = null
  let statusCode: number | null = null
  if (refusal !== null) {
    const { code, statusCode: status } = refusal as Error & { code?: unknown, statusCode?: unknown }
    statusCode = typeof status === 'number' ? status : 500
    errorType = typeof code === 'string' ? code : String(statusCode)
  }
  const verified = identity?.verified === true
  const message: ClientCertDecision = {
    'client_cert.outcome': refusal === null ? 'admitted' : 'refused',
    'error.type': errorType,
    'http.response.status_code': statusCode,
    'client_cert.verified': identity === null ? null : identity.verified,
    'client_cert.verify_error': identity === null ? null : identity.verifyError,
    'client_cert.source': identity === null ? null : identity.source,
    'client_cert.proxy': identity === null ? null : identity.proxy,
    'client_cert.serial_number': identity === null ? null : identity.serialNumber,
    'tls.client.hash.sha256': identity?.fingerprint256 == null ? null : identity.fingerprint256.replaceAll(':', ''),
    'tls.client.subject': verified ? identity!.subject : null,
    'tls.client.issuer': verified ? identity!.issuer : null,
    'tls.client.not_before': verified ? isoDate(identity!.notBefore) : null,
    'tls.client.not_after': verified ? isoDate(identity!.notAfter) : null,
    'http.request.method': request.method,
    'http.route': request.routeOptions.url ?? null,
    request
  }
  decisions.publish(message)
}
