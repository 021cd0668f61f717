// Reads a V8 .cpuprofile (written by `node --cpu-prof`) into its top frames by self time, and by the total
// time of frames from a chosen file set (the plugin's dist/), which is what explains a missed target.
import { readFileSync } from 'node:fs'
import { relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../../', import.meta.url))

function frameName ({ functionName, url, lineNumber }) {
  const where = url === '' ? '' : ` ${url.startsWith('file://') ? relative(root, fileURLToPath(url)) : url}:${lineNumber + 1}`
  return `${functionName === '' ? '(anonymous)' : functionName}${where}`
}

/**
 * @param {string} file a .cpuprofile
 * @param {{ top?: number, inclusiveMatch?: string }} options `inclusiveMatch`: also rank frames whose URL holds
 *   this text by inclusive time (the time spent in them and everything they call)
 * @returns {{ totalMs: number, busyMs: number, self: Array<{ frame: string, ms: number, share: number }>, inclusive: Array<…> }}
 *   shares are of the busy (non-idle) time
 */
export function summarizeProfile (file, { top = 15, inclusiveMatch } = {}) {
  const profile = JSON.parse(readFileSync(file, 'utf8'))
  const byId = new Map(profile.nodes.map((node) => [node.id, { node, selfUs: 0, parent: null }]))
  for (const entry of byId.values()) {
    for (const child of entry.node.children ?? []) byId.get(child).parent = entry
  }
  let totalUs = 0
  let idleUs = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0
    const entry = byId.get(profile.samples[i])
    entry.selfUs += delta
    totalUs += delta
    if (entry.node.callFrame.functionName === '(idle)') idleUs += delta
  }
  const busyUs = totalUs - idleUs
  const self = new Map()
  const inclusive = new Map()
  for (const entry of byId.values()) {
    // Idle time says how loaded the process was, not where its time went.
    if (entry.selfUs === 0 || entry.node.callFrame.functionName === '(idle)') continue
    const name = frameName(entry.node.callFrame)
    self.set(name, (self.get(name) ?? 0) + entry.selfUs)
    if (inclusiveMatch === undefined) continue
    // Each sample counts once per matching frame name on its stack, however deep the recursion.
    const seen = new Set()
    for (let up = entry; up !== null; up = up.parent) {
      const frame = up.node.callFrame
      if (!frame.url.includes(inclusiveMatch)) continue
      const upName = frameName(frame)
      if (seen.has(upName)) continue
      seen.add(upName)
      inclusive.set(upName, (inclusive.get(upName) ?? 0) + entry.selfUs)
    }
  }
  const rank = (map) => [...map].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([frame, us]) => ({ frame, ms: us / 1000, share: busyUs === 0 ? 0 : us / busyUs }))
  return { totalMs: totalUs / 1000, busyMs: busyUs / 1000, self: rank(self), inclusive: rank(inclusive) }
}

export function formatProfile (summary) {
  const lines = [`  ${summary.totalMs.toFixed(0)} ms sampled, ${summary.busyMs.toFixed(0)} ms busy; top frames by self time (share of busy time):`]
  for (const { frame, ms, share } of summary.self) lines.push(`    ${(share * 100).toFixed(1).padStart(5)}%  ${ms.toFixed(0).padStart(6)} ms  ${frame}`)
  if (summary.inclusive.length > 0) {
    lines.push('  plugin frames by inclusive time (themselves and what they call):')
    for (const { frame, ms, share } of summary.inclusive) lines.push(`    ${(share * 100).toFixed(1).padStart(5)}%  ${ms.toFixed(0).padStart(6)} ms  ${frame}`)
  }
  return lines.join('\n')
}
