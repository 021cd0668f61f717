// Certificates for the benchmark, made with the openssl CLI in a temp dir: a CA, a server certificate for
// localhost, one client certificate with a typical subject and SANs, and a template from which lib/forge.js
// makes any number of distinct client certificates (one shared key) for the cache-miss and cold runs; and, for the
// revocation row, a CRL of the CA and a pre-signed OCSP answer for the main client certificate.
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

// `openssl ca` (the CRL) and `openssl ocsp` (the answer) read the same database: one line, the client's, valid.
const CA_CONFIG = `[ca]
default_ca = bench
[bench]
database = ./index.txt
crlnumber = ./crlnumber
default_md = sha256
default_crl_days = 7
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

/** `Dec  6 06:40:00 2026 GMT` (X509Certificate.validTo) as an openssl database date, `261206064000Z`. */
function databaseDate (validTo) {
  return new Date(validTo).toISOString().replace(/^\d\d(\d\d)-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d).*$/, '$1$2$3$4$5$6Z')
}

/**
 * What the revocation row serves: the CA's CRL (DER, nobody listed) and an OCSP answer signed by the CA that
 * says `good` for the client certificate, without a nonce and valid for two days, so a plugin set with
 * `nonce: false` caches it for the whole run.
 */
async function makeRevocation (dir, client) {
  const x509 = new X509Certificate(client.cert)
  const subject = '/' + x509.subject.split('\n').join('/')
  writeFileSync(join(dir, 'index.txt'), `V\t${databaseDate(x509.validTo)}\t\t${x509.serialNumber.toUpperCase()}\tunknown\t${subject}\n`)
  writeFileSync(join(dir, 'index.txt.attr'), 'unique_subject = no\n')
  writeFileSync(join(dir, 'crlnumber'), '01\n')
  writeFileSync(join(dir, 'ca.cnf'), CA_CONFIG)
  await openssl(['ca', '-config', 'ca.cnf', '-cert', 'ca.crt', '-keyfile', 'ca.key', '-gencrl', '-out', 'bench.crl.pem'], dir)
  await openssl(['crl', '-in', 'bench.crl.pem', '-outform', 'DER', '-out', 'bench.crl'], dir)
  await openssl(['ocsp', '-issuer', 'ca.crt', '-cert', 'bench-client.crt', '-no_nonce', '-reqout', 'ocsp-request.der'], dir)
  await openssl(['ocsp', '-index', 'index.txt', '-rsigner', 'ca.crt', '-rkey', 'ca.key', '-CA', 'ca.crt',
    '-reqin', 'ocsp-request.der', '-respout', 'ocsp-response.der', '-ndays', '2'], dir)
  return { crlPath: join(dir, 'bench.crl'), ocspResponsePath: join(dir, 'ocsp-response.der') }
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
    const revocation = await makeRevocation(dir, clients[0])
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
      revocation,
      cleanup () { rmSync(dir, { recursive: true, force: true }) }
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
}
