// A CRL of a million entries: how RevocationList.load (from dist/esm) copes with it. Load time, the longest
// event-loop stall during the load, peak and retained memory, and the cost of a lookup afterwards.
//
// The CRL is written here directly (DER, signed with Node's crypto by a CA that openssl made): `openssl ca`
// would need a million-line index and takes minutes. It is cached in the OS temp directory, keyed by its
// entry count, so later runs measure at once. Each measurement runs in a fresh child process (this file, with
// --child), so that its peak RSS is the load's own and not the generator's or an earlier measurement's.
import { execFileSync, spawn } from 'node:child_process'
import { createPrivateKey, randomBytes, sign, X509Certificate } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { EC, OPENSSL_CONFIG } from './certs.js'

const here = fileURLToPath(new URL('.', import.meta.url))
const FORMAT_VERSION = 1

// --- DER writing, just what a CRL needs ------------------------------------------------------------------

function length (n) {
  if (n < 0x80) return Buffer.from([n])
  const bytes = []
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

function tlv (tag, content) {
  return Buffer.concat([Buffer.from([tag]), length(content.length), content])
}

function utcTime (date) {
  const text = date.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z'
  return tlv(0x17, Buffer.from(text, 'latin1'))
}

/** The subject Name of a certificate, as DER bytes (the CRL's issuer must be these bytes). */
function subjectDer (certDer) {
  // Walks Certificate → TBSCertificate → [0] version, serial, signature, issuer, validity, subject.
  const read = (at) => {
    let len = certDer[at + 1]
    let header = 2
    if (len & 0x80) {
      const n = len & 0x7f
      len = 0
      for (let i = 0; i < n; i++) len = len * 256 + certDer[at + 2 + i]
      header += n
    }
    return { start: at, contentStart: at + header, end: at + header + len }
  }
  const tbs = read(read(0).contentStart)
  let at = tbs.contentStart
  if (certDer[at] === 0xa0) at = read(at).end
  for (let i = 0; i < 4; i++) at = read(at).end // serial, signature, issuer, validity
  const subject = read(at)
  return certDer.subarray(subject.start, subject.end)
}

const ECDSA_SHA256 = tlv(0x30, Buffer.from('06082a8648ce3d040302', 'hex'))

/**
 * A v2 CRL of `count` entries, each a random 16-byte serial (what CAs issue: RFC 5280 allows 20, CA/B Forum
 * asks for 64 random bits at least) revoked at one date; `listed` serials are put among them, spread out.
 */
function writeCrl (issuerDer, key, count, listed) {
  const date = utcTime(new Date(Date.now() - 86_400_000))
  const entries = []
  const spacing = Math.floor(count / (listed.length + 1))
  let next = 0
  for (let i = 0; i < count; i++) {
    let serial
    if (next < listed.length && i === (next + 1) * spacing) {
      serial = Buffer.from(listed[next++], 'hex')
    } else {
      serial = randomBytes(16)
      serial[0] = (serial[0] % 0x7f) + 1
    }
    entries.push(tlv(0x30, Buffer.concat([tlv(0x02, serial), date])))
  }
  const revoked = tlv(0x30, Buffer.concat(entries))
  const crlNumber = tlv(0x30, Buffer.concat([tlv(0x06, Buffer.from('551d14', 'hex')), tlv(0x04, tlv(0x02, Buffer.from([0x10, 0x00])))]))
  const tbs = tlv(0x30, Buffer.concat([
    tlv(0x02, Buffer.from([1])), // v2
    ECDSA_SHA256,
    issuerDer,
    utcTime(new Date(Date.now() - 3_600_000)),
    utcTime(new Date(Date.now() + 30 * 86_400_000)),
    revoked,
    tlv(0xa0, tlv(0x30, crlNumber))
  ]))
  const signature = sign('sha256', tbs, key)
  return tlv(0x30, Buffer.concat([tbs, ECDSA_SHA256, tlv(0x03, Buffer.concat([Buffer.from([0]), signature]))]))
}

/**
 * The CA, two client certificates (one listed, one not) and the CRL in DER and PEM, made once per entry count
 * and kept in the OS temp directory. Returns the directory and whether it was made now.
 */
export function preparedCrl (count, log = () => {}) {
  const dir = join(tmpdir(), `fastify-client-cert-bench-crl-v${FORMAT_VERSION}-${count}`)
  const done = join(dir, 'ready.json')
  if (existsSync(done)) {
    const ready = JSON.parse(readFileSync(done, 'utf8'))
    // The CRL's nextUpdate is 30 days out; a cache older than 20 days is made again.
    if (Date.now() - ready.made < 20 * 86_400_000) return { dir, ...ready, cached: true }
  }
  mkdirSync(dir, { recursive: true })
  const started = performance.now()
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' })
  writeFileSync(join(dir, 'openssl.cnf'), OPENSSL_CONFIG)
  openssl('req', '-x509', ...EC, '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/CN=Bench Million CRL CA/O=fastify-client-cert benchmarks', '-days', '60',
    '-config', 'openssl.cnf', '-extensions', 'ca')
  const serials = { listed: '5EED' + randomBytes(14).toString('hex').toUpperCase(), other: '0BAD' + randomBytes(14).toString('hex').toUpperCase() }
  for (const [name, serial] of Object.entries(serials)) {
    openssl('req', '-new', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`, '-config', 'openssl.cnf')
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', `0x${serial}`, '-days', '30',
      '-extfile', 'openssl.cnf', '-extensions', 'client', '-out', `${name}.pem`)
  }
  const ca = new X509Certificate(readFileSync(join(dir, 'ca.pem')))
  const der = writeCrl(subjectDer(ca.raw), createPrivateKey(readFileSync(join(dir, 'ca.key'))), count, [serials.listed])
  writeFileSync(join(dir, 'crl.der'), der)
  const base64 = der.toString('base64').replace(/.{64}/g, '$&\n')
  writeFileSync(join(dir, 'crl.pem'), `-----BEGIN X509 CRL-----\n${base64}${base64.endsWith('\n') ? '' : '\n'}-----END X509 CRL-----\n`)
  const ready = { made: Date.now(), count, derBytes: der.length, serials, generationMs: Math.round(performance.now() - started) }
  writeFileSync(join(dir, 'ready.tmp'), JSON.stringify(ready))
  renameSync(join(dir, 'ready.tmp'), done)
  log(`  wrote a CRL of ${count.toLocaleString('en-US')} entries (${(der.length / 2 ** 20).toFixed(1)} MiB DER) in ${ready.generationMs} ms, kept in ${dir}`)
  return { dir, ...ready, cached: false }
}

// --- measurement, in a child process ---------------------------------------------------------------------

function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** Nanoseconds per call of `fn` (which runs `batch` checks per call), median of `rounds` rounds. */
function perCheck (fn, { rounds, batch }) {
  fn() // warm-up: compiled before timing
  fn()
  const samples = []
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint()
    fn()
    samples.push(Number(process.hrtime.bigint() - start) / batch)
  }
  return { medianNs: median(samples), minNs: Math.min(...samples), maxNs: Math.max(...samples) }
}

/** Memory after a full collection, once freed ArrayBuffer backing stores are really released (that happens after the collection, concurrently). */
async function settledMemory () {
  for (let i = 0; i < 3; i++) {
    globalThis.gc()
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return process.memoryUsage()
}

async function child ({ dir, form, rounds, batch }) {
  const { RevocationList } = await import('../../dist/esm/revocation/crl.js')
  const ca = new X509Certificate(readFileSync(join(dir, 'ca.pem')))
  const listed = new X509Certificate(readFileSync(join(dir, 'listed.pem')))
  const other = new X509Certificate(readFileSync(join(dir, 'other.pem')))
  const input = readFileSync(join(dir, form === 'pem' ? 'crl.pem' : 'crl.der'))
  const before = await settledMemory()

  const delay = monitorEventLoopDelay({ resolution: 1 })
  // The longest gap between two turns of a 1 ms timer: the stall as a request waiting would feel it.
  // With the process's CPU time over that gap: close to the gap, this process was busy (the load's own stall);
  // far below it, the process was waiting for a core (a shared machine), which no code change would help.
  let last = performance.now()
  let lastCpu = process.cpuUsage()
  let longestGapMs = 0
  let longestGapCpuMs = 0
  const ticker = setInterval(() => {
    const now = performance.now()
    const cpu = process.cpuUsage()
    if (now - last > longestGapMs) {
      longestGapMs = now - last
      longestGapCpuMs = (cpu.user + cpu.system - lastCpu.user - lastCpu.system) / 1000
    }
    last = now
    lastCpu = cpu
  }, 1)
  delay.enable()
  const started = performance.now()
  last = started
  lastCpu = process.cpuUsage()
  const list = await RevocationList.load(input, 'crl', [ca])
  const loadMs = performance.now() - started
  delay.disable()
  clearInterval(ticker)
  const peakRssBytes = process.resourceUsage().maxRSS * 1024

  const listedStatus = list.check(listed).error
  const otherStatus = list.check(other).error
  if (listedStatus !== 'CERT_REVOKED' || otherStatus !== null) throw new Error(`unexpected statuses: listed ${listedStatus}, other ${otherStatus}`)

  const after = await settledMemory()
  const now = Date.now()
  let sink = 0
  const lookups = {
    listed: perCheck(() => { for (let i = 0; i < batch; i++) sink += list.check(listed, null, now).error === null ? 0 : 1 }, { rounds, batch }),
    notListed: perCheck(() => { for (let i = 0; i < batch; i++) sink += list.check(other, null, now).error === null ? 0 : 1 }, { rounds, batch })
  }
  if (sink === -1) console.error(sink)

  // The same load done at once, for contrast: what the event loop would suffer without slicing.
  let syncMs = null
  if (form === 'der') {
    const syncStarted = performance.now()
    RevocationList.from(input, 'crl', [ca])
    syncMs = performance.now() - syncStarted
  }
  // `list` stays reachable until here, so the retained figures above are with it in memory.
  if (list.size !== 1) throw new Error('one CRL expected')
  return {
    form,
    inputBytes: input.length,
    loadMs,
    maxEventLoopDelayMs: delay.max / 1e6,
    p99EventLoopDelayMs: delay.percentile(99) / 1e6,
    longestTimerGapMs: longestGapMs,
    longestTimerGapCpuMs: longestGapCpuMs,
    syncFromMs: syncMs,
    peakRssBytes,
    rssBeforeBytes: before.rss,
    retained: {
      rssBytes: after.rss - before.rss,
      heapUsedBytes: after.heapUsed - before.heapUsed,
      externalBytes: after.external - before.external,
      arrayBuffersBytes: after.arrayBuffers - before.arrayBuffers
    },
    lookups
  }
}

async function runChild (dir, form, settings) {
  const child = spawn(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--child', JSON.stringify({ dir, form, ...settings })], {
    cwd: join(here, '..'),
    stdio: ['ignore', 'pipe', 'inherit']
  })
  let out = ''
  child.stdout.on('data', (chunk) => { out += chunk })
  const code = await new Promise((resolve) => child.once('close', resolve))
  if (code !== 0) throw new Error(`crl-scale measurement (${form}) exited with ${code}`)
  return JSON.parse(out)
}

/**
 * Measures `count` entries: the CRL loaded as DER and as PEM (as a distribution point may serve either),
 * `runs` fresh processes each. Lookups: `rounds` rounds of `batch` checks of a listed and of an unlisted
 * certificate.
 */
export async function runCrlScale ({ count, runs, rounds, batch, log }) {
  const crl = preparedCrl(count, log)
  const measurements = []
  for (let run = 0; run < runs; run++) {
    for (const form of ['der', 'pem']) {
      const m = await runChild(crl.dir, form, { rounds, batch })
      log(`  ${form} run ${run + 1}/${runs}: load ${m.loadMs.toFixed(0)} ms, max event-loop delay ${m.maxEventLoopDelayMs.toFixed(1)} ms ` +
        `(longest timer gap ${m.longestTimerGapMs.toFixed(1)} ms, ${m.longestTimerGapCpuMs.toFixed(1)} ms on CPU), ` +
        `peak RSS ${(m.peakRssBytes / 2 ** 20).toFixed(0)} MiB, lookup ${m.lookups.listed.medianNs.toFixed(0)} / ${m.lookups.notListed.medianNs.toFixed(0)} ns`)
      measurements.push(m)
    }
  }
  return { count, derBytes: crl.derBytes, generationMs: crl.cached ? null : crl.generationMs, runs, rounds, batch, measurements }
}

/** Medians over runs, per input form. */
export function summarizeCrlScale (scale) {
  const forms = {}
  for (const form of ['der', 'pem']) {
    const ms = scale.measurements.filter((m) => m.form === form)
    const med = (pick) => median(ms.map(pick))
    const worst = (pick) => Math.max(...ms.map(pick))
    forms[form] = {
      inputBytes: ms[0].inputBytes,
      loadMs: med((m) => m.loadMs),
      maxEventLoopDelayMs: worst((m) => m.maxEventLoopDelayMs),
      longestTimerGapMs: worst((m) => m.longestTimerGapMs),
      // Of the run with the longest gap.
      longestTimerGapCpuMs: ms.reduce((a, b) => b.longestTimerGapMs > a.longestTimerGapMs ? b : a).longestTimerGapCpuMs,
      peakRssBytes: med((m) => m.peakRssBytes),
      peakOverBaselineBytes: med((m) => m.peakRssBytes - m.rssBeforeBytes),
      retainedBytesPerEntry: med((m) => (m.retained.heapUsedBytes + m.retained.arrayBuffersBytes - scale.derBytes) / scale.count),
      retainedBytes: med((m) => m.retained.heapUsedBytes + m.retained.arrayBuffersBytes),
      lookupListedNs: med((m) => m.lookups.listed.medianNs),
      lookupNotListedNs: med((m) => m.lookups.notListed.medianNs),
      syncFromMs: form === 'der' ? med((m) => m.syncFromMs) : null
    }
  }
  return { count: scale.count, derBytes: scale.derBytes, forms }
}

const MIB = 2 ** 20

/** Lines for the text report. */
export function crlScaleText (summary) {
  const lines = [`CRL of ${summary.count.toLocaleString('en-US')} entries (${(summary.derBytes / MIB).toFixed(1)} MiB DER), RevocationList.load from dist/esm`]
  for (const [form, s] of Object.entries(summary.forms)) {
    lines.push(`  ${form.toUpperCase()} (${(s.inputBytes / MIB).toFixed(1)} MiB): load ${s.loadMs.toFixed(0)} ms, max event-loop delay ${s.maxEventLoopDelayMs.toFixed(1)} ms ` +
      `(longest 1 ms timer gap ${s.longestTimerGapMs.toFixed(1)} ms, ${s.longestTimerGapCpuMs.toFixed(1)} ms of it on CPU), peak RSS ${(s.peakRssBytes / MIB).toFixed(0)} MiB ` +
      `(+${(s.peakOverBaselineBytes / MIB).toFixed(0)} MiB over the process holding the input before the load), kept ${(s.retainedBytes / MIB).toFixed(1)} MiB ` +
      `(${s.retainedBytesPerEntry.toFixed(1)} B an entry besides the CRL's bytes), lookup ${s.lookupListedNs.toFixed(0)} ns listed / ${s.lookupNotListedNs.toFixed(0)} ns not listed` +
      (s.syncFromMs === null ? '' : `; the same load at once (RevocationList.from) blocks ${s.syncFromMs.toFixed(0)} ms`))
  }
  return lines.join('\n')
}

if (process.argv[2] === '--child') {
  child(JSON.parse(process.argv[3])).then((result) => {
    process.stdout.write(JSON.stringify(result))
  }, (error) => {
    console.error(error)
    process.exitCode = 1
  })
}
