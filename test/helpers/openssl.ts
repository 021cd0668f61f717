/**
 * Reference renderings of a certificate by the `openssl` CLI, for golden tests: what the library
 * produces must equal what OpenSSL (and the proxies built on it) print.
 */
import { execFileSync } from 'node:child_process'

function x509 (certPath: string, args: string[]): string {
  // only the final newline goes: a name may itself end in blanks
  return execFileSync('openssl', ['x509', '-in', certPath, '-noout', ...args]).toString('utf8').replace(/\n$/, '')
}

/** Drops openssl's `label=`; a golden test against a changed output format fails on the label. */
function after (prefix: string, line: string): string {
  return line.slice(prefix.length)
}

/**
 * `openssl x509 -<which> -nameopt <nameopt>`, without the `subject=` / `issuer=` label. E.g.
 * 'RFC2253,-esc_msb' (raw UTF-8, the identity's canonical form) or 'RFC2253' (escaped like nginx).
 */
export function opensslName (certPath: string, which: 'subject' | 'issuer', nameopt: string): string {
  return after(`${which}=`, x509(certPath, [`-${which}`, '-nameopt', nameopt]))
}

/**
 * The `X509_NAME_oneline()` form nginx sends as `$ssl_client_s_dn_legacy` (and Apache with
 * `+LegacyDNStringFormat`): `/C=US/O=…/CN=…`, `\/`, `\+`, `\xC3`, backslash itself unescaped.
 * `-nameopt compat` is the one option for which the apps call X509_NAME_oneline() instead of
 * X509_NAME_print_ex(); it matches every nginx capture in shared/fixtures/proxies byte for byte.
 * An empty name prints as ''.
 */
export function opensslLegacyName (certPath: string, which: 'subject' | 'issuer'): string {
  return opensslName(certPath, which, 'compat')
}

/** `-serial`: upper-case hex, no leading 00 (e.g. A1B2C3D4E5F60718, 0F). */
export function opensslSerial (certPath: string): string {
  return after('serial=', x509(certPath, ['-serial']))
}

/** `-fingerprint -sha256`: colon-separated upper-case hex. */
export function opensslFingerprint256 (certPath: string): string {
  return after('sha256 Fingerprint=', x509(certPath, ['-fingerprint', '-sha256']))
}
