// fastify-client-cert benchmarks: what authentication by client certificate costs per request, next to the
// same route without it and to what users would write or install instead. See README.md, "Benchmarks".
//
//   npm run bench                 (root: build, install these deps, run: about 5 minutes)
//   npm run bench -- --quick      (about 1 minute smoke run; writes under results/quick/)
//   node benchmarks/run.js [--quick] [--profile] [--only=http|micro] [--from=results/x.json]
//
// Servers run in child processes (lib/server.js) so their CPU time is their own; this process is the load
// generator. Rounds of each comparison alternate (A B A B …) and every ratio is taken against the baseline
// round of the same cycle. Exits non-zero only when the bench could not run, never because of a figure.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, freemem, loadavg, platform, release, totalmem } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { makeCertificates } from './lib/certs.js'
import { ServerProcess } from './lib/child.js'
import { clientPerCertificate, closeAll, pool, probe, round } from './lib/load.js'
import { findNginx, startNginx } from './lib/nginx.js'
import { formatProfile, summarizeProfile } from './lib/profile.js'
import { markdownReport, svgChart, textReport } from './lib/report.js'
import { evaluateTargets, summarizeMicro, summarizeSuite } from './lib/stats.js'

const here = fileURLToPath(new URL('.', import.meta.url))
const root = join(here, '..')

const SETTINGS = {
  full: { roundMs: 2000, warmupMs: 2000, cycles: 10, many: 200, micro: { rounds: 5, timeMs: 300, warmupMs: 100 }, profileMs: 3000 },
  quick: { roundMs: 700, warmupMs: 500, cycles: 5, many: 40, micro: { rounds: 3, timeMs: 60, warmupMs: 20 }, profileMs: 1000 }
}
// Requests in flight at any time, in every HTTP comparison.
const INFLIGHT = 32

function log (message) {
  process.stderr.write(message + '\n')
}

function usage () {
  return `usage: node benchmarks/run.js [--quick] [--profile] [--only=http|micro]
  --quick    short smoke run (about a minute); results go to benchmarks/results/quick/
  --profile  profile the plugin's variant of every comparison and the targeted codecs, missed targets or not
             (a missed target is always profiled)
  --only     run only the HTTP or only the micro benchmarks
  --from     re-render the table, latest.md and chart.svg from a results JSON, without measuring`
}

function packageVersion (dir) {
  try {
    return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version
  } catch {
    return 'unknown'
  }
}

function gitCommit () {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'lib'], { cwd: root, encoding: 'utf8' }).trim() !== ''
    return commit + (dirty ? ' with uncommitted lib/ changes' : '')
  } catch {
    return 'not a git checkout'
  }
}

function machine (quick, settings, nginx) {
  const cpu = cpus()
  const modules = (name) => packageVersion(join(here, 'node_modules', name))
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    quick,
    command: `npm run bench${quick ? ' -- --quick' : ''}`,
    method: `${settings.cycles} cycles of alternating ${settings.roundMs / 1000} s rounds per variant after a ${settings.warmupMs / 1000} s warm-up, ` +
      `${INFLIGHT} requests in flight, keep-alive; figures are medians [min–max] over rounds, ratios pair by pair against the baseline round of the same cycle; ` +
      'server CPU (user + system, process.cpuUsage in the server process) divided by requests served',
    cycles: settings.cycles,
    settings,
    cpu: { model: cpu[0]?.model.trim() ?? 'unknown', cores: cpu.length },
    memory: `${Math.round(totalmem() / 2 ** 30)} GiB RAM`,
    freeMemoryBytes: freemem(),
    os: `${platform()} ${release()}`,
    node: process.version,
    openssl: process.versions.openssl,
    v8: process.versions.v8,
    nginx: nginx === null ? null : nginx.version,
    loadavg: { start: loadavg(), end: null },
    plugin: { version: packageVersion(root), commit: gitCommit() },
    packages: Object.fromEntries(['fastify', 'undici', 'tinybench', '@fastify/passport', 'passport-client-cert', '@fastify/secure-session']
      .map((name) => [name, modules(name)]))
  }
}

