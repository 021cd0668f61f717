/**
 * Fuzzing the proxy path over real sockets. For every preset (and a few custom mappings) a Fastify app runs in
 * proxy mode trusting 127.0.0.1; requests go from that trusted peer over raw HTTP/1.1 sockets, so the bytes,
 * repeats, header-name case and encodings are exactly what the fuzzer chose. Each request starts from the
 * correct headers for a real certificate of the test corpus and is then mutated at the DER level, the
 * encoding level and the header level.
 *
 * The oracle: every answer is 400, 401 or 403 with one of the plugin's codes, or 200 with an identity; never a
 * 5xx, never a connection closed without an answer (Node's own parser refusing the bytes answers 400/431:
 * counted apart). A verified identity must be the identity of a genuine certificate: with `proxy.ca` one that
 * `openssl verify -purpose sslclient` accepts; without it (the proxy's word is trusted) the identity must at
 * least be exactly what the forwarded certificate says. Unmutated requests must give the genuine identity.
 *
 * Every request is generated from (seed, target, index) alone, so any one of them can be replayed.
 */
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { execFile } from 'node:child_process'
import { createHash, X509Certificate } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { fastifyClientCert, identityFromCertificate, type ClientCertIdentity, type FastifyClientCertOptions } from '../../lib/index.js'
import { presetNames } from '../../lib/sources/presets/index.js'
import { getCorpus, LEAF_NAMES } from './certs.js'
import { makeCrl } from './crl.js'

// ---------------------------------------------------------------------------------------------- randomness

/** sfc32, seeded through a string hash: small, fast and the same on every platform. */
export class Rng {
  #a: number
  #b: number
  #c: number
  #d: number

  constructor (...parts: Array<string | number>) {
    const key = parts.join('\u0000')
    let h1 = 0xdeadbeef
    let h2 = 0x41c6ce57
    for (let i = 0; i < key.length; i++) {
      const ch = key.charCodeAt(i)
      h1 = Math.imul(h1 ^ ch, 2654435761)
      h2 = Math.imul(h2 ^ ch, 1597334677)
    }
    h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909)
    h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909)
    this.#a = h1 >>> 0
    this.#b = h2 >>> 0
    this.#c = (h1 ^ h2) >>> 0
    this.#d = 1
    for (let i = 0; i < 12; i++) this.next()
  }

  /** uniform in [0, 2^32) */
  next (): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0
    this.#d = (this.#d + 1) | 0
    this.#a = this.#b ^ (this.#b >>> 9)
    this.#b = (this.#c + (this.#c << 3)) | 0
    this.#c = (this.#c << 21) | (this.#c >>> 11)
    this.#c = (this.#c + t) | 0
    return t >>> 0
  }

  /** integer in [0, n) */
  int (n: number): number {
    return n <= 0 ? 0 : Math.floor((this.next() / 4294967296) * n)
  }

  chance (p: number): boolean {
    return this.next() / 4294967296 < p
  }

  pick<T> (items: readonly T[]): T {
    return items[this.int(items.length)]
  }

  /** one of `choices` by weight */
  weighted<T> (choices: ReadonlyArray<readonly [number, T]>): T {
    let total = 0
    for (const [w] of choices) total += w
    let r = this.int(total)
    for (const [w, value] of choices) {
      if (r < w) return value
      r -= w
    }
    return choices[choices.length - 1][1]
  }
}

// ---------------------------------------------------------------------------------------------- certificates

/** A certificate of the corpus with every form a proxy may forward it in, and the identity it must give. */
export interface Genuine {
  name: string
  der: Buffer
  /** certificates after the leaf, as a proxy forwards them (the intermediate, when it issued the leaf) */
  chain: Buffer[]
  /** RFC 2253 with UTF-8 bytes escaped, as nginx and Apache send it */
  subject2253: string
  issuer2253: string
  /** RFC 2253 with raw UTF-8, as header bytes (latin1 code units) */
  subjectRaw: string
  /** OpenSSL one-line `/C=…/CN=…` (nginx `$ssl_client_s_dn_legacy`) */
  subjectLegacy: string
  serialHex: string
  notBefore: Date
  notAfter: Date
  uris: string[]
  dns: string[]
  /** canonical JSON of the fields the oracle compares */
  expected: string
  /** `openssl verify -purpose sslclient` against the corpus CA accepts it */
  verifies: boolean
}

/** The fields of an identity the oracle compares; `null` for the identity itself when absent. */
export function projection (identity: Record<string, unknown>): string {
  return canonical({
    subject: identity.subject ?? null,
    issuer: identity.issuer ?? null,
    serialNumber: identity.serialNumber ?? null,
    fingerprint256: identity.fingerprint256 ?? null,
    spiffeId: identity.spiffeId ?? null,
    san: identity.san ?? null
  })
}

function canonical (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => a < b ? -1 : 1)
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

const asBytes = (text: string): string => Buffer.from(text, 'utf8').toString('latin1')

/** RFC 2253 with every byte of a non-ASCII character escaped as `\XX`, the way OpenSSL's RFC2253 option prints it. */
function escapeHigh (text: string): string {
  return text.replace(/[^\p{ASCII}]/gu, (ch) => [...Buffer.from(ch, 'utf8')].map((b) => `\\${b.toString(16).toUpperCase()}`).join(''))
}

/** The OpenSSL one-line form `/C=US/O=…/CN=…`, least specific first, `/` and `+` escaped, other bytes as `\xC3`. */
function legacyDN (rdns: ReadonlyArray<ReadonlyArray<{ type: string, value: string }>>): string {
  const esc = (v: string): string => asBytes(v).replace(/[/+]/g, (c) => `\\${c}`).replace(/[\p{Cc}\x80-\xff]/gu, (c) => `\\x${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`)
  return [...rdns].reverse().map((rdn) => '/' + rdn.map((a) => `${a.type}=${esc(a.value)}`).join('+')).join('')
}

/** Which of `paths` `openssl verify -purpose sslclient` accepts against the corpus CA: one process for all. */
async function opensslAccepts (caPath: string, paths: readonly string[]): Promise<Set<string>> {
  const { stdout } = await new Promise<{ stdout: string }>((resolve) => {
    // openssl exits non-zero when any certificate fails; its per-file lines are what counts.
    execFile('openssl', ['verify', '-purpose', 'sslclient', '-CAfile', caPath, ...paths], (_error, stdout) => resolve({ stdout }))
  })
  return new Set(stdout.split('\n').filter((line) => line.endsWith(': OK')).map((line) => line.slice(0, -': OK'.length)))
}

let genuineMemo: Promise<Genuine[]> | undefined
let genuineWithCa: Promise<Genuine[]> | undefined

/**
 * The genuine certificates: every leaf of the corpus and, with `caAsLeaf`, the root and intermediate CA
 * certificates as well (forwarded as if they were a client's).
 */
