import { toDuration } from './duration.js'
import { InvalidArgumentError } from './errors.js'

/** memcached reads an exptime above 30 days as an absolute Unix time. */
export const MAX_RELATIVE_TTL = 60 * 60 * 24 * 30

/**
 * The last absolute expiry memcached keeps: it parses exptime as a signed 32-bit integer, so a
 * later one (2038-01-19T03:14:07Z and after) is stored and then missing at once.
 */
export const MAX_EXPTIME = 2 ** 31 - 1

/**
 * Converts a TTL in seconds (or a string with a unit, such as `'5m'`) to memcached's exptime: 0 stays "never expires", fractions round
 * up (0.5 s must not become 0 = never), and anything above 30 days becomes an absolute Unix
 * time, since memcached would otherwise read 31 days as a date in 1970 and expire it at once.
 * An expiry past MAX_EXPTIME (2038-01-19T03:14:07Z), which memcached cannot hold, is capped
 * there: the item lives as long as memcached can keep it, never "stored" and then missing.
 */
export function toExptime(ttl: number | string, now: number = Date.now()): number {
  if (typeof ttl !== 'number') ttl = toDuration(ttl, 'ttl', 's', 'argument')
  else if (!Number.isFinite(ttl) || ttl < 0) {
    throw new InvalidArgumentError(
      `\`ttl\` must be a finite number of seconds >= 0 (0 = no expiry); got ${String(ttl)}`,
    )
  }
  if (ttl === 0) return 0
  const seconds = Math.ceil(ttl)
  if (seconds <= MAX_RELATIVE_TTL) return seconds
  return Math.min(Math.floor(now / 1000) + seconds, MAX_EXPTIME)
}
