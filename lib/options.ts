import proxyAddr from '@fastify/proxy-addr'
import { createHash, X509Certificate } from 'node:crypto'
import { resolve } from 'node:path'
import { compileAllow, type AllowPredicate, type AllowRules } from './policy/allow.js'
import { ClientCertInvalidOptionError } from './errors.js'
import { isTrustDomain } from './codecs/spiffe.js'
import { isJwkSetInput, jwkSetCertificates, type SpiffeBundles, type SpiffeJwkSet } from './policy/spiffe-bundles.js'
import type { ClientCertIdentity } from './identity.js'
import { normalizeRevocation, type DistributionPointSettings, type RevocationOptions } from './revocation/distribution-points.js'
import { normalizeOcsp, type OcspSettings } from './revocation/ocsp.js'
import { createCustomPreset } from './sources/presets/custom.js'
import { createEnvoyPreset, type NormalizedXfcc } from './sources/presets/envoy.js'
import { getPreset, presetNames } from './sources/presets/index.js'
import type { CustomHeaderMapping, Preset, XfccOptions } from './sources/presets/types.js'
import type { FastifyRequest } from 'fastify'
import type { ClientCertUser, ClientCertUserProperty } from './plugin.js'
import type { WatchSettings } from './rotation.js'

export type ClientCertMode = 'tls' | 'proxy' | 'auto'

/** What `proxy.preset` accepts. A proxy without a preset is described by `proxy.headers` (identities then say `'custom'`). */
export type ClientCertPresetName =
  | 'nginx' | 'apache' | 'haproxy' | 'caddy' | 'envoy' | 'traefik' | 'aws-alb' | 'aws-alb-passthrough'
  | 'gcp' | 'cloudflare' | 'azure' | 'rfc9440'

/** A PEM string or Buffer (one or several blocks), a DER Buffer, or a list of them. */
export type PemOrDerInput = string | Buffer | ReadonlyArray<string | Buffer>

export interface ProxyOptions {
  /** The proxy whose header conventions to read. Give `preset` or `headers`, not both. */
  preset?: ClientCertPresetName
  /** A custom header mapping for proxies without a preset. */
  headers?: CustomHeaderMapping
  /**
   * Who may send certificate headers, judged on the TCP peer address (never `X-Forwarded-For`):
   * IPs, CIDRs, `'loopback'`/`'linklocal'`/`'uniquelocal'`, `'unix'` for a Unix domain socket, or a function.
   * No default.
   */
  trust: string | readonly string[] | ((address: string) => boolean)
  /** A shared secret the proxy adds, for hosts where clients and the proxy share an address. */
  secret?: { header: string, value: string }
  /** CA certificate(s): verify the forwarded certificate's chain, dates and clientAuth usage in the app too. */
  ca?: PemOrDerInput
  /** Longer certificate headers are refused (400) before any decoding. Default 16384. */
  maxHeaderBytes?: number
  /** How to read Envoy's `X-Forwarded-Client-Cert` (preset `envoy`, or a mapping with cert encoding `xfcc`). */
  xfcc?: XfccOptions
}

/**
 * One trust domain's bundle: its X509-SVID CA certificates as PEM/DER (as `ca` takes them), or the SPIFFE bundle
 * format (a JWK Set with `use: 'x509-svid'` keys, as SPIRE's bundle endpoint serves it: parsed, or its JSON text).
 */
export type SpiffeBundleInput = string | Buffer | SpiffeJwkSet | ReadonlyArray<string | Buffer | SpiffeJwkSet>

export interface SpiffeOptions {
  /**
   * Trust domain name → its bundle. A certificate's SPIFFE ID then counts only when the certificate chains to the
   * bundle of the ID's own trust domain, and certificates that carry one must follow the X509-SVID rules.
   */
  bundles: Readonly<Record<string, SpiffeBundleInput>>
}

/** One file path, or several whose contents are used together (a CA bundle split over files). */
export type WatchedPaths = string | readonly string[]

/**
 * Files the plugin keeps current while another process rewrites them (cert-manager, SPIRE's agent, Vault agent,
 * a Kubernetes secret volume): the registration options' shape, with file paths in place of contents.
 */