export async function genuineCertificates (options: { caAsLeaf?: boolean } = {}): Promise<Genuine[]> {
  if (options.caAsLeaf === true) {
    genuineWithCa ??= buildGenuine(true)
    return await genuineWithCa
  }
  genuineMemo ??= buildGenuine(false)
  return await genuineMemo
}

async function buildGenuine (caAsLeaf: boolean): Promise<Genuine[]> {
  const corpus = await getCorpus()
  const files: Array<{ name: string, certPath: string, der: Buffer }> = LEAF_NAMES.map((name) => corpus.leaves[name])
  if (caAsLeaf) files.push(corpus.root, corpus.intermediate)
  const accepted = await opensslAccepts(corpus.caPath, files.map((f) => f.certPath))
  const intermediate = new X509Certificate(corpus.intermediate.der)
  return files.map(({ name, certPath, der }) => {
    const x509 = new X509Certificate(der)
    const identity = identityFromCertificate(der)
    const subject = identity.subject ?? ''
    return {
      name,
      der,
      chain: name !== 'intermediate' && x509.checkIssued(intermediate) ? [corpus.intermediate.der] : [],
      subject2253: escapeHigh(subject),
      issuer2253: escapeHigh(identity.issuer ?? ''),
      subjectRaw: asBytes(subject),
      subjectLegacy: legacyDN(identity.subjectRDNs ?? []),
      serialHex: x509.serialNumber,
      notBefore: new Date(x509.validFrom),
      notAfter: new Date(x509.validTo),
      uris: [...(identity.san?.uri ?? [])],
      dns: [...(identity.san?.dns ?? [])],
      expected: projection(identity as unknown as Record<string, unknown>),
      verifies: accepted.has(certPath)
    }
  })
}

// ---------------------------------------------------------------------------------------------- encodings

