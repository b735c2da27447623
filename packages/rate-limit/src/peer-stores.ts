// Stores that put memkit's one-round-trip counter under express-rate-limit and
// @fastify/rate-limit, for applications that keep those libraries. Neither library is imported:
// they call these objects through their documented store interfaces.
import { InvalidOptionError, type MemkitClient } from '@memkit/client'
import { countRequest } from './count.js'
import { MemcachedCounterStore } from './counter-store.js'
import { KeyHasher } from './key.js'
import { type Algorithm, isKeySafe, oneOf, text } from './options.js'
import { decideSliding, type Window, windowAt } from './window.js'

export interface PeerStoreOptions {
  /** The shared memkit client. */
  client: MemkitClient
  /** Prefix of the memcached keys. Default `'erl:'` (express-rate-limit) / `'frl:'` (@fastify/rate-limit). */
  prefix?: string
  /** `'fixed'` or `'sliding'` windows (the library then sees the weighted count as its hits). Default `'fixed'`. */
  algorithm?: Algorithm
}

interface Parsed {
  counters: MemcachedCounterStore
  prefix: string
  algorithm: Algorithm
}

function parse(options: PeerStoreOptions, defaultPrefix: string): Parsed {
  if (typeof options !== 'object' || options === null)
    throw new InvalidOptionError('options must be an object')
  for (const name of Object.keys(options)) {
    if (name !== 'client' && name !== 'prefix' && name !== 'algorithm') {
      throw new InvalidOptionError(`unknown store option \`${name}\``)
    }
  }
  const client = options.client
  if (typeof client !== 'object' || client === null || typeof client.incrWithTtl !== 'function') {
    throw new InvalidOptionError('`client` must be a client made by createClient() from @memkit/client')
  }
  const prefix = options.prefix === undefined ? defaultPrefix : text(options.prefix, 'prefix')
  if (!isKeySafe(prefix)) {
    throw new InvalidOptionError(
      '`prefix` must be at most 100 characters without whitespace or control characters',
    )
  }
  return {
    counters: new MemcachedCounterStore(client),
    prefix,
    algorithm: oneOf(options.algorithm, 'algorithm', ['fixed', 'sliding'] as const, 'fixed'),
  }
}

// The libraries decide with their own limit; counting itself never blocks.
const NO_LIMIT = Number.MAX_SAFE_INTEGER

/** The count without adding to it (sliding: the weighted previous window included, rounded up). */
async function readTotal(
  parsed: Parsed,
  base: string,
  window: Window,
  windowMs: number,
  now: number,
): Promise<number> {
  const [current, previous] = await Promise.all([
    parsed.counters.read(`${base}:${window.index}`),
    parsed.algorithm === 'sliding' ? parsed.counters.read(`${base}:${window.index - 1}`) : 0,
  ])
  return decideSliding(current, previous, 0, NO_LIMIT, window, windowMs, now).used
}

/** What express-rate-limit expects back from `increment` and `get`. */
export interface ClientRateLimitInfo {
  totalHits: number
  resetTime: Date | undefined
}

/**
 * An express-rate-limit `Store`: `rateLimit({ windowMs, limit, store: new ExpressRateLimitStore({ client }) })`.
 * One memcached round trip per request; the reset time comes from the window grid, so it
 * survives eviction; `decrement` only touches the current window and never goes below zero.
 * Use one store per rateLimit() instance (express-rate-limit requires it), with its own `prefix`
 * if two limiters should count separately.
 */
export class ExpressRateLimitStore {
  /** Keys are shared with other processes (express-rate-limit's double-count check reads this). */
  readonly localKeys = false
  readonly prefix: string
  readonly #parsed: Parsed
  #windowMs = 60_000
  #hasher: KeyHasher

  constructor(options: PeerStoreOptions) {
    this.#parsed = parse(options, 'erl:')
    this.prefix = this.#parsed.prefix
    this.#hasher = new KeyHasher(this.prefix, `erl:${this.#windowMs}`, this.#windowMs)
  }

  /** Called by express-rate-limit with its options. */
  init(options: { windowMs: number }): void {
    if (typeof options?.windowMs !== 'number' || !(options.windowMs > 0)) {
      throw new InvalidOptionError('express-rate-limit passed no valid windowMs to the store')
    }
    this.#windowMs = options.windowMs
    this.#hasher = new KeyHasher(this.prefix, `erl:${this.#windowMs}`, this.#windowMs)
  }

  async increment(key: string): Promise<ClientRateLimitInfo> {
    const now = Date.now()
    const { base, window } = this.#locate(key, now)
    const { decision } = await countRequest(
      this.#parsed.counters,
      this.#parsed.algorithm,
      this.#windowMs,
      base,
      window,
      1,
      NO_LIMIT,
      now,
    )
    return { totalHits: Math.max(1, decision.used), resetTime: new Date(window.end) }
  }

