// Cache-aside: remember(key, ttl, loader). In one process, concurrent callers of a key share one
// load (SingleFlight); with `lease: true`, one caller per key loads across every process, with
// memcached's leases (meta protocol: mg N/R and the W/X/Z flags, writes with the lease's CAS).
import { setTimeout as sleep } from 'node:timers/promises'
import { checkOptions, LEASE_OPTIONS, REMEMBER_OPTIONS } from './arguments.js'
import { describe, toDuration } from './duration.js'
import {
  DecodeError,
  InvalidArgumentError,
  LoadTimeoutError,
  NotSupportedError,
  ServerFailureError,
  ValueTooLargeError,
} from './errors.js'
import { SingleFlight } from './single-flight.js'
import type { LeaseItem, TransportKind } from './transport.js'
import type { RememberOptions } from './types.js'

/** What remember() needs from the client. */
export interface RememberBackend {
  readonly kind: TransportKind
  get(key: string): Promise<unknown>
  set(key: string, value: unknown, options: { ttl: number }): Promise<boolean>
  cas(key: string, value: unknown, cas: string, options: { ttl: number }): Promise<boolean>
  deleteIfUnchanged(key: string, cas: string): Promise<boolean>
  /** A lease read of `key` on the server that holds it. */
  leaseGet(key: string, vivify: number, recache: number): Promise<LeaseItem>
  /** Reports a failure the caller did not see (the client's 'error' event). */
  report(error: Error): void
}

/** remember()'s call, validated once. */
interface RememberPlan {
  readonly key: string
  /** Seconds. */
  readonly ttl: number
  readonly loader: () => unknown
  /** Milliseconds (or Infinity). */
  readonly loadTimeout: number
  /** Seconds a null result is cached, or undefined: not cached. */
  readonly nullTtl: number | undefined
  readonly lease: boolean
  /** Lease mode: seconds of remaining TTL under which one reader reloads (mg R); 0 = off. */
  readonly refreshAhead: number
  /** Lease mode: seconds a placeholder lease lives (mg N), so a crashed loader frees it. */
  readonly vivify: number
}

/** Lease mode: first and longest wait (ms) between looks at a key another process is loading. */
const LEASE_POLL_FIRST = 5
const LEASE_POLL_MAX = 100

export class CacheAside {
  readonly #backend: RememberBackend
  readonly #loads = new SingleFlight<unknown>()

  constructor(backend: RememberBackend) {
    this.#backend = backend
  }