export interface WatchOptions {
  /**
   * The server's own key and certificate (given together), and the CA bundle that verifies clients
   * (`https.ca`): swapped into the TLS server for new handshakes (direct TLS: mode `'tls'` or `'auto'`).
   */
  https?: { key?: string, cert?: string, ca?: WatchedPaths }
  /** Replaces `proxy.ca` (not both). */
  proxy?: { ca: WatchedPaths }
  /** Replaces `crl` (not both). PEM or DER files. */
  crl?: WatchedPaths
  /** Replaces `spiffe` (not both): trust domain → its bundle file(s), PEM or the SPIFFE bundle format (JSON). */
  spiffe?: { bundles: Readonly<Record<string, WatchedPaths>> }
  /** Milliseconds between two reads of every watched file, besides file system events. Default 1000. */
  interval?: number
}

export interface CacheBounds {
  /** Entries. 0 disables the cache. */
  max?: number
  /** Milliseconds an entry lives; 0: until evicted. */
  ttl?: number
}

export interface CertificateCacheBounds extends CacheBounds {
  /** Approximate bytes the cache may hold (header values, decoded certificates). Default 64 MiB. */
  maxBytes?: number
}

export interface CacheOptions {
  /** Entries of each cache, unless `users` or `certificates` says otherwise. 0 disables it. Default 10 000. */
  max?: number
  /** Milliseconds an entry of each cache lives, unless `users` or `certificates` says otherwise. Default 300 000. */
  ttl?: number
  /** Users found by `resolveUser`, by certificate. */
  users?: CacheBounds
  /** Forwarded certificates that verified, by header value (proxy modes). */
  certificates?: CertificateCacheBounds
}

export type AuthorizeHook = (identity: ClientCertIdentity, request: FastifyRequest) => boolean | Promise<boolean>
/** What `resolveUser` may return: a user, or any falsy value (`null`, `undefined`, `false`, `0`, `''`) to refuse (403). */
export type ResolvedUser<User> = User | null | undefined | false | 0 | ''
export type ResolveUserHook<User = unknown> = (identity: ClientCertIdentity, request: FastifyRequest) => ResolvedUser<User> | Promise<ResolvedUser<User>>

/**
 * `userProperty` follows the name declared in `FastifyClientCertUser`: optional (`'user'`) when none is
 * declared, required when one is, so the request property the types promise is the one the plugin fills.
 */
export type UserPropertyOption = [ClientCertUserProperty] extends ['user']
  ? {
      /** The request property `resolveUser` fills. Default `'user'`. */
      userProperty?: 'user'
    }
  : {
      /** The request property `resolveUser` fills: the name declared in `FastifyClientCertUser`. */
      userProperty: ClientCertUserProperty
    }

export interface FastifyClientCertOptions extends UserPropertyOption {
  /** `'tls'` (default): Fastify terminates TLS; `'proxy'`: a trusted proxy forwards the certificate; `'auto'`: both. */
  mode?: ClientCertMode
  /** The default route policy: `true` (default) answers 401 without a verified certificate. */
  required?: boolean
  /** Required for `'proxy'` and `'auto'`. */
  proxy?: ProxyOptions
  /** PEM or DER CRL(s): revoked certificates are refused in both modes. */
  crl?: PemOrDerInput
  /**
   * Online revocation: `{ distributionPoints }` downloads the CRLs verified certificates point at; `{ ocsp }` asks
   * the leaf's OCSP responder; `order` says which decides when both are on.
   */
  revocation?: RevocationOptions
  /** SPIFFE trust domains bound to their bundles (federation): see "Workload identity (SPIFFE)". */
  spiffe?: SpiffeOptions
  /** Files to keep current without a restart: see "Rotating certificates". */
  watch?: WatchOptions
  /** Authorization rules every route uses unless it sets its own. */
  allow?: AllowRules
  /** Runs after `allow` for verified certificates; only a returned `true` admits. */
  authorize?: AuthorizeHook
  /** Maps a verified identity to the application's user (`request.user`); `null` or any falsy value refuses (403). */
  resolveUser?: ResolveUserHook<ClientCertUser>
  /** Bounds of the user cache and of the forwarded-certificate cache. */
  cache?: CacheOptions
  /**
   * Enables `fastify.clientCert.injectAs()` so tests can `inject()` routes as a given certificate.
   * Refused when `NODE_ENV` is `production`.
   */
  testing?: boolean
}

