import { InvalidOptionError } from '@memkit/client'

const UNITS: Record<string, number> = {
  ms: 1,
  msec: 1,
  msecs: 1,
  millisecond: 1,
  milliseconds: 1,
  s: 1000,
  sec: 1000,
  secs: 1000,
  second: 1000,
  seconds: 1000,
  m: 60_000,
  min: 60_000,
  mins: 60_000,
  minute: 60_000,
  minutes: 60_000,
  h: 3_600_000,
  hr: 3_600_000,
  hrs: 3_600_000,
  hour: 3_600_000,
  hours: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
  days: 86_400_000,
  w: 604_800_000,
  week: 604_800_000,
  weeks: 604_800_000,
}

/** Ten years: far beyond any sensible window, and well inside memcached's 32-bit absolute expiry. */
export const MAX_WINDOW_MS = 10 * 365 * 86_400_000

const PATTERN = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$/i

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
    const match = PATTERN.exec(value)
    const unit = match ? (match[2] ?? '').toLowerCase() : ''
    const factor = unit === '' ? 1 : UNITS[unit]
    if (!match || factor === undefined) {
      throw new InvalidOptionError(
        `\`${name}\` must be milliseconds or a duration such as '1 minute', '30s', '1.5 seconds', '2h'; got ${JSON.stringify(value)}`,
      )
    }
    ms = Number(match[1]) * factor
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
