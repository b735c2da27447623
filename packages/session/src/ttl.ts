import { SessionValueError } from './errors.js'
import type { SessionInput } from './types.js'

/**
 * Seconds the session should live from `now`: from `cookie.expires` (rounded up), else
 * `cookie.maxAge` (ms, rounded up), else the store's `ttl` option. Zero or less means the session
 * has already expired. `maxLifetimeMs` caps it at `createdAt + maxLifetime`.
 */
export function sessionTtl(
  session: SessionInput,
  fallback: number | ((session: SessionInput) => number),
  now: number,
  createdAt: number,
  maxLifetimeMs: number | undefined,
): number {
  let ttl = fromCookie(session.cookie, now)
  if (ttl === undefined) {
    ttl = typeof fallback === 'function' ? fallback(session) : fallback
    if (typeof ttl !== 'number' || Number.isNaN(ttl)) {
      throw new SessionValueError(`the \`ttl\` function must return a number of seconds; got ${String(ttl)}`)
    }
    if (ttl === Number.POSITIVE_INFINITY) throw new SessionValueError('the `ttl` function returned Infinity')
  }
  if (maxLifetimeMs !== undefined) ttl = Math.min(ttl, Math.ceil((createdAt + maxLifetimeMs - now) / 1000))
  return ttl
}

function fromCookie(cookie: SessionInput['cookie'], now: number): number | undefined {
  if (typeof cookie !== 'object' || cookie === null) return undefined
  const expires = cookie.expires
  if (expires !== undefined && expires !== null) {
    const time =
      expires instanceof Date
        ? expires.getTime()
        : typeof expires === 'string'
          ? Date.parse(expires)
          : Number.NaN
    if (Number.isFinite(time)) return Math.ceil((time - now) / 1000)
  }
  const maxAge = cookie.maxAge
  if (typeof maxAge === 'number' && Number.isFinite(maxAge)) return Math.ceil(maxAge / 1000)
  return undefined
}
