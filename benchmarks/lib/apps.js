// The servers under test. Every variant answers GET / with the same small JSON naming the caller (or null),
// so the only difference between two variants is how the caller is authenticated.
import fastifyPassport from '@fastify/passport'
import fastifySecureSession from '@fastify/secure-session'
import Fastify from 'fastify'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { Strategy as ClientCertStrategy } from 'passport-client-cert'
import fastifyClientCert from '../../dist/esm/index.js'

function https (certs) {
  return {
    key: certs.server.key,
    cert: certs.server.cert,
    ca: certs.ca,
    requestCert: true,
    rejectUnauthorized: false
  }
}

/** No authentication at all: the baseline every ratio divides by. */
function bareRoutes (app) {
  app.get('/', async function bare () {
    return { user: null }
  })
}

/**
 * The control: the bare route with one no-op route-level `onRequest` hook, where the plugin puts its own. It
 * tells what running any hook costs apart from what the plugin's hook does.
 */
function controlRoutes (app) {
  app.get('/', { onRequest: function noop (_request, _reply, done) { done() } }, async function control () {
    return { user: null }
  })
}

function pluginRoutes (app) {
  app.get('/', async function withPlugin (request) {
    return { user: request.clientCert.commonName }
  })
}

/**
 * The revocation row's CRL distribution point or OCSP responder: a node:http server on 127.0.0.1, in the server's
 * own process, answering every request with one file (made by lib/certs.js). The plugin fetches it once, for
 * its first request, and uses the cached verdict from then on; closed with the app.
 * @returns {Promise<string>} its URL
 */
async function revocationServer (app, file, type) {
  const body = readFileSync(file)
  const server = createServer(function serveVerdict (request, response) {
    request.resume()
    request.on('end', () => response.writeHead(200, { 'content-type': type, 'content-length': body.length }).end(body))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  app.addHook('onClose', function closeRevocationServer (_app, done) {
    server.closeAllConnections()
    server.close(() => done())
  })
  return `http://127.0.0.1:${server.address().port}/`
}

/** `revocation` for the plugin: distribution points from `options.crlPath`, OCSP from `options.ocspResponsePath`. */
async function revocationOptions (app, options) {
  if (options.crlPath !== undefined) {
    return { distributionPoints: { urls: [await revocationServer(app, options.crlPath, 'application/pkix-crl')] } }
  }
  if (options.ocspResponsePath !== undefined) {
    return { ocsp: { url: await revocationServer(app, options.ocspResponsePath, 'application/ocsp-response'), nonce: false } }
  }
  return null
}

/**
 * What most applications write today: read the peer certificate on every request, check `authorized`, keep a
 * few fields. `getPeerCertificate()` builds a fresh object (subject, issuer, SANs as text, hex fingerprints…)
 * from the certificate each time it is called.
 */
function handHookRoutes (app) {
  app.decorateRequest('identity', null)
  app.addHook('onRequest', async function certificateHook (request, reply) {
    const socket = request.raw.socket
    const certificate = socket.getPeerCertificate()
    if (!socket.authorized || certificate === null || certificate.subject === undefined) {
      reply.code(401)
      return reply.send({ error: 'client certificate required' })
    }
    request.identity = {
      commonName: certificate.subject.CN,
      organization: certificate.subject.O,
      serialNumber: certificate.serialNumber,
      fingerprint256: certificate.fingerprint256
    }
  })
  app.get('/', async function withHook (request) {
    return { user: request.identity.commonName }
  })
}

/**
 * `@fastify/passport` with `passport-client-cert`, as their READMEs set them up: @fastify/passport requires a
 * session plugin (it registers @fastify/flash, which declares a dependency on `request.session`), so
 * @fastify/secure-session is registered; authentication itself is stateless (`session: false`).
 */
async function passportRoutes (app) {
  await app.register(fastifySecureSession, { key: randomBytes(32), cookie: { path: '/' } })
  fastifyPassport.use('client-cert', new ClientCertStrategy(function verifyCertificate (certificate, done) {
    done(null, { commonName: certificate.subject.CN, fingerprint256: certificate.fingerprint256 })
  }))
  await app.register(fastifyPassport.initialize())
  app.get('/', { preValidation: fastifyPassport.authenticate('client-cert', { session: false }) }, async function withPassport (request) {
    return { user: request.user.commonName }
  })
}

/**
 * Builds the Fastify app of a variant.
 * @param {string} variant `<transport>-<kind>`: transport tls | h2 | proxy (plain HTTP, behind a proxy); kind bare |
 *   control | plugin | hook | passport (hook and passport: tls only)
 * @param {object} certs `{ ca, server: { cert, key } }`
 * @param {object} [options] `{ cacheMax }` for proxy-plugin; `{ crlPath }` or `{ ocspResponsePath }` for tls-plugin (the
 *   plugin with revocation, served from a local server)
 */
export async function buildApp (variant, certs, options = {}) {
  const [transport, kind] = variant.split('-')
  const app = transport === 'h2'
    ? Fastify({ http2: true, https: https(certs) })
    : transport === 'tls'
      ? Fastify({ https: https(certs) })
      : Fastify()
  if (kind === 'bare') {
    bareRoutes(app)
  } else if (kind === 'control') {
    controlRoutes(app)
  } else if (kind === 'plugin' && transport === 'proxy') {
    await app.register(fastifyClientCert, {
      mode: 'proxy',
      proxy: { preset: 'nginx', trust: ['127.0.0.1'] },
      ...(options.cacheMax === undefined ? {} : { cache: { max: options.cacheMax, ttl: 300_000 } })
    })
    pluginRoutes(app)
  } else if (kind === 'plugin') {
    const revocation = await revocationOptions(app, options)
    await app.register(fastifyClientCert, revocation === null ? {} : { revocation })
    pluginRoutes(app)
  } else if (kind === 'hook') {
    handHookRoutes(app)
  } else if (kind === 'passport') {
    await passportRoutes(app)
  } else {
    throw new Error(`unknown variant ${variant}`)
  }
  return app
}
