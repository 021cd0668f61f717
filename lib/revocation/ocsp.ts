// Revocation by OCSP (RFC 6960): the leaf's status asked of its responder, answers cached per certificate.
import { randomBytes, type X509Certificate } from 'node:crypto'
import type { Dispatcher } from 'undici'
import { ClientCertInvalidOptionError } from '../errors.js'
import { certificationPath } from '../policy/verdict.js'
import { linkedIssuers } from '../policy/chain.js'
import { REVOCATION_PENDING } from './distribution-points.js'
import { dispatcherOption, httpUrl, integerOption, isOptionObject, postOcsp, type FetchLimits } from './fetch.js'
import { certIdOf, OcspResponseError, ocspRequest, readOcspResponse, responderOf, type CertId, type CertStatus } from './ocsp-codec.js'

/**
 * Semantics, documented in the README ("OCSP"):
 * - Only the leaf is asked about, and only once it verified every other way (its responder URL is the client's
 *   word until then). Intermediate CAs are left to CRLs (`crl`, distribution points).
 * - The responder is the configured `url` when set (it replaces the certificates' own), else the first `http:`
 *   OCSP URI of the leaf's authorityInfoAccess. A leaf with neither is not checked by OCSP.
 * - The issuer must be known (the verified path: direct TLS, or a forwarded chain / `proxy.ca`); a certificate
 *   forwarded by names alone, or without its issuer, has no answer to ask for.
 * - An answer counts once its signature, signer, CertID, times and nonce check out (ocsp-codec.ts). Answers are
 *   cached per certificate (issuer key hash, issuer name hash, serial) until nextUpdate, or `cacheTtl` without one;
 *   one fetch at a time per certificate; the last good answer stays in force while a new one fails, until it is
 *   stale. `revoked` refuses in both modes; `unknown` refuses unless `unknown: 'admit'`; no usable answer refuses
 *   in `strict` (`REVOCATION_UNAVAILABLE`) and is admitted and logged in `soft-fail`.
 */

export type OcspMode = 'strict' | 'soft-fail'
export type OcspUnknown = 'refuse' | 'admit'
/** With both OCSP and distribution points on: which decides the leaf. */
export type RevocationOrder = 'ocsp-then-crl' | 'ocsp-and-crl'

export interface OcspOptions {
  /** `'strict'` (default): no usable answer, no admission. `'soft-fail'`: revoked refuses, no answer admits and is logged. */
  mode?: OcspMode
  /** A responder asked about every certificate, instead of the one its authorityInfoAccess names (http or https). */
  url?: string
  /** Send a nonce and require it back (default true); `false` for responders that serve pre-signed answers. */
  nonce?: boolean
  /** Milliseconds a request to the responder may take, body included. Default 5000. */
  timeout?: number
  /** Milliseconds of clock difference allowed on thisUpdate and nextUpdate. Default 300000. */
  clockSkew?: number
  /** What an `unknown` answer does: `'refuse'` (default, `OCSP_UNKNOWN`) or `'admit'` (as no answer). */
  unknown?: OcspUnknown
  /** Milliseconds an answer without nextUpdate is kept (and how old its thisUpdate may be). Default 3600000. */
  cacheTtl?: number
  /** A response larger than this many bytes is refused. Default 1048576. */
  maxBytes?: number
  /** An undici dispatcher (an `Agent`, a `ProxyAgent` for an HTTP proxy); undici's global one by default. */
  dispatcher?: Dispatcher
}

export interface OcspSettings extends FetchLimits {
  readonly mode: OcspMode
  readonly url: URL | null
  readonly nonce: boolean
  readonly clockSkew: number
  readonly unknown: OcspUnknown
  readonly cacheTtl: number
  readonly order: RevocationOrder
}

const optionKeys = new Set(['mode', 'url', 'nonce', 'timeout', 'clockSkew', 'unknown', 'cacheTtl', 'maxBytes', 'dispatcher'])

/**
 * `revocation.ocsp` and `revocation.order`, checked; `null` when OCSP is off. `revocation` itself has been
 * checked by normalizeRevocation (an object or undefined).
 */
