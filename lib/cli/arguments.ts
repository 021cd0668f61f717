// The command line read by hand from parseArgs' tokens, so every mistake is told in this tool's words
// (with a suggestion for a misspelt flag) instead of Node's parser text.
import { parseArgs } from 'node:util'
import type { OptionSpecs, Values } from './command.js'
import { UsageError } from './io.js'

/** Edit distance with transpositions (optimal string alignment): `dyas` is one step from `days`. */
function distance (a: string, b: string): number {
  const rows: number[][] = []
  for (let i = 0; i <= a.length; i++) {
    rows.push([i])
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        rows[i].push(j)
        continue
      }
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, rows[i - 2][j - 2] + 1)
      rows[i].push(best)
    }
  }
  return rows[a.length][b.length]
}

/** The closest of `candidates` to `word`, when it is close enough to be a slip (or `word` is its start), else null. */
export function closest (word: string, candidates: Iterable<string>): string | null {
  let best: string | null = null
  let bestDistance = Infinity
  for (const candidate of candidates) {
    const d = word.length >= 3 && candidate.startsWith(word) ? 1 : distance(word, candidate)
    if (d < bestDistance) {
      best = candidate
      bestDistance = d
    }
  }
  return bestDistance <= Math.max(1, Math.floor(word.length / 3)) ? best : null
}

function unknownOption (rawName: string, options: OptionSpecs): UsageError {
  const guess = rawName.startsWith('--') ? closest(rawName.slice(2), Object.keys(options)) : null
  return guess === null
    ? new UsageError(`unknown option ${rawName}`)
    : new UsageError(`unknown option ${rawName} (did you mean --${guess}?)`, { help: false })
}

/** Flags and operands of `args` for `options`; a UsageError names the first mistake. */
export function readCommandLine (args: readonly string[], options: OptionSpecs): { values: Values, positionals: string[] } {
  // Non-strict: the tokens of every argument, known or not, checked below.
  const { tokens } = parseArgs({ args: [...args], options, allowPositionals: true, strict: false, tokens: true })
  const values: Values = {}
  const positionals: string[] = []
  for (const token of tokens) {
    if (token.kind === 'positional') {
      positionals.push(token.value)
      continue
    }
    if (token.kind === 'option-terminator') continue
    const spec = Object.hasOwn(options, token.name) ? options[token.name] : undefined
    if (spec === undefined) throw unknownOption(token.rawName, options)
    const flag = `--${token.name}`
    if (spec.type === 'boolean') {
      if (token.value !== undefined) throw new UsageError(`${flag} takes no value (give "${flag}" alone)`)
      values[token.name] = true
      continue
    }
    // A value that looks like a flag is most likely the next flag: "--days --json" forgot the days.
    if (token.value === undefined || (token.inlineValue !== true && token.value.startsWith('-') && token.value !== '-')) {
      throw new UsageError(`${flag} needs a value (${flag} <value>, or ${flag}=<value> for one that starts with -)`)
    }
    if (spec.multiple === true) {
      values[token.name] = [...(values[token.name] as string[] | undefined) ?? [], token.value]
    } else {
      if (values[token.name] !== undefined) throw new UsageError(`${flag} is given twice`)
      values[token.name] = token.value
    }
  }
  return { values, positionals }
}