/** Per-route settings under `config.clientCert`. `false` switches the plugin off for the route. */
export interface ClientCertRouteOptions {
  /** Overrides the plugin's `required` for this route. */
  required?: boolean
  /** Replaces the plugin's `allow` for this route. */
  allow?: AllowRules
}

export interface NormalizedProxy {
  preset: Preset
  /** Lower-case names of every header the preset reads. */
  headerNames: ReadonlySet<string>
  /** certificate headers whose repeated field lines join (RFC 9110 lists) instead of being refused */
  listHeaderNames: ReadonlySet<string>
  isTrusted: (address: string) => boolean
  secret: { header: string, digest: Buffer } | null
  maxHeaderBytes: number
}

export interface Settings {
  mode: ClientCertMode
  required: boolean
  proxy: NormalizedProxy | null
  proxyCa: X509Certificate[] | null
  spiffe: SpiffeBundles | null
  /** `watch`: files read in the plugin's register, then kept current. */
  watch: WatchSettings | null
  /** The `crl` input, its type checked; read in the plugin's register, in slices when large. */
  crl: ReadonlyArray<string | Buffer> | null
  /** `revocation.distributionPoints`, checked; `null` when off. */
  distributionPoints: DistributionPointSettings | null
  /** `revocation.ocsp` (with `revocation.order`), checked; `null` when off. */
  ocsp: OcspSettings | null
  allow: AllowPredicate | null
  authorize: AuthorizeHook | null
  resolveUser: ResolveUserHook | null
  /** The request property `resolveUser` fills. */
  userProperty: string
  cache: CacheSettings
  testing: boolean
}

export interface CacheSettings {
  users: { max: number, ttl: number }
  certificates: { max: number, ttl: number, maxBytes: number }
}

export interface RoutePolicy {
  required: boolean
  allow: AllowPredicate | null
}

const topLevelKeys = new Set(['mode', 'required', 'proxy', 'crl', 'revocation', 'spiffe', 'watch', 'allow', 'authorize', 'resolveUser', 'userProperty', 'cache', 'testing'])
const proxyKeys = new Set(['preset', 'headers', 'trust', 'secret', 'ca', 'maxHeaderBytes', 'xfcc'])
const xfccKeys = new Set(['hops', 'cert'])
const cacheKeys = new Set(['max', 'ttl', 'users', 'certificates'])
const userCacheKeys = new Set(['max', 'ttl'])
const certificateCacheKeys = new Set(['max', 'ttl', 'maxBytes'])
const routeKeys = new Set(['required', 'allow'])
const modes = new Set(['tls', 'proxy', 'auto'])
// RFC 9110 token characters: what a header name may hold.
const headerNamePattern = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

// What a Fastify request already has (own fields, then Request.prototype), and this plugin's own decorators:
// resolveUser must never overwrite one of them.
const requestMembers = new Set([
  'id', 'params', 'raw', 'query', 'log', 'body', 'server', 'url', 'originalUrl', 'method', 'routeOptions', 'is404',
  'socket', 'signal', 'ip', 'ips', 'host', 'hostname', 'port', 'protocol', 'headers', 'additionalHeaders', 'mediaType',
  'getValidationFunction', 'compileValidationSchema', 'validateInput', 'getDecorator', 'setDecorator',
  'context', 'routeConfig', 'routeSchema', 'clientCert', 'requireClientCert'
])
const propertyNamePattern = /^[A-Za-z_$][\w$]*$/

function fail (option: string, reason: string): never {
  throw new ClientCertInvalidOptionError(option, reason)
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

function checkKeys (value: Record<string, unknown>, allowed: ReadonlySet<string>, prefix: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.has(key)) fail(prefix + key, 'is not an option of fastify-client-cert')
  }
}

function optionalBoolean (value: unknown, option: string, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') fail(option, 'must be a boolean')
  return value
}

function optionalFunction<T> (value: unknown, option: string): T | null {
  if (value === undefined) return null
  if (typeof value !== 'function') fail(option, 'must be a function')
  return value as T
}

function normalizeUserProperty (value: unknown): string {
  if (value === undefined) return 'user'
  if (typeof value !== 'string' || !propertyNamePattern.test(value)) fail('userProperty', 'must be a property name (letters, digits, _ and $)')
  if (requestMembers.has(value) || value in Object.prototype) fail('userProperty', `must not be '${value}': Fastify requests already have it`)
  return value
}

