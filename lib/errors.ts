import createError from '@fastify/error'

/**
 * Every error the plugin sends or throws. Messages are static on purpose: they never carry an
 * OpenSSL error, a header value, an address or the text of an error thrown by a user hook
 * (those go to `request.log`).
 */

/** No client certificate reached the app on a route that requires one. */
export const ClientCertMissingError = createError(
  'FST_CLIENT_CERT_MISSING',
  'A client certificate is required',
  401
)

/** A certificate was presented but not verified (unknown CA, expired, revoked, wrong usage, proxy said failed). */
export const ClientCertInvalidError = createError(
  'FST_CLIENT_CERT_INVALID',
  'The client certificate could not be verified',
  401
)

/** Verified, but refused by `allow`, `authorize` or `resolveUser`. */
export const ClientCertForbiddenError = createError(
  'FST_CLIENT_CERT_FORBIDDEN',
  'The client certificate is not allowed to access this resource',
  403
)

/** Certificate headers from an address that `proxy.trust` does not cover, or without the shared secret. */
export const ClientCertUntrustedSourceError = createError(
  'FST_CLIENT_CERT_UNTRUSTED_SOURCE',
  'Client certificate headers were sent by an untrusted source',
  400
)

/** A malformed, repeated or oversized certificate header from a trusted proxy. */
export const ClientCertBadHeaderError = createError(
  'FST_CLIENT_CERT_BAD_HEADER',
  'The forwarded client certificate headers are malformed',
  400
)

/** `authorize` or `resolveUser` threw, or the plugin failed unexpectedly: never authenticated. */
export const ClientCertInternalError = createError(
  'FST_CLIENT_CERT_INTERNAL',
  'Client certificate authentication failed',
  500
)

/** Wrong or contradictory options at registration; the message names the option. */
export const ClientCertInvalidOptionError = createError(
  'FST_CLIENT_CERT_INVALID_OPTION',
  'Invalid fastify-client-cert option %s: %s',
  500,
  TypeError
)

/**
 * An access token checked by `verifyCertificateBinding` carries no usable RFC 8705 binding: no
 * `cnf["x5t#S256"]`, or one that is not the base64url (unpadded) SHA-256 of a certificate.
 */
export const ClientCertTokenUnboundError = createError(
  'FST_CLIENT_CERT_TOKEN_UNBOUND',
  'The access token is not bound to a client certificate',
  401
)

/** An access token bound (RFC 8705 `cnf["x5t#S256"]`) to a certificate other than the one presented. */
export const ClientCertTokenMismatchError = createError(
  'FST_CLIENT_CERT_TOKEN_MISMATCH',
  'The access token is bound to another client certificate',
  401
)
