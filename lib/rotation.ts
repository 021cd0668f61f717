// Trust that rotates without a restart: the server's own key and certificate and the CA bundle that verifies
// clients (swapped into the TLS server for new handshakes), and the material the plugin judges by (CRLs,
// proxy.ca, SPIFFE bundles), kept current from files another process rewrites. plugin.ts applies what this
// file reads and validates, through the same path as reload().
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto'
import { watch, type FSWatcher } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { createSecureContext, type SecureContextOptions, type Server as TlsServer } from 'node:tls'
import { ClientCertInvalidOptionError } from './errors.js'
import { loadCertificates } from './options.js'
import { linkedIssuers } from './policy/chain.js'
import { certificationPath } from './policy/verdict.js'

/** What a TLS server's secure context is rebuilt from: `setSecureContext()` resets every option it is not given. */
const contextKeys = [
  'pfx', 'key', 'passphrase', 'cert', 'clientCertEngine', 'ca', 'minVersion', 'maxVersion', 'secureProtocol', 'crl',
  'sigalgs', 'ciphers', 'ecdhCurve', 'dhparam', 'honorCipherOrder', 'secureOptions', 'sessionIdContext',
  'sessionTimeout', 'ticketKeys', 'privateKeyIdentifier', 'privateKeyEngine'
] as const

/** The server's key, certificate (chain) and client CA bundle, as `https` takes them. */
export interface HttpsMaterial {
  key?: string | Buffer
  cert?: string | Buffer
  ca?: string | Buffer | ReadonlyArray<string | Buffer>
}

