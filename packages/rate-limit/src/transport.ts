// What the limiter needs from the client's transport, and the configurations that cannot give
// it, refused when the limiter is created rather than discovered as store errors on every
// request (which onStoreError: 'allow' would turn into "no limit at all").
//
// The counter is `client.incr(key, cost, { initial: cost, ttl })` on every transport; what that
// costs on the wire (memcached commands, sequential round trips, per request):
//
//   meta (default)      fixed: `ma N J`, 1 round trip, the first hit of a window included
//                       sliding: `ma N J` + `ma` (read) pipelined, 1 round trip
//   classic (twemproxy) fixed: `incr`, 1 round trip; the first hit of a window `incr` (miss) then
//                       `add` with the TTL, 2; a first hit that loses the `add` race to another
//                       process `incr` again, 3. Exact: `incr` and `add` are each atomic.
//                       sliding: the same plus the previous window's `incr 0` in the first write
//   binary (memjs)      fixed: INCREMENT with initial value and expiration, 1 round trip; a first
//                       hit that loses memcached's creation race (NOT_STORED) is sent again, 2
//                       sliding: two INCREMENTs in one write, 1 round trip
import { InvalidOptionError, MAX_KEY_LENGTH, type MemkitClient } from '@memkit/client'

/** Digits a window index can take (a 1 ms window today: 13), with room and a sign. */
const INDEX_CHARACTERS = 18
/** The hashed client key: 22 base64url characters and the `:` before the window index. */
const HASH_CHARACTERS = 23

/**
 * Refuses a client the limiter cannot count on. `prefix` is the limiter's own key prefix.
 * @throws InvalidOptionError (`ERR_MEMKIT_INVALID_OPTION`) naming the problem and the fix.
 */
export function assertCanCount(client: MemkitClient, prefix: string): void {
  const config = client.config
  if (config === undefined || config === null) return
  if (config.proxy && config.protocol !== 'classic') {
    throw new InvalidOptionError(
      `the rate limiter cannot count through a proxy tier with protocol '${config.protocol}': twemproxy and mcrouter forward only the classic text commands and close the connection on meta or binary ones; create the client with { protocol: 'classic', proxy: true }`,
    )
  }
  if (!config.hashLongKeys) {
    const longest = `${config.keyPrefix}${prefix}${'x'.repeat(HASH_CHARACTERS + INDEX_CHARACTERS)}`
    const bytes = Buffer.byteLength(longest)
    // Non-ASCII keys travel base64-encoded on the meta protocol.
    const wire = bytes === longest.length ? bytes : Math.ceil(bytes / 3) * 4
    if (wire > MAX_KEY_LENGTH) {
      throw new InvalidOptionError(
        `the rate limiter's keys would be up to ${wire} bytes (client keyPrefix ${JSON.stringify(config.keyPrefix)} + prefix ${JSON.stringify(prefix)} + ${HASH_CHARACTERS + INDEX_CHARACTERS} characters), over memcached's ${MAX_KEY_LENGTH}; shorten the prefixes or create the client with hashLongKeys: true`,
      )
    }
  }
}

/**
 * Errors that say the limiter was set up wrongly, not that memcached failed: they reject
 * `consume` instead of being handled by `onStoreError`, so a configuration can never fail open.
 */
const CONFIGURATION_ERRORS = new Set([
  'ERR_MEMKIT_NOT_SUPPORTED',
  'ERR_MEMKIT_KEY',
  'ERR_MEMKIT_INVALID_ARGUMENT',
  // Wrong or missing credentials (SASL, ASCII auth): a deployment mistake, never an open door.
  'ERR_MEMKIT_AUTH',
])

/**
 * Client errors are told apart by their stable `code`, not by class: with two installed copies
 * of @memkit/client, `instanceof` fails for errors made by the other copy.
 */
export function hasCode(error: unknown, code: string | ReadonlySet<string>): boolean {
  if (typeof error !== 'object' || error === null) return false
  const actual = String((error as { code?: unknown }).code)
  return typeof code === 'string' ? actual === code : code.has(actual)
}

export function isConfigurationError(error: unknown): boolean {
  return hasCode(error, CONFIGURATION_ERRORS)
}

/** The client refused the request before sending it: too many already wait (`maxPending`). */
export function isOverload(error: unknown): boolean {
  return hasCode(error, 'ERR_MEMKIT_OVERLOADED')
}
