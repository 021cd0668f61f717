// Throwaway development certificates for the demo and examples, made with the openssl CLI:
// a CA, a server certificate for localhost and one client certificate. Nothing here is for production.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

function openssl (args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] })
}

function issue (dir, name, subject, extensions) {
  writeFileSync(join(dir, `${name}.ext`), extensions.join('\n') + '\n')
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir)
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-days', '30', '-sha256', '-extfile', `${name}.ext`, '-out', `${name}.crt`], dir)
}

/** Creates the files in a new temp dir and returns their paths and contents. */
export function makeDevCertificates (clientName = 'demo-user') {
  const dir = mkdtempSync(join(tmpdir(), 'fastify-client-cert-demo-'))
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/O=fastify-client-cert demo/CN=Demo CA', '-days', '30',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir)
  issue(dir, 'server', '/CN=localhost', [
    'basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=serverAuth', 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1'
  ])
  issue(dir, 'client', `/O=Example Corp/OU=Engineering/CN=${clientName}`, [
    'basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=clientAuth', `subjectAltName=email:${clientName}@example.com`
  ])
  const read = (file) => readFileSync(join(dir, file), 'utf8')
  return {
    dir,
    caPath: join(dir, 'ca.crt'),
    clientCertPath: join(dir, 'client.crt'),
    clientKeyPath: join(dir, 'client.key'),
    ca: read('ca.crt'),
    server: { cert: read('server.crt'), key: read('server.key') },
    client: { cert: read('client.crt'), key: read('client.key') }
  }
}
