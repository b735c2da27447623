/** Floating-point slack for the sliding window's weighted count (0.1 + 0.2 must not block). */
export const EPSILON = 1e-9

export interface Window {
  /** Index of the window on this key's grid; part of the memcached key. */
  readonly index: number
  readonly start: number
  readonly end: number
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

export function decideFixed(count: number, cost: number, limit: number, window: Window): Decision {
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
export function decideSliding(
  current: number,
  previous: number,
  cost: number,
  limit: number,
  window: Window,
  windowMs: number,
  now: number,
): Decision {
  const weight = Math.min(1, Math.max(0, (window.end - now) / windowMs))
  const counted = current + previous * weight
  const allowed = counted <= limit + EPSILON
  return {
    allowed,
    used: Math.max(0, Math.ceil(counted - EPSILON)),
    remaining: Math.max(0, Math.floor(limit - counted + EPSILON)),
    resetTime: allowed ? window.end : slidingRetryAt(current, previous, cost, limit, window, windowMs, now),
    crossed: !allowed && counted - cost <= limit + EPSILON,
  }
}

/** When a request of `cost` would fit again if no other request came. */
function slidingRetryAt(
  current: number,
  previous: number,
  cost: number,
  limit: number,
  window: Window,
  windowMs: number,
  now: number,
): number {
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