export function normalizeOcsp (revocation: Record<string, unknown> | undefined): OcspSettings | null {
  const option = 'revocation.ocsp'
  let value = revocation?.ocsp
  const points = revocation?.distributionPoints
  const order = revocation?.order
  const on = value !== undefined && value !== false
  if (order !== undefined) {
    if (order !== 'ocsp-then-crl' && order !== 'ocsp-and-crl') throw new ClientCertInvalidOptionError('revocation.order', "must be 'ocsp-then-crl' or 'ocsp-and-crl'")
    if (!on || points === undefined || points === false) throw new ClientCertInvalidOptionError('revocation.order', 'applies when both ocsp and distributionPoints are on')
  }
  if (!on) return null
  if (value === true) value = {}
  if (!isOptionObject(value)) throw new ClientCertInvalidOptionError(option, 'must be true, false or { mode, url, nonce, timeout, clockSkew, unknown, cacheTtl, maxBytes, dispatcher }')
  for (const key of Object.keys(value)) {
    if (!optionKeys.has(key)) throw new ClientCertInvalidOptionError(`${option}.${key}`, 'is not a known option')
  }
  const { mode = 'strict', url, nonce = true, unknown = 'refuse', dispatcher } = value
  if (mode !== 'strict' && mode !== 'soft-fail') throw new ClientCertInvalidOptionError(option + '.mode', "must be 'strict' or 'soft-fail'")
  const responder = url === undefined ? null : typeof url === 'string' ? httpUrl(url) : null
  if (url !== undefined && responder === null) throw new ClientCertInvalidOptionError(option + '.url', 'must be an http(s) URL without credentials')
  if (typeof nonce !== 'boolean') throw new ClientCertInvalidOptionError(option + '.nonce', 'must be a boolean')
  if (unknown !== 'refuse' && unknown !== 'admit') throw new ClientCertInvalidOptionError(option + '.unknown', "must be 'refuse' or 'admit'")
  const checkedDispatcher = dispatcherOption(dispatcher, option + '.dispatcher')
  return {
    mode,
    url: responder,
    nonce,
    unknown,
    timeout: integerOption(value.timeout, option + '.timeout', 5_000),
    clockSkew: integerOption(value.clockSkew, option + '.clockSkew', 300_000, 0),
    cacheTtl: integerOption(value.cacheTtl, option + '.cacheTtl', 3_600_000),
    maxBytes: integerOption(value.maxBytes, option + '.maxBytes', 1024 * 1024),
    dispatcher: checkedDispatcher,
    order: (order ?? 'ocsp-then-crl') as RevocationOrder
  }
}

export interface OcspCheck {
  readonly error: 'CERT_REVOKED' | 'OCSP_UNKNOWN' | 'REVOCATION_UNAVAILABLE' | typeof REVOCATION_PENDING | null
  /** When the verdict may change without a fetch that changed it: the answer runs out, a retry is due. */
  readonly recheckAt: number
  /** A good answer settled the leaf: CRLs need not be asked about it ('ocsp-then-crl'). */
  readonly decided: boolean
  /** No usable answer, left to the CRLs ('ocsp-then-crl'): if none covers the leaf, OCSP's own mode decides. */
  readonly unanswered?: true
}

interface Answer {
  readonly status: CertStatus
  /** The responder's thisUpdate: an answer older than the one kept is a replay (without a nonce), never news. */
  readonly thisUpdate: number
  /** When a new answer is fetched: nextUpdate, or receipt plus cacheTtl. */
  readonly refreshAt: number
  /** Past this the answer no longer counts: nextUpdate plus clockSkew, or receipt plus cacheTtl. */
  readonly usableUntil: number
}

interface Entry {
  readonly certId: CertId
  readonly url: URL
  readonly serialNumber: string
  answer: Answer | null
  inFlight: Promise<void> | null
  fetchStarted: number
  /** After a failure, no new fetch before this. */
  retryAt: number
  /** Why the last fetch failed, for the log. */
  reason: string | null
  /** When a refusal of this certificate was last logged. */
  logged: number
}

export interface OcspLogger {
  warn: (details: object, message: string) => void
  info: (details: object, message: string) => void
}

// Certificates whose answers are kept; past it, the least recently asked about is dropped (and asked again when
// it comes back).
const MAX_ENTRIES = 10_000
// A failed fetch is tried again after this long at most (sooner when cacheTtl is shorter).
const RETRY_MS = 30_000
const LOG_MS = 60_000
// Warnings (failed fetches, answers that do not count, certificates without an answer) logged per minute at most:
// a responder down for a fleet of certificates is one problem, not ten thousand lines.
const WARNINGS_PER_MINUTE = 20
const MAX_UNTRUSTED = 16