  async decrement(key: string): Promise<void> {
    const { base, window } = this.#locate(key, Date.now())
    await this.#parsed.counters.subtract(`${base}:${window.index}`, 1)
  }

  async get(key: string): Promise<ClientRateLimitInfo | undefined> {
    const now = Date.now()
    const { base, window } = this.#locate(key, now)
    const total = await readTotal(this.#parsed, base, window, this.#windowMs, now)
    return total > 0 ? { totalHits: total, resetTime: new Date(window.end) } : undefined
  }

  async resetKey(key: string): Promise<void> {
    const { base, window } = this.#locate(key, Date.now())
    await Promise.all([
      this.#parsed.counters.remove(`${base}:${window.index}`),
      this.#parsed.counters.remove(`${base}:${window.index - 1}`),
    ])
  }

  #locate(key: string, now: number) {
    const hashed = this.#hasher.hash(key)
    return { base: hashed.base, window: windowAt(now, this.#windowMs, hashed.phase) }
  }
}

type Callback = (error: Error | null, result?: { current: number; ttl: number }) => void

/** The store interface @fastify/rate-limit calls (`new Store(options)`, `incr`, `read`, `child`). */
export interface FastifyRateLimitStoreInstance {
  incr(key: string, callback: Callback, timeWindow: number, max: number): void
  read(key: string, callback: Callback, timeWindow: number, max?: number): void
  child(routeOptions: {
    routeInfo?: { method?: string | string[]; url?: string }
  }): FastifyRateLimitStoreInstance
}

export type FastifyRateLimitStoreClass = new (
  options?: Record<string, unknown>,
) => FastifyRateLimitStoreInstance

/**
 * A @fastify/rate-limit store class bound to a memkit client:
 * `app.register(fastifyRateLimit, { max: 100, timeWindow: 60000, store: createFastifyRateLimitStore({ client }) })`.
 * Each route with its own `config.rateLimit` counts separately (as with the Redis store).
 * `continueExceeding` and `exponentialBackoff` are refused: they move a window's end, and memkit's
 * windows sit on a fixed grid.
 */
export function createFastifyRateLimitStore(options: PeerStoreOptions): FastifyRateLimitStoreClass {
  const parsed = parse(options, 'frl:')

  class MemkitFastifyRateLimitStore implements FastifyRateLimitStoreInstance {
    readonly #namespace: string
    // One hasher per window length: @fastify/rate-limit may pass a different timeWindow per route.
    readonly #hashers = new Map<number, KeyHasher>()

    constructor(params?: Record<string, unknown>, namespace = 'frl') {
      if (params?.continueExceeding === true || params?.exponentialBackoff === true) {
        throw new InvalidOptionError(
          'the memkit store does not support continueExceeding or exponentialBackoff (windows are on a fixed grid)',
        )
      }
      this.#namespace = namespace
    }

    incr(key: string, callback: Callback, timeWindow: number, _max: number): void {
      const now = Date.now()
      const hashed = this.#hash(String(key), timeWindow)
      const window = windowAt(now, timeWindow, hashed.phase)
      countRequest(parsed.counters, parsed.algorithm, timeWindow, hashed.base, window, 1, NO_LIMIT, now).then(
        ({ decision }) => callback(null, { current: decision.used, ttl: Math.max(0, window.end - now) }),
        (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
      )
    }

    read(key: string, callback: Callback, timeWindow: number): void {
      const now = Date.now()
      const hashed = this.#hash(String(key), timeWindow)
      const window = windowAt(now, timeWindow, hashed.phase)
      readTotal(parsed, hashed.base, window, timeWindow, now).then(
        (current) =>
          callback(
            null,
            current > 0 ? { current, ttl: Math.max(0, window.end - now) } : { current: 0, ttl: 0 },
          ),
        (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
      )
    }

    #hash(key: string, timeWindow: number) {
      let hasher = this.#hashers.get(timeWindow)
      if (hasher === undefined) {
        if (this.#hashers.size >= 64) this.#hashers.clear()
        hasher = new KeyHasher(parsed.prefix, `${this.#namespace}:${timeWindow}`, timeWindow)
        this.#hashers.set(timeWindow, hasher)
      }
      return hasher.hash(key)
    }

    child(routeOptions: {
      routeInfo?: { method?: string | string[]; url?: string }
    }): FastifyRateLimitStoreInstance {
      const info = routeOptions?.routeInfo
      const method = Array.isArray(info?.method) ? info.method.join(',') : (info?.method ?? '')
      const child = new MemkitFastifyRateLimitStore(
        routeOptions as Record<string, unknown>,
        `${this.#namespace}:${method}:${info?.url ?? ''}`,
      )
      return child
    }
  }
  return MemkitFastifyRateLimitStore
}