const b64 = (der: Buffer): string => der.toString('base64')
const sha256 = (der: Buffer): Buffer => createHash('sha256').update(der).digest()
export function pemOf (der: Buffer): string {
  return `-----BEGIN CERTIFICATE-----\n${b64(der).replace(/(.{64})(?!$)/g, '$1\n')}\n-----END CERTIFICATE-----\n`
}
// Apache: line breaks become spaces (Node trims the last one)
const pemSpaces = (der: Buffer): string => pemOf(der).replaceAll('\n', ' ').trim()
// nginx $ssl_client_escaped_cert: everything but [A-Za-z0-9-] percent-encoded
const nginxEscape = (der: Buffer): string =>
  pemOf(der).replace(/[^A-Za-z0-9-]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'))
// Envoy: exactly these five replacements
const envoyEscape = (text: string): string =>
  text.replaceAll('\n', '%0A').replaceAll(' ', '%20').replaceAll('+', '%2B').replaceAll('/', '%2F').replaceAll('=', '%3D')
// AWS ALB: URL-encoded PEM with +=/ left as they are
const albEscape = (der: Buffer): string =>
  encodeURIComponent(pemOf(der)).replaceAll('%2B', '+').replaceAll('%3D', '=').replaceAll('%2F', '/')
// Go url.QueryEscape of base64 (Traefik up to 2.9.3)
const queryEscape = (text: string): string => text.replaceAll('+', '%2B').replaceAll('/', '%2F').replaceAll('=', '%3D')
const sfBinary = (der: Buffer): string => `:${b64(der)}:`
const colonHex = (bytes: Buffer): string => bytes.toString('hex').toUpperCase().replace(/(..)(?!$)/g, '$1:')

/** Every way some proxy writes a whole certificate: what one preset's header may receive in another's form. */
const FOREIGN_FORMS: ReadonlyArray<(der: Buffer, chain: Buffer[]) => string> = [
  (der) => pemSpaces(der),
  (der) => nginxEscape(der),
  (der) => envoyEscape(pemOf(der)),
  (der) => albEscape(der),
  (der) => encodeURIComponent(pemOf(der)),
  (der) => b64(der),
  (der) => b64(der).replace(/=+$/, ''),
  (der) => der.toString('base64url'),
  (der) => b64(der).replace(/(.{64})/g, '$1 '),
  (der) => sfBinary(der),
  (der, chain) => [der, ...chain].map(sfBinary).join(', '),
  (der, chain) => [der, ...chain].map(b64).join(','),
  (der, chain) => queryEscape([der, ...chain].map(b64).join(',')),
  (der) => `Hash=${sha256(der).toString('hex')};Cert="${envoyEscape(pemOf(der))}"`,
  (der) => der.toString('hex'),
  (der) => colonHex(sha256(der)),
  (der) => sha256(der).toString('base64')
]

// ---------------------------------------------------------------------------------------------- targets

export type Header = [name: string, value: string]
export type Status = 'success' | 'failure' | 'none'

/** What one request forwards: a (possibly mutated) certificate, names from a genuine one, and the proxy's status. */
export interface CertInput {
  genuine: Genuine
  der: Buffer
  chain: Buffer[]
  status: Status
}

export interface Built {
  headers: Header[]
  /** the whole certificate is forwarded: an unmutated success must give exactly the genuine identity */
  whole: boolean
  /** what the headers say of the verification (a proxy without a status header always says success) */
  said?: Status
}

export interface FuzzTarget {
  name: string
  /** the `identity.proxy` it answers with */
  proxyName: string
  options: FastifyClientCertOptions
  /** `proxy.ca` is set: a verified identity must be a genuine certificate that verifies */
  strong: boolean
  /** genuine certificates the target's `crl` revokes: never verified */
  revoked: readonly string[]
  maxHeaderBytes: number
  build: (input: CertInput, rng: Rng) => Built
}

function xfccElement (input: CertInput, rng: Rng, withCert: boolean): string {
  const { genuine, der, chain } = input
  const parts: string[] = []
  if (rng.chance(0.5)) parts.push('By=spiffe://example.org/ns/edge/sa/envoy')
  parts.push(`Hash=${sha256(der).toString('hex')}`)
  if (withCert) parts.push(`Cert="${envoyEscape(pemOf(der))}"`)
  if (withCert && chain.length > 0 && rng.chance(0.3)) parts.push(`Chain="${envoyEscape([der, ...chain].map(pemOf).join(''))}"`)
  // Envoy writes the subject raw between quotes; a name holding a quote cannot be carried unambiguously.
  if (!genuine.subjectRaw.includes('"')) parts.push(`Subject="${genuine.subjectRaw}"`)
  parts.push(...(genuine.uris.length > 0 ? genuine.uris.map((u) => `URI=${u}`) : ['URI=']))
  parts.push(...genuine.dns.map((d) => `DNS=${d}`))
  return parts.join(';')
}

function rfc3339 (date: Date): string {
  return date.toISOString().replace(/\.000Z$/, 'Z')
}

const SUCCESS_FAILURE_NONE = (success: string, failure: string[], none: string) =>
  (status: Status, rng: Rng): string => status === 'success' ? success : status === 'failure' ? rng.pick(failure) : none

const sslVerify = SUCCESS_FAILURE_NONE('SUCCESS', ['FAILED:unable to verify the first certificate', 'FAILED:certificate has expired'], 'NONE')
const apacheVerify = SUCCESS_FAILURE_NONE('SUCCESS', ['FAILED:unable to get local issuer certificate', 'GENEROUS'], 'NONE')

const builders: Record<string, (input: CertInput, rng: Rng) => Built> = {
  nginx: (input, rng) => ({
    headers: [['X-SSL-Client-Cert', nginxEscape(input.der)], ['X-SSL-Client-Verify', sslVerify(input.status, rng)]],
    whole: true,
    said: input.status
  }),
  apache: (input, rng) => ({
    headers: [['X-SSL-Client-Cert', pemSpaces(input.der)], ['X-SSL-Client-Verify', apacheVerify(input.status, rng)]],
    whole: true,
    said: input.status
  }),
  haproxy: (input, rng) => input.status === 'none'
    ? { headers: [['X-SSL-Client-Cert', ''], ['X-SSL-Client-Verify', '0'], ['X-SSL-Client-Used', '0']], whole: false, said: 'none' }
    : {
        headers: [
          ['X-SSL-Client-Cert', b64(input.der)],
          ['X-SSL-Client-Verify', input.status === 'success' ? '0' : rng.pick(['10', '20', '21'])],
          ['X-SSL-Client-Used', '1'],
          // %[ssl_c_chain_der,base64]: the intermediates back to back
          ['X-SSL-Client-Chain', input.chain.length > 0 && rng.chance(0.6) ? b64(Buffer.concat(input.chain)) : '']
        ],
        whole: true,
        said: input.status
      },
  caddy: (input) => input.status === 'none'
    ? { headers: [['X-SSL-Client-Cert', '{http.request.tls.client.certificate_der_base64}']], whole: false, said: 'none' }
    : { headers: [['X-SSL-Client-Cert', b64(input.der)]], whole: true },
  envoy: (input, rng) => {
    const withCert = rng.chance(0.7)
    return { headers: [['X-Forwarded-Client-Cert', xfccElement(input, rng, withCert)]], whole: withCert }
  },
  traefik: (input, rng) => {
    const list = [input.der, ...(rng.chance(0.5) ? input.chain : [])].map(b64).join(',')
    const headers: Header[] = [['X-Forwarded-Tls-Client-Cert', rng.chance(0.3) ? queryEscape(list) : list]]
    if (rng.chance(0.3)) headers.push(['X-Forwarded-Tls-Client-Cert-Info', `Subject="${input.genuine.subjectRaw.replaceAll('"', '')}"`])
    return { headers, whole: true }
  },
  'aws-alb': (input, rng) => {
    const { genuine } = input
    const leaf = rng.chance(0.75)
    const headers: Header[] = []
    if (leaf) headers.push(['X-Amzn-Mtls-Clientcert-Leaf', albEscape(input.der)])
    headers.push(
      ['X-Amzn-Mtls-Clientcert-Subject', genuine.subject2253],
      ['X-Amzn-Mtls-Clientcert-Issuer', genuine.issuer2253],
      ['X-Amzn-Mtls-Clientcert-Serial-Number', genuine.serialHex],
      ['X-Amzn-Mtls-Clientcert-Validity', `NotBefore=${rfc3339(genuine.notBefore)};NotAfter=${rfc3339(genuine.notAfter)}`]
    )
    return { headers, whole: leaf }
  },
  gcp: (input, rng) => {
    const { genuine, der, chain, status } = input
    if (status === 'none') return { headers: [['X-Client-Cert-Present', 'false'], ['X-Client-Cert-Chain-Verified', 'false']], whole: false, said: 'none' }
    const leaf = rng.chance(0.75)
    const spiffe = genuine.uris.find((u) => u.startsWith('spiffe://'))
    const otherUris = genuine.uris.filter((u) => u !== spiffe)
    const headers: Header[] = [
      ['X-Client-Cert-Present', 'true'],
      ['X-Client-Cert-Chain-Verified', status === 'success' ? 'true' : 'false'],
      ['X-Client-Cert-Error', status === 'success' ? '' : 'client_cert_validation_failed'],
      ['X-Client-Cert-Hash', sha256(der).toString('base64')],
      ['X-Client-Cert-Serial-Number', genuine.serialHex],
      ['X-Client-Cert-SPIFFE', spiffe ?? ''],
      ['X-Client-Cert-URI-SANs', otherUris.map((u) => Buffer.from(u).toString('base64')).join(',')],
      ['X-Client-Cert-DNSName-SANs', genuine.dns.map((d) => Buffer.from(d).toString('base64')).join(',')],
      ['X-Client-Cert-Valid-Not-Before', rfc3339(genuine.notBefore)],
      ['X-Client-Cert-Valid-Not-After', rfc3339(genuine.notAfter)]
    ]
    if (leaf) {
      headers.push(['X-Client-Cert-Leaf', sfBinary(der)])
      if (chain.length > 0) headers.push(['X-Client-Cert-Chain', chain.map(sfBinary).join(', ')])
    }
    return { headers, whole: leaf, said: status }
  },
  'aws-alb-passthrough': (input, rng) => ({
    headers: [['X-Amzn-Mtls-Clientcert', [input.der, ...(rng.chance(0.6) ? input.chain : [])].map(albEscape).join('')]],
    whole: true
  }),
  cloudflare: (input, rng) => {
    const headers: Header[] = [['Cf-Client-Cert-Der-Base64', b64(input.der)]]
    if (rng.chance(0.8)) headers.push(['Cf-Client-Cert-Sha256', sha256(input.der).toString('hex')])
    return { headers, whole: true }
  },
  azure: (input) => ({ headers: [['X-ARR-ClientCert', b64(input.der)]], whole: true }),
  rfc9440: (input, rng) => {
    const headers: Header[] = [['Client-Cert', sfBinary(input.der)]]
    if (input.chain.length > 0 && rng.chance(0.6)) headers.push(['Client-Cert-Chain', input.chain.map(sfBinary).join(', ')])
    return { headers, whole: true }
  },
  'custom-names': (input, rng) => ({
    headers: [
      ['X-Client-Cert', encodeURIComponent(pemOf(input.der))],
      ['X-Client-S-DN', input.genuine.subjectRaw],
      ['X-Client-I-DN', input.genuine.issuer2253],
      ['X-Client-Serial', input.genuine.serialHex],
      ['X-Client-Verify', sslVerify(input.status, rng)]
    ],
    whole: true,
    said: input.status
  }),
  'custom-rfc9440': (input, rng) => {
    const headers: Header[] = [['Client-Cert', sfBinary(input.der)]]
    if (input.chain.length > 0) headers.push(['Client-Cert-Chain', input.chain.map(sfBinary).join(', ')])
    if (rng.chance(0.7)) headers.push(['X-Client-Fingerprint', rng.chance(0.5) ? colonHex(sha256(input.der)) : sha256(input.der).toString('base64')])
    return { headers, whole: true }
  },
  'custom-names-only': (input) => ({
    headers: [
      ['X-S-DN', input.genuine.subjectLegacy],
      ['X-I-DN', input.genuine.issuer2253],
      ['X-Serial', BigInt(`0x${input.genuine.serialHex}`).toString(10)],
      ['X-FP', colonHex(sha256(input.der))]
    ],
    whole: false
  }),
  'custom-xfcc': (input, rng) => {
    const withCert = rng.chance(0.7)
    return { headers: [['X-Forwarded-Client-Cert', xfccElement(input, rng, withCert)]], whole: withCert }
  }
}

const customMappings: Record<string, NonNullable<NonNullable<FastifyClientCertOptions['proxy']>['headers']>> = {
  'custom-names': {
    cert: { name: 'X-Client-Cert', encoding: 'pem-urlencoded' },
    subject: { name: 'X-Client-S-DN', encoding: 'dn-rfc4514' },
    issuer: { name: 'X-Client-I-DN', encoding: 'dn-rfc4514' },
    serial: { name: 'X-Client-Serial', encoding: 'hex' },
    verified: { header: 'X-Client-Verify', success: ['SUCCESS'], none: ['NONE'] }
  },
  'custom-rfc9440': {
    cert: { name: 'Client-Cert', encoding: 'rfc9440' },
    chain: { name: 'Client-Cert-Chain', encoding: 'rfc9440' },
    fingerprint: { name: 'X-Client-Fingerprint' },
    verified: 'never'
  },
  'custom-names-only': {
    subject: { name: 'X-S-DN', encoding: 'dn-legacy' },
    issuer: { name: 'X-I-DN', encoding: 'dn-rfc4514' },
    serial: { name: 'X-Serial', encoding: 'decimal' },
    fingerprint: { name: 'X-FP' },
    verified: 'present'
  },
  'custom-xfcc': { cert: { name: 'X-Forwarded-Client-Cert', encoding: 'xfcc' }, verified: 'present' }
}

// Which configurations each mapping runs in: with proxy.ca (strong oracle), trusting the proxy's word, or both.
// `+crl`: a CRL of the intermediate revokes bob as well.
type Config = 'ca' | 'trust' | 'ca+crl' | 'trust+crl'
const CONFIGS: Record<string, readonly Config[]> = {
  nginx: ['trust', 'ca', 'ca+crl'],
  rfc9440: ['trust', 'ca', 'trust+crl'],
  cloudflare: ['ca'],
  azure: ['ca'],
  'aws-alb-passthrough': ['ca'],
  'custom-rfc9440': ['ca'],
  'custom-names-only': ['trust'],
  'custom-xfcc': ['trust']
}

/** Every fuzz target: each preset and custom mapping, with `proxy.ca` and (where the proxy verifies) without. */
export async function fuzzTargets (): Promise<FuzzTarget[]> {
  targetsMemo ??= buildTargets()
  return await targetsMemo
}

let targetsMemo: Promise<FuzzTarget[]> | undefined

async function buildTargets (): Promise<FuzzTarget[]> {
  const corpus = await getCorpus()
  const crl = makeCrl(corpus.intermediate, [corpus.leaves.bob.certPath])
  const targets: FuzzTarget[] = []
  for (const name of [...presetNames, ...Object.keys(customMappings)]) {
    const custom = customMappings[name]
    for (const config of CONFIGS[name] ?? ['trust', 'ca']) {
      // Alternate the header cap so lengths near it stay within Node's own header limit as well.
      const maxHeaderBytes = targets.length % 2 === 0 ? 16384 : 4096
      const withCa = config.startsWith('ca')
      const withCrl = config.endsWith('+crl')
      const proxy = {
        ...(custom === undefined ? { preset: name } : { headers: custom }),
        trust: ['127.0.0.1'],
        maxHeaderBytes,
        ...(withCa ? { ca: corpus.caPem } : {})
      }
      targets.push({
        name: config === 'trust' ? name : config === 'trust+crl' ? `${name}+crl` : `${name}+${config}`,
        proxyName: custom === undefined ? name : 'custom',
        options: { mode: 'proxy', proxy, ...(withCrl ? { crl } : {}) } as FastifyClientCertOptions,
        strong: withCa,
        revoked: withCrl ? ['bob'] : [],
        maxHeaderBytes,
        build: builders[name]
      })
    }
  }
  return targets
}

// ---------------------------------------------------------------------------------------------- mutations

const SEPARATORS = [',', ';', '=', '"', '\\', ' ', '\t', '+', '/', ':', '%', '\\"', '","', '";', ',URI=spiffe://example.org/ns/admin/sa/root', ';Cert=']
const PERCENT = ['%00', '%0A', '%0D', '%20', '%22', '%25', '%2C', '%3B', '%3D', '%5C', '%2B', '%2F', '%C3%BC', '%FF', '%ZZ', '%2', '%%', '%u0041']
const PLACEHOLDERS = [
  '', ' ', '\t', '(null)', '-', 'NONE', 'SUCCESS', 'GENEROUS', 'FAILED:', 'FAILED:x', '0', '1', '10', 'true', 'false', 'TRUE', '::', ':',
  '{http.request.tls.client.certificate_der_base64}', '%{SSL_CLIENT_CERT}s', '%[ssl_c_der,base64]', '""', 'Hash=', 'URI=', 'Cert=""',
  '-----BEGIN CERTIFICATE----- -----END CERTIFICATE-----', 'MII=', '=', 'null', 'undefined', '__proto__', 'constructor'
]

/** A printable latin1 byte (space to 0xff, no DEL): what Node's parser accepts in a header value. */
function valueByte (rng: Rng): string {
  const code = rng.chance(0.3) ? 0x80 + rng.int(0x80) : 0x20 + rng.int(0x5f)
  return String.fromCharCode(code)
}

/** Mostly accepted bytes, now and then one Node refuses (controls, DEL), never CR or LF (which would end the line). */
function anyByte (rng: Rng): string {
  if (rng.chance(0.9)) return valueByte(rng)
  const refused = [0x00, 0x01, 0x08, 0x0b, 0x0c, 0x1b, 0x1f, 0x7f]
  return String.fromCharCode(rng.pick(refused))
}

function spliceString (text: string, at: number, remove: number, insert: string): string {
  return text.slice(0, at) + insert + text.slice(at + remove)
}

/** DER-level edits: the result still often parses, so the certificate parser and the verifier see it. */
function mutateDer (der: Buffer, others: readonly Genuine[], rng: Rng): Buffer {
  const out = Buffer.from(der)
  switch (rng.int(8)) {
    case 0: { // flip a bit
      const i = rng.int(out.length)
      out[i] ^= 1 << rng.int(8)
      return out
    }
    case 1: { // set a byte
      out[rng.int(out.length)] = rng.int(256)
      return out
    }
    case 2: // truncate
      return out.subarray(0, rng.int(out.length))
    case 3: // trailing junk
      return Buffer.concat([out, Buffer.from([rng.int(256), rng.int(256)])])
    case 4: { // splice with another certificate at the same offset (its tail: another signature, another key)
      const other = rng.pick(others).der
      const at = rng.int(Math.min(out.length, other.length))
      return Buffer.concat([out.subarray(0, at), other.subarray(at)])
    }
    case 5: { // a length byte near the start of a structure
      const i = 1 + rng.int(Math.min(out.length - 1, 40))
      out[i] = (out[i] + (rng.chance(0.5) ? 1 : 255)) & 0xff
      return out
    }
    case 6: { // a byte in the signature, the last bytes of the certificate
      const i = out.length - 1 - rng.int(Math.min(out.length, 72))
      out[i] ^= 1 << rng.int(8)
      return out
    }
    default: // another certificate's bytes (the names stay this one's)
      return rng.pick(others).der
  }
}

type MutationKind =
  'bitflip' | 'truncate' | 'separator' | 'percent' | 'duplicate' | 'nameCase' | 'huge' | 'randomBytes' | 'highBytes' |
  'placeholder' | 'swap' | 'foreign' | 'delete' | 'otherPreset' | 'whitespace' | 'repeat' | 'valueCase' | 'move'

const MUTATIONS: ReadonlyArray<readonly [number, MutationKind]> = [
  [8, 'bitflip'], [6, 'truncate'], [8, 'separator'], [6, 'percent'], [5, 'duplicate'], [5, 'nameCase'], [4, 'huge'],
  [4, 'randomBytes'], [5, 'highBytes'], [6, 'placeholder'], [7, 'swap'], [7, 'foreign'], [5, 'delete'], [3, 'otherPreset'],
  [3, 'whitespace'], [3, 'repeat'], [3, 'valueCase'], [3, 'move']
]

export interface Context {
  target: FuzzTarget
  targets: readonly FuzzTarget[]
  genuine: readonly Genuine[]
  /** the corpus CA certificates (root, intermediate, rogue root): chain material */
  authorities: readonly Buffer[]
}

function randomInput (ctx: Context, rng: Rng, genuine = rng.pick(ctx.genuine)): CertInput {
  const status: Status = rng.weighted([[8, 'success'], [1, 'failure'], [1, 'none']])
  return { genuine, der: genuine.der, chain: genuine.chain, status }
}

function mutateHeaders (headers: Header[], ctx: Context, rng: Rng, kind: MutationKind): void {
  if (headers.length === 0 && kind !== 'otherPreset' && kind !== 'swap') return
  const h = rng.int(headers.length)
  const [name, value] = headers[h] ?? ['', '']
  const at = rng.int(value.length + 1)
  switch (kind) {
    case 'bitflip': {
      if (value.length === 0) return
      const i = rng.int(value.length)
      // stay a byte and never become CR or LF, which would end the header line
      let code = value.charCodeAt(i) ^ (1 << rng.int(8))
      if (code === 0x0a || code === 0x0d) code = 0x20
      headers[h][1] = spliceString(value, i, 1, String.fromCharCode(code))
      return
    }
    case 'truncate':
      headers[h][1] = rng.chance(0.7) ? value.slice(0, at) : value.slice(at)
      return
    case 'separator':
      headers[h][1] = spliceString(value, at, rng.chance(0.3) ? 1 : 0, rng.pick(SEPARATORS))
      return
    case 'percent':
      headers[h][1] = spliceString(value, at, rng.chance(0.3) ? 3 : 0, rng.pick(PERCENT))
      return
    case 'duplicate': {
      const copy: Header = [rng.chance(0.5) ? name : name.toLowerCase(), rng.chance(0.6) ? value : rng.pick(PLACEHOLDERS)]
      headers.splice(rng.int(headers.length + 1), 0, copy)
      return
    }
    case 'nameCase': {
      let out = ''
      for (const ch of name) out += rng.chance(0.5) ? ch.toUpperCase() : ch.toLowerCase()
      headers[h][0] = out
      return
    }
    case 'huge': {
      const max = ctx.target.maxHeaderBytes
      const length = rng.pick([max - 1, max, max + 1, max + 2, max * 2, max + rng.int(64) - 32, 40_000])
      const fill = rng.pick(['A', value.length > 0 ? value : 'x', ' ', '%41', ',', '\u00ff'])
      let out = value
      while (out.length < length) out += fill
      // pad in the middle as well as at the end: Node trims only surrounding spaces
      headers[h][1] = rng.chance(0.5) ? out.slice(0, length) : spliceString(value, at, 0, out.slice(value.length, length))
      return
    }
    case 'randomBytes': {
      let out = ''
      const length = rng.pick([1, 2, 8, 64, 512, 2048])
      for (let i = 0; i < length; i++) out += anyByte(rng)
      headers[h][1] = rng.chance(0.5) ? out : spliceString(value, at, rng.int(4), out)
      return
    }
    case 'highBytes': {
      const insert = rng.pick([asBytes('ü'), asBytes('测'), '\u00c3', '\u00ff', '\u00c0\u0080', '\u00ed\u00a0\u0080', '\u00ef\u00bb\u00bf', valueByte(rng)])
      headers[h][1] = spliceString(value, at, rng.chance(0.3) ? 1 : 0, insert)
      return
    }
    case 'placeholder':
      headers[h][1] = rng.pick(PLACEHOLDERS)
      return
    case 'swap': {
      // the same header (or the whole set) as written for another certificate or status
      const other = ctx.target.build(randomInput(ctx, rng), rng).headers
      if (rng.chance(0.2) || headers.length === 0) {
        headers.splice(0, headers.length, ...other.map(([n, v]): Header => [n, v]))
        return
      }
      const twin = other.find(([n]) => n.toLowerCase() === name.toLowerCase()) ?? rng.pick(other)
      headers[h][1] = twin[1]
      return
    }
    case 'foreign': {
      const input = randomInput(ctx, rng)
      headers[h][1] = rng.pick(FOREIGN_FORMS)(input.der, input.chain)
      return
    }
    case 'delete':
      headers.splice(h, 1)
      return
    case 'otherPreset': {
      // another mapping's headers beside (or instead of) these: names shared between presets meet other forms
      const other = rng.pick(ctx.targets).build(randomInput(ctx, rng), rng).headers
      if (rng.chance(0.5)) headers.splice(0, headers.length)
      for (const [n, v] of other) if (rng.chance(0.7)) headers.push([n, v])
      return
    }
    case 'whitespace':
      headers[h][1] = rng.pick([` ${value}`, `${value} `, `\t${value}\t`, spliceString(value, at, 0, rng.pick([' ', '  ', '\t', ' \t ']))])
      return
    case 'repeat':
      headers[h][1] = rng.pick([`${value},${value}`, `${value}, ${value}`, value + value, `${value};${value}`])
      return
    case 'valueCase':
      headers[h][1] = rng.chance(0.5) ? value.toLowerCase() : value.toUpperCase()
      return
    case 'move': {
      const from = rng.int(value.length + 1)
      const to = Math.min(value.length, from + rng.int(40))
      const piece = value.slice(from, to)
      const rest = value.slice(0, from) + value.slice(to)
      headers[h][1] = spliceString(rest, rng.int(rest.length + 1), 0, piece)
    }
  }
}

export interface FuzzRequest {
  target: string
  index: number
  path: '/whoami' | '/maybe'
  bytes: Buffer
  /** unmutated: the genuine headers of `genuine` */
  pristine: boolean
  genuine: Genuine
  /** what the unmutated headers said of the verification */
  status: Status
  whole: boolean
  /**
   * an unmutated value starts or ends with a space or tab, which HTTP drops: a name whose last attribute ends
   * in spaces (OpenSSL's one-line form does not escape them) then reads back without them
   */
  trimmed: boolean
  mutations: string[]
}

/** The request number `index` of a run with `seed` against `target`. */
export function generateRequest (seed: number, ctx: Context, index: number): FuzzRequest {
  const rng = new Rng(seed, ctx.target.name, index)
  const input = randomInput(ctx, rng)
  const mutations: string[] = []
  const pristine = rng.chance(0.12)
  if (!pristine && rng.chance(0.3)) {
    input.der = mutateDer(input.der, ctx.genuine, rng)
    mutations.push('der')
  }
  if (!pristine && rng.chance(0.15)) {
    input.chain = rng.pick([
      [], [input.genuine.der], [...input.chain, ...input.chain], Array(10).fill(input.chain[0] ?? input.der), [rng.pick(ctx.genuine).der],
      input.chain.map((der) => mutateDer(der, ctx.genuine, rng)), [mutateDer(input.chain[0] ?? input.der, ctx.genuine, rng), ...input.chain],
      [mutateDer(rng.pick(ctx.authorities), ctx.genuine, rng)], [rng.pick(ctx.authorities), ...input.chain]
    ])
    mutations.push('chain')
  }
  const built = ctx.target.build(input, rng)
  const headers = built.headers.map(([n, v]): Header => [n, v])
  if (!pristine) {
    const count = mutations.length > 0 && rng.chance(0.5) ? 0 : 1 + (rng.chance(0.5) ? rng.int(3) : 0)
    for (let i = 0; i < count; i++) {
      const kind = rng.weighted(MUTATIONS)
      mutateHeaders(headers, ctx, rng, kind)
      mutations.push(kind)
    }
  }
  const path = rng.chance(0.6) ? '/whoami' : '/maybe'
  let head = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n`
  for (const [name, value] of headers) {
    // A line break would split the request in two and misalign every later answer on the connection.
    if (/[\r\n]/.test(name + value)) throw new Error(`fuzz harness produced a line break in ${ctx.target.name} #${index}`)
    head += `${name}: ${value}\r\n`
  }
  return {
    target: ctx.target.name,
    index,
    path,
    bytes: Buffer.from(`${head}\r\n`, 'latin1'),
    pristine,
    genuine: input.genuine,
    status: built.said ?? 'success',
    whole: built.whole,
    trimmed: built.headers.some(([, value]) => /^[ \t]|[ \t]$/.test(value)),
    mutations
  }
}

