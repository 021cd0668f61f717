// The figures as a plain-text table (stdout), a Markdown table (for the README) and an SVG chart of the
// ratios with their min–max spread.
import { crlScaleText } from './crl-scale.js'

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 })

function fixed (value, digits) {
  return value.toFixed(digits)
}

function withSpread (s, format) {
  if (s === null) return '—'
  return `${format(s.median)} [${format(s.min)}–${format(s.max)}]`
}

export function formatNs (ns) {
  if (ns < 1000) return `${fixed(ns, 0)} ns`
  if (ns < 1e6) return `${fixed(ns / 1000, ns < 1e4 ? 2 : 1)} µs`
  return `${fixed(ns / 1e6, 2)} ms`
}

const rps = (v) => int.format(v)
/** A target's figure in its unit. */
function targetValue (t) {
  if (t.value === null) return 'not measured'
  if (t.unit === 'ns') return withSpread(t.value, formatNs)
  if (t.unit === 'µs') return withSpread(t.value, (v) => signedUs(v) + ' µs')
  if (t.unit === 'ms') return withSpread(t.value, (v) => fixed(v, 1) + ' ms')
  if (t.unit === 'B') return withSpread(t.value, (v) => fixed(v, 1) + ' B')
  return withSpread(t.value, ratio)
}
const ratio = (v) => fixed(v, 2)
const us = (v) => fixed(v, 1)
const signedUs = (v) => (v >= 0 ? '+' : '−') + fixed(Math.abs(v), 1)
const mb = (bytes) => bytes === null ? '—' : `${fixed(bytes / 1024 / 1024, 0)} MB`

/** `left`: how many leading columns are left-aligned (text); the rest are figures, right-aligned. */
function table (header, rows, left = 1) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells) => cells.map((c, i) => i < left ? c.padEnd(widths[i]) : c.padStart(widths[i])).join('  ').trimEnd()
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')
}

function httpRows (rows) {
  return rows.map((r) => [
    r.label,
    withSpread(r.rps, rps),
    r.baseline ? '1' : withSpread(r.rpsRatio, ratio),
    withSpread(r.cpuUsPerRequest, us),
    r.baseline ? '—' : withSpread(r.extraCpuUs, signedUs),
    mb(r.peakRssBytes),
    r.errors === 0 ? '0' : int.format(r.errors)
  ])
}

// Ratios are to the suite's baseline: the bare route, or what `ratioTo` names (the revocation row: the plugin).
function httpHeader (suite) {
  const to = suite.ratioTo ?? 'bare'
  return ['variant', 'req/s', `× ${to} req/s`, 'server CPU µs/req', `CPU µs/req vs ${to}`, 'peak RSS', 'errors']
}

function churnLines (c) {
  const q = (s) => s === null ? '—' : withSpread(s, rps)
  return [
    `Churn: ${int.format(c.requests)} distinct certificates (nginx preset, default cache) in ${fixed(c.seconds, 0)} s, ${rps(c.rps)} req/s, ${fixed(c.cpuUsPerRequest, 1)} µs server CPU per request, ${int.format(c.errors)} errors`,
    `  RSS: ${fixed(c.rssAtWarmMB ?? NaN, 0)} MB after warm-up (${int.format(c.warmupRequests)} requests), at most ${fixed(c.rssPeakAfterWarmMB ?? NaN, 0)} MB after it, ${fixed(c.rssEndMB, 0)} MB at the end (peak over the whole run ${fixed(c.maxRssMB, 0)} MB; V8 heap ${fixed(c.heapEndMB, 0)} MB; cache ${c.cacheEntriesEnd} entries)`,
    `  req/s between samples: first quarter after warm-up ${q(c.rpsFirstQuarter)}, last quarter ${q(c.rpsLastQuarter)}`
  ]
}

export function machineLine (meta) {
  return `${meta.cpu.model} (${meta.cpu.cores} cores), ${meta.memory}, ${meta.os}, Node ${meta.node} (OpenSSL ${meta.openssl})` +
    (meta.nginx === null ? '' : `, ${meta.nginx}`)
}

