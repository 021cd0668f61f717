// A development OCSP responder (RFC 6960) for the CLI's CA, so that the whole revocation flow runs on a laptop.
// Each request is answered by `openssl ocsp` from the CA's own database (index.txt, which issue and revoke keep
// up to date), so a revocation is answered at once, without a restart.
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { certificateFields } from '../identity.js'
import { stringOption, type Command, type Context } from './command.js'
import { absolute, CliError, display, UsageError, writeOutput, type CliIo } from './io.js'
import { digestFor, generateKey, randomSerial } from './keys.js'
import { openssl, OpensslFailure } from './openssl.js'
import { caConfig, extensionSection, loadIssuer, type Issuer } from './pki.js'

const DAY = 86_400_000
// The responder certificate is short-lived (it cannot be revoked: noCheck) and made again when it nears its end.
const RESPONDER_DAYS = 30
// An OCSP request names a few certificates; anything this large is not one.
const MAX_REQUEST_BYTES = 64 * 1024
// OCSPResponse { responseStatus } without a body (RFC 6960 4.2.1): malformedRequest (1), internalError (2).
const MALFORMED = Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x01])
const INTERNAL_ERROR = Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x02])

export interface Responder { certPath: string, keyPath: string, made: boolean }

/**
 * The delegated responder of the issuing CA (RFC 6960 4.2.2.2): a certificate it issued with the OCSPSigning
 * usage. The one in the CA directory is kept while it belongs to this CA and has a day left; else a new one is made.
 */
export function responderFor (io: CliIo, issuer: Issuer, now = Date.now()): Responder {
  const { ocspCert: certPath, ocspKey: keyPath } = issuer.layout
  if (existsSync(certPath) && existsSync(keyPath)) {
    try {
      const cert = new X509Certificate(readFileSync(certPath))
      const usable = cert.checkIssued(issuer.ca.cert) && cert.verify(issuer.ca.cert.publicKey) &&
        cert.checkPrivateKey(createPrivateKey(readFileSync(keyPath))) && Date.parse(cert.validTo) - now > DAY
      if (usable) return { certPath, keyPath, made: false }
    } catch {
      // A damaged file is replaced like an outdated one.
    }
  }
  const caLeft = Math.floor((Date.parse(issuer.ca.cert.validTo) - now) / DAY)
  const days = Math.max(1, Math.min(RESPONDER_DAYS, caLeft))
  const work = mkdtempSync(join(tmpdir(), 'fastify-client-cert-ocsp-'))
  try {
    const keyPem = generateKey('ec-p256')
    writeFileSync(join(work, 'ocsp.key'), keyPem, { mode: 0o600 })
    const files = issuer.layout
    writeFileSync(join(work, 'openssl.cnf'), caConfig(files, issuer.root === null ? 'root' : 'intermediate', digestFor(issuer.ca.key), extensionSection('ocsp_ext', [
      'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature',
      'extendedKeyUsage = OCSPSigning',
      // id-pkix-ocsp-nocheck (RFC 6960 4.2.2.2.1): clients do not ask about the responder's own status.
      'noCheck = ignored',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid:always'
    ])))
    openssl(io, ['req', '-new', '-config', 'openssl.cnf', '-key', 'ocsp.key', '-subj', '/CN=fastify-client-cert OCSP responder', '-out', 'ocsp.csr'], { cwd: work })
    openssl(io, ['x509', '-req', '-in', 'ocsp.csr', '-CA', issuer.ca.certPath, '-CAkey', issuer.ca.keyPath, '-set_serial', `0x${randomSerial()}`,
      '-days', String(days), '-extfile', 'openssl.cnf', '-extensions', 'ocsp_ext', `-${digestFor(issuer.ca.key)}`, '-out', 'ocsp.crt'], { cwd: work })
    writeOutput(io.cwd, keyPath, keyPem, { secret: true, force: true })
    writeOutput(io.cwd, certPath, readFileSync(join(work, 'ocsp.crt')))
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
  return { certPath, keyPath, made: true }
}

function portOption (text: string | undefined): number {
  if (text === undefined) return 8888
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) > 65535) throw new UsageError('--port must be a port number from 0 (any free port) to 65535')
  return Number(text)
}

function minutesOption (text: string | undefined): number {
  if (text === undefined) return 5
  if (!/^[0-9]{1,6}$/.test(text) || Number(text) < 1 || Number(text) > 525_600) throw new UsageError('--minutes must be a whole number of minutes from 1 to 525600')
  return Number(text)
}

