import { InvalidArgumentError, type MemkitClient } from '@memkit/client'
import { resolveClient } from '@memkit/client/internal'
import { CircuitBreaker } from './breaker.js'
import { countRequest, readCounts } from './count.js'
import { type CounterStore, MemcachedCounterStore, MemoryCounterStore } from './counter-store.js'
import { KeyHasher } from './key.js'
import { MetricsRecorder, type Outcome, type RateLimitMetrics } from './metrics.js'
import {
  type LimiterConfig,
  type LimiterOptions,
  parseLimiterOptions,
  type StoreErrorPolicy,
} from './options.js'
import { isConfigurationError, isOverload } from './transport.js'
import { type Attempt, counterKey, type Decision, type Window, WindowGrid } from './window.js'

export type RateLimitSource = Outcome

export interface RateLimitResult {
  /** Whether the request may proceed. */
  readonly allowed: boolean
  readonly limit: number
  /** Units counted in the window, this request included (sliding: weighted, rounded up). */
  readonly used: number
  readonly remaining: number
  /** Epoch ms when the window resets (a blocked sliding request: when this cost fits again). */
  readonly resetTime: number
  /** Whole seconds until `resetTime`, at least 1: the value of `Retry-After`. */
  readonly retryAfter: number
  /** This request took the key over its limit: the first blocked request of the key's window (seen by this process). */
  readonly limitReached: boolean
  /**
   * Who decided: `'store'` (memcached), `'pre-block'` (in memory, key known to be over its
   * limit), `'local'` (in-process fallback), `'fail-open'` / `'fail-closed'` (memcached failed).
   */
  readonly source: RateLimitSource
  /** The key as given (before hashing). */
  readonly key: string
  readonly cost: number
  /** The memcached failure behind a fallback decision. */
  readonly error?: Error
}

export interface ConsumeOptions {
  /** Units this request takes. Default `1`. */
  cost?: number
  /** The limit for this request. Default: the limiter's `limit`. */
  limit?: number
  /**
   * Whether the result can be passed to `undo()`. Default `true`. `false` skips remembering
   * where the request was counted (a weak-map entry per allowed request, which the garbage
   * collector has to trace); `undo()` of such a result does nothing. The HTTP middleware pass
   * `false` unless `skipFailedRequests` or `skipSuccessfulRequests` is set.
   */
  undoable?: boolean
}

/** Where an allowed request was counted, so `undo` takes it back from that window only. */
interface Counted {
  store: CounterStore
  storageKey: string
  base: string
}

const counted = new WeakMap<RateLimitResult, Counted>()

/** An attempt as the limiter handles it: whether its result is remembered for `undo()`. */
interface Counting extends Attempt {
  readonly undoable: boolean
}

/** A key memcached said is over its limit, refused from memory until `until`. */
interface PreBlock {
  until: number
  limit: number
  used: number
  /** When the next request for the key asks memcached again (so a reset elsewhere is seen). */
  checkAt: number
}

/** How an attempt was decided: by whom, where it was counted, and the failure behind a fallback. */
interface Settlement {
  decision: Decision
  source: RateLimitSource
  /** Where an allowed request was counted (undefined when nothing was). */
  store?: CounterStore
  storageKey?: string
  error?: Error
  limitReached?: boolean
}

/**
 * The framework-free limiter: `consume(key)` counts one request (or `cost` units) against
 * `key` in ONE memcached round trip and says whether it is allowed. The Express middleware,
 * the Fastify plugin and the stores for express-rate-limit / @fastify/rate-limit are built on it.
 */
export class RateLimiter {
  readonly config: LimiterConfig
  readonly client: MemkitClient
  readonly #ownsClient: boolean
  readonly #store: MemcachedCounterStore
  readonly #local: MemoryCounterStore
  readonly #breaker: CircuitBreaker | undefined
  readonly #metrics = new MetricsRecorder()
  readonly #preBlocks = new Map<string, PreBlock>()
  // Window index in which this process last reported each key as reaching its limit.
  readonly #reached = new Map<string, number>()
  #failing = false

