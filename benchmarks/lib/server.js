// A server under test, in its own process so that its CPU time (process.cpuUsage) and peak memory are its
// own and not the load generator's. Driven over IPC by lib/child.js:
//   → { type: 'start', variant, certs, options }   ← { type: 'listening', port }
//   → { type: 'usage' }                            ← { type: 'usage', cpu, maxRSS, rss, heapUsed, cache }
//   → { type: 'profile-start' }                    ← { type: 'profiling' }
//   → { type: 'profile-stop', file }               ← { type: 'profiled' }  (V8 CPU profile, as node --cpu-prof writes)
//   → { type: 'close' }                            (closes the server, then the process exits)
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { PerformanceObserver } from 'node:perf_hooks'
import { getHeapSpaceStatistics } from 'node:v8'
import { buildApp } from './apps.js'

let app = null
let session = null
// Garbage collections since start, by kind (minor: scavenges of the young generation): GC work per request is a
// figure that CPU contention does not move, unlike CPU time.
const gc = { minor: 0, major: 0, ms: 0 }
new PerformanceObserver(function collected (list) {
  for (const entry of list.getEntries()) {
    if (entry.detail?.kind === 1) gc.minor++
    else gc.major++
    gc.ms += entry.duration
  }
}).observe({ entryTypes: ['gc'] })

function youngGeneration () {
  const space = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')
  return space === undefined ? null : space.space_size
}

async function start (message) {
  app = await buildApp(message.variant, message.certs, message.options)
  await app.listen({ host: '127.0.0.1', port: 0 })
  process.send({ type: 'listening', port: app.server.address().port })
}

function usage () {
  const cpu = process.cpuUsage()
  // resourceUsage().maxRSS is in kilobytes: the peak resident set since the process started.
  const memory = process.memoryUsage()
  // The plugin's forwarded-certificate cache, when the variant has the plugin: how full it is under churn.
  const cache = app?.clientCert?.stats().certificates ?? null
  process.send({ type: 'usage', cpu: cpu.user + cpu.system, maxRSS: process.resourceUsage().maxRSS * 1024, rss: memory.rss, heapUsed: memory.heapUsed, cache, gc: { ...gc }, newSpace: youngGeneration() })
}

// The inspector's profiler rather than --cpu-prof, so the profile holds the loaded window only, not start-up.
async function profileStart () {
  session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval: 200 })
  await session.post('Profiler.start')
  process.send({ type: 'profiling' })
}

async function profileStop (message) {
  const { profile } = await session.post('Profiler.stop')
  session.disconnect()
  session = null
  writeFileSync(message.file, JSON.stringify(profile))
  process.send({ type: 'profiled' })
}

async function close () {
  if (app !== null) await app.close()
  process.disconnect()
}

const handlers = { start, usage, 'profile-start': profileStart, 'profile-stop': profileStop, close }

process.on('message', function onMessage (message) {
  Promise.resolve().then(() => handlers[message.type](message)).catch(function fail (error) {
    process.send({ type: 'error', message: error.stack ?? String(error) })
    process.exitCode = 1
    process.disconnect()
  })
})
process.on('disconnect', function orphaned () {
  // The parent went away (crash, Ctrl-C): never linger as a listening orphan.
  setTimeout(() => process.exit(), 2000).unref()
  if (app !== null) app.close().then(() => process.exit(), () => process.exit(1))
})
