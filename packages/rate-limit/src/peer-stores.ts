// Stores that put memkit's one-round-trip counter under express-rate-limit and
// @fastify/rate-limit, for applications that keep those libraries. Neither library is imported:
// they call these objects through their documented store interfaces.
import { InvalidOptionError, type MemkitClient } from '@memkit/client'
import { countRequest, readCounts } from './count.js'
import { MemcachedCounterStore } from './counter-store.js'
import { KeyHasher } from './key.js'
import { type Algorithm, assertExpiryFits, isClient, isKeySafe, oneOf, text } from './options.js'
import { assertCanCount } from './transport.js'
import { type Attempt, counterKey, WindowGrid } from './window.js'

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
  if (!isClient(client)) {
    throw new InvalidOptionError('`client` must be a client made by createClient() from @memkit/client')
  }
  const prefix = options.prefix === undefined ? defaultPrefix : text(options.prefix, 'prefix')
  if (!isKeySafe(prefix)) {
    throw new InvalidOptionError(
      '`prefix` must be at most 100 characters without whitespace or control characters',
    )
  }
  assertCanCount(client, prefix)
  return {
    counters: new MemcachedCounterStore(client),
    prefix,
    algorithm: oneOf(options.algorithm, 'algorithm', ['fixed', 'sliding'] as const, 'fixed'),
  }
}

// The libraries decide with their own limit; counting itself never blocks.
const NO_LIMIT = Number.MAX_SAFE_INTEGER

/** A key's windows on one grid: the attempt to count or read for a key at `now`. */
class Locator {
  readonly grid: WindowGrid
  readonly #hasher: KeyHasher

  constructor(parsed: Parsed, namespace: string, windowMs: number) {
    this.grid = new WindowGrid(parsed.algorithm, windowMs)
    this.#hasher = new KeyHasher(parsed.prefix, namespace, windowMs)
  }

  /** The libraries decide with their own limit: counting itself never blocks. */
  attempt(key: string, cost: number, now: number): Attempt {
    const hashed = this.#hasher.hash(key)
    return { key, base: hashed.base, window: this.grid.at(now, hashed.phase), cost, limit: NO_LIMIT, now }
  }
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
  #locator: Locator

  constructor(options: PeerStoreOptions) {
    this.#parsed = parse(options, 'erl:')
    this.prefix = this.#parsed.prefix
    this.#locator = new Locator(this.#parsed, 'erl:60000', 60_000)
  }

