import { randomBytes, X509Certificate } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { certificateFields } from '../identity.js'
import { isSpiffeId } from '../codecs/spiffe.js'
import { daysOption, isoDate, listOption, oneOf, passwordFromFile, stringOption, type Command, type Context } from './command.js'
import { absolute, CliError, display, makeDir, UsageError, writeOutput } from './io.js'
import { digestFor, generateKey, keyLabel, keyType, keyTypes, randomSerial } from './keys.js'
import { openssl, PASSWORD_VARIABLE } from './openssl.js'
import { caConfig, configValue, extensionSection, loadIssuer, opensslSubject, subjectFromText } from './pki.js'
import { revocationExtensionLines, revocationUrls, urlHelp, urlOptions } from './urls.js'

// A file name on every platform: no separators, no leading dot.
const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$/
const EMAIL = /^[^\s@]+@[^\s@]+$/
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
const DNS_NAME = new RegExp(`^(?:\\*\\.)?${LABEL}(?:\\.${LABEL})*$`)
const PRINTABLE = /^[\x21-\x7e]+$/

const p12Formats = ['compat', 'aes'] as const
type P12Format = typeof p12Formats[number]

/**
 * `compat`: PBE-SHA1-3DES with a SHA-1 MAC, what macOS Keychain itself exports and what every browser and OS
 * imports. `aes`: OpenSSL 3's default (PBES2, AES-256-CBC, SHA-256 MAC), which Keychain on some macOS
 * releases refuses with a "wrong password" message. Either way the password is what protects the key.
 */
const p12Arguments: Record<P12Format, string[]> = {
  compat: ['-certpbe', 'PBE-SHA1-3DES', '-keypbe', 'PBE-SHA1-3DES', '-macalg', 'sha1'],
  aes: ['-certpbe', 'AES-256-CBC', '-keypbe', 'AES-256-CBC', '-macalg', 'sha256']
}

interface Sans { email: string[], dns: string[], uri: string[], ip: string[] }

function collectSans (values: Context['values']): Sans {
  const email = listOption(values, 'email')
  const dns = listOption(values, 'dns')
  const uri = listOption(values, 'uri')
  const ip = listOption(values, 'ip')
  for (const value of email) if (!EMAIL.test(value)) throw new UsageError(`--email ${value} is not an e-mail address`)
  for (const value of dns) if (!DNS_NAME.test(value) || value.length > 253) throw new UsageError(`--dns ${value} is not a DNS name`)
  for (const value of ip) if (isIP(value) === 0) throw new UsageError(`--ip ${value} is not an IP address`)
  for (const value of uri) {
    if (!PRINTABLE.test(value) || !URL.canParse(value)) throw new UsageError(`--uri ${value} is not a URI`)
  }
  for (const value of listOption(values, 'spiffe')) {
    if (!isSpiffeId(value)) throw new UsageError(`--spiffe ${value} is not a SPIFFE ID (spiffe://trust-domain/path)`)
    uri.push(value)
  }
  return { email, dns, uri, ip }
}

/**
 * A server certificate is for the host it is named after: clients check the name they connect to against
 * the DNS and IP SANs only (never the CN), so the name goes first among them unless --dns/--ip give it.
 */
function addServerName (sans: Sans, name: string): void {
  if (isIP(name) !== 0) {
    if (!sans.ip.includes(name)) sans.ip.unshift(name)
    return
  }
  if (!DNS_NAME.test(name)) {
    throw new UsageError(`with --server the name is the host the certificate is for, and "${name}" is not a DNS name or an IP address`)
  }
  if (!sans.dns.some((dns) => dns.toLowerCase() === name.toLowerCase())) sans.dns.unshift(name)
}

function sanLines (sans: Sans): string[] {
  const lines: string[] = []
  const add = (kind: string, list: string[]): void => {
    list.forEach((value, i) => lines.push(`${kind}.${i + 1} = ${configValue(value, `--${kind.toLowerCase()}`)}`))
  }
  add('email', sans.email)
  add('DNS', sans.dns)
  add('URI', sans.uri)
  add('IP', sans.ip)
  return lines
}

