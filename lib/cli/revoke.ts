import { X509Certificate } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RevocationList } from '../revocation/crl.js'
import { normalizeSerial } from '../codecs/fingerprint.js'
import { certificateFields } from '../identity.js'
import { daysOption, oneOf, stringOption, type Command, type Context } from './command.js'
import { absolute, CliError, display, readUserFile, writeOutput, type CliIo } from './io.js'
import { digestFor } from './keys.js'
import { openssl } from './openssl.js'
import { caConfig, indexEntry, issuedCertificate, loadIssuer, type Issuer } from './pki.js'

const reasons = ['unspecified', 'keyCompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation'] as const

function configFor (issuer: Issuer): string {
  return caConfig(issuer.layout, issuer.root === null ? 'root' : 'intermediate', digestFor(issuer.ca.key))
}

function countRevoked (index: string): number {
  return readFileSync(index, 'utf8').split('\n').filter((line) => line.startsWith('R\t')).length
}

interface CrlResult { path: string, revoked: number, crls: number, nextUpdate: string }

/**
 * Writes the CRL of the issuing CA and, with an intermediate, an empty one of the root: nginx, Apache and
 * HAProxy check every CA of the chain once a CRL file is configured, and fail without the root's.
 */
function writeCrl (io: CliIo, issuer: Issuer, days: number, out: string): CrlResult {
  const work = mkdtempSync(join(tmpdir(), 'fastify-client-cert-crl-'))
  try {
    writeFileSync(join(work, 'openssl.cnf'), configFor(issuer))
    openssl(io, ['ca', '-config', 'openssl.cnf', '-gencrl', '-crldays', String(days), '-out', 'crl.pem'], { cwd: work })
    let pem = readFileSync(join(work, 'crl.pem'), 'utf8')
    if (issuer.root !== null) {
      openssl(io, ['ca', '-config', 'openssl.cnf', '-name', 'root_ca', '-gencrl', '-crldays', String(days), '-out', 'root-crl.pem'], { cwd: work })
      pem += readFileSync(join(work, 'root-crl.pem'), 'utf8')
    }
    // The plugin's own reader must accept what it is given.
    const list = RevocationList.from(pem, 'crl')
    writeOutput(io.cwd, out, pem)
    const nextUpdate = openssl(io, ['crl', '-in', 'crl.pem', '-noout', '-nextupdate'], { cwd: work }).toString('utf8').trim().replace(/^nextUpdate=/, '')
    return { path: out, revoked: countRevoked(issuer.layout.index), crls: list.size, nextUpdate: new Date(nextUpdate).toISOString() }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

function sayCrl (io: CliIo, say: Context['say'], result: CrlResult): void {
  say(`Wrote ${display(io.cwd, result.path)}: ${result.revoked} revoked certificate${result.revoked === 1 ? '' : 's'}, valid until ${result.nextUpdate}.`)
  say('  Load it with the plugin\'s crl option (then app.clientCert.reload({ crl })), nginx ssl_crl, Apache')
  say('  SSLCARevocationFile or HAProxy crl-file. Run "fastify-client-cert crl" again before it expires:')
  say('  the plugin refuses every certificate of this CA once its CRL has expired.')
}

function crlOptions (io: CliIo, values: Context['values'], issuer: Issuer): { days: number, out: string } {
  return {
    days: daysOption(values, 'crl-days', 30),
    out: absolute(io.cwd, stringOption(values, 'out') ?? issuer.layout.crl)
  }
}

/** The serial a `revoke` operand names: a certificate file, or a serial number in hex. */
function serialOf (io: CliIo, issuer: Issuer, operand: string): string {
  const path = absolute(io.cwd, operand)
  if (existsSync(path) && statSync(path).isFile()) {
    let cert: X509Certificate
    try {
      cert = new X509Certificate(readUserFile(io.cwd, operand, 'the certificate'))
    } catch {
      throw new CliError(`${display(io.cwd, path)} is not a certificate`)
    }
    if (!cert.checkIssued(issuer.ca.cert) || !cert.verify(issuer.ca.cert.publicKey)) {
      throw new CliError(`${display(io.cwd, path)} was not issued by the CA in ${display(io.cwd, issuer.layout.dir)}`)
    }
    return cert.serialNumber
  }
  try {
    return normalizeSerial(operand)
  } catch {
    throw new CliError(`"${operand}" is neither a certificate file nor a serial number in hex`)
  }
}

async function revoke ({ io, values, operand, say }: Context): Promise<unknown> {
  const issuer = loadIssuer(io.cwd, absolute(io.cwd, stringOption(values, 'dir') ?? 'pki'))
  const reason = stringOption(values, 'reason') === undefined ? null : oneOf(values, 'reason', reasons, 'unspecified')
  const { days, out } = crlOptions(io, values, issuer)
  const serial = serialOf(io, issuer, operand as string)
  const dir = display(io.cwd, issuer.layout.dir)
  const entry = existsSync(issuer.layout.index) ? indexEntry(issuer.layout, serial) : null
  const cert = entry === null ? null : issuedCertificate(issuer.layout, serial)
  if (entry === null || cert === null) throw new CliError(`the CA in ${dir} has no record of a certificate with serial ${serial}`)
  if (entry.status === 'R') throw new CliError(`the certificate with serial ${serial} is already revoked`)

  const subject = certificateFields(cert).subject
  say(`Revoking ${subject === '' ? '(empty subject)' : subject} (serial ${serial})${reason === null ? '' : `, reason: ${reason}`}...`)
  const work = mkdtempSync(join(tmpdir(), 'fastify-client-cert-revoke-'))
  try {
    writeFileSync(join(work, 'openssl.cnf'), configFor(issuer))
    openssl(io, ['ca', '-config', 'openssl.cnf', '-revoke', join(issuer.layout.certs, `${serial}.pem`), ...(reason === null ? [] : ['-crl_reason', reason])], { cwd: work })
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
  const crl = writeCrl(io, issuer, days, out)
  sayCrl(io, say, crl)
  return { serialNumber: serial, subject, reason, crl }
}

async function crl ({ io, values, say }: Context): Promise<unknown> {
  const issuer = loadIssuer(io.cwd, absolute(io.cwd, stringOption(values, 'dir') ?? 'pki'))
  const { days, out } = crlOptions(io, values, issuer)
  const result = writeCrl(io, issuer, days, out)
  sayCrl(io, say, result)
  return result
}

const crlHelp = `  --dir <dir>         the CA (default: pki)
  --out <file>        where the CRL goes (default: <dir>/crl.pem)
  --crl-days <n>      how long the CRL stays valid (default: 30)`

export const revokeCommand: Command = {
  summary: 'revoke a certificate and write the CRL',
  usage: 'revoke <serial|certificate file> [--dir pki] [--reason keyCompromise] [--json]',
  operand: 'required',
  options: {
    dir: { type: 'string' },
    reason: { type: 'string' },
    out: { type: 'string' },
    'crl-days': { type: 'string' }
  },
  help: `Marks a certificate issued by the CA as revoked (by its serial number in hex, as "inspect" prints it, or
by its certificate file) and writes the CRL again.

  --reason <reason>   ${reasons.join(', ')}
${crlHelp}`,
  run: revoke
}

export const crlCommand: Command = {
  summary: 'write the CRL (again: it expires)',
  usage: 'crl [--dir pki] [--out pki/crl.pem] [--crl-days 30] [--json]',
  operand: 'none',
  options: {
    dir: { type: 'string' },
    out: { type: 'string' },
    'crl-days': { type: 'string' }
  },
  help: `Writes the certificate revocation list of the CA, PEM, for the plugin's crl option and for nginx, Apache and
HAProxy. With an intermediate CA the file holds its CRL and the root's.

${crlHelp}`,
  run: crl
}