  /** Called by express-rate-limit with its options. */
  init(options: { windowMs: number }): void {
    if (typeof options?.windowMs !== 'number' || !(options.windowMs > 0)) {
      throw new InvalidOptionError('express-rate-limit passed no valid windowMs to the store')
    }
    const grid = new WindowGrid(this.#parsed.algorithm, options.windowMs)
    assertExpiryFits(grid, 'windowMs')
    this.#locator = new Locator(this.#parsed, `erl:${options.windowMs}`, options.windowMs)
  }

  async increment(key: string): Promise<ClientRateLimitInfo> {
    const attempt = this.#locator.attempt(key, 1, Date.now())
    const { decision } = await countRequest(this.#parsed.counters, this.#locator.grid, attempt)
    return { totalHits: Math.max(1, decision.used), resetTime: new Date(attempt.window.end) }
  }

  async decrement(key: string): Promise<void> {
    const attempt = this.#locator.attempt(key, 0, Date.now())
    await this.#parsed.counters.subtract(this.#locator.grid.counterKey(attempt), 1)
  }

  async get(key: string): Promise<ClientRateLimitInfo | undefined> {
    const attempt = this.#locator.attempt(key, 0, Date.now())
    const { used } = await readCounts(this.#parsed.counters, this.#locator.grid, attempt)
    return used > 0 ? { totalHits: used, resetTime: new Date(attempt.window.end) } : undefined
  }

  async resetKey(key: string): Promise<void> {
    const { base, window } = this.#locator.attempt(key, 0, Date.now())
    await Promise.all([
      this.#parsed.counters.remove(counterKey(base, window.index)),
      this.#parsed.counters.remove(counterKey(base, window.index - 1)),
    ])
  }
}

/** Milliseconds until the attempt's window ends (what @fastify/rate-limit calls the ttl). */
function ttlOf(attempt: Attempt): number {
  return Math.max(0, attempt.window.end - attempt.now)
}

type Callback = (error: Error | null, result?: { current: number; ttl: number }) => void

/** The store interface @fastify/rate-limit calls (`new Store(options)`, `incr`, `read`, `child`). */
export interface FastifyRateLimitStoreInstance {
  incr(key: string, callback: Callback, timeWindow: number, max: number): void
  read(key: string, callback: Callback, timeWindow: number, max?: number): void
  /** @fastify/rate-limit passes the route's options, `routeInfo` among them (typed loosely for its RouteOptions). */
  child(routeOptions: object): FastifyRateLimitStoreInstance
}

interface ChildRouteOptions {
  routeInfo?: { method?: string | string[]; url?: string }
}

/** The options @fastify/rate-limit passes to a store; only the two refused ones are read. */
export interface FastifyRateLimitStoreOptions {
  continueExceeding?: unknown
  exponentialBackoff?: unknown
  timeWindow?: unknown
}

// The parameter is an interface without an index signature, so that @fastify/rate-limit's own
// options type (`FastifyRateLimitOptions`) is assignable to it under strict TypeScript.
export type FastifyRateLimitStoreClass = new (
  options?: FastifyRateLimitStoreOptions,
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
    // One locator per window length: @fastify/rate-limit may pass a different timeWindow per route.
    readonly #locators = new Map<number, Locator>()

    constructor(params?: FastifyRateLimitStoreOptions, namespace = 'frl') {
      if (params?.continueExceeding === true || params?.exponentialBackoff === true) {
        throw new InvalidOptionError(
          'the memkit store does not support continueExceeding or exponentialBackoff (windows are on a fixed grid)',
        )
      }
      if (typeof params?.timeWindow === 'number') {
        assertExpiryFits(new WindowGrid(parsed.algorithm, params.timeWindow), 'timeWindow')
      }
      this.#namespace = namespace
    }

    incr(key: string, callback: Callback, timeWindow: number, _max: number): void {
      const locator = this.#locator(timeWindow)
      const attempt = locator.attempt(String(key), 1, Date.now())
      countRequest(parsed.counters, locator.grid, attempt).then(
        ({ decision }) => callback(null, { current: decision.used, ttl: ttlOf(attempt) }),
        (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
      )
    }

    read(key: string, callback: Callback, timeWindow: number): void {
      const locator = this.#locator(timeWindow)
      const attempt = locator.attempt(String(key), 0, Date.now())
      readCounts(parsed.counters, locator.grid, attempt).then(
        ({ used }) =>
          callback(null, used > 0 ? { current: used, ttl: ttlOf(attempt) } : { current: 0, ttl: 0 }),
        (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
      )
    }

    #locator(timeWindow: number): Locator {
      let locator = this.#locators.get(timeWindow)
      if (locator === undefined) {
        if (this.#locators.size >= 64) this.#locators.clear()
        locator = new Locator(parsed, `${this.#namespace}:${timeWindow}`, timeWindow)
        this.#locators.set(timeWindow, locator)
      }
      return locator
    }

    child(routeOptions: object): FastifyRateLimitStoreInstance {
      const info = (routeOptions as ChildRouteOptions | undefined)?.routeInfo
      const method = Array.isArray(info?.method) ? info.method.join(',') : (info?.method ?? '')
      const child = new MemkitFastifyRateLimitStore(
        routeOptions as FastifyRateLimitStoreOptions,
        // A route's url may hold any character: the parts are joined so that none can alias.
        JSON.stringify([this.#namespace, method, info?.url ?? '']),
      )
      return child
    }
  }
  return MemkitFastifyRateLimitStore
}
