/**
 * A least-recently-used map bounded by entries and by bytes, whose entries expire. The forwarded-certificate
 * cache needs the byte bound: its values are certificates of up to `proxy.maxHeaderBytes`, so a count alone
 * lets a few thousand large ones hold gigabytes.
 */
export class BoundedCache<Value> {
  readonly #max: number
  readonly #ttl: number
  readonly #maxBytes: number
  // A Map iterates in insertion order: re-inserting on each hit keeps the least recently used first.
  readonly #entries = new Map<string, { value: Value, bytes: number, expiresAt: number }>()
  #bytes = 0

  /** `ttl` 0: entries live until evicted. */
  constructor (max: number, ttl: number, maxBytes: number) {
    this.#max = max
    this.#ttl = ttl
    this.#maxBytes = maxBytes
  }

  get (key: string, now: number): Value | undefined {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    this.#entries.delete(key)
    if (now >= entry.expiresAt) {
      this.#bytes -= entry.bytes
      return undefined
    }
    this.#entries.set(key, entry)
    return entry.value
  }

  /** Keeps `value` unless it alone exceeds the byte bound, evicting the least recently used to make room. */
  set (key: string, value: Value, bytes: number, now: number): void {
    this.delete(key)
    if (this.#max === 0 || bytes > this.#maxBytes) return
    this.#entries.set(key, { value, bytes, expiresAt: this.#ttl === 0 ? Infinity : now + this.#ttl })
    this.#bytes += bytes
    for (const [oldest, entry] of this.#entries) {
      if (this.#entries.size <= this.#max && this.#bytes <= this.#maxBytes) break
      this.#entries.delete(oldest)
      this.#bytes -= entry.bytes
    }
  }

  delete (key: string): void {
    const entry = this.#entries.get(key)
    if (entry === undefined) return
    this.#entries.delete(key)
    this.#bytes -= entry.bytes
  }

  get size (): number {
    return this.#entries.size
  }

  /** The sum of the entries' estimated sizes. */
  get bytes (): number {
    return this.#bytes
  }
}
