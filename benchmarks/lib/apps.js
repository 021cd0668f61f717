// The servers under test. Every variant answers GET / with the same small JSON naming the caller (or null),
// so the only difference between two variants is how the caller is authenticated.
import fastifyPassport from '@fastify/passport'
import fastifySecureSession from '@fastify/secure-session'
import Fastify from 'fastify'
import { randomBytes } from 'node:crypto'
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
 * @param {object} [options] `{ cacheMax }` for proxy-plugin
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
    await app.register(fastifyClientCert)
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
