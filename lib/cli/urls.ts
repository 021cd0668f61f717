// Revocation URLs a certificate carries: where its CRL is published (cRLDistributionPoints) and where its
// OCSP responder answers (authorityInfoAccess), as given with --crl-url and --ocsp-url.
import { httpUrl } from '../revocation/fetch.js'
import { listOption, type Values } from './command.js'
import { UsageError } from './io.js'
import { configValue } from './pki.js'

// IA5String, as the extensions store URIs: printable ASCII, no spaces.
const PRINTABLE = /^[\x21-\x7e]+$/
// The plugin skips longer distribution points; a certificate should not carry what it would ignore.
const MAX_LENGTH = 2048

export interface RevocationUrls {
  crl: string[]
  ocsp: string[]
}

function checked (flag: string, value: string): string {
  if (!PRINTABLE.test(value) || value.length > MAX_LENGTH) throw new UsageError(`${flag} ${value} is not a URL (printable ASCII without spaces, at most ${MAX_LENGTH} characters)`)
  if (!URL.canParse(value)) throw new UsageError(`${flag} ${value} is not a URL`)
  const url = new URL(value)
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`${flag} ${value}: only http and https URLs are fetched (not ${url.protocol})`)
  if (httpUrl(value) === null) throw new UsageError(`${flag} ${value}: a URL in a certificate carries no user name or password`)
  // openssl splits an extension's value at commas and has no way to escape one.
  if (value.includes(',')) throw new UsageError(`${flag} ${value}: openssl cannot write a comma in an extension (write it %2C)`)
  return value
}

/** The --crl-url and --ocsp-url values (repeatable), each an http(s) URL, in the order given. */
export function revocationUrls (values: Values): RevocationUrls {
  return {
    crl: listOption(values, 'crl-url').map((value) => checked('--crl-url', value)),
    ocsp: listOption(values, 'ocsp-url').map((value) => checked('--ocsp-url', value))
  }
}

/** Extension lines for an openssl configuration section: one distribution point per CRL URL, one access description per OCSP URL. */
export function revocationExtensionLines (urls: RevocationUrls): string[] {
  const lines: string[] = []
  if (urls.crl.length > 0) lines.push('crlDistributionPoints = ' + urls.crl.map((url) => 'URI:' + configValue(url, '--crl-url')).join(', '))
  if (urls.ocsp.length > 0) lines.push('authorityInfoAccess = ' + urls.ocsp.map((url) => 'OCSP;URI:' + configValue(url, '--ocsp-url')).join(', '))
  return lines
}

export const urlOptions = {
  'crl-url': { type: 'string', multiple: true },
  'ocsp-url': { type: 'string', multiple: true }
} as const

export const urlHelp = `  --crl-url <url>         where the CRL is published, put in cRLDistributionPoints (http or https, repeatable)
  --ocsp-url <url>        where an OCSP responder answers ("fastify-client-cert ocsp"), put in authorityInfoAccess (repeatable)`
