// Revocation from CRL distribution points: the CRLs verified certificates point at, downloaded, kept and refreshed.
import type { X509Certificate } from 'node:crypto'
import type { Dispatcher } from 'undici'
import { ClientCertInvalidOptionError } from '../errors.js'
import { CONTEXT_0, Cursor, SEQUENCE } from '../codecs/der.js'
import { walkOf } from '../codecs/x509.js'
import { linkedIssuers } from '../policy/chain.js'
import { certificationPath } from '../policy/verdict.js'
import { RevocationList } from './crl.js'
import { dispatcherOption, fetchCrl, httpUrl, integerOption, isOptionObject, type FetchLimits, type Validators } from './fetch.js'
import type { OcspOptions, RevocationOrder } from './ocsp.js'

/**
 * Semantics, documented in the README ("Revocation from distribution points"):
 * - Only certificates that verified otherwise are looked at: a URL in a certificate nobody verified is the
 *   attacker's, and fetching it would let anyone aim the server at any address.
 * - Each certificate of the verified path but its anchor is checked against the CRLs at its own distribution
 *   points (http and https URIs of cRLDistributionPoints; ldap and the like ignored) and at the configured
 *   `urls`. A CRL counts for a certificate only when it names the certificate's issuer and the issuer's key,
 *   which must be allowed to sign CRLs, signed it: the CRL host and the network are not trusted.
 * - A certificate with neither (no distribution point, no configured CRL naming its issuer) is not checked,
 *   unless a configured URL has never given a CRL: what it would say is then unknown.
 * - The last good CRL of a URL stays in force while a new one fails to download or verify. Once no CRL that
 *   counts is current: `strict` refuses (`CRL_HAS_EXPIRED`, or `REVOCATION_UNAVAILABLE` when none was ever
 *   had); `soft-fail` admits and logs. A listed certificate is refused in both modes, expired CRL or not.
 */

export type DistributionPointMode = 'strict' | 'soft-fail'

export interface DistributionPointOptions {
  /** CRL URLs fetched besides the certificates' own distribution points (http or https). */
  urls?: string[]
  /** Milliseconds between downloads of one CRL (sooner when its `nextUpdate` is near). Default 300000. */
  refresh?: number
  /** Milliseconds a download may take, redirects and body included. Default 5000. */
  timeout?: number
  /** A CRL larger than this many bytes is refused (its download aborted). Default 67108864 (64 MiB: a CRL of a million entries is about 35 MB). */
  maxBytes?: number
  /** An undici dispatcher (an `Agent`, a `ProxyAgent` for an HTTP proxy); undici's global one by default. */
  dispatcher?: Dispatcher
  /** `'strict'` (default): no current CRL, no admission. `'soft-fail'`: a listed certificate is refused, an unreachable or expired CRL admits and is logged. */
  mode?: DistributionPointMode
}

export interface RevocationOptions {
  /** `true` for the defaults, or the settings; `false` or absent: distribution points are not used. */
  distributionPoints?: boolean | DistributionPointOptions
  /** `true` for the defaults, or the settings; `false` or absent: OCSP is not used. */
  ocsp?: boolean | OcspOptions
  /** With both on: `'ocsp-then-crl'` (default) or `'ocsp-and-crl'`. */
  order?: RevocationOrder
}

export interface DistributionPointSettings extends FetchLimits {
  readonly urls: readonly URL[]
  readonly refresh: number
  readonly mode: DistributionPointMode
}

const optionKeys = new Set(['urls', 'refresh', 'timeout', 'maxBytes', 'dispatcher', 'mode'])

