// fastify-client-cert benchmarks: what authentication by client certificate costs per request, next to the
// same route without it and to what users would write or install instead. See README.md, "Benchmarks".
//
//   npm run bench                 (root: build, install these deps, run the default rows: about 12 minutes)
//   npm run bench -- --quick      (about 2 minutes smoke run; writes under results/quick/)
//   node benchmarks/run.js [--quick] [--profile] [--only=cold,micro,…] [--churn[=N]] [--from=results/x.json]
//
// Servers run in child processes (lib/server.js) so their CPU time is their own; this process is the load
// generator. Rounds of each comparison alternate (A B A B …) and every ratio is taken against the baseline
// round of the same cycle. Exits non-zero only when the bench could not run, never because of a figure.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, freemem, loadavg, platform, release, totalmem } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { makeCertificates } from './lib/certs.js'
import { SERVER_V8_FLAGS, ServerProcess } from './lib/child.js'
import { runChurn, summarizeChurn, churnSvg } from './lib/churn.js'
import { runCrlScale, summarizeCrlScale } from './lib/crl-scale.js'
import { CertificateForge, nginxEscape } from './lib/forge.js'
import { clientPerCertificate, closeAll, handshakeRound, plainPool, pool, probe, round } from './lib/load.js'
import { findNginx, startNginx } from './lib/nginx.js'
import { formatProfile, summarizeProfile } from './lib/profile.js'
import { markdownReport, svgChart, textReport } from './lib/report.js'
import { evaluateTargets, summarizeMicro, summarizeSuite } from './lib/stats.js'

const here = fileURLToPath(new URL('.', import.meta.url))
const root = join(here, '..')

const SETTINGS = {
  full: { roundMs: 2000, warmupMs: 2000, cycles: 8, many: 200, cold: { count: 12_000 }, handshakeInflight: 8, micro: { rounds: 5, timeMs: 300, warmupMs: 100 }, profileMs: 3000, churn: 1_000_000, churnSampleMs: 2000, crlScale: { count: 1_000_000, runs: 3, rounds: 9, batch: 200_000 } },
  quick: { roundMs: 700, warmupMs: 500, cycles: 5, many: 40, cold: { count: 12_000 }, handshakeInflight: 8, micro: { rounds: 3, timeMs: 60, warmupMs: 20 }, profileMs: 1000, churn: 100_000, churnSampleMs: 1000, crlScale: { count: 1_000_000, runs: 1, rounds: 5, batch: 100_000 } }
}
// Requests in flight at any time, in every HTTP comparison.
const INFLIGHT = 32

function log (message) {
  process.stderr.write(message + '\n')
}

