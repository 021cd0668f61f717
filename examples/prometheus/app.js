// Turns the plugin's decisions into Prometheus metrics with prom-client: every authentication decision is
// published on a diagnostics channel (README, "Observability"); this app counts them and records how many days
// the presented certificates have left, and serves both on /metrics. `server.js` runs it.
import Fastify from 'fastify'
import fastifyClientCert, { decisionChannelName } from 'fastify-client-cert'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { Counter, Histogram, Registry } from 'prom-client'

const DAY = 24 * 3600_000

/**
 * Why a decision went the way it did, as a label with few values: a refusal's error code, or for an admitted
 * request the state of its certificate. Never a name, serial or verify text: labels must stay few.
 */
function reasonOf (decision) {
  if (decision['client_cert.outcome'] === 'refused') return decision['error.type']
  if (decision['client_cert.verified'] === null) return 'no_certificate'
  return decision['client_cert.verified'] ? 'verified' : 'unverified'
}

/**
 * @param {object} options
 * @param {{ key: string, cert: string, ca: string }} options.https the server's key and certificate, and the CA(s) of client certificates
 * @param {boolean | object} [options.logger]
 */
export function build ({ https, logger = false }) {
  const app = Fastify({ logger, https: { ...https, requestCert: true, rejectUnauthorized: false } })

  const registry = new Registry()
  const decisions = new Counter({
    name: 'client_cert_decisions_total',
    help: 'Client certificate authentication decisions, by outcome and reason',
    labelNames: ['outcome', 'reason'],
    registers: [registry]
  })
  const expiry = new Histogram({
    name: 'client_cert_expiry_days',
    help: 'Days until the verified client certificate of each decision expires',
    buckets: [1, 7, 14, 30, 90, 365],
    registers: [registry]
  })

  // The channel is process-wide: with several apps in one process, tell them apart by `decision.request.server`.
  function onDecision (decision) {
    decisions.inc({ outcome: decision['client_cert.outcome'], reason: reasonOf(decision) })
    const notAfter = decision['tls.client.not_after']
    if (notAfter !== null) expiry.observe((Date.parse(notAfter) - Date.now()) / DAY)
  }
  subscribe(decisionChannelName, onDecision)
  app.addHook('onClose', async function stopMetrics () { unsubscribe(decisionChannelName, onDecision) })

  // A plugin of its own, so that build() stays synchronous and the registration is still awaited before any
  // route is declared (a route declared before it would run unprotected).
  app.register(async function routes (app) {
    await app.register(fastifyClientCert, { required: true })

    app.get('/', async (request) => ({ hello: request.clientCert.commonName }))
    // Only certificates from the Platform team: others are refused with 403 (FST_CLIENT_CERT_FORBIDDEN).
    app.get('/admin', { config: { clientCert: { allow: { subjects: [{ OU: 'Platform' }] } } } }, async () => ({ admin: true }))
    // Open to all: a certificate is optional here, and one that is not verified is still let in.
    app.get('/hello', { config: { clientCert: { required: false } } }, async (request) => ({
      certificate: request.clientCert === null ? 'none' : request.clientCert.verified ? 'verified' : 'not verified'
    }))
    // The scraper presents no certificate.
    app.get('/metrics', { config: { clientCert: false } }, async (_request, reply) => {
      reply.type(registry.contentType)
      return registry.metrics()
    })
  })

  return app
}