const NONE: OcspCheck = Object.freeze({ error: null, recheckAt: Infinity, decided: false })
const PENDING: OcspCheck = Object.freeze({ error: REVOCATION_PENDING, recheckAt: -Infinity, decided: false })

/**
 * OCSP answers for the leaves of verified certificates. `onChange` is called when a fetched answer differs from
 * the one it replaces (good to revoked, say): the plugin then bumps its generation so open connections are judged
 * again. A first answer needs no call: the verdict that waited for it is judged again anyway.
 */
export class OcspClient {
  readonly settings: OcspSettings
  /** The configured trust direct TLS paths are rebuilt up to (the server's `ca`). */
  readonly anchors: () => readonly X509Certificate[]
  readonly #entries = new Map<string, Entry>()
  readonly #blocking = new Set<Promise<void>>()
  #warnings = { start: -Infinity, count: 0 }
  readonly #log: OcspLogger
  readonly #onChange: () => void
  readonly #maxEntries: number
  #closed = false

  /** `maxEntries`: the cache bound, lowered by tests only. */
  constructor (settings: OcspSettings, log: OcspLogger, onChange: () => void, anchors: () => readonly X509Certificate[], maxEntries = MAX_ENTRIES) {
    this.settings = settings
    this.#maxEntries = maxEntries
    this.#log = log
    this.#onChange = onChange
    this.anchors = anchors
  }

  close (): void {
    this.#closed = true
    this.#entries.clear()
  }

