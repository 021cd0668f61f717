// Runs the Prometheus example: `npm run build && node examples/prometheus/server.js`.
//
// Environment:
//   TLS_KEY, TLS_CERT, CLIENT_CA  paths to the server's key and certificate and to the client CA bundle;
//                                 when unset, throwaway development certificates are made (see ../dev-certs.js)
//   HOST, PORT                    default 127.0.0.1 and 8443
import { curlWith, httpsFromEnv, stopOnSignals } from '../server-env.js'
import { build } from './app.js'

const env = process.env
const { https, dev } = httpsFromEnv(env)

const app = build({ https, logger: { level: 'info' } })
await app.listen({ host: env.HOST ?? '127.0.0.1', port: Number(env.PORT ?? 8443) })
const { port } = app.server.address()

const curl = curlWith(dev)
console.log(`
Make a few requests, with and without the certificate, then read the metrics:
  ${curl} https://localhost:${port}/
  ${curl} https://localhost:${port}/admin
  curl --cacert ${dev === null ? 'CLIENT_CA' : dev.caPath} https://localhost:${port}/
  curl --cacert ${dev === null ? 'CLIENT_CA' : dev.caPath} https://localhost:${port}/metrics
`)

stopOnSignals(app, dev)
