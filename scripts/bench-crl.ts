// CRL costs at scale: load time, the longest event-loop stall while loading, peak RSS, the first check
// after a load and the cost of a lookup, for CRLs of 300,000 and 1,000,000 entries. A measurement script,
// not a test (no figure is asserted):
//
//   TS_NODE_TRANSPILE_ONLY=1 node --import @tapjs/typescript/import scripts/bench-crl.ts \
//     [--lib=<dir holding revocation/crl.ts>] [--entries=300000,1000000] [--input=pem|der]
//
// Every figure comes from a fresh child process, so peak RSS (getrusage maxrss) is the load's own.
import { execFileSync, spawnSync } from 'node:child_process'
import { X509Certificate, createPrivateKey } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { bigCrl, crlPem, subjectName } from '../test/helpers/crl.js'

const here = fileURLToPath(new URL('.', import.meta.url))

interface Figures {
  entries: number
  inputMB: number
  loadMs: number
  maxStallMs: number
  maxStallCpuMs: number
  idleStallMs: number
  idleStallCpuMs: number
  rssBeforeMB: number
  peakRssMB: number
  retainedMB: number
  firstCheckMs: number
  lookupHitNs: number
  lookupMissNs: number
}

function generate (dir: string, entries: number): void {
  const run = (...args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' }) }
  run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem',
    '-subj', '/O=Bench/CN=Bench CA', '-days', '30')
  for (const [name, serial] of [['hit', '0x7A0102030405060708'], ['miss', '0x7B0102030405060708']]) {
    run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`,
      '-subj', `/CN=${name}`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', serial, '-days', '5')
  }
  const ca = new X509Certificate(readFileSync(join(dir, 'ca.pem')))
  const hit = new X509Certificate(readFileSync(join(dir, 'hit.pem')))
  const crl = bigCrl({ issuer: subjectName(ca), key: createPrivateKey(readFileSync(join(dir, 'ca.key'))), count: entries - 1, serials: [hit.serialNumber] })
  writeFileSync(join(dir, 'crl.pem'), crlPem(crl))
  writeFileSync(join(dir, 'crl.der'), crl)
}

interface AnyList {
  check: (cert: X509Certificate, issuer?: X509Certificate | null, now?: number) => { error: string | null }
}

async function measure (lib: string, dir: string, entries: number, input: string): Promise<Figures> {
  const { RevocationList } = await import(pathToFileURL(join(lib, 'revocation', 'crl.ts')).href) as {
    RevocationList: {
      from: (input: string | Buffer, path: string, trust?: X509Certificate[]) => AnyList
      load?: (input: string | Buffer, path: string, trust?: X509Certificate[]) => Promise<AnyList>
    }
  }
  const ca = new X509Certificate(readFileSync(join(dir, 'ca.pem')))
  const hit = new X509Certificate(readFileSync(join(dir, 'hit.pem')))
  const miss = new X509Certificate(readFileSync(join(dir, 'miss.pem')))
  const pem = input === 'der' ? readFileSync(join(dir, 'crl.der')) : readFileSync(join(dir, 'crl.pem'), 'latin1')
  const gc = (globalThis as { gc?: () => void }).gc!
  gc()
  const rssBefore = process.memoryUsage().rss

  // The longest gap between two ticks of a 1 ms timer, in wall time and in CPU time this process used
  // meanwhile: on a busy machine a gap can be another process's turn, which the CPU time tells apart.
  let maxStall = 0
  let maxStallCpu = 0
  let last = performance.now()
  let lastCpu = process.cpuUsage()
  const ticker = setInterval(() => {
    const now = performance.now()
    const cpu = process.cpuUsage(lastCpu)
    maxStall = Math.max(maxStall, now - last)
    maxStallCpu = Math.max(maxStallCpu, (cpu.user + cpu.system) / 1000)
    last = now
    lastCpu = process.cpuUsage()
  }, 1)
  // The same figures with nothing to do: the machine's own noise.
  await new Promise((resolve) => setTimeout(resolve, 1000))
  const idleStall = maxStall
  const idleStallCpu = maxStallCpu
  maxStall = 0
  maxStallCpu = 0
  last = performance.now()
  lastCpu = process.cpuUsage()
  const start = performance.now()
  const list = RevocationList.load === undefined ? RevocationList.from(pem, 'crl') : await RevocationList.load(pem, 'crl', [ca])
  const loadMs = performance.now() - start
  // A stall that ends with the load is seen at the next tick.
  await new Promise((resolve) => setTimeout(resolve, 5))
  clearInterval(ticker)
  const peakRss = process.resourceUsage().maxRSS * 1024

  // Before: the issuer is handed to check(); after: it comes from the trust bound at load.
  const legacy = RevocationList.load === undefined
  const check = (cert: X509Certificate): { error: string | null } => legacy ? list.check(cert, ca) : list.check(cert)
  const firstStart = performance.now()
  const first = check(hit)
  const firstCheckMs = performance.now() - firstStart
  if (first.error !== 'CERT_REVOKED' || check(miss).error !== null) throw new Error(`wrong verdicts: ${JSON.stringify([first, check(miss)])}`)

  const time = (cert: X509Certificate): number => {
    const rounds = 200_000
    for (let i = 0; i < 10_000; i++) check(cert)
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < rounds; i++) check(cert)
    return Number(process.hrtime.bigint() - t0) / rounds
  }
  const lookupHitNs = time(hit)
  const lookupMissNs = time(miss)
  gc()
  const retained = process.memoryUsage().rss - rssBefore
  if (list === null) throw new Error('unreachable: keeps the list alive until here')
  const mb = (n: number): number => Math.round(n / 1e5) / 10
  return {
    entries,
    inputMB: mb(pem.length),
    loadMs: Math.round(loadMs),
    maxStallMs: Math.round(maxStall * 10) / 10,
    maxStallCpuMs: Math.round(maxStallCpu * 10) / 10,
    idleStallMs: Math.round(idleStall * 10) / 10,
    idleStallCpuMs: Math.round(idleStallCpu * 10) / 10,
    rssBeforeMB: mb(rssBefore),
    peakRssMB: mb(peakRss),
    retainedMB: mb(retained),
    firstCheckMs: Math.round(firstCheckMs * 100) / 100,
    lookupHitNs: Math.round(lookupHitNs),
    lookupMissNs: Math.round(lookupMissNs)
  }
}

const { values } = parseArgs({
  options: {
    lib: { type: 'string', default: join(here, '..', 'lib') },
    entries: { type: 'string', default: '300000,1000000' },
    input: { type: 'string', default: 'pem' },
    child: { type: 'string' }
  }
})

if (values.child !== undefined) {
  const [dir, entries] = values.child.split(',')
  process.stdout.write(JSON.stringify(await measure(resolve(values.lib), dir, Number(entries), values.input)) + '\n')
} else {
  for (const entries of values.entries.split(',').map(Number)) {
    const dir = mkdtempSync(join(tmpdir(), 'bench-crl-'))
    try {
      generate(dir, entries)
      const child = spawnSync(process.execPath, [...process.execArgv, '--expose-gc', fileURLToPath(import.meta.url),
        `--lib=${values.lib}`, `--input=${values.input}`, `--child=${dir},${entries}`], { encoding: 'utf8', env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' } })
      if (child.status !== 0) throw new Error(child.stderr)
      process.stdout.write(child.stdout)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
