import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseDN, type RDN } from '../codecs/dn.js'
import { CliError, display, readUserFile } from './io.js'

/**
 * A development CA directory: the CA's files plus the database of `openssl ca` (so the CA stays usable with
 * openssl by hand). The issuing CA is the intermediate when there is one, else the root.
 */
export interface Layout {
  dir: string
  rootKey: string
  rootCert: string
  intermediateKey: string
  intermediateCert: string
  /** root (+ intermediate): what servers and proxies take as the CA of client certificates */
  bundle: string
  /** `openssl ca` database of the issuing CA */
  index: string
  serial: string
  crlNumber: string
  /** copies of every issued certificate, named `<SERIAL>.pem` by `openssl ca` */
  certs: string
  /** database of the root when it is not the issuing CA (it only ever signs the CRL that says it revoked nothing) */
  rootIndex: string
  rootCrlNumber: string
  crl: string
  issued: string
  /** the delegated OCSP responder of the issuing CA (`ocsp`), made on first use */
  ocspKey: string
  ocspCert: string
}

export function layout (dir: string): Layout {
  return {
    dir,
    rootKey: join(dir, 'root.key'),
    rootCert: join(dir, 'root.crt'),
    intermediateKey: join(dir, 'intermediate.key'),
    intermediateCert: join(dir, 'intermediate.crt'),
    bundle: join(dir, 'ca.crt'),
    index: join(dir, 'index.txt'),
    serial: join(dir, 'serial'),
    crlNumber: join(dir, 'crlnumber'),
    certs: join(dir, 'certs'),
    rootIndex: join(dir, 'root-index.txt'),
    rootCrlNumber: join(dir, 'root-crlnumber'),
    crl: join(dir, 'crl.pem'),
    issued: join(dir, 'issued'),
    ocspKey: join(dir, 'ocsp.key'),
    ocspCert: join(dir, 'ocsp.crt')
  }
}

export interface LoadedCa {
  certPath: string
  keyPath: string
  cert: X509Certificate
  key: KeyObject
}

export interface Issuer {
  layout: Layout
  /** the CA that signs certificates and the main CRL */
  ca: LoadedCa
  /** the root, when `ca` is an intermediate */
  root: LoadedCa | null
}

function loadCa (cwd: string, certPath: string, keyPath: string, now: number): LoadedCa {
  const certText = readUserFile(cwd, certPath, 'the CA certificate')
  let cert: X509Certificate
  try {
    cert = new X509Certificate(certText)
  } catch {
    throw new CliError(`${display(cwd, certPath)} is not a certificate`)
  }
  if (!cert.ca) throw new CliError(`${display(cwd, certPath)} is not a CA certificate`)
  const keyText = readUserFile(cwd, keyPath, 'the CA key')
  let key: KeyObject
  try {
    key = createPrivateKey(keyText)
  } catch {
    throw new CliError(`${display(cwd, keyPath)} is not an unencrypted private key`)
  }
  if (!cert.checkPrivateKey(key)) throw new CliError(`the CA key ${display(cwd, keyPath)} does not match the CA certificate ${display(cwd, certPath)}`)
  if (now > Date.parse(cert.validTo)) throw new CliError(`the CA certificate ${display(cwd, certPath)} expired on ${new Date(cert.validTo).toISOString()}`)
  return { certPath, keyPath, cert, key }
}

/** Loads the issuing CA of `dir`, checking every file: present, readable, a CA, its key matching, not expired. */
export function loadIssuer (cwd: string, dir: string, now = Date.now()): Issuer {
  const files = layout(dir)
  if (!existsSync(files.rootCert)) {
    throw new CliError(`no CA in ${display(cwd, dir)} (${display(cwd, files.rootCert)} is missing): create one with "fastify-client-cert ca --dir ${display(cwd, dir)}"`)
  }
  const root = loadCa(cwd, files.rootCert, files.rootKey, now)
  if (!existsSync(files.intermediateCert)) return { layout: files, ca: root, root: null }
  const intermediate = loadCa(cwd, files.intermediateCert, files.intermediateKey, now)
  if (!intermediate.cert.checkIssued(root.cert) || !intermediate.cert.verify(root.cert.publicKey)) {
    throw new CliError(`${display(cwd, files.intermediateCert)} was not issued by ${display(cwd, files.rootCert)}`)
  }
  return { layout: files, ca: intermediate, root }
}

