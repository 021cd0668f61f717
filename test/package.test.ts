import t from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'

// The built package, imported by name as users do (the package refers to itself through "exports").
// Child processes run without tap's instrumentation: dist/ is build output, not source to cover.
const env = { ...process.env, NODE_OPTIONS: '', NODE_V8_COVERAGE: '' }

function run (type: 'module' | 'commonjs', code: string): string {
  return execFileSync(process.execPath, ['--input-type=' + type, '-e', code], { env, encoding: 'utf8' })
}

t.test('the package is built', async (t) => {
  t.ok(existsSync('dist/esm/index.js'), 'dist/esm/index.js exists (npm run build)')
  t.ok(existsSync('dist/cjs/index.cjs'), 'dist/cjs/index.cjs exists (npm run build)')
  t.ok(existsSync('dist/esm/index.d.ts'), 'ESM types exist')
  t.ok(existsSync('dist/cjs/index.d.cts'), 'CommonJS types exist')
})

t.test('ESM default import and named import hand out the same plugin', async (t) => {
  const out = run('module', `
    import plugin, { fastifyClientCert, parseDN, formatDN, identityFromCertificate, ClientCertMissingError } from 'fastify-client-cert'
    console.log(JSON.stringify({
      type: typeof plugin, same: plugin === fastifyClientCert,
      meta: plugin[Symbol.for('plugin-meta')],
      helpers: [typeof parseDN, typeof formatDN, typeof identityFromCertificate],
      code: new ClientCertMissingError().code
    }))`)
  const result = JSON.parse(out)
  t.equal(result.type, 'function')
  t.equal(result.same, true)
  t.match(result.meta, { name: 'fastify-client-cert', fastify: '5.x' })
  t.same(result.helpers, ['function', 'function', 'function'])
  t.equal(result.code, 'FST_CLIENT_CERT_MISSING')
})

t.test('require() hands out the plugin function itself, with every export on it', async (t) => {
  const out = run('commonjs', `
    const plugin = require('fastify-client-cert')
    const { fastifyClientCert, parseDN } = require('fastify-client-cert')
    console.log(JSON.stringify({
      type: typeof plugin, named: plugin === fastifyClientCert, default: plugin.default === plugin,
      meta: plugin[Symbol.for('plugin-meta')], parse: parseDN('CN=a\\\\,b,O=x')
    }))`)
  const result = JSON.parse(out)
  t.equal(result.type, 'function')
  t.equal(result.named, true)
  t.equal(result.default, true)
  t.match(result.meta, { name: 'fastify-client-cert' })
  t.same(result.parse, [[{ type: 'CN', oid: '2.5.4.3', value: 'a,b' }], [{ type: 'O', oid: '2.5.4.10', value: 'x' }]])
})

t.test('both builds register on a Fastify app', async (t) => {
  for (const [type, load] of [['module', 'const { default: plugin } = await import(\'fastify-client-cert\')'], ['commonjs', 'const plugin = require(\'fastify-client-cert\')']] as const) {
    const code = type === 'module'
      ? `${load}\nconst { default: Fastify } = await import('fastify')\nconst app = Fastify()\nawait app.register(plugin, { mode: 'proxy', proxy: { preset: 'nginx', trust: ['127.0.0.1'] } })\nawait app.ready()\nconsole.log(typeof app.clientCert.reload)`
      : `${load}\nconst Fastify = require('fastify')\nconst app = Fastify()\napp.register(plugin, { mode: 'proxy', proxy: { preset: 'nginx', trust: ['127.0.0.1'] } })\napp.ready().then(() => console.log(typeof app.clientCert.reload))`
    t.equal(run(type, code).trim(), 'function', `${type} build`)
  }
})
