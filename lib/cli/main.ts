// The command-line tool: development CAs, client certificates, CRLs, inspection and proxy configurations.
import { closest, readCommandLine } from './arguments.js'
import { caCommand } from './ca.js'
import type { Command } from './command.js'
import { inspectCommand } from './inspect.js'
import { CliError, UsageError, type CliIo } from './io.js'
import { issueCommand } from './issue.js'
import { ocspCommand } from './ocsp.js'
import { proxyConfigCommand } from './proxy.js'
import { crlCommand, revokeCommand } from './revoke.js'
import { jsonText, printable } from './terminal.js'

export type { CliIo } from './io.js'

const commands: ReadonlyMap<string, Command> = new Map([
  ['ca', caCommand],
  ['issue', issueCommand],
  ['revoke', revokeCommand],
  ['crl', crlCommand],
  ['ocsp', ocspCommand],
  ['inspect', inspectCommand],
  ['proxy-config', proxyConfigCommand]
])

const NAME = 'fastify-client-cert'

function overview (): string {
  const lines = [
    `Usage: ${NAME} <command> [options]`,
    '',
    'Development certificates for client-certificate authentication, and help with proxies.',
    '',
    'Commands:'
  ]
  for (const [name, command] of commands) lines.push(`  ${name.padEnd(13)} ${command.summary}`)
  lines.push(
    '',
    'Every command takes --json (the result as JSON on stdout) and --help.',
    'Exit codes: 0 done, 1 failed (the message says why), 2 wrong command line, 3 inspect: the certificate does not verify.',
    `"${NAME} <command> --help" for details.`,
    'Needs the openssl command-line tool, except inspect (of PEM/DER) and proxy-config.'
  )
  return lines.join('\n') + '\n'
}

function commandHelp (command: Command): string {
  return `Usage: ${NAME} ${command.usage}\n\n${command.help}\n  --json                      the result as JSON on stdout\n`
}

/**
 * Runs the CLI: `argv` without the node and script paths. Resolves with the exit code; never throws
 * for anything the user did, and writes only through `io`.
 */
export async function main (argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(overview())
    return name === undefined ? 2 : 0
  }
  const command = commands.get(name)
  try {
    if (command === undefined) {
      const guess = closest(name, commands.keys())
      throw guess === null ? new UsageError(`unknown command "${name}"`) : new UsageError(`unknown command "${name}" (did you mean ${guess}?)`, { help: false })
    }
    const parsed = readCommandLine(rest, { ...command.options, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } })
    const { values, positionals } = parsed
    const json = values.json === true
    if (values.help === true) {
      io.stdout(commandHelp(command))
      return 0
    }
    const expected = command.operand === 'required' ? 1 : 0
    if (positionals.length !== expected) {
      throw new UsageError(expected === 0 ? `${name} takes no argument ("${positionals[0]}")` : `${name} needs exactly one argument: ${command.usage}`)
    }
    let exitCode = 0
    const result = await command.run({
      io,
      values,
      operand: positionals[0],
      say: json ? () => {} : (line = '') => io.stdout(printable(line) + '\n'),
      output: json ? () => {} : (text) => io.stdout(text),
      setExitCode: (code) => { exitCode = code }
    })
    if (json) io.stdout(jsonText(result) + '\n')
    return exitCode
  } catch (error) {
    if (error instanceof CliError) {
      const hint = error instanceof UsageError && error.help ? ` (see "${NAME} ${command === undefined ? '' : name + ' '}--help")` : ''
      io.stderr(`${NAME}: ${printable(error.message)}${hint}\n`)
      return error.exitCode
    }
    // Anything else is a bug or a damaged CA directory: its message is the best lead.
    io.stderr(`${NAME}: unexpected error: ${printable((error as Error).message)}\n`)
    return 1
  }
}