  /** See MemcachedClient#remember. */
  remember<T>(
    key: string,
    ttl: number | string,
    loader: () => T | Promise<T>,
    options?: RememberOptions,
  ): Promise<T> {
    let plan: RememberPlan
    try {
      plan = this.#plan(key, ttl, loader, options)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.#loads.run(key, () => {
      const load = { abandoned: false }
      const work = plan.lease ? this.#leaseLoad(plan, load) : this.#load(plan, load)
      return withLoadTimeout(work, plan, load)
    }) as Promise<T>
  }

  #plan(
    key: string,
    ttl: number | string,
    loader: () => unknown,
    options: RememberOptions | undefined,
  ): RememberPlan {
    checkOptions(options, REMEMBER_OPTIONS)
    const seconds = toDuration(ttl, 'ttl', 's', 'argument')
    if (typeof loader !== 'function') {
      throw new InvalidArgumentError(
        `remember(key, ttl, loader): loader must be a function returning the value; got ${describe(loader)}`,
      )
    }
    const rawTimeout = options?.loadTimeout
    const loadTimeout =
      rawTimeout === undefined
        ? 10_000
        : rawTimeout === Number.POSITIVE_INFINITY
          ? rawTimeout
          : toDuration(rawTimeout, 'loadTimeout', 'ms', 'argument')
    if (!(loadTimeout > 0)) {
      throw new InvalidArgumentError(
        `remember(): loadTimeout must be more than 0 ms (or Infinity); got ${String(rawTimeout)}`,
      )
    }
    const nullTtl =
      options?.nullTtl === undefined || options.nullTtl === false
        ? undefined
        : toDuration(options.nullTtl, 'nullTtl', 's', 'argument')
    const lease = options?.lease
    // By default one reader refreshes the value in its last tenth (at least its last second).
    let refreshAhead = seconds > 0 ? Math.max(1, Math.ceil(seconds / 10)) : 0
    if (lease !== undefined && lease !== false && lease !== true) {
      checkOptions(lease, LEASE_OPTIONS)
      if (lease.refreshAhead !== undefined)
        refreshAhead = toDuration(lease.refreshAhead, 'lease.refreshAhead', 's', 'argument')
    }
    const leased = lease !== undefined && lease !== false
    const kind = this.#backend.kind
    if (leased && (kind.name === 'classic' || kind.name === 'binary')) {
      throw new NotSupportedError(
        `remember(): lease needs the meta protocol (memcached >= 1.6.18: mg N/R with the W/X/Z flags); protocol '${kind.name}' has no leases. Drop \`lease\` (concurrent callers in one process still share one load)`,
      )
    }
    return {
      key,
      ttl: seconds,
      loader,
      loadTimeout,
      nullTtl,
      // memory:// lives in this process, where the in-process single flight already is global.
      lease: leased && kind.leases,
      refreshAhead: Math.ceil(refreshAhead),
      vivify: Number.isFinite(loadTimeout) ? Math.max(1, Math.ceil(loadTimeout / 1000)) : 60,
    }
  }

  /** The TTL a loaded value is cached for, or undefined when it is not cached. */
  #ttlOf(value: unknown, plan: RememberPlan): number | undefined {
    if (value === undefined) return undefined
    if (value === null) return plan.nullTtl
    return plan.ttl
  }

  async #load(plan: RememberPlan, load: { abandoned: boolean }): Promise<unknown> {
    const backend = this.#backend
    let cached: unknown
    try {
      cached = await backend.get(plan.key)
    } catch (error) {
      if (!(error instanceof ServerFailureError || error instanceof DecodeError)) throw error
      backend.report(error)
    }
    if (cached !== undefined && (cached !== null || plan.nullTtl !== undefined)) return cached
    const value = await plan.loader()
    const ttl = this.#ttlOf(value, plan)
    // Given up on: a newer load may have stored a fresher value already.
    if (ttl !== undefined && !load.abandoned) {
      try {
        await backend.set(plan.key, value, { ttl })
      } catch (error) {
        if (!(error instanceof ServerFailureError || error instanceof ValueTooLargeError)) throw error
        backend.report(error)
      }
    }
    return value
  }

  /**
   * remember() across processes, with memcached's leases (mg N R, the W/Z/X flags): the caller
   * who gets W loads; others wait for the value (cold key) or are served the current or stale
   * value at once (expiring or invalidated key) while the winner reloads in the background. The
   * winner writes with the CAS its lease came with, so a write from a load that an invalidate()
   * or a newer set() overtook is refused and the newer data stays.
   */
  async #leaseLoad(plan: RememberPlan, load: { abandoned: boolean }): Promise<unknown> {
    let delay = LEASE_POLL_FIRST
    for (;;) {
      let item: LeaseItem
      try {
        item = await this.#backend.leaseGet(plan.key, plan.vivify, plan.refreshAhead)
      } catch (error) {
        if (!(error instanceof ServerFailureError || error instanceof DecodeError)) throw error
        this.#backend.report(error)
        return plan.loader()
      }
      if (item.hit) {
        if (item.win) this.#refreshInBackground(plan, item.cas)
        return item.value
      }
      if (item.win) return this.#loadUnderLease(plan, load, item.cas, true)
      // Another process holds the lease on an empty placeholder: look again shortly.
      if (load.abandoned) return undefined
      await sleep(delay * (0.5 + Math.random()))
      delay = Math.min(delay * 2, LEASE_POLL_MAX)
    }
  }

  async #loadUnderLease(
    plan: RememberPlan,
    load: { abandoned: boolean },
    cas: string,
    placeholder: boolean,
  ): Promise<unknown> {
    let value: unknown
    try {
      value = await plan.loader()
    } catch (error) {
      if (placeholder) this.#releaseLease(plan.key, cas)
      throw error
    }
    if (load.abandoned) return value
    const ttl = this.#ttlOf(value, plan)
    if (ttl === undefined) {
      if (placeholder) this.#releaseLease(plan.key, cas)
      return value
    }
    try {
      // false: invalidated or overwritten since the lease was granted; the newer state stays.
      await this.#backend.cas(plan.key, value, cas, { ttl })
    } catch (error) {
      if (!(error instanceof ServerFailureError || error instanceof ValueTooLargeError)) throw error
      if (placeholder) this.#releaseLease(plan.key, cas)
      this.#backend.report(error)
    }
    return value
  }

  /** Frees an unused placeholder lease (only while it is still ours), so a waiter can load at once. */
  #releaseLease(key: string, cas: string): void {
    this.#backend.deleteIfUnchanged(key, cas).catch((error: Error) => this.#backend.report(error))
  }

  #refreshInBackground(plan: RememberPlan, cas: string): void {
    const load = { abandoned: false }
    withLoadTimeout(this.#loadUnderLease(plan, load, cas, false), plan, load).catch((error: Error) =>
      this.#backend.report(error),
    )
  }
}

/** Rejects with LoadTimeoutError after `plan.loadTimeout` ms, and marks the load abandoned. */
function withLoadTimeout(
  work: Promise<unknown>,
  plan: RememberPlan,
  load: { abandoned: boolean },
): Promise<unknown> {
  if (plan.loadTimeout === Number.POSITIVE_INFINITY) return work
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      load.abandoned = true
      reject(
        new LoadTimeoutError(
          `remember(${JSON.stringify(plan.key)}): the loader did not settle within ${plan.loadTimeout} ms (loadTimeout); the next call loads again`,
        ),
      )
    }, plan.loadTimeout)
    work.then(
      (value) => {
        clearTimeout(timer)
        resolve(value)
      },
      (error: unknown) => {
        clearTimeout(timer)
        reject(error)
      },
    )
  })
}
