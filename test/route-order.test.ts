import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { Writable } from 'node:stream'
import { fastifyClientCert, type FastifyClientCertOptions } from '../lib/index.js'

// Routes the plugin's onRoute hook never saw run without it: the app warns once at startup, naming them.

const options: FastifyClientCertOptions = { mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1' } }

function appWithLog (): { app: FastifyInstance, warnings: () => Array<{ msg: string, routes?: string[] }> } {
  const lines: Array<{ level: number, msg: string, routes?: string[] }> = []
  const stream = new Writable({
    write (chunk, _encoding, callback) {
      lines.push(JSON.parse(String(chunk)))
      callback()
    }
  })
  const app = Fastify({ logger: { level: 'warn', stream } })
  return { app, warnings: () => lines.filter((line) => line.level === 40 && line.msg.includes('declared before the plugin')) }
}

const ok = async () => 'ok'

t.test('routes declared before the plugin is registered are named in one warning at startup', async (t) => {
  const { app, warnings } = appWithLog()
  app.get('/early', ok)
  app.post('/early-post', ok)
  app.route({ method: ['PUT', 'DELETE'], url: '/early-many', handler: ok })
  await app.register(fastifyClientCert, options)
  app.get('/late', ok)
  await app.ready()
  t.equal(warnings().length, 1)
  t.same(warnings()[0]!.routes, ['GET /early', 'POST /early-post', 'PUT,DELETE /early-many'])
  t.match(warnings()[0]!.msg, 'GET /early, POST /early-post, PUT,DELETE /early-many')
  t.notMatch(warnings()[0]!.msg, '/late')
  // They are indeed unprotected: the warning is about a real hole.
  t.equal((await app.inject('/early')).statusCode, 200)
  t.equal((await app.inject('/late')).statusCode, 401)
  await app.close()
})

t.test('routes declared after the plugin: no warning', async (t) => {
  const { app, warnings } = appWithLog()
  await app.register(fastifyClientCert, options)
  app.get('/a', ok)
  app.get('/open', { config: { clientCert: false } }, ok)
  app.register(async function child (child) { child.get('/b', ok) }, { prefix: '/child' })
  await app.ready()
  t.same(warnings(), [])
  await app.close()
})

t.test('a register that is not awaited leaves the routes declared right after it unprotected: named', async (t) => {
  const { app, warnings } = appWithLog()
  app.register(fastifyClientCert, options)
  app.get('/too-soon', ok)
  await app.ready()
  t.same(warnings()[0]!.routes, ['GET /too-soon'])
  t.equal((await app.inject('/too-soon')).statusCode, 200)
  await app.close()
})

t.test('a context registered before the plugin is named with its routes; HEAD twins are not repeated', async (t) => {
  const { app, warnings } = appWithLog()
  app.register(async function routes (child) {
    child.get('/x', ok)
    child.head('/only-head', ok)
  }, { prefix: '/v1' })
  await app.register(fastifyClientCert, options)
  await app.ready()
  t.same(warnings()[0]!.routes, ['GET /v1/x', 'HEAD /v1/only-head'])
  await app.close()
})

t.test('a route declared before with config.clientCert: false is not named: it runs without the plugin, as it asks', async (t) => {
  const { app, warnings } = appWithLog()
  app.get('/health', { config: { clientCert: false } }, ok)
  app.get('/maybe', { config: { clientCert: { required: false } } }, ok)
  await app.register(fastifyClientCert, options)
  await app.ready()
  // A clientCert object, unlike false, asks for the plugin: its route is named.
  t.same(warnings()[0]!.routes, ['GET /maybe'])
  await app.close()
})

t.test('only the scope the plugin is registered in counts: sibling and parent routes are not named', async (t) => {
  const { app, warnings } = appWithLog()
  app.get('/public', ok)
  app.register(async function sibling (sibling) { sibling.get('/other', ok) })
  app.register(async function api (api) {
    api.get('/api-early', ok)
    await api.register(fastifyClientCert, options)
    api.get('/api-late', ok)
  })
  await app.ready()
  t.equal(warnings().length, 1)
  t.same(warnings()[0]!.routes, ['GET /api-early'])
  await app.close()
})

t.test('an app created before the module was loaded has no record: no warning, no failure', async (t) => {
  // Simulated by a Fastify instance that bypassed the initialization channel: an object with no record.
  const { app, warnings } = appWithLog()
  const { routeCoverage } = await import('../lib/route-coverage.js')
  t.equal(routeCoverage(Object.create(null) as FastifyInstance).unseen(), null)
  await app.register(fastifyClientCert, options)
  await app.ready()
  t.same(warnings(), [])
  await app.close()
})
