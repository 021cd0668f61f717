import { createPrivateKey, X509Certificate } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { certificateFields } from '../identity.js'
import { daysOption, stringOption, type Command, type Context } from './command.js'
import { absolute, CliError, display, makeDir, UsageError, writeOutput } from './io.js'
import { digestFor, generateKey, keyLabel, keyType, keyTypes, randomSerial } from './keys.js'
import { openssl } from './openssl.js'
import { caConfig, extensionSection, layout, opensslSubject, subjectFromText, type Layout } from './pki.js'
import { revocationExtensionLines, revocationUrls } from './urls.js'

/** The extension sections of a root and its intermediate; `crlUrls` go into the intermediate (the root's CRL lists it). */
function extensions (crlUrls: string[]): string {
  return [
    extensionSection('v3_root', [
      'basicConstraints = critical,CA:TRUE',
      'keyUsage = critical,keyCertSign,cRLSign',
      'subjectKeyIdentifier = hash'
    ]),
    extensionSection('v3_intermediate', [
      'basicConstraints = critical,CA:TRUE,pathlen:0',
      'keyUsage = critical,keyCertSign,cRLSign',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid:always',
      ...revocationExtensionLines({ crl: crlUrls, ocsp: [] })
    ])
  ].join('\n')
}

/** Files of a previous CA that `--force` removes, so nothing of it (an intermediate, its database) lingers. */
function clearPrevious (files: Layout): void {
  for (const path of [
    files.intermediateKey, files.intermediateCert, files.index, `${files.index}.attr`, `${files.index}.old`,
    `${files.index}.attr.old`, files.serial, `${files.serial}.old`, files.crlNumber, `${files.crlNumber}.old`,
    files.rootIndex, `${files.rootIndex}.attr`, `${files.rootIndex}.old`, `${files.rootIndex}.attr.old`,
    files.rootCrlNumber, `${files.rootCrlNumber}.old`, files.crl, files.certs, files.ocspKey, files.ocspCert
  ]) {
    rmSync(path, { recursive: true, force: true })
  }
}

function describe (cert: X509Certificate, certPath: string, keyPath: string): Record<string, string> {
  return {
    certificate: certPath,
    key: keyPath,
    subject: certificateFields(cert).subject as string,
    serialNumber: cert.serialNumber,
    fingerprint256: cert.fingerprint256,
    notAfter: new Date(cert.validTo).toISOString()
  }
}

