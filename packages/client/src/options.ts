import type { ConnectionOptions as TlsOptions } from 'node:tls'
import { PYMEMCACHE_NAMES } from './arguments.js'
import type { Distribution } from './cluster.js'
import { describe } from './duration.js'
import { InvalidOptionError } from './errors.js'
import { boolean, checkKnown, integer, milliseconds, oneOf, seconds } from './internal/validate.js'
import {
  type CompressionAlgorithm,
  type CompressionOptions,
  checkSerializer,
  defaultSerializer,
  parseCompression,
  type Serializer,
  type ValueCodecConfig,
} from './serializer.js'
import { jsonSerializer } from './serializers/json.js'
import { parseServers, type ServerConfig, type ServerSpec } from './servers.js'

export interface ClientOptions {
  /**
   * Wire protocol: `'meta'` (memcached >= 1.6), `'classic'` (the text commands proxies such as
   * twemproxy forward) or `'binary'` (through the optional `memjs` package, for SASL). Default `'meta'`.
   */
  protocol?: 'meta' | 'classic' | 'binary'
  /**
   * The servers are interchangeable proxies (twemproxy, mcrouter) that place keys themselves:
   * no client-side hashing (requests go to any live proxy), and no stats or flush. Default `false`.
   */
  proxy?: boolean
  /** Credentials: ASCII authentication (`memcached -Y`) for meta/classic, SASL PLAIN for binary. */
  auth?: { username: string; password: string }
  /**
   * Servers: `"host:port"`, `{ host, port, weight }`, an array of those, or a comma-separated
   * string. Default: the `MEMCACHED_SERVERS` environment variable, else `"127.0.0.1:11211"`.
   */
  servers?: ServerSpec | readonly ServerSpec[]
  /**
   * How keys are placed on servers. `'ketama'`: libmemcached's weighted ketama (what pylibmc,
   * PHP's memcached extension and twemproxy with `hash: md5` use). `'rendezvous'`: pymemcache's
   * HashClient default (rendezvous hashing with its murmur3), for a pool shared with Python
   * services that use pymemcache; it hashes the key without `keyPrefix` (set pymemcache's
   * `key_prefix` to the same) and has no weights. Default `'ketama'`.
   */
  distribution?: Distribution
  /** Prepended to every key (counts toward the 250-byte limit). Default `''`. */
  keyPrefix?: string
  /** Store keys over 250 bytes as `prefix + "h:" + sha256(key)` instead of refusing them. Default `false`. */
  hashLongKeys?: boolean
  /**
   * Milliseconds (or a string such as `'500ms'`, `'2s'`) each operation may take, connecting
   * included, before it fails with ERR_MEMKIT_TIMEOUT. Default `500`.
   */
  timeout?: number | string
  /** Milliseconds (or a string such as `'1s'`) to establish a TCP (and TLS) connection. Default `1000`. */
  connectTimeout?: number | string
  /** Connections per server; commands are spread over them round-robin. Default `1`. */
  connections?: number
  /** The servers' item size limit in bytes (memcached `-I`); larger values are refused before sending. Default `1048576`. */
  maxItemSize?: number
  /** Compress values of at least `threshold` bytes (default 1024) with zlib or brotli. Default `false`. */
  compression?: boolean | CompressionAlgorithm | CompressionOptions
  /**
   * How values become bytes and flags: `'pymemcache'` (the default: pymemcache's default serde
   * flags, plus JSON for objects), `'json'` (pymemcache's tutorial convention: text flag 1, JSON
   * flag 2), or a serializer object such as `phpSerializer()` from `@memkit/client/php`. A custom
   * serializer must not return flag bits 8 and 64 (memkit's compression bits) unless it sets
   * `handlesCompression`; this is checked at construction.
   */
  serializer?: 'pymemcache' | 'json' | Serializer
  /** TTL in seconds (or a string such as `'1h'`) for writes that give none. Default `0` (no expiry). */
  defaultTtl?: number | string
  /**
   * When a server is down, move its keys to the remaining servers (`true`) or fail them fast
   * (`false`). With `true`, writes that land on a stand-in server get a TTL of at most
   * `failoverTtl`, and a server that comes back is emptied before it serves again (`rejoin`), so
   * it can never answer with a value older than one written while it was away. Default `false`.
   */
  failover?: boolean
  /**
   * Seconds: the longest TTL a write gets while its server is down and it lands on a stand-in
   * (`failover: true`), so that stand-in copies never outlive the failover by long. Default `60`.
   */
  failoverTtl?: number | string
  /**
   * What happens when a server marked down answers again (`failover: true` only): `'flush'`
   * empties it first (`flush_all`), so values overwritten or deleted while it was away cannot
   * come back; `'keep'` lets it serve what it held (stale reads and resurrected deletes are then
   * possible). Default `'flush'`.
   */
  rejoin?: 'flush' | 'keep'
  /** Consecutive failures (connection errors, timeouts) after which a server is marked down. Default `2`. */
  failureLimit?: number
  /**
   * Milliseconds (or a string such as `'5s'`) a down server is left alone before it is probed
   * again. Default `5000`. (pymemcache's `dead_timeout` is seconds: a number under 100 here
   * draws a warning.)
   */
  deadTimeout?: number | string
  /** Retries, on a fresh connection, of idempotent operations whose connection failed. Default `1`. */
  retries?: number
  /** Most commands waiting on one connection; beyond that operations fail with ERR_MEMKIT_OVERLOADED. Default `10000`. */
  maxPending?: number
  /** What a stored value that cannot be decoded reads as: an error (`'throw'`) or a miss (`'miss'`). Default `'throw'`. */
  decodeErrors?: 'throw' | 'miss'
  /** TCP keep-alive: `false`, or the initial delay in ms (or a string such as `'30s'`). Default `30000`. */
  keepAlive?: number | string | false
  /** TLS: `true`, or Node `tls.connect` options (ca, cert, key, servername...). Default `false`. */
  tls?: boolean | TlsOptions
}