  /** Resolves once the fetches that certificates without a usable answer wait for have ended (each bounded by `timeout`). */
  async settled (): Promise<void> {
    await Promise.all([...this.#blocking])
  }

  /** Starts the fetch a verified certificate will need, when the TLS handshake completes. */
  prefetch (leaf: X509Certificate): void {
    this.check(leaf, linkedIssuers(leaf), this.anchors(), Date.now(), true)
  }

  /** A certificate known by names alone: no CertID can be made for it. */
  namesOnly (fallback: boolean): OcspCheck {
    return this.#unavailable(fallback, null, 'a certificate forwarded by names alone', Infinity)
  }

  /**
   * The OCSP verdict on a verified leaf, whose issuer is found as for CRLs (the path rebuilt up to `anchors` from
   * `untrusted`). `fallback`: CRLs will decide the leaf when OCSP does not, so no answer is neither refused nor
   * logged here.
   */
  check (leaf: X509Certificate, untrusted: readonly X509Certificate[], anchors: readonly X509Certificate[], now: number, fallback: boolean): OcspCheck {
    const url = this.settings.url ?? responderOf(leaf)
    if (url === null) return NONE
    const issuer = certificationPath(leaf, untrusted.slice(0, MAX_UNTRUSTED), anchors)[1]
    if (issuer === undefined) return this.#unavailable(fallback, null, 'the issuer of the certificate is unknown', Infinity)
    let certId: CertId
    try {
      certId = certIdOf(leaf, issuer)
    } catch {
      return this.#unavailable(fallback, null, 'the certificate or its issuer does not read as DER', Infinity)
    }
    let entry = this.#entries.get(certId.key)
    if (entry !== undefined) {
      // Least recently used first in the map's order.
      this.#entries.delete(certId.key)
      this.#entries.set(certId.key, entry)
    } else {
      if (this.#closed) return this.#unavailable(fallback, null, 'the plugin is closed', Infinity)
      entry = { certId, url, serialNumber: leaf.serialNumber, answer: null, inFlight: null, fetchStarted: 0, retryAt: -Infinity, reason: null, logged: -Infinity }
      if (this.#entries.size >= this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value!)
      this.#entries.set(certId.key, entry)
    }
    // A revoked answer stays in force past its nextUpdate until a newer answer replaces it: a revocation is final
    // (certificateHold aside, which a newer answer lifts), and whoever blocks the responder must not bring a revoked
    // certificate back once its answer is stale. A listed serial on an expired CRL refuses in the same way.
    const kept = entry.answer
    const answer = kept !== null && (now <= kept.usableUntil || kept.status === 'revoked') ? kept : null
    // After a failure, no new fetch before retryAt, whether or not an answer is still in force.
    if (entry.inFlight === null && now >= Math.max(entry.retryAt, answer === null ? -Infinity : answer.refreshAt)) this.#fetch(entry, issuer, answer === null)
    if (answer === null) {
      if (entry.inFlight !== null && now < entry.fetchStarted + this.settings.timeout) return PENDING
      return this.#unavailable(fallback, entry, entry.reason ?? 'no answer yet', entry.retryAt)
    }
    const recheckAt = answer.refreshAt > now ? answer.refreshAt : answer.usableUntil
    if (answer.status === 'good') return { error: null, recheckAt, decided: true }
    if (answer.status === 'unknown' && this.settings.unknown === 'admit') return { error: null, recheckAt, decided: false }
    this.#refused(entry, answer.status)
    return { error: answer.status === 'revoked' ? 'CERT_REVOKED' : 'OCSP_UNKNOWN', recheckAt, decided: true }
  }

  #refused (entry: Entry, answer: string): void {
    const now = Date.now()
    if (now - entry.logged < LOG_MS) return
    entry.logged = now
    this.#log.info({ source: 'ocsp', answer, url: entry.url.href, serialNumber: entry.serialNumber }, `fastify-client-cert: the OCSP responder answered ${answer}; certificate refused`)
  }

  #unavailable (fallback: boolean, entry: Entry | null, reason: string, recheckAt: number): OcspCheck {
    if (fallback) return { error: null, recheckAt, decided: false, unanswered: true }
    const strict = this.settings.mode === 'strict'
    if (this.#mayWarn()) {
      this.#log.warn({ source: 'ocsp', answer: 'unavailable', url: entry?.url.href, serialNumber: entry?.serialNumber, reason, verifyError: 'REVOCATION_UNAVAILABLE' },
        strict ? 'fastify-client-cert: no usable OCSP answer; strict refuses the certificate' : 'fastify-client-cert: no usable OCSP answer; soft-fail admits the certificate')
    }
    return strict ? { error: 'REVOCATION_UNAVAILABLE', recheckAt, decided: false } : { error: null, recheckAt, decided: false }
  }

  #fetch (entry: Entry, issuer: X509Certificate, blocking: boolean): void {
    entry.fetchStarted = Date.now()
    const fetched = this.#attempt(entry, issuer).then(() => {
      entry.inFlight = null
      this.#blocking.delete(fetched)
    })
    entry.inFlight = fetched
    if (blocking) this.#blocking.add(fetched)
  }

  /** Never rejects. */
  async #attempt (entry: Entry, issuer: X509Certificate): Promise<void> {
    const { settings } = this
    const nonce = settings.nonce ? randomBytes(16) : null
    try {
      const der = await postOcsp(entry.url, ocspRequest(entry.certId, nonce), settings)
      const now = Date.now()
      const single = readOcspResponse(der, { certId: entry.certId, issuer, nonce, now, clockSkew: settings.clockSkew, maxAge: settings.cacheTtl })
      const previous = entry.answer
      // Without a nonce, anyone on the path can replay an answer signed before the revocation that is still within
      // its nextUpdate: it must not replace a newer one.
      if (previous !== null && single.thisUpdate < previous.thisUpdate) throw new OcspResponseError('the answer is older than the one kept')
      entry.answer = {
        status: single.status,
        thisUpdate: single.thisUpdate,
        refreshAt: single.nextUpdate ?? now + settings.cacheTtl,
        usableUntil: single.nextUpdate === null ? now + settings.cacheTtl : single.nextUpdate + settings.clockSkew
      }
      entry.reason = null
      if (previous !== null && previous.status !== single.status && !this.#closed) this.#onChange()
    } catch (error) {
      const reason = (error as Error).message
      entry.retryAt = Date.now() + Math.min(RETRY_MS, settings.cacheTtl)
      entry.reason = reason
      this.#warn(entry, reason)
    }
  }

  #mayWarn (): boolean {
    const now = Date.now()
    if (now - this.#warnings.start >= LOG_MS) this.#warnings = { start: now, count: 0 }
    return this.#warnings.count++ < WARNINGS_PER_MINUTE
  }

  #warn (entry: Entry, reason: string): void {
    if (!this.#mayWarn()) return
    this.#log.warn({ source: 'ocsp', url: entry.url.href, serialNumber: entry.serialNumber, reason, kept: entry.answer !== null },
      'fastify-client-cert: OCSP request failed or its answer does not count; the last good answer, if any, stays in force')
  }
}
