// Where a session lives and how sessions end together: the memcached key of a session id
// (prefix + namespace generation + HMAC of the id), the generation behind clear(), and
// destroy's tombstone.
//
// The generation is the client's replicated counter (client.generation): copies on three
// servers, read as the highest, repaired upwards, never moving backwards. So no single server's
// loss, eviction or older copy changes what every session key means. It is read at most once
// per `generationRefresh` per process, in parallel with the operation it guards.
import { createHmac } from 'node:crypto'
import { type Generation, isMemkitError, type MemkitClient } from '@memkit/client'
import { encodeTombstone } from './envelope.js'
import { SessionArgumentError, SessionCorruptError, type SessionError } from './errors.js'
import type { StoreConfig } from './options.js'

/** Session ids whose HMAC this process remembers: a request hashes its id on get and again on set/touch. */
const HASHES_KEPT = 10_000
/** Copies of the generation, each on a different server where the pool has enough. */
const GENERATION_REPLICAS = 3
const noop = () => {}

export class Namespace {
  readonly #client: MemkitClient
  readonly #config: StoreConfig
  readonly #report: (error: SessionError) => void
  readonly #generation: Generation
  readonly #hashes = new Map<string, string>()
  /** When this process last started reading the generation (performance.now() ms). */
  #checkedAt = Number.NEGATIVE_INFINITY
  #keyStart = { gen: Number.NaN, text: '' }

  constructor(client: MemkitClient, config: StoreConfig, report: (error: SessionError) => void) {
    this.#client = client
    this.#config = config
    this.#report = report
    // The first copy is `<prefix>gen` itself: deployments that kept the generation in that one
    // key go on with the generation they have.
    this.#generation = client.generation(`${config.prefix}gen`, { replicas: GENERATION_REPLICAS })
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

  /** The generation as this process knows it, read again when the last read is due for a refresh. */
  async current(): Promise<number> {
    const known = this.#generation.known
    if (known !== undefined && !this.#due()) return known
    return this.#read()
  }

  /**
   * Runs `op` under the generation this process knows. When the last read of the generation is
   * older than `generationRefresh`, the generation is read again in parallel with `op` (the same
   * round trip), and if it moved (a clear() elsewhere) `op` runs again under the new one. Only
   * the request that starts a refresh waits for it; the others meanwhile use the generation
   * known. A clear() in this process moves the generation at once, even for operations in flight.
   */
  async withGen<T>(op: (gen: number) => Promise<T>): Promise<{ gen: number; value: T }> {
    const known = this.#generation.known
    if (known === undefined) {
      const gen = await this.#read()
      return { gen, value: await op(gen) }
    }
    let value = undefined as T
    if (this.#due()) {
      const [, result] = await Promise.allSettled([this.#read().catch(noop), op(known)])
      // A failed read leaves the generation this process knows in place.
      if (result.status === 'rejected' && this.#generation.known === known) throw result.reason
      value = (result as PromiseFulfilledResult<T>).value
    } else {
      try {
        value = await op(known)
      } catch (error) {
        if (this.#generation.known === known) throw error
      }
    }
    const current = this.#generation.known as number
    if (current === known) return { gen: known, value }
    return { gen: current, value: await op(current) }
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

  /**
   * Moves every copy of the generation forward (compare-and-swap per copy; succeeds when one
   * copy took it): every session of the prefix becomes unreachable at once in this process, and
   * in the others at their next read of the generation. What this process knows of older
   * generations stays: a request that loaded a session before the clear cannot save it back.
   */
  async clear(): Promise<void> {
    try {
      await this.#generation.bump()
    } catch (error) {
      if (!isMemkitError(error, 'ERR_MEMKIT_NOT_NUMERIC')) throw error
      await this.#replaceCorrupt(error)
      await this.#generation.bump()
    }
    this.#checkedAt = performance.now()
  }

  #due(): boolean {
    return performance.now() - this.#checkedAt >= this.#config.generationRefreshMs
  }

  /** Reads the generation (creating it when no copy exists and this process knows none). */
  async #read(): Promise<number> {
    this.#checkedAt = performance.now()
    try {
      return await this.#generation.read({ maxAge: this.#config.generationRefreshMs })
    } catch (error) {
      if (!isMemkitError(error, 'ERR_MEMKIT_NOT_NUMERIC')) throw error
      await this.#replaceCorrupt(error)
      return this.#generation.read()
    }
  }

  /**
   * Every readable copy holds something that is not a counter (overwritten by something else) and
   * this process knows no generation: a new one starts (every session ends, none leaks).
   */
  async #replaceCorrupt(cause: unknown): Promise<void> {
    const key = this.#generation.key
    this.#report(
      new SessionCorruptError(`the generation key ${key} held a non-number; starting a new generation`, key, {
        cause,
      }),
    )
    await Promise.allSettled(this.#generation.copyKeys.map((copy) => this.#client.delete(copy)))
  }
}
