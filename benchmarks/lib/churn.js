// Churn: a long stream of certificates none seen before, through the nginx preset with the default cache
// (10,000 entries), sent straight to the server as nginx sends them upstream. Samples the server's memory and
// the requests answered over time: once the cache is full, memory must stay flat and throughput steady.
import { ServerProcess } from './child.js'
import { CertificateForge } from './forge.js'
import { closeAll, plainPool, probe, round } from './load.js'
import { machineLine } from './report.js'
import { spread } from './stats.js'

const DEFAULT_CACHE_MAX = 10_000

/**
 * @param {{ certs: object, count: number, sampleMs: number, inflight: number, log: (line: string) => void }} options
 * @returns the samples `{ t (ms), answered, rss, heapUsed, maxRSS, cacheEntries, cpu }` and totals
 */
export async function runChurn ({ certs, count, sampleMs, inflight, log }) {
  const server = await ServerProcess.start('proxy-plugin', certs)
  const dispatcher = plainPool(`http://127.0.0.1:${server.port}`, { connections: 8, pipelining: 4 })
  try {
    // Certificates are made as they are sent: a million would not fit in memory. Their signatures are
    // well-formed but not valid (signing a million would take the load generator minutes, and nothing in
    // this path checks them: nginx did, and proxy.ca is not set).
    let next = 0
    const headers = () => ({ 'x-ssl-client-cert': certs.forge.nginxHeader(next++, { signed: false }), 'x-ssl-client-verify': 'SUCCESS' })
    const first = await probe(dispatcher, headers())
    if (first.statusCode !== 200 || first.body?.user !== `client-${CertificateForge.nameOf(0)}`) {
      throw new Error(`churn: GET / answered ${first.statusCode} ${JSON.stringify(first.body)}`)
    }
    let answered = 1
    const samples = []
    const started = performance.now()
    async function sample () {
      const usage = await server.usage()
      samples.push({ t: performance.now() - started, answered, rss: usage.rss, heapUsed: usage.heapUsed, maxRSS: usage.maxRSS, cacheEntries: usage.cache?.entries ?? null, cpu: usage.cpu })
    }
    await sample()
    let sampling = null
    const timer = setInterval(() => {
      if (sampling !== null) return
      sampling = sample().finally(() => {
        sampling = null
        const last = samples.at(-1)
        if (samples.length % 10 === 0) log(`  churn ${last.answered.toLocaleString('en-US')} answered, RSS ${(last.rss / 2 ** 20).toFixed(0)} MB, cache ${last.cacheEntries}`)
      })
    }, sampleMs)
    const result = await round(dispatcher, { durationMs: Infinity, inflight, headers, maxRequests: count - 1, onAnswer: () => { answered++ } })
    clearInterval(timer)
    await sampling
    await sample()
    return { count, requests: answered, errors: result.errors, elapsedMs: performance.now() - started, sampleMs, cacheMax: DEFAULT_CACHE_MAX, samples }
  } finally {
    await closeAll(dispatcher)
    await server.close()
  }
}

/** Throughput between samples, and memory after warm-up (the cache full, and 10 % of the run done). */
export function summarizeChurn (churn) {
  const { samples, count } = churn
  const rates = []
  for (let i = 1; i < samples.length; i++) {
    const dt = samples[i].t - samples[i - 1].t
    if (dt > 0) rates.push({ answered: samples[i].answered, rps: (samples[i].answered - samples[i - 1].answered) / dt * 1000 })
  }
  // The cache fills after cacheMax requests; twice that lets the heap settle. Short runs: at most half the run.
  const warm = Math.min(Math.max(2 * churn.cacheMax, count / 10), count / 2)
  const after = samples.filter((s) => s.answered >= warm)
  const quarter = (from, to) => spread(rates.filter((r) => r.answered >= warm && r.answered >= from && r.answered < to).map((r) => r.rps))
  const span = count - warm
  const mb = (b) => b / 2 ** 20
  return {
    count,
    requests: churn.requests,
    errors: churn.errors,
    seconds: churn.elapsedMs / 1000,
    rps: churn.requests / churn.elapsedMs * 1000,
    warmupRequests: warm,
    rssAtWarmMB: after.length === 0 ? null : mb(after[0].rss),
    rssPeakAfterWarmMB: after.length === 0 ? null : mb(Math.max(...after.map((s) => s.rss))),
    rssEndMB: mb(samples.at(-1).rss),
    maxRssMB: mb(samples.at(-1).maxRSS),
    heapEndMB: mb(samples.at(-1).heapUsed),
    cacheEntriesEnd: samples.at(-1).cacheEntries,
    rpsFirstQuarter: quarter(warm, warm + span / 4),
    rpsLastQuarter: quarter(warm + span * 3 / 4, Infinity),
    cpuUsPerRequest: (samples.at(-1).cpu - samples[0].cpu) / (samples.at(-1).answered - samples[0].answered)
  }
}