function nonNegativeInteger (value: unknown, option: string, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) fail(option, 'must be a non-negative integer')
  return value
}

function pemOrDerList (value: unknown, option: string): Array<string | Buffer> {
  const list = Array.isArray(value) ? value : [value]
  if (list.length === 0) fail(option, 'must not be empty')
  list.forEach((item, index) => {
    if (typeof item !== 'string' && !Buffer.isBuffer(item)) {
      fail(Array.isArray(value) ? `${option}[${index}]` : option, 'must be a PEM string or a PEM/DER Buffer')
    }
  })
  return list as Array<string | Buffer>
}

const pemCertificatePattern = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g

/** Loads CA certificates (PEM bundles or DER) for the app-side chain check; CAs only. */
export function loadCertificates (value: unknown, option: string): X509Certificate[] {
  const certificates: X509Certificate[] = []
  pemOrDerList(value, option).forEach((item, index) => {
    const itemOption = Array.isArray(value) ? `${option}[${index}]` : option
    const text = typeof item === 'string' ? item : item.toString('latin1')
    const blocks = text.includes('-----BEGIN') ? text.match(pemCertificatePattern) ?? [] : [item]
    if (blocks.length === 0) fail(itemOption, 'holds no PEM certificate')
    for (const block of blocks) {
      let certificate: X509Certificate
      try {
        certificate = new X509Certificate(block)
      } catch {
        fail(itemOption, 'holds something that is not a valid X.509 certificate')
      }
      if (!certificate.ca) fail(itemOption, 'holds a certificate that is not a CA (basicConstraints CA:TRUE)')
      certificates.push(certificate)
    }
  })
  return certificates
}

/** Loads `spiffe.bundles` (or a value of the same shape under another `option` name): trust domain → its CAs. */
export function loadSpiffeBundles (value: unknown, option: string): SpiffeBundles {
  if (!isPlainObject(value) || Object.keys(value).length === 0) fail(option, 'must map at least one trust domain to its bundle')
  const bundles = new Map<string, X509Certificate[]>()
  for (const [name, input] of Object.entries(value)) {
    const domainOption = `${option}[${JSON.stringify(name)}]`
    if (!isTrustDomain(name)) fail(domainOption, 'is not a trust domain name (lower-case letters, digits, ".", "-" and "_", as in spiffe://example.org)')
    const items: unknown[] = Array.isArray(input) ? input : [input]
    if (items.length === 0) fail(domainOption, 'must not be empty')
    bundles.set(name, items.flatMap((item, index) => {
      const itemOption = Array.isArray(input) ? `${domainOption}[${index}]` : domainOption
      if (!isJwkSetInput(item)) return loadCertificates(item, itemOption)
      let certificates: Buffer[]
      try {
        certificates = jwkSetCertificates(item)
      } catch (error) {
        fail(itemOption, (error as Error).message)
      }
      return certificates.flatMap((der) => loadCertificates(der, itemOption))
    }))
  }
  return bundles
}

/** Loads `spiffe` (or a value of the same shape under another `option` name, `reload.spiffe`): `{ bundles }`. */
export function loadSpiffeOption (value: unknown, option: string): SpiffeBundles {
  if (!isPlainObject(value)) fail(option, 'must be { bundles }')
  checkKeys(value, new Set(['bundles']), option + '.')
  return loadSpiffeBundles(value.bundles, option + '.bundles')
}

function normalizeSpiffe (value: unknown): SpiffeBundles | null {
  return value === undefined ? null : loadSpiffeOption(value, 'spiffe')
}

function watchedPaths (value: unknown, option: string): string[] {
  const list: unknown[] = Array.isArray(value) ? value : [value]
  if (list.length === 0) fail(option, 'must not be empty')
  return list.map((path, index) => {
    if (typeof path !== 'string' || path === '') fail(Array.isArray(value) ? `${option}[${index}]` : option, 'must be a file path')
    // Resolved once: a later process.chdir() must not change which file is watched.
    return resolve(path)
  })
}