/** The plain-text report printed at the end of a run. */
export function textReport (results) {
  const { meta, suites, summary, notes } = results
  const out = []
  out.push(`fastify-client-cert benchmarks, ${meta.date}${meta.quick ? ' (QUICK smoke run: figures are indicative only)' : ''}`)
  out.push(`machine: ${machineLine(meta)}; load average at start ${meta.loadavg.start.map((v) => fixed(v, 1)).join(' ')}`)
  out.push(`plugin:  fastify-client-cert ${meta.plugin.version} (${meta.plugin.commit}), measured from dist/esm; fastify ${meta.packages.fastify}, undici ${meta.packages.undici}`)
  out.push(`command: ${meta.command}`)
  out.push(`method:  ${meta.method}`)
  for (const suite of suites) {
    out.push('', `${suite.title} — ${suite.description}`)
    if (suite.skipped !== undefined) {
      out.push(`  SKIPPED: ${suite.skipped}`)
      continue
    }
    out.push(table(httpHeader(suite), httpRows(summary.http.filter((r) => r.suite === suite.id))))
  }
  if (summary.micro !== null) {
    out.push('', `Micro benchmarks (tinybench, ${results.micro.rounds.length} rounds; time per call: median [min–max] over rounds)`)
    out.push(table(['group', 'task', 'time per call'], summary.micro.tasks.map((t) => [t.group, t.name, withSpread(t.ns, formatNs)]), 2))
    out.push('', table(['ratio', 'median [min–max]'], summary.micro.ratios.map((r) => [r.label, withSpread(r.ratio, ratio)])))
  }
  if (summary.churn != null) out.push('', ...churnLines(summary.churn))
  if (summary.crlScale != null) out.push('', crlScaleText(summary.crlScale))
  out.push('', 'Targets (judged on the median; the spread is min–max over rounds)')
  for (const target of summary.targets) {
    if (target.value === null) continue
    out.push(`  ${target.status.padEnd(7)} ${target.text}: ${targetValue(target)}`)
  }
  for (const profile of results.profiles) {
    out.push('', `Profile: ${profile.title} (${profile.file})`, profile.text)
  }
  if (notes.length > 0) out.push('', 'Notes', ...notes.map((note) => `  - ${note}`))
  return out.join('\n')
}

function mdRow (cells) {
  return `| ${cells.join(' | ')} |`
}

/** Markdown tables of the same figures, for the README's Benchmarks section. */
export function markdownReport (results) {
  const { meta, suites, summary } = results
  const out = [`Machine: ${machineLine(meta)}. Run of ${meta.date}, \`${meta.command}\`.`, '']
  for (const suite of suites) {
    out.push(`**${suite.title}** — ${suite.description}`, '')
    if (suite.skipped !== undefined) {
      out.push(`Skipped: ${suite.skipped}`, '')
      continue
    }
    out.push(mdRow(httpHeader(suite).slice(0, 6)), mdRow(httpHeader(suite).slice(0, 6).map((_, i) => i === 0 ? '---' : '---:')))
    for (const cells of httpRows(summary.http.filter((r) => r.suite === suite.id))) out.push(mdRow(cells.slice(0, 6)))
    out.push('')
  }
  if (summary.micro !== null) {
    out.push(mdRow(['micro benchmark', 'time per call']), mdRow(['---', '---:']))
    for (const t of summary.micro.tasks) out.push(mdRow([t.name.replaceAll('|', '\\|'), withSpread(t.ns, formatNs)]))
    for (const r of summary.micro.ratios) out.push(mdRow([r.label, `${withSpread(r.ratio, ratio)} ×`]))
    out.push('')
  }
  if (summary.churn != null) out.push(...churnLines(summary.churn).map((line) => line.replace(/^ {2}/, '- ')), '')
  if (summary.crlScale != null) out.push(...crlScaleText(summary.crlScale).split('\n').map((line) => line.replace(/^ {2}/, '- ')), '')
  out.push(mdRow(['target', 'median [min–max]', '']), mdRow(['---', '---:', '---']))
  for (const t of summary.targets) {
    if (t.value === null) continue
    out.push(mdRow([t.text, targetValue(t), `**${t.status}**`]))
  }
  return out.join('\n') + '\n'
}

function escapeXml (text) {
  return String(text).replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;')
}

/**
 * Two panels, one row per compared variant under a heading per comparison: req/s ÷ bare (higher is better) and
 * server CPU per request ÷ bare (lower is better). Bar: the median; whisker: min–max over rounds, cut at the
 * axis end (an arrow) when it runs past it; the median is also written in a column of its own.
 */