export interface ClientConfig {
  readonly protocol: 'meta' | 'classic' | 'binary'
  readonly proxy: boolean
  readonly auth: Readonly<{ username: string; password: string }> | undefined
  readonly servers: readonly ServerConfig[]
  readonly distribution: Distribution
  readonly keyPrefix: string
  readonly hashLongKeys: boolean
  readonly timeout: number
  readonly connectTimeout: number
  readonly connections: number
  readonly maxItemSize: number
  readonly codec: ValueCodecConfig
  readonly defaultTtl: number
  readonly failover: boolean
  readonly failoverTtl: number
  readonly rejoin: 'flush' | 'keep'
  readonly failureLimit: number
  readonly deadTimeout: number
  readonly retries: number
  readonly maxPending: number
  readonly decodeErrors: 'throw' | 'miss'
  readonly keepAlive: number | false
  readonly tls: TlsOptions | undefined
}

const KNOWN = new Set<string>([
  'protocol',
  'proxy',
  'auth',
  'servers',
  'distribution',
  'keyPrefix',
  'hashLongKeys',
  'timeout',
  'connectTimeout',
  'connections',
  'maxItemSize',
  'compression',
  'serializer',
  'defaultTtl',
  'failover',
  'failoverTtl',
  'rejoin',
  'failureLimit',
  'deadTimeout',
  'retries',
  'maxPending',
  'decodeErrors',
  'keepAlive',
  'tls',
])

/** Validates every option once, at construction, into a frozen config. */
export function parseClientOptions(options: ClientOptions = {}): ClientConfig {
  checkKnown(options, KNOWN, '', (name) =>
    Object.hasOwn(PYMEMCACHE_NAMES, name)
      ? `pymemcache's \`${name}\` is memkit's ${PYMEMCACHE_NAMES[name]}`
      : undefined,
  )
  const serializer = parseSerializer(options.serializer)
  if (serializer.handlesCompression && options.compression !== undefined && options.compression !== false) {
    throw new InvalidOptionError(
      'this serializer compresses values itself (handlesCompression): configure compression on it (e.g. phpSerializer({ compression })), not with the `compression` option',
    )
  }
  const config: ClientConfig = {
    protocol: oneOf(options.protocol, 'protocol', ['meta', 'classic', 'binary'] as const, 'meta'),
    proxy: boolean(options.proxy, 'proxy', false),
    auth: parseAuth(options.auth, options.protocol ?? 'meta'),
    servers: Object.freeze(parseServers(options.servers)),
    distribution: oneOf(options.distribution, 'distribution', ['ketama', 'rendezvous'] as const, 'ketama'),
    keyPrefix: keyPrefix(options.keyPrefix),
    hashLongKeys: boolean(options.hashLongKeys, 'hashLongKeys', false),
    timeout: positive(options.timeout, 'timeout', 500),
    connectTimeout: positive(options.connectTimeout, 'connectTimeout', 1000),
    connections: integer(options.connections, 'connections', 1, 1, 64),
    maxItemSize: integer(options.maxItemSize, 'maxItemSize', 1024 * 1024, 1024, 1024 * 1024 * 1024),
    codec: Object.freeze({ serializer, compression: parseCompression(options.compression) }),
    defaultTtl: seconds(options.defaultTtl, 'defaultTtl', 0),
    failover: boolean(options.failover, 'failover', false),
    failoverTtl: integer(
      Math.ceil(seconds(options.failoverTtl, 'failoverTtl', 60)),
      'failoverTtl',
      60,
      1,
      2_592_000,
    ),
    rejoin: oneOf(options.rejoin, 'rejoin', ['flush', 'keep'] as const, 'flush'),
    failureLimit: integer(options.failureLimit, 'failureLimit', 2, 1, 1000),
    deadTimeout: positive(options.deadTimeout, 'deadTimeout', 5000),
    retries: integer(options.retries, 'retries', 1, 0, 10),
    maxPending: integer(options.maxPending, 'maxPending', 10_000, 1, 10_000_000),
    decodeErrors: oneOf(options.decodeErrors, 'decodeErrors', ['throw', 'miss'] as const, 'throw'),
    keepAlive:
      options.keepAlive === false
        ? false
        : options.keepAlive === undefined
          ? 30_000
          : milliseconds(options.keepAlive, 'keepAlive', 30_000),
    tls: parseTls(options.tls),
  }
  if (config.distribution === 'rendezvous') {
    const weighted = config.servers.find((server) => server.weight !== 1)
    if (weighted) {
      throw new InvalidOptionError(
        `server ${weighted.label} has weight ${weighted.weight}, but distribution 'rendezvous' (pymemcache's placement) has no weights; remove the weight or use distribution 'ketama'`,
      )
    }
  }
  const memory = config.servers.filter((server) => server.memory).length
  if (memory > 0 && memory !== config.servers.length) {
    throw new InvalidOptionError('memory:// servers cannot be mixed with network servers')
  }
  if (config.protocol === 'binary' && config.tls) {
    throw new InvalidOptionError(
      "protocol 'binary' goes through memjs, which has no TLS; use 'meta' or 'classic' with tls",
    )
  }
  return Object.freeze(config)
}

