/**
 * Long fuzz runs of the proxy path over real sockets (see test/helpers/fuzz.ts for the oracle).
 *
 *   npm run fuzz -- [--requests 100000] [--seed 42] [--preset nginx,envoy+ca] [--concurrency 8]
 *                   [--ca-as-leaf] [--max-violations 10] [--replay <target>:<index>]
 *
 * Runs the TypeScript sources through tap's loader, so no build is needed. Prints a progress line every few
 * seconds and every violation with its seed, replay command and exact request bytes; exits 1 on a violation.
 */
import { parseArgs } from 'node:util'
import { randomInt } from 'node:crypto'
import { describeViolation, formatCounts, replayRequest, runFuzz, showBytes, type FuzzReport } from '../test/helpers/fuzz.js'

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '100000' },
    seed: { type: 'string' },
    preset: { type: 'string' },
    concurrency: { type: 'string', default: '8' },
    'ca-as-leaf': { type: 'boolean', default: false },
    'max-violations': { type: 'string', default: '10' },
    replay: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false }
  }
})

function positiveInteger (text: string, name: string): number {
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer`)
  return n
}

if (values.help) {
  console.log('npm run fuzz -- [--requests N] [--seed S] [--preset a,b] [--concurrency C] [--ca-as-leaf] [--max-violations V] [--replay target:index]')
  process.exit(0)
}

const seed = values.seed === undefined ? randomInt(2 ** 31) : positiveInteger(values.seed, 'seed')
const caAsLeaf = values['ca-as-leaf']

if (values.replay !== undefined) {
  const colon = values.replay.lastIndexOf(':')
  const target = values.replay.slice(0, colon)
  const index = positiveInteger(values.replay.slice(colon + 1), 'replay index')
  const { request, answer, verdict } = await replayRequest(seed, target, index, { caAsLeaf })
  console.log(`seed ${seed}, target ${target}, request #${index}, mutations ${request.mutations.join(',') || 'none'}, path ${request.path}`)
  console.log(`request bytes (${request.bytes.length}): ${showBytes(request.bytes)}`)
  console.log(`request base64: ${request.bytes.toString('base64')}`)
  console.log(answer instanceof Error ? `no answer: ${answer.message}` : `answer: ${answer.status} ${answer.body}`)
  console.log(verdict === null ? 'VIOLATION: no answer' : `outcome ${verdict.outcome}${verdict.violation === null ? '' : `, VIOLATION: ${verdict.violation}`}`)
  process.exit(verdict?.violation === null ? 0 : 1)
}

const requests = positiveInteger(values.requests, 'requests')
const only = values.preset === undefined ? undefined : values.preset.split(',').map((s) => s.trim()).filter((s) => s !== '')

function line (report: FuzzReport): string {
  const rate = report.requests / (report.ms / 1000)
  return `[fuzz] seed ${seed}: ${report.requests}/${requests} requests, ${rate.toFixed(0)} req/s | ${formatCounts(report.totals)}`
}

console.log(`[fuzz] seed ${seed} (replay the run with --seed ${seed}), ${requests} requests${only === undefined ? '' : ` on ${only.join(', ')}`}`)
const report = await runFuzz({
  seed,
  requests,
  only,
  caAsLeaf,
  concurrency: positiveInteger(values.concurrency, 'concurrency'),
  maxViolations: positiveInteger(values['max-violations'], 'max-violations'),
  onProgress: (r) => console.log(line(r)),
  onViolation: (v) => console.log(describeViolation(v))
})
console.log(line(report))
for (const [target, counts] of report.byTarget) console.log(`  ${target}: ${formatCounts(counts)}`)
console.log(`[fuzz] ${report.violations.length === 0 ? 'no oracle violation' : `${report.violations.length} oracle violation(s)`} in ${(report.ms / 1000).toFixed(1)} s (seed ${seed})`)
process.exitCode = report.violations.length === 0 ? 0 : 1