function usage () {
  return `usage: node benchmarks/run.js [--quick] [--profile] [--only=ROWS] [--churn[=N]]
  --quick    short rounds (about 2 minutes for the default rows); results go to benchmarks/results/quick/
  --profile  profile the plugin's variant of every comparison and the targeted codecs, missed targets or not
             (a missed target is always profiled)
  --only     comma-separated rows: ${ROWS.join(', ')} (http: every HTTP row but churn);
             default: all but churn. A partial run writes under results/[quick/]only-<rows>/
             crl-scale: a CRL of 1,000,000 entries through RevocationList.load (load time, longest event-loop
             delay, peak RSS, lookup ns), each measurement in a fresh process; the CRL is cached in the OS temp dir
  --churn    add the churn row: N distinct certificates (default 1,000,000; with --quick 100,000); the full
             run writes docs/benchmarks-churn.svg
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

// Every selectable row: the HTTP comparisons, the micro benchmarks, and the churn (not in the default set).
export const ROWS = ['tls', 'h2', 'revocation', 'nginx-hit', 'nginx-miss', 'cold', 'handshake', 'micro', 'crl-scale', 'churn']
const DEFAULT_ROWS = ROWS.filter((row) => row !== 'churn')
// Older spellings of --only.
const ALIASES = { http: ['tls', 'h2', 'revocation', 'nginx-hit', 'nginx-miss', 'cold', 'handshake'] }

function control (transport, what) {
  return { id: `${transport}-control`, label: `control: ${what} + a no-op onRequest hook`, user: null }
}

function suiteDefinitions (certs, settings) {
  const user = certs.client.name
  const many = certs.many
  const cold = settings.cold
  return [
    {
      id: 'tls',
      kind: 'pool',
      title: 'Direct TLS, HTTP/1.1',
      description: 'HTTPS Fastify with requestCert on 127.0.0.1; undici Pool, 8 keep-alive connections × 4 pipelined requests, one client certificate',
      baseline: 'tls-bare',
      target: { variant: 'tls-plugin', min: 0.97 },
      load: { connections: 8, pipelining: 4 },
      variants: [
        { id: 'tls-bare', label: 'bare route (requestCert, no auth)', user: null },
        control('tls', 'bare route'),
        { id: 'tls-plugin', label: 'fastify-client-cert', user },
        { id: 'tls-hook', label: 'hand-written getPeerCertificate() hook', user },
        { id: 'tls-passport', label: '@fastify/passport + passport-client-cert', user }
      ]
    },
    {
      id: 'h2',
      kind: 'pool',
      title: 'Direct TLS, HTTP/2',
      description: 'HTTP/2 Fastify with requestCert; undici Pool with allowH2, 2 connections × 16 concurrent streams',
      baseline: 'h2-bare',
      load: { connections: 2, pipelining: 16, allowH2: true },
      variants: [
        { id: 'h2-bare', label: 'bare route (requestCert, no auth)', user: null },
        control('h2', 'bare route'),
        { id: 'h2-plugin', label: 'fastify-client-cert', user }
      ]
    },
    {
      id: 'revocation',
      kind: 'pool',
      title: 'Direct TLS, HTTP/1.1, a cached revocation verdict (ratios to the plugin without revocation)',
      description: 'as the direct TLS row, 8 keep-alive connections × 4 pipelined; the plugin without revocation against the plugin checking the client certificate ' +
        'by a CRL distribution point or by OCSP (nonce off), each served by a local node:http server in the server process: the first request fetches the verdict, ' +
        'every later one uses the cached one',
      baseline: 'tls-plugin',
      ratioTo: 'plugin',
      targets: [{ variant: 'tls-plugin-crl', min: 0.98 }, { variant: 'tls-plugin-ocsp', min: 0.98 }],
      load: { connections: 8, pipelining: 4 },
      variants: [
        { id: 'tls-plugin', label: 'fastify-client-cert, no revocation', user },
        { id: 'tls-plugin-crl', app: 'tls-plugin', label: 'fastify-client-cert, CRL distribution point (cached CRL)', user, options: { crlPath: certs.revocation.crlPath } },
        { id: 'tls-plugin-ocsp', app: 'tls-plugin', label: 'fastify-client-cert, OCSP (cached answer)', user, options: { ocspResponsePath: certs.revocation.ocspResponsePath } }
      ]
    },
    {
      id: 'handshake',
      kind: 'handshake',
      title: 'Direct TLS, a new connection per request (handshake included)',
      description: `${settings.handshakeInflight} loops, each: TLS connect with the client certificate (full handshake, no resumption), GET / with Connection: close, wait for the close`,
      baseline: 'tls-bare',
      variants: [
        { id: 'tls-bare', label: 'bare route (requestCert, no auth)', user: null },
        control('tls', 'bare route'),
        { id: 'tls-plugin', label: 'fastify-client-cert', user }
      ]
    },
    {
      id: 'nginx-hit',
      kind: 'nginx',
      title: 'Behind nginx, one client certificate (cache hits)',
      description: 'nginx terminates TLS and verifies the certificate, forwards it (preset \'nginx\' headers) over keep-alive upstream connections to HTTP Fastify; 8 client connections × 4 pipelined',
      baseline: 'proxy-bare',
      target: { variant: 'proxy-plugin', min: 0.95 },
      load: { connections: 8, pipelining: 4 },
      variants: [
        { id: 'proxy-bare', label: 'bare route behind nginx', user: null },
        control('proxy', 'bare route behind nginx'),
        { id: 'proxy-plugin', label: 'fastify-client-cert, preset nginx', user }
      ]
    },
    {
      id: 'nginx-miss',
      kind: 'nginx-many',
      title: `Behind nginx, ${many.length} distinct client certificates (cache misses)`,
      description: `${many.length} client connections, each with its own certificate, used in turn; the plugin's cache is set to ${many.length / 2} entries so that every request misses it (the default 10,000 would hold them all)`,
      baseline: 'proxy-bare',
      load: {},
      variants: [
        { id: 'proxy-bare', label: 'bare route behind nginx', user: null },
        control('proxy', 'bare route behind nginx'),
        { id: 'proxy-plugin', label: `fastify-client-cert, cache of ${many.length / 2}`, user: many[0].name, options: { cacheMax: many.length / 2 } }
      ]
    },
    {
      id: 'cold',
      kind: 'plain',
      title: 'Behind nginx, a new certificate on every request (no cache hits)',
      description: 'the load generator sends what nginx sends upstream (preset \'nginx\' headers, keep-alive, from 127.0.0.1, which the plugin trusts) straight to HTTP Fastify, ' +
        '8 connections × 4 pipelined, each request with a certificate never sent before (made as it is sent, as in the churn row), against the default cache (10,000 entries); ' +
        `beside it, ${cold.count.toLocaleString('en-US')} CA-signed certificates in turn, each back after ${(cold.count - 1).toLocaleString('en-US')} others, which a least-recently-used cache of 10,000 never keeps long enough to hit. ` +
        'The bare and control routes get new certificates too',
      baseline: 'proxy-bare',
      target: { variant: 'proxy-plugin-cold', min: 0.6, maxExtraCpuUs: 25 },
      load: { connections: 8, pipelining: 4 },
      variants: [
        { id: 'proxy-bare', label: 'bare route (same headers, ignored)', user: null, headers: 'fresh' },
        { ...control('proxy', 'bare route'), headers: 'fresh' },
        { id: 'proxy-plugin-hit', app: 'proxy-plugin', label: 'fastify-client-cert, one certificate (cache hits)', user, headers: 'one' },
        { id: 'proxy-plugin-cold', app: 'proxy-plugin', label: 'fastify-client-cert, a new certificate each request', user: /^client-\d+$/, headers: 'fresh' },
        { id: 'proxy-plugin-rotation', app: 'proxy-plugin', label: `fastify-client-cert, ${cold.count.toLocaleString('en-US')} certificates in turn`, user: 'client-' + CertificateForge.nameOf(0), headers: 'rotation' }
      ]
    }
  ]
}

