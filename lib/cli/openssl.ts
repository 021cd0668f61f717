import { spawnSync } from 'node:child_process'
import { CliError, type CliIo } from './io.js'

/**
 * The `openssl` command-line tool does the certificate authority's work (signing, CRLs, PKCS#12): it is
 * what the proxies themselves are built on, and it keeps every ASN.1 encoder out of this package.
 */

// The child reads a password from this variable (`-passin env:` / `-passout env:`), never from argv,
// which every local user can read in the process list.
export const PASSWORD_VARIABLE = 'FASTIFY_CLIENT_CERT_PASSWORD'

// Every run is bounded: a hostile input (a PKCS#12 whose MAC iteration count is 2^31-1) keeps openssl busy
// for hours. Signing, CRLs and packing take well under a second, so the default leaves room for slow machines.
export const TIMEOUT_VARIABLE = 'FASTIFY_CLIENT_CERT_OPENSSL_TIMEOUT'
const DEFAULT_TIMEOUT_SECONDS = 30
const MAX_TIMEOUT_SECONDS = 86_400

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

/** The bound of one openssl run in milliseconds, from the environment (seconds, decimals allowed). */
function timeoutOf (io: CliIo): number {
  const text = io.env[TIMEOUT_VARIABLE]
  if (text === undefined || text === '') return DEFAULT_TIMEOUT_SECONDS * 1000
  const seconds = /^[0-9]{1,5}(?:\.[0-9]{1,3})?$/.test(text) ? Number(text) : NaN
  if (!(seconds > 0 && seconds <= MAX_TIMEOUT_SECONDS)) {
    throw new CliError(`${TIMEOUT_VARIABLE} must be a number of seconds above 0 and at most ${MAX_TIMEOUT_SECONDS} (default ${DEFAULT_TIMEOUT_SECONDS})`)
  }
  return Math.ceil(seconds * 1000)
}

/**
 * Runs `openssl <args>` in `cwd` (a scratch directory) and returns its standard output. `OPENSSL` in the environment names another
 * binary. Throws `OpensslFailure` (with openssl's own message) when it exits with an error, and a `CliError`
 * when it runs longer than the bound (it is killed).
 */
export function openssl (io: CliIo, args: readonly string[], options: { cwd: string, password?: string }): Buffer {
  const bin = io.env.OPENSSL ?? 'openssl'
  const env: Record<string, string | undefined> = { ...io.env }
  delete env[PASSWORD_VARIABLE]
  if (options.password !== undefined) env[PASSWORD_VARIABLE] = options.password
  const timeout = timeoutOf(io)
  const result = spawnSync(bin, args, {
    cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024, timeout, killSignal: 'SIGKILL'
  })
  if (result.error !== undefined) {
    const code = (result.error as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw missing(bin)
    if (code === 'ETIMEDOUT') {
      throw new CliError(`openssl ${args[0]} did not finish within ${timeout / 1000} s and was stopped: the input may be built to keep it busy ` +
        `(such as a PKCS#12 file with a huge iteration count). ${TIMEOUT_VARIABLE} sets the limit in seconds.`)
    }
    throw new CliError(`cannot run ${bin}: ${result.error.message}`)
  }
  if (result.status !== 0) throw new OpensslFailure(args[0], result.stderr.toString('utf8'))
  return result.stdout
}
