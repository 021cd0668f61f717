// From rounds to figures: medians with their min–max spread, ratios taken pair by pair (each variant against
// the baseline round of the same cycle), and the targets of issues 6, 14 and 15.

/** `{ median, min, max, n }` of the finite numbers in `values`, or null when there are none. */
export function spread (values) {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b)
  if (sorted.length === 0) return null
  const mid = sorted.length >> 1
  const median = sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
  return { median, min: sorted[0], max: sorted.at(-1), n: sorted.length }
}

/**
 * One row per variant of an HTTP suite: req/s, server CPU µs per request, and both as ratios to the baseline's
 * round of the same cycle.
 */
export function summarizeSuite (suite) {
  const baseline = new Map(suite.rounds.filter((r) => r.variant === suite.baseline).map((r) => [r.cycle, r]))
  return suite.variants.map((variant) => {
    const rounds = suite.rounds.filter((r) => r.variant === variant.id)
    const paired = rounds.filter((r) => baseline.has(r.cycle))
    const isBaseline = variant.id === suite.baseline
    return {
      suite: suite.id,
      variant: variant.id,
      label: variant.label,
      baseline: isBaseline,
      rps: spread(rounds.map((r) => r.rps)),
      cpuUsPerRequest: spread(rounds.map((r) => r.cpuUsPerRequest)),
      rpsRatio: isBaseline ? null : spread(paired.map((r) => r.rps / baseline.get(r.cycle).rps)),
      cpuRatio: isBaseline ? null : spread(paired.map((r) => r.cpuUsPerRequest / baseline.get(r.cycle).cpuUsPerRequest)),
      extraCpuUs: isBaseline ? null : spread(paired.map((r) => r.cpuUsPerRequest - baseline.get(r.cycle).cpuUsPerRequest)),
      errors: rounds.reduce((sum, r) => sum + r.errors, 0),
      peakRssBytes: suite.peakRss[variant.id] ?? null
    }
  })
}

/** ns per call for every micro task, and the ratios the targets and README quote. */
export function summarizeMicro (micro) {
  const tasks = micro.tasks.map(({ name, group }) => ({
    name,
    group,
    ns: spread(micro.rounds.map((round) => round.results[name]))
  }))
  const ratios = micro.ratios.map(({ id, label, numerator, denominator }) => ({
    id,
    label,
    ratio: spread(micro.rounds.map((round) => round.results[numerator] / round.results[denominator]))
  }))
  return { tasks, ratios }
}

/** The micro task of a preset's cold path (lib/micro.js names it so). */
export function coldTaskName (preset) {
  return `cold: ${preset} headers → identity`
}

function row (summary, suite, variant) {
  return summary.http.find((r) => r.suite === suite && r.variant === variant) ?? null
}

/**
 * PASS / MISS for each target of issue 6, judged on the median; `null` value when the figure could not be
 * measured (e.g. no nginx).
 */
export function evaluateTargets (summary) {
  const tls = row(summary, 'tls', 'tls-plugin')?.rpsRatio ?? null
  const nginx = row(summary, 'nginx-hit', 'proxy-plugin')?.rpsRatio ?? null
  const coldDecode = summary.micro?.ratios.find((r) => r.id === 'cold-decode')?.ratio ?? null
  const dn = summary.micro?.tasks.find((t) => t.name === 'parseDN, typical DN')?.ns ?? null
  const cold = row(summary, 'cold', 'proxy-plugin-cold')
  const churn = summary.churn ?? null
  const crl = summary.crlScale ?? null
  const point = (v) => v === null || v === undefined ? null : { median: v, min: v, max: v, n: 1 }
  const targets = [
    { id: 'tls', text: 'direct TLS: plugin ≥ 0.97 × bare req/s', value: tls, unit: '×', pass: (v) => v >= 0.97, suite: 'tls', variant: 'tls-plugin' },
    { id: 'nginx-hit', text: 'behind nginx, cache hits: plugin ≥ 0.95 × bare-behind-nginx req/s', value: nginx, unit: '×', pass: (v) => v >= 0.95, suite: 'nginx-hit', variant: 'proxy-plugin' },
    { id: 'cold-decode', text: 'cold header decode ≤ 1.3 × new X509Certificate(der)', value: coldDecode, unit: '×', pass: (v) => v <= 1.3, task: 'nginx header → X509Certificate (cold decode)' },
    { id: 'dn', text: 'typical DN parse < 1 µs', value: dn, unit: 'ns', pass: (v) => v < 1000, task: 'parseDN, typical DN' },
    // Issue 14: the cold path.
    { id: 'cold-rps', text: 'behind nginx, a new certificate each request: ≥ 0.6 × bare req/s', value: cold?.rpsRatio ?? null, unit: '×', pass: (v) => v >= 0.6, suite: 'cold', variant: 'proxy-plugin-cold' },
    { id: 'cold-cpu', text: 'behind nginx, a new certificate each request: ≤ 25 µs server CPU over bare', value: cold?.extraCpuUs ?? null, unit: 'µs', pass: (v) => v <= 25, suite: 'cold', variant: 'proxy-plugin-cold' },
    ...['nginx', 'apache', 'envoy', 'aws-alb'].map((preset) => ({
      id: `cold-${preset}`,
      text: `cold, preset ${preset} (PEM): headers → identity ≤ 15 µs`,
      value: summary.micro?.tasks.find((t) => t.name === coldTaskName(preset))?.ns ?? null,
      unit: 'ns',
      pass: (v) => v <= 15_000,
      task: coldTaskName(preset)
    })),
    // Issue 15: a verdict once fetched costs (almost) nothing per request.
    ...[['crl', 'CRL distribution point'], ['ocsp', 'OCSP']].map(([kind, what]) => ({
      id: `revocation-${kind}`,
      text: `cached revocation verdict (${what}): ≥ 0.98 × the plugin without revocation req/s`,
      value: row(summary, 'revocation', `tls-plugin-${kind}`)?.rpsRatio ?? null,
      unit: '×',
      pass: (v) => v >= 0.98,
      suite: 'revocation',
      variant: `tls-plugin-${kind}`
    })),
    // Issue 15: a CRL of a million entries.
    { id: 'crl-stall', text: 'CRL of 1,000,000 entries: longest event-loop delay during RevocationList.load ≤ 50 ms (DER or PEM)', value: crl === null ? null : point(Math.max(crl.forms.der.maxEventLoopDelayMs, crl.forms.pem.maxEventLoopDelayMs)), unit: 'ms', pass: (v) => v <= 50 },
    { id: 'crl-lookup', text: 'CRL of 1,000,000 entries: a check (listed or not) < 1 µs', value: crl === null ? null : point(Math.max(crl.forms.der.lookupListedNs, crl.forms.der.lookupNotListedNs)), unit: 'ns', pass: (v) => v < 1000 },
    { id: 'crl-memory', text: 'CRL of 1,000,000 entries: memory kept besides the CRL\'s own bytes ≤ 24 B an entry', value: crl === null ? null : point(crl.forms.der.retainedBytesPerEntry), unit: 'B', pass: (v) => v <= 24 },
    { id: 'churn-rss', text: 'churn: peak RSS after warm-up ≤ 1.15 × RSS at the end of warm-up', value: churn?.rssAtWarmMB == null ? null : point(churn.rssPeakAfterWarmMB / churn.rssAtWarmMB), unit: '×', pass: (v) => v <= 1.15 }
  ]
  return targets.map(({ pass, ...target }) => ({
    ...target,
    status: target.value === null ? 'NOT RUN' : pass(target.value.median) ? 'PASS' : 'MISS'
  }))
}