function rotate (list, by) {
  const k = by % list.length
  return [...list.slice(k), ...list.slice(0, k)]
}

/** The variant whose req/s target the rounds missed (`target`, or the first of `targets`), or null. */
function targetMissed (suite, rounds) {
  const targets = suite.targets ?? (suite.target === undefined ? [] : [suite.target])
  const rows = summarizeSuite({ ...suite, rounds, peakRss: {} })
  const missed = targets.find((target) => {
    const row = rows.find((r) => r.variant === target.variant)
    return row.rpsRatio !== null && row.rpsRatio.median < target.min
  })
  return missed?.variant ?? null
}

/**
 * What each request of the cold row carries: nginx's two headers, for one certificate, the next of a rotation,
 * or (`fresh`) a certificate never sent before, numbered on from the rotation's (unsigned, as in the churn row).
 */
function coldHeaders (certs, settings) {
  const one = [{ 'x-ssl-client-cert': nginxEscape(certs.client.cert), 'x-ssl-client-verify': 'SUCCESS' }]
  const rotation = []
  for (let i = 0; i < settings.cold.count; i++) {
    rotation.push({ 'x-ssl-client-cert': certs.forge.nginxHeader(i), 'x-ssl-client-verify': 'SUCCESS' })
  }
  let next = settings.cold.count
  const fresh = () => ({ 'x-ssl-client-cert': certs.forge.nginxHeader(next++, { signed: false }), 'x-ssl-client-verify': 'SUCCESS' })
  // Every variant makes a certificate per request, sent or not, so the load generator (on the same 2 cores) works
  // alike for all: a variant whose headers cost nothing to make would be driven harder and batch more.
  const alike = (list) => {
    const cycle = cycler(list)
    return () => {
      fresh()
      return cycle()
    }
  }
  return { one: alike(one), rotation: alike(rotation), fresh }
}