// ---------------------------------------------------------------------------------------------- the app

/** The echo of an identity: its fields, and the forwarded certificate's DER so the oracle can re-derive them. */
function echo (identity: ClientCertIdentity | null): unknown {
  if (identity === null) return null
  const { certificate, ...rest } = identity
  return { ...rest, der: certificate === null ? null : certificate.raw.toString('base64') }
}

export interface RunningTarget {
  target: FuzzTarget
  app: FastifyInstance
  port: number
}

/** Fastify in proxy mode for `target`, on 127.0.0.1 port 0; Node's own header limit well above `maxHeaderBytes`. */
export async function startTarget (target: FuzzTarget): Promise<RunningTarget> {
  const app = Fastify({ logger: false, http: { maxHeaderSize: 65536 } } as FastifyServerOptions) as unknown as FastifyInstance
  await app.register(fastifyClientCert, target.options)
  app.get('/whoami', async (request) => echo(request.clientCert))
  app.get('/maybe', { config: { clientCert: { required: false } } }, async (request) => ({ clientCert: echo(request.clientCert) }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  return { target, app, port: (app.server.address() as { port: number }).port }
}

// ---------------------------------------------------------------------------------------------- the wire

export interface Answer {
  status: number
  headers: Record<string, string>
  body: string
}

/** One keep-alive HTTP/1.1 connection sending one request at a time; reconnects after the server closes. */
export class Lane {
  readonly #port: number
  readonly #timeoutMs: number
  #socket: Socket | null = null
  #closed = true
  #buffer: Buffer = Buffer.alloc(0)
  #waiting: ((result: Answer | Error) => void) | null = null

  constructor (port: number, timeoutMs = 10_000) {
    this.#port = port
    this.#timeoutMs = timeoutMs
  }

  async #open (): Promise<Socket> {
    if (this.#socket !== null && !this.#closed) return this.#socket
    const socket = connect({ host: '127.0.0.1', port: this.#port })
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    socket.setNoDelay(true)
    this.#socket = socket
    this.#closed = false
    this.#buffer = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk])
      this.#parse()
    })
    const closed = (error?: Error): void => {
      if (this.#socket !== socket) return
      this.#closed = true
      const waiting = this.#waiting
      this.#waiting = null
      waiting?.(new Error(`connection closed without a response${error === undefined ? '' : ` (${error.message})`}`))
    }
    socket.on('error', closed)
    socket.on('close', () => closed())
    return socket
  }

  #parse (): void {
    if (this.#waiting === null) return
    const end = this.#buffer.indexOf('\r\n\r\n')
    if (end === -1) return
    const head = this.#buffer.subarray(0, end).toString('latin1').split('\r\n')
    const status = Number(head[0].split(' ')[1])
    const headers: Record<string, string> = {}
    for (const line of head.slice(1)) {
      const colon = line.indexOf(':')
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
    }
    const length = Number(headers['content-length'] ?? 0)
    if (this.#buffer.length < end + 4 + length) return
    const body = this.#buffer.subarray(end + 4, end + 4 + length).toString('utf8')
    this.#buffer = this.#buffer.subarray(end + 4 + length)
    const waiting = this.#waiting
    this.#waiting = null
    waiting({ status, headers, body })
  }

  async send (bytes: Buffer): Promise<Answer> {
    const socket = await this.#open()
    const answer = await new Promise<Answer | Error>((resolve) => {
      const timer = setTimeout(() => {
        this.#waiting = null
        resolve(new Error(`no response within ${this.#timeoutMs} ms`))
      }, this.#timeoutMs)
      this.#waiting = (result) => {
        clearTimeout(timer)
        resolve(result)
      }
      socket.write(bytes)
    })
    if (answer instanceof Error) {
      this.close()
      throw answer
    }
    // The server closes after refusing bytes its parser could not read; start afresh then.
    if (answer.headers.connection === 'close' || isParserRefusal(answer)) this.close()
    return answer
  }

  close (): void {
    this.#socket?.destroy()
    this.#socket = null
    this.#closed = true
  }
}

/** An answer written by Node's HTTP parser error path (Fastify's clientError handler), not by a route. */
export function isParserRefusal (answer: Answer): boolean {
  return (answer.status === 400 && answer.body.includes('"message":"Client Error"')) ||
    (answer.status === 431 && answer.body.includes('Exceeded maximum allowed HTTP header size'))
}

// ---------------------------------------------------------------------------------------------- the oracle

const CODES: Record<number, readonly string[]> = {
  400: ['FST_CLIENT_CERT_BAD_HEADER'],
  401: ['FST_CLIENT_CERT_MISSING', 'FST_CLIENT_CERT_INVALID'],
  403: ['FST_CLIENT_CERT_FORBIDDEN']
}

export interface Verdict {
  /** the count it falls under: `200 verified`, `400 FST_CLIENT_CERT_BAD_HEADER`, `parser 400`… */
  outcome: string
  /** why the answer breaks the oracle, or null */
  violation: string | null
}

function parseJSON (text: string): any {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** Judges one answer against the oracle. */
export function judgeAnswer (ctx: Context, request: FuzzRequest, answer: Answer): Verdict {
  if (isParserRefusal(answer)) return { outcome: `parser ${answer.status}`, violation: null }
  const body = parseJSON(answer.body)
  if (answer.status !== 200) {
    const code = typeof body?.code === 'string' ? body.code as string : 'no code'
    const outcome = `${answer.status} ${code}`
    if (!(CODES[answer.status]?.includes(code) ?? false)) return { outcome, violation: `unexpected answer ${outcome}` }
    if (request.pristine && request.status === 'success' && request.whole && request.genuine.verifies && !ctx.target.revoked.includes(request.genuine.name)) {
      return { outcome, violation: `unmutated headers of '${request.genuine.name}' refused with ${outcome}` }
    }
    return { outcome, violation: null }
  }
  if (body === undefined) return { outcome: '200 unreadable', violation: 'a 200 whose body is not JSON' }
  const identity = (request.path === '/maybe' ? body.clientCert : body) as Record<string, unknown> | null | undefined
  if (identity === null || identity === undefined) {
    const violation = request.path === '/whoami' ? 'the required route admitted a request without an identity' : null
    return { outcome: '200 none', violation }
  }
  const outcome = identity.verified === true ? '200 verified' : '200 unverified'
  const violation = checkIdentity(ctx, request, identity)
  return { outcome, violation }
}

function checkIdentity (ctx: Context, request: FuzzRequest, identity: Record<string, unknown>): string | null {
  const { target, genuine } = ctx
  if (identity.source !== 'proxy' || identity.proxy !== target.proxyName) return `identity source ${String(identity.source)}/${String(identity.proxy)}`
  if (identity.verified !== true && identity.verified !== false) return 'identity.verified is not a boolean'
  if (request.path === '/whoami' && identity.verified !== true) return 'the required route admitted an unverified identity'
  const got = projection(identity)
  const der = typeof identity.der === 'string' ? identity.der : null
  if (der !== null) {
    // Whatever the verdict, the fields must be what the forwarded certificate itself says.
    const own = genuine.find((g) => g.der.toString('base64') === der)?.expected ?? safeProjection(der)
    if (own !== got) return 'identity fields differ from the forwarded certificate\'s'
  }
  if (identity.verified === true) {
    if (target.strong) {
      if (der === null) return 'verified without the whole certificate although proxy.ca is set'
      if (!genuine.some((g) => g.verifies && !target.revoked.includes(g.name) && g.expected === got)) {
        return 'verified identity is no genuine certificate that verifies'
      }
    }
    if (der !== null && genuine.some((g) => target.revoked.includes(g.name) && g.der.toString('base64') === der)) return 'a revoked certificate verified'
    if (request.pristine && request.status === 'failure') return 'verified although the proxy said the verification failed'
  }
  if (request.pristine && request.status === 'success' && request.whole && request.genuine.verifies && !target.revoked.includes(request.genuine.name)) {
    if (identity.verified !== true) return `unmutated headers of '${request.genuine.name}' not verified`
    if (got !== request.genuine.expected) return `unmutated headers of '${request.genuine.name}' gave another identity`
  }
  if (request.pristine && !request.whole && !request.trimmed && der === null) {
    // Names forwarded without the certificate: each field they give must read back as the certificate's own.
    const expected = JSON.parse(request.genuine.expected) as Record<string, unknown>
    for (const field of ['subject', 'issuer', 'serialNumber', 'fingerprint256', 'spiffeId'] as const) {
      if (identity[field] !== null && identity[field] !== undefined && identity[field] !== expected[field]) {
        return `unmutated names of '${request.genuine.name}' read back with another ${field}`
      }
    }
    const san = identity.san as Record<string, unknown> | null
    const genuineSan = expected.san as Record<string, unknown> | null
    for (const kind of ['uri', 'dns'] as const) {
      if (san !== null && canonical(san[kind]) !== canonical(genuineSan?.[kind] ?? [])) {
        return `unmutated names of '${request.genuine.name}' read back with other ${kind} SANs`
      }
    }
  }
  return null
}

function safeProjection (der: string): string {
  try {
    return projection(identityFromCertificate(Buffer.from(der, 'base64')) as unknown as Record<string, unknown>)
  } catch (error) {
    return `unreadable: ${(error as Error).message}`
  }
}

// ---------------------------------------------------------------------------------------------- runs

export interface Violation {
  seed: number
  target: string
  index: number
  message: string
  mutations: string[]
  request: Buffer
  answer: string
}

export interface FuzzReport {
  seed: number
  requests: number
  ms: number
  /** outcome → count, over all targets */
  totals: Map<string, number>
  byTarget: Map<string, Map<string, number>>
  violations: Violation[]
}

export interface FuzzOptions {
  seed: number
  /** requests over all targets, shared out round-robin */
  requests: number
  /** target names or preset names to run (default: every target) */
  only?: readonly string[]
  /** connections sending at once */
  concurrency?: number
  caAsLeaf?: boolean
  /** stop after this many violations */
  maxViolations?: number
  onProgress?: (report: FuzzReport) => void
  progressEveryMs?: number
  onViolation?: (violation: Violation) => void
  /** apps already started by `startTargets` (left running); by default the run starts and closes its own */
  running?: readonly RunningTarget[]
}

async function corpusAuthorities (): Promise<Buffer[]> {
  const corpus = await getCorpus()
  return [corpus.root.der, corpus.intermediate.der, corpus.rogueRoot.der]
}

function selectTargets (targets: FuzzTarget[], only: readonly string[] | undefined): FuzzTarget[] {
  if (only === undefined || only.length === 0) return targets
  const chosen = targets.filter((t) => only.includes(t.name) || only.includes(t.name.replace(/\+ca$/, '')))
  if (chosen.length === 0) throw new Error(`no fuzz target named ${only.join(', ')}: ${targets.map((t) => t.name).join(', ')}`)
  return chosen
}

function increment (counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1)
}

/** Starts an app for each target (every target by default). */
export async function startTargets (only?: readonly string[]): Promise<RunningTarget[]> {
  return await Promise.all(selectTargets(await fuzzTargets(), only).map(startTarget))
}

/** Runs `requests` requests against every selected target and judges each answer. */
export async function runFuzz (options: FuzzOptions): Promise<FuzzReport> {
  const genuine = await genuineCertificates({ caAsLeaf: options.caAsLeaf })
  const all = await fuzzTargets()
  const targets = options.running?.map((r) => r.target) ?? selectTargets(all, options.only)
  const running = options.running ?? await Promise.all(targets.map(startTarget))
  const authorities = await corpusAuthorities()
  const contexts = targets.map((target): Context => ({ target, targets: all, genuine, authorities }))
  const report: FuzzReport = { seed: options.seed, requests: 0, ms: 0, totals: new Map(), byTarget: new Map(), violations: [] }
  for (const target of targets) report.byTarget.set(target.name, new Map())
  const maxViolations = options.maxViolations ?? 10
  const started = performance.now()
  let lastProgress = started
  let next = 0

  async function lane (): Promise<void> {
    const lanes = running.map((r) => new Lane(r.port))
    try {
      while (next < options.requests && report.violations.length < maxViolations) {
        const i = next++
        const t = i % targets.length
        const ctx = contexts[t]
        const request = generateRequest(options.seed, ctx, Math.floor(i / targets.length))
        let verdict: Verdict
        let answerText: string
        try {
          const answer = await lanes[t].send(request.bytes)
          verdict = judgeAnswer(ctx, request, answer)
          answerText = `${answer.status} ${answer.body}`
        } catch (error) {
          verdict = { outcome: 'no answer', violation: (error as Error).message }
          answerText = ''
        }
        report.requests++
        increment(report.totals, verdict.outcome)
        increment(report.byTarget.get(ctx.target.name)!, verdict.outcome)
        if (verdict.violation !== null) {
          increment(report.totals, 'VIOLATION')
          const violation: Violation = {
            seed: options.seed,
            target: ctx.target.name,
            index: request.index,
            message: verdict.violation,
            mutations: request.mutations,
            request: request.bytes,
            answer: answerText
          }
          report.violations.push(violation)
          options.onViolation?.(violation)
        }
        const now = performance.now()
        if (options.onProgress !== undefined && now - lastProgress >= (options.progressEveryMs ?? 2000)) {
          lastProgress = now
          report.ms = now - started
          options.onProgress(report)
        }
      }
    } finally {
      for (const l of lanes) l.close()
    }
  }

  try {
    await Promise.all(Array.from({ length: options.concurrency ?? 8 }, lane))
  } finally {
    report.ms = performance.now() - started
    if (options.running === undefined) await Promise.all(running.map(async (r) => await r.app.close()))
  }
  return report
}

/** What generating and judging the requests of `targetName` needs. */
export async function fuzzContext (targetName: string, options: { caAsLeaf?: boolean } = {}): Promise<Context> {
  const all = await fuzzTargets()
  const target = all.find((t) => t.name === targetName)
  if (target === undefined) throw new Error(`no fuzz target ${targetName}`)
  return { target, targets: all, genuine: await genuineCertificates(options), authorities: await corpusAuthorities() }
}

/** The request `index` of `target` in a run with `seed`, as the run sent it. */
export async function replayRequest (seed: number, targetName: string, index: number, options: { caAsLeaf?: boolean } = {}): Promise<{ request: FuzzRequest, answer: Answer | Error, verdict: Verdict | null }> {
  const ctx = await fuzzContext(targetName, options)
  const target = ctx.target
  const request = generateRequest(seed, ctx, index)
  const running = await startTarget(target)
  const lane = new Lane(running.port)
  try {
    const answer = await lane.send(request.bytes)
    return { request, answer, verdict: judgeAnswer(ctx, request, answer) }
  } catch (error) {
    return { request, answer: error as Error, verdict: null }
  } finally {
    lane.close()
    await running.app.close()
  }
}

/** Bytes as a readable, exact literal: printable ASCII as is, everything else escaped. */
export function showBytes (bytes: Buffer): string {
  let out = ''
  for (const byte of bytes) {
    if (byte === 0x0d) out += '\\r'
    else if (byte === 0x0a) out += '\\n'
    else if (byte === 0x5c) out += '\\\\'
    else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte)
    else out += `\\x${byte.toString(16).padStart(2, '0')}`
  }
  return out
}

/** Everything needed to reproduce a violation. */
export function describeViolation (v: Violation): string {
  return [
    `oracle violation: ${v.message}`,
    `  target ${v.target}, seed ${v.seed}, request #${v.index}, mutations ${v.mutations.join(',') || 'none'}`,
    `  replay: npm run fuzz -- --seed ${v.seed} --replay ${v.target}:${v.index}`,
    `  request bytes (${v.request.length}): ${showBytes(v.request).slice(0, 4000)}${v.request.length > 4000 ? '…' : ''}`,
    `  request base64: ${v.request.length <= 6000 ? v.request.toString('base64') : '(long: use --replay)'}`,
    `  answer: ${v.answer.slice(0, 500)}`
  ].join('\n')
}

/** `outcome n, …` sorted by count */
export function formatCounts (counts: Map<string, number>): string {
  return [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}: ${n}`).join(', ')
}
