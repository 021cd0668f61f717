// A server under test, in its own process so that its CPU time (process.cpuUsage) and peak memory are its
// own and not the load generator's. Driven over IPC by lib/child.js:
//   → { type: 'start', variant, certs, options }   ← { type: 'listening', port }
//   → { type: 'usage' }                            ← { type: 'usage', cpu, maxRSS }
//   → { type: 'profile-start' }                    ← { type: 'profiling' }
//   → { type: 'profile-stop', file }               ← { type: 'profiled' }  (V8 CPU profile, as node --cpu-prof writes)
//   → { type: 'close' }                            (closes the server, then the process exits)
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { buildApp } from './apps.js'

let app = null
let session = null

async function start (message) {
  app = await buildApp(message.variant, message.certs, message.options)
  await app.listen({ host: '127.0.0.1', port: 0 })
  process.send({ type: 'listening', port: app.server.address().port })
}

function usage () {
  const cpu = process.cpuUsage()
  // resourceUsage().maxRSS is in kilobytes: the peak resident set since the process started.
  process.send({ type: 'usage', cpu: cpu.user + cpu.system, maxRSS: process.resourceUsage().maxRSS * 1024 })
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
