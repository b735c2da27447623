// Where a session lives and how sessions end together: the memcached key of a session id
// (prefix + namespace generation + HMAC of the id), the generation behind clear(), and
// destroy's tombstone.
import { createHmac } from 'node:crypto'
import { isMemkitError, type MemkitClient } from '@memkit/client'
import { encodeTombstone } from './envelope.js'
import { SessionArgumentError, SessionCorruptError, type SessionError } from './errors.js'
import type { StoreConfig } from './options.js'

/** Session ids whose HMAC this process remembers: a request hashes its id on get and again on set/touch. */
const HASHES_KEPT = 10_000

export class Namespace {
  readonly #client: MemkitClient
  readonly #config: StoreConfig
  readonly #report: (error: SessionError) => void
  readonly #genKey: string
  readonly #hashes = new Map<string, string>()
  #gen: number | undefined
  #keyStart = { gen: Number.NaN, text: '' }

  constructor(client: MemkitClient, config: StoreConfig, report: (error: SessionError) => void) {
    this.#client = client
    this.#config = config
    this.#report = report
    this.#genKey = `${config.prefix}gen`
  }

  /** base64url(HMAC-SHA-256(secret, sid)): the part of the key that names the session. */
  hash(sid: string): string {
    if (typeof sid !== 'string' || sid.length === 0) {
      throw new SessionArgumentError(`session id must be a non-empty string; got ${typeof sid}`)
    }
    let hash = this.#hashes.get(sid)
    if (hash === undefined) {
      hash = createHmac('sha256', this.#config.secret).update(sid, 'utf8').digest('base64url')
      if (this.#hashes.size >= HASHES_KEPT) this.#hashes.delete(this.#hashes.keys().next().value as string)
      this.#hashes.set(sid, hash)
    }
    return hash
  }

  /** `prefix + generation (base 36) + ':' + hash`. */
  key(gen: number, hash: string): string {
    if (this.#keyStart.gen !== gen)
      this.#keyStart = { gen, text: `${this.#config.prefix}${gen.toString(36)}:` }
    return this.#keyStart.text + hash
  }

  /** The last generation this process knows, read from memcached when it knows none. */
  async current(): Promise<number> {
    return this.#gen ?? (await this.#readGen())
  }

  /**
   * Runs `op` on the last known generation while reading the current one in parallel (one round
   * trip); when the generation moved (a clear() elsewhere), runs it again on the new one.
   */
  async withGen<T>(op: (gen: number) => Promise<T>): Promise<{ gen: number; value: T }> {
    const known = this.#gen
    if (known === undefined) {
      const gen = await this.#readGen()
      return { gen, value: await op(gen) }
    }
    const [current, result] = await Promise.allSettled([this.#readGen(), op(known)])
    if (current.status === 'fulfilled' && current.value !== known) {
      return { gen: current.value, value: await op(current.value) }
    }
    if (result.status === 'rejected') throw result.reason
    // The generation's server failed but the session's answered: the last known generation stands.
    return { gen: known, value: result.value }
  }

  /** Replaces the session with a tombstone (or deletes it when `tombstoneTtl` is 0). */
  async destroy(hash: string): Promise<void> {
    const ttl = this.#config.tombstoneTtl
    await this.withGen((g) =>
      ttl > 0
        ? this.#client.set(this.key(g, hash), encodeTombstone(Date.now()), { ttl })
        : this.#client.delete(this.key(g, hash)),
    )
  }

  /** Moves to a new generation: every session of the prefix becomes unreachable at once. */
  async clear(): Promise<void> {
    this.#gen = await this.#client.incr(this.#genKey, 1, { initial: Date.now(), ttl: 0 })
  }

  /** Reads (creating it when missing) the generation in one command: `ma` with delta 0. */
  async #readGen(): Promise<number> {
    let gen: number | undefined
    try {
      gen = await this.#client.incr(this.#genKey, 0, { initial: Date.now(), ttl: 0 })
    } catch (error) {
      if (!isMemkitError(error, 'ERR_MEMKIT_NOT_NUMERIC')) throw error
      // Overwritten by something else: start a new generation (every session ends, none leaks).
      this.#report(
        new SessionCorruptError(
          `the generation key ${this.#genKey} held a non-number; starting a new generation`,
          this.#genKey,
          { cause: error },
        ),
      )
      await this.#client.delete(this.#genKey)
      gen = await this.#client.incr(this.#genKey, 0, { initial: Date.now(), ttl: 0 })
    }
    this.#gen = gen as number
    return gen as number
  }
}