  readonly #dynamicLimit: boolean
  readonly #hasher: KeyHasher
  readonly #grid: WindowGrid

  constructor(
    options: LimiterOptions,
    internal?: { config?: LimiterConfig; breaker?: CircuitBreaker | undefined; dynamicLimit?: boolean },
  ) {
    this.config = internal?.config ?? parseLimiterOptions(options)
    this.#dynamicLimit = internal?.dynamicLimit ?? false
    const config = this.config
    this.#hasher = new KeyHasher(config.prefix, config.name, config.windowMs)
    this.#grid = new WindowGrid(config.algorithm, config.windowMs)
    const resolved = resolveClient({ client: config.client, servers: config.servers }, 'rate limit')
    this.#ownsClient = resolved.owned
    this.client = resolved.client
    this.#store = new MemcachedCounterStore(this.client)
    this.#local = new MemoryCounterStore(config.maxLocalKeys)
    this.#breaker =
      internal?.breaker ??
      (config.breaker ? new CircuitBreaker(config.breaker.threshold, config.breaker.cooldownMs) : undefined)
  }

  /** The circuit breaker, for limiters that should share one (per-route limiters of one plugin). */
  get breaker(): CircuitBreaker | undefined {
    return this.#breaker
  }

  /**
   * Counts a request against `key` and decides. Never rejects for a memcached failure (that is
   * `onStoreError`'s); rejects for invalid arguments, and with the client's error when the client
   * refuses the counter itself (`ERR_MEMKIT_KEY`, `ERR_MEMKIT_NOT_SUPPORTED`...): a set-up mistake
   * must not turn into "no limit".
   */
  consume(key: string, options?: ConsumeOptions): Promise<RateLimitResult> {
    const cost = options?.cost ?? 1
    const limit = options?.limit ?? this.config.limit
    if (!Number.isSafeInteger(cost) || cost < 0) {
      return Promise.reject(new InvalidArgumentError(`rate-limit cost must be an integer >= 0; got ${cost}`))
    }
    if (!Number.isSafeInteger(limit) || limit < 0) {
      return Promise.reject(
        new InvalidArgumentError(`rate-limit limit must be an integer >= 0; got ${limit}`),
      )
    }
    if (typeof key !== 'string') {
      return Promise.reject(new InvalidArgumentError(`rate-limit key must be a string; got ${typeof key}`))
    }
    const undoable = options?.undoable ?? true
    if (typeof undoable !== 'boolean') {
      return Promise.reject(
        new InvalidArgumentError(`rate-limit undoable must be true or false; got ${typeof undoable}`),
      )
    }
    const attempt = this.#attempt(key, cost, limit, Date.now(), undoable)

    if (this.config.preBlock && cost > 0 && this.#preBlocks.size > 0) {
      const blocked = this.#preBlocked(attempt)
      if (blocked !== undefined) return Promise.resolve(blocked)
    }

    const breaker = this.#breaker
    if (breaker !== undefined && !breaker.allow(attempt.now)) {
      return Promise.resolve(this.#fallback(attempt, undefined, this.config.onStoreError))
    }
    return countRequest(this.#store, this.#grid, attempt).then(
      ({ decision, storageKey }) => {
        if (breaker !== undefined) breaker.success()
        this.#failing = false
        return this.#settle(attempt, { decision, source: 'store', store: this.#store, storageKey })
      },
      (error: unknown) => {
        // A key or call the client refuses is a set-up mistake, not an outage: never fail open on it.
        if (isConfigurationError(error)) throw error
        const failure = error instanceof Error ? error : new Error(String(error))
        if (isOverload(failure)) {
          // Back pressure, not an outage: it must not open the breaker (whose fallback may be
          // 'allow'), and it is handled by onOverload, which is not 'allow' unless chosen.
          breaker?.release()
          this.#report(failure, false, 'onOverload', this.config.onOverload)
          return this.#fallback(attempt, failure, this.config.onOverload)
        }
        const opened = breaker?.failure(Date.now()) ?? false
        this.#report(failure, opened, 'onStoreError', this.config.onStoreError)
        return this.#fallback(attempt, failure, this.config.onStoreError)
      },
    )
  }

  /**
   * Takes a counted request back (for skipFailedRequests / skipSuccessfulRequests), from the
   * window it was counted in: never below zero, never from a later window. Never rejects.
   */
  async undo(result: RateLimitResult): Promise<void> {
    const where = counted.get(result)
    if (where === undefined || result.cost === 0) return
    counted.delete(result)
    this.#preBlocks.delete(where.base)
    try {
      await where.store.subtract(where.storageKey, result.cost)
    } catch (error) {
      this.#report(
        error instanceof Error ? error : new Error(String(error)),
        false,
        'onStoreError',
        this.config.onStoreError,
      )
    }
  }

