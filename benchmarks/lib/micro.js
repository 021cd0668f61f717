// Micro benchmarks of the codecs and decoders, measured from the published build (dist/esm). Functions that
// take well under a microsecond are run in batches inside each timed call, so the timer's own cost (tens of
// nanoseconds) does not swamp them.
import { createHash, X509Certificate } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { Bench } from 'tinybench'
import { formatDN, parseDN } from '../../dist/esm/codecs/dn.js'
import { identify } from '../../dist/esm/authenticate.js'
import { identityFromCertificate } from '../../dist/esm/identity.js'
import { normalizeOptions } from '../../dist/esm/options.js'
import { getPreset, presetNames } from '../../dist/esm/sources/presets/index.js'
import { ProxySource } from '../../dist/esm/sources/proxy.js'
import { parseNodeSAN } from '../../dist/esm/codecs/san.js'
import { coldTaskName } from './stats.js'

export const TYPICAL_DN = 'CN=alice,OU=Engineering,O=Example Corp,L=San Francisco,ST=California,C=US'
// Every costly path at once: escaped specials, hex pairs (UTF-8), a multi-valued RDN, a '#' BER value,
// dotted OIDs, attribute names that need a lookup.
export const WORST_DN = 'CN=Sm\\C3\\A9th\\, J\\+r. \\"The \\<Boss\\>\\"+UID=jsmith\\;x,' +
  'OU=R\\26D\\2C Lab #7,OU=\\#hash\\ ,O=#0C0C4578616D706C6520436F7270,' +
  '1.2.840.113549.1.9.1=#160D6A406578616D706C652E636F6D,2.5.4.97=VATUS-123456,' +
  'DC=example,DC=org,serialNumber=0042,L=S\\C3\\A3o Paulo,ST=S\\C3\\A3o Paulo,C=BR'
// The largest input parseDN accepts is bounded (64 KiB, 1024 attributes); this one sits near both bounds, to
// show that time stays linear in the input.
export const LIMIT_DN = Array.from({ length: 1000 }, (_, i) => `CN=\\41\\42${'x'.repeat(48)}\\2C${i}`).join(',')

const TYPICAL_SAN = 'email:alice@example.com, URI:spiffe://example.org/ns/prod/sa/alice'
// Node quotes values holding `,` `"` `\` and writes a comma inside as \u002c; IPv6 needs RFC 5952 work.
const WORST_SAN = 'DNS:api.example.org, DNS:"evil\\u002c DNS:admin.example.org", DNS:*.svc.example.net, ' +
  'IP Address:2001:DB8:0:0:0:0:0:1, IP Address:10.0.0.1, IP Address:FE80:0:0:0:0:0:AC10:FE01, ' +
  'email:"a\\u002cb@example.org", URI:spiffe://example.org/ns/prod/sa/api, URI:https://example.org/a?b=c, ' +
  'DirName:"CN=x\\u002cO=y", othername:<unsupported>'

