// What a limited request carries for the application (`req.rateLimit` / `request.rateLimit`).
import type { RateLimitResult } from './limiter.js'

/** What a limited request carries (`req.rateLimit`), as express-rate-limit names it. */
export interface RateLimitInfo {
  limit: number
  /** Units counted in the window, this request included. */
  used: number
  remaining: number
  /** When the window resets (a blocked sliding-window request: when it may retry). */
  resetTime: Date
  /** The key the request was counted under (before hashing). */
  key: string
  allowed: boolean
  /** Seconds until `resetTime`, at least 1. */
  retryAfter: number
  /** `'store'`, `'pre-block'`, `'local'`, `'fail-open'` or `'fail-closed'` (see RateLimitResult). */
  source: RateLimitResult['source']
}

export function toInfo(result: RateLimitResult): RateLimitInfo {
  return {
    limit: result.limit,
    used: result.used,
    remaining: result.remaining,
    resetTime: new Date(result.resetTime),
    key: result.key,
    allowed: result.allowed,
    retryAfter: result.retryAfter,
    source: result.source,
  }
}
