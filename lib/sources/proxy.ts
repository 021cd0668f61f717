// Stage 1, behind a proxy: certificate headers are read only from trusted peers, decoded by a preset, cached by value.
import { timingSafeEqual, type X509Certificate } from 'node:crypto'
import { formatDN } from '../codecs/dn.js'
import { ClientCertBadHeaderError, ClientCertUntrustedSourceError } from '../errors.js'
import { fieldsFromDer, commonNameOf, freezeRDNs, freezeSan, withCertificate, type CertificateFields } from '../identity.js'
import { digestSecret, type CacheSettings, type NormalizedProxy } from '../options.js'
import { BoundedCache } from './forward-cache.js'
import { CertificateParseError } from '../codecs/parse-error.js'
import { ownBuffer } from '../codecs/cert-encodings.js'
import { readCertificate, x509Of } from '../codecs/x509.js'
import type { ForwardedCert } from './presets/types.js'

/** A forwarded certificate after decoding, as cached by header value (never by socket). */
export interface DecodedForward {
  /** `null`: the proxy says there is no certificate. */
  fields: CertificateFields | null
  /** The DER of the leaf (when forwarded whole) and of what the proxy forwarded after it. */
  ders: Buffer[]
  /**
   * What the proxy forwarded after the leaf, as Node's certificates for `proxy.ca` and `crl`: built on the first
   * call, so that a route needing neither never pays OpenSSL's parser (the DER reader checked them already).
   */
  chain: () => readonly X509Certificate[]
  proxyVerified: boolean
  proxyError: string | null
}

/**
 * What the request's headers hold for the proxy: `absent` when it carries none of the certificate headers.
 * A forward not served from the cache enters it only through `settle()`, once it is known to have verified.
 */
export type ForwardLookup = { kind: 'absent' } | Forwarded

export interface Forwarded {
  kind: 'forwarded'
  decoded: DecodedForward
  /** The cache index and the header values it stands for. */
  index: string
  values: Array<string | undefined>
  cached: boolean
}

const absent: ForwardLookup = Object.freeze({ kind: 'absent' })
/** What the trust check needs of a request: its socket (HTTP/2: a per-request view) and, on HTTP/2, its session. */
export interface PeerConnection {
  socket: { remoteAddress?: string }
  stream?: { session?: object }
}

/** The server the app listens with: a Unix socket listener's address is its path, a string. */
export interface Listener {
  address: () => unknown
}

interface CacheEntry {
  values: Array<string | undefined>
  decoded: DecodedForward
}

// What a cache entry costs in resident memory beside its header values (one byte a character), measured with
// 10,000 entries (P-256 and RSA-4096 leaves, nginx and HAProxy headers; docs/benchmarks.md): the identity, its
// fields and the entry about 6 KB of V8 heap, the DER once; Node's X509Certificate, built lazily by proxy.ca, crl,
// spiffe.bundles or a route reading identity.certificate (maybe after the entry was kept), about 6 KB of OpenSSL
// memory and the DER again. Charged whether built or not: real memory stays within 0.6 to 1.2 times the estimate.
const entryOverhead = 10240
const bytesPerDerByte = 2

// Characters of each value the cache is indexed by: the tail, where a certificate keeps its signature bytes.
const indexedTail = 96

/**
 * Admission on second sight. A fleet of many certificates that each call rarely (devices, agents, CI runners)
 * would put every one of them in the cache only to evict it unused: measured behind nginx with a new
 * certificate on every request, keeping them cost +19 µs of server CPU a request (old-generation garbage, RSS
 * 93 → 251 MB) over not caching at all. So a forward enters the cache the second time it is seen: the first
 * sighting leaves a 32-bit hash of its index in a fixed table (a slot per hash, newest wins), 4 bytes a slot and
 * no allocation. A collision only admits a forward one sighting early, or late; the cache itself is still keyed
 * and confirmed by the full header values.
 */
export class Doorkeeper {
  readonly #slots: Int32Array
  readonly #mask: number

  /** Slots: the next power of two at or above twice `entries`, between 1024 and 2^20. */
  constructor (entries: number) {
    let size = 1024
    while (size < entries * 2 && size < 1 << 20) size *= 2
    this.#slots = new Int32Array(size)
    this.#mask = size - 1
  }

  /** How many hashes the table holds at most. */
  get slots (): number {
    return this.#slots.length
  }

  /** True when `key` (by its hash) was offered before; records it otherwise. */
  seenBefore (key: string): boolean {
    // FNV-1a over the UTF-16 code units: the index is short (lengths and tails), so this costs well under a µs.
    let hash = 0x811c9dc5
    for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193)
    // An empty slot holds 0: a key hashing to 0 is admitted on its first sighting, which is harmless.
    const slot = (hash ^ (hash >>> 16)) & this.#mask
    if (this.#slots[slot] === hash) return true
    this.#slots[slot] = hash
    return false
  }
}

