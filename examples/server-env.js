// What the example servers share (examples/*/server.js): their https options from the environment, the curl
// lines they print, and a clean stop. Scripts only: the examples' tests build the apps themselves.
import { readFileSync, rmSync } from 'node:fs'
import { makeDevCertificates } from './dev-certs.js'

/**
 * The `https` options of an example server: the files named by TLS_KEY, TLS_CERT and CLIENT_CA when TLS_KEY is
 * set, else throwaway development certificates (`dev`, to print curl lines with and remove on exit).
 */
export function httpsFromEnv (env = process.env, clientName = 'demo-user') {
  if (env.TLS_KEY !== undefined) {
    return { https: { key: readFileSync(env.TLS_KEY, 'utf8'), cert: readFileSync(env.TLS_CERT, 'utf8'), ca: readFileSync(env.CLIENT_CA, 'utf8') }, dev: null }
  }
  const dev = makeDevCertificates(clientName)
  return { https: { key: dev.server.key, cert: dev.server.cert, ca: dev.ca }, dev }
}

/** The curl prefix an example prints: the development certificates' paths, or placeholders. */
export function curlWith (dev) {
  return dev === null
    ? 'curl --cacert CLIENT_CA --cert CLIENT_CERT --key CLIENT_KEY'
    : `curl --cacert ${dev.caPath} --cert ${dev.clientCertPath} --key ${dev.clientKeyPath}`
}

/** Closes an example server on SIGINT or SIGTERM and removes its development certificates. */
export function stopOnSignals (app, dev) {
  async function stop () {
    await app.close()
    if (dev !== null) rmSync(dev.dir, { recursive: true, force: true })
    process.exit(0)
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
