import { createHash } from 'node:crypto'

export interface HashedKey {
  /** `<prefix><22 base64url characters>`: what the window index is appended to. */
  readonly base: string
  /**
   * Where this key's windows start, in ms within the window length. A per-key offset spreads
   * resets over the window instead of releasing every client at the same instant, and needs no
   * stored expiry: every process derives the same phase from the key.
   */
  readonly phase: number
}

/**
 * Hashes a client-derived key (an IP, a user id, an API key...) so that any value, however long
 * or strange, becomes a short, safe memcached key, and nothing a client sends can reach the
 * protocol. `namespace` separates limiters that must count separately.
 *
 * The namespace goes in with its length in front (`<bytes>:<namespace><key>`), so no choice of
 * characters in either part can make two different (namespace, key) pairs hash alike; a plain
 * separator could be sent inside a key.
 */
export function hashKey(prefix: string, namespace: string, key: string, windowMs: number): HashedKey {
  const digest = createHash('sha256')
    .update(`${Buffer.byteLength(namespace)}:${namespace}`)
    .update(key)
    .digest()
  return {
    // 16 bytes are 22 base64url characters (base64url has no padding).
    base: prefix + digest.toString('base64url', 0, 16),
    // 48 bits are plenty to spread phases over a window of any length.
    phase: digest.readUIntBE(16, 6) % Math.max(1, Math.floor(windowMs)),
  }
}

/** express-rate-limit's draft-8 partition key: base64 of the first 12 hex digits of sha256(key). */
export function partitionKey(key: string): string {
  const hex = createHash('sha256').update(key).digest('hex').slice(0, 12)
  return Buffer.from(hex).toString('base64')
}

/**
 * `hashKey` for one limiter, remembering the last `cacheSize` keys: a busy client's key is
 * hashed once, not on every request.
 */
export class KeyHasher {
  readonly #prefix: string
  readonly #namespace: string
  readonly #windowMs: number
  readonly #cacheSize: number
  readonly #cache = new Map<string, HashedKey>()

  constructor(prefix: string, namespace: string, windowMs: number, cacheSize = 4096) {
    this.#prefix = prefix
    this.#namespace = namespace
    this.#windowMs = windowMs
    this.#cacheSize = cacheSize
  }

  hash(key: string): HashedKey {
    const cached = this.#cache.get(key)
    if (cached !== undefined) return cached
    const hashed = hashKey(this.#prefix, this.#namespace, key, this.#windowMs)
    // Long keys are not worth remembering (and must not pin memory).
    if (key.length <= 256) {
      if (this.#cache.size >= this.#cacheSize) this.#cache.delete(this.#cache.keys().next().value as string)
      this.#cache.set(key, hashed)
    }
    return hashed
  }
}