function suiteDefinitions (certs, many) {
  const user = certs.client.name
  return [
    {
      id: 'tls',
      title: 'Direct TLS, HTTP/1.1',
      description: 'HTTPS Fastify with requestCert on 127.0.0.1; undici Pool, 8 keep-alive connections × 4 pipelined requests, one client certificate',
      baseline: 'tls-bare',
      target: { variant: 'tls-plugin', min: 0.97 },
      load: { connections: 8, pipelining: 4 },
      variants: [
        { id: 'tls-bare', label: 'bare route (requestCert, no auth)', user: null },
        { id: 'tls-plugin', label: 'fastify-client-cert', user },
        { id: 'tls-hook', label: 'hand-written getPeerCertificate() hook', user },
        { id: 'tls-passport', label: '@fastify/passport + passport-client-cert', user }
      ]
    },
    {
      id: 'h2',
      title: 'Direct TLS, HTTP/2',
      description: 'HTTP/2 Fastify with requestCert; undici Pool with allowH2, 2 connections × 16 concurrent streams',
      baseline: 'h2-bare',
      load: { connections: 2, pipelining: 16, allowH2: true },
      variants: [
        { id: 'h2-bare', label: 'bare route (requestCert, no auth)', user: null },
        { id: 'h2-plugin', label: 'fastify-client-cert', user }
      ]
    },
    {
      id: 'nginx-hit',
      title: 'Behind nginx, one client certificate (cache hits)',
      description: 'nginx terminates TLS and verifies the certificate, forwards it (preset \'nginx\' headers) over keep-alive upstream connections to HTTP Fastify; 8 client connections × 4 pipelined',
      nginx: true,
      baseline: 'proxy-bare',
      target: { variant: 'proxy-plugin', min: 0.95 },
      load: { connections: 8, pipelining: 4 },
      variants: [
        { id: 'proxy-bare', label: 'bare route behind nginx', user: null },
        { id: 'proxy-plugin', label: 'fastify-client-cert, preset nginx', user }
      ]
    },
    {
      id: 'nginx-miss',
      title: `Behind nginx, ${many.length} distinct client certificates (cache misses)`,
      description: `${many.length} client connections, each with its own certificate, used in turn; the plugin's cache is set to ${many.length / 2} entries so that every request misses it (the default 10,000 would hold them all)`,
      nginx: true,
      many: true,
      baseline: 'proxy-bare',
      load: {},
      variants: [
        { id: 'proxy-bare', label: 'bare route behind nginx', user: null },
        { id: 'proxy-plugin', label: `fastify-client-cert, cache of ${many.length / 2}`, user: many[0].name, options: { cacheMax: many.length / 2 } }
      ]
    }
  ]
}

function rotate (list, by) {
  const k = by % list.length
  return [...list.slice(k), ...list.slice(0, k)]
}

function targetMissed (suite, rounds) {
  if (suite.target === undefined) return false
  const row = summarizeSuite({ ...suite, rounds, peakRss: {} }).find((r) => r.variant === suite.target.variant)
  return row.rpsRatio !== null && row.rpsRatio.median < suite.target.min
}

async function runSuite (suite, { certs, settings, nginx, stamp, profileAll, profiles, aborts }) {
  const servers = new Map()
  const dispatchers = new Map()
  const proxies = []
  try {
    for (const variant of suite.variants) {
      const server = await ServerProcess.start(variant.id, certs, variant.options)
      servers.set(variant.id, server)
      let origin = `https://localhost:${server.port}`
      if (suite.nginx) {
        const proxy = await startNginx(nginx.bin, { upstreamPort: server.port, certs })
        proxies.push(proxy)
        aborts.add(proxy.abort)
        origin = `https://localhost:${proxy.port}`
      }
      const dispatcher = suite.many
        ? clientPerCertificate(origin, { ca: certs.ca, clients: certs.many })
        : pool(origin, { ca: certs.ca, client: certs.client, ...suite.load })
      dispatchers.set(variant.id, dispatcher)
      const answer = await probe(Array.isArray(dispatcher) ? dispatcher[0] : dispatcher)
      if (answer.statusCode !== 200 || answer.body?.user !== variant.user) {
        throw new Error(`${suite.title}, ${variant.label}: GET / answered ${answer.statusCode} ${JSON.stringify(answer.body)}, expected user ${JSON.stringify(variant.user)}`)
      }
      await round(dispatcher, { durationMs: settings.warmupMs, inflight: INFLIGHT })
    }
    const rounds = []
    for (let cycle = 0; cycle < settings.cycles; cycle++) {
      for (const variant of rotate(suite.variants, cycle)) {
        const server = servers.get(variant.id)
        const before = await server.usage()
        const result = await round(dispatchers.get(variant.id), { durationMs: settings.roundMs, inflight: INFLIGHT })
        const after = await server.usage()
        const cpuUs = after.cpu - before.cpu
        const entry = {
          cycle,
          variant: variant.id,
          requests: result.requests,
          errors: result.errors,
          elapsedMs: Math.round(result.elapsedMs),
          rps: result.requests / result.elapsedMs * 1000,
          cpuUs,
          cpuUsPerRequest: result.requests === 0 ? null : cpuUs / result.requests,
          // How busy the shared machine was: explains a stray round.
          loadavg1: loadavg()[0]
        }
        rounds.push(entry)
        log(`  ${suite.id} cycle ${cycle + 1}/${settings.cycles} ${variant.id.padEnd(13)} ${Math.round(entry.rps).toString().padStart(6)} req/s ` +
          `${entry.cpuUsPerRequest?.toFixed(1).padStart(6)} µs CPU/req${entry.errors > 0 ? `, ${entry.errors} errors` : ''}`)
      }
    }
    const peakRss = {}
    for (const [id, server] of servers) peakRss[id] = (await server.usage()).maxRSS
    if (profileAll || targetMissed(suite, rounds)) {
      const variant = suite.variants.find((v) => v.id === (suite.target?.variant ?? suite.variants.at(-1).id))
      const file = join(here, 'results', 'profiles', `${stamp}-${suite.id}-${variant.id}.cpuprofile`)
      mkdirSync(join(here, 'results', 'profiles'), { recursive: true })
      log(`  profiling ${variant.id} under load for ${settings.profileMs / 1000} s`)
      await servers.get(variant.id).profile(file, () => round(dispatchers.get(variant.id), { durationMs: settings.profileMs, inflight: INFLIGHT }))
      const summary = summarizeProfile(file, { top: 12, inclusiveMatch: '/dist/esm/' })
      profiles.push({ title: `${suite.title}, ${variant.label}, server process under load`, file: relativeToRoot(file), summary, text: formatProfile(summary) })
    }
    return { ...suite, rounds, peakRss }
  } finally {
    await Promise.all([...dispatchers.values()].map(closeAll))
    for (const proxy of proxies) {
      await proxy.stop()
      aborts.delete(proxy.abort)
    }
    await Promise.all([...servers.values()].map((server) => server.close()))
  }
}