/** `revocation.distributionPoints`, checked (and `revocation`'s keys); `null` when distribution points are off. */
export function normalizeRevocation (value: unknown): DistributionPointSettings | null {
  if (value === undefined) return null
  if (!isOptionObject(value)) throw new ClientCertInvalidOptionError('revocation', 'must be { distributionPoints, ocsp, order }')
  for (const key of Object.keys(value)) {
    if (key !== 'distributionPoints' && key !== 'ocsp' && key !== 'order') throw new ClientCertInvalidOptionError('revocation.' + key, 'is not a known option')
  }
  const option = 'revocation.distributionPoints'
  let points = value.distributionPoints
  if (points === undefined || points === false) return null
  if (points === true) points = {}
  if (!isOptionObject(points)) throw new ClientCertInvalidOptionError(option, 'must be true, false or { urls, refresh, timeout, maxBytes, dispatcher, mode }')
  for (const key of Object.keys(points)) {
    if (!optionKeys.has(key)) throw new ClientCertInvalidOptionError(`${option}.${key}`, 'is not a known option')
  }
  const { urls = [], dispatcher, mode = 'strict' } = points
  if (!Array.isArray(urls)) throw new ClientCertInvalidOptionError(option + '.urls', 'must be an array of http(s) URLs')
  const parsed = urls.map((url: unknown, i) => {
    const valid = typeof url === 'string' ? httpUrl(url) : null
    if (valid === null) throw new ClientCertInvalidOptionError(`${option}.urls[${i}]`, 'must be an http(s) URL without credentials')
    return valid
  })
  if (mode !== 'strict' && mode !== 'soft-fail') throw new ClientCertInvalidOptionError(option + '.mode', "must be 'strict' or 'soft-fail'")
  const checkedDispatcher = dispatcherOption(dispatcher, option + '.dispatcher')
  return {
    urls: parsed,
    refresh: integerOption(points.refresh, option + '.refresh', 300_000),
    timeout: integerOption(points.timeout, option + '.timeout', 5_000),
    maxBytes: integerOption(points.maxBytes, option + '.maxBytes', 64 * 1024 * 1024),
    dispatcher: checkedDispatcher,
    mode
  }
}

const CRL_DISTRIBUTION_POINTS = '551d1f' // 2.5.29.31
const URI = 0x86
// A certificate's distribution points looked at: a CA names one or two; more is no reason to fetch more.
const MAX_URLS_PER_CERTIFICATE = 4
const MAX_URL_LENGTH = 2048

const urlsOfCertificate = new WeakMap<X509Certificate, readonly string[]>()

/**
 * The http(s) URIs of a certificate's cRLDistributionPoints, as `href`s. Points with `reasons` (a partitioned
 * CRL) or a `cRLIssuer` (an indirect one) are skipped: their CRL would not cover the certificate alone. A
 * certificate whose extension does not read is taken as having none (it verified; OpenSSL ignores the
 * extension too unless asked to check CRLs).
 */
export function distributionPointsOf (certificate: X509Certificate): readonly string[] {
  let urls = urlsOfCertificate.get(certificate)
  if (urls !== undefined) return urls
  const found: string[] = []
  try {
    const walk = walkOf(certificate)
    const extension = walk.extensions.find((ext) => ext.id === CRL_DISTRIBUTION_POINTS)
    if (extension !== undefined) {
      const value = new Cursor(walk.der, extension.value.contentStart, extension.value.end)
      const points = value.into(value.read(SEQUENCE, 'the CRL distribution points'))
      while (!points.done) {
        const point = points.into(points.read(SEQUENCE, 'a distribution point'))
        const name = point.optional(CONTEXT_0, 'a distribution point name')
        if (name === null || !point.done) continue
        const outer = point.into(name)
        const fullName = outer.optional(CONTEXT_0, 'a full name')
        if (fullName === null) continue
        const names = outer.into(fullName)
        while (!names.done) {
          const general = names.any('a general name')
          if (general.tag !== URI || general.end - general.contentStart > MAX_URL_LENGTH) continue
          const url = httpUrl(walk.der.toString('latin1', general.contentStart, general.end))
          if (url !== null && !found.includes(url.href) && found.length < MAX_URLS_PER_CERTIFICATE) found.push(url.href)
        }
      }
    }
  } catch {
    found.length = 0
  }
  urls = Object.freeze(found)
  urlsOfCertificate.set(certificate, urls)
  return urls
}

/** The `verifyError` of a verdict that waits for a first download; the request hook waits and judges again. */
export const REVOCATION_PENDING = 'REVOCATION_PENDING'

export interface PointCheck {
  readonly error: 'CERT_REVOKED' | 'CRL_HAS_EXPIRED' | 'REVOCATION_UNAVAILABLE' | typeof REVOCATION_PENDING | null
  /** When the verdict may change without a download: a CRL in use expires. */
  readonly recheckAt: number
  /** Set when no CRL source (none named, none configured for its issuer) covers the leaf: nothing was decided of it. */
  readonly leafUnchecked?: true
}