async function run ({ io, values, say }: Context): Promise<unknown> {
  const dir = absolute(io.cwd, stringOption(values, 'dir') ?? 'pki')
  const files = layout(dir)
  const force = values.force === true
  const type = keyType(stringOption(values, 'key-type'))
  const days = daysOption(values, 'days', 3650)
  const withIntermediate = values.intermediate === true
  const intermediateDays = daysOption(values, 'intermediate-days', Math.min(1825, days))
  if (intermediateDays > days) throw new UsageError('--intermediate-days cannot exceed --days: an intermediate cannot outlive its root')
  if (!withIntermediate && (values['intermediate-days'] !== undefined || values['intermediate-subject'] !== undefined)) {
    throw new UsageError('--intermediate-days and --intermediate-subject need --intermediate')
  }
  const { crl: crlUrls } = revocationUrls(values)
  if (!withIntermediate && crlUrls.length > 0) throw new UsageError('--crl-url needs --intermediate: it goes into the intermediate (a root is checked by no CRL)')
  const tag = randomSerial().slice(0, 6)
  const rootSubject = subjectFromText(stringOption(values, 'subject') ?? `CN=Development Root CA ${tag},O=fastify-client-cert development`, '--subject')
  const intermediateSubject = subjectFromText(
    stringOption(values, 'intermediate-subject') ?? `CN=Development Intermediate CA ${tag},O=fastify-client-cert development`, '--intermediate-subject')
  if (rootSubject.length === 0 || intermediateSubject.length === 0) throw new CliError('a CA needs a subject: its name is what certificates name as their issuer')

  if (!force) {
    for (const key of [files.rootKey, files.intermediateKey]) {
      if (existsSync(key)) {
        throw new CliError(`${display(io.cwd, key)} exists: refusing to overwrite the CA's private key (--force replaces the CA; certificates it issued stop verifying)`)
      }
    }
  }

  say(`Creating a development CA in ${display(io.cwd, dir)} (${keyLabel(type)} keys)...`)
  // Everything is made in a scratch directory first: a failure leaves an existing CA untouched.
  const work = mkdtempSync(join(tmpdir(), 'fastify-client-cert-ca-'))
  try {
    const rootKeyPem = generateKey(type)
    const digest = `-${digestFor(createPrivateKey(rootKeyPem))}`
    writeFileSync(join(work, 'openssl.cnf'), caConfig(files, 'root', digest.slice(1), extensions(crlUrls)))
    writeFileSync(join(work, 'root.key'), rootKeyPem, { mode: 0o600 })
    openssl(io, ['req', '-x509', '-new', '-config', 'openssl.cnf', '-utf8', '-key', 'root.key', '-subj', opensslSubject(rootSubject),
      '-days', String(days), '-extensions', 'v3_root', '-set_serial', `0x${randomSerial()}`, digest, '-out', 'root.crt'], { cwd: work })
    let intermediateKeyPem: string | null = null
    if (withIntermediate) {
      intermediateKeyPem = generateKey(type)
      writeFileSync(join(work, 'intermediate.key'), intermediateKeyPem, { mode: 0o600 })
      openssl(io, ['req', '-new', '-config', 'openssl.cnf', '-utf8', '-key', 'intermediate.key', '-subj', opensslSubject(intermediateSubject),
        '-out', 'intermediate.csr'], { cwd: work })
      openssl(io, ['x509', '-req', '-in', 'intermediate.csr', '-CA', 'root.crt', '-CAkey', 'root.key', '-set_serial', `0x${randomSerial()}`,
        '-days', String(intermediateDays), '-extfile', 'openssl.cnf', '-extensions', 'v3_intermediate', digest, '-out', 'intermediate.crt'], { cwd: work })
    }

    makeDir(io.cwd, dir)
    if (force) clearPrevious(files)
    makeDir(io.cwd, files.certs)
    const rootPem = readFileSync(join(work, 'root.crt'), 'utf8')
    writeOutput(io.cwd, files.rootKey, rootKeyPem, { secret: true, force })
    writeOutput(io.cwd, files.rootCert, rootPem)
    let bundle = rootPem
    let intermediate: Record<string, string> | null = null
    if (intermediateKeyPem !== null) {
      const intermediatePem = readFileSync(join(work, 'intermediate.crt'), 'utf8')
      writeOutput(io.cwd, files.intermediateKey, intermediateKeyPem, { secret: true, force })
      writeOutput(io.cwd, files.intermediateCert, intermediatePem)
      bundle += intermediatePem
      writeOutput(io.cwd, files.rootIndex, '')
      writeOutput(io.cwd, files.rootCrlNumber, '1000\n')
      intermediate = describe(new X509Certificate(intermediatePem), files.intermediateCert, files.intermediateKey)
    }
    writeOutput(io.cwd, files.bundle, bundle)
    writeOutput(io.cwd, files.index, '')
    writeOutput(io.cwd, `${files.index}.attr`, 'unique_subject = no\n')
    writeOutput(io.cwd, files.crlNumber, '1000\n')

    const root = describe(new X509Certificate(rootPem), files.rootCert, files.rootKey)
    const show = (path: string): string => display(io.cwd, path)
    say(`Root CA: ${root.subject}, valid until ${root.notAfter}`)
    say(`  ${show(files.rootCert)}  certificate`)
    say(`  ${show(files.rootKey)}  private key (keep it secret)`)
    if (intermediate !== null) {
      say(`Intermediate CA (issues the certificates): ${intermediate.subject}, valid until ${intermediate.notAfter}`)
      say(`  ${show(files.intermediateCert)}  certificate`)
      say(`  ${show(files.intermediateKey)}  private key (keep it secret)`)
      for (const url of crlUrls) say(`  CRL of the root at ${url}`)
    }
    say(`  ${show(files.bundle)}  the CA certificate${intermediate === null ? '' : 's'} to trust for client certificates (Fastify https.ca, nginx ssl_client_certificate, proxy.ca)`)
    say(`Next: fastify-client-cert issue alice --dir ${show(dir)} --email alice@example.com`)
    return { dir, keyType: type, root, intermediate: intermediate === null ? null : { ...intermediate, crlUrls }, bundle: files.bundle }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

export const caCommand: Command = {
  summary: 'create a development CA (root, optionally an intermediate)',
  usage: 'ca [--dir pki] [--intermediate] [--key-type ec-p256] [--days 3650] [--force] [--json]',
  operand: 'none',
  options: {
    dir: { type: 'string' },
    subject: { type: 'string' },
    intermediate: { type: 'boolean' },
    'intermediate-subject': { type: 'string' },
    'key-type': { type: 'string' },
    days: { type: 'string' },
    'intermediate-days': { type: 'string' },
    'crl-url': { type: 'string', multiple: true },
    force: { type: 'boolean' }
  },
  help: `Creates a certificate authority for development and tests, with the database "issue", "revoke" and "crl"
use (it is openssl's own: "openssl ca" can use it too).

  --dir <dir>                  where the CA lives (default: pki)
  --subject <name>             the root's name, RFC 4514 (default: CN=Development Root CA <random>,O=fastify-client-cert development)
  --intermediate               also create an intermediate CA, which then issues every certificate
  --intermediate-subject <name>
  --key-type <type>            ${keyTypes.join(', ')} (default: ec-p256)
  --days <n>                   root validity in days (default: 3650)
  --intermediate-days <n>      intermediate validity (default: 1825, at most --days)
  --crl-url <url>              where the root's CRL is published ("crl" writes it beside the intermediate's),
                               put in the intermediate's cRLDistributionPoints (http or https, repeatable)
  --force                      replace an existing CA: every certificate it issued stops verifying`,
  run
}
