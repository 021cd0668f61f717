import { LruMap } from 'toad-cache'
import type { ClientCertIdentity } from '../identity.js'

/**
 * Users resolved by `resolveUser`, keyed by what identifies the certificate (its SHA-256 fingerprint, else
 * every name the identity carries: see `keyOf`), never by a connection. Concurrent requests for one certificate share one lookup;
 * failures and refusals (any falsy result) are not kept, so an enrolment or a fixed database is seen on the
 * next request.
 */
export class UserCache<User = unknown> {
  readonly #users: LruMap<User> | null
  readonly #pending = new Map<string, Promise<User | null>>()
  // Bumped by clear(): a lookup that started before a reload may answer its own request, never fill the cache.
  #generation = 0

  constructor (max: number, ttl: number) {
    this.#users = max > 0 ? new LruMap<User>(max, ttl) : null
  }

  /**
   * The fingerprint when known. Else (a proxy that forwards names alone) issuer and serial would name one
   * certificate only if every issuer kept serials unique and the forwarded names were all there is to it:
   * the key holds everything `resolveUser` can read from the identity (issuer, serial, subject with each
   * attribute's OID, value and DER flag, SANs, validity), as JSON, so that two identities that differ in
   * anything never share a user. `null` (not cached) without issuer and serial.
   */
  static keyOf (identity: ClientCertIdentity): string | null {
    if (identity.fingerprint256 !== null) return 'sha256:' + identity.fingerprint256
    if (identity.issuerRDNs === null || identity.serialNumber === null) return null
    return 'names:' + JSON.stringify([
      identity.serialNumber, identity.issuerRDNs, identity.subjectRDNs, identity.san, identity.notBefore, identity.notAfter
    ])
  }

  /** The user for `identity`, from the cache or from `load`; `load` runs once however many requests wait. */
  resolve (identity: ClientCertIdentity, load: () => Promise<User | null>): Promise<User | null> | User {
    const key = this.#users === null ? null : UserCache.keyOf(identity)
    if (key === null) return load()
    const cached = this.#users!.get(key)
    if (cached !== undefined) return cached
    let pending = this.#pending.get(key)
    if (pending === undefined) {
      const generation = this.#generation
      const lookup: Promise<User | null> = load().then((user) => {
        if (Boolean(user) && generation === this.#generation) this.#users!.set(key, user as User)
        return user
      }).finally(() => {
        if (this.#pending.get(key) === lookup) this.#pending.delete(key)
      })
      pending = lookup
      this.#pending.set(key, lookup)
    }
    return pending
  }

  /** Entries held now. */
  get size (): number {
    return this.#users?.size ?? 0
  }

  /** Forgets every user, and every lookup still in flight: requests after this one look up afresh. */
  clear (): void {
    this.#generation++
    this.#pending.clear()
    this.#users?.clear()
  }
}