/**
 * A value for an OpenSSL configuration file: `\` escapes the characters the parser treats specially
 * (comments, variables, quotes, the escape itself). Line breaks cannot be written at all.
 */
export function configValue (value: string, what: string): string {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) throw new CliError(`${what} holds a control character`)
  return value.replace(/[\\$#"']/g, (c) => '\\' + c)
}

/** An RFC 4514 name given on the command line, checked with the plugin's own parser. */
export function subjectFromText (text: string, option: string): RDN[] {
  let rdns: RDN[]
  try {
    rdns = parseDN(text)
  } catch (error) {
    throw new CliError(`${option}: ${(error as Error).message}`)
  }
  for (const rdn of rdns) {
    for (const attribute of rdn) {
      // openssl skips an attribute it cannot name, with a mere warning: refuse it here instead.
      if (attribute.type === attribute.oid) throw new CliError(`${option}: openssl cannot write the attribute ${attribute.oid}`)
      if (attribute.value === '') throw new CliError(`${option}: the ${attribute.type} attribute is empty`)
      configValue(attribute.value, option)
    }
  }
  return rdns
}

/**
 * The `-subj` argument of `openssl req`: most significant RDN first (the reverse of RFC 4514), `+` inside a
 * multi-valued RDN, and `\` before the characters that syntax gives a meaning to.
 */
export function opensslSubject (rdns: readonly RDN[]): string {
  if (rdns.length === 0) return '/'
  return [...rdns].reverse()
    .map((rdn) => '/' + rdn.map((a) => `${a.type}=${a.value.replace(/[\\/+=]/g, (c) => '\\' + c)}`).join('+'))
    .join('')
}

function section (name: string, lines: readonly string[]): string {
  return `[ ${name} ]\n${lines.join('\n')}\n`
}

/** The `openssl ca` configuration for `dir`, with absolute, escaped paths; `extra` adds extension sections. */
export function caConfig (files: Layout, issuer: 'root' | 'intermediate', digest: string, extra = ''): string {
  const path = (p: string): string => configValue(p, 'the CA directory')
  const database = (name: string, index: string, crlNumber: string, cert: string, key: string): string => section(name, [
    `database = ${path(index)}`,
    `new_certs_dir = ${path(files.certs)}`,
    `serial = ${path(files.serial)}`,
    `crlnumber = ${path(crlNumber)}`,
    `certificate = ${path(cert)}`,
    `private_key = ${path(key)}`,
    `default_md = ${digest}`,
    'policy = policy_any',
    // Several certificates may share a subject (a renewed one, a second device).
    'unique_subject = no',
    'copy_extensions = none',
    'crl_extensions = crl_ext',
    'default_crl_days = 30'
  ])
  const issuing = issuer === 'root'
    ? database('issuing_ca', files.index, files.crlNumber, files.rootCert, files.rootKey)
    : database('issuing_ca', files.index, files.crlNumber, files.intermediateCert, files.intermediateKey)
  return [
    '# Written by fastify-client-cert for one openssl run.',
    section('req', ['distinguished_name = req_dn', 'string_mask = utf8only', 'utf8 = yes']),
    section('req_dn', []),
    section('ca', ['default_ca = issuing_ca']),
    issuing,
    database('root_ca', files.rootIndex, files.rootCrlNumber, files.rootCert, files.rootKey),
    // With -preserveDN an empty policy keeps the subject exactly as requested, in its order.
    section('policy_any', []),
    section('crl_ext', ['authorityKeyIdentifier = keyid:always']),
    extra
  ].join('\n')
}

export function extensionSection (name: string, lines: readonly string[]): string {
  return section(name, lines)
}

/** Reads the issued certificate of a serial from the CA's own copies. */
export function issuedCertificate (files: Layout, serial: string): X509Certificate | null {
  const path = join(files.certs, `${serial}.pem`)
  if (!existsSync(path)) return null
  return new X509Certificate(readFileSync(path))
}

export interface IndexEntry {
  status: string
  revoked: string
}

/** The status of a serial in the `openssl ca` text database (`V` valid, `R` revoked, `E` expired). */
export function indexEntry (files: Layout, serial: string): IndexEntry | null {
  const text = readFileSync(files.index, 'utf8')
  for (const line of text.split('\n')) {
    const fields = line.split('\t')
    if (fields.length >= 4 && fields[3] === serial) return { status: fields[0], revoked: fields[2] }
  }
  return null
}
