// The options both adapters share, validated once into a frozen config.
import { InvalidOptionError } from '@memkit/client'
import { parseDuration } from './duration.js'
import { HEADER_OPTION_NAMES, type HeaderConfig, type HeaderOptions, parseHeaderOptions } from './headers.js'
import type { RateLimitInfo } from './info.js'
import {
  boolean,
  count,
  integer,
  LIMITER_OPTION_NAMES,
  type LimiterConfig,
  type LimiterOptions,
  optionalFunction,
  parseLimiterOptions,
} from './options.js'
import { parseValidate, type ValidateOption, type ValidationCode } from './validations.js'

export type MaybePromise<T> = T | Promise<T>

/** Options both adapters take. `Req` is the framework's request. */
export interface HttpRateLimitOptions<Req> extends Omit<LimiterOptions, 'limit'>, HeaderOptions<Req> {
  /** Requests (cost units) per window and key: a number or a function of the request. Default `100`. */
  limit?: number | ((req: Req) => MaybePromise<number>)
  /** Units each request takes: a number or a function of the request. Default `1`. */
  cost?: number | ((req: Req) => MaybePromise<number>)
  /** The key to count under. Default: the client IP as the framework resolves it (trust proxy honoured), IPv6 grouped by `ipv6Subnet`. */
  keyGenerator?: (req: Req) => MaybePromise<string | number>
  /** Prefix length IPv6 clients are grouped by in the default key, or `false` for one key per address. Default `56`. */
  ipv6Subnet?: number | false
  /** Requests for which this returns true are not counted and get no headers. */
  skip?: (req: Req) => MaybePromise<boolean>
  /** Take back requests that fail (status >= 400 by default, or the connection closed before the response ended). Default `false`. */
  skipFailedRequests?: boolean
  /** Take back requests that succeed (status < 400 by default). Default `false`. */
  skipSuccessfulRequests?: boolean
  /** Status of a blocked response. Default `429`. */
  statusCode?: number
  /** The blocked response's message (a string goes into the default JSON body; an object or array replaces the body). */
  message?: string | object | ((req: Req, info: RateLimitInfo) => MaybePromise<string | object>)
  /** Called once per key and window, on the request that takes the key over its limit. */
  onLimitReached?: (req: Req, info: RateLimitInfo) => unknown
  /** Called on every request refused for being over the limit. */
  onBlocked?: (req: Req, info: RateLimitInfo) => unknown
  /**
   * The set-up checks made on live requests, each a process warning with a stable code, once:
   * `true` (default) runs all, `false` none, `{ <code>: false }` turns one off. See validations.ts.
   */
  validate?: ValidateOption
}

export interface HttpConfig<Req> {
  readonly limiter: LimiterConfig
  readonly limit: number | ((req: Req) => MaybePromise<number>)
  readonly cost: number | ((req: Req) => MaybePromise<number>)
  readonly keyGenerator: ((req: Req) => MaybePromise<string | number>) | undefined
  readonly ipv6Subnet: number | false
  readonly skip: ((req: Req) => MaybePromise<boolean>) | undefined
  readonly skipFailedRequests: boolean
  readonly skipSuccessfulRequests: boolean
  readonly headers: HeaderConfig<Req>
  readonly statusCode: number
  readonly message: HttpRateLimitOptions<Req>['message']
  readonly onLimitReached: HttpRateLimitOptions<Req>['onLimitReached']
  readonly onBlocked: HttpRateLimitOptions<Req>['onBlocked']
  readonly validate: ReadonlySet<ValidationCode>
}

export const HTTP_OPTION_NAMES: ReadonlySet<string> = new Set([
  ...LIMITER_OPTION_NAMES,
  ...HEADER_OPTION_NAMES,
  'cost',
  'keyGenerator',
  'ipv6Subnet',
  'skip',
  'skipFailedRequests',
  'skipSuccessfulRequests',
  'statusCode',
  'message',
  'onLimitReached',
  'onBlocked',
  'validate',
])

/**
 * Validates the shared options once. `adapterOptions` are the names the adapter handles itself;
 * `namespace` is prepended to the default counter name (Fastify routes count separately).
 */
export function parseHttpOptions<Req>(
  options: HttpRateLimitOptions<Req>,
  adapterOptions: readonly string[] = [],
  namespace = '',
): HttpConfig<Req> {
  if (typeof options !== 'object' || options === null)
    throw new InvalidOptionError('options must be an object')
  const known = new Set([...HTTP_OPTION_NAMES, ...adapterOptions])
  for (const name of Object.keys(options)) {
    if (!known.has(name)) throw new InvalidOptionError(`unknown rate-limit option \`${name}\``)
  }
  const core: Record<string, unknown> = {}
  for (const name of LIMITER_OPTION_NAMES) {
    const value = (options as Record<string, unknown>)[name]
    if (value !== undefined) core[name] = value
  }
  const limit = options.limit === undefined ? 100 : options.limit
  if (typeof limit !== 'function') count(limit, 'limit')
  const cost = options.cost === undefined ? 1 : options.cost
  if (typeof cost !== 'function') count(cost, 'cost')
  core.limit = typeof limit === 'number' ? limit : undefined
  if (options.name === undefined) {
    const algorithm = options.algorithm ?? 'fixed'
    const windowMs = options.windowMs === undefined ? 60_000 : parseDuration(options.windowMs, 'windowMs')
    core.name = `${namespace}${algorithm}:${windowMs}:${typeof limit === 'number' ? limit : 'dynamic'}`
  }
  const limiter = parseLimiterOptions(core as LimiterOptions)

  const ipv6Subnet =
    options.ipv6Subnet === false ? false : integer(options.ipv6Subnet, 'ipv6Subnet', 56, 1, 128)
  const message = options.message
  if (
    message !== undefined &&
    typeof message !== 'string' &&
    typeof message !== 'function' &&
    (typeof message !== 'object' || message === null)
  ) {
    throw new InvalidOptionError('`message` must be a string, an object or a function')
  }
  return Object.freeze({
    limiter,
    limit,
    cost,
    keyGenerator: optionalFunction<HttpConfig<Req>['keyGenerator']>(options.keyGenerator, 'keyGenerator'),
    ipv6Subnet,
    skip: optionalFunction<HttpConfig<Req>['skip']>(options.skip, 'skip'),
    skipFailedRequests: boolean(options.skipFailedRequests, 'skipFailedRequests', false),
    skipSuccessfulRequests: boolean(options.skipSuccessfulRequests, 'skipSuccessfulRequests', false),
    headers: parseHeaderOptions(options, limiter.windowMs),
    statusCode: integer(options.statusCode, 'statusCode', 429, 400, 599),
    message,
    onLimitReached: optionalFunction<HttpConfig<Req>['onLimitReached']>(
      options.onLimitReached,
      'onLimitReached',
    ),
    onBlocked: optionalFunction<HttpConfig<Req>['onBlocked']>(options.onBlocked, 'onBlocked'),
    validate: parseValidate(options.validate),
  })
}