const b64 = (der) => der.toString('base64')
const sha256 = (der) => createHash('sha256').update(der).digest()
// nginx $ssl_client_escaped_cert: everything but [A-Za-z0-9-] percent-encoded.
const nginxEscape = (pem) => pem.replace(/[^A-Za-z0-9-]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'))
const envoyEncode = (pem) => pem.replaceAll('\n', '%0A').replaceAll(' ', '%20').replaceAll('+', '%2B').replaceAll('/', '%2F').replaceAll('=', '%3D')
const albEncode = (pem) => encodeURIComponent(pem).replaceAll('%2B', '+').replaceAll('%3D', '=').replaceAll('%2F', '/')

/** What each proxy sends for one verified client certificate, configured as the preset documents. */
export function presetHeaders (client, caPem) {
  const { cert: pem, der } = client
  const ca = new X509Certificate(caPem)
  const x509 = new X509Certificate(der)
  const ending = x509.subject.split('\n').reverse().join(',')
  return {
    nginx: { 'x-ssl-client-cert': nginxEscape(pem), 'x-ssl-client-verify': 'SUCCESS' },
    apache: { 'x-ssl-client-cert': pem.replaceAll('\n', ' ').trim(), 'x-ssl-client-verify': 'SUCCESS' },
    haproxy: { 'x-ssl-client-cert': b64(der), 'x-ssl-client-verify': '0', 'x-ssl-client-used': '1' },
    caddy: { 'x-ssl-client-cert': b64(der) },
    envoy: {
      'x-forwarded-client-cert': `By=spiffe://example.org/ns/front/sa/envoy;Hash=${sha256(der).toString('hex')};` +
        `Cert="${envoyEncode(pem)}";Subject="${ending}";URI=spiffe://example.org/ns/bench/sa/${client.name}`
    },
    traefik: { 'x-forwarded-tls-client-cert': b64(der) },
    'aws-alb': {
      'x-amzn-mtls-clientcert-leaf': albEncode(pem),
      'x-amzn-mtls-clientcert-subject': ending,
      'x-amzn-mtls-clientcert-issuer': ca.subject.split('\n').reverse().join(','),
      'x-amzn-mtls-clientcert-serial-number': x509.serialNumber.toLowerCase(),
      'x-amzn-mtls-clientcert-validity': `NotBefore=${new Date(x509.validFrom).toISOString().replace('.000', '')};NotAfter=${new Date(x509.validTo).toISOString().replace('.000', '')}`
    },
    'aws-alb-passthrough': { 'x-amzn-mtls-clientcert': albEncode(pem) },
    gcp: {
      'x-client-cert-present': 'true',
      'x-client-cert-chain-verified': 'true',
      'x-client-cert-error': '',
      'x-client-cert-hash': sha256(der).toString('base64').replace(/=+$/, ''),
      'x-client-cert-leaf': `:${b64(der)}:`,
      'x-client-cert-chain': `:${b64(ca.raw)}:`
    },
    cloudflare: { 'cf-client-cert-der-base64': b64(der), 'cf-client-cert-sha256': sha256(der).toString('hex') },
    azure: { 'x-arr-clientcert': b64(der) },
    rfc9440: { 'client-cert': `:${b64(der)}:` }
  }
}

function reader (headers) {
  const values = new Map(Object.entries(headers))
  return function read (name) { return values.get(name) }
}

function rawHeaders (headers) {
  return Object.entries(headers).flatMap(([name, value]) => [name.replace(/(^|-)[a-z]/g, (c) => c.toUpperCase()), value])
}

/** Every task: `{ name, group, fn }`; `fn` returns something so the work cannot be optimized away. */
export function microTasks ({ client, many, ca }) {
  const headers = presetHeaders(client, ca)
  const typicalRdns = parseDN(TYPICAL_DN)
  const worstRdns = parseDN(WORST_DN)
  const x509 = new X509Certificate(client.der)
  const nginxRead = reader(headers.nginx)
  const nginx = getPreset('nginx')
  const settings = normalizeOptions({ mode: 'proxy', proxy: { preset: 'nginx', trust: ['127.0.0.1'] } })
  // One proxy connection, as on a keep-alive upstream: its trust is judged once.
  const peer = { socket: { remoteAddress: '127.0.0.1' } }
  const cached = new ProxySource(settings.proxy, settings.cache.certificates, null)
  const uncached = new ProxySource(settings.proxy, { ...settings.cache.certificates, max: 0 }, null)
  // The plugin reads Node's rawHeaders: a fresh array each request, names as the proxy spelled them.
  const raw = rawHeaders(headers.nginx)
  // Only a certificate that verified is kept, from its second sighting: the plugin settles each lookup after its verdict.
  cached.settle(cached.lookup(raw, peer), true)
  cached.settle(cached.lookup(raw, peer), true)
  const manyRaw = many.map((c) => rawHeaders(presetHeaders(c, ca).nginx))
  let m = 0
  const nextMany = () => { m = m + 1 === manyRaw.length ? 0 : m + 1; return manyRaw[m] }
  const tasks = [
    { name: 'parseDN, typical DN', group: 'names', fn: () => parseDN(TYPICAL_DN) },
    { name: 'parseDN, worst-case DN', group: 'names', fn: () => parseDN(WORST_DN) },
    { name: `parseDN, ${Math.round(LIMIT_DN.length / 1024)} KiB DN of 1000 RDNs (limits)`, group: 'names', fn: () => parseDN(LIMIT_DN) },
    { name: 'formatDN, typical DN', group: 'names', fn: () => formatDN(typicalRdns) },
    { name: 'formatDN, worst-case DN', group: 'names', fn: () => formatDN(worstRdns) },
    { name: 'parseNodeSAN, typical', group: 'names', fn: () => parseNodeSAN(TYPICAL_SAN) },
    { name: 'parseNodeSAN, worst case', group: 'names', fn: () => parseNodeSAN(WORST_SAN) }
  ]
  // A preset added to the plugin after these headers were written is left out (run.js notes it), not a crash.
  const known = presetNames.filter((name) => headers[name] !== undefined)
  for (const name of known) {
    const preset = getPreset(name)
    const read = reader(headers[name])
    if (preset.decode(read)?.der == null) throw new Error(`bench headers for preset ${name} carry no certificate`)
    tasks.push({ name: `${name} preset: decode headers`, group: 'presets', fn: () => preset.decode(read) })
  }
  tasks.push(
    { name: 'new X509Certificate(der)', group: 'certificate', fn: () => new X509Certificate(client.der) },
    { name: 'nginx header → X509Certificate (cold decode)', group: 'certificate', fn: () => new X509Certificate(nginx.decode(nginxRead).der) },
    { name: 'new X509Certificate(der) + read its fields', group: 'certificate', fn: () => readFields(new X509Certificate(client.der)) },
    { name: 'identityFromCertificate(der)', group: 'certificate', fn: () => identityFromCertificate(client.der) },
    { name: 'identityFromCertificate(X509Certificate), fields cached', group: 'certificate', fn: () => identityFromCertificate(x509) },
    { name: 'proxy lookup, cache hit (same header again)', group: 'cache', fn: () => cached.lookup(raw.slice(), peer) },
    { name: 'proxy lookup, cache off (header → identity fields)', group: 'cache', fn: () => uncached.lookup(nextMany(), peer) }
  )
  for (const name of known) {
    const task = { name: coldTaskName(name), group: 'cold', fn: coldIdentify(name, many, ca) }
    tasks.push(task)
  }
  return tasks
}

/**
 * The plugin's whole request-time path for a header set, as its onRequest hook runs it (`identify()`: trust
 * check, header decoding, certificate parsing, identity, verdict), with the certificate cache off and a
 * different certificate each call, so every call is cold. The fields a route reads are read too: an identity
 * may compute them when asked.
 */
function coldIdentify (presetName, many, ca) {
  // A preset whose proxy does not verify certificates needs proxy.ca: the plugin then checks the signature.
  const needsCa = !getPreset(presetName).proxyVerifies
  const settings = normalizeOptions({ mode: 'proxy', proxy: { preset: presetName, trust: ['127.0.0.1'], ...(needsCa ? { ca } : {}) } })
  const state = {
    settings,
    generation: 0,
    crl: null,
    proxyCa: settings.proxyCa,
    proxy: new ProxySource(settings.proxy, { ...settings.cache.certificates, max: 0 }, null),
    users: null,
    tokens: null
  }
  const socket = { remoteAddress: '127.0.0.1' }
  const requests = many.map((client) => ({ raw: { rawHeaders: rawHeaders(presetHeaders(client, ca)[presetName]), socket }, headers: {} }))
  const first = identify(state, requests[0], true)
  if (first?.verified !== true || first.commonName !== many[0].name) {
    throw new Error(`bench headers for preset ${presetName} give no verified identity: ${JSON.stringify(first?.verifyError ?? first)}`)
  }
  let i = 0
  return function cold () {
    i = i + 1 === requests.length ? 0 : i + 1
    const identity = identify(state, requests[i], true)
    return readIdentity(identity)
  }
}

function readIdentity (identity) {
  return [identity.subject, identity.issuer, identity.commonName, identity.san, identity.spiffeId, identity.serialNumber,
    identity.fingerprint256, identity.notBefore, identity.notAfter, identity.subjectRDNs, identity.issuerRDNs]
}

function readFields (certificate) {
  return [certificate.subject, certificate.issuer, certificate.subjectAltName, certificate.serialNumber,
    certificate.fingerprint256, certificate.validFrom, certificate.validTo]
}

let sink

/** How many calls of `fn` fill about `targetUs` microseconds. */
function batchSize (fn, targetUs) {
  let calls = 0
  const started = performance.now()
  while (performance.now() - started < 5) { sink = fn(); calls++ }
  const perCallUs = (performance.now() - started) * 1000 / calls
  return Math.max(1, Math.round(targetUs / perCallUs))
}

/**
 * Runs every task once for about `timeMs` and returns `{ name: ns per call }`.
 * @param {Array<{ name: string, fn: () => unknown }>} tasks
 */
export async function microRound (tasks, { timeMs, warmupMs }) {
  const bench = new Bench({ time: timeMs, warmupTime: warmupMs, iterations: 5 })
  const batches = new Map()
  for (const { name, fn } of tasks) {
    const batch = batchSize(fn, 50)
    batches.set(name, batch)
    bench.add(name, function batched () {
      for (let i = 0; i < batch; i++) sink = fn()
    })
  }
  await bench.run()
  // Reading the sink keeps every task's result observable, so none of the measured work can be dropped.
  if (sink === undefined) throw new Error('a micro task returned nothing')
  const result = {}
  for (const task of bench.tasks) {
    const { state, latency, error } = task.result
    if (state !== 'completed') throw new Error(`micro task '${task.name}' ${state}: ${error?.message ?? ''}`)
    result[task.name] = latency.mean * 1e6 / batches.get(task.name)
  }
  return result
}

/** Profiles `fn` called in a loop for `ms` in this process (the same V8 profiler as node --cpu-prof); writes `file`. */
export async function profileTask (fn, ms, file) {
  const session = new Session()
  session.connect()
  try {
    await session.post('Profiler.enable')
    await session.post('Profiler.setSamplingInterval', { interval: 100 })
    await session.post('Profiler.start')
    const end = performance.now() + ms
    while (performance.now() < end) sink = fn()
    const { profile } = await session.post('Profiler.stop')
    writeFileSync(file, JSON.stringify(profile))
  } finally {
    session.disconnect()
  }
}