function normalizeWatch (value: unknown, options: Record<string, unknown>, mode: ClientCertMode): WatchSettings | null {
  if (value === undefined) return null
  if (!isPlainObject(value)) fail('watch', 'must be { https, proxy, crl, spiffe, interval }')
  checkKeys(value, new Set(['https', 'proxy', 'crl', 'spiffe', 'interval']), 'watch.')
  const { https, proxy, crl, spiffe } = value
  if (Object.keys(value).every((key) => key === 'interval')) fail('watch', 'names no file to watch')
  let tls: WatchSettings['https'] = null
  if (https !== undefined) {
    if (mode === 'proxy') fail('watch.https', "is the TLS server's material: mode 'proxy' does not terminate TLS")
    if (!isPlainObject(https)) fail('watch.https', 'must be { key, cert, ca }')
    checkKeys(https, new Set(['key', 'cert', 'ca']), 'watch.https.')
    if ((https.key === undefined) !== (https.cert === undefined)) fail('watch.https', 'takes key and cert together')
    if (https.key === undefined && https.ca === undefined) fail('watch.https', 'must name key and cert, or ca, or all three')
    tls = {
      key: https.key === undefined ? null : watchedPaths(https.key, 'watch.https.key')[0],
      cert: https.cert === undefined ? null : watchedPaths(https.cert, 'watch.https.cert')[0],
      ca: https.ca === undefined ? null : watchedPaths(https.ca, 'watch.https.ca')
    }
    if (Array.isArray(https.key) || Array.isArray(https.cert)) fail('watch.https', 'takes one key file and one certificate file')
  }
  let proxyCa: string[] | null = null
  if (proxy !== undefined) {
    if (mode === 'tls') fail('watch.proxy', "is only used in mode 'proxy' or 'auto'")
    if (!isPlainObject(proxy)) fail('watch.proxy', 'must be { ca }')
    checkKeys(proxy, new Set(['ca']), 'watch.proxy.')
    if ((options.proxy as ProxyOptions | undefined)?.ca !== undefined) fail('watch.proxy.ca', 'replaces proxy.ca: give one of them')
    proxyCa = watchedPaths(proxy.ca, 'watch.proxy.ca')
  }
  if (crl !== undefined && options.crl !== undefined) fail('watch.crl', 'replaces crl: give one of them')
  let bundles: Map<string, string[]> | null = null
  if (spiffe !== undefined) {
    if (options.spiffe !== undefined) fail('watch.spiffe', 'replaces spiffe: give one of them')
    if (!isPlainObject(spiffe)) fail('watch.spiffe', 'must be { bundles }')
    checkKeys(spiffe, new Set(['bundles']), 'watch.spiffe.')
    if (!isPlainObject(spiffe.bundles) || Object.keys(spiffe.bundles).length === 0) fail('watch.spiffe.bundles', 'must map at least one trust domain to its bundle file')
    bundles = new Map(Object.entries(spiffe.bundles).map(([domain, paths]) => {
      const option = `watch.spiffe.bundles[${JSON.stringify(domain)}]`
      if (!isTrustDomain(domain)) fail(option, 'is not a trust domain name (lower-case letters, digits, ".", "-" and "_", as in spiffe://example.org)')
      return [domain, watchedPaths(paths, option)]
    }))
  }
  const interval = nonNegativeInteger(value.interval, 'watch.interval', 1000)
  if (interval < 100) fail('watch.interval', 'must be at least 100 (milliseconds)')
  return {
    https: tls,
    crl: crl === undefined ? null : watchedPaths(crl, 'watch.crl'),
    proxyCa,
    spiffe: bundles,
    interval
  }
}

function normalizeTrust (value: unknown): (address: string) => boolean {
  if (value === undefined) fail('proxy.trust', 'is required: list the addresses of your proxies (there is no default)')
  if (typeof value === 'function') {
    const user = value as (address: string) => boolean
    return function trustedByFunction (address) { return user(address) === true }
  }
  const list = typeof value === 'string' ? [value] : value
  if (!Array.isArray(list) || list.length === 0) fail('proxy.trust', 'must be a non-empty list of IPs or CIDRs, or a function')
  const addresses: string[] = []
  let unix = false
  list.forEach((entry, index) => {
    if (typeof entry !== 'string') fail(`proxy.trust[${index}]`, 'must be a string')
    if (entry === 'unix') unix = true
    else addresses.push(entry)
  })
  let matches: (address: string, index: number) => boolean
  try {
    matches = proxyAddr.compile(addresses)
  } catch (error) {
    fail('proxy.trust', (error as Error).message)
  }
  return function trustedByList (address) {
    if (address === 'unix') return unix
    return matches(address, 0)
  }
}

