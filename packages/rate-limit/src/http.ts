// The request pipeline both adapters share, so Express and Fastify make the same decisions and
// send the same status, headers and body. It sees the request only through the functions the
// user passes and the IP the adapter resolves; it never imports a framework.
import { type ServerResponse, STATUS_CODES } from 'node:http'
import { InvalidArgumentError, InvalidOptionError } from '@memkit/client'
import type { CircuitBreaker } from './breaker.js'
import { parseDuration } from './duration.js'
import {
  defaultPolicyName,
  HEADER_FORMATS,
  type HeaderConfig,
  type HeaderField,
  type HeaderFormat,
  rateLimitHeaders,
} from './headers.js'
import { ipKey } from './ip.js'
import { RateLimiter, type RateLimitResult } from './limiter.js'
import {
  boolean,
  count,
  integer,
  LIMITER_OPTION_NAMES,
  type LimiterConfig,
  type LimiterOptions,
  oneOf,
  optionalFunction,
  parseLimiterOptions,
} from './options.js'

type MaybePromise<T> = T | Promise<T>

/** What a limited request carries (`req.rateLimit`), as express-rate-limit names it. */
export interface RateLimitInfo {
  limit: number
  /** Units counted in the window, this request included. */
  used: number
  remaining: number
  /** When the window resets (a blocked sliding-window request: when it may retry). */
  resetTime: Date
  /** The key the request was counted under (before hashing). */
  key: string
  allowed: boolean
  /** Seconds until `resetTime`, at least 1. */
  retryAfter: number
  /** `'store'`, `'pre-block'`, `'local'`, `'fail-open'` or `'fail-closed'` (see RateLimitResult). */
  source: RateLimitResult['source']
}

/** Options both adapters take. `Req` is the framework's request. */
export interface HttpRateLimitOptions<Req> extends Omit<LimiterOptions, 'limit'> {
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
  /** Header format(s): `'legacy'`, `'draft-6'`, `'draft-7'`, `'draft-8'`, an array of those, or `'none'` / `false`. Default `'legacy'`. */
  headers?: HeaderFormat | 'none' | boolean | readonly HeaderFormat[]
  /** `X-RateLimit-Reset` as Unix epoch seconds (`'epoch'`) or seconds until the reset (`'delta'`). Default `'epoch'`. */
  resetFormat?: 'epoch' | 'delta'
  /** Send `Retry-After` (seconds, at least 1) on blocked responses, whatever `headers` says. Default `true`. */
  retryAfterHeader?: boolean
  /** Status of a blocked response. Default `429`. */
  statusCode?: number
  /** The blocked response's message (a string goes into the default JSON body; an object or array replaces the body). */
  message?: string | object | ((req: Req, info: RateLimitInfo) => MaybePromise<string | object>)
  /** Policy name in draft-8 headers. Default `"<limit>-in-<window>"` (e.g. `"100-in-1min"`), as express-rate-limit. */
  policyName?: string | ((req: Req, info: RateLimitInfo) => string)
  /** Called once per key and window, on the request that takes the key over its limit. */
  onLimitReached?: (req: Req, info: RateLimitInfo) => unknown
  /** Called on every request refused for being over the limit. */
  onBlocked?: (req: Req, info: RateLimitInfo) => unknown
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
  readonly headers: HeaderConfig
  readonly statusCode: number
  readonly message: HttpRateLimitOptions<Req>['message']
  readonly policyName: HttpRateLimitOptions<Req>['policyName']
  readonly onLimitReached: HttpRateLimitOptions<Req>['onLimitReached']
  readonly onBlocked: HttpRateLimitOptions<Req>['onBlocked']
}

export const HTTP_OPTION_NAMES: ReadonlySet<string> = new Set([
  ...LIMITER_OPTION_NAMES,
  'cost',
  'keyGenerator',
  'ipv6Subnet',
  'skip',
  'skipFailedRequests',
  'skipSuccessfulRequests',
  'headers',
  'resetFormat',
  'retryAfterHeader',
  'statusCode',
  'message',
  'policyName',
  'onLimitReached',
  'onBlocked',
])

export const DEFAULT_MESSAGE = 'Too many requests, please try again later.'
const UNAVAILABLE_MESSAGE = 'The rate limiter is unavailable, please try again later.'

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
  const policyName = options.policyName
  if (policyName !== undefined && typeof policyName !== 'string' && typeof policyName !== 'function') {
    throw new InvalidOptionError('`policyName` must be a string or a function')
  }
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
    headers: Object.freeze({
      formats: parseFormats(options.headers),
      resetFormat: oneOf(options.resetFormat, 'resetFormat', ['epoch', 'delta'] as const, 'epoch'),
      retryAfterHeader: boolean(options.retryAfterHeader, 'retryAfterHeader', true),
      windowMs: limiter.windowMs,
    }),
    statusCode: integer(options.statusCode, 'statusCode', 429, 400, 599),
    message,
    policyName,
    onLimitReached: optionalFunction<HttpConfig<Req>['onLimitReached']>(
      options.onLimitReached,
      'onLimitReached',
    ),
    onBlocked: optionalFunction<HttpConfig<Req>['onBlocked']>(options.onBlocked, 'onBlocked'),
  })
}