function relativeToRoot (file) {
  return relative(root, file)
}

async function runMicro ({ certs, settings, stamp, profileAll, profiles }) {
  // Imported here: the micro module loads internal dist/ files that --only=http does not need.
  const { microRound, microTasks, profileTask } = await import('./lib/micro.js')
  const tasks = microTasks(certs)
  const rounds = []
  for (let i = 0; i < settings.micro.rounds; i++) {
    log(`  micro round ${i + 1}/${settings.micro.rounds}`)
    rounds.push({ round: i, results: await microRound(tasks, settings.micro) })
  }
  const micro = {
    tasks: tasks.map(({ name, group }) => ({ name, group })),
    ratios: [
      { id: 'cold-decode', label: 'cold decode: nginx header → X509Certificate ÷ new X509Certificate(der)', numerator: 'nginx header → X509Certificate (cold decode)', denominator: 'new X509Certificate(der)' },
      { id: 'miss', label: 'cache miss: header → identity fields ÷ new X509Certificate(der)', numerator: 'proxy lookup, cache off (header → identity fields)', denominator: 'new X509Certificate(der)' },
      { id: 'identity', label: 'identityFromCertificate(der) ÷ new X509Certificate(der) + read its fields', numerator: 'identityFromCertificate(der)', denominator: 'new X509Certificate(der) + read its fields' }
    ],
    rounds
  }
  const summary = summarizeMicro(micro)
  const missed = evaluateTargets({ http: [], micro: summary }).filter((t) => t.task !== undefined && (profileAll || t.status === 'MISS'))
  for (const target of missed) {
    const task = tasks.find((t) => t.name === target.task)
    const file = join(here, 'results', 'profiles', `${stamp}-micro-${target.id}.cpuprofile`)
    mkdirSync(join(here, 'results', 'profiles'), { recursive: true })
    log(`  profiling '${task.name}' for ${settings.profileMs / 1000} s`)
    await profileTask(task.fn, settings.profileMs, file)
    const profile = summarizeProfile(file, { top: 12, inclusiveMatch: '/dist/esm/' })
    profiles.push({ title: `micro: ${task.name}`, file: relativeToRoot(file), summary: profile, text: formatProfile(profile) })
  }
  return micro
}