function normalizeSecret (value: unknown): NormalizedProxy['secret'] {
  if (value === undefined) return null
  if (!isPlainObject(value)) fail('proxy.secret', 'must be { header, value }')
  checkKeys(value, new Set(['header', 'value']), 'proxy.secret.')
  const { header, value: secret } = value
  if (typeof header !== 'string' || !headerNamePattern.test(header)) fail('proxy.secret.header', 'must be a header name')
  if (typeof secret !== 'string' || secret.length < 16) fail('proxy.secret.value', 'must be a string of at least 16 characters')
  return { header: header.toLowerCase(), digest: digestSecret(secret) }
}

/** Secrets are compared as SHA-256 digests so the comparison is constant-time whatever the lengths. */
export function digestSecret (secret: string): Buffer {
  return createHash('sha256').update(secret, 'latin1').digest()
}

function normalizeXfcc (value: unknown): NormalizedXfcc | undefined {
  if (value === undefined) return undefined
  if (!isPlainObject(value)) fail('proxy.xfcc', 'must be { hops, cert }')
  checkKeys(value, xfccKeys, 'proxy.xfcc.')
  const hops = value.hops ?? 1
  if (typeof hops !== 'number' || !Number.isSafeInteger(hops) || hops < 1) fail('proxy.xfcc.hops', 'must be a positive integer: the number of Envoys that add an element')
  return Object.freeze({ hops, cert: optionalBoolean(value.cert, 'proxy.xfcc.cert', false) })
}

function normalizeProxy (value: unknown, mode: ClientCertMode): NormalizedProxy | null {
  if (value === undefined) {
    if (mode === 'tls') return null
    fail('proxy', `is required in mode '${mode}'`)
  }
  if (mode === 'tls') fail('proxy', "is only used in mode 'proxy' or 'auto': set mode too")
  if (!isPlainObject(value)) fail('proxy', 'must be an object')
  checkKeys(value, proxyKeys, 'proxy.')
  let preset: Preset
  if (value.preset !== undefined && value.headers !== undefined) fail('proxy', 'takes either preset or headers, not both')
  if (value.preset !== undefined) {
    const found = typeof value.preset === 'string' ? getPreset(value.preset) : undefined
    if (found === undefined) fail('proxy.preset', `must be one of ${presetNames.join(', ')}`)
    const xfcc = normalizeXfcc(value.xfcc)
    if (xfcc !== undefined && found.name !== 'envoy') fail('proxy.xfcc', 'applies to preset \'envoy\' or to proxy.headers.cert with encoding \'xfcc\'')
    preset = xfcc === undefined ? found : createEnvoyPreset(xfcc)
  } else if (value.headers !== undefined) {
    preset = createCustomPreset(value.headers as CustomHeaderMapping, normalizeXfcc(value.xfcc))
  } else {
    fail('proxy', 'needs a preset or a headers mapping')
  }
  const maxHeaderBytes = nonNegativeInteger(value.maxHeaderBytes, 'proxy.maxHeaderBytes', 16384)
  if (maxHeaderBytes < 256) fail('proxy.maxHeaderBytes', 'must be at least 256')
  return {
    preset,
    headerNames: new Set(preset.headers),
    listHeaderNames: new Set(preset.listHeaders ?? []),
    isTrusted: normalizeTrust(value.trust),
    secret: normalizeSecret(value.secret),
    maxHeaderBytes
  }
}

