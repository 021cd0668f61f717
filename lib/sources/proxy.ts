// Stage 1, behind a proxy: certificate headers are read only from trusted peers, decoded by a preset, cached by value.
import { timingSafeEqual, X509Certificate } from 'node:crypto'
import { LruMap } from 'toad-cache'
import { formatDN } from '../codecs/dn.js'
import { ClientCertBadHeaderError, ClientCertUntrustedSourceError } from '../errors.js'
import { certificateFields, commonNameOf, freezeRDNs, freezeSan, type CertificateFields } from '../identity.js'
import { digestSecret, type NormalizedProxy } from '../options.js'
import { CertificateParseError } from '../codecs/parse-error.js'
import type { ForwardedCert } from './presets/types.js'

/** A forwarded certificate after decoding, as cached by header value (never by socket). */
export interface DecodedForward {
  /** `null`: the proxy says there is no certificate. */
  fields: CertificateFields | null
  /** The leaf (when forwarded whole) and what the proxy forwarded after it, for `proxy.ca` and `crl`. */
  leaf: X509Certificate | null
  chain: X509Certificate[]
  proxyVerified: boolean
  proxyError: string | null
}

/** What the request's headers hold for the proxy: `absent` when it carries none of the certificate headers. */
export type ForwardLookup = { kind: 'absent' } | { kind: 'forwarded', decoded: DecodedForward }

const absent: ForwardLookup = Object.freeze({ kind: 'absent' })
/** What the trust check needs of a request: its socket (HTTP/2: a per-request view) and, on HTTP/2, its session. */
export interface PeerConnection {
  socket: { remoteAddress?: string, destroyed: boolean }
  stream?: { session?: object }
}

interface CacheEntry {
  values: Array<string | undefined>
  decoded: DecodedForward
}

// Characters of each value the cache is indexed by: the tail, where a certificate keeps its signature bytes.
const indexedTail = 96

/**
 * Reads the certificate headers of one preset or mapping from a request: trust check on the TCP peer
 * address, shared secret, one copy per header, length cap, then decoding through a cache keyed by the
 * header values themselves.
 */
export class ProxySource {
  readonly #proxy: NormalizedProxy
  readonly #names: readonly string[]
  readonly #cache: LruMap<CacheEntry> | null
  // A connection's peer address never changes: judge it once per connection, not per request.
  readonly #trusted = new WeakMap<object, boolean>()

  constructor (proxy: NormalizedProxy, cacheMax: number, cacheTtl: number) {
    this.#proxy = proxy
    this.#names = proxy.preset.headers
    this.#cache = cacheMax > 0 ? new LruMap<CacheEntry>(cacheMax, cacheTtl) : null
  }

  /** True when the connection's TCP peer is a configured proxy. */
  isTrusted (request: PeerConnection): boolean {
    const connection = request.stream?.session ?? request.socket
    let trusted = this.#trusted.get(connection)
    if (trusted === undefined) {
      const address = peerAddress(request.socket)
      trusted = address !== undefined && this.#proxy.isTrusted(address)
      this.#trusted.set(connection, trusted)
    }
    return trusted
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
    const cached = this.#cache?.get(index)
    if (cached !== undefined && sameValues(cached.values, ordered)) return { kind: 'forwarded', decoded: cached.decoded }
    const decoded = this.#decode(values)
    this.#cache?.set(index, { values: ordered, decoded })
    return { kind: 'forwarded', decoded }
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
      // Node joins repeated headers into one value; a repeated certificate header is an attack or a misconfiguration.
      if (values.has(name)) throw new ClientCertBadHeaderError()
      values.set(name, rawHeaders[i + 1])
      if (ours) certificateHeaders = true
    }
    return certificateHeaders ? values : null
  }

  #decode (values: Map<string, string>): DecodedForward {
    let forwarded: ForwardedCert | null
    try {
      forwarded = this.#proxy.preset.decode(function read (name: string) { return values.get(name) })
      if (forwarded === null) return { fields: null, leaf: null, chain: [], proxyVerified: false, proxyError: null }
      const leaf = forwarded.der === null ? null : new X509Certificate(forwarded.der)
      return {
        fields: leaf === null ? fieldsFromParts(forwarded) : certificateFields(leaf),
        leaf,
        chain: forwarded.chain.map((der) => new X509Certificate(der)),
        // A proxy that forwards unverified certificates leaves the verdict to proxy.ca (registration requires it).
        proxyVerified: forwarded.verified || !this.#proxy.preset.proxyVerifies,
        proxyError: forwarded.verified ? null : forwarded.verifyError
      }
    } catch (error) {
      throw badHeader(error)
    }
  }
}

function sameValues (a: ReadonlyArray<string | undefined>, b: ReadonlyArray<string | undefined>): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** The TCP peer address trust is judged on; `'unix'` for a Unix domain socket, which has none. */
export function peerAddress (socket: { remoteAddress?: string, destroyed: boolean }): string | undefined {
  // A destroyed TCP socket may have lost its address too: that must never read as 'unix'.
  return socket.remoteAddress ?? (socket.destroyed ? undefined : 'unix')
}

function badHeader (cause: unknown): Error {
  const error = new ClientCertBadHeaderError()
  // The cause reaches the log (never the client): OpenSSL's or a codec's reason helps whoever set up the proxy.
  error.cause = cause instanceof CertificateParseError ? cause : new CertificateParseError('not a valid X.509 certificate')
  return error
}

function fieldsFromParts (forwarded: ForwardedCert): CertificateFields {
  // Presets give the SPIFFE ID beside URI SANs; a subject only where the proxy forwards one (GCP does not).
  const subjectRDNs = forwarded.subjectRDNs === undefined ? null : freezeRDNs(forwarded.subjectRDNs)
  const issuerRDNs = forwarded.issuerRDNs === undefined ? null : freezeRDNs(forwarded.issuerRDNs)
  const san = forwarded.san === undefined ? null : freezeSan(forwarded.san)
  return Object.freeze({
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
    notAfter: forwarded.notAfter ?? null,
    certificate: null
  })
}