async function run ({ io, values, operand, say }: Context): Promise<unknown> {
  const name = operand as string
  if (!NAME.test(name)) throw new UsageError(`the name "${name}" must be letters, digits and ._@- (it names the files); give the subject with --subject`)
  const server = values.server === true
  const issuer = loadIssuer(io.cwd, absolute(io.cwd, stringOption(values, 'dir') ?? 'pki'))
  const files = issuer.layout
  const outDir = absolute(io.cwd, stringOption(values, 'out') ?? files.issued)
  const force = values.force === true
  const type = keyType(stringOption(values, 'key-type'))
  const days = daysOption(values, 'days', 365)
  const format = oneOf(values, 'p12-format', p12Formats, 'compat')
  const subject = subjectFromText(stringOption(values, 'subject') ?? `CN=${name}`, '--subject')
  const sans = collectSans(values)
  const urls = revocationUrls(values)
  if (server) addServerName(sans, name)
  const sanCount = sans.email.length + sans.dns.length + sans.uri.length + sans.ip.length
  if (subject.length === 0 && sanCount === 0) throw new UsageError('a certificate with an empty --subject needs at least one SAN (--email, --dns, --uri, --spiffe, --ip)')
  const notAfter = Date.now() + days * 86_400_000
  const caNotAfter = Date.parse(issuer.ca.cert.validTo)
  if (notAfter > caNotAfter) {
    throw new CliError(`--days ${days} would outlive the CA, valid until ${isoDate(issuer.ca.cert.validTo)}: give at most --days ${Math.floor((caNotAfter - Date.now()) / 86_400_000)}`)
  }
  const writeP12 = !server || values.p12 === true
  const password = stringOption(values, 'password-file') === undefined ? null : passwordFromFile(io, stringOption(values, 'password-file') as string)

  const paths = {
    key: join(outDir, `${name}.key`),
    cert: join(outDir, `${name}.crt`),
    chain: join(outDir, `${name}.chain.pem`),
    p12: join(outDir, `${name}.p12`)
  }
  if (!force) {
    for (const path of writeP12 ? [paths.key, paths.p12] : [paths.key]) {
      if (existsSync(path)) throw new CliError(`${display(io.cwd, path)} exists: refusing to overwrite a private key (use --force to replace it)`)
    }
  }
  if (!existsSync(files.index)) throw new CliError(`the CA database ${display(io.cwd, files.index)} is missing: was ${display(io.cwd, files.dir)} made by "fastify-client-cert ca"?`)

  say(`Issuing a ${server ? 'server' : 'client'} certificate for ${name} (${keyLabel(type)} key, ${days} days)...`)
  const work = mkdtempSync(join(tmpdir(), 'fastify-client-cert-issue-'))
  try {
    const keyPem = generateKey(type)
    writeFileSync(join(work, 'leaf.key'), keyPem, { mode: 0o600 })
    const extension = [
      'basicConstraints = critical,CA:FALSE',
      // RSA server keys also encipher the TLS 1.2 RSA key exchange.
      `keyUsage = critical,digitalSignature${server && type.startsWith('rsa') ? ',keyEncipherment' : ''}`,
      `extendedKeyUsage = ${server ? 'serverAuth' : 'clientAuth'}`,
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid:always',
      ...revocationExtensionLines(urls)
    ]
    // RFC 5280 4.2.1.6: with an empty subject the SANs are the identity, and the extension is critical.
    if (sanCount > 0) extension.push(`subjectAltName = ${subject.length === 0 ? 'critical,' : ''}@leaf_san`)
    const config = caConfig(files, issuer.root === null ? 'root' : 'intermediate', digestFor(issuer.ca.key),
      extensionSection('leaf_ext', extension) + '\n' + extensionSection('leaf_san', sanLines(sans)))
    writeFileSync(join(work, 'openssl.cnf'), config)
    // openssl ca takes the next serial from this file: a random one, not a counter (RFC 5280 asks for unpredictable serials).
    const serial = randomSerial()
    writeFileSync(files.serial, serial + '\n')
    openssl(io, ['req', '-new', '-config', 'openssl.cnf', '-utf8', '-key', 'leaf.key', '-subj', opensslSubject(subject), '-out', 'leaf.csr'], { cwd: work })
    openssl(io, ['ca', '-batch', '-config', 'openssl.cnf', '-preserveDN', '-utf8', '-notext', '-in', 'leaf.csr', '-out', 'leaf.crt',
      '-extensions', 'leaf_ext', '-days', String(days)], { cwd: work })
    const certPem = readFileSync(join(work, 'leaf.crt'), 'utf8')
    const chainPem = certPem + (issuer.root === null ? '' : readFileSync(issuer.ca.certPath, 'utf8'))
    let generated: string | null = null
    let p12: Buffer | null = null
    if (writeP12) {
      generated = password === null ? randomBytes(12).toString('base64url') : null
      writeFileSync(join(work, 'ca-chain.pem'), readFileSync(files.bundle))
      const friendlyName = certificateFields(certPem).commonName ?? name
      openssl(io, ['pkcs12', '-export', '-in', 'leaf.crt', '-inkey', 'leaf.key', '-certfile', 'ca-chain.pem', '-name', friendlyName,
        '-passout', `env:${PASSWORD_VARIABLE}`, ...p12Arguments[format], '-out', 'leaf.p12'], { cwd: work, password: password ?? generated! })
      p12 = readFileSync(join(work, 'leaf.p12'))
    }

    makeDir(io.cwd, outDir)
    writeOutput(io.cwd, paths.key, keyPem, { secret: true, force })
    writeOutput(io.cwd, paths.cert, certPem)
    writeOutput(io.cwd, paths.chain, chainPem)
    if (p12 !== null) writeOutput(io.cwd, paths.p12, p12, { secret: true, force })

    const fields = certificateFields(new X509Certificate(certPem))
    const show = (path: string): string => display(io.cwd, path)
    say(`Issued ${fields.subject === '' ? '(empty subject)' : fields.subject} by ${fields.issuer}`)
    say(`  serial ${fields.serialNumber}, valid until ${fields.notAfter!.toISOString()}`)
    for (const url of urls.crl) say(`  CRL at ${url}`)
    for (const url of urls.ocsp) say(`  OCSP at ${url}`)
    say(`  ${show(paths.key)}  private key (keep it secret)`)
    say(`  ${show(paths.cert)}  certificate`)
    say(`  ${show(paths.chain)}  certificate and the intermediate CA${server ? ' (what a server presents)' : ' (what a client presents, e.g. curl --cert)'}`)
    if (p12 !== null) {
      say(`  ${show(paths.p12)}  PKCS#12 for browsers and keychains (${format === 'compat' ? '3DES, SHA-1 MAC: imports everywhere' : 'AES-256, SHA-256 MAC'})`)
      say(generated === null ? '  PKCS#12 password: the one in the --password-file' : `  PKCS#12 password: ${generated}  (generated; --password-file chooses one)`)
    }
    return {
      name,
      usage: server ? 'serverAuth' : 'clientAuth',
      subject: fields.subject,
      issuer: fields.issuer,
      san: fields.san,
      serialNumber: fields.serialNumber,
      fingerprint256: fields.fingerprint256,
      notBefore: fields.notBefore,
      notAfter: fields.notAfter,
      crlUrls: urls.crl,
      ocspUrls: urls.ocsp,
      key: paths.key,
      certificate: paths.cert,
      chain: paths.chain,
      p12: p12 === null ? null : paths.p12,
      p12Format: p12 === null ? null : format,
      p12Password: generated
    }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

export const issueCommand: Command = {
  summary: 'issue a client certificate (key, certificate, PKCS#12)',
  usage: 'issue <name> [--dir pki] [--subject "CN=…,O=…"] [--email …] [--dns …] [--uri …] [--spiffe …] [--days 365] [--crl-url …] [--ocsp-url …] [--json]',
  operand: 'required',
  options: {
    dir: { type: 'string' },
    out: { type: 'string' },
    subject: { type: 'string' },
    email: { type: 'string', multiple: true },
    dns: { type: 'string', multiple: true },
    uri: { type: 'string', multiple: true },
    spiffe: { type: 'string', multiple: true },
    ip: { type: 'string', multiple: true },
    days: { type: 'string' },
    'key-type': { type: 'string' },
    'password-file': { type: 'string' },
    'p12-format': { type: 'string' },
    server: { type: 'boolean' },
    p12: { type: 'boolean' },
    force: { type: 'boolean' },
    ...urlOptions
  },
  help: `Issues a certificate with the clientAuth usage, signed by the CA in --dir, and writes <name>.key,
<name>.crt, <name>.chain.pem and a password-protected <name>.p12 that browsers and keychains import.

  --dir <dir>             the CA (default: pki)
  --out <dir>             where the files go (default: <dir>/issued)
  --subject <name>        RFC 4514, most specific first: "CN=Alice Example,OU=Engineering,O=Example Corp"
                          (default: CN=<name>; "" for an empty subject with SANs)
  --email, --dns, --uri, --ip <value>   subject alternative names (repeatable)
  --spiffe <id>           a SPIFFE ID, as a URI SAN: spiffe://example.org/ns/prod/sa/web
  --days <n>              validity (default: 365)
${urlHelp}
  --key-type <type>       ${keyTypes.join(', ')} (default: ec-p256)
  --password-file <file>  the PKCS#12 password, first line (default: a generated one, printed once)
  --p12-format <format>   compat (default: imports everywhere, macOS Keychain included) or aes (OpenSSL 3's default)
  --server                a server certificate (serverAuth) for the host <name> (a DNS name or an IP address, put in
                          its SANs; more with --dns, --ip), e.g. "issue localhost --server"; no PKCS#12 unless --p12
  --force                 replace the files of an earlier certificate of this name (that one stays valid until revoked)`,
  run
}
