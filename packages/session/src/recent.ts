/** What this process last learned about a stored session, by hashed key. */
export interface KeyState {
  /** Namespace generation the session was read or written under. */
  gen: number
  /** When the session was first saved (ms); what `maxLifetime` counts from. */
  createdAt: number
  /** The stored cookie as JSON, to tell a cookie change from a plain refresh (see sameCookie). */
  cookieJson: string
  /** Its signature (the cookie without expiry fields), computed when first needed. */
  cookieSig?: string
  /** When this process last extended the entry's expiry (write, touch or read), for `touchAfter`. */
  refreshedAt: number
  /**
   * The earliest time (ms) memcached may drop the entry, from the TTL this process last gave it
   * (0 when unknown): a touch that asks for no later expiry is not sent.
   */
  keptUntil: number
  /** How far (ms) each request moves the session's expiry, from its cookie; undefined: not at all. */
  rollingMs: number | undefined
  /** CAS token from the last read, while no write by this process has made it stale. */
  cas?: string
}

/**
 * A bounded map (least recently used entries go first). It only saves round trips and
 * rewrites: losing an entry costs a touch or a full write, never correctness.
 */
export class RecentSessions {
  readonly #map = new Map<string, KeyState>()
  constructor(readonly limit: number) {}

  get(hash: string): KeyState | undefined {
    const state = this.#map.get(hash)
    if (state) {
      this.#map.delete(hash)
      this.#map.set(hash, state)
    }
    return state
  }

  /** The entry without making it the most recently used. */
  peek(hash: string): KeyState | undefined {
    return this.#map.get(hash)
  }

  set(hash: string, state: KeyState): void {
    this.#map.delete(hash)
    this.#map.set(hash, state)
    if (this.#map.size > this.limit) this.#map.delete(this.#map.keys().next().value as string)
  }

  delete(hash: string): void {
    this.#map.delete(hash)
  }

  clear(): void {
    this.#map.clear()
  }

  get size(): number {
    return this.#map.size
  }
}
