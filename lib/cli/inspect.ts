import { X509Certificate } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RevocationList } from '../revocation/crl.js'
import { composeIdentity, certificateFields, type ClientCertIdentity } from '../identity.js'
import { loadCertificates, type NormalizedProxy } from '../options.js'
import { getPreset, presetNames } from '../sources/presets/index.js'
import { ProxySource } from '../sources/proxy.js'
import { judge, type TrustLists } from '../policy/verdict.js'
import { listOption, passwordFromFile, stringOption, type Command, type Context } from './command.js'
import { CliError, readUserFile, UsageError, type CliIo } from './io.js'
import { openssl, OpensslFailure, PASSWORD_VARIABLE } from './openssl.js'

/** The header that carries the whole certificate, per preset: a bare value given to `inspect --preset` goes there. */
export const certificateHeaders: Readonly<Record<string, string>> = Object.freeze({
  nginx: 'x-ssl-client-cert',
  apache: 'x-ssl-client-cert',
  haproxy: 'x-ssl-client-cert',
  caddy: 'x-ssl-client-cert',
  envoy: 'x-forwarded-client-cert',
  traefik: 'x-forwarded-tls-client-cert',
  'aws-alb': 'x-amzn-mtls-clientcert-leaf',
  'aws-alb-passthrough': 'x-amzn-mtls-clientcert',
  gcp: 'x-client-cert-leaf',
  cloudflare: 'cf-client-cert-der-base64',
  azure: 'x-arr-clientcert',
  rfc9440: 'client-cert'
})

// RFC 9110 token. Header lines are split by hand, never by a pattern that backtracks: a lazy value
// followed by optional blanks, or blanks anchored at the end, cost quadratic time on a long line of blanks.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const MAX_HEADER_BYTES = 16384

interface Checks { anchors: X509Certificate[] | null, crl: RevocationList | null }

function optionMessage (error: Error): string {
  return error.message.replace(/^Invalid fastify-client-cert option /, '')
}

function loadChecks (io: CliIo, values: Context['values']): Checks {
  const caPath = stringOption(values, 'ca')
  const crlPath = stringOption(values, 'crl')
  try {
    const anchors = caPath === undefined ? null : loadCertificates(readUserFile(io.cwd, caPath, 'the --ca file'), '--ca')
    // CRL signatures are checked with --ca, as the plugin checks them with proxy.ca.
    const crl = crlPath === undefined ? null : RevocationList.from(readUserFile(io.cwd, crlPath, 'the --crl file'), '--crl', anchors ?? [])
    return { anchors, crl }
  } catch (error) {
    if (error instanceof CliError) throw error
    throw new CliError(optionMessage(error as Error))
  }
}

/** Every certificate in PEM text (other blocks and text around them, as openssl prints, are skipped), or one DER. */
function certificatesIn (input: Buffer, what: string): X509Certificate[] {
  const text = input.toString('latin1')
  const blocks: Array<string | Buffer> = []
  const begin = '-----BEGIN CERTIFICATE-----'
  const end = '-----END CERTIFICATE-----'
  let at = text.indexOf(begin)
  while (at !== -1) {
    const stop = text.indexOf(end, at)
    if (stop === -1) break
    blocks.push(text.slice(at, stop + end.length))
    at = text.indexOf(begin, stop)
  }
  if (blocks.length === 0 && !text.includes('-----BEGIN')) blocks.push(input)
  try {
    if (blocks.length === 0) throw new Error('no certificate')
    return blocks.map((block) => new X509Certificate(block))
  } catch {
    throw new CliError(`${what} holds no certificate (PEM or DER); a PKCS#12 file needs --password-file`)
  }
}

