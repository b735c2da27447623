import { InvalidOptionError, type MemkitClient } from '@memkit/client'
import { resolveClient } from '@memkit/client/internal'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { CircuitBreaker } from './breaker.js'
import { type HeaderTarget, writeHeaders } from './headers.js'
import { HttpLimiter, JSON_TYPE } from './http.js'
import { type HttpRateLimitOptions, parseHttpOptions } from './http-options.js'
import type { RateLimitInfo } from './info.js'
import type { RateLimitMetrics } from './metrics.js'
import { boolean, oneOf, optionalFunction } from './options.js'
import type { AddressSource } from './validations.js'

export type { RateLimitInfo } from './info.js'
export type { RateLimitMetrics } from './metrics.js'

export type RateLimitHook = 'onRequest' | 'preParsing' | 'preValidation' | 'preHandler'

/** Options per route (`config.rateLimit`) or for `fastify.rateLimitHook()`: override the plugin's. */
export interface FastifyRateLimitRouteOptions
  extends Omit<HttpRateLimitOptions<FastifyRequest>, 'client' | 'servers'> {
  /** Alias of `limit`, as @fastify/rate-limit names it. */
  max?: number | ((req: FastifyRequest) => number | Promise<number>)
  /** Alias of `windowMs`, as @fastify/rate-limit names it (milliseconds or a string such as `'1 minute'`). */
  timeWindow?: number | string
  /** The lifecycle hook the limiter runs in. Default `'onRequest'`. */
  hook?: RateLimitHook
  /**
   * Sends the blocked response instead of the default JSON body (status and headers are set);
   * may return the payload instead of sending it. Not called for the 503 of `onStoreError: 'deny'`.
   */
  handler?: (request: FastifyRequest, reply: FastifyReply, info: RateLimitInfo) => unknown
  /** Whether a finished request counts as successful, for the skip options. Default: status < 400. */
  requestWasSuccessful?: (request: FastifyRequest, reply: FastifyReply) => boolean | Promise<boolean>
  /**
   * The HEAD route Fastify adds for a GET route (`exposeHeadRoutes`) counts against the GET
   * route's limit, with one counter, instead of getting a limit of its own (a client would then
   * get twice the limit). Default `true`.
   */
  shareHeadWithGet?: boolean
}

export interface FastifyRateLimitOptions extends FastifyRateLimitRouteOptions {
  client?: MemkitClient
  servers?: HttpRateLimitOptions<FastifyRequest>['servers']
  /** Limit every route (`true`), or only routes with `config.rateLimit` (`false`). Default `true`. */
  global?: boolean
}

type Hook = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Per-route rate limit: options overriding the plugin's, or `false` to exempt the route. */
    rateLimit?: FastifyRateLimitRouteOptions | false
  }
  interface FastifyInstance {
    /** Snapshots of every memkit rate limiter registered on this instance (global and per route). */
    rateLimitMetrics(): RateLimitMetrics[]
    /**
     * Forgets a key's counts in every memkit rate limiter of this instance (global and per
     * route), e.g. after a solved captcha; other processes see it within `preBlockRecheckMs`.
     */
    rateLimitResetKey(key: string): Promise<void>
    /** A hook limiting with the plugin's options overridden by `options`, e.g. for setNotFoundHandler. */
    rateLimitHook(
      options?: FastifyRateLimitRouteOptions,
    ): (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>
  }
  interface FastifyRequest {
    /** Set by @memkit/rate-limit on limited requests. */
    rateLimit: RateLimitInfo | null
  }
}

const ADAPTER_OPTIONS = [
  'max',
  'timeWindow',
  'hook',
  'handler',
  'requestWasSuccessful',
  'shareHeadWithGet',
  'global',
] as const
const HOOKS = ['onRequest', 'preParsing', 'preValidation', 'preHandler'] as const
const kRegistry = Symbol('memkit.rateLimit.registry')

/** @fastify/rate-limit's names (`max`, `timeWindow`) folded into the canonical ones. */
function canonical(
  options: FastifyRateLimitRouteOptions,
  where: string,
): HttpRateLimitOptions<FastifyRequest> {
  const {
    max,
    timeWindow,
    hook: _hook,
    handler: _handler,
    requestWasSuccessful: _rws,
    shareHeadWithGet: _head,
    ...rest
  } = options
  const out = { ...rest } as HttpRateLimitOptions<FastifyRequest> & { global?: unknown }
  delete out.global
  if (max !== undefined) {
    if (rest.limit !== undefined)
      throw new InvalidOptionError(`${where}: give \`limit\` or \`max\`, not both`)
    out.limit = max
  }
  if (timeWindow !== undefined) {
    if (rest.windowMs !== undefined) {
      throw new InvalidOptionError(`${where}: give \`windowMs\` or \`timeWindow\`, not both`)
    }
    if (typeof timeWindow === 'function') {
      throw new InvalidOptionError(
        `${where}: \`timeWindow\` must be fixed (milliseconds or a string): windows are part of the counter keys`,
      )
    }
    out.windowMs = timeWindow
  }
  return out
}

