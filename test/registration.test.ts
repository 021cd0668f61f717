import t from 'tap'
import Fastify from 'fastify'
import { Writable } from 'node:stream'
import { ClientCertInvalidOptionError, fastifyClientCert } from '../lib/index.js'
import { getCorpus } from './helpers/certs.js'

async function httpsApp (https: Record<string, unknown> = {}, logger?: unknown) {
  const corpus = await getCorpus()
  return Fastify({
    https: { key: corpus.leaves.serverauth.keyPem, cert: corpus.leaves.serverauth.certPem, ca: corpus.caPem, ...https },
    logger: logger as never
  })
}

async function registrationError (app: ReturnType<typeof Fastify>, options: unknown): Promise<Error> {
  app.register(fastifyClientCert, options as never)
  try {
    await app.ready()
  } catch (error) {
    return error as Error
  }
  await app.close()
  throw new Error('registration did not fail')
}

t.test("mode 'tls' on a server without TLS names what to set", async (t) => {
  const error = await registrationError(Fastify(), {})
  t.ok(error instanceof ClientCertInvalidOptionError)
  t.equal((error as { code?: string }).code, 'FST_CLIENT_CERT_INVALID_OPTION')
  t.match(error.message, /mode.*https/)
})

t.test("mode 'tls' without requestCert names https.requestCert", async (t) => {
  const error = await registrationError(await httpsApp(), {})
  t.match(error.message, /https\.requestCert/)
})

t.test('wrong and unknown options are refused, naming the option', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ mod: 'tls' }, /option mod: is not an option/],
    [{ mode: 'mtls' }, /option mode: must be/],
    [{ required: 'yes' }, /option required: must be a boolean/],
    [{ mode: 'proxy' }, /option proxy: is required in mode 'proxy'/],
    [{ mode: 'proxy', proxy: { preset: 'nginx' } }, /option proxy\.trust: is required/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: [] } }, /option proxy\.trust: must be a non-empty list/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: ['not-an-ip'] } }, /option proxy\.trust:/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: [42] } }, /option proxy\.trust\[0\]: must be a string/],
    [{ mode: 'proxy', proxy: { preset: 'ngnix', trust: '127.0.0.1' } }, /option proxy\.preset: must be one of/],
    [{ mode: 'proxy', proxy: { trust: '127.0.0.1' } }, /option proxy: needs a preset or a headers mapping/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', headers: {}, trust: '127.0.0.1' } }, /option proxy: takes either preset or headers/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1', extra: 1 } }, /option proxy\.extra: is not an option/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1', maxHeaderBytes: 10 } }, /proxy\.maxHeaderBytes: must be at least 256/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1', maxHeaderBytes: -1 } }, /proxy\.maxHeaderBytes: must be a non-negative integer/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1', secret: 'x' } }, /proxy\.secret: must be \{ header, value \}/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1', secret: { header: 'x y', value: 'a'.repeat(16) } } }, /proxy\.secret\.header/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1', secret: { header: 'x-s', value: 'short' } } }, /proxy\.secret\.value: must be a string of at least 16/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1', secret: { header: 'x-s', value: 'a'.repeat(16), x: 1 } } }, /proxy\.secret\.x/],
    [{ mode: 'proxy', proxy: { preset: 'azure', trust: '127.0.0.1' } }, /option proxy\.ca: is required with preset 'azure'/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1', ca: [] } }, /option proxy\.ca: must not be empty/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1', ca: [42] } }, /option proxy\.ca\[0\]: must be a PEM/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1', ca: 'no pem here' } }, /option proxy\.ca: holds something that is not a valid/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1', ca: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----' } }, /proxy\.ca: holds something that is not a valid X\.509/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1', ca: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----' } }, /proxy\.ca: holds no PEM certificate/],
    [{ mode: 'proxy', proxy: 'nginx' }, /option proxy: must be an object/],
    [{ proxy: { preset: 'nginx', trust: '127.0.0.1' } }, /option proxy: is only used in mode 'proxy' or 'auto'/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1' }, cache: 5 }, /option cache: must be/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1' }, cache: { size: 5 } }, /option cache\.size/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1' }, cache: { max: 1.5 } }, /option cache\.max/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1' }, authorize: true }, /option authorize: must be a function/],
    [{ mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1' }, testing: 'yes' }, /option testing: must be a boolean/],
    [[], /option options: must be an object/]
  ]
  for (const [options, message] of cases) {
    const error = await registrationError(Fastify(), options)
    t.ok(error instanceof ClientCertInvalidOptionError, JSON.stringify(options))
    t.match(error.message, message, JSON.stringify(options))
  }
})

t.test('a non-CA certificate in proxy.ca is refused', async (t) => {
  const corpus = await getCorpus()
  const error = await registrationError(Fastify(), { mode: 'proxy', proxy: { preset: 'nginx', trust: '127.0.0.1', ca: corpus.leaves.alice.certPem } })
  t.match(error.message, /proxy\.ca: holds a certificate that is not a CA/)
})