  /** The key's state without counting anything (`limit` defaults to the limiter's). */
  async peek(key: string, limit: number = this.config.limit): Promise<RateLimitResult> {
    const attempt = this.#attempt(key, 0, limit, Date.now())
    const decision = await readCounts(this.#store, this.#grid, attempt)
    return this.#result(attempt, { decision, source: 'store' })
  }

  /** Forgets a key's counts (this window and the previous one) in memcached and in memory. */
  async reset(key: string): Promise<void> {
    const { base, window } = this.#attempt(key, 0, this.config.limit, Date.now())
    this.#preBlocks.delete(base)
    this.#reached.delete(base)
    const keys = [counterKey(base, window.index), counterKey(base, window.index - 1)]
    for (const storageKey of keys) this.#local.remove(storageKey)
    await Promise.all(keys.map((storageKey) => this.#store.remove(storageKey)))
  }

  /** The memcached key holding `key`'s counter for the window at `now` (for tests and tooling). */
  storageKey(key: string, now: number = Date.now()): string {
    return this.#grid.counterKey(this.#attempt(key, 0, this.config.limit, now))
  }

  /** The window `key` is in at `now` (epoch ms): its index on the key's grid, start and end. */
  windowFor(key: string, now: number = Date.now()): Window {
    return this.#attempt(key, 0, this.config.limit, now).window
  }

  /** Allowed/blocked counts per minute for the last 15 minutes, totals and the breaker's state. */
  metrics(): RateLimitMetrics {
    const now = Date.now()
    return {
      name: this.config.name,
      algorithm: this.config.algorithm,
      windowMs: this.config.windowMs,
      limit: this.#dynamicLimit ? null : this.config.limit,
      since: this.#metrics.since,
      totals: { ...this.#metrics.totals },
      perMinute: this.#metrics.minutes(now),
      breaker: this.#breaker?.snapshot() ?? {
        state: 'closed',
        consecutiveFailures: 0,
        openUntil: undefined,
        opened: 0,
      },
    }
  }

  /** Closes the client if the limiter opened it (`servers`); a shared `client` is left open. */
  async close(): Promise<void> {
    if (this.#ownsClient) await this.client.close()
  }

  // ---- internals -------------------------------------------------------------------------

  #attempt(key: string, cost: number, limit: number, now: number, undoable = true): Counting {
    const hashed = this.#hasher.hash(key)
    return { key, base: hashed.base, window: this.#grid.at(now, hashed.phase), cost, limit, now, undoable }
  }

  /**
   * The in-memory refusal of a key known to be over its limit, or undefined to ask memcached:
   * once the block has ended, for a larger limit, and for one request per `preBlockRecheckMs`
   * (the others keep being refused from memory meanwhile).
   */
  #preBlocked(attempt: Attempt): RateLimitResult | undefined {
    const block = this.#preBlocks.get(attempt.base)
    if (block === undefined) return undefined
    const { now } = attempt
    if (block.until <= now) {
      this.#preBlocks.delete(attempt.base)
      return undefined
    }
    if (attempt.limit > block.limit) return undefined
    if (now >= block.checkAt) {
      block.checkAt = now + this.config.preBlockRecheckMs
      return undefined
    }
    return this.#result(attempt, {
      decision: { allowed: false, used: block.used, remaining: 0, resetTime: block.until, crossed: false },
      source: 'pre-block',
    })
  }

  #fallback(
    attempt: Counting,
    error: Error | undefined,
    policy: StoreErrorPolicy,
  ): RateLimitResult | Promise<RateLimitResult> {
    if (policy === 'local') {
      const share = Math.max(1, Math.floor(attempt.limit / this.config.instances))
      const local = { ...attempt, limit: share }
      return countRequest(this.#local, this.#grid, local).then(({ decision, storageKey }) =>
        this.#settle(local, { decision, source: 'local', store: this.#local, storageKey, error }),
      )
    }
    const breaker = this.#breaker
    const retryAt =
      breaker !== undefined && breaker.state === 'open'
        ? breaker.openUntil
        : attempt.now + (breaker?.cooldownMs ?? 1000)
    const { limit, window } = attempt
    const decision: Decision =
      policy === 'allow'
        ? { allowed: true, used: 0, remaining: limit, resetTime: window.end, crossed: false }
        : { allowed: false, used: 0, remaining: 0, resetTime: retryAt, crossed: false }
    return this.#result(attempt, {
      decision,
      source: policy === 'allow' ? 'fail-open' : 'fail-closed',
      error,
    })
  }

  #settle(attempt: Counting, settlement: Settlement): RateLimitResult {
    const { decision, source } = settlement
    const { base, window } = attempt
    let reached = false
    if (decision.crossed) {
      // Once per key and window: a crossing seen again after an undo is not a new one.
      reached = this.#reached.get(base) !== window.index
      if (reached) remember(this.#reached, base, window.index, this.config.maxLocalKeys)
    }
    if (source === 'store' && this.config.preBlock) {
      if (!decision.allowed) {
        const block = {
          until: decision.resetTime,
          limit: attempt.limit,
          used: decision.used,
          checkAt: attempt.now + this.config.preBlockRecheckMs,
        }
        remember(this.#preBlocks, base, block, this.config.maxLocalKeys)
      } else if (this.#preBlocks.size > 0) {
        // Allowed by memcached while blocked here: the key was reset, or its limit grew.
        this.#preBlocks.delete(base)
      }
    }
    const result = this.#result(attempt, { ...settlement, limitReached: reached })
    if (
      attempt.undoable &&
      decision.allowed &&
      settlement.store !== undefined &&
      settlement.storageKey !== undefined
    ) {
      counted.set(result, { store: settlement.store, storageKey: settlement.storageKey, base })
    }
    return result
  }

  #result(attempt: Attempt, settlement: Settlement): RateLimitResult {
    const { decision, source, error } = settlement
    const { now } = attempt
    this.#metrics.record(now, decision.allowed, source, error !== undefined)
    const result: RateLimitResult = {
      allowed: decision.allowed,
      limit: attempt.limit,
      used: decision.used,
      remaining: decision.remaining,
      resetTime: decision.resetTime,
      retryAfter: Math.max(1, Math.ceil((decision.resetTime - now) / 1000)),
      limitReached: settlement.limitReached ?? false,
      source,
      key: attempt.key,
      cost: attempt.cost,
    }
    if (error !== undefined) (result as { error?: Error }).error = error
    return result
  }

  #report(error: Error, opened: boolean, option: string, policy: StoreErrorPolicy): void {
    const onError = this.config.onError
    if (onError !== undefined) {
      try {
        onError(error)
      } catch {
        // A logging callback must not turn a handled outage into a failed request.
      }
      return
    }
    // Without a handler: one warning when an outage starts and one when the breaker opens.
    if (!this.#failing || opened) {
      this.#failing = true
      process.emitWarning(
        `memcached failed (${error.message}); requests are handled per ${option}: '${policy}'${opened ? `; not trying memcached for ${this.#breaker?.cooldownMs} ms` : ''}`,
        { code: 'MEMKIT_RATE_LIMIT_STORE_ERROR' },
      )
    }
  }
}

/** Sets `key` in a map bounded to `max` entries, making room by dropping the oldest entry. */
function remember<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  map.delete(key)
  if (map.size >= max) {
    const oldest = map.keys().next()
    if (!oldest.done) map.delete(oldest.value)
  }
  map.set(key, value)
}