export function normalizeOptions (options: unknown): Settings {
  if (options === undefined || options === null) options = {}
  if (!isPlainObject(options)) fail('options', 'must be an object')
  checkKeys(options, topLevelKeys, '')
  const mode = options.mode ?? 'tls'
  if (typeof mode !== 'string' || !modes.has(mode)) fail('mode', "must be 'tls', 'proxy' or 'auto'")
  const proxy = normalizeProxy(options.proxy, mode as ClientCertMode)
  const proxyCa = proxy !== null && options.proxy !== undefined && (options.proxy as ProxyOptions).ca !== undefined
    ? loadCertificates((options.proxy as ProxyOptions).ca, 'proxy.ca')
    : null
  const watch = normalizeWatch(options.watch, options, mode as ClientCertMode)
  if ((proxyCa !== null || watch?.proxyCa != null) && (options.proxy as ProxyOptions).headers !== undefined && (options.proxy as ProxyOptions).headers!.cert === undefined) {
    fail(proxyCa === null ? 'watch.proxy.ca' : 'proxy.ca', 'needs a mapping that forwards the whole certificate (proxy.headers.cert): a name alone cannot be verified')
  }
  if (proxy !== null && !proxy.preset.proxyVerifies && proxyCa === null && watch?.proxyCa == null) {
    fail('proxy.ca', `is required with preset '${proxy.preset.name}': that proxy forwards certificates it has not verified`)
  }
  const testing = optionalBoolean(options.testing, 'testing', false)
  if (testing && process.env.NODE_ENV === 'production') {
    fail('testing', 'cannot be enabled when NODE_ENV is production')
  }
  return {
    mode: mode as ClientCertMode,
    required: optionalBoolean(options.required, 'required', true),
    proxy,
    proxyCa,
    spiffe: normalizeSpiffe(options.spiffe),
    watch,
    crl: options.crl === undefined ? null : pemOrDerList(options.crl, 'crl'),
    distributionPoints: normalizeRevocation(options.revocation),
    // After normalizeRevocation, which refuses a `revocation` that is not an object.
    ocsp: normalizeOcsp(options.revocation as Record<string, unknown> | undefined),
    allow: options.allow === undefined ? null : compileAllow(options.allow as AllowRules, 'allow'),
    authorize: optionalFunction<AuthorizeHook>(options.authorize, 'authorize'),
    resolveUser: optionalFunction<ResolveUserHook>(options.resolveUser, 'resolveUser'),
    userProperty: normalizeUserProperty(options.userProperty),
    cache: normalizeCache(options.cache),
    testing
  }
}

function cacheObject (value: unknown, option: string, keys: ReadonlySet<string>, shape: string): Record<string, unknown> {
  if (value === undefined) return {}
  if (!isPlainObject(value)) fail(option, `must be ${shape}`)
  checkKeys(value, keys, option + '.')
  return value
}

function normalizeCache (value: unknown): CacheSettings {
  // The top-level max and ttl bound both caches, as they always have; users and certificates refine each.
  const cache = cacheObject(value, 'cache', cacheKeys, '{ max, ttl, users, certificates }')
  const max = nonNegativeInteger(cache.max, 'cache.max', 10_000)
  const ttl = nonNegativeInteger(cache.ttl, 'cache.ttl', 300_000)
  const users = cacheObject(cache.users, 'cache.users', userCacheKeys, '{ max, ttl }')
  const certificates = cacheObject(cache.certificates, 'cache.certificates', certificateCacheKeys, '{ max, ttl, maxBytes }')
  return {
    users: {
      max: nonNegativeInteger(users.max, 'cache.users.max', max),
      ttl: nonNegativeInteger(users.ttl, 'cache.users.ttl', ttl)
    },
    certificates: {
      max: nonNegativeInteger(certificates.max, 'cache.certificates.max', max),
      ttl: nonNegativeInteger(certificates.ttl, 'cache.certificates.ttl', ttl),
      maxBytes: nonNegativeInteger(certificates.maxBytes, 'cache.certificates.maxBytes', 64 * 1024 * 1024)
    }
  }
}

/** Compiles `config.clientCert` of one route, once, in `onRoute`. `null`: the plugin does nothing for the route. */
export function compileRoutePolicy (value: unknown, settings: Settings, route: string): RoutePolicy | null {
  const prefix = `config.clientCert of route ${route}`
  if (value === false) return null
  if (value === undefined || value === true) return { required: settings.required, allow: settings.allow }
  if (!isPlainObject(value)) fail(prefix, 'must be false or { required, allow }')
  checkKeys(value, routeKeys, prefix + '.')
  return {
    required: optionalBoolean(value.required, prefix + '.required', settings.required),
    allow: value.allow === undefined ? settings.allow : compileAllow(value.allow as AllowRules, prefix + '.allow')
  }
}
