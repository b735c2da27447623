import { type ClientOptions, InvalidOptionError, type MemkitClient } from '@memkit/client'
import { boolean, checkKnown, integer, oneOf, text } from '@memkit/client/internal'
import type { BreakerOptions } from './breaker.js'
import { parseDuration } from './duration.js'
import { assertCanCount } from './transport.js'
import { MAX_EXPIRY_MS, WindowGrid } from './window.js'

export type Algorithm = 'fixed' | 'sliding'
export type StoreErrorPolicy = 'allow' | 'deny' | 'local'

/** Options of the framework-free `RateLimiter`. */
export interface LimiterOptions {
  /** The shared memkit client. Give this or `servers`. */
  client?: MemkitClient
  /** Servers to open a client of the limiter's own (closed by `close()`), when no `client` is given. */
  servers?: ClientOptions['servers']
  /** Window length: milliseconds or a string such as `'1 minute'`, `'15s'`, `'1.5 seconds'`. Default `60000`. */
  windowMs?: number | string
  /** Requests (cost units) allowed per window and key. Default `100`. `consume` may pass its own. */
  limit?: number
  /** `'fixed'` windows, or `'sliding'` (previous window weighted by its overlap + the current one). Default `'fixed'`. */
  algorithm?: Algorithm
  /** Prefix of every memcached key this limiter writes. Default `'rl:'`. */
  prefix?: string
  /**
   * Counter namespace: limiters with the same name, window and algorithm share counters (across
   * processes too); different names count separately. Default: derived from the algorithm,
   * window and limit.
   */
  name?: string
  /** What to do when memcached fails or times out. Default `'allow'`. */
  onStoreError?: StoreErrorPolicy
  /**
   * What to do when the client refuses a request because too many are already waiting for
   * memcached (`maxPending`, `ERR_MEMKIT_OVERLOADED`): a flood can cause that, so it is not
   * permission unless chosen here. Default: `'local'`, or `'deny'` under `onStoreError: 'deny'`.
   */
  onOverload?: StoreErrorPolicy
  /** Processes sharing this limit, for `onStoreError: 'local'` (each allows `floor(limit / instances)`, at least 1). Default `1`. */
  instances?: number
  /** Circuit breaker around memcached, or `false` to try memcached on every request. Default `{ threshold: 5, cooldownMs: 5000 }`. */
  breaker?: BreakerOptions | false
  /**
   * Refuse a key in memory, without a memcached command, once memcached said it is over its
   * limit, until its reset; one request per `preBlockRecheckMs` still asks memcached, so a
   * `reset()` made by another process is seen. Default `true`.
   */
  preBlock?: boolean
  /**
   * How often a blocked key asks memcached again (milliseconds or a duration string): the
   * longest a reset made elsewhere takes to reach this process, and the cost of a flood, one
   * memcached command per blocked key per period while its requests keep coming. Default `1000`.
   */
  preBlockRecheckMs?: number | string
  /** Most keys held in memory by the local fallback and the pre-block table. Default `10000`. */
  maxLocalKeys?: number
  /** Called with every memcached failure (the request is then handled per `onStoreError`). Default: one process warning per outage. */
  onError?: (error: Error) => void
}

export interface LimiterConfig {
  readonly client: MemkitClient | undefined
  readonly servers: ClientOptions['servers'] | undefined
  readonly windowMs: number
  readonly limit: number
  readonly algorithm: Algorithm
  readonly prefix: string
  readonly name: string
  readonly onStoreError: StoreErrorPolicy
  readonly onOverload: StoreErrorPolicy
  readonly instances: number
  readonly breaker: { readonly threshold: number; readonly cooldownMs: number } | false
  readonly preBlock: boolean
  readonly preBlockRecheckMs: number
  readonly maxLocalKeys: number
  readonly onError: ((error: Error) => void) | undefined
}

const LIMITER_KEYS = [
  'client',
  'servers',
  'windowMs',
  'limit',
  'algorithm',
  'prefix',
  'name',
  'onStoreError',
  'onOverload',
  'instances',
  'breaker',
  'preBlock',
  'preBlockRecheckMs',
  'maxLocalKeys',
  'onError',
] as const

const POLICIES = ['allow', 'deny', 'local'] as const

export const LIMITER_OPTION_NAMES: ReadonlySet<string> = new Set(LIMITER_KEYS)

