// Runs the SQLite users example: `npm run build && node examples/sqlite-users/server.js`.
//
// Environment:
//   TLS_KEY, TLS_CERT, CLIENT_CA  paths to the server's key and certificate and to the client CA bundle;
//                                 when unset, throwaway development certificates are made (see ../dev-certs.js)
//   DATABASE                      SQLite file (default ./users.db)
//   ENROLLMENT_CODE               a one-time code for the first user (with development certificates: a random one)
//   HOST, PORT                    default 127.0.0.1 and 8443
import { randomBytes } from 'node:crypto'
import { curlWith, httpsFromEnv, stopOnSignals } from '../server-env.js'
import { build } from './app.js'

const env = process.env
const { https, dev } = httpsFromEnv(env)
const code = env.ENROLLMENT_CODE ?? (dev === null ? null : randomBytes(12).toString('base64url'))

const app = build({
  https,
  database: env.DATABASE ?? 'users.db',
  enrollmentCodes: code === null ? [] : [{ code, name: 'First user' }],
  logger: { level: 'info' }
})
await app.listen({ host: env.HOST ?? '127.0.0.1', port: Number(env.PORT ?? 8443) })
const { port } = app.server.address()

const curl = curlWith(dev)
console.log(`
Enroll a client certificate with a one-time code, then call /me with it:
  ${curl} -H 'content-type: application/json' -d '{"code":"${code ?? 'CODE'}"}' https://localhost:${port}/enroll
  ${curl} https://localhost:${port}/me
Admin routes (/admin/users, POST /admin/enrollment-codes {"name":"…"}) need a certificate with OU=Platform.
`)

stopOnSignals(app, dev)
