import { latin1ToUtf8 } from '../../codecs/header-bytes.js'
import { parseDN, parseLegacyDN, type RDN } from '../../codecs/dn.js'
import { CertificateParseError } from '../../codecs/parse-error.js'
import { presentValue } from '../../codecs/cert-encodings.js'
import type { ForwardedCert, HeaderRead, Preset } from './types.js'

/** A certificate header arrived but the status header the preset also reads did not: the proxy is not configured as the preset says. */
export function statusMissing (header: string): CertificateParseError {
  return new CertificateParseError(`certificate forwarded without its ${header} status header`)
}

/**
 * For a preset or mapping that forwards the whole certificate: its certificate header did not arrive, yet
 * `details` (headers describing the same certificate: names, serial, fingerprint, validity, chain) did. The
 * proxy sends them together, so the certificate was lost on the way (Apache deletes the headers a client
 * lists in `Connection`; a renamed header): refused rather than judged on names, which would skip what only
 * the certificate allows (its exact identity, `proxy.ca`, the CRL check).
 */
export function refuseDetailsWithoutCertificate (certificateHeader: string, details: ReadonlyArray<string | undefined>): void {
  if (details.some((value) => value !== undefined)) {
    throw new CertificateParseError(`${certificateHeader} is missing beside headers that describe the certificate`)
  }
}

export function forwarded (der: Buffer | null, chain: Buffer[], verified: boolean, verifyError: string | null): ForwardedCert {
  return { der, chain, verified, verifyError: verified ? null : verifyError }
}

/** nginx / Apache `SSL_CLIENT_VERIFY` failure text: `FAILED:reason` gives `reason`. */
function failureReason (status: string): string {
  return status.startsWith('FAILED:') && status.length > 7 ? status.slice(7) : status
}

/**
 * The verdict of mod_ssl-style statuses (nginx `$ssl_client_verify`, Apache `SSL_CLIENT_VERIFY`) beside a
 * forwarded certificate: `SUCCESS` is verified; `FAILED:reason` (and, where the proxy has it, Apache's
 * `GENEROUS`) is not, with `reason` as the error; `NONE` beside a certificate, or any other status, is refused.
 */
function sslClientVerify (der: Buffer, status: string | undefined, proxy: 'nginx' | 'apache'): ForwardedCert {
  if (status === undefined) throw statusMissing(SSL_CLIENT_VERIFY)
  if (status === 'SUCCESS') return forwarded(der, [], true, null)
  if ((status === 'GENEROUS' && proxy === 'apache') || status.startsWith('FAILED:')) return forwarded(der, [], false, failureReason(status))
  throw new CertificateParseError(`unexpected ${proxy} verify status beside a certificate`)
}

const SSL_CLIENT_CERT = 'x-ssl-client-cert'
const SSL_CLIENT_VERIFY = 'x-ssl-client-verify'

/**
 * The nginx and Apache presets: `X-SSL-Client-Cert` in the proxy's encoding (decoded to DER by `der`) and
 * `X-SSL-Client-Verify` with a mod_ssl-style status. A status without a certificate is no certificate.
 */
export function sslClientPreset (name: 'nginx' | 'apache', der: (value: string) => Buffer): Preset {
  return Object.freeze({
    name,
    headers: Object.freeze([SSL_CLIENT_CERT, SSL_CLIENT_VERIFY]),
    proxyVerifies: true,
    decode (read: HeaderRead): ForwardedCert | null {
      const cert = presentValue(read(SSL_CLIENT_CERT))
      const status = presentValue(read(SSL_CLIENT_VERIFY))
      if (cert === undefined) return null
      return sslClientVerify(der(cert), status, name)
    }
  })
}

/** A DN header value; proxies that forward raw UTF-8 deliver it as latin1 code units, which are re-read first. */
export function dnFromHeader (value: string, encoding: 'dn-rfc4514' | 'dn-legacy'): RDN[] {
  const text = latin1ToUtf8(value)
  return encoding === 'dn-legacy' ? parseLegacyDN(text) : parseDN(text)
}

const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/
const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

/**
 * An RFC 3339 timestamp (`2022-07-01T18:05:09+00:00`, `2023-09-21T01:50:17Z`).
 * Every field is range-checked instead of trusting `Date.parse`, which rolls `02-30` over into March.
 */
export function parseTimestamp (text: string, what: string): Date {
  const m = TIMESTAMP.exec(text)
  if (m === null) throw new CertificateParseError(`${what} is not an RFC 3339 timestamp`)
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number)
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
  if (month < 1 || month > 12 || day < 1 || day > DAYS_IN_MONTH[month - 1] || (month === 2 && day === 29 && !leap) ||
      hour > 23 || minute > 59 || second > 59) {
    throw new CertificateParseError(`${what} is not a valid date`)
  }
  let offset = 0
  if (m[8] !== 'Z') {
    const offsetHours = Number(m[8].slice(1, 3))
    const offsetMinutes = Number(m[8].slice(4, 6))
    if (offsetHours > 23 || offsetMinutes > 59) throw new CertificateParseError(`${what} has an invalid UTC offset`)
    offset = (m[8][0] === '-' ? -1 : 1) * (offsetHours * 60 + offsetMinutes) * 60_000
  }
  const millis = m[7] === undefined ? 0 : Number(m[7].padEnd(3, '0').slice(0, 3))
  // Date.UTC maps years 0-99 to 1900-1999; a leap base year keeps 02-29 in place until the real year is set.
  const date = new Date(Date.UTC(2000, month - 1, day, hour, minute, second, millis))
  date.setUTCFullYear(year)
  return new Date(date.getTime() - offset)
}