/** Validates the core options once into a frozen config. `known` lists every accepted option name. */
export function parseLimiterOptions(
  options: LimiterOptions,
  known: ReadonlySet<string> = LIMITER_OPTION_NAMES,
): LimiterConfig {
  checkKnown(options, known, 'rate-limit')
  const { client, servers } = options
  if (client !== undefined && servers !== undefined) {
    throw new InvalidOptionError('give either `client` or `servers`, not both')
  }
  if (client === undefined && servers === undefined) {
    throw new InvalidOptionError(
      'a memcached `client` (createClient from @memkit/client) or `servers` is required',
    )
  }
  if (client !== undefined && !isClient(client)) {
    throw new InvalidOptionError('`client` must be a client made by createClient() from @memkit/client')
  }
  const windowMs = options.windowMs === undefined ? 60_000 : parseDuration(options.windowMs, 'windowMs')
  const limit = options.limit === undefined ? 100 : count(options.limit, 'limit')
  const algorithm = oneOf(options.algorithm, 'algorithm', ['fixed', 'sliding'] as const, 'fixed')
  assertExpiryFits(new WindowGrid(algorithm, windowMs), 'windowMs')
  const prefix = keyText(options.prefix, 'prefix', 'rl:')
  if (client !== undefined) assertCanCount(client, prefix)
  const name = options.name === undefined ? `${algorithm}:${windowMs}:${limit}` : text(options.name, 'name')
  const breaker = parseBreaker(options.breaker)
  const onStoreError = oneOf(options.onStoreError, 'onStoreError', POLICIES, 'allow')
  const onError = options.onError
  if (onError !== undefined && typeof onError !== 'function') {
    throw new InvalidOptionError('`onError` must be a function')
  }
  return Object.freeze({
    client,
    servers,
    windowMs,
    limit,
    algorithm,
    prefix,
    name,
    onStoreError,
    onOverload: oneOf(options.onOverload, 'onOverload', POLICIES, onStoreError === 'deny' ? 'deny' : 'local'),
    instances: integer(options.instances, 'instances', 1, 1, 1_000_000),
    breaker,
    preBlock: boolean(options.preBlock, 'preBlock', true),
    preBlockRecheckMs:
      options.preBlockRecheckMs === undefined
        ? 1000
        : parseDuration(options.preBlockRecheckMs, 'preBlockRecheckMs'),
    maxLocalKeys: integer(options.maxLocalKeys, 'maxLocalKeys', 10_000, 1, 100_000_000),
    onError,
  })
}

function parseBreaker(value: unknown): LimiterConfig['breaker'] {
  if (value === false) return false
  if (value === undefined) return Object.freeze({ threshold: 5, cooldownMs: 5000 })
  if (typeof value !== 'object' || value === null) {
    throw new InvalidOptionError('`breaker` must be false or { threshold, cooldownMs }')
  }
  const { threshold, cooldownMs, ...rest } = value as BreakerOptions
  const unknown = Object.keys(rest)
  if (unknown.length > 0) throw new InvalidOptionError(`unknown \`breaker\` option \`${unknown[0]}\``)
  return Object.freeze({
    threshold: integer(threshold, 'breaker.threshold', 5, 1, 1_000_000),
    cooldownMs: cooldownMs === undefined ? 5000 : parseDuration(cooldownMs, 'breaker.cooldownMs'),
  })
}

/**
 * Refuses a window whose counters would have to outlive 2038-01-19T03:14:07Z, the last expiry
 * memcached can store: memcached would refuse (or drop) such a counter and the window would
 * never limit.
 */
export function assertExpiryFits(grid: WindowGrid, name: string, now = Date.now()): void {
  const expiry = grid.longestExpiry(now)
  if (expiry <= MAX_EXPIRY_MS) return
  const longest = Math.floor((MAX_EXPIRY_MS - now - 1000) / (grid.algorithm === 'sliding' ? 2 : 1))
  throw new InvalidOptionError(
    `\`${name}\` of ${grid.windowMs} ms (${grid.algorithm}) needs counters that live until ${new Date(expiry).toISOString()}, past ${new Date(MAX_EXPIRY_MS).toISOString()}, the last expiry memcached can store (a 32-bit Unix time); today a ${grid.algorithm} window can be at most ${longest} ms (${Math.floor(longest / 86_400_000)} days)`,
  )
}

// ---- validators shared with the HTTP options -------------------------------------------
// The generic ones come from @memkit/client's shared set, the same for every memkit package.
export { boolean, integer, oneOf, optionalFunction, text } from '@memkit/client/internal'

/** A memkit client (createClient or createFallbackClient): what the counters are sent through. */
export function isClient(value: unknown): value is MemkitClient {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as MemkitClient).incr === 'function' &&
    typeof (value as MemkitClient).decr === 'function' &&
    typeof (value as MemkitClient).delete === 'function'
  )
}

export function count(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidOptionError(`\`${name}\` must be an integer >= 0; got ${String(value)}`)
  }
  return value
}

function keyText(value: unknown, name: string, fallback: string): string {
  if (value === undefined) return fallback
  const result = text(value, name)
  // The prefix is written into memcached keys as it is; the rest of the key is a hash.
  if (!isKeySafe(result)) {
    throw new InvalidOptionError(
      `\`${name}\` must be at most 100 characters without whitespace or control characters`,
    )
  }
  return result
}

/** At most 100 characters, none of them whitespace or control characters (memcached keys). */
export function isKeySafe(value: string): boolean {
  if (value.length > 100) return false
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i)
    if (code <= 0x20 || code === 0x7f || code === 0x85 || code === 0xa0 || /\s/.test(value[i]!)) return false
  }
  return true
}
