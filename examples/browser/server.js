// A site that greets the holder of a client certificate: Fastify terminates TLS itself (direct-TLS mode).
//
//   npx fastify-client-cert ca --dir pki
//   npx fastify-client-cert issue localhost --dir pki --server --dns localhost --ip 127.0.0.1
//   npx fastify-client-cert issue alice --dir pki --subject "CN=Alice Example,O=Example Corp" --email alice@example.com
//   node examples/browser/server.js --pki pki            (from a clone: npm run build first)
//
// Then trust pki/root.crt in the browser (or the OS), import pki/issued/alice.p12 with the password `issue`
// printed, and open https://localhost:8443/. https://localhost:8443/public works without a certificate.
import Fastify from 'fastify'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import fastifyClientCert from 'fastify-client-cert'

const { values } = parseArgs({
  options: {
    pki: { type: 'string', default: 'pki' },
    'server-name': { type: 'string', default: 'localhost' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8443' },
    crl: { type: 'string' }
  }
})
const read = (...path) => readFileSync(join(...path))

const app = Fastify({
  https: {
    key: read(values.pki, 'issued', `${values['server-name']}.key`),
    // The server's certificate followed by the intermediate CA, when there is one.
    cert: read(values.pki, 'issued', `${values['server-name']}.chain.pem`),
    // The CA(s) that issue client certificates.
    ca: read(values.pki, 'ca.crt'),
    requestCert: true,
    // The plugin decides per route, so /public can serve visitors without a certificate.
    rejectUnauthorized: false
  }
})
await app.register(fastifyClientCert, values.crl === undefined ? {} : { crl: read(values.crl) })

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

function page (title, body) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; background: #f4f5f7; color: #1d2330; margin: 0; padding: 48px; }
  main { max-width: 760px; margin: auto; background: #fff; border-radius: 12px; padding: 32px 40px; box-shadow: 0 2px 12px #0002; }
  h1 { margin-top: 0; }
  th { text-align: left; padding-right: 24px; color: #5a6270; font-weight: 500; vertical-align: top; }
  td { font-family: ui-monospace, monospace; font-size: 14px; word-break: break-all; }
  .refused { border-top: 6px solid #c62828; }
  .welcome { border-top: 6px solid #2e7d32; }
</style></head>
<body>${body}</body></html>
`
}

function details (identity) {
  const rows = [
    ['Subject', identity.subject],
    ['Issuer', identity.issuer],
    ['E-mail', identity.san.email.join(', ') || '-'],
    ['SPIFFE ID', identity.spiffeId ?? '-'],
    ['Serial number', identity.serialNumber],
    ['Valid until', identity.notAfter.toISOString()]
  ]
  return `<table>${rows.map(([name, value]) => `<tr><th>${name}</th><td>${escape(value)}</td></tr>`).join('')}</table>`
}

// The plugin's refusals (401 without a valid certificate, 403 when rules refuse) as a page instead of JSON.
const reasons = {
  FST_CLIENT_CERT_MISSING: 'Your browser did not present a client certificate.',
  FST_CLIENT_CERT_INVALID: 'The certificate your browser presented was not accepted: it is expired, revoked, or from another CA.',
  FST_CLIENT_CERT_FORBIDDEN: 'Your certificate is valid, but it does not give access to this page.'
}
app.setErrorHandler(async (error, request, reply) => {
  const reason = reasons[error.code]
  if (reason === undefined) throw error
  return reply.code(error.statusCode).type('text/html; charset=utf-8').send(page('Access refused', `<main class="refused">
<h1>Access refused</h1>
<p>${reason}</p>
<p>This site admits holders of a certificate issued by its development CA. <a href="/public">/public</a> is open to everyone.</p>
</main>`))
})

app.get('/', async (request, reply) => {
  const identity = request.clientCert
  const name = identity.commonName ?? identity.san.email[0] ?? identity.subject
  return reply.type('text/html; charset=utf-8').send(page(`Hello, ${name}`, `<main class="welcome">
<h1>Hello, ${escape(name)}</h1>
<p>Your browser presented this client certificate; no password was involved.</p>
${details(identity)}
</main>`))
})

app.get('/public', { config: { clientCert: { required: false } } }, async (request, reply) => {
  const identity = request.clientCert
  const said = identity === null
    ? '<p>Your browser did not present a certificate. This page does not need one; <a href="/">the home page</a> does, and refuses access without it.</p>'
    : `<p>Your browser presented a certificate${identity.verified ? '' : ' that was not accepted'}:</p>${details(identity)}`
  return reply.type('text/html; charset=utf-8').send(page('Public page', `<main><h1>Public page</h1>${said}</main>`))
})

await app.listen({ host: values.host, port: Number(values.port) })
console.log(`Listening on https://${values['server-name']}:${app.server.address().port}/`)

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => { app.close().then(() => process.exit(0)) })
}
