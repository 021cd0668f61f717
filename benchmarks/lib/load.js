// The load generator: undici dispatchers kept busy by a fixed number of in-flight requests for a fixed time.
import { Client, Pool } from 'undici'

/**
 * A pool of keep-alive connections to `origin`, presenting `client` (`{ cert, key }`) and trusting `ca`.
 * `pipelining` is requests in flight per connection: HTTP/1.1 pipelining, or concurrent streams with `allowH2`.
 */
export function pool (origin, { ca, client, connections, pipelining, allowH2 = false }) {
  return new Pool(origin, {
    connections,
    pipelining,
    allowH2,
    keepAliveTimeout: 60_000,
    connect: { ca, cert: client.cert, key: client.key, servername: 'localhost', rejectUnauthorized: true }
  })
}

/** One single-connection client per certificate: each connection presents its own certificate. */
export function clientPerCertificate (origin, { ca, clients }) {
  return clients.map((client) => new Client(origin, {
    pipelining: 1,
    keepAliveTimeout: 60_000,
    connect: { ca, cert: client.cert, key: client.key, servername: 'localhost', rejectUnauthorized: true }
  }))
}

/** GET / once and return `{ statusCode, body }` (parsed JSON when it is JSON). */
export async function probe (dispatcher) {
  const response = await dispatcher.request({ path: '/', method: 'GET' })
  const text = await response.body.text()
  let body = text
  try { body = JSON.parse(text) } catch {}
  return { statusCode: response.statusCode, body }
}

/**
 * Sends GET / from `inflight` concurrent loops for `durationMs`, spread over `dispatchers` round-robin.
 * Returns `{ requests, errors, elapsedMs }`: requests answered 200, anything else (status or network error).
 */
export async function round (dispatchers, { durationMs, inflight }) {
  const list = Array.isArray(dispatchers) ? dispatchers : [dispatchers]
  let next = 0
  let requests = 0
  let errors = 0
  const started = performance.now()
  const deadline = started + durationMs
  async function loop () {
    while (performance.now() < deadline) {
      const dispatcher = list[next]
      next = next + 1 === list.length ? 0 : next + 1
      try {
        const response = await dispatcher.request({ path: '/', method: 'GET' })
        await response.body.dump()
        if (response.statusCode === 200) requests++
        else errors++
      } catch {
        errors++
      }
    }
  }
  await Promise.all(Array.from({ length: inflight }, loop))
  return { requests, errors, elapsedMs: performance.now() - started }
}

export async function closeAll (dispatchers) {
  await Promise.all((Array.isArray(dispatchers) ? dispatchers : [dispatchers]).map((d) => d.destroy()))
}