/** The DER request of a GET (RFC 6960 A.1: the URL-encoded base64 of the request, after the responder's path) or a POST. */
async function requestBody (request: IncomingMessage): Promise<Buffer | 'too large'> {
  if (request.method === 'GET') {
    const path = (request.url as string).replace(/^\/+/, '')
    return Buffer.from(decodeURIComponent(path), 'base64')
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of request) {
    size += (chunk as Buffer).length
    if (size > MAX_REQUEST_BYTES) return 'too large'
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
}

/** The serial numbers and statuses in `openssl ocsp -resp_text` output (the responder's own certificate prints its serial in another form). */
function statuses (text: string): string[] {
  const found: string[] = []
  let serial: string | null = null
  for (const line of text.split('\n')) {
    const number = /^\s*Serial Number: ([0-9A-F]+)$/.exec(line)
    if (number !== null) serial = number[1]
    const status = /^\s*Cert Status: (\w+)/.exec(line)
    if (status !== null && serial !== null) found.push(`${serial} ${status[1]}`)
  }
  return found
}

async function run ({ io, values, say }: Context): Promise<unknown> {
  const issuer = loadIssuer(io.cwd, absolute(io.cwd, stringOption(values, 'dir') ?? 'pki'))
  const host = stringOption(values, 'host') ?? '127.0.0.1'
  const port = portOption(stringOption(values, 'port'))
  const minutes = minutesOption(stringOption(values, 'minutes'))
  if (io.stopped === undefined) throw new CliError('ocsp runs until it is stopped, and nothing here can stop it')
  const files = issuer.layout
  if (!existsSync(files.index)) throw new CliError(`the CA database ${display(io.cwd, files.index)} is missing: was ${display(io.cwd, files.dir)} made by "fastify-client-cert ca"?`)
  const responder = responderFor(io, issuer)
  const signal = io.stopped()
  let requests = 0

  const answer = (request: IncomingMessage, response: ServerResponse, body: Buffer): void => {
    const send = (der: Buffer): void => { response.writeHead(200, { 'content-type': 'application/ocsp-response', 'content-length': der.length }).end(der) }
    const work = mkdtempSync(join(tmpdir(), 'fastify-client-cert-ocsp-'))
    try {
      writeFileSync(join(work, 'request.der'), body)
      const text = openssl(io, ['ocsp', '-reqin', 'request.der', '-index', files.index, '-CA', issuer.ca.certPath, '-rsigner', responder.certPath,
        '-rkey', responder.keyPath, '-nmin', String(minutes), '-respout', 'response.der', '-resp_text'], { cwd: work }).toString('utf8')
      say(`${request.method} ${statuses(text).join(', ')}`)
      send(readFileSync(join(work, 'response.der')))
    } catch (error) {
      // openssl refuses what is not an OCSP request; anything else (openssl gone, too slow) is ours.
      const malformed = error instanceof OpensslFailure
      say(`${request.method} ${malformed ? 'malformed request' : `failed: ${(error as Error).message}`}`)
      send(malformed ? MALFORMED : INTERNAL_ERROR)
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
  }

  const server = createServer((request, response) => {
    requests++
    if (request.method !== 'GET' && request.method !== 'POST') {
      response.writeHead(405, { allow: 'GET, POST' }).end()
      return
    }
    requestBody(request).then((body) => {
      if (body === 'too large') {
        response.writeHead(413, { connection: 'close' }).end()
        return
      }
      answer(request, response, body)
    }, () => {
      // A GET path that is no URL encoding, or a client gone mid-body.
      response.writeHead(200, { 'content-type': 'application/ocsp-response' }).end(MALFORMED)
    })
  })
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, resolve)
    })
  } catch (error) {
    throw new CliError(`cannot listen on ${host}:${port}: ${(error as Error).message}`)
  }
  const address = server.address() as AddressInfo
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}/`
  const show = (path: string): string => display(io.cwd, path)
  say(`OCSP responder for ${certificateFields(issuer.ca.cert).subject as string} at ${url}`)
  say(`  database ${show(files.index)} (read at every request: "revoke" takes effect at once), answers valid ${minutes} min`)
  say(`  signed by ${show(responder.certPath)} (OCSPSigning, ${responder.made ? 'made now' : 'kept from before'})`)
  say(`  issue certificates that name it with: fastify-client-cert issue <name> --dir ${show(files.dir)} --ocsp-url ${url}`)
  say('  Ctrl-C stops it.')
  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve()
    else signal.addEventListener('abort', () => { resolve() }, { once: true })
  })
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => { resolve() }))
  say(`Stopped after ${requests} request${requests === 1 ? '' : 's'}.`)
  return { url, index: files.index, responder: responder.certPath, requests }
}

export const ocspCommand: Command = {
  summary: 'run an OCSP responder for the CA (development)',
  usage: 'ocsp [--dir pki] [--host 127.0.0.1] [--port 8888] [--minutes 5] [--json]',
  operand: 'none',
  options: {
    dir: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
    minutes: { type: 'string' }
  },
  help: `Answers OCSP requests (RFC 6960, GET and POST) about the certificates of the CA in --dir until stopped (Ctrl-C),
from its database, with "openssl ocsp". The answers are signed by a delegated responder certificate
(<dir>/ocsp.crt, extendedKeyUsage OCSPSigning), made on first use and again before it expires. Certificates
name the responder with "issue --ocsp-url".

  --dir <dir>         the CA (default: pki)
  --host <address>    where to listen (default: 127.0.0.1)
  --port <port>       (default: 8888; 0 for any free port, printed)
  --minutes <n>       how long an answer is valid: its nextUpdate (default: 5)`,
  run
}
