import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { type ClientOptions, InvalidOptionError, type MemkitClient } from '@memkit/client'
import {
  boolean,
  checkClientOption,
  optionalFunction as fn,
  integer,
  oneOf,
  seconds,
} from '@memkit/client/internal'
import type { RouteSettings } from './types.js'

export type CompressionAlgorithm = 'gzip' | 'br'

/** Settings a single route may override (Express: per middleware; Fastify: `config.cache`). */
export interface RouteCacheOptions<Req = unknown> {
  /**
   * Seconds a response without explicit freshness (no `s-maxage`, `max-age` or `Expires`) stays
   * fresh. Applies only to statuses that are cacheable by default (200, 203, 204, 300, 301,
   * 308, 404, 405, 410, 414). Explicit response freshness always wins. Default: none (only
   * responses with explicit freshness are stored).
   */
  ttl?: number
  /** Tags recorded with every entry of the route, for `invalidateTag()`. Default: none. */
  tags?: readonly string[] | ((request: Req) => readonly string[])
  /**
   * Requests carrying `Authorization` or `Cookie` bypass the cache unless the route declares
   * them shareable (`true` for both, or one of them). A response to an `Authorization` request
   * is stored only if it says `public`, `s-maxage` or `must-revalidate` (RFC 9111 §3.5).
   * Default `false`.
   */
  shareable?: boolean | { authorization?: boolean; cookie?: boolean }
  /** Seconds a stale entry may be served while one background refresh runs, when the response
   * itself has no `stale-while-revalidate`. Default `0`. */
  staleWhileRevalidate?: number
  /** Seconds a stale entry may be served when the handler throws or answers 5xx, when the response
   * itself has no `stale-if-error`. Default `0`. */
  staleIfError?: number
  /** Store 5xx responses that carry explicit freshness. Default `false`. */
  cacheServerErrors?: boolean
  /**
   * Heuristic freshness (RFC 9111 §4.2.2) for responses without explicit freshness that have a
   * `Last-Modified` (statuses cacheable by default, or `public`), when the route sets no `ttl`:
   * `fraction` (default `0.1`) of the time since Last-Modified, at most `max` seconds (default
   * `86400`). `true` for the defaults. Default `false`: only explicit freshness (or `ttl`) counts.
   */
  heuristic?: boolean | { fraction?: number; max?: number }
}

export interface ResponseCacheOptions<Req = unknown> extends RouteCacheOptions<Req> {
  /** The shared memcached client. Either `client` or `servers` is required. */
  client?: MemkitClient
  /** Servers for a client the cache creates (and closes) itself. */
  servers?: ClientOptions['servers']
  /**
   * Prefix of every key the cache writes: its namespace in memcached. Default `'rc:'` plus eight
   * characters derived from the application's name (the `name` of the package.json nearest to
   * the main script), so two applications sharing one memcached never serve each other's
   * responses. Set it explicitly to share entries between programs (a worker that invalidates,
   * two deployments of one app under different names), or when the app has no package.json.
   */
  keyPrefix?: string
  /**
   * Leave the port out of the key: `Host: shop.example:8080` and `Host: shop.example` share
   * entries. Only for apps that answer the same on every port. Default `false`.
   */
  ignorePort?: boolean
  /**
   * Targeted cache-control fields this cache obeys (RFC 9213), highest priority first: the first
   * one with a valid value replaces `Cache-Control` and `Expires` for this cache (they still
   * reach the client, as the targeted fields do). Default `['CDN-Cache-Control']`; `[]` to obey
   * `Cache-Control` alone.
   */
  targetedCacheControl?: readonly string[]
  /**
   * Hosts whose responses may be cached, checked against the host the handler sees (`req.hostname`
   * / `request.hostname`): `'shop.example'` (any port), `'shop.example:8080'` (that port only) or
   * `'*.shop.example'`; others bypass. Default: any host (scheme, host and port are part of the key).
   */
  hosts?: readonly string[]
  /** A request header that skips the cache, honoured only when its value equals `secret`. Default: none. */
  bypass?: { header?: string; secret: string }
  /** Bodies larger than one memcached item: split into chunks (`'chunk'`) or not stored (`'skip'`). Default `'chunk'`. */
  largeBodies?: 'chunk' | 'skip'
  /** Largest body stored, in bytes; larger responses are passed through and counted. Default 10 MiB. */
  maxBodySize?: number
  /** Store bodies compressed (`'gzip'` or `'br'`, or `{ algorithm, threshold }`). Default `false`. */
  compression?: false | CompressionAlgorithm | { algorithm: CompressionAlgorithm; threshold?: number }
  /** Seconds a stale entry that has a validator is kept for revalidation. Default `300`. */
  keepStale?: number
  /** Upper bound of any entry's memcached TTL, seconds. Default 30 days. */
  maxTtl?: number
  /** Seconds the cross-process fill lease lives if its holder dies. Default `10`. */
  lockTtl?: number
  /** Milliseconds a request waits for another process (or request) to fill the entry. Default `3000`. */
  lockWait?: number
  /** Milliseconds between checks while waiting. Default `50`. */
  lockPollInterval?: number
  /** Add `X-Cache` and `Cache-Status` to responses. Default `true`. */
  statusHeaders?: boolean
  /** The cache's name in `Cache-Status`. Default `'memkit'`. */
  cacheStatusName?: string
  /** Called with every memcached failure the cache absorbed (requests carry on uncached). */
  onError?: (error: Error) => void
}

