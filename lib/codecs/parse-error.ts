/**
 * The one error type every pure codec in `lib/` throws (DN, SAN, SPIFFE, PEM/DER, header values).
 * The plugin turns it into `FST_CLIENT_CERT_BAD_HEADER` (400) for forwarded headers; the message is
 * for logs and for developers, never for the HTTP client, so it may name what was wrong but must
 * not echo the input.
 */
export class CertificateParseError extends Error {
  readonly code = 'ERR_CLIENT_CERT_PARSE'

  constructor (message: string) {
    super(message)
    this.name = 'CertificateParseError'
  }
}