interface Entry {
  readonly url: URL
  readonly configured: boolean
  /** The issuer whose certificates asked for it first: a new CRL must name it and bear its signature. */
  issuer: X509Certificate | null
  /** The last CRL that downloaded and verified. */
  list: RevocationList | null
  validators: Validators
  inFlight: Promise<void> | null
  /** When the first download started: until it ends (or its timeout), certificates wait rather than fail. */
  firstStarted: number
  failing: boolean
  lastUsed: number
  /** When soft-fail last logged an admission for this URL. */
  softLogged: number
  timer: NodeJS.Timeout | null
}

export interface PointsLogger {
  warn: (details: object, message: string) => void
  info: (details: object, message: string) => void
}

// URLs kept: each is a CRL in memory and a timer; past it, a new URL is not fetched (and its certificates get
// REVOCATION_UNAVAILABLE in strict mode). A URL no certificate asked about for a day is dropped.
const MAX_ENTRIES = 256
const IDLE_MS = 24 * 3600_000
// A failed download is tried again after this long at most (sooner when `refresh` is shorter).
const RETRY_MS = 30_000
const MIN_DELAY_MS = 1_000
const SOFT_LOG_MS = 60_000

const NOT_CHECKED: PointCheck = Object.freeze({ error: null, recheckAt: Infinity })
// Soft-fail's admission of a certificate whose CRL is unavailable: decided, unlike NOT_CHECKED.
const SOFT_ADMITTED: PointCheck = Object.freeze({ error: null, recheckAt: Infinity })

/**
 * The CRLs of the distribution points verified certificates named, one per URL, each refreshed on its own timer.
 * `onChange` is called whenever a verdict may have changed (a new CRL, a first download that ended): the plugin
 * then bumps its generation so open connections are judged again, as `reload()` does.
 */
export class DistributionPoints {
  readonly settings: DistributionPointSettings
  /** The configured trust direct TLS paths are rebuilt up to (the server's `ca`). */
  readonly anchors: () => readonly X509Certificate[]
  readonly #entries = new Map<string, Entry>()
  readonly #log: PointsLogger
  readonly #onChange: () => void
  #closed = false

  constructor (settings: DistributionPointSettings, log: PointsLogger, onChange: () => void, anchors: () => readonly X509Certificate[]) {
    this.settings = settings
    this.#log = log
    this.#onChange = onChange
    this.anchors = anchors
    const now = Date.now()
    for (const url of settings.urls) this.#entries.set(url.href, this.#entry(url, true, null, now))
  }

