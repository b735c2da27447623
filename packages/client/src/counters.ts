// Counter arguments and results: memcached counters are unsigned 64-bit decimal text.
import { InvalidArgumentError, UnsafeIntegerError } from './errors.js'

const MAX_UINT64 = (1n << 64n) - 1n

export function toUint64(value: number | bigint, name: string): bigint {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new InvalidArgumentError(`${name} must be a non-negative integer; got ${value}`)
    }
    return BigInt(value)
  }
  if (typeof value !== 'bigint' || value < 0n || value > MAX_UINT64) {
    throw new InvalidArgumentError(`${name} must be an unsigned 64-bit integer; got ${String(value)}`)
  }
  return value
}

export function toSafeNumber(result: { value: string } | undefined): number | undefined {
  if (result === undefined) return undefined
  const value = Number(result.value)
  if (!Number.isSafeInteger(value)) {
    throw new UnsafeIntegerError(
      `counter value ${result.value} is above Number.MAX_SAFE_INTEGER; use incrBig/decrBig`,
    )
  }
  return value
}
