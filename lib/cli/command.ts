import type { ParseArgsConfig } from 'node:util'
import { CliError, readUserFile, UsageError, type CliIo } from './io.js'

export type OptionSpecs = NonNullable<ParseArgsConfig['options']>
export type Values = Record<string, string | boolean | string[] | undefined>

/** What a command gets: its parsed flags, its operand, and a way to say what it is doing. */
export interface Context {
  io: CliIo
  values: Values
  operand: string | undefined
  /**
   * A line of plain-words progress on stdout; silent with --json, where stdout holds only the result.
   * Every control and bidi character in it is escaped (terminal.ts): the line may quote a certificate.
   */
  say: (line?: string) => void
  /** Text the command produced itself, such as a configuration file, written as is; silent with --json. */
  output: (text: string) => void
  /** The exit code once the result is printed, when the result itself is a failure (inspect: not verified). */
  setExitCode: (code: number) => void
}

export interface Command {
  summary: string
  usage: string
  /** `required`: exactly one operand; `none`: no operand */
  operand: 'required' | 'none'
  options: OptionSpecs
  help: string
  /** The result: printed as JSON with --json. */
  run: (context: Context) => Promise<unknown>
}

export function stringOption (values: Values, name: string): string | undefined {
  return values[name] as string | undefined
}

export function listOption (values: Values, name: string): string[] {
  return (values[name] as string[] | undefined) ?? []
}

/** A whole number of days from 1 to 36500 (OpenSSL's dates stop at 9999; a century is plenty). */
export function daysOption (values: Values, name: string, fallback: number): number {
  const text = stringOption(values, name)
  if (text === undefined) return fallback
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 36500) throw new UsageError(`--${name} must be a whole number of days from 1 to 36500`)
  return Number(text)
}

export function oneOf<T extends string> (values: Values, name: string, allowed: readonly T[], fallback: T): T {
  const text = stringOption(values, name) ?? fallback
  if (!(allowed as readonly string[]).includes(text)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}`)
  return text as T
}

/** A password from the first line of a file; empty passwords are refused (some importers cannot open such files). */
export function passwordFromFile (io: CliIo, path: string): string {
  const password = readUserFile(io.cwd, path, 'the --password-file').toString('utf8').split(/\r?\n/)[0]
  if (password === '') throw new CliError(`the first line of the --password-file ${path} is empty`)
  return password
}

export function isoDate (text: string): string {
  return new Date(text).toISOString()
}