/**
 * Reads the certificate headers of one preset or mapping from a request: trust check on the TCP peer
 * address, shared secret, one copy per header, length cap, then decoding through a cache keyed by the
 * header values themselves.
 */
export class ProxySource {
  readonly #proxy: NormalizedProxy
  readonly #names: readonly string[]
  readonly #cache: BoundedCache<CacheEntry> | null
  readonly #doorkeeper: Doorkeeper | null
  // A connection's peer address never changes: judge it once per connection, not per request.
  readonly #trusted = new WeakMap<object, boolean>()
  readonly #listener: Listener | null
  #unixListener: boolean | undefined

  /** `listener`: the server, asked once whether it listens on a Unix socket; `null` (CLI): it does not. */
  constructor (proxy: NormalizedProxy, cache: CacheSettings['certificates'], listener: Listener | null) {
    this.#proxy = proxy
    this.#names = proxy.preset.headers
    this.#cache = cache.max > 0 && cache.maxBytes > 0 ? new BoundedCache<CacheEntry>(cache.max, cache.ttl, cache.maxBytes) : null
    this.#doorkeeper = this.#cache === null ? null : new Doorkeeper(cache.max)
    this.#listener = listener
  }

  /** True when the connection's TCP peer is a configured proxy. */
  isTrusted (request: PeerConnection): boolean {
    const connection = request.stream?.session ?? request.socket
    let trusted = this.#trusted.get(connection)
    if (trusted === undefined) {
      const address = peerAddress(request.socket, this.#listensOnUnixSocket())
      trusted = address !== undefined && this.#proxy.isTrusted(address)
      this.#trusted.set(connection, trusted)
    }
    return trusted
  }

  #listensOnUnixSocket (): boolean {
    if (this.#unixListener === undefined) {
      const address = this.#listener?.address()
      // Not listening (inject(), or already closed): there is no Unix socket to trust. Asked again next time.
      if (address === undefined || address === null) return false
      this.#unixListener = typeof address === 'string'
    }
    return this.#unixListener
  }