export interface CacheConfig {
  readonly client: MemkitClient | undefined
  readonly servers: ClientOptions['servers'] | undefined
  readonly keyPrefix: string
  readonly ignorePort: boolean
  readonly targetedCacheControl: readonly string[]
  readonly hosts: readonly string[] | undefined
  readonly bypassHeader: string | undefined
  readonly bypassSecret: string | undefined
  readonly largeBodies: 'chunk' | 'skip'
  readonly maxBodySize: number
  readonly compression: { algorithm: CompressionAlgorithm; threshold: number } | undefined
  readonly keepStale: number
  readonly maxTtl: number
  readonly lockTtl: number
  readonly lockWait: number
  readonly lockPollInterval: number
  readonly statusHeaders: boolean
  readonly cacheStatusName: string
  readonly onError: ((error: Error) => void) | undefined
  readonly route: RouteSettings
}

const ROUTE_KEYS = [
  'ttl',
  'tags',
  'shareable',
  'staleWhileRevalidate',
  'staleIfError',
  'cacheServerErrors',
  'heuristic',
]
const GLOBAL_KEYS = new Set([
  ...ROUTE_KEYS,
  'client',
  'servers',
  'keyPrefix',
  'ignorePort',
  'targetedCacheControl',
  'hosts',
  'bypass',
  'largeBodies',
  'maxBodySize',
  'compression',
  'keepStale',
  'maxTtl',
  'lockTtl',
  'lockWait',
  'lockPollInterval',
  'statusHeaders',
  'cacheStatusName',
  'onError',
])

