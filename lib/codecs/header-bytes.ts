import { CertificateParseError } from './parse-error.js'

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * Re-reads a header value as UTF-8. Node's HTTP parser maps each header byte to the code point of the same
 * value (latin1), so a proxy that forwards raw UTF-8 (Apache's `SSL_CLIENT_S_DN`, HAProxy's default DN,
 * Caddy's subject) arrives as mojibake (`JÃ¼rgen`). Bytes that are not valid UTF-8 are refused, not
 * replaced with U+FFFD, so two different byte strings never decode to the same name; a leading BOM is kept
 * for the same reason. A code point above U+00FF cannot have come from the wire and is refused too.
 */
export function latin1ToUtf8 (value: string): string {
  let i = 0
  while (i < value.length && value.charCodeAt(i) < 0x80) i++
  if (i === value.length) return value

  for (let j = i; j < value.length; j++) {
    if (value.charCodeAt(j) > 0xff) throw new CertificateParseError('header value holds a character above U+00FF')
  }
  try {
    return utf8.decode(Buffer.from(value, 'latin1'))
  } catch {
    throw new CertificateParseError('header value is not valid UTF-8')
  }
}
