import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { isAbsolute, relative, resolve } from 'node:path'

/** Everything the CLI touches outside its arguments: the tests pass their own, `bin.ts` passes the process's. */
export interface CliIo {
  stdout: (text: string) => void
  stderr: (text: string) => void
  stdin: () => Promise<Buffer>
  env: Readonly<Record<string, string | undefined>>
  cwd: string
  /**
   * For a command that runs until stopped (`ocsp`): a signal that aborts on Ctrl-C or SIGTERM. Asked for only
   * by such a command, so that every other command keeps the default handling of those signals.
   */
  stopped?: () => AbortSignal
}

/** A failure the user can fix (bad input, missing file, wrong password): printed as is, exit code 1. */
export class CliError extends Error {
  readonly exitCode: number

  constructor (message: string, exitCode = 1) {
    super(message)
    this.name = 'CliError'
    this.exitCode = exitCode
  }
}

/** Wrong command line (unknown command or flag, missing argument): exit code 2, with a pointer to --help. */
export class UsageError extends CliError {
  /** Whether the message ends with a pointer to --help; a message that suggests the fix needs none. */
  readonly help: boolean

  constructor (message: string, options: { help?: boolean } = {}) {
    super(message, 2)
    this.name = 'UsageError'
    this.help = options.help !== false
  }
}

/** Files are named to the user as they gave them: relative to the working directory when below it. */
export function display (cwd: string, path: string): string {
  const rel = relative(cwd, path)
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path
}

export function absolute (cwd: string, path: string): string {
  return resolve(cwd, path)
}

function reason (error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code
  if (code === 'ENOENT') return 'no such file'
  if (code === 'EISDIR') return 'it is a directory'
  return (error as Error).message
}

/** Reads a file the user named; `what` says what it should hold (`the CA certificate`, `--password-file`). */
export function readUserFile (cwd: string, path: string, what: string): Buffer {
  try {
    return readFileSync(absolute(cwd, path))
  } catch (error) {
    throw new CliError(`cannot read ${what} ${display(cwd, absolute(cwd, path))}: ${reason(error)}`)
  }
}

/** Refuses a path that is not a file the user can see (missing, a directory, in a directory they cannot enter). */
export function existingFile (cwd: string, path: string, what: string): void {
  let stats
  try {
    stats = statSync(path)
  } catch (error) {
    throw new CliError(`${what} ${display(cwd, path)}: ${reason(error)}`)
  }
  if (!stats.isFile()) throw new CliError(`${what} ${display(cwd, path)}: not a file`)
}

export function makeDir (cwd: string, path: string): void {
  try {
    // Private: the directories this CLI creates hold private keys.
    mkdirSync(path, { recursive: true, mode: 0o700 })
  } catch (error) {
    throw new CliError(`cannot create the directory ${display(cwd, path)}: ${reason(error)}`)
  }
}

/**
 * Writes a file. Secret files (keys, PKCS#12) are created with mode 0600, and a key that exists is
 * replaced only with `force` (the `wx` flag makes the check and the creation one step).
 */
export function writeOutput (cwd: string, path: string, data: string | Buffer, options: { secret?: boolean, force?: boolean } = {}): void {
  const secret = options.secret === true
  try {
    writeFileSync(path, data, { mode: secret ? 0o600 : 0o644, flag: secret && options.force !== true ? 'wx' : 'w' })
    // The mode above applies only to a file that did not exist yet.
    if (secret) chmodSync(path, 0o600)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new CliError(`${display(cwd, path)} exists: refusing to overwrite a private key (use --force to replace it)`)
    }
    throw new CliError(`cannot write ${display(cwd, path)}: ${reason(error)}`)
  }
}