/** A validated secure context, ready to swap in; `anchors`: its client CAs when they were replaced. */
export interface PreparedContext {
  /** Only what this material replaces (`key` and `cert`, and/or `ca`): what a swap lays over the server's options. */
  replaces: SecureContextOptions
  anchors: X509Certificate[] | null
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/

function fail (option: string, reason: string, cause?: unknown): never {
  throw new ClientCertInvalidOptionError(option, reason, cause === undefined ? undefined : { cause })
}

function isPem (value: unknown): value is string | Buffer {
  return typeof value === 'string' || Buffer.isBuffer(value)
}

/**
 * Validates new TLS material for `server` as a whole, before anything is swapped: the key parses (with the
 * server's passphrase), the certificate is the key's, the CAs are CA certificates, and OpenSSL builds a context
 * from all of it with the server's other options. Throws `ClientCertInvalidOptionError` naming `option` else.
 */
export function prepareSecureContext (server: TlsServer, material: unknown, option: string): PreparedContext {
  if (material === null || typeof material !== 'object' || Array.isArray(material)) fail(option, 'must be { key, cert, ca }')
  const given = material as Record<string, unknown>
  for (const name of Object.keys(given)) {
    if (name !== 'key' && name !== 'cert' && name !== 'ca') fail(`${option}.${name}`, 'is not reloadable (key, cert, ca)')
  }
  const { key, cert, ca } = given
  if ((key === undefined) !== (cert === undefined)) fail(option, 'takes key and cert together: a certificate is only good with its own key')
  if (key === undefined && ca === undefined) fail(option, 'must give key and cert, or ca, or all three')
  const current = server as unknown as Record<string, unknown>
  const options = contextOf(server)
  const replaces: SecureContextOptions = {}
  if (key !== undefined) {
    if (!isPem(key)) fail(`${option}.key`, 'must be a PEM string or Buffer')
    if (!isPem(cert)) fail(`${option}.cert`, 'must be a PEM string or Buffer')
    let privateKey: KeyObject
    try {
      privateKey = createPrivateKey({ key, passphrase: current.passphrase as string | undefined })
    } catch (error) {
      fail(`${option}.key`, 'is not a private key this server can read', error)
    }
    const text = typeof cert === 'string' ? cert : cert.toString('latin1')
    let leaf: X509Certificate
    try {
      leaf = new X509Certificate(PEM_CERTIFICATE.exec(text)?.[0] ?? cert)
    } catch (error) {
      fail(`${option}.cert`, 'is not a PEM certificate', error)
    }
    if (!leaf.checkPrivateKey(privateKey)) fail(`${option}.cert`, `does not match ${option}.key`)
    replaces.key = key
    replaces.cert = cert
  }
  let anchors: X509Certificate[] | null = null
  if (ca !== undefined) {
    anchors = loadCertificates(ca, `${option}.ca`)
    replaces.ca = ca as SecureContextOptions['ca']
  }
  try {
    createSecureContext(overlay(options, replaces))
  } catch (error) {
    fail(option, 'is refused by TLS', error)
  }
  return { replaces, anchors }
}

/** The options the server's context is built from now (`setSecureContext()` keeps each as a property). */
function contextOf (server: TlsServer): SecureContextOptions {
  const current = server as unknown as Record<string, unknown>
  const options: Record<string, unknown> = {}
  for (const name of contextKeys) if (current[name] !== undefined) options[name] = current[name]
  return options as SecureContextOptions
}

function overlay (options: SecureContextOptions, replaces: SecureContextOptions): SecureContextOptions {
  const merged = { ...options, ...replaces }
  // A PFX would be loaded besides the new pair.
  if (replaces.key !== undefined) delete merged.pfx
  return merged
}

/**
 * Swaps the context of `server` for new handshakes; open connections keep theirs. `requestCert` and
 * `rejectUnauthorized` are the server's own properties, which `setSecureContext()` leaves alone. The material is
 * laid over the server's options as they are at the swap, not as they were when it was validated: a reload that
 * waited its turn (behind a large CRL) must not bring back the key or the CAs that a reload before it replaced.
 */
export function swapSecureContext (server: TlsServer, prepared: PreparedContext): void {
  server.setSecureContext(overlay(contextOf(server), prepared.replaces))
}

/**
 * True when a certificate TLS verified under an earlier client CA bundle still has a path to the one in force:
 * a connection opened before a CA was retired must not keep its verdict.
 */
export function chainsTo (certificate: X509Certificate, anchors: readonly X509Certificate[]): boolean {
  const trusted = new Set(anchors.map((anchor) => anchor.fingerprint256))
  return certificationPath(certificate, linkedIssuers(certificate), anchors).some((link) => trusted.has(link.fingerprint256))
}

/** `watch`, normalized: absolute file paths, grouped as they are applied. */
export interface WatchSettings {
  https: { key: string | null, cert: string | null, ca: string[] | null } | null
  crl: string[] | null
  proxyCa: string[] | null
  spiffe: ReadonlyMap<string, string[]> | null
  /** Milliseconds between two reads of every file (the fallback when no file system event comes). */
  interval: number
}

/** The material read from the watched files of the groups that changed, in `reload()`'s shape. */
export interface WatchedMaterial {
  https?: HttpsMaterial
  crl?: Buffer[]
  ca?: Buffer[]
  spiffe?: { bundles: Record<string, Buffer[]> }
}

type Group = 'https' | 'crl' | 'ca' | 'spiffe'

interface WatchedFile {
  group: Group
  path: string
  /** Where the content goes in the group's material. */
  place: (material: WatchedMaterial, content: Buffer) => void
}

export interface WatchLogger {
  info: (object: Record<string, unknown>, message: string) => void
  warn: (object: Record<string, unknown>, message: string) => void
}

// File system events come in bursts (a write, then a rename; a Kubernetes swap touches several entries):
// read once the burst is over.
const settleMs = 50

function listOf (material: WatchedMaterial, group: 'crl' | 'ca'): Buffer[] {
  material[group] ??= []
  return material[group]
}

function filesOf (settings: WatchSettings): WatchedFile[] {
  const files: WatchedFile[] = []
  const https = settings.https
  if (https !== null) {
    const tls = (material: WatchedMaterial): HttpsMaterial => { material.https ??= {}; return material.https }
    if (https.key !== null) files.push({ group: 'https', path: https.key, place: (m, content) => { tls(m).key = content } })
    if (https.cert !== null) files.push({ group: 'https', path: https.cert, place: (m, content) => { tls(m).cert = content } })
    for (const path of https.ca ?? []) {
      files.push({ group: 'https', path, place: (m, content) => { const s = tls(m); s.ca = [...(s.ca as Buffer[] | undefined ?? []), content] } })
    }
  }
  for (const path of settings.crl ?? []) files.push({ group: 'crl', path, place: (m, content) => listOf(m, 'crl').push(content) })
  for (const path of settings.proxyCa ?? []) files.push({ group: 'ca', path, place: (m, content) => listOf(m, 'ca').push(content) })
  for (const [domain, paths] of settings.spiffe ?? []) {
    for (const path of paths) {
      files.push({
        group: 'spiffe',
        path,
        place: (m, content) => {
          m.spiffe ??= { bundles: {} }
          ;(m.spiffe.bundles[domain] ??= []).push(content)
        }
      })
    }
  }
  return files
}

function digest (content: Buffer): string {
  return createHash('sha256').update(content).digest('base64')
}

/**
 * Keeps watched files applied. Every `interval` and shortly after any file system event in a watched file's
 * directory (an in-place write, a rename over it, a Kubernetes secret volume swapping its `..data` symlink), it
 * reads every file, and hands the groups whose content differs from what is in force to `apply`, together, so
 * that a key and its certificate, or a CA and the CRL it signs, change at once or not at all. Content is
 * compared, never times or inodes: a symlink swap changes neither the watched path nor, reliably, its events.
 * A change `apply` refuses leaves the material in force and is logged once; it is tried again when any file of
 * it changes.
 */
export class FileWatcher {
  readonly #files: WatchedFile[]
  readonly #apply: (material: WatchedMaterial) => Promise<void>
  readonly #log: WatchLogger
  readonly #interval: number
  /** Path → digest of the content in force. */
  readonly #applied = new Map<string, string>()
  /** The digests of the last change refused, or the last read error: what was logged. */
  #refused: string | null = null
  #timer: NodeJS.Timeout | null = null
  #settle: NodeJS.Timeout | null = null
  readonly #watchers: FSWatcher[] = []
  #running: Promise<void> | null = null
  #again = false
  #closed = false

