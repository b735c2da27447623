import { type MemkitClient, ProtocolError } from '@memkit/client'
import { hasCode } from './transport.js'

/** Where the counters live: memcached, or this process's memory (the `local` fallback). */
export interface CounterStore {
  /** Adds `cost` to the counter, creating it (with `cost`, expiring in `ttlSeconds`) when missing. */
  add(key: string, cost: number, ttlSeconds: number): Promise<number> | number
  /** The counter's value without creating it; 0 when missing. */
  read(key: string): Promise<number> | number
  /** Takes `cost` off an existing counter, stopping at zero; a missing counter stays missing. */
  subtract(key: string, cost: number): Promise<void> | void
  remove(key: string): Promise<void> | void
}

/**
 * Counters in memcached: one create-or-increment per add (`incr` with an initial value and a
 * TTL), which every transport can do exactly; see transport.ts for its cost on each.
 */
export class MemcachedCounterStore implements CounterStore {
  readonly #client: MemkitClient

  constructor(client: MemkitClient) {
    this.#client = client
  }

  add(key: string, cost: number, ttlSeconds: number): Promise<number> {
    const options = { initial: cost, ttl: ttlSeconds }
    return this.#client.incr(key, cost, options).then(counted, (error: unknown) => {
      // Something other than a counter sits under our key (written by hand, or corrupt): the
      // window starts over rather than the key going unlimited for the rest of it.
      if (!isNotNumeric(error)) throw error
      return this.#client
        .delete(key)
        .then(() => this.#client.incr(key, cost, options))
        .then(counted)
    })

    function counted(value: number | undefined): number {
      if (value === undefined) {
        throw new ProtocolError(`memcached did not create the counter ${key}`, 'memcached')
      }
      return value
    }
  }

  read(key: string): Promise<number> {
    // A zero delta without `initial` reads a counter and never creates one.
    return this.#client.incr(key, 0).then(
      (value) => value ?? 0,
      (error: unknown) => {
        if (isNotNumeric(error)) return 0
        throw error
      },
    )
  }

  async subtract(key: string, cost: number): Promise<void> {
    try {
      await this.#client.decr(key, cost)
    } catch (error) {
      if (!isNotNumeric(error)) throw error
    }
  }

  async remove(key: string): Promise<void> {
    await this.#client.delete(key)
  }
}

/** incr/decr on something that is not a counter (`ERR_MEMKIT_NOT_NUMERIC`). */
function isNotNumeric(error: unknown): boolean {
  return hasCode(error, 'ERR_MEMKIT_NOT_NUMERIC')
}

interface MemoryEntry {
  value: number
  expiresAt: number
}

/**
 * Counters in this process, bounded to `maxKeys` (the oldest entry makes room),
 * so a flood of distinct keys during an outage cannot exhaust memory.
 */
export class MemoryCounterStore implements CounterStore {
  readonly #entries = new Map<string, MemoryEntry>()
  readonly #maxKeys: number

  constructor(maxKeys: number) {
    this.#maxKeys = maxKeys
  }

  get size(): number {
    return this.#entries.size
  }

  add(key: string, cost: number, ttlSeconds: number): number {
    const now = Date.now()
    const entry = this.#entries.get(key)
    if (entry && entry.expiresAt > now) {
      entry.value += cost
      return entry.value
    }
    if (entry) this.#entries.delete(key)
    else if (this.#entries.size >= this.#maxKeys) this.#evict()
    this.#entries.set(key, { value: cost, expiresAt: now + ttlSeconds * 1000 })
    return cost
  }

  read(key: string): number {
    const entry = this.#entries.get(key)
    return entry && entry.expiresAt > Date.now() ? entry.value : 0
  }

  subtract(key: string, cost: number): void {
    const entry = this.#entries.get(key)
    if (entry) entry.value = Math.max(0, entry.value - cost)
  }

  remove(key: string): void {
    this.#entries.delete(key)
  }

  #evict(): void {
    // Map iteration is insertion order, and every window has its own key: the oldest entry is
    // almost always an expired one.
    const oldest = this.#entries.keys().next()
    if (!oldest.done) this.#entries.delete(oldest.value)
  }
}
