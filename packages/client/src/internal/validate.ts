// The option validators every memkit package uses (client, session store, rate limiter, response
// cache): each reads one option, applies its default, and throws InvalidOptionError naming the
// option and the right form. Options are parsed once, at construction, into frozen configs.
import { describe, toDuration } from '../duration.js'
import { InvalidOptionError } from '../errors.js'

/**
 * Throws unless `options` is a plain object whose keys are all in `known` (what: the owner's name
 * for messages, e.g. 'MemcachedStore'; '' for the client's own options).
 */
export function checkKnown(
  options: unknown,
  known: ReadonlySet<string>,
  what: string,
  hint?: (name: string) => string | undefined,
): void {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidOptionError(
      `${what ? `${what} ` : ''}options must be an object; got ${describe(options)}`,
    )
  }
  for (const name of Object.keys(options)) {
    if (known.has(name)) continue
    const extra = hint?.(name)
    throw new InvalidOptionError(
      `unknown ${what ? `${what} ` : ''}option \`${name}\`${extra ? `: ${extra}` : ''}`,
    )
  }
}

export function boolean(value: unknown, name: string, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean')
    throw new InvalidOptionError(`\`${name}\` must be true or false; got ${describe(value)}`)
  return value
}

export function integer(value: unknown, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(
      `\`${name}\` must be an integer from ${min} to ${max}; got ${describe(value)}`,
    )
  }
  return value
}

export function oneOf<T extends string>(value: unknown, name: string, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback
  if (!allowed.includes(value as T)) {
    throw new InvalidOptionError(
      `\`${name}\` must be one of ${allowed.map((a) => `'${a}'`).join(', ')}; got ${describe(value)}`,
    )
  }
  return value as T
}

/** An optional function (a hook, a key generator). */
export function optionalFunction<T>(value: unknown, name: string): T | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'function')
    throw new InvalidOptionError(`\`${name}\` must be a function; got ${describe(value)}`)
  return value as T
}

/** A string. */
export function text(value: unknown, name: string): string {
  if (typeof value !== 'string')
    throw new InvalidOptionError(`\`${name}\` must be a string; got ${describe(value)}`)
  return value
}

/**
 * A duration in seconds: a number of seconds or a string with a unit (`'30s'`, `'5 minutes'`),
 * at least `min`.
 */
export function seconds(value: unknown, name: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback
  const result = toDuration(value, name, 's', 'option')
  if (result < min)
    throw new InvalidOptionError(`\`${name}\` must be at least ${min} seconds; got ${describe(value)}`)
  return result
}

/**
 * A duration in milliseconds: a number of milliseconds or a string with a unit (`'500ms'`,
 * `'2s'`), at least `min`.
 */
export function milliseconds(value: unknown, name: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback
  const result = toDuration(value, name, 'ms', 'option')
  if (result < min)
    throw new InvalidOptionError(`\`${name}\` must be at least ${min} milliseconds; got ${describe(value)}`)
  return result
}