  constructor (settings: WatchSettings, apply: (material: WatchedMaterial) => Promise<void>, log: WatchLogger) {
    this.#files = filesOf(settings)
    this.#apply = apply
    this.#log = log
    this.#interval = settings.interval
  }

  /** Reads and applies every file; throws what `apply` throws (at registration: there is nothing to keep). */
  async start (): Promise<void> {
    const contents = await Promise.all(this.#files.map(async (file) => {
      try {
        return await readFile(file.path)
      } catch (error) {
        fail('watch', (error as Error).message, error)
      }
    }))
    const material: WatchedMaterial = {}
    this.#files.forEach((file, index) => file.place(material, contents[index]))
    await this.#apply(material)
    this.#files.forEach((file, index) => this.#applied.set(file.path, digest(contents[index])))
    this.#timer = setInterval(() => { this.check() }, this.#interval)
    for (const directory of new Set(this.#files.map((file) => dirname(file.path)))) {
      try {
        const watcher = watch(directory, { persistent: false }, () => { this.#soon() })
        // Polling goes on when a watcher fails (inotify limits, the directory replaced).
        watcher.on('error', () => { watcher.close() })
        this.#watchers.push(watcher)
        /* c8 ignore next 3 */
      } catch {
        // Not watchable (inotify unavailable or exhausted): polling alone keeps the files current.
      }
    }
  }

  #soon (): void {
    if (this.#settle !== null) clearTimeout(this.#settle)
    this.#settle = setTimeout(() => {
      this.#settle = null
      this.check()
    }, settleMs)
  }

  /** Reads the files now; resolves once what changed is applied or refused. */
  check (): Promise<void> {
    if (this.#running !== null) {
      this.#again = true
      return this.#running
    }
    this.#running = this.#read().finally(() => {
      this.#running = null
      if (this.#again) {
        this.#again = false
        this.check()
      }
    })
    return this.#running
  }

  async #read (): Promise<void> {
    if (this.#closed) return
    let contents: Buffer[]
    try {
      contents = await Promise.all(this.#files.map(async (file) => await readFile(file.path)))
    } catch (error) {
      const reason = (error as Error).message
      if (this.#refused !== reason) {
        this.#refused = reason
        this.#log.warn({ reason }, 'fastify-client-cert: a watched file cannot be read; the material in force stays')
      }
      return
    }
    const digests = contents.map(digest)
    const changed = new Set<Group>()
    this.#files.forEach((file, index) => { if (this.#applied.get(file.path) !== digests[index]) changed.add(file.group) })
    if (changed.size === 0) {
      this.#refused = null
      return
    }
    const attempt = digests.join(' ')
    if (attempt === this.#refused) return
    const material: WatchedMaterial = {}
    const files: string[] = []
    this.#files.forEach((file, index) => {
      if (!changed.has(file.group)) return
      file.place(material, contents[index])
      files.push(file.path)
    })
    try {
      if (this.#closed) return
      await this.#apply(material)
    } catch (error) {
      this.#refused = attempt
      this.#log.warn({ files, reason: (error as Error).message }, 'fastify-client-cert: rotated files refused; the material in force stays')
      return
    }
    this.#refused = null
    this.#files.forEach((file, index) => this.#applied.set(file.path, digests[index]))
    this.#log.info({ files, changed: [...changed] }, 'fastify-client-cert: rotated files applied')
  }

  /** Stops watching; a read in progress applies nothing more. */
  close (): void {
    this.#closed = true
    if (this.#timer !== null) clearInterval(this.#timer)
    if (this.#settle !== null) clearTimeout(this.#settle)
    for (const watcher of this.#watchers) watcher.close()
  }
}
