import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls'
import { Agent } from 'undici'
import { fastifyClientCert, type FastifyClientCertOptions } from '../../lib/index.js'
import { getCorpus, type LeafName } from './certs.js'

export interface TlsAppOptions {
  plugin?: FastifyClientCertOptions
  https?: Record<string, unknown>
  http2?: boolean
  logger?: FastifyServerOptions['logger']
  routes?: (app: FastifyInstance) => void
}

/** A Fastify app over HTTPS asking for client certificates, listening on 127.0.0.1 with port 0. */
export async function startTlsApp (options: TlsAppOptions = {}): Promise<{ app: FastifyInstance, url: string, port: number }> {
  const corpus = await getCorpus()
  const server = corpus.leaves.serverauth
  const https = {
    key: server.keyPem,
    cert: server.chainPem,
    ca: corpus.caPem,
    requestCert: true,
    rejectUnauthorized: false,
    ...options.https
  }
  const logger = options.logger ?? false
  const app = (options.http2 === true
    ? Fastify({ http2: true, https: { allowHTTP1: true, ...https }, logger } as unknown as FastifyServerOptions)
    : Fastify({ https, logger } as unknown as FastifyServerOptions)) as unknown as FastifyInstance
  await app.register(fastifyClientCert, options.plugin ?? {})
  if (options.routes !== undefined) options.routes(app)
  else defaultRoutes(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  return { app, url: `https://localhost:${port}`, port }
}

/** Routes that echo the identity: /whoami (required), /maybe (optional), /open (plugin off). */
export function defaultRoutes (app: FastifyInstance): void {
  app.get('/whoami', async (request) => toJSON(request.clientCert))
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => ({ clientCert: toJSON(request.clientCert) }))
  app.get('/open', { config: { clientCert: false } }, async (request) => ({ clientCert: toJSON(request.clientCert) }))
}

export function toJSON (identity: unknown): unknown {
  if (identity === null || identity === undefined) return null
  const { certificate, ...rest } = identity as { certificate: unknown }
  return { ...rest, certificate: certificate === null ? null : 'X509Certificate' }
}

/** An undici Agent presenting `leaf` (or no certificate) and trusting the corpus CA. */
export async function clientAgent (leaf: LeafName | null, options: { chain?: boolean, allowH2?: boolean, connections?: number, localAddress?: string, connect?: Record<string, unknown> } = {}): Promise<Agent> {
  const corpus = await getCorpus()
  const credentials = leaf === null
    ? {}
    : { cert: options.chain === true ? corpus.leaves[leaf].chainPem : corpus.leaves[leaf].certPem, key: corpus.leaves[leaf].keyPem }
  return new Agent({
    connect: { ca: corpus.caPem, servername: 'localhost', ...credentials, ...options.connect },
    allowH2: options.allowH2 ?? false,
    connections: options.connections ?? 1,
    // undici takes the source address from the client options, not from `connect`.
    ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress })
  })
}

/** A raw TLS connection for session-resumption tests: sends one HTTP/1.1 request and resolves with status and body. */
export async function rawRequest (port: number, path: string, options: ConnectionOptions): Promise<{ status: number, body: string, reused: boolean, protocol: string | null, session: Buffer | undefined }> {
  const corpus = await getCorpus()
  return await new Promise((resolve, reject) => {
    let session: Buffer | undefined
    let reused = false
    let protocol: string | null = null
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: corpus.caPem, ...options })
    socket.on('session', (data) => { session = data })
    socket.once('secureConnect', () => {
      reused = socket.isSessionReused()
      protocol = socket.getProtocol()
      socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`)
    })
    let text = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk) => { text += chunk })
    socket.on('error', reject)
    socket.on('close', () => {
      const [head = '', body = ''] = text.split('\r\n\r\n')
      resolve({ status: Number(head.split(' ')[1]), body: decodeChunked(head, body), reused, protocol, session })
    })
  })
}

function decodeChunked (head: string, body: string): string {
  if (!/transfer-encoding: chunked/i.test(head)) return body
  let out = ''
  let rest = body
  while (rest.length > 0) {
    const lineEnd = rest.indexOf('\r\n')
    const size = parseInt(rest.slice(0, lineEnd), 16)
    if (size === 0) break
    out += rest.slice(lineEnd + 2, lineEnd + 2 + size)
    rest = rest.slice(lineEnd + 2 + size + 2)
  }
  return out
}
