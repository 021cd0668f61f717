// Parent side of lib/server.js: starts a server variant in a child process and reads its CPU time and
// peak memory between rounds.
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

const entry = fileURLToPath(new URL('./server.js', import.meta.url))
const replyTimeoutMs = 30_000
// Every server gets the same young generation, fixed at the size V8 grows it to under this load (8 MB
// semi-spaces: `new_space` reads 16 MB). Left to V8,
// its size depends on each process's history (it grows with surviving objects, shrinks when the process
// idles): in one run the bare route's server sat at 2–4 MB and scavenged 5 × more often per request than the
// plugin's at 16 MB, which made the plugin look cheaper than no authentication at all.
export const SERVER_V8_FLAGS = ['--min-semi-space-size=8', '--max-semi-space-size=8']

export class ServerProcess {
  port = 0
  #child
  #exited

  constructor (child) {
    this.#child = child
    this.#exited = once(child, 'exit')
  }

  /**
   * @param {string} variant see apps.js
   * @param {object} certs `{ ca, server }`
   * @param {object} [options] passed to buildApp; `execArgv` (e.g. `['--cpu-prof', …]`) goes to node
   */
  static async start (variant, certs, options = {}) {
    const { execArgv = [], ...appOptions } = options
    const child = fork(entry, [], { execArgv: [...SERVER_V8_FLAGS, ...execArgv], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const server = new ServerProcess(child)
    child.send({ type: 'start', variant, certs: { ca: certs.ca, server: certs.server }, options: appOptions })
    server.port = (await server.#reply('listening')).port
    return server
  }

  /** The server's process id (to attach strace or perf to it). */
  get pid () {
    return this.#child.pid
  }

  /** `{ cpu: µs of user + system CPU since start, maxRSS: bytes, rss, heapUsed: bytes now, cache: plugin's cache stats or null }` */
  async usage () {
    this.#child.send({ type: 'usage' })
    return await this.#reply('usage')
  }

  /** Profiles the server's CPU while `work()` runs; writes the V8 profile to `file`. */
  async profile (file, work) {
    this.#child.send({ type: 'profile-start' })
    await this.#reply('profiling')
    try {
      return await work()
    } finally {
      this.#child.send({ type: 'profile-stop', file })
      await this.#reply('profiled')
    }
  }

  async close () {
    if (this.#child.connected) this.#child.send({ type: 'close' })
    const timer = setTimeout(() => this.#child.kill(), 10_000)
    await this.#exited
    clearTimeout(timer)
  }

  async #reply (type) {
    const child = this.#child
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`server process did not answer '${type}' in time`)), replyTimeoutMs)
      function onMessage (message) {
        if (message.type === type) done(null, message)
        else if (message.type === 'error') done(new Error(`server process failed: ${message.message}`))
      }
      function onExit (code) { done(new Error(`server process exited (${code}) before '${type}'`)) }
      function done (error, message) {
        clearTimeout(timer)
        child.off('message', onMessage)
        child.off('exit', onExit)
        if (error === null) resolve(message)
        else reject(error)
      }
      child.on('message', onMessage)
      child.once('exit', onExit)
    })
  }
}