t.test('testing cannot be switched on in production', async (t) => {
  const before = process.env.NODE_ENV
  process.env.NODE_ENV = 'production'
  t.teardown(() => { process.env.NODE_ENV = before })
  const error = await registrationError(await httpsApp({ requestCert: true }), { testing: true })
  t.match(error.message, /option testing: cannot be enabled when NODE_ENV is production/)
})

t.test('route config is checked when the route is declared', async (t) => {
  const app = await httpsApp({ requestCert: true, rejectUnauthorized: false })
  await app.register(fastifyClientCert)
  t.throws(() => app.get('/x', { config: { clientCert: { required: 'no' } as never } }, async () => 'x'), /config\.clientCert of route GET \/x\.required: must be a boolean/)
  t.throws(() => app.get('/y', { config: { clientCert: { requierd: true } as never } }, async () => 'x'), /config\.clientCert of route GET \/y\.requierd: is not an option/)
  t.throws(() => app.get('/z', { config: { clientCert: 'off' as never } }, async () => 'x'), /must be false or \{ required, allow \}/)
  await app.close()
})

t.test('rejectUnauthorized: true with optional routes logs a warning; mode auto without requestCert too', async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, callback) { lines.push(String(chunk)); callback() } })
  const app = await httpsApp({ requestCert: true, rejectUnauthorized: true }, { stream, level: 'warn' })
  await app.register(fastifyClientCert)
  app.get('/maybe', { config: { clientCert: { required: false } } }, async () => 'x')
  await app.ready()
  await app.close()
  t.match(lines.join(''), /rejectUnauthorized is true/)

  const quiet: string[] = []
  const quietStream = new Writable({ write (chunk, _encoding, callback) { quiet.push(String(chunk)); callback() } })
  const strict = await httpsApp({ requestCert: true, rejectUnauthorized: true }, { stream: quietStream, level: 'warn' })
  await strict.register(fastifyClientCert)
  strict.get('/only', async () => 'x')
  await strict.ready()
  await strict.close()
  t.same(quiet, [], 'no warning when every route requires a certificate')

  const autoLines: string[] = []
  const autoStream = new Writable({ write (chunk, _encoding, callback) { autoLines.push(String(chunk)); callback() } })
  const auto = await httpsApp({}, { stream: autoStream, level: 'warn' })
  await auto.register(fastifyClientCert, { mode: 'auto', proxy: { preset: 'nginx', trust: '127.0.0.1' } })
  await auto.ready()
  await auto.close()
  t.match(autoLines.join(''), /mode 'auto' on a TLS server without https\.requestCert/)
})

t.test('proxy.xfcc is checked at registration, naming the option', async (t) => {
  const envoy = { preset: 'envoy', trust: '127.0.0.1' }
  const xfccMapping = { cert: { name: 'x-forwarded-client-cert', encoding: 'xfcc' }, verified: 'present' }
  const cases: Array<[unknown, RegExp]> = [
    [{ ...envoy, xfcc: 2 }, /option proxy\.xfcc: must be \{ hops, cert \}/],
    [{ ...envoy, xfcc: { hop: 2 } }, /option proxy\.xfcc\.hop: is not an option/],
    [{ ...envoy, xfcc: { hops: 0 } }, /option proxy\.xfcc\.hops: must be a positive integer/],
    [{ ...envoy, xfcc: { hops: 1.5 } }, /option proxy\.xfcc\.hops: must be a positive integer/],
    [{ ...envoy, xfcc: { hops: '2' } }, /option proxy\.xfcc\.hops: must be a positive integer/],
    [{ ...envoy, xfcc: { cert: 'yes' } }, /option proxy\.xfcc\.cert: must be a boolean/],
    [{ preset: 'nginx', trust: '127.0.0.1', xfcc: { hops: 2 } }, /option proxy\.xfcc: applies to preset 'envoy' or to proxy\.headers\.cert with encoding 'xfcc'/],
    [{ headers: { cert: { name: 'x-cert', encoding: 'pem' }, verified: 'present' }, trust: '127.0.0.1', xfcc: {} }, /option proxy\.xfcc: applies to preset 'envoy'/],
    [{ headers: xfccMapping, trust: '127.0.0.1', xfcc: { hops: -1 } }, /option proxy\.xfcc\.hops/]
  ]
  for (const [proxy, message] of cases) {
    const error = await registrationError(Fastify(), { mode: 'proxy', proxy })
    t.ok(error instanceof ClientCertInvalidOptionError, JSON.stringify(proxy))
    t.match(error.message, message, JSON.stringify(proxy))
  }
  for (const proxy of [{ ...envoy, xfcc: { hops: 2, cert: true } }, { ...envoy, xfcc: {} }, { headers: xfccMapping, trust: '127.0.0.1', xfcc: { cert: true } }]) {
    const app = Fastify()
    await app.register(fastifyClientCert, { mode: 'proxy', proxy } as never)
    await app.ready()
    await app.close()
    t.pass(JSON.stringify(proxy))
  }
})