function parseSerializer(input: ClientOptions['serializer']): Serializer {
  if (input === undefined || input === 'pymemcache') return defaultSerializer
  if (input === 'json') return jsonSerializer
  if (
    typeof input !== 'object' ||
    input === null ||
    typeof input.serialize !== 'function' ||
    typeof input.deserialize !== 'function'
  ) {
    throw new InvalidOptionError(
      `\`serializer\` must be 'pymemcache', 'json' or an object with serialize(value) and deserialize(data, flags) methods; got ${describe(input)}`,
    )
  }
  checkSerializer(input, 'the serializer')
  return input
}

function parseAuth(input: ClientOptions['auth'], protocol: ClientConfig['protocol']): ClientConfig['auth'] {
  if (input === undefined) return undefined
  if (
    typeof input !== 'object' ||
    input === null ||
    typeof input.username !== 'string' ||
    typeof input.password !== 'string' ||
    input.username === ''
  ) {
    throw new InvalidOptionError('auth must be { username: string, password: string }')
  }
  if (/\s/.test(input.username)) throw new InvalidOptionError('auth.username may not contain whitespace')
  if (protocol !== 'binary' && /\s/.test(input.password)) {
    // memcached -Y reads "username password" and splits at the space
    throw new InvalidOptionError(
      "memcached's ASCII authentication cannot carry a password containing whitespace",
    )
  }
  return Object.freeze({ username: input.username, password: input.password })
}

function parseTls(input: ClientOptions['tls']): TlsOptions | undefined {
  if (input === undefined || input === false) return undefined
  if (input === true) return {}
  if (typeof input === 'object' && input !== null) return { ...input }
  throw new InvalidOptionError('tls must be a boolean or Node tls.connect options')
}

function keyPrefix(value: unknown): string {
  if (value === undefined) return ''
  if (typeof value !== 'string') throw new InvalidOptionError('`keyPrefix` must be a string')
  // The prefix becomes part of every key: the same rules apply, and it must leave room.
  if ([...value].some((c) => c.charCodeAt(0) <= 0x20 || c.charCodeAt(0) === 0x7f)) {
    throw new InvalidOptionError('`keyPrefix` may not contain whitespace or control characters')
  }
  if (Buffer.byteLength(value) > 200) throw new InvalidOptionError('`keyPrefix` must be at most 200 bytes')
  return value
}

/** A duration option in milliseconds (a number, or a string with a unit); more than 0. */
function positive(value: unknown, name: string, fallback: number): number {
  const ms = milliseconds(value, name, fallback)
  if (ms <= 0) {
    throw new InvalidOptionError(`\`${name}\` must be more than 0 milliseconds; got ${String(value)}`)
  }
  if (typeof value === 'number') warnImplausible(name, ms)
  return ms
}

/**
 * Durations that look like seconds written where memkit takes milliseconds (pymemcache's
 * `dead_timeout=60`, `timeout=1`): below these a number is far too small to be meant.
 */
const PLAUSIBLE_MS: Readonly<Record<string, number>> = { deadTimeout: 100, timeout: 10, connectTimeout: 10 }
const warned = new Set<string>()

function warnImplausible(name: string, ms: number): void {
  const least = PLAUSIBLE_MS[name]
  if (least === undefined || ms >= least || warned.has(name)) return
  warned.add(name)
  process.emitWarning(
    `\`${name}: ${ms}\` is ${ms} milliseconds. memkit's durations are milliseconds (pymemcache's are seconds): for ${ms} seconds write ${ms * 1000} or '${ms}s'.`,
    { type: 'MemkitWarning', code: `MEMKIT_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}_UNIT` },
  )
}
