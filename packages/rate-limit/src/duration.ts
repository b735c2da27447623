import { InvalidOptionError, readDuration } from '@memkit/client'

/** Ten years: far beyond any sensible window, and well inside memcached's 32-bit absolute expiry. */
export const MAX_WINDOW_MS = 10 * 365 * 86_400_000

/**
 * A window length in milliseconds from a number of milliseconds or a string such as
 * `'1 minute'`, `'15m'`, `'1.5 s'`, `'500ms'`, `'2 hours'`, `'1d'` (a bare number string is
 * milliseconds). Any positive length up to ten years is accepted.
 */
export function parseDuration(value: unknown, name: string): number {
  let ms: number
  if (typeof value === 'number') {
    ms = value
  } else if (typeof value === 'string') {
    // The grammar every memkit package reads (@memkit/client's readDuration); here a bare number is ms.
    const read = readDuration(value)
    if (!read) {
      throw new InvalidOptionError(
        `\`${name}\` must be milliseconds or a duration such as '1 minute', '30s', '1.5 seconds', '2h'; got ${JSON.stringify(value)}`,
      )
    }
    ms = read.amount * (read.factor ?? 1)
  } else {
    throw new InvalidOptionError(
      `\`${name}\` must be a number of milliseconds or a duration string; got ${typeof value}`,
    )
  }
  if (!Number.isFinite(ms) || ms <= 0 || ms > MAX_WINDOW_MS) {
    throw new InvalidOptionError(
      `\`${name}\` must be more than 0 and at most ten years; got ${JSON.stringify(value)}`,
    )
  }
  return ms
}

/** express-rate-limit's policy name for draft-8 (`"100-in-1min"`), so both libraries name a policy alike. */
export function describeWindow(windowMs: number): string {
  const seconds = windowMs / 1000
  const minutes = windowMs / 60_000
  const hours = windowMs / 3_600_000
  const days = windowMs / 86_400_000
  if (seconds < 60) return `${seconds}sec`
  if (minutes < 60) return `${minutes}min`
  if (hours < 24) return `${hours}hr${hours > 1 ? 's' : ''}`
  return `${days}day${days > 1 ? 's' : ''}`
}