function parseFormats(value: unknown): readonly HeaderFormat[] {
  if (value === undefined || value === true) return Object.freeze(['legacy'] as HeaderFormat[])
  if (value === false || value === 'none') return Object.freeze([])
  const list = Array.isArray(value) ? value : [value]
  for (const format of list) {
    if (!HEADER_FORMATS.includes(format as HeaderFormat)) {
      throw new InvalidOptionError(
        `\`headers\` must be 'legacy', 'draft-6', 'draft-7', 'draft-8', an array of those, or 'none'; got ${JSON.stringify(format)}`,
      )
    }
  }
  if (new Set(list).size !== list.length) throw new InvalidOptionError('`headers` lists a format twice')
  const drafts = list.filter((format) => format !== 'legacy' && format !== 'draft-8')
  if (drafts.length > 1) {
    throw new InvalidOptionError(
      '`headers` may hold only one of draft-6 and draft-7 (both set RateLimit-Policy)',
    )
  }
  return Object.freeze([...list] as HeaderFormat[])
}

/** A decision ready for an adapter to apply. */
export interface HttpDecision {
  readonly result: RateLimitResult
  readonly info: RateLimitInfo
  readonly headers: readonly HeaderField[]
}

/** A blocked response's default status and JSON body. */
export interface BlockedResponse {
  readonly statusCode: number
  readonly body: string
}

const counters = Symbol('memkit.rateLimit.counted')

/** The shared request pipeline: skip, key, limit and cost, one consume, headers, hooks. */
export class HttpLimiter<Req extends object> {
  readonly config: HttpConfig<Req>
  readonly limiter: RateLimiter
  #warnedDoubleCount = false
  readonly #draft8: boolean
  readonly #countedName: string

  constructor(config: HttpConfig<Req>, breaker?: CircuitBreaker) {
    this.config = config
    this.limiter = new RateLimiter(
      {},
      { config: config.limiter, breaker, dynamicLimit: typeof config.limit === 'function' },
    )
    this.#draft8 = config.headers.formats.includes('draft-8')
    this.#countedName = config.limiter.prefix + config.limiter.name
  }