/** Validates every option once into a frozen config; `extraKeys` are adapter options checked elsewhere. */
export function parseOptions(options: unknown, extraKeys: readonly string[] = []): CacheConfig {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError('response cache options must be an object')
  }
  const o = options as ResponseCacheOptions
  for (const name of Object.keys(o)) {
    if (!GLOBAL_KEYS.has(name) && !extraKeys.includes(name)) {
      throw new InvalidOptionError(`unknown response cache option \`${name}\``)
    }
  }
  if (o.client === undefined && o.servers === undefined) {
    throw new InvalidOptionError('response cache needs `client` (a @memkit/client instance) or `servers`')
  }
  checkClientOption(o, 'response cache')
  const keyPrefix = o.keyPrefix ?? defaultKeyPrefix()
  if (typeof keyPrefix !== 'string' || !/^[\x21-\x7e]*$/.test(keyPrefix) || keyPrefix.length > 64) {
    throw new InvalidOptionError('`keyPrefix` must be a string of at most 64 characters without whitespace')
  }
  let hosts: string[] | undefined
  if (o.hosts !== undefined) {
    if (!Array.isArray(o.hosts) || o.hosts.some((h) => typeof h !== 'string' || h.length === 0)) {
      throw new InvalidOptionError('`hosts` must be an array of host names')
    }
    hosts = o.hosts.map((h) => h.toLowerCase())
  }
  let bypassHeader: string | undefined
  let bypassSecret: string | undefined
  if (o.bypass !== undefined) {
    if (typeof o.bypass !== 'object' || o.bypass === null) {
      throw new InvalidOptionError('`bypass` must be { header?, secret }')
    }
    if (typeof o.bypass.secret !== 'string' || o.bypass.secret.length < 16) {
      throw new InvalidOptionError('`bypass.secret` must be a string of at least 16 characters')
    }
    bypassHeader = (o.bypass.header ?? 'x-cache-bypass').toLowerCase()
    if (!/^[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(bypassHeader)) {
      throw new InvalidOptionError('`bypass.header` must be a header name')
    }
    bypassSecret = o.bypass.secret
  }
  const config: CacheConfig = {
    client: o.client,
    servers: o.servers,
    keyPrefix,
    ignorePort: boolean(o.ignorePort, 'ignorePort', false),
    targetedCacheControl: fieldNames(o.targetedCacheControl, 'targetedCacheControl', ['cdn-cache-control']),
    hosts: hosts ? Object.freeze(hosts) : undefined,
    bypassHeader,
    bypassSecret,
    largeBodies: oneOf(o.largeBodies, 'largeBodies', ['chunk', 'skip'] as const, 'chunk'),
    maxBodySize: integer(o.maxBodySize, 'maxBodySize', 10 * 1024 * 1024, 0, 1024 * 1024 * 1024),
    compression: parseCompression(o.compression),
    keepStale: seconds(o.keepStale, 'keepStale', 300),
    maxTtl: seconds(o.maxTtl, 'maxTtl', 30 * 86400, 1),
    lockTtl: seconds(o.lockTtl, 'lockTtl', 10, 1),
    lockWait: integer(o.lockWait, 'lockWait', 3000, 0, 600_000),
    lockPollInterval: integer(o.lockPollInterval, 'lockPollInterval', 50, 5, 10_000),
    statusHeaders: boolean(o.statusHeaders, 'statusHeaders', true),
    cacheStatusName: cacheStatusName(o.cacheStatusName),
    onError: fn(o.onError, 'onError'),
    route: parseRouteSettings(o),
  }
  return Object.freeze(config)
}

/** Validates route-level settings, falling back to `base` for what the route does not set. */
export function parseRouteSettings(options: unknown, base?: RouteSettings, checkKeys = false): RouteSettings {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError('route cache options must be an object')
  }
  const o = options as RouteCacheOptions
  if (checkKeys) {
    for (const name of Object.keys(o)) {
      if (!ROUTE_KEYS.includes(name)) {
        throw new InvalidOptionError(
          `unknown route cache option \`${name}\` (a route may set ${ROUTE_KEYS.join(', ')})`,
        )
      }
    }
  }
  let shareAuthorization = base?.shareAuthorization ?? false
  let shareCookie = base?.shareCookie ?? false
  if (o.shareable !== undefined) {
    if (typeof o.shareable === 'boolean') {
      shareAuthorization = o.shareable
      shareCookie = o.shareable
    } else if (typeof o.shareable === 'object' && o.shareable !== null) {
      shareAuthorization = boolean(o.shareable.authorization, 'shareable.authorization', false)
      shareCookie = boolean(o.shareable.cookie, 'shareable.cookie', false)
    } else {
      throw new InvalidOptionError('`shareable` must be a boolean or { authorization?, cookie? }')
    }
  }
  let tags = base?.tags
  if (o.tags !== undefined) {
    if (typeof o.tags === 'function') tags = o.tags as RouteSettings['tags']
    else if (Array.isArray(o.tags) && o.tags.every((t) => typeof t === 'string' && t.length > 0)) {
      tags = Object.freeze([...new Set(o.tags as string[])])
    } else throw new InvalidOptionError('`tags` must be an array of non-empty strings or a function')
  }
  let ttl = base?.ttl
  if (o.ttl !== undefined) ttl = seconds(o.ttl, 'ttl', 0) || undefined
  return Object.freeze({
    ttl,
    tags,
    shareAuthorization,
    shareCookie,
    staleWhileRevalidate: seconds(
      o.staleWhileRevalidate,
      'staleWhileRevalidate',
      base?.staleWhileRevalidate ?? 0,
    ),
    staleIfError: seconds(o.staleIfError, 'staleIfError', base?.staleIfError ?? 0),
    cacheServerErrors: boolean(o.cacheServerErrors, 'cacheServerErrors', base?.cacheServerErrors ?? false),
    heuristic: o.heuristic === undefined ? base?.heuristic : parseHeuristic(o.heuristic),
  })
}