  /** Starts the downloads of the configured URLs. */
  start (): void {
    for (const entry of this.#entries.values()) this.#download(entry)
  }

  close (): void {
    this.#closed = true
    for (const entry of this.#entries.values()) {
      if (entry.timer !== null) clearTimeout(entry.timer)
    }
    this.#entries.clear()
  }

  /** Resolves once the first downloads under way have ended (each is bounded by `timeout`). */
  async settled (): Promise<void> {
    const first = [...this.#entries.values()].filter((entry) => entry.list === null && entry.inFlight !== null)
    await Promise.all(first.map(async (entry) => await entry.inFlight))
  }

  /**
   * Starts the downloads a verified certificate will need, when the TLS handshake completes, so that its first
   * request rarely waits. `leaf` comes from a socket TLS authorized; its issuers as Node linked them.
   */
  prefetch (leaf: X509Certificate): void {
    this.check(leaf, linkedIssuers(leaf), this.anchors(), Date.now())
  }

  /** A certificate known by names alone has no distribution point to read: no answer there is. */
  namesOnly (): PointCheck {
    return this.#unavailable('REVOCATION_UNAVAILABLE', null, 'a certificate forwarded by names alone')
  }

  /**
   * The status of a verified certificate along its certification path (rebuilt as for CRL files: up to one of
   * `anchors` when they are known, else through what the client or proxy sent), every certificate but the
   * anchor (and the leaf when `skipLeaf`) against the CRLs its distribution points and the configured URLs give for its issuer.
   */
  check (leaf: X509Certificate, untrusted: readonly X509Certificate[], anchors: readonly X509Certificate[], now: number, skipLeaf = false): PointCheck {
    const path = certificationPath(leaf, untrusted.slice(0, 16), anchors)
    const isAnchor = (certificate: X509Certificate): boolean => anchors.some((anchor) => anchor.fingerprint256 === certificate.fingerprint256)
    // A path that reaches no anchor (behind a proxy without proxy.ca) holds, past the leaf the proxy verified,
    // certificates nobody verified: one can bear the CA's name and key under an issuer of the client's making, and
    // name any URL. Their distribution points are not fetched; only those verified certificates already named are used.
    const anchored = path.some(isAnchor)
    let recheckAt = Infinity
    let worst: PointCheck | null = null
    let leafChecked = skipLeaf
    // `skipLeaf`: OCSP settled the leaf; its issuers are still checked here.
    for (let i = skipLeaf ? 1 : 0; i < path.length; i++) {
      const certificate = path[i]!
      if (isAnchor(certificate)) break
      const status = this.#checkOne(certificate, path[i + 1], now, i === 0 || anchored)
      // SOFT_ADMITTED is a decision (soft-fail's), NOT_CHECKED none.
      if (i === 0) leafChecked = status !== NOT_CHECKED
      if (status.error === 'CERT_REVOKED') return status
      recheckAt = Math.min(recheckAt, status.recheckAt)
      if (status.error !== null && worst === null) worst = status
    }
    if (worst !== null) return worst
    if (!leafChecked) return { error: null, recheckAt, leafUnchecked: true }
    return recheckAt === Infinity ? NOT_CHECKED : { error: null, recheckAt }
  }

  #checkOne (certificate: X509Certificate, issuer: X509Certificate | undefined, now: number, verified: boolean): PointCheck {
    const named = distributionPointsOf(certificate)
    const own = verified ? named : named.filter((href) => this.#entries.has(href))
    // The top of a path that reached no anchor: whatever CRL its distribution points give, no key can check it.
    if (issuer === undefined) return named.length === 0 ? NOT_CHECKED : this.#unavailable('REVOCATION_UNAVAILABLE', null, 'the issuer of a certificate is unknown')
    // Set by revokedBy below; declared wide so that the checks after it are not narrowed away.
    let current = false as boolean
    let expired = null as Entry | null
    let pending = false as boolean
    let missing = null as Entry | null
    let recheckAt = Infinity
    // True when the entry's CRL lists the certificate.
    const revokedBy = (entry: Entry): boolean => {
      entry.lastUsed = now
      if (entry.list === null) {
        if (entry.inFlight !== null && now < entry.firstStarted + this.settings.timeout) pending = true
        else missing = entry
        return false
      }
      const status = entry.list.checkBy(certificate, issuer, now)
      // A CRL that does not name this issuer says nothing of the certificate; one not signed by it, as little.
      if (status === null || status.error === 'CRL_SIGNATURE_FAILURE' || status.error === 'UNABLE_TO_GET_CRL') {
        // A configured URL may serve other issuers' CRLs; but one that names this issuer without its signature is a
        // forgery (or a key it no longer holds), and must not let the issuer's certificates pass as not covered.
        if (!entry.configured || status !== null) missing = entry
        return false
      }
      if (status.error === null) {
        current = true
        recheckAt = Math.min(recheckAt, entry.list.nextUpdate)
      } else if (status.error === 'CRL_HAS_EXPIRED') {
        expired = entry
      }
      return status.error === 'CERT_REVOKED'
    }
    for (const href of own) {
      // A new URL is fetched only with the issuer its CRL must be signed by; past the bound, it is not fetched.
      const entry = this.#entries.get(href) ?? this.#create(href, issuer, now)
      if (entry !== undefined && revokedBy(entry)) return REVOKED
    }
    for (const url of this.settings.urls) {
      if (revokedBy(this.#entries.get(url.href)!)) return REVOKED
    }
    if (current) return { error: null, recheckAt }
    if (pending) return PENDING
    if (expired !== null) return this.#unavailable('CRL_HAS_EXPIRED', expired, 'the CRL has expired')
    if (own.length > 0 || missing !== null) return this.#unavailable('REVOCATION_UNAVAILABLE', missing, 'no CRL could be downloaded')
    return NOT_CHECKED
  }

  #unavailable (error: 'CRL_HAS_EXPIRED' | 'REVOCATION_UNAVAILABLE', entry: Entry | null, reason: string): PointCheck {
    if (this.settings.mode === 'strict') return error === 'CRL_HAS_EXPIRED' ? EXPIRED : UNAVAILABLE
    const now = Date.now()
    const holder = entry ?? this.#softHolder
    if (now - holder.softLogged >= SOFT_LOG_MS) {
      holder.softLogged = now
      this.#log.warn({ url: entry?.url.href, verifyError: error }, `fastify-client-cert: revocation unknown (${reason}); soft-fail admits the certificate`)
    }
    return SOFT_ADMITTED
  }

  readonly #softHolder = { softLogged: -Infinity }

  #entry (url: URL, configured: boolean, issuer: X509Certificate | null, now: number): Entry {
    return {
      url,
      configured,
      issuer,
      list: null,
      validators: { etag: null, lastModified: null },
      inFlight: null,
      firstStarted: now,
      failing: false,
      lastUsed: now,
      softLogged: -Infinity,
      timer: null
    }
  }

  #create (href: string, issuer: X509Certificate, now: number): Entry | undefined {
    if (this.#closed || this.#entries.size >= MAX_ENTRIES) return undefined
    const entry = this.#entry(new URL(href), false, issuer, now)
    this.#entries.set(href, entry)
    this.#download(entry)
    return entry
  }

  /**
   * Never rejects. One download at a time per URL, so concurrent certificates share it: an entry is created once
   * (and downloads at once), and its timer is set only when a download has ended.
   */
  #download (entry: Entry): Promise<void> {
    const first = entry.list === null
    if (first) entry.firstStarted = Date.now()
    entry.inFlight = this.#attempt(entry).then((changed) => {
      entry.inFlight = null
      if (this.#entries.get(entry.url.href) !== entry) return
      this.#schedule(entry)
      if (changed || first) this.#onChange()
    })
    return entry.inFlight
  }

