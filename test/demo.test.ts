import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

t.test('npm run demo: calls the server with a fresh certificate and prints the identity', async (t) => {
  // Run as users run it (the built package), outside tap's coverage instrumentation.
  const { stdout } = await promisify(execFile)(process.execPath, ['examples/demo.js', '--once'], {
    env: { ...process.env, NODE_OPTIONS: '', NODE_V8_COVERAGE: '' },
    timeout: 60_000
  })
  t.match(stdout, /with the client certificate -> 200/)
  t.match(stdout, /"hello": "demo-user"/)
  t.match(stdout, /"subject": "CN=demo-user,OU=Engineering,O=Example Corp"/)
  t.match(stdout, /without a certificate -> 401 .*FST_CLIENT_CERT_MISSING/)
  t.match(stdout, '/admin with the client certificate -> 403 {"statusCode":403,"error":"Forbidden","message":"demo-user is not in OU=Platform"}',
    "@fastify/sensible's forbidden() from authorize: its status and message")
})