function parseHeuristic(input: unknown): RouteSettings['heuristic'] {
  if (input === false) return undefined
  if (input === true) return Object.freeze({ fraction: 0.1, max: 86400 })
  if (typeof input !== 'object' || input === null) {
    throw new InvalidOptionError('`heuristic` must be true, false or { fraction?, max? }')
  }
  const { fraction = 0.1, max = 86400 } = input as { fraction?: unknown; max?: unknown }
  if (typeof fraction !== 'number' || !(fraction > 0 && fraction <= 1)) {
    throw new InvalidOptionError(
      `\`heuristic.fraction\` must be a number above 0 and at most 1; got ${String(fraction)}`,
    )
  }
  return Object.freeze({ fraction, max: seconds(max, 'heuristic.max', 86400, 1) })
}

function fieldNames(value: unknown, name: string, fallback: string[]): readonly string[] {
  if (value === undefined) return Object.freeze(fallback)
  if (
    !Array.isArray(value) ||
    value.some((v) => typeof v !== 'string' || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(v))
  ) {
    throw new InvalidOptionError(`\`${name}\` must be an array of header field names`)
  }
  return Object.freeze(value.map((v: string) => v.toLowerCase()))
}

function parseCompression(input: ResponseCacheOptions['compression']): CacheConfig['compression'] {
  if (input === undefined || input === false) return undefined
  if (input === 'gzip' || input === 'br') return Object.freeze({ algorithm: input, threshold: 1024 })
  if (typeof input === 'object' && input !== null) {
    if (input.algorithm !== 'gzip' && input.algorithm !== 'br') {
      throw new InvalidOptionError("`compression.algorithm` must be 'gzip' or 'br'")
    }
    return Object.freeze({
      algorithm: input.algorithm,
      threshold: integer(input.threshold, 'compression.threshold', 1024, 0, 1024 * 1024 * 1024),
    })
  }
  throw new InvalidOptionError("`compression` must be false, 'gzip', 'br' or { algorithm, threshold }")
}

function cacheStatusName(value: unknown): string {
  if (value === undefined) return 'memkit'
  if (typeof value !== 'string' || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(value)) {
    throw new InvalidOptionError('`cacheStatusName` must be a token (letters, digits, -_.)')
  }
  return value
}

let appPrefix: string | undefined

/** `rc:` plus eight characters naming this application (see `keyPrefix`). */
export function defaultKeyPrefix(): string {
  appPrefix ??= `rc:${createHash('sha256').update(applicationName()).digest('base64url').slice(0, 8)}:`
  return appPrefix
}

/**
 * The `name` of the package.json nearest to the main script (else to the working directory); the
 * directory searched from when there is none. The same for every process of one application.
 */
function applicationName(): string {
  const start = process.argv[1] ? dirname(resolve(process.argv[1])) : process.cwd()
  for (let dir = start; ; dir = dirname(dir)) {
    try {
      const name = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown }).name
      if (typeof name === 'string' && name.length > 0) return `package:${name}`
    } catch {
      // no (readable) package.json here: look further up
    }
    if (dirname(dir) === dir) return `directory:${start}`
  }
}
