import { type ClientOptions, InvalidOptionError, type MemkitClient, type ServerSpec } from '@memkit/client'
import { boolean, checkClientOption, checkKnown, oneOf, seconds } from '@memkit/client/internal'
import { type EncryptionKey, type KeyRing, parseKeyRing } from './encryption.js'
import type { SessionInput } from './types.js'

export interface MemcachedStoreOptions {
  /** A shared `@memkit/client` instance (recommended: one per process, shared by all middleware). */
  client?: MemkitClient
  /**
   * Servers for a client the store creates and owns (closed by `store.close()`), when no `client`
   * is given. Default: the `MEMCACHED_SERVERS` environment variable, else `127.0.0.1:11211`.
   */
  servers?: ServerSpec | readonly ServerSpec[]
  /** Further options for that owned client (`timeout`, `connections`, `tls`...). Not with `client`. */
  clientOptions?: Omit<ClientOptions, 'servers'>
  /** Start of every memcached key the store writes. Default `'sess:'`. */
  prefix?: string
  /**
   * HMAC-SHA-256 key that turns session ids into memcached keys. Default: a fixed public key
   * (the ids are still hashed, so no id appears in the cache). Changing it orphans every session.
   */
  secret?: string | Buffer
  /**
   * Seconds (or a string with a unit, such as `'1d'`) to keep a session whose cookie has no expiry
   * (a browser-session cookie), or a function of the session returning seconds. Default `86400`.
   */
  ttl?: number | string | ((session: SessionInput) => number)
  /**
   * Lazy touch: seconds during which a session refreshed (written or touched) by this process is
   * not touched again (or a string with a unit, such as `'5m'`). Default `0` (every touch reaches
   * memcached).
   */
  touchAfter?: number | string
  /**
   * Seconds between two reads of the namespace generation (what `clear()` moves) by this process.
   * `clear()` takes effect at once in the process that calls it and within this interval in the
   * others; meanwhile requests cost no extra memcached command. `0` reads it with every
   * operation. A string with a unit (`'500ms'`) is accepted too. Default `1`.
   */
  generationRefresh?: number | string
  /**
   * Absolute lifetime in seconds (or a string such as `'12h'`) from the session's first save;
   * touches cannot extend it. Default: none.
   */
  maxLifetime?: number | string
  /**
   * Seconds a destroyed session leaves a tombstone behind, so that a request still in flight
   * cannot save it back to life (or a string such as `'5m'`). `0` deletes without a tombstone.
   * Default `300`.
   */
  tombstoneTtl?: number | string
  /** AES-256-GCM encryption at rest; the first key encrypts, every key in the ring decrypts. Default: off. */
  encryption?: { keys: readonly EncryptionKey[] }
  /**
   * When memcached is down or frozen: `'error'` fails the request (503, ERR_MEMKIT_SESSION_UNAVAILABLE);
   * `'new-session'` carries on with a fresh, unsaved session. Default `'error'`.
   */
  onUnavailable?: 'error' | 'new-session'
  /**
   * Emit 'disconnect' when every memcached server is marked down and 'connect' when one is back.
   * express-session then serves requests without `req.session` while disconnected. Default `false`.
   */
  emitDisconnect?: boolean
}

export interface StoreConfig {
  readonly prefix: string
  readonly secret: Buffer
  readonly ttl: number | ((session: SessionInput) => number)
  readonly touchAfterMs: number
  readonly generationRefreshMs: number
  readonly maxLifetimeMs: number | undefined
  readonly tombstoneTtl: number
  readonly keyRing: KeyRing | undefined
  readonly onUnavailable: 'error' | 'new-session'
  readonly emitDisconnect: boolean
}

const KNOWN = new Set([
  'client',
  'servers',
  'clientOptions',
  'prefix',
  'secret',
  'ttl',
  'touchAfter',
  'generationRefresh',
  'maxLifetime',
  'tombstoneTtl',
  'encryption',
  'onUnavailable',
  'emitDisconnect',
])

/** Public and fixed: without a `secret`, the HMAC degrades to a plain SHA-256 of the id. */
const DEFAULT_SECRET = Buffer.from('@memkit/session default key: set `secret` to make keys unguessable')

// A key is prefix + generation (base 36, <= 11 chars) + ':' + 43-char hash; keep it under 250.
const MAX_PREFIX_BYTES = 150

/** Validates every store option once, at construction, into a frozen config. */
export function parseStoreOptions(options: MemcachedStoreOptions): StoreConfig {
  checkKnown(options, KNOWN, 'MemcachedStore')
  checkClientOption(options, 'MemcachedStore')
  return Object.freeze({
    prefix: parsePrefix(options.prefix),
    secret: parseSecret(options.secret),
    ttl: parseTtl(options.ttl),
    touchAfterMs: seconds(options.touchAfter, 'touchAfter', 0) * 1000,
    generationRefreshMs: seconds(options.generationRefresh, 'generationRefresh', 1) * 1000,
    maxLifetimeMs:
      options.maxLifetime === undefined
        ? undefined
        : positiveSeconds(options.maxLifetime, 'maxLifetime') * 1000,
    tombstoneTtl: seconds(options.tombstoneTtl, 'tombstoneTtl', 300),
    keyRing: options.encryption === undefined ? undefined : parseKeyRing(options.encryption),
    onUnavailable: oneOf(options.onUnavailable, 'onUnavailable', ['error', 'new-session'] as const, 'error'),
    emitDisconnect: boolean(options.emitDisconnect, 'emitDisconnect', false),
  })
}

function parsePrefix(value: unknown): string {
  if (value === undefined) return 'sess:'
  if (typeof value !== 'string') throw new InvalidOptionError('`prefix` must be a string')
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\s\u0000-\u001f\u007f]/.test(value)) {
    throw new InvalidOptionError('`prefix` must not contain whitespace or control characters')
  }
  if (Buffer.byteLength(value) > MAX_PREFIX_BYTES) {
    throw new InvalidOptionError(`\`prefix\` must be at most ${MAX_PREFIX_BYTES} bytes`)
  }
  return value
}

function parseSecret(value: unknown): Buffer {
  if (value === undefined) return DEFAULT_SECRET
  if (typeof value === 'string' && value.length > 0) return Buffer.from(value, 'utf8')
  if (Buffer.isBuffer(value) && value.length > 0) return Buffer.from(value)
  throw new InvalidOptionError('`secret` must be a non-empty string or Buffer')
}

function parseTtl(value: unknown): StoreConfig['ttl'] {
  if (value === undefined) return 86_400
  if (typeof value === 'function') return value as (session: SessionInput) => number
  return positiveSeconds(value, 'ttl')
}

/** A duration in seconds (a number, or a string with a unit such as `'1h'`), more than 0. */
function positiveSeconds(value: unknown, name: string): number {
  const result = seconds(value, name, 0)
  if (!(result > 0))
    throw new InvalidOptionError(`\`${name}\` must be more than 0 seconds; got ${String(value)}`)
  return result
}