interface AdapterParts {
  hook: RateLimitHook
  handler: FastifyRateLimitRouteOptions['handler']
  wasSuccessful: NonNullable<FastifyRateLimitRouteOptions['requestWasSuccessful']>
  shareHeadWithGet: boolean
}

function adapterParts(options: FastifyRateLimitRouteOptions, fallback?: AdapterParts): AdapterParts {
  return {
    hook: oneOf(options.hook, 'hook', HOOKS, fallback?.hook ?? 'onRequest'),
    handler: optionalFunction<AdapterParts['handler']>(options.handler, 'handler') ?? fallback?.handler,
    wasSuccessful:
      optionalFunction<AdapterParts['wasSuccessful']>(options.requestWasSuccessful, 'requestWasSuccessful') ??
      fallback?.wasSuccessful ??
      ((_request: FastifyRequest, reply: FastifyReply) => reply.statusCode < 400),
    shareHeadWithGet: boolean(
      options.shareHeadWithGet,
      'shareHeadWithGet',
      fallback?.shareHeadWithGet ?? true,
    ),
  }
}

function makeHook(http: HttpLimiter<FastifyRequest>, parts: AdapterParts): Hook {
  const { handler, wasSuccessful } = parts
  return async function memkitRateLimit(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const decision = await http.run(request)
    if (decision === undefined) return undefined
    request.rateLimit = decision.info
    writeHeaders(headerTarget(reply), decision.headers)
    const { result, info } = decision
    if (result.allowed) {
      http.watch(reply.raw, result, () => wasSuccessful(request, reply))
      return undefined
    }
    if (handler !== undefined && result.source !== 'fail-closed') {
      reply.code(http.config.statusCode)
      const payload = await handler(request, reply, info)
      if (!reply.sent) await reply.send(payload)
      return undefined
    }
    const blocked = http.blockedResponse(request, decision)
    const { statusCode, body } = blocked instanceof Promise ? await blocked : blocked
    reply.code(statusCode).header('content-type', JSON_TYPE)
    await reply.send(body)
    return undefined
  }
}

/** Fastify keeps reply headers itself (not on the raw response): write them through the reply. */
function headerTarget(reply: FastifyReply): HeaderTarget {
  return { getHeader: (name) => reply.getHeader(name), setHeader: (name, value) => reply.header(name, value) }
}

/**
 * Fastify's view of the client address: `request.ip` honours the instance's `trustProxy`.
 * Fastify keeps that setting only in its options object (no public accessor); it is looked up
 * once, and when it cannot be found the trust-proxy checks are skipped (`null`).
 */
function fastifyAddress(fastify: FastifyInstance): AddressSource<FastifyRequest> {
  let trustProxy: unknown = null
  for (let o: object | null = fastify; o !== null; o = Object.getPrototypeOf(o)) {
    const symbol = Object.getOwnPropertySymbols(o).find((s) => s.description === 'fastify.options')
    if (symbol !== undefined) {
      const options = (o as Record<symbol, unknown>)[symbol]
      if (typeof options === 'object' && options !== null)
        trustProxy = (options as { trustProxy?: unknown }).trustProxy
      break
    }
  }
  // Fastify 5 trusts nothing when given a hop count (it cannot validate the nearest peer).
  if (typeof trustProxy === 'number') trustProxy = false
  return {
    ip: (request) => request.ip,
    trustProxy: () => trustProxy,
    forwardedFor: (request) => request.headers['x-forwarded-for'] !== undefined,
  }
}

/** Adds `hook` to a route's own hooks of that kind. */
function attach(routeOptions: Record<string, unknown>, name: RateLimitHook, hook: Hook): void {
  // preParsing hooks receive the payload stream and may replace it: pass it through untouched.
  const fn =
    name === 'preParsing'
      ? async (request: FastifyRequest, reply: FastifyReply, _payload: unknown) => {
          await hook(request, reply)
          return undefined
        }
      : hook
  const existing = routeOptions[name]
  if (Array.isArray(existing)) routeOptions[name] = [...existing, fn]
  else if (typeof existing === 'function') routeOptions[name] = [existing, fn]
  else routeOptions[name] = [fn]
}

