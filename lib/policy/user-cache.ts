import { LruMap } from 'toad-cache'
import type { ClientCertIdentity } from '../identity.js'

/**
 * Users resolved by `resolveUser`, keyed by what identifies the certificate (its SHA-256 fingerprint, else
 * issuer and serial), never by a connection. Concurrent requests for one certificate share one lookup;
 * failures and `null` are not kept, so an enrolment or a fixed database is seen on the next request.
 */
export class UserCache<User = unknown> {
  readonly #users: LruMap<User> | null
  readonly #pending = new Map<string, Promise<User | null>>()

  constructor (max: number, ttl: number) {
    this.#users = max > 0 ? new LruMap<User>(max, ttl) : null
  }

  static keyOf (identity: ClientCertIdentity): string | null {
    if (identity.fingerprint256 !== null) return 'sha256:' + identity.fingerprint256
    if (identity.issuer !== null && identity.serialNumber !== null) return 'serial:' + identity.serialNumber + '\n' + identity.issuer
    return null
  }

  /** The user for `identity`, from the cache or from `load`; `load` runs once however many requests wait. */
  resolve (identity: ClientCertIdentity, load: () => Promise<User | null>): Promise<User | null> | User {
    const key = this.#users === null ? null : UserCache.keyOf(identity)
    if (key === null) return load()
    const cached = this.#users!.get(key)
    if (cached !== undefined) return cached
    let pending = this.#pending.get(key)
    if (pending === undefined) {
      pending = load().then((user) => {
        if (user !== null && user !== undefined) this.#users!.set(key, user)
        return user
      }).finally(() => {
        this.#pending.delete(key)
      })
      this.#pending.set(key, pending)
    }
    return pending
  }

  clear (): void {
    this.#users?.clear()
  }
}