function escapeXml (text) {
  return String(text).replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;')
}

/** Two panels over certificates sent: requests/second, and the server's RSS and V8 heap (MB). */
export function churnSvg (results) {
  const { churn, meta } = results
  const s = results.summary.churn
  const rates = []
  for (let i = 1; i < churn.samples.length; i++) {
    const a = churn.samples[i - 1]
    const b = churn.samples[i]
    if (b.t > a.t) rates.push([b.answered, (b.answered - a.answered) / (b.t - a.t) * 1000])
  }
  const width = 900
  const left = 70
  const plotW = width - left - 30
  const plotH = 170
  const xMax = churn.count
  const x = (v) => left + v / xMax * plotW
  const niceMax = (v) => { const p = 10 ** Math.floor(Math.log10(v)); return Math.ceil(v / p) * p }
  const panels = [
    { title: 'requests/second (between samples)', top: 70, max: niceMax(Math.max(...rates.map((r) => r[1]), 1)), series: [{ points: rates, color: '#2b6cb0' }] },
    {
      title: 'server memory, MB: RSS (blue), V8 heap used (grey)',
      top: 70 + plotH + 60,
      max: niceMax(Math.max(...churn.samples.map((p) => p.rss)) / 2 ** 20),
      series: [
        { points: churn.samples.map((p) => [p.answered, p.rss / 2 ** 20]), color: '#2b6cb0' },
        { points: churn.samples.map((p) => [p.answered, p.heapUsed / 2 ** 20]), color: '#a0aec0' }
      ]
    }
  ]
  const height = panels.at(-1).top + plotH + 70
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="10" y="22" font-size="15" font-weight="bold">fastify-client-cert: ${churn.count.toLocaleString('en-US')} distinct client certificates behind nginx, default cache (${churn.cacheMax.toLocaleString('en-US')} entries)</text>`,
    `<text x="10" y="42" fill="#555">${escapeXml(`${s.rps.toFixed(0)} req/s over the run; RSS ${s.rssAtWarmMB?.toFixed(0)} MB after warm-up, ${s.rssPeakAfterWarmMB?.toFixed(0)} MB at most after it, ${s.rssEndMB.toFixed(0)} MB at the end${meta.quick ? ' (QUICK run)' : ''}`)}</text>`]
  for (const panel of panels) {
    const y = (v) => panel.top + plotH - Math.min(v, panel.max) / panel.max * plotH
    out.push(`<text x="${left}" y="${panel.top - 10}" font-weight="bold">${escapeXml(panel.title)}</text>`)
    for (let k = 0; k <= 4; k++) {
      const v = panel.max * k / 4
      out.push(`<line x1="${left}" y1="${y(v)}" x2="${left + plotW}" y2="${y(v)}" stroke="#e5e5e5"/>`)
      out.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end" fill="#555">${v >= 1000 ? `${(v / 1000).toFixed(v % 1000 === 0 ? 0 : 1)}k` : v.toFixed(0)}</text>`)
    }
    for (let k = 0; k <= 10; k++) {
      const v = xMax * k / 10
      out.push(`<text x="${x(v)}" y="${panel.top + plotH + 16}" text-anchor="middle" fill="#555">${v >= 1e6 ? `${(v / 1e6).toFixed(1)}M` : `${(v / 1000).toFixed(0)}k`}</text>`)
    }
    const warmX = x(s.warmupRequests)
    out.push(`<line x1="${warmX}" y1="${panel.top}" x2="${warmX}" y2="${panel.top + plotH}" stroke="#c0392b" stroke-dasharray="4 3"/>`)
    for (const series of panel.series) {
      out.push(`<polyline fill="none" stroke="${series.color}" stroke-width="1.5" points="${series.points.map(([a, b]) => `${x(a).toFixed(1)},${y(b).toFixed(1)}`).join(' ')}"/>`)
    }
  }
  out.push(`<text x="${left}" y="${height - 36}" fill="#555">certificates sent (each one new); dashed: end of warm-up (cache full, ${Math.round(s.warmupRequests).toLocaleString('en-US')} requests)</text>`)
  out.push(`<text x="${left}" y="${height - 16}" fill="#555">${escapeXml(machineLine(meta))}; ${escapeXml(meta.date)}; ${escapeXml(meta.command)}</text>`)
  out.push('</svg>')
  return out.join('\n') + '\n'
}
