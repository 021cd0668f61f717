// Plays SPIRE's agent (or spiffe-helper) for the example: writes svid.pem, svid_key.pem and bundle.pem into a
// directory, and rewrites them every few seconds with a new SVID and, every third time, a new CA (the bundle
// holds the current CA and the next one, as SPIRE publishes an upcoming key before it signs with it).
// Each file is written beside its name and renamed over it, as spiffe-helper does.
// Usage: node rotate.js DIR [--every SECONDS] [--once]
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const dir = process.argv[2] ?? 'spire'
const everyAt = process.argv.indexOf('--every')
const every = everyAt === -1 ? 10 : Number(process.argv[everyAt + 1])
const work = join(dir, '.work')
mkdirSync(work, { recursive: true })
let serial = Date.now()

function issue (name, issuer, extensions) {
  const file = (ext) => join(work, `${name}.${ext}`)
  writeFileSync(file('ext'), extensions.join('\n') + '\n')
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file('key'), '-subj', `/O=SPIRE example/CN=${name}`, '-out', file('csr')], { stdio: 'ignore' })
  const signer = issuer === null ? ['-signkey', file('key')] : ['-CA', join(work, `${issuer}.pem`), '-CAkey', join(work, `${issuer}.key`)]
  execFileSync('openssl', ['x509', '-req', '-in', file('csr'), ...signer, '-set_serial', String(serial++), '-days', '1', '-extfile', file('ext'), '-out', file('pem')], { stdio: 'ignore' })
  return { cert: readFileSync(file('pem'), 'utf8'), key: readFileSync(file('key'), 'utf8') }
}

const CA = ['basicConstraints = critical, CA:TRUE', 'keyUsage = critical, keyCertSign, cRLSign', 'subjectAltName = URI:spiffe://example.org']
const svid = (id, extra = []) => ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature', 'extendedKeyUsage = serverAuth, clientAuth', `subjectAltName = URI:${id}${extra.join('')}`]

function put (name, content) {
  writeFileSync(join(dir, `.${name}.tmp`), content)
  renameSync(join(dir, `.${name}.tmp`), join(dir, name))
}

let generation = 0
const cas = [issue('ca0', null, CA)]
function rotate () {
  const epoch = Math.floor(generation / 3)
  cas[epoch + 1] ??= issue(`ca${epoch + 1}`, null, CA)
  const signer = `ca${epoch}`
  const server = issue('server', signer, svid('spiffe://example.org/ns/web/server', [', DNS:localhost']))
  const client = issue('client', signer, svid('spiffe://example.org/ns/admin/cli'))
  // Bundle first: a client issued under the new CA must find it trusted.
  put('bundle.pem', cas[epoch].cert + cas[epoch + 1].cert)
  put('svid_key.pem', server.key)
  put('svid.pem', server.cert)
  mkdirSync(join(dir, 'client'), { recursive: true })
  writeFileSync(join(dir, 'client', 'svid.pem'), client.cert)
  writeFileSync(join(dir, 'client', 'svid_key.pem'), client.key)
  console.log(`generation ${generation}: SVIDs issued by ${signer}`)
  generation++
}

rotate()
if (!process.argv.includes('--once')) setInterval(rotate, every * 1000)