export function svgChart (results) {
  const { meta, summary } = results
  const lines = []
  for (const suite of results.suites) {
    const rows = summary.http.filter((r) => r.suite === suite.id && !r.baseline && r.rpsRatio !== null)
    if (rows.length === 0) continue
    lines.push({ heading: suite.title })
    for (const r of rows) lines.push({ row: r })
  }
  const width = 1000
  const labelWidth = 300
  const plotWidth = 250
  const valueWidth = 60
  const gap = 30
  const rowHeight = 24
  const top = 78
  const plotHeight = lines.length * rowHeight
  const height = top + plotHeight + 78
  const panels = [
    { x: labelWidth, title: 'requests/second ÷ bare route (higher is better)', max: 1.5, step: 0.25, key: 'rpsRatio', marks: [0.97, 0.95, 0.6] },
    { x: labelWidth + plotWidth + valueWidth + gap, title: 'server CPU per request ÷ bare route (lower is better)', max: 3, step: 0.5, key: 'cpuRatio', marks: [] }
  ]
  const out = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`)
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`)
  out.push('<text x="10" y="22" font-size="15" font-weight="bold">fastify-client-cert: cost of authentication per request, relative to the same route without it</text>')
  out.push(`<text x="10" y="42" fill="#555">bar: median of ${meta.cycles} alternating rounds per variant, each divided by the bare route's round of the same cycle; whisker: min–max${meta.quick ? ' (QUICK run)' : ''}</text>`)
  for (const panel of panels) {
    const scale = (v) => panel.x + (Math.min(Math.max(v, 0), panel.max) / panel.max) * plotWidth
    out.push(`<text x="${panel.x}" y="${top - 12}" font-weight="bold">${escapeXml(panel.title)}</text>`)
    for (let v = 0; v <= panel.max + 1e-9; v += panel.step) {
      const x = scale(v)
      out.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${top + plotHeight}" stroke="#e5e5e5"/>`)
      out.push(`<text x="${x}" y="${top + plotHeight + 14}" text-anchor="middle" fill="#555">${fixed(v, 2)}</text>`)
    }
    for (const at of panel.marks) {
      out.push(`<line x1="${scale(at)}" y1="${top}" x2="${scale(at)}" y2="${top + plotHeight}" stroke="#c0392b" stroke-dasharray="4 3"/>`)
    }
    out.push(`<line x1="${scale(1)}" y1="${top - 4}" x2="${scale(1)}" y2="${top + plotHeight}" stroke="#333" stroke-width="1.5"/>`)
    lines.forEach((line, i) => {
      if (line.row === undefined) return
      const s = line.row[panel.key]
      if (s === null) return
      const y = top + i * rowHeight
      const cy = y + rowHeight / 2
      const fill = line.row.variant.includes('plugin') ? '#2b6cb0' : '#a0aec0'
      out.push(`<rect x="${panel.x}" y="${y + 5}" width="${Math.max(1, scale(s.median) - panel.x)}" height="${rowHeight - 10}" fill="${fill}"/>`)
      out.push(`<line x1="${scale(s.min)}" y1="${cy}" x2="${scale(s.max)}" y2="${cy}" stroke="#1a202c" stroke-width="1.5"/>`)
      for (const v of [s.min, s.max]) {
        const x = scale(v)
        if (v > panel.max) out.push(`<path d="M${x - 6},${cy - 4} L${x},${cy} L${x - 6},${cy + 4}" fill="none" stroke="#1a202c" stroke-width="1.5"/>`)
        else out.push(`<line x1="${x}" y1="${cy - 4}" x2="${x}" y2="${cy + 4}" stroke="#1a202c" stroke-width="1.5"/>`)
      }
      out.push(`<text x="${panel.x + plotWidth + valueWidth - 4}" y="${cy + 4}" text-anchor="end" fill="#1a202c">${fixed(s.median, 2)}</text>`)
    })
  }
  lines.forEach((line, i) => {
    const y = top + i * rowHeight + rowHeight / 2 + 4
    if (line.heading !== undefined) {
      out.push(`<text x="10" y="${y}" font-weight="bold" fill="#2d3748">${escapeXml(line.heading)}</text>`)
    } else {
      const weight = line.row.variant.includes('plugin') ? ' font-weight="bold"' : ''
      out.push(`<text x="${labelWidth - 10}" y="${y}" text-anchor="end"${weight}>${escapeXml(line.row.label)}</text>`)
    }
  })
  const target = Object.fromEntries(summary.targets.map((t) => [t.id, t]))
  const legendY = top + plotHeight + 40
  out.push(`<text x="10" y="${legendY}" fill="#c0392b">dashed: targets 0.97 × bare (direct TLS: ${target.tls?.status ?? '—'}), 0.95 × bare (behind nginx, cache hits: ${target['nginx-hit']?.status ?? '—'}) and 0.6 × bare (a new certificate each request: ${target['cold-rps']?.status ?? '—'})</text>`)
  out.push(`<text x="10" y="${legendY + 18}" fill="#555">${escapeXml(machineLine(meta))}; ${escapeXml(meta.date)}; reproduce: ${escapeXml(meta.command)}</text>`)
  out.push('</svg>')
  return out.join('\n') + '\n'
}