  async #attempt (entry: Entry): Promise<boolean> {
    try {
      const fetched = await fetchCrl(entry.url, entry.validators, this.settings)
      let changed = false
      if (fetched.kind === 'fresh') {
        const trust = entry.issuer === null ? this.anchors() : [entry.issuer]
        const list = await RevocationList.load(fetched.body, entry.url.href, trust)
        if (entry.issuer !== null && !list.counts(entry.issuer)) {
          throw new Error('the CRL does not name the issuer, is not signed by its key, or that key may not sign CRLs')
        }
        if (entry.list !== null && list.stepsBack(entry.list)) {
          throw new Error('the CRL is older than the one kept, or no longer holds a signed CRL of an issuer it did')
        }
        entry.list = list
        entry.validators = fetched.validators
        changed = true
      }
      if (entry.failing) this.#log.info({ url: entry.url.href }, 'fastify-client-cert: CRL download works again')
      entry.failing = false
      return changed
    } catch (error) {
      entry.failing = true
      this.#log.warn({ url: entry.url.href, reason: (error as Error).message, kept: entry.list !== null },
        'fastify-client-cert: CRL download failed; the last good CRL, if any, stays in force')
      return false
    }
  }

  #schedule (entry: Entry): void {
    const now = Date.now()
    /* c8 ignore next 4 -- reached only after a day without a certificate that names the URL */
    if (!entry.configured && now - entry.lastUsed > IDLE_MS) {
      this.#entries.delete(entry.url.href)
      return
    }
    const { refresh } = this.settings
    const untilDue = entry.list === null ? -1 : entry.list.nextUpdate - now
    // Halfway to nextUpdate when that comes before the next refresh, so a failure leaves time for another try.
    const delay = entry.failing || untilDue <= 0 ? Math.min(refresh, RETRY_MS) : Math.min(refresh, Math.max(MIN_DELAY_MS, untilDue / 2))
    entry.timer = setTimeout(() => {
      entry.timer = null
      this.#download(entry)
    }, delay)
    entry.timer.unref()
  }
}

const REVOKED: PointCheck = Object.freeze({ error: 'CERT_REVOKED', recheckAt: Infinity })
const PENDING: PointCheck = Object.freeze({ error: REVOCATION_PENDING, recheckAt: -Infinity })
const EXPIRED: PointCheck = Object.freeze({ error: 'CRL_HAS_EXPIRED', recheckAt: Infinity })
const UNAVAILABLE: PointCheck = Object.freeze({ error: 'REVOCATION_UNAVAILABLE', recheckAt: Infinity })
