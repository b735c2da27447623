// Express adapter: `responseCache(options)` is middleware for the app (`app.use`) or one route;
// `.route(settings)` gives route-level middleware sharing the same cache.
import { InvalidOptionError } from '@memkit/client'
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { headerString, portOf, presetFrom, resolveTags, SAFE_METHODS } from './adapter-helpers.js'
import { type InvalidateOptions, ResponseCache, type Transaction } from './cache.js'
import { capture, send } from './express-capture.js'
import { refreshThrough } from './express-refresh.js'
import type { MetricsSnapshot } from './metrics.js'
import { parseRouteSettings, type ResponseCacheOptions, type RouteCacheOptions } from './options.js'
import type { CacheRequest, RequestHeaders, RouteSettings } from './types.js'

export interface ExpressResponseCacheOptions extends ResponseCacheOptions<Request> {
  /** Metrics label for this middleware. Default: the matched route (`req.baseUrl + req.route.path`). */
  label?: string
}

export interface ExpressRouteCacheOptions extends RouteCacheOptions<Request> {
  label?: string
}

export interface ResponseCacheMiddleware extends RequestHandler {
  /** The framework-free cache behind the middleware. */
  readonly cache: ResponseCache
  /** Per-route hit/miss/stale/bypass counters and hit ratio. */
  metrics(): MetricsSnapshot
  /** Every entry recorded under `tag` misses from the next request on, in every process. */
  invalidateTag(tag: string): Promise<void>
  /** Removes the stored responses of one URL (all variants). */
  invalidate(url: string, options?: InvalidateOptions): Promise<void>
  /** Middleware for one route with its own settings, sharing this cache, its client and its metrics. */
  route(options: ExpressRouteCacheOptions): ResponseCacheMiddleware
  /** Closes the memcached client if the middleware created it from `servers`. */
  close(): Promise<void>
}

const kSeen = Symbol('memkit.responseCache.seen')

type Seen = Request & { [kSeen]?: true }

/**
 * Express middleware: `app.use(responseCache({ client }))` or per route
 * `app.get('/x', responseCache({ client, ttl: 60 }), handler)`.
 */
export function responseCache(options: ExpressResponseCacheOptions): ResponseCacheMiddleware {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError('responseCache() takes an options object')
  }
  const { label, ...rest } = options
  const cache = new ResponseCache(rest as ResponseCacheOptions)
  return build(cache, cache.config.route, label)
}

function build(
  cache: ResponseCache,
  settings: RouteSettings,
  label: string | undefined,
): ResponseCacheMiddleware {
  if (label !== undefined && typeof label !== 'string')
    throw new InvalidOptionError('`label` must be a string')
  const handler = (req: Request, res: Response, next: NextFunction): void => {
    const seen = req as Seen
    // Only the first response-cache layer a request meets handles it.
    if (seen[kSeen]) {
      next()
      return
    }
    seen[kSeen] = true
    let nextCalled = false
    const proceed = (error?: unknown) => {
      if (nextCalled) return
      nextCalled = true
      next(error)
    }
    handle(cache, settings, label, req, res, proceed).catch((error: unknown) => {
      // A fault in the cache itself: the request goes on uncached.
      cache.reportError(error)
      proceed()
    })
  }
  const middleware = handler as ResponseCacheMiddleware
  Object.defineProperty(middleware, 'cache', { value: cache, enumerable: true })
  middleware.metrics = () => cache.metricsSnapshot()
  middleware.invalidateTag = (tag) => cache.invalidateTag(tag)
  middleware.invalidate = (url, opts) => cache.invalidate(url, opts)
  middleware.close = () => cache.close()
  middleware.route = (routeOptions) => {
    if (typeof routeOptions !== 'object' || routeOptions === null) {
      throw new InvalidOptionError('route() takes an options object')
    }
    const { label: routeLabel, ...routeRest } = routeOptions
    return build(cache, parseRouteSettings(routeRest, cache.config.route, true), routeLabel)
  }
  return middleware
}

async function handle(
  cache: ResponseCache,
  settings: RouteSettings,
  label: string | undefined,
  req: Request,
  res: Response,
  proceed: (error?: unknown) => void,
): Promise<void> {
  const creq: CacheRequest = {
    method: req.method.toUpperCase(),
    scheme: req.protocol,
    host: (req.hostname ?? '').toLowerCase(),
    port: portOf(authority(req)),
    url: req.originalUrl,
    headers: req.headers as RequestHeaders,
    route: label ?? routeLabel(req),
    tags: resolveTags(settings, req),
    settings,
    preset: presetFrom(res.getHeaders()),
  }
  const begin = await cache.begin(creq, { refresh: (headers) => refreshThrough(req, headers) })
  if (begin.type === 'respond') {
    send(res, begin.response, false)
    return
  }
  if (begin.type === 'pass') passThrough(cache, req, res, begin.tx, label)
  else capture(cache, res, begin.tx, () => label ?? routeLabel(req))
  proceed()
}

/**
 * The authority the request addressed, as Express 5's `req.host` resolves it (X-Forwarded-Host
 * when `trust proxy` trusts the peer, else Host; the first of a list). Computed here so that
 * Express 4, whose `req.host` is the host name without port, agrees.
 */
function authority(req: Request): string | undefined {
  const trust = req.app.get('trust proxy fn') as
    | ((address: string | undefined, i: number) => boolean)
    | undefined
  let value = req.get('X-Forwarded-Host')
  if (!value || !trust?.(req.socket?.remoteAddress, 0)) value = req.get('Host')
  else if (value.includes(',')) value = value.slice(0, value.indexOf(',')).trimEnd()
  return value
}

function routeLabel(req: Request): string | undefined {
  const route = req.route as { path?: unknown } | undefined
  if (!route || route.path === undefined) return undefined
  return `${req.baseUrl}${String(route.path)}`
}

/** The handler's response goes out as it is; unsafe methods invalidate before it completes. */
function passThrough(
  cache: ResponseCache,
  req: Request,
  res: Response,
  tx: Transaction,
  label: string | undefined,
): void {
  for (const [name, value] of cache.statusHeaders(tx)) res.setHeader(name, value)
  const settle = () => {
    tx.req.route ??= label ?? routeLabel(req)
    return cache.afterPass(
      tx,
      res.statusCode,
      headerString(res.getHeader('location')),
      headerString(res.getHeader('content-location')),
    )
  }
  if (SAFE_METHODS.has(tx.req.method)) {
    res.once('finish', () => void settle())
    return
  }
  // The response completes only once the invalidation was sent, so the client's next request sees it.
  const end = res.end
  res.end = function (this: Response, ...args: unknown[]) {
    res.end = end
    settle().then(() => (end as (...a: unknown[]) => Response).apply(res, args))
    return res
  } as Response['end']
}

export type { InvalidateOptions, MetricsSnapshot, RouteCacheOptions }
export { ResponseCache }