function cycler (list) {
  let i = -1
  return function next () {
    i = i + 1 === list.length ? 0 : i + 1
    return list[i]
  }
}

async function runSuite (suite, { certs, settings, nginx, stamp, profileAll, profiles, aborts, headerSets }) {
  const servers = new Map()
  const dispatchers = new Map()
  const roundOf = new Map()
  const proxies = []
  try {
    for (const variant of suite.variants) {
      const server = await ServerProcess.start(variant.app ?? variant.id, certs, variant.options)
      servers.set(variant.id, server)
      let origin = `https://localhost:${server.port}`
      if (suite.kind === 'nginx' || suite.kind === 'nginx-many') {
        const proxy = await startNginx(nginx.bin, { upstreamPort: server.port, certs })
        proxies.push(proxy)
        aborts.add(proxy.abort)
        origin = `https://localhost:${proxy.port}`
      }
      let dispatcher
      let headers
      if (suite.kind === 'plain') {
        dispatcher = plainPool(`http://127.0.0.1:${server.port}`, suite.load)
        headers = headerSets[variant.headers]
      } else if (suite.kind === 'nginx-many') {
        dispatcher = clientPerCertificate(origin, { ca: certs.ca, clients: certs.many })
      } else {
        // The handshake row probes over a pool, then closes it: its rounds make their own connections.
        dispatcher = pool(origin, { ca: certs.ca, client: certs.client, ...(suite.load ?? { connections: 1, pipelining: 1 }) })
      }
      const answer = await probe(Array.isArray(dispatcher) ? dispatcher[0] : dispatcher, headers?.())
      const expected = variant.user instanceof RegExp ? variant.user.test(answer.body?.user) : answer.body?.user === variant.user
      if (answer.statusCode !== 200 || !expected) {
        throw new Error(`${suite.title}, ${variant.label}: GET / answered ${answer.statusCode} ${JSON.stringify(answer.body)}, expected user ${String(variant.user)}`)
      }
      if (suite.kind === 'handshake') {
        await closeAll(dispatcher)
        roundOf.set(variant.id, (durationMs) => handshakeRound(server.port, { ca: certs.ca, client: certs.client, durationMs, inflight: settings.handshakeInflight }))
      } else {
        dispatchers.set(variant.id, dispatcher)
        roundOf.set(variant.id, (durationMs) => round(dispatcher, { durationMs, inflight: INFLIGHT, headers }))
      }
      await roundOf.get(variant.id)(settings.warmupMs)
    }
    const rounds = []
    for (let cycle = 0; cycle < settings.cycles; cycle++) {
      for (const variant of rotate(suite.variants, cycle)) {
        const server = servers.get(variant.id)
        const before = await server.usage()
        const result = await roundOf.get(variant.id)(settings.roundMs)
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
          // Young-generation collections per 1000 requests and the young generation's size: equal GC regimes
          // across variants are what makes their CPU comparable (see SERVER_V8_FLAGS in lib/child.js).
          scavengesPer1k: result.requests === 0 ? null : (after.gc.minor - before.gc.minor) / result.requests * 1000,
          newSpaceBytes: after.newSpace,
          // How busy the shared machine was: explains a stray round.
          loadavg1: loadavg()[0]
        }
        rounds.push(entry)
        log(`  ${suite.id} cycle ${cycle + 1}/${settings.cycles} ${variant.id.padEnd(17)} ${Math.round(entry.rps).toString().padStart(6)} req/s ` +
          `${entry.cpuUsPerRequest?.toFixed(1).padStart(6)} µs CPU/req${entry.errors > 0 ? `, ${entry.errors} errors` : ''}`)
      }
    }
    const peakRss = {}
    for (const [id, server] of servers) peakRss[id] = (await server.usage()).maxRSS
    const missed = targetMissed(suite, rounds)
    if ((profileAll || missed !== null) && suite.kind !== 'handshake') {
      const variant = suite.variants.find((v) => v.id === (missed ?? suite.target?.variant ?? suite.variants.at(-1).id))
      const file = join(here, 'results', 'profiles', `${stamp}-${suite.id}-${variant.id}.cpuprofile`)
      mkdirSync(join(here, 'results', 'profiles'), { recursive: true })
      log(`  profiling ${variant.id} under load for ${settings.profileMs / 1000} s`)
      await servers.get(variant.id).profile(file, () => roundOf.get(variant.id)(settings.profileMs))
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
    'Every server process runs with the same fixed young generation (node ' + SERVER_V8_FLAGS.join(' ') + '): left to V8 its size follows each process\'s history, and a bare server ' +
      'that had shrunk it to 2–4 MB scavenged 5 × more often per request than the plugin\'s, which is how the plugin once measured cheaper than no authentication. ' +
      'Each round records scavenges per 1000 requests and the young generation\'s size, so that a difference of GC regime shows.',
    'The control (the bare route plus a no-op onRequest hook) prices what any hook costs; the plugin\'s own cost is its row minus the control\'s.',
    '@fastify/passport 4 with passport-client-cert 2 installs and works on Fastify 5, but @fastify/passport requires a session plugin (it registers @fastify/flash, which needs request.session): ' +
      '@fastify/secure-session is registered as its README shows, and the strategy runs with session: false.',
    `Cache misses behind nginx: ${manyCount} certificates in rotation against a cache of ${manyCount / 2} entries; every request decodes its certificate header, parses the certificate and builds the identity.`,
    'A new certificate on every request: nginx would need a TLS handshake per certificate, which would measure nginx, so the load generator sends nginx\'s upstream request itself ' +
      '(the same two headers, escaped PEM) from 127.0.0.1 over keep-alive; the certificates are CA-signed copies of one template (lib/forge.js), each with its own serial, CN and SANs.',
    'Direct TLS with a new connection per request: client and server handshakes share the same 2 cores, so req/s is mostly the handshakes; the plugin\'s share is its extra server CPU ÷ its server CPU per request.',
    'Micro benchmarks import the plugin\'s internal modules from dist/esm (dn, san, presets, identity, options, proxy-source, authenticate): they measure exactly the code the plugin runs. ' +
      '"cold: <preset> headers → identity" is identify(), what the plugin\'s onRequest hook calls, with the certificate cache off and a different certificate each call, then every identity field read.'
  ]
  const errors = results.summary.http.filter((r) => r.errors > 0)
  for (const r of errors) notes.push(`${r.label} (${r.suite}): ${r.errors} requests failed or answered other than 200 during the rounds.`)
  return notes
}

