// The window decision: where a key's windows lie, which memcached counters a request touches,
// how long they must live, and what their counts mean. Every limiter, fallback and peer store
// asks this module; none does window arithmetic of its own.
import type { Algorithm } from './options.js'

/** Floating-point slack for the sliding window's weighted count (0.1 + 0.2 must not block). */
export const EPSILON = 1e-9

/**
 * The last expiry memcached can store, 2038-01-19T03:14:07Z in epoch ms: it keeps an absolute
 * expiry as a 32-bit Unix time (protocol.txt: expiration times over 30 days are Unix times).
 */
export const MAX_EXPIRY_MS = (2 ** 31 - 1) * 1000

export interface Window {
  /** Index of the window on this key's grid; part of the memcached key. */
  readonly index: number
  readonly start: number
  readonly end: number
}

/**
 * One request's count, built once per request and passed whole to every step (count, decide,
 * settle, fall back), so no step takes a long list of loose values.
 */
export interface Attempt {
  /** The key as the caller gave it (before hashing). */
  readonly key: string
  /** The hashed key; a window's counter is `<base>:<window index>`. */
  readonly base: string
  readonly window: Window
  /** Units this request takes. */
  readonly cost: number
  /** The limit that applies to this request. */
  readonly limit: number
  /** Epoch ms the request is decided at. */
  readonly now: number
}

export interface Decision {
  allowed: boolean
  /** Units counted against the limit (sliding: the weighted previous window included, rounded up). */
  used: number
  remaining: number
  /** Epoch ms: the window's end; for a blocked sliding request, when a request of this cost fits again. */
  resetTime: number
  /** This request took the count over the limit. */
  crossed: boolean
}

/**
 * The window containing `now` on a grid of `windowMs`-long windows offset by `phase`. Windows
 * live on a grid rather than starting at a key's first hit so that every process agrees on a
 * window from the clock alone: the window index goes into the memcached key, the reset time
 * needs no stored expiry, and a late undo can only ever touch the window it counted in.
 */
export function windowAt(now: number, windowMs: number, phase: number): Window {
  const index = Math.floor((now - phase) / windowMs)
  const start = index * windowMs + phase
  return { index, start, end: start + windowMs }
}

/** The memcached counter of window `index` of a hashed key. */
export function counterKey(base: string, index: number): string {
  return `${base}:${index}`
}

/** Fixed or sliding windows of one length: everything a limiter needs to know about its windows. */
export class WindowGrid {
  constructor(
    readonly algorithm: Algorithm,
    readonly windowMs: number,
  ) {}

  at(now: number, phase: number): Window {
    return windowAt(now, this.windowMs, phase)
  }

  /** The counter this attempt adds to. */
  counterKey(attempt: Attempt): string {
    return counterKey(attempt.base, attempt.window.index)
  }

  /** The previous window's counter, read by sliding windows; undefined for fixed ones. */
  previousKey(attempt: Attempt): string | undefined {
    return this.algorithm === 'sliding' ? counterKey(attempt.base, attempt.window.index - 1) : undefined
  }

  /**
   * Seconds the current counter must live: what is left of its window (sliding: and the next
   * window, where it is the "previous" one), plus one second for clock rounding.
   */
  counterTtl(attempt: Attempt): number {
    const { window, now } = attempt
    const end = this.algorithm === 'sliding' ? window.end + this.windowMs : window.end
    // Options refuse windows whose counters would outlive MAX_EXPIRY_MS; a process that runs
    // into it years later gets its counters capped there rather than refused by memcached.
    return Math.min(end - now + 1000, MAX_EXPIRY_MS - now) / 1000
  }

  /** Epoch ms until which the counters of a request at `now` may have to live, at the most. */
  longestExpiry(now: number): number {
    return now + (this.algorithm === 'sliding' ? 2 * this.windowMs : this.windowMs) + 1000
  }

  /** Decides an attempt from the counts (`current` includes the attempt's own cost). */
  decide(attempt: Attempt, current: number, previous: number): Decision {
    return this.algorithm === 'sliding'
      ? decideSliding(attempt, current, previous, this.windowMs)
      : decideFixed(attempt, current)
  }
}

function decideFixed({ cost, limit, window }: Attempt, count: number): Decision {
  const allowed = count <= limit
  return {
    allowed,
    used: count,
    remaining: Math.max(0, limit - count),
    resetTime: window.end,
    crossed: !allowed && count - cost <= limit,
  }
}

/**
 * Sliding window counter (as Cloudflare describes it): the previous window's count, weighted by
 * how much of it still overlaps the last `windowMs`, plus the current window's count.
 */
function decideSliding(attempt: Attempt, current: number, previous: number, windowMs: number): Decision {
  const { cost, limit, window, now } = attempt
  const weight = Math.min(1, Math.max(0, (window.end - now) / windowMs))
  const counted = current + previous * weight
  const allowed = counted <= limit + EPSILON
  return {
    allowed,
    used: Math.max(0, Math.ceil(counted - EPSILON)),
    remaining: Math.max(0, Math.floor(limit - counted + EPSILON)),
    resetTime: allowed ? window.end : slidingRetryAt(attempt, current, previous, windowMs),
    crossed: !allowed && counted - cost <= limit + EPSILON,
  }
}

/** When a request of the attempt's cost would fit again if no other request came. */
function slidingRetryAt(attempt: Attempt, current: number, previous: number, windowMs: number): number {
  const { cost, limit, window, now } = attempt
  const room = limit - cost
  // Still in this window, once enough of the previous window has slid out.
  if (room - current >= 0 && previous > 0) {
    const weight = (room - current) / previous
    return Math.max(now, window.end - weight * windowMs)
  }
  // Otherwise in the next one, once enough of this window has slid out.
  if (room < 0) return window.end + windowMs
  const slide = current > 0 ? Math.max(0, 1 - room / current) : 0
  return window.end + slide * windowMs
}