  /**
   * `absent` when the request has no certificate header; else the decoded forward.
   * Throws 400 errors for untrusted senders and malformed, repeated or oversized headers.
   */
  lookup (rawHeaders: readonly string[], request: PeerConnection): ForwardLookup {
    const values = this.#collect(rawHeaders)
    if (values === null) return absent
    if (!this.isTrusted(request)) throw new ClientCertUntrustedSourceError()
    const secret = this.#proxy.secret
    if (secret !== null) {
      const sent = values.get(secret.header)
      if (sent === undefined || !timingSafeEqual(digestSecret(sent), secret.digest)) throw new ClientCertUntrustedSourceError()
    }
    // Indexed by lengths and tails, so a hit hashes a short string rather than kilobytes; the full values confirm.
    const ordered: Array<string | undefined> = []
    let index = ''
    for (const name of this.#names) {
      const value = values.get(name)
      if (value !== undefined && value.length > this.#proxy.maxHeaderBytes) throw new ClientCertBadHeaderError()
      ordered.push(value)
      index += value === undefined ? '-;' : `${value.length}:${value.slice(-indexedTail)};`
    }
    const cached = this.#cache?.get(index, Date.now())
    if (cached !== undefined && sameValues(cached.values, ordered)) return { kind: 'forwarded', decoded: cached.decoded, index, values: ordered, cached: true }
    return { kind: 'forwarded', decoded: this.#decode(values), index, values: ordered, cached: false }
  }

  /**
   * Keeps a forward that verified for the next requests, and drops a cached one that no longer does (a reload
   * revoked it, it expired). A forward that did not verify is never kept: a client with certificates of its own
   * making could otherwise fill memory with them.
   */
  settle (lookup: Forwarded, verified: boolean): void {
    if (this.#cache === null || lookup.cached === verified) return
    if (!verified) {
      this.#cache.delete(lookup.index)
      return
    }
    if (!this.#doorkeeper!.seenBefore(lookup.index)) return
    const { decoded, values } = lookup
    let bytes = entryOverhead
    for (const value of values) bytes += value === undefined ? 0 : value.length
    for (const der of decoded.ders) bytes += bytesPerDerByte * der.length
    this.#cache.set(lookup.index, { values, decoded }, bytes, Date.now())
  }

  /** What the forwarded-certificate cache holds now. */
  stats (): { entries: number, bytes: number } {
    return { entries: this.#cache?.size ?? 0, bytes: this.#cache?.bytes ?? 0 }
  }

  #collect (rawHeaders: readonly string[]): Map<string, string> | null {
    let values: Map<string, string> | null = null
    let certificateHeaders = false
    const secretHeader = this.#proxy.secret?.header
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i].toLowerCase()
      const ours = this.#proxy.headerNames.has(name)
      if (!ours && name !== secretHeader) continue
      values ??= new Map()
      if (!values.has(name)) {
        values.set(name, rawHeaders[i + 1])
      } else if (this.#proxy.listHeaderNames.has(name)) {
        // RFC 9110 §5.3: field lines of a list mean their comma-joined value.
        values.set(name, `${values.get(name)!}, ${rawHeaders[i + 1]}`)
      } else {
        // Any other repeated certificate header is an attack or a misconfiguration: never pick one of them.
        throw new ClientCertBadHeaderError()
      }
      if (ours) certificateHeaders = true
    }
    return certificateHeaders ? values : null
  }

  #decode (values: Map<string, string>): DecodedForward {
    let forwarded: ForwardedCert | null
    try {
      forwarded = this.#proxy.preset.decode(function read (name: string) { return values.get(name) })
      if (forwarded === null) return { fields: null, ders: [], chain: noChain, proxyVerified: false, proxyError: null }
      const der = forwarded.der === null ? null : ownBuffer(forwarded.der)
      const ders = forwarded.chain.map(ownBuffer)
      // Refused here what OpenSSL would refuse, so that building them later cannot fail.
      for (const certificate of ders) readCertificate(certificate)
      let chain: X509Certificate[] | undefined
      return {
        // A preset's own reading of the DER is reused when it read these very bytes (not a slice since copied).
        fields: der === null ? fieldsFromParts(forwarded) : fieldsFromDer(der, forwarded.certificate, der === forwarded.der ? forwarded.parsed : undefined),
        ders: der === null ? ders : [der, ...ders],
        chain: function forwardedChain () { return (chain ??= ders.map((certificate) => x509Of(certificate))) },
        // A proxy that forwards unverified certificates leaves the verdict to proxy.ca (registration requires it).
        proxyVerified: forwarded.verified || !this.#proxy.preset.proxyVerifies,
        proxyError: forwarded.verified ? null : forwarded.verifyError
      }
    } catch (error) {
      throw badHeader(error)
    }
  }
}

const noChain = Object.freeze(function noChain (): readonly X509Certificate[] { return [] })

function sameValues (a: ReadonlyArray<string | undefined>, b: ReadonlyArray<string | undefined>): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/**
 * The peer address trust is judged on: `'unix'` for every connection of a Unix socket listener, decided by the
 * listener. A TCP socket without an address (the peer reset it before the request was read) is nobody.
 */
export function peerAddress (socket: { remoteAddress?: string }, unixListener: boolean): string | undefined {
  return unixListener ? 'unix' : socket.remoteAddress
}

function badHeader (cause: unknown): Error {
  const error = new ClientCertBadHeaderError()
  // The cause reaches the log (never the client): a codec's reason helps whoever set up the proxy. Every decoder
  // throws CertificateParseError (the DER reader refuses what OpenSSL would refuse before OpenSSL is asked);
  // anything else would be a bug, logged under a neutral cause, never echoed.
  if (cause instanceof CertificateParseError) {
    error.cause = cause
    return error
  }
  /* c8 ignore next 3 */
  error.cause = new CertificateParseError('not a valid X.509 certificate')
  return error
}

function fieldsFromParts (forwarded: ForwardedCert): CertificateFields {
  // Presets give the SPIFFE ID beside URI SANs; a subject only where the proxy forwards one (GCP does not).
  const subjectRDNs = forwarded.subjectRDNs === undefined ? null : freezeRDNs(forwarded.subjectRDNs)
  const issuerRDNs = forwarded.issuerRDNs === undefined ? null : freezeRDNs(forwarded.issuerRDNs)
  const san = forwarded.san === undefined ? null : freezeSan(forwarded.san)
  return withCertificate({
    subject: subjectRDNs === null ? null : formatDN(subjectRDNs),
    issuer: issuerRDNs === null ? null : formatDN(issuerRDNs),
    subjectRDNs,
    issuerRDNs,
    commonName: subjectRDNs === null ? null : commonNameOf(subjectRDNs),
    san,
    spiffeId: forwarded.spiffeId ?? null,
    serialNumber: forwarded.serialNumber ?? null,
    fingerprint256: forwarded.fingerprint256 ?? null,
    notBefore: forwarded.notBefore ?? null,
    notAfter: forwarded.notAfter ?? null
  }, null)
}
