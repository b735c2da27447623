// Durations written with a unit ('30s', '5 minutes', '1.5h'), the one grammar every memkit
// package reads (the rate limiter's windowMs included).
import { InvalidArgumentError, InvalidOptionError } from './errors.js'

const UNITS: Readonly<Record<string, number>> = {
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

const PATTERN = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$/i

/**
 * Reads `'30s'`, `'5 minutes'`, `'1.5 h'`, `'500ms'`, `'2 days'`, `'1w'`: the number, and the
 * unit's length in milliseconds (`unit` is `''` and `factor` undefined for a bare number, whose
 * unit the caller decides). Undefined when the text is neither.
 */
export function readDuration(
  text: string,
): { amount: number; unit: string; factor: number | undefined } | undefined {
  const match = PATTERN.exec(text)
  if (!match) return undefined
  const unit = (match[2] ?? '').toLowerCase()
  const factor = unit === '' ? undefined : UNITS[unit]
  if (unit !== '' && factor === undefined) return undefined
  return { amount: Number(match[1]), unit, factor }
}

/** `'ms'`: the value is milliseconds; `'s'`: seconds (memcached's TTL unit). */
export type DurationUnit = 'ms' | 's'

const UNIT_NAME: Record<DurationUnit, string> = { ms: 'milliseconds', s: 'seconds' }

/**
 * A duration option or argument, in `unit`: a finite number >= 0 (already in `unit`) or a string
 * with a unit (`'30s'`, `'5 minutes'`). A string without a unit (`'60'`) is refused: it is
 * ambiguous, and usually a value read from the environment that was never converted. Throws
 * InvalidOptionError (`kind` 'option', at construction) or InvalidArgumentError (at call time)
 * naming the right form.
 */
export function toDuration(
  value: unknown,
  name: string,
  unit: DurationUnit,
  kind: 'option' | 'argument',
): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 0) return value
    throw fail(kind, `\`${name}\` must be a finite number of ${UNIT_NAME[unit]} >= 0; got ${String(value)}`)
  }
  if (typeof value === 'string') {
    const read = readDuration(value)
    if (read?.factor !== undefined) {
      const result = (read.amount * read.factor) / (unit === 's' ? 1000 : 1)
      if (Number.isFinite(result)) return result
    }
    const hint =
      read && read.factor === undefined
        ? `a string without a unit; pass the number ${read.amount} (${UNIT_NAME[unit]}) or a string with a unit such as '${read.amount}${unit}'`
        : `not a duration; pass a number of ${UNIT_NAME[unit]} or a string such as '30s', '5 minutes', '2h'`
    throw fail(kind, `\`${name}\` is the string ${JSON.stringify(value)}: ${hint}`)
  }
  throw fail(
    kind,
    `\`${name}\` must be a number of ${UNIT_NAME[unit]} or a string with a unit such as '30s'; got ${describe(value)}`,
  )
}

function fail(kind: 'option' | 'argument', message: string): Error {
  return kind === 'option' ? new InvalidOptionError(message) : new InvalidArgumentError(message)
}

/** How a wrong value is named in an error message: its type, and the value when short. */
export function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  switch (typeof value) {
    case 'string':
      return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`
    case 'number':
    case 'bigint':
    case 'boolean':
      return `the ${typeof value} ${String(value)}`
    case 'function':
      return 'a function'
    case 'object':
      return 'an object'
    default:
      return typeof value
  }
}
