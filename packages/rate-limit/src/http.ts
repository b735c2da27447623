// The request pipeline both adapters share, so Express and Fastify make the same decisions and
// send the same status, headers and body. It sees the request only through the functions the
// user passes and the IP the adapter resolves; it never imports a framework.
import { type ServerResponse, STATUS_CODES } from 'node:http'
import { InvalidArgumentError } from '@memkit/client'
import type { CircuitBreaker } from './breaker.js'
import { type HeaderField, headerFields } from './headers.js'
import type { HttpConfig, MaybePromise } from './http-options.js'
import { type RateLimitInfo, toInfo } from './info.js'
import { IpKeys } from './ip.js'
import { RateLimiter, type RateLimitResult } from './limiter.js'
import { type AddressSource, Validations } from './validations.js'

export const DEFAULT_MESSAGE = 'Too many requests, please try again later.'
const UNAVAILABLE_MESSAGE = 'The rate limiter is unavailable, please try again later.'
/** The content type of the limiter's own JSON bodies, on both frameworks. */
export const JSON_TYPE = 'application/json; charset=utf-8'

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
  /** The set-up checks; one Fastify plugin registration shares them between its limiters. */
  readonly validations: Validations
  readonly #address: AddressSource<Req>
  readonly #ipKeys: IpKeys
  readonly #countedName: string
  /** Only the skip options take requests back: otherwise no result is remembered for undo(). */
  readonly #undoable: boolean

  constructor(
    config: HttpConfig<Req>,
    address: AddressSource<Req>,
    shared?: { breaker?: CircuitBreaker | undefined; validations?: Validations | undefined },
  ) {
    this.config = config
    this.#address = address
    this.#ipKeys = new IpKeys(config.ipv6Subnet)
    this.limiter = new RateLimiter(
      {},
      { config: config.limiter, breaker: shared?.breaker, dynamicLimit: typeof config.limit === 'function' },
    )
    this.validations = shared?.validations ?? new Validations(config.validate)
    // Both parts are the user's: joined so that no characters in either can make two pairs alike.
    this.#countedName = JSON.stringify([config.limiter.prefix, config.limiter.name])
    this.#undoable = config.skipFailedRequests || config.skipSuccessfulRequests
  }

  /** Counts the request and decides; undefined when `skip` says so. Rejects on a user callback's error. */
  run(req: Req): Promise<HttpDecision | undefined> {
    // Written without async/await so the common case (no skip, sync options) costs no extra ticks.
    try {
      const skip = this.config.skip
      if (skip === undefined) return this.#keyed(req)
      const skipped = skip(req)
      if (isThenable(skipped)) return skipped.then((yes) => (yes ? undefined : this.#keyed(req)))
      return skipped ? Promise.resolve(undefined) : this.#keyed(req)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  #keyed(req: Req): Promise<HttpDecision | undefined> {
    const config = this.config
    if (config.keyGenerator === undefined) {
      this.validations.clientAddress(req, this.#address)
      return this.#count(req, this.#ipKeys.key(this.#address.ip(req) ?? ''))
    }
    const generated = config.keyGenerator(req)
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
    return this.limiter
      .consume(key, { limit, cost, undoable: this.#undoable })
      .then((result) => this.#decide(req, result))
  }

  #decide(req: Req, result: RateLimitResult): HttpDecision {
    const config = this.config
    const info = toInfo(result)
    const headers = headerFields(config.headers, result, req, info, Date.now())
    if (result.limitReached && config.onLimitReached !== undefined)
      this.#notify(config.onLimitReached, req, info)
    if (!result.allowed && result.source !== 'fail-closed' && config.onBlocked !== undefined) {
      this.#notify(config.onBlocked, req, info)
    }
    return { result, info, headers }
  }

  /**
   * The default status and JSON body for a blocked request (503 when memcached failed under
   * `deny`); a promise only when `message` is a function.
   */
  blockedResponse(req: Req, decision: HttpDecision): BlockedResponse | Promise<BlockedResponse> {
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
    const configured = this.config.message
    // Without a message function the answer is ready at once: no promise per refused request.
    if (typeof configured !== 'function') return this.#blockedBody(result, configured ?? DEFAULT_MESSAGE)
    return Promise.resolve(configured(req, info)).then((message) => this.#blockedBody(result, message))
  }

  #blockedBody(result: RateLimitResult, message: string | object): BlockedResponse {
    const statusCode = this.config.statusCode
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
    if (twice) this.validations.doubleCount(this.config.limiter.name)
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