/** The rows `--only` names (comma-separated), or the default set. */
function selectedRows (only, churnCount) {
  if (only === undefined) return churnCount === undefined ? DEFAULT_ROWS : [...DEFAULT_ROWS, 'churn']
  const rows = only.split(',').map((row) => row.trim()).filter((row) => row !== '').flatMap((row) => ALIASES[row] ?? [row])
  const unknown = rows.filter((row) => !ROWS.includes(row))
  if (unknown.length > 0 || rows.length === 0) throw new Error(`--only takes a comma-separated list of ${ROWS.join(', ')} (or http); got ${only}\n${usage()}`)
  return ROWS.filter((row) => rows.includes(row))
}

async function main () {
  // `--churn` alone means the default count: parseArgs wants a value for a string option.
  const args = process.argv.slice(2).map((arg) => arg === '--churn' ? '--churn=' : arg)
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: 'boolean' },
      profile: { type: 'boolean' },
      only: { type: 'string' },
      churn: { type: 'string' },
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
    // Re-rendered next to the JSON it comes from: a partial or quick run never overwrites the full run's tables.
    writeOutputs(dirname(resolve(values.from)), results, null)
    return
  }
  const quick = values.quick === true
  const settings = quick ? SETTINGS.quick : SETTINGS.full
  const churnCount = values.churn === undefined ? undefined : Number(values.churn === '' ? settings.churn : values.churn.replaceAll('_', ''))
  if (churnCount !== undefined && !(Number.isSafeInteger(churnCount) && churnCount > 0)) throw new Error(`--churn takes a number of requests, e.g. --churn=1000000\n${usage()}`)
  const rows = selectedRows(values.only, churnCount)
  if (!existsSync(join(root, 'dist', 'esm', 'index.js'))) {
    throw new Error('dist/esm/index.js is missing: run `npm run build` at the repository root first (npm run bench does)')
  }
  const nginx = findNginx()
  const meta = machine(quick, settings, nginx)
  meta.rows = rows
  if (values.only !== undefined || churnCount !== undefined) {
    meta.command = `npm run bench -- ${[quick ? '--quick' : '', values.only === undefined ? '' : `--only=${values.only}`, churnCount === undefined ? '' : `--churn=${churnCount}`].filter((a) => a !== '').join(' ')}`
  }
  const stamp = meta.date.replace(/[:]/g, '-')
  // A run of some rows only keeps its own latest.*: it never replaces the full run's tables and chart.
  const partial = rows.join(',') !== DEFAULT_ROWS.join(',') && rows.join(',') !== ROWS.join(',')
  const outDir = join(here, 'results', ...(quick ? ['quick'] : []), ...(partial ? ['only-' + rows.join('+')] : []))
  const profiles = []
  const aborts = new Set()
  log(`fastify-client-cert benchmarks${quick ? ' (quick)' : ''}, rows ${rows.join(', ')}: generating certificates`)
  const certs = await makeCertificates(settings.many)
  aborts.add(certs.cleanup)
  process.once('SIGINT', function interrupted () {
    log('interrupted: stopping servers and removing temp files')
    for (const abort of aborts) abort()
    process.exit(130)
  })
  const suites = []
  let micro = null
  let churn = null
  let crlScale = null
  try {
    if (rows.includes('micro')) {
      log('micro benchmarks')
      micro = await runMicro({ certs, settings, stamp, profileAll: values.profile === true, profiles })
    }
    const headerSets = rows.includes('cold') ? coldHeaders(certs, settings) : null
    for (const suite of suiteDefinitions(certs, settings)) {
      if (!rows.includes(suite.id)) continue
      if (suite.kind.startsWith('nginx') && nginx === null) {
        suites.push({ ...suite, skipped: 'nginx not found (install it, or set NGINX_BIN)', rounds: [], peakRss: {} })
        continue
      }
      log(suite.title)
      suites.push(await runSuite(suite, { certs, settings, nginx, stamp, profileAll: values.profile === true, profiles, aborts, headerSets }))
    }
    if (rows.includes('crl-scale')) {
      log(`crl-scale: a CRL of ${settings.crlScale.count.toLocaleString('en-US')} entries`)
      crlScale = await runCrlScale({ ...settings.crlScale, log })
    }
    if (rows.includes('churn')) {
      const count = churnCount ?? settings.churn
      log(`churn: ${count.toLocaleString('en-US')} distinct certificates through the nginx preset, default cache`)
      churn = await runChurn({ certs, count, sampleMs: settings.churnSampleMs, inflight: INFLIGHT, log })
    }
  } finally {
    certs.cleanup()
  }
  meta.loadavg.end = loadavg()
  const summary = {
    http: suites.flatMap((suite) => suite.skipped === undefined ? summarizeSuite(suite) : []),
    micro: micro === null ? null : summarizeMicro(micro),
    churn: churn === null ? null : summarizeChurn(churn),
    crlScale: crlScale === null ? null : summarizeCrlScale(crlScale)
  }
  summary.targets = evaluateTargets(summary)
  const results = { meta, suites, micro, churn, crlScale, summary, profiles: profiles.map(({ summary, ...rest }) => ({ ...rest, top: summary })), notes: [] }
  results.notes = notesFor(results, settings.many)
  const text = textReport(results)
  console.log(text)

  writeOutputs(outDir, results, stamp)
  // The churn plot the README shows comes from a full million-certificate run only.
  if (churn !== null && !quick && churn.count >= 1_000_000) {
    writeFileSync(join(root, 'docs', 'benchmarks-churn.svg'), churnSvg(results))
    log('written docs/benchmarks-churn.svg')
  }
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
  if (results.churn != null) {
    writeFileSync(join(outDir, 'churn.svg'), churnSvg(results))
    written.push('churn.svg')
  }
  log(`\nwritten in ${relativeToRoot(outDir)}: ${written.join(', ')}`)
}

main().catch(function failed (error) {
  console.error(`benchmark could not run: ${error.stack ?? error}`)
  process.exitCode = 1
})
