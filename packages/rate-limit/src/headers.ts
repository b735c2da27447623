import { describeWindow } from './duration.js'
import { partitionKey } from './key.js'
import type { RateLimitResult } from './limiter.js'

export type HeaderFormat = 'legacy' | 'draft-6' | 'draft-7' | 'draft-8'
export const HEADER_FORMATS: readonly HeaderFormat[] = ['legacy', 'draft-6', 'draft-7', 'draft-8']

export interface HeaderConfig {
  readonly formats: readonly HeaderFormat[]
  readonly resetFormat: 'epoch' | 'delta'
  readonly retryAfterHeader: boolean
  readonly windowMs: number
}

/** A header to set, or (`append`) to add to a value an earlier limiter already set. */
export interface HeaderField {
  readonly name: string
  readonly value: string
  readonly append: boolean
}

/** Seconds until the reset, rounded up, never negative (express-rate-limit's `getResetSeconds`). */
function resetSeconds(result: RateLimitResult, now: number): number {
  return Math.max(0, Math.ceil((result.resetTime - now) / 1000))
}

/**
 * The rate-limit header fields for a result, in the exact text express-rate-limit 8 sends for
 * the same state, so clients written against it read memkit's headers unchanged:
 *
 * - `legacy`: `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (Unix epoch
 *   seconds, rounded up; `resetFormat: 'delta'` sends seconds until the reset instead).
 * - `draft-6`: `RateLimit-Policy: 100;w=60`, `RateLimit-Limit`, `RateLimit-Remaining`,
 *   `RateLimit-Reset` (seconds until the reset).
 * - `draft-7`: `RateLimit-Policy: 100;w=60` and `RateLimit: limit=100, remaining=99, reset=60`.
 * - `draft-8`: `RateLimit: "100-in-1min"; r=99; t=60` and
 *   `RateLimit-Policy: "100-in-1min"; q=100; w=60; pk=:<partition key>:`, appended to what an
 *   earlier limiter set (structured-field lists combine).
 *
 * Plus `Retry-After` (whole seconds, at least 1) on blocked responses.
 */
export function rateLimitHeaders(
  config: HeaderConfig,
  result: RateLimitResult,
  now: number,
  policyName: string,
): HeaderField[] {
  const fields: HeaderField[] = []
  const { limit, remaining } = result
  const windowSeconds = Math.ceil(config.windowMs / 1000)
  for (const format of config.formats) {
    switch (format) {
      case 'legacy': {
        const reset =
          config.resetFormat === 'epoch' ? Math.ceil(result.resetTime / 1000) : resetSeconds(result, now)
        fields.push(
          { name: 'X-RateLimit-Limit', value: String(limit), append: false },
          { name: 'X-RateLimit-Remaining', value: String(remaining), append: false },
          { name: 'X-RateLimit-Reset', value: String(reset), append: false },
        )
        break
      }
      case 'draft-6':
        fields.push(
          { name: 'RateLimit-Policy', value: `${limit};w=${windowSeconds}`, append: false },
          { name: 'RateLimit-Limit', value: String(limit), append: false },
          { name: 'RateLimit-Remaining', value: String(remaining), append: false },
          { name: 'RateLimit-Reset', value: String(resetSeconds(result, now)), append: false },
        )
        break
      case 'draft-7':
        fields.push(
          { name: 'RateLimit-Policy', value: `${limit};w=${windowSeconds}`, append: false },
          {
            name: 'RateLimit',
            value: `limit=${limit}, remaining=${remaining}, reset=${resetSeconds(result, now)}`,
            append: false,
          },
        )
        break
      case 'draft-8':
        fields.push(
          {
            name: 'RateLimit',
            value: `"${policyName}"; r=${remaining}; t=${resetSeconds(result, now)}`,
            append: true,
          },
          {
            name: 'RateLimit-Policy',
            value: `"${policyName}"; q=${limit}; w=${windowSeconds}; pk=:${partitionKey(result.key)}:`,
            append: true,
          },
        )
        break
    }
  }
  if (!result.allowed && config.retryAfterHeader) {
    fields.push({ name: 'Retry-After', value: String(result.retryAfter), append: false })
  }
  return fields
}

/** express-rate-limit's default draft-8 policy name: `"<limit>-in-<window>"`, e.g. `"100-in-1min"`. */
export function defaultPolicyName(limit: number, windowMs: number): string {
  return `${limit}-in-${describeWindow(windowMs)}`
}
