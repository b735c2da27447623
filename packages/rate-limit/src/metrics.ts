import type { BreakerSnapshot } from './breaker.js'

/** Minutes of history kept per limiter. */
export const METRICS_MINUTES = 15
const MINUTE = 60_000

export type Outcome = 'store' | 'local' | 'pre-block' | 'fail-open' | 'fail-closed'

export interface MinuteCounts {
  /** Epoch ms of the minute's start. */
  minute: number
  allowed: number
  blocked: number
  /** Requests whose memcached call failed (they were then handled per `onStoreError`). */
  storeErrors: number
}

export interface RateLimitMetrics {
  /** The limiter's name (its counter namespace). */
  name: string
  algorithm: 'fixed' | 'sliding'
  windowMs: number
  /** The configured limit, or `null` when it is a function of the request. */
  limit: number | null
  /** Epoch ms the counts start from. */
  since: number
  totals: {
    allowed: number
    blocked: number
    /** Blocked in memory without asking memcached (`preBlock`). */
    preBlocked: number
    storeErrors: number
    /** Decided by the in-process fallback (`onStoreError: 'local'`). */
    local: number
    /** Let through because memcached failed (`onStoreError: 'allow'`). */
    failOpen: number
    /** Refused because memcached failed (`onStoreError: 'deny'`). */
    failClosed: number
  }
  /** The last 15 minutes, oldest first, the current (partial) minute last. */
  perMinute: MinuteCounts[]
  breaker: BreakerSnapshot
}

/** Allowed/blocked counts per minute in a fixed ring of 15 buckets: constant memory, no timers. */
export class MetricsRecorder {
  readonly #buckets: MinuteCounts[] = Array.from({ length: METRICS_MINUTES }, () => ({
    minute: -1,
    allowed: 0,
    blocked: 0,
    storeErrors: 0,
  }))
  readonly since = Date.now()
  readonly totals = {
    allowed: 0,
    blocked: 0,
    preBlocked: 0,
    storeErrors: 0,
    local: 0,
    failOpen: 0,
    failClosed: 0,
  }

  record(now: number, allowed: boolean, outcome: Outcome, storeError: boolean): void {
    const bucket = this.#bucket(now)
    if (allowed) {
      bucket.allowed++
      this.totals.allowed++
    } else {
      bucket.blocked++
      this.totals.blocked++
    }
    if (storeError) {
      bucket.storeErrors++
      this.totals.storeErrors++
    }
    if (outcome === 'pre-block') this.totals.preBlocked++
    else if (outcome === 'local') this.totals.local++
    else if (outcome === 'fail-open') this.totals.failOpen++
    else if (outcome === 'fail-closed') this.totals.failClosed++
  }

  minutes(now: number): MinuteCounts[] {
    const current = Math.floor(now / MINUTE) * MINUTE
    const out: MinuteCounts[] = []
    for (let i = METRICS_MINUTES - 1; i >= 0; i--) {
      const minute = current - i * MINUTE
      const bucket = this.#buckets[(minute / MINUTE) % METRICS_MINUTES]!
      out.push(bucket.minute === minute ? { ...bucket } : { minute, allowed: 0, blocked: 0, storeErrors: 0 })
    }
    return out
  }

  #bucket(now: number): MinuteCounts {
    const minute = Math.floor(now / MINUTE) * MINUTE
    const bucket = this.#buckets[(minute / MINUTE) % METRICS_MINUTES]!
    if (bucket.minute !== minute) {
      bucket.minute = minute
      bucket.allowed = 0
      bucket.blocked = 0
      bucket.storeErrors = 0
    }
    return bucket
  }
}