function notesFor (results, manyCount) {
  const notes = [
    'The load generator (undici) runs in the bench process and each server in a child process, all on the same 2-core machine: ' +
      'req/s is bounded by the load generator and by whatever else runs, so it moves from round to round; server CPU µs per request is the steadier figure of what authentication costs.',
    '@fastify/passport 4 with passport-client-cert 2 installs and works on Fastify 5, but @fastify/passport requires a session plugin (it registers @fastify/flash, which needs request.session): ' +
      '@fastify/secure-session is registered as its README shows, and the strategy runs with session: false.',
    `Cache misses: ${manyCount} certificates in rotation against a cache of ${manyCount / 2} entries; every request decodes its certificate header, parses the certificate and builds the identity.`,
    'Micro benchmarks import the plugin\'s internal modules from dist/esm (dn, san, presets, identity, options, proxy-source): they measure exactly the code the plugin runs.'
  ]
  const errors = results.summary.http.filter((r) => r.errors > 0)
  for (const r of errors) notes.push(`${r.label} (${r.suite}): ${r.errors} requests failed or answered other than 200 during the rounds.`)
  return notes
}

async function main () {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      profile: { type: 'boolean' },
      only: { type: 'string' },
      from: { type: 'string' },
      help: { type: 'boolean', short: 'h' }
    }
  })
  if (values.help) {
    console.log(usage())
    return
  }
  if (values.from !== undefined) {
    const results = JSON.parse(readFileSync(values.from, 'utf8'))
    console.log(textReport(results))
    writeOutputs(join(here, 'results', ...(results.meta.quick ? ['quick'] : [])), results, null)
    return
  }
  if (values.only !== undefined && values.only !== 'http' && values.only !== 'micro') throw new Error(`--only takes http or micro\n${usage()}`)
  if (!existsSync(join(root, 'dist', 'esm', 'index.js'))) {
    throw new Error('dist/esm/index.js is missing: run `npm run build` at the repository root first (npm run bench does)')
  }
  const quick = values.quick === true
  const settings = quick ? SETTINGS.quick : SETTINGS.full
  const nginx = findNginx()
  const meta = machine(quick, settings, nginx)
  const stamp = meta.date.replace(/[:]/g, '-')
  const outDir = join(here, 'results', ...(quick ? ['quick'] : []))
  const profiles = []
  const aborts = new Set()
  log(`fastify-client-cert benchmarks${quick ? ' (quick)' : ''}: generating certificates`)
  const certs = await makeCertificates(settings.many)
  aborts.add(certs.cleanup)
  process.once('SIGINT', function interrupted () {
    log('interrupted: stopping servers and removing temp files')
    for (const abort of aborts) abort()
    process.exit(130)
  })
  const suites = []
  let micro = null
  try {
    if (values.only !== 'http') {
      log('micro benchmarks')
      micro = await runMicro({ certs, settings, stamp, profileAll: values.profile === true, profiles })
    }
    if (values.only !== 'micro') {
      for (const suite of suiteDefinitions(certs, certs.many)) {
        if (suite.nginx && nginx === null) {
          suites.push({ ...suite, skipped: 'nginx not found (install it, or set NGINX_BIN)', rounds: [], peakRss: {} })
          continue
        }
        log(suite.title)
        suites.push(await runSuite(suite, { certs, settings, nginx, stamp, profileAll: values.profile === true, profiles, aborts }))
      }
    }
  } finally {
    certs.cleanup()
  }
  meta.loadavg.end = loadavg()
  const summary = {
    http: suites.flatMap((suite) => suite.skipped === undefined ? summarizeSuite(suite) : []),
    micro: micro === null ? null : summarizeMicro(micro)
  }
  summary.targets = evaluateTargets(summary)
  const results = { meta, suites, micro, summary, profiles: profiles.map(({ summary, ...rest }) => ({ ...rest, top: summary })), notes: [] }
  results.notes = notesFor(results, settings.many)
  const text = textReport(results)
  console.log(text)

  writeOutputs(outDir, results, stamp)
}

/** `<stamp>.json` and latest.json (every round), latest.md (tables for the README), chart.svg. */
function writeOutputs (outDir, results, stamp) {
  mkdirSync(outDir, { recursive: true })
  const written = []
  if (stamp !== null) {
    const json = JSON.stringify(results, null, 2) + '\n'
    writeFileSync(join(outDir, `${stamp}.json`), json)
    writeFileSync(join(outDir, 'latest.json'), json)
    written.push(`${stamp}.json`, 'latest.json')
  }
  writeFileSync(join(outDir, 'latest.md'), markdownReport(results))
  written.push('latest.md')
  if (results.summary.http.length > 0) {
    writeFileSync(join(outDir, 'chart.svg'), svgChart(results))
    written.push('chart.svg')
  }
  log(`\nwritten in ${relativeToRoot(outDir)}: ${written.join(', ')}`)
}

main().catch(function failed (error) {
  console.error(`benchmark could not run: ${error.stack ?? error}`)
  process.exitCode = 1
})