function fromPkcs12 (io: CliIo, input: Buffer, what: string, password: string): X509Certificate[] {
  const work = mkdtempSync(join(tmpdir(), 'fastify-client-cert-inspect-'))
  try {
    writeFileSync(join(work, 'in.p12'), input, { mode: 0o600 })
    const read = (which: string): Buffer => openssl(io, ['pkcs12', '-in', 'in.p12', '-nokeys', which, '-passin', `env:${PASSWORD_VARIABLE}`], { cwd: work, password })
    let leaf: Buffer
    let chain: Buffer
    try {
      leaf = read('-clcerts')
      chain = read('-cacerts')
    } catch (error) {
      if (!(error instanceof OpensslFailure)) throw error
      if (/invalid password|mac verify/i.test(error.stderr)) throw new CliError(`wrong password for ${what}`)
      throw new CliError(`cannot read ${what} as PKCS#12 (${error.message})`)
    }
    return certificatesIn(Buffer.concat([leaf, chain]), what)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

/** The plugin's own verdict (lib/verdict.ts), with --ca as proxy.ca and --crl as crl. */
function listsOf (checks: Checks): TrustLists {
  return { proxyCa: checks.anchors, crl: checks.crl }
}

function identityFromFile (io: CliIo, input: Buffer, what: string, values: Context['values'], checks: Checks): { identity: ClientCertIdentity, checked: boolean } {
  const passwordFile = stringOption(values, 'password-file')
  const isPkcs12 = passwordFile !== undefined || /\.(p12|pfx)$/i.test(what)
  if (isPkcs12 && passwordFile === undefined) throw new CliError(`${what} is a PKCS#12 file: give its password with --password-file`)
  const [leaf, ...chain] = isPkcs12 ? fromPkcs12(io, input, what, passwordFromFile(io, passwordFile!)) : certificatesIn(input, what)
  const fields = certificateFields(leaf)
  // Without --ca nothing vouches for the chain: Node's TLS check is what says "verified" on a real connection.
  const checked = checks.anchors !== null
  const verdict = checked ? judge(listsOf(checks), fields, true, null, null, () => chain, Date.now()) : { verified: false, verifyError: null }
  return { identity: composeIdentity(fields, { source: 'tls', proxy: null, verified: verdict.verified, verifyError: verdict.verifyError }), checked }
}

function isBlank (character: string | undefined): boolean {
  return character === ' ' || character === '\t'
}

/** `Name: value` with the value's surrounding blanks dropped as HTTP parsers do, or null. */
function splitHeaderLine (line: string): [string, string] | null {
  const colon = line.indexOf(':')
  const name = line.slice(0, colon)
  if (colon === -1 || !TOKEN.test(name)) return null
  let start = colon + 1
  let end = line.length
  while (start < end && isBlank(line[start])) start++
  while (end > start && isBlank(line[end - 1])) end--
  const value = line.slice(start, end)
  // A bare CR (or a Unicode line break, from --header) never reaches an application: Node refuses it.
  return /[\r\u2028\u2029]/.test(value) ? null : [name, value]
}

function parseHeaderLine (line: string, where: string): [string, string] {
  const header = splitHeaderLine(line)
  if (header === null) throw new CliError(`${where} is not a "Name: value" header`)
  return header
}

/** `text` without its trailing line breaks (LF or CRLF), by hand for the reason above. */
function withoutTrailingBreaks (text: string): string {
  let end = text.length
  while (text[end - 1] === '\n') {
    end--
    if (text[end - 1] === '\r') end--
  }
  return text.slice(0, end)
}

/** Header name/value pairs, as Node's rawHeaders: a header dump (`Name: value` lines) or one bare value. */
function headersFrom (input: Buffer, preset: string, extra: readonly string[]): string[] {
  // Node hands header bytes over as latin1 code units; the presets expect exactly that.
  const text = withoutTrailingBreaks(input.toString('latin1'))
  // LF, then a CR dropped: cheaper than a regex split over millions of lines.
  const lines = text.split('\n').map((line) => line.endsWith('\r') ? line.slice(0, -1) : line)
  const raw: string[] = []
  if (splitHeaderLine(lines[0]) !== null) {
    lines.forEach((line, i) => {
      if (line.trim() !== '') raw.push(...parseHeaderLine(line, `line ${i + 1}`))
    })
  } else {
    raw.push(certificateHeaders[preset], text)
  }
  for (const header of extra) raw.push(...parseHeaderLine(header, `--header ${header}`))
  return raw
}

function identityFromHeaders (input: Buffer, presetName: string, values: Context['values'], checks: Checks): ClientCertIdentity | null {
  const preset = getPreset(presetName)
  if (preset === undefined) throw new UsageError(`--preset must be one of ${presetNames.join(', ')}`)
  if (!preset.proxyVerifies && checks.anchors === null) {
    throw new CliError(`the ${presetName} preset forwards certificates the proxy has not verified: give --ca (the plugin requires proxy.ca)`)
  }
  const proxy: NormalizedProxy = { preset, headerNames: new Set(preset.headers), listHeaderNames: new Set(preset.listHeaders ?? []), isTrusted: () => true, secret: null, maxHeaderBytes: MAX_HEADER_BYTES }
  const raw = headersFrom(input, presetName, listOption(values, 'header'))
  let lookup
  try {
    lookup = new ProxySource(proxy, { max: 0, ttl: 0, maxBytes: 0 }, null).lookup(raw, { socket: { remoteAddress: '127.0.0.1' } })
  } catch (error) {
    const cause = (error as Error).cause as Error | undefined
    throw new CliError(`the plugin would answer 400 (${(error as { code: string }).code}): ${cause?.message ?? `a header is repeated or longer than ${MAX_HEADER_BYTES} bytes`}`)
  }
  if (lookup.kind === 'absent') throw new CliError(`none of the ${presetName} preset's headers is in the input (${preset.headers.join(', ')})`)
  const decoded = lookup.decoded
  if (decoded.fields === null) return null
  const verdict = judge(listsOf(checks), decoded.fields, decoded.proxyVerified, decoded.proxyError, null, decoded.chain, Date.now())
  return composeIdentity(decoded.fields, { source: 'proxy', proxy: presetName, verified: verdict.verified, verifyError: verdict.verifyError })
}

function text (value: string | null | undefined): string {
  return value ?? '-'
}

function list (values: readonly string[] | undefined): string {
  return values === undefined || values.length === 0 ? '-' : values.join(', ')
}

function describe (say: Context['say'], identity: ClientCertIdentity, checked: boolean): void {
  const rows: Array<[string, string]> = [
    ['source', identity.source === 'tls' ? 'tls (a certificate the client presents to Fastify)' : `proxy (${identity.proxy!})`],
    ['subject', text(identity.subject)],
    ['issuer', text(identity.issuer)],
    ['commonName', text(identity.commonName)],
    ['email SANs', list(identity.san?.email)],
    ['DNS SANs', list(identity.san?.dns)],
    ['URI SANs', list(identity.san?.uri)],
    ['IP SANs', list(identity.san?.ip)],
    ['spiffeId', text(identity.spiffeId)],
    ['serialNumber', text(identity.serialNumber)],
    ['fingerprint256', text(identity.fingerprint256)],
    ['notBefore', text(identity.notBefore?.toISOString())],
    ['notAfter', text(identity.notAfter?.toISOString())],
    ['verified', !checked
      ? 'not checked (give --ca, and --crl, to check it as the plugin would)'
      : identity.verified ? 'yes' : `no: ${identity.verifyError!}`]
  ]
  for (const [label, value] of rows) say(`  ${label.padEnd(15)} ${value}`)
}

/** `openssl verify` exits non-zero on a failed check; 3, as 1 and 2 already mean "could not inspect" and "wrong command line". */
export const NOT_VERIFIED = 3

async function run ({ io, values, operand, say, setExitCode }: Context): Promise<unknown> {
  const source = operand as string
  const preset = stringOption(values, 'preset')
  if (preset === undefined && listOption(values, 'header').length > 0) throw new UsageError('--header needs --preset')
  const checks = loadChecks(io, values)
  const input = source === '-' ? await io.stdin() : readUserFile(io.cwd, source, 'the input')
  const what = source === '-' ? 'standard input' : source
  let identity: ClientCertIdentity | null
  let checked = true
  if (preset === undefined) {
    // The CRL's signature is checked with --ca, as TLS checks the chain before the crl option applies.
    if (checks.crl !== null && checks.anchors === null) {
      throw new UsageError('--crl needs --ca to check a certificate file (the CA that signs the chain and the CRL)')
    }
    ({ identity, checked } = identityFromFile(io, input, what, values, checks))
  } else {
    identity = identityFromHeaders(input, preset, values, checks)
  }
  if (identity === null) {
    say('No certificate: the headers say the client sent none (request.clientCert would be null).')
    return null
  }
  say('The identity the plugin would build (request.clientCert):')
  describe(say, identity, checked)
  if (checked && !identity.verified) setExitCode(NOT_VERIFIED)
  return { ...identity, certificate: identity.certificate?.toString() ?? null }
}

export const inspectCommand: Command = {
  summary: 'print the identity the plugin would build from a certificate or from proxy headers',
  usage: 'inspect <file|-> [--preset nginx [--header "Name: value"]] [--ca ca.crt] [--crl crl.pem] [--password-file f] [--json]',
  operand: 'required',
  options: {
    preset: { type: 'string' },
    header: { type: 'string', multiple: true },
    ca: { type: 'string' },
    crl: { type: 'string' },
    'password-file': { type: 'string' }
  },
  help: `Prints request.clientCert as the plugin would build it. The input (a file, or - for standard input) is:
- a certificate, PEM or DER (the first of a PEM bundle; the others are its chain), or a PKCS#12 file
  (.p12/.pfx, with --password-file);
- with --preset: what the proxy forwarded, either "Name: value" header lines (as logged) or the bare value of
  the preset's certificate header; more headers with --header. The first thing to check when a proxy setup
  does not work.

  --preset <name>         ${presetNames.join(', ')}
  --header "Name: value"  another forwarded header, such as "X-SSL-Client-Verify: SUCCESS" (repeatable)
  --ca <file>             CA certificate(s): check chain, dates and clientAuth usage as proxy.ca does
  --crl <file>            CRL(s): check revocation as the crl option does (a certificate file: with --ca)
  --password-file <file>  password of a PKCS#12 input, first line

Exit code 3 when the certificate was checked and does not verify (the plugin would answer 401), after
printing the identity: with --ca or --crl, or with --preset when the proxy reports a failure.`,
  run
}
