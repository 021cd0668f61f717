import { spawnSync } from 'node:child_process'
import { CliError, type CliIo } from './io.js'

/**
 * The `openssl` command-line tool does the certificate authority's work (signing, CRLs, PKCS#12): it is
 * what the proxies themselves are built on, and it keeps every ASN.1 encoder out of this package.
 */

// The child reads a password from this variable (`-passin env:` / `-passout env:`), never from argv,
// which every local user can read in the process list.
export const PASSWORD_VARIABLE = 'FASTIFY_CLIENT_CERT_PASSWORD'

export class OpensslFailure extends Error {
  readonly stderr: string

  constructor (command: string, stderr: string) {
    const detail = stderr.trim().split('\n').filter((line) => line.trim() !== '').slice(-2).join('; ')
    super(`openssl ${command} failed${detail === '' ? '' : `: ${detail}`}`)
    this.name = 'OpensslFailure'
    this.stderr = stderr
  }
}

function missing (bin: string): CliError {
  return new CliError(
    `this command needs the openssl command-line tool (OpenSSL 3 or 1.1.1), and "${bin}" was not found. ` +
    'Install it (Debian/Ubuntu: apt-get install openssl; macOS: brew install openssl@3; Windows: it comes with ' +
    'Git for Windows, or winget install ShiningLight.OpenSSL.Light) or set OPENSSL to its path.'
  )
}

/**
 * Runs `openssl <args>` in `cwd` (a scratch directory) and returns its standard output. `OPENSSL` in the environment names another
 * binary. Throws `OpensslFailure` (with openssl's own message) when it exits with an error.
 */
export function openssl (io: CliIo, args: readonly string[], options: { cwd: string, password?: string }): Buffer {
  const bin = io.env.OPENSSL ?? 'openssl'
  const env: Record<string, string | undefined> = { ...io.env }
  delete env[PASSWORD_VARIABLE]
  if (options.password !== undefined) env[PASSWORD_VARIABLE] = options.password
  const result = spawnSync(bin, args, { cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 })
  if (result.error !== undefined) {
    if ((result.error as NodeJS.ErrnoException).code === 'ENOENT') throw missing(bin)
    throw new CliError(`cannot run ${bin}: ${result.error.message}`)
  }
  if (result.status !== 0) throw new OpensslFailure(args[0], result.stderr.toString('utf8'))
  return result.stdout
}
