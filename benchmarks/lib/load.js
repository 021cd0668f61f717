// The load generator: undici dispatchers kept busy by a fixed number of in-flight requests for a fixed time,
// or new TLS connections, one request each.
import { connect, createSecureContext } from 'node:tls'
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

/** GET / once (with `headers` when given) and return `{ statusCode, body }` (parsed JSON when it is JSON). */
export async function probe (dispatcher, headers) {
  const response = await dispatcher.request({ path: '/', method: 'GET', headers })
  const text = await response.body.text()
  let body = text
  try { body = JSON.parse(text) } catch {}
  return { statusCode: response.statusCode, body }
}

/** A keep-alive pool over plain HTTP to a server that trusts this process as its proxy (headers sent as nginx would). */
export function plainPool (origin, { connections, pipelining }) {
  return new Pool(origin, { connections, pipelining, keepAliveTimeout: 60_000 })
}

const get = { path: '/', method: 'GET' }

/**
 * Sends GET / from `inflight` concurrent loops for `durationMs`, spread over `dispatchers` round-robin.
 * `headers()`, when given, makes each request's headers (e.g. the next certificate of a rotation).
 * `onAnswer()`, when given, is called after each request answered 200 (the churn samples with it).
 * Returns `{ requests, errors, elapsedMs }`: requests answered 200, anything else (status or network error).
 */
export async function round (dispatchers, { durationMs, inflight, headers, onAnswer, maxRequests = Infinity }) {
  const list = Array.isArray(dispatchers) ? dispatchers : [dispatchers]
  let next = 0
  let requests = 0
  let errors = 0
  const started = performance.now()
  const deadline = started + durationMs
  let sent = 0
  async function loop () {
    while (performance.now() < deadline && sent < maxRequests) {
      const dispatcher = list[next]
      next = next + 1 === list.length ? 0 : next + 1
      sent++
      try {
        const response = await dispatcher.request(headers === undefined ? get : { path: '/', method: 'GET', headers: headers() })
        await response.body.dump()
        if (response.statusCode === 200) {
          requests++
          onAnswer?.()
        } else {
          errors++
        }
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

const closeRequest = 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'

/** One TLS connection (full handshake: no session is offered for resumption), one request, then close. */
function handshakeRequest (port, tlsOptions) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ...tlsOptions })
    let head = ''
    socket.setEncoding('latin1')
    socket.once('secureConnect', () => socket.end(closeRequest))
    socket.on('data', (chunk) => { if (head.length < 16) head += chunk })
    socket.once('error', () => resolve(false))
    socket.once('close', () => resolve(head.startsWith('HTTP/1.1 200')))
  })
}

/**
 * Direct TLS with a new connection per request: `inflight` loops each connect, present `client`'s
 * certificate, send one GET / with `Connection: close` and wait for the close. Returns what round() returns.
 */
export async function handshakeRound (port, { ca, client, durationMs, inflight }) {
  // One client context for every connection: the load generator should not re-read its key each time.
  const tlsOptions = { secureContext: createSecureContext({ ca, cert: client.cert, key: client.key }), rejectUnauthorized: true }
  let requests = 0
  let errors = 0
  const started = performance.now()
  const deadline = started + durationMs
  async function loop () {
    while (performance.now() < deadline) {
      if (await handshakeRequest(port, tlsOptions)) requests++
      else errors++
    }
  }
  await Promise.all(Array.from({ length: inflight }, loop))
  return { requests, errors, elapsedMs: performance.now() - started }
}
