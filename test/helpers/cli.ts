// Runs the CLI in-process through main(argv, io), collecting what it writes.
import { main } from '../../lib/cli/main.js'

export interface CliResult { code: number, stdout: string, stderr: string }

export interface CliRunOptions { stdin?: string | Buffer, env?: Record<string, string> }

/** A `run(args)` for CLI tests whose working directory is `cwd`. */
export function cliRunner (cwd: string): (args: string[], options?: CliRunOptions) => Promise<CliResult> {
  return async function run (args, options = {}) {
    let stdout = ''
    let stderr = ''
    const code = await main(args, {
      stdout: (text) => { stdout += text },
      stderr: (text) => { stderr += text },
      stdin: async () => Buffer.from(options.stdin ?? ''),
      env: { ...process.env, ...options.env },
      cwd
    })
    return { code, stdout, stderr }
  }
}
