// Certificates for the benchmark, made with the openssl CLI in a temp dir: a CA, a server certificate for
// localhost, one client certificate with a typical subject and SANs, and a template from which lib/forge.js
// makes any number of distinct client certificates (one shared key) for the cache-miss and cold runs.
import { execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { CertificateForge, NAME_PLACEHOLDER, SERIAL_PLACEHOLDER, toPem } from './forge.js'

const run = promisify(execFile)

/** The openssl configuration the benchmark CAs and certificates are made with: sections ca, server, client. */
export const OPENSSL_CONFIG = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`

/** openssl req arguments for a new P-256 key. */
export const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']

async function openssl (args, cwd) {
  await run('openssl', args, { cwd })
}

function clientSubject (name) {
  return `/C=US/ST=California/L=San Francisco/O=Example Corp/OU=Engineering/CN=${name}`
}

function clientSan (name) {
  return `subjectAltName=email:${name}@example.com,URI:spiffe://example.org/ns/bench/sa/${name}`
}

async function issueClient (dir, name, extra = []) {
  await openssl(['req', '-x509', '-new', '-config', 'openssl.cnf', '-extensions', 'client', '-key', 'client.key',
    '-CA', 'ca.crt', '-CAkey', 'ca.key', '-subj', clientSubject(name), '-addext', clientSan(name), '-days', '3',
    ...extra, '-out', `${name}.crt`], dir)
}

/**
 * Creates the corpus; `cleanup()` removes its temp dir.
 * @param {number} many how many distinct client certificates to make besides the main one
 */
export async function makeCertificates (many) {
  const dir = mkdtempSync(join(tmpdir(), 'fastify-client-cert-bench-'))
  try {
    writeFileSync(join(dir, 'openssl.cnf'), OPENSSL_CONFIG)
    await openssl(['req', '-x509', '-new', '-config', 'openssl.cnf', '-extensions', 'ca', ...EC, '-keyout', 'ca.key',
      '-out', 'ca.crt', '-subj', '/O=Example Corp/CN=Example Bench CA', '-days', '3'], dir)
    await openssl(['req', '-x509', '-new', '-config', 'openssl.cnf', '-extensions', 'server', ...EC,
      '-keyout', 'server.key', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-subj', '/CN=localhost', '-days', '3',
      '-out', 'server.crt'], dir)
    await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'client.key'], dir)
    await issueClient(dir, 'bench-client')
    await issueClient(dir, `client-${NAME_PLACEHOLDER}`, ['-set_serial', `0x${SERIAL_PLACEHOLDER}`])
    const read = (file) => readFileSync(join(dir, file), 'utf8')
    const key = read('client.key')
    const forge = new CertificateForge(new X509Certificate(read(`client-${NAME_PLACEHOLDER}.crt`)).raw, read('ca.key'))
    const cert = read('bench-client.crt')
    const clients = [{ name: 'bench-client', cert, key, der: new X509Certificate(cert).raw }]
    for (let i = 0; i < many; i++) {
      const der = forge.der(i)
      clients.push({ name: `client-${CertificateForge.nameOf(i)}`, cert: toPem(der), key, der })
    }
    return {
      dir,
      caPath: join(dir, 'ca.crt'),
      serverCertPath: join(dir, 'server.crt'),
      serverKeyPath: join(dir, 'server.key'),
      ca: read('ca.crt'),
      server: { cert: read('server.crt'), key: read('server.key') },
      client: clients[0],
      many: clients.slice(1),
      forge,
      cleanup () { rmSync(dir, { recursive: true, force: true }) }
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
}
