// The public option and event types of the client's methods: imported by the client, by the
// MemkitClient interface and by the migration client, so that none of them imports another.
import type { MemkitError } from './errors.js'

export interface SetOptions {
  /**
   * Seconds, or a string with a unit (`'90s'`, `'5 minutes'`); 0 = no expiry; fractions round up;
   * over 30 days is sent as an absolute time. Default: the client's `defaultTtl`.
   */
  ttl?: number | string
}

/** What setMany takes: a Map, `[key, value]` pairs, or a plain object of keys and values. */
export type SetManyEntries =
  | ReadonlyMap<string, unknown>
  | Iterable<readonly [string, unknown]>
  | Readonly<Record<string, unknown>>

export interface CounterOptions {
  /** Create a missing counter with this value (the delta is not applied to it). Without it, a missing counter stays missing. */
  initial?: number | bigint
  /** TTL in seconds (or a string such as `'1m'`) for a counter created from `initial`. Default: the client's `defaultTtl`. */
  ttl?: number | string
}

export interface UpdateOptions extends SetOptions {
  /**
   * Attempts in all (reads of the current value and compare-and-swaps) before giving up with
   * CasConflictError (ERR_MEMKIT_CAS_CONFLICT). Between attempts `update` waits a random time up
   * to 1 ms × 2^attempt, capped at 100 ms (full jitter), so concurrent updaters of one key spread
   * out. Default `32`: enough for 40 concurrent updaters of one key (4 processes × 10) to all
   * succeed, tested; raise it for more contention, or shard a hot key.
   */
  retries?: number
}

export interface RememberOptions {
  /**
   * Milliseconds (or a string such as `'10s'`) to wait for the loader before every caller sharing
   * the load fails with LoadTimeoutError (ERR_MEMKIT_LOAD_TIMEOUT); the next call then loads
   * again, and the late result is not cached. `Infinity` waits for ever. Default `10000`.
   */
  loadTimeout?: number | string
  /**
   * Negative caching: seconds (or a string such as `'30s'`) for which a `null` result is cached,
   * so a lookup that found nothing is not repeated on every call. Default: `null` is not cached
   * (the next call loads again), like `undefined`, which is never cached.
   */
  nullTtl?: number | string | false
  /**
   * One load per key across every process (meta protocol, memcached >= 1.6.18), with memcached's
   * leases: on a miss the first caller anywhere loads while the others wait for its value; when
   * the value is within `refreshAhead` seconds of expiring, or was marked stale by `invalidate()`,
   * one caller reloads it in the background and everyone is served the current (stale) value
   * meanwhile; the load's write is refused when an `invalidate()` or a `set()` overtook it.
   * `refreshAhead` defaults to a tenth of the TTL (at least 1 s). Refused with NotSupportedError
   * on the classic and binary transports, which have no leases. Default `false`.
   */
  lease?: boolean | { refreshAhead?: number | string }
}

export interface ClientEvents {
  /** A server was marked down after `failureLimit` consecutive failures. */
  'server:down': [{ server: string; error: MemkitError }]
  /**
   * A server that was down answers again. `flushed`: it was emptied first (`failover: true` with
   * `rejoin: 'flush'`), after `'server:flushed'`.
   */
  'server:up': [{ server: string; flushed: boolean }]
  /** A server was emptied (`flush_all`) before taking its keys back after a failover. */
  'server:flushed': [{ server: string; reason: 'rejoin' }]
  error: [Error]
}