  /** Counts the request and decides; undefined when `skip` says so. Rejects on a user callback's error. */
  run(req: Req, ip: string | undefined): Promise<HttpDecision | undefined> {
    // Written without async/await so the common case (no skip, sync options) costs no extra ticks.
    try {
      const skip = this.config.skip
      if (skip === undefined) return this.#keyed(req, ip)
      const skipped = skip(req)
      if (isThenable(skipped)) return skipped.then((yes) => (yes ? undefined : this.#keyed(req, ip)))
      return skipped ? Promise.resolve(undefined) : this.#keyed(req, ip)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  #keyed(req: Req, ip: string | undefined): Promise<HttpDecision | undefined> {
    const config = this.config
    const generated =
      config.keyGenerator === undefined ? ipKey(ip ?? '', config.ipv6Subnet) : config.keyGenerator(req)
    if (isThenable(generated)) return generated.then((key) => this.#count(req, key))
    return this.#count(req, generated)
  }

  #count(req: Req, rawKey: string | number): Promise<HttpDecision> {
    if (typeof rawKey !== 'string' && typeof rawKey !== 'number') {
      throw new InvalidArgumentError(
        `rate-limit keyGenerator must return a string or a number; got ${typeof rawKey}`,
      )
    }
    const key = String(rawKey)
    const config = this.config
    const limit = typeof config.limit === 'number' ? config.limit : config.limit(req)
    const cost = typeof config.cost === 'number' ? config.cost : config.cost(req)
    if (isThenable(limit) || isThenable(cost)) {
      return Promise.all([limit, cost]).then(([l, c]) => this.#consume(req, key, l, c))
    }
    return this.#consume(req, key, limit, cost)
  }

  #consume(req: Req, key: string, limit: number, cost: number): Promise<HttpDecision> {
    this.#checkDoubleCount(req)
    return this.limiter.consume(key, { limit, cost }).then((result) => this.#decide(req, result, limit))
  }

  #decide(req: Req, result: RateLimitResult, limit: number): HttpDecision {
    const config = this.config
    const info = toInfo(result)
    let headers: HeaderField[]
    if (result.source === 'fail-open') headers = []
    else if (result.source === 'fail-closed') {
      headers = config.headers.retryAfterHeader
        ? [{ name: 'Retry-After', value: String(result.retryAfter), append: false }]
        : []
    } else {
      const name = this.#draft8
        ? config.policyName === undefined
          ? defaultPolicyName(limit, config.limiter.windowMs)
          : typeof config.policyName === 'string'
            ? config.policyName
            : config.policyName(req, info)
        : ''
      headers = rateLimitHeaders(config.headers, result, Date.now(), name)
    }
    if (result.limitReached && config.onLimitReached !== undefined)
      this.#notify(config.onLimitReached, req, info)
    if (!result.allowed && result.source !== 'fail-closed' && config.onBlocked !== undefined) {
      this.#notify(config.onBlocked, req, info)
    }
    return { result, info, headers }
  }

  /** The default status and JSON body for a blocked request (503 when memcached failed under `deny`). */
  async blockedResponse(req: Req, decision: HttpDecision): Promise<BlockedResponse> {
    const { result, info } = decision
    if (result.source === 'fail-closed') {
      return {
        statusCode: 503,
        body: JSON.stringify({
          statusCode: 503,
          error: 'Service Unavailable',
          message: UNAVAILABLE_MESSAGE,
          retryAfter: result.retryAfter,
        }),
      }
    }
    const statusCode = this.config.statusCode
    const configured = this.config.message
    const message =
      typeof configured === 'function' ? await configured(req, info) : (configured ?? DEFAULT_MESSAGE)
    if (typeof message === 'object' && message !== null) return { statusCode, body: JSON.stringify(message) }
    return {
      statusCode,
      body: JSON.stringify({
        statusCode,
        error: STATUS_CODES[statusCode] ?? 'Too Many Requests',
        message: String(message),
        retryAfter: result.retryAfter,
      }),
    }
  }

  /**
   * For skipFailedRequests / skipSuccessfulRequests: once the response ends (or the connection
   * closes before it does), takes the request back if `wasSuccessful` says it should be.
   */
  watch(res: ServerResponse, result: RateLimitResult, wasSuccessful: () => MaybePromise<boolean>): void {
    const { skipFailedRequests, skipSuccessfulRequests } = this.config
    if (!(skipFailedRequests || skipSuccessfulRequests) || !result.allowed) return
    let done = false
    const settle = (finished: boolean) => {
      if (done) return
      done = true
      if (!finished) {
        if (skipFailedRequests) void this.limiter.undo(result)
        return
      }
      Promise.resolve()
        .then(wasSuccessful)
        .then(
          (success) => {
            if (success ? skipSuccessfulRequests : skipFailedRequests) return this.limiter.undo(result)
          },
          (error: unknown) => this.#reportHook(error),
        )
    }
    res.once('finish', () => settle(true))
    res.once('close', () => settle(res.writableFinished))
  }

  #checkDoubleCount(req: Req): void {
    // The names of the limiters that counted this request: a string for the usual one, a Set
    // only when several limiters apply.
    const target = req as Record<symbol, string | Set<string> | undefined>
    const name = this.#countedName
    const seen = target[counters]
    if (seen === undefined) {
      target[counters] = name
      return
    }
    const twice = typeof seen === 'string' ? seen === name : seen.has(name)
    if (twice && !this.#warnedDoubleCount) {
      this.#warnedDoubleCount = true
      process.emitWarning(
        `the rate limiter '${this.config.limiter.name}' counted one request twice: it is mounted twice, or two limiters share a name (give each its own \`name\`)`,
        { code: 'MEMKIT_RATE_LIMIT_DOUBLE_COUNT' },
      )
    }
    if (typeof seen === 'string') target[counters] = new Set([seen, name])
    else seen.add(name)
  }

  #notify(hook: (req: Req, info: RateLimitInfo) => unknown, req: Req, info: RateLimitInfo): void {
    // Hooks observe; a failing hook must neither change the response nor crash the process.
    try {
      const returned = hook(req, info)
      if (returned instanceof Promise) returned.catch((error: unknown) => this.#reportHook(error))
    } catch (error) {
      this.#reportHook(error)
    }
  }

  #reportHook(error: unknown): void {
    const failure = error instanceof Error ? error : new Error(String(error))
    const onError = this.config.limiter.onError
    try {
      if (onError !== undefined) onError(failure)
      else
        process.emitWarning(`a rate-limit callback failed: ${failure.message}`, {
          code: 'MEMKIT_RATE_LIMIT_CALLBACK',
        })
    } catch {
      // The error reporter itself failed; there is nowhere left to report to.
    }
  }
}

function isThenable<T>(value: T | Promise<T>): value is Promise<T> {
  return (
    typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function'
  )
}

export function toInfo(result: RateLimitResult): RateLimitInfo {
  return {
    limit: result.limit,
    used: result.used,
    remaining: result.remaining,
    resetTime: new Date(result.resetTime),
    key: result.key,
    allowed: result.allowed,
    retryAfter: result.retryAfter,
    source: result.source,
  }
}
