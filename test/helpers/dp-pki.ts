// A small PKI made with the openssl CLI for CRL distribution point tests: a root that signs CRLs, leaves whose
// cRLDistributionPoints name a URL known only once the test's CRL server listens, and CRLs made with `openssl ca`.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import type { CertFiles } from './certs.js'
import { makeCrl } from './crl.js'

export interface DpPki {
  readonly dir: string
  readonly root: CertFiles
  /** A client certificate signed by `issuer` (the root by default) with `extensions` lines added (e.g. a CDP). */
  issue: (name: string, extensions: string[], issuer?: CertFiles) => CertFiles
  /** A CA certificate signed by the root, with its own extensions lines. */
  ca: (name: string, extensions: string[]) => CertFiles
  /** A CRL of `issuer` (the root by default) listing `revoked`, valid `seconds` (7 days by default). */
  crl: (revoked: CertFiles[], seconds?: number, issuer?: CertFiles) => string
  cleanup: () => void
}

/** The certificate and key files openssl wrote as `<name>.pem` and `<name>.key` in `dir`. */
export function files (dir: string, name: string): CertFiles {
  const certPath = join(dir, name + '.pem')
  const keyPath = join(dir, name + '.key')
  const certPem = readFileSync(certPath, 'latin1')
  const der = Buffer.from(certPem.replace(/-----[^-]+-----|\s/g, ''), 'base64')
  return { name, certPem, keyPem: readFileSync(keyPath, 'latin1'), certPath, keyPath, der }
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']

export function makeDpPki (rootName = 'DP Test Root', rootExtensions = ['keyUsage = critical, keyCertSign, cRLSign']): DpPki {
  const dir = mkdtempSync(join(tmpdir(), 'client-cert-dp-'))
  const run = (args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' }) }
  const rootLines = ['basicConstraints = critical, CA:TRUE', 'subjectKeyIdentifier = hash', ...rootExtensions]
  run(['req', '-x509', ...EC, '-keyout', 'root.key', '-out', 'root.pem', '-subj', '/CN=' + rootName, '-days', '30', '-config', '/dev/null',
    ...rootLines.flatMap((line) => ['-addext', line.replace(/ = /, '=')])])
  const root = files(dir, 'root')
  const sign = (name: string, subject: string, lines: string[], issuer: CertFiles): CertFiles => {
    writeFileSync(join(dir, name + '.ext'), lines.join('\n') + '\n')
    run(['req', '-new', ...EC, '-keyout', name + '.key', '-out', name + '.csr', '-subj', subject, '-config', '/dev/null'])
    run(['x509', '-req', '-in', name + '.csr', '-CA', issuer.certPath, '-CAkey', issuer.keyPath, '-set_serial', '0x' + createHash('sha1').update(name + Math.random()).digest('hex').slice(0, 16),
      '-days', '30', '-extfile', name + '.ext', '-out', name + '.pem'])
    return files(dir, name)
  }
  return {
    dir,
    root,
    issue: (name, extensions, issuer = root) => sign(name, '/CN=' + name, [
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature',
      'extendedKeyUsage = clientAuth',
      'authorityKeyIdentifier = keyid',
      ...extensions
    ], issuer),
    ca: (name, extensions) => sign(name, '/CN=' + name, ['basicConstraints = critical, CA:TRUE', 'subjectKeyIdentifier = hash', 'authorityKeyIdentifier = keyid', ...extensions], root),
    crl: (revoked, seconds, issuer = root) => makeCrl(issuer, revoked.map((c) => c.certPath), seconds === undefined ? [] : ['-crlsec', String(seconds)]),
    cleanup: () => rmSync(dir, { recursive: true, force: true })
  }
}

export type CrlServerMode = 'ok' | 'down' | 'hang' | 'error'

/** An HTTP server on 127.0.0.1 that serves `body` at any path with an ETag, counting what it answers. */
export interface CrlServer {
  readonly url: string
  body: string | Buffer
  mode: CrlServerMode
  /** Milliseconds before answering. */
  delay: number
  /** A handler that replaces the default one (redirects, chunked bodies …). */
  handler: ((request: IncomingMessage, response: ServerResponse) => void) | null
  readonly counts: { requests: number, full: number, notModified: number }
  close: () => Promise<void>
}

export async function startCrlServer (body: string | Buffer = ''): Promise<CrlServer> {
  const held = new Set<ServerResponse>()
  const state: CrlServer = {
    url: '',
    body,
    mode: 'ok',
    delay: 0,
    handler: null,
    counts: { requests: 0, full: 0, notModified: 0 },
    close: async () => {
      for (const response of held) response.destroy()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
  const server: Server = createServer((request, response) => {
    state.counts.requests++
    if (state.mode === 'down') {
      request.socket.destroy()
      return
    }
    if (state.mode === 'hang') {
      held.add(response)
      return
    }
    if (state.mode === 'error') {
      response.writeHead(500).end()
      return
    }
    const answer = (): void => {
      if (state.handler !== null) {
        state.handler(request, response)
        return
      }
      const etag = '"' + createHash('sha256').update(state.body).digest('hex').slice(0, 16) + '"'
      if (request.headers['if-none-match'] === etag) {
        state.counts.notModified++
        response.writeHead(304, { etag }).end()
        return
      }
      state.counts.full++
      response.writeHead(200, { etag, 'last-modified': new Date().toUTCString(), 'content-type': 'application/pkix-crl' }).end(state.body)
    }
    if (state.delay > 0) setTimeout(answer, state.delay)
    else answer()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  ;(state as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return state
}