const plugin: FastifyPluginAsync<FastifyRateLimitOptions> = async (fastify, options) => {
  if (typeof options !== 'object' || options === null)
    throw new InvalidOptionError('options must be an object')
  const { client: givenClient, servers, global: globalOption, ...routeLevel } = options
  if (givenClient !== undefined && servers !== undefined) {
    throw new InvalidOptionError('give either `client` or `servers`, not both')
  }
  const global = globalOption === undefined ? true : globalOption
  if (typeof global !== 'boolean') throw new InvalidOptionError('`global` must be true or false')
  // One client for the global and every per-route limiter; closed with Fastify if it is ours.
  const resolved =
    givenClient === undefined && servers === undefined
      ? undefined
      : resolveClient({ client: givenClient, servers }, 'fastify rate limit')
  const client = resolved?.client
  if (resolved?.owned) fastify.addHook('onClose', () => resolved.client.close())

  const baseOptions = canonical(routeLevel, 'rate limit options')
  const baseParts = adapterParts(routeLevel)
  const address = fastifyAddress(fastify)
  const globalHttp = new HttpLimiter<FastifyRequest>(
    parseHttpOptions({ ...baseOptions, client }, ADAPTER_OPTIONS),
    address,
  )
  const breaker: CircuitBreaker | undefined = globalHttp.limiter.breaker
  const validations = globalHttp.validations
  const globalHook = makeHook(globalHttp, baseParts)

  const instance = fastify as FastifyInstance & { [kRegistry]?: HttpLimiter<FastifyRequest>[] }
  let registry = instance[kRegistry]
  if (registry === undefined) {
    registry = []
    const limiters = registry
    fastify.decorate(kRegistry, limiters)
    fastify.decorate('rateLimitMetrics', () => limiters.map((http) => http.limiter.metrics()))
    fastify.decorate('rateLimitResetKey', async (key: string) => {
      await Promise.all(limiters.map((http) => http.limiter.reset(key)))
    })
  }
  registry.push(globalHttp)
  const limiters = registry

  const routeLimiter = (overrides: FastifyRateLimitRouteOptions, namespace: string) => {
    // Route values (including `max` / `timeWindow`) replace the plugin's.
    const merged = { ...baseOptions, ...canonical(overrides, `config.rateLimit of ${namespace}`) }
    // Route limiters share the plugin's breaker and checks unless the route sets its own.
    const http = new HttpLimiter<FastifyRequest>(
      parseHttpOptions({ ...merged, client }, ADAPTER_OPTIONS, namespace),
      address,
      {
        breaker: overrides.breaker === undefined ? breaker : undefined,
        validations: overrides.validate === undefined ? validations : undefined,
      },
    )
    limiters.push(http)
    return { http, parts: adapterParts(overrides, baseParts) }
  }

  if (!fastify.hasDecorator('rateLimitHook')) {
    fastify.decorate('rateLimitHook', (overrides: FastifyRateLimitRouteOptions = {}) => {
      if (Object.keys(overrides).length === 0) return globalHook
      const { http, parts } = routeLimiter(overrides, 'hook:')
      return makeHook(http, parts)
    })
  }
  if (!fastify.hasRequestDecorator('rateLimit')) fastify.decorateRequest('rateLimit', null)

  // GET routes with a config.rateLimit of their own, by that config object and url, so that
  // the HEAD route Fastify derives from one can share its limiter.
  const getRoutes = new WeakMap<object, Map<string, { parts: AdapterParts; hook: Hook }>>()

  fastify.addHook('onRoute', (routeOptions) => {
    const config = routeOptions.config?.rateLimit
    if (config === false) return
    const route = routeOptions as unknown as Record<string, unknown>
    if (config === undefined || config === null) {
      if (global) attach(route, baseParts.hook, globalHook)
      return
    }
    if (typeof config !== 'object') {
      throw new InvalidOptionError(
        `config.rateLimit of ${routeOptions.url} must be an options object or false; got ${typeof config}`,
      )
    }
    const methods = Array.isArray(routeOptions.method) ? routeOptions.method : [routeOptions.method]
    // The HEAD route Fastify adds for a GET route carries the GET route's very config object.
    const head = methods.length === 1 && methods[0] === 'HEAD'
    const shared = head ? getRoutes.get(config)?.get(routeOptions.url) : undefined
    if (shared?.parts.shareHeadWithGet) {
      attach(route, shared.parts.hook, shared.hook)
      return
    }
    const { http, parts } = routeLimiter(config, `${methods.join(',')}:${routeOptions.url}:`)
    const hook = makeHook(http, parts)
    attach(route, parts.hook, hook)
    if (methods.includes('GET')) {
      const byUrl = getRoutes.get(config) ?? new Map<string, { parts: AdapterParts; hook: Hook }>()
      byUrl.set(routeOptions.url, { parts, hook })
      getRoutes.set(config, byUrl)
    }
  })
}

/**
 * Fastify plugin: `await app.register(fastifyRateLimit, { client, limit: 100, windowMs: '1 minute' })`.
 * Routes declared after it are limited; `config: { rateLimit: {...} }` overrides per route (with
 * its own counters), `config: { rateLimit: false }` exempts one.
 */
export const fastifyRateLimit = fp(plugin, { fastify: '5.x', name: '@memkit/rate-limit' })
export default fastifyRateLimit
