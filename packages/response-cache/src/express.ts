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

const kLayer = Symbol('memkit.responseCache.layer')

/** The response-cache layer that handles a request, so that a later one can tell. */
interface Layer {
  /** Mounted with app.use / router.use (no route matched yet), not on a route. */
  readonly appLevel: boolean
  /**
   * Undoes what the layer did before the handler ran (headers, interception, lease, request
   * edits); resolves false when it is too late (the handler has written).
   */
  takeBack: (() => Promise<boolean>) | undefined
}

type WithLayer = Request & { [kLayer]?: Layer }

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
    let nextCalled = false
    const proceed = (error?: unknown) => {
      if (nextCalled) return
      nextCalled = true
      next(error)
    }
    enter(req)
      .then((layer) => (layer ? handle(cache, settings, label, req, res, layer, proceed) : proceed()))
      .catch((error: unknown) => {
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

/**
 * The layer this middleware becomes for the request, or undefined when another handles it. The
 * first layer a request meets handles it, except that a route-level one (on `app.get(...)`,
 * `cache.route(...)`) takes the request over from an app-level one (`app.use(cache)`), so the
 * route's settings apply: the app-level layer's work is undone first (the handler has not run).
 */
async function enter(req: Request): Promise<Layer | undefined> {
  const appLevel = req.route === undefined
  const withLayer = req as WithLayer
  const prior = withLayer[kLayer]
  if (prior) {
    if (appLevel || !prior.appLevel || !prior.takeBack || !(await prior.takeBack())) return undefined
  }
  const layer: Layer = { appLevel, takeBack: undefined }
  withLayer[kLayer] = layer
  return layer
}

async function handle(
  cache: ResponseCache,
  settings: RouteSettings,
  label: string | undefined,
  req: Request,
  res: Response,
  layer: Layer,
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
  const tx = begin.tx
  const undo =
    begin.type === 'pass'
      ? passThrough(cache, req, res, tx, label)
      : capture(cache, res, tx, () => label ?? routeLabel(req))
  layer.takeBack = async () => {
    layer.takeBack = undefined
    if (!undo()) return false
    await cache.withdraw(tx)
    return true
  }
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

/**
 * The handler's response goes out as it is; unsafe methods invalidate before it completes.
 * Returns `undo` (false once the response has started).
 */
function passThrough(
  cache: ResponseCache,
  req: Request,
  res: Response,
  tx: Transaction,
  label: string | undefined,
): () => boolean {
  const status = cache.statusHeaders(tx)
  for (const [name, value] of status) res.setHeader(name, value)
  const settle = () => {
    tx.req.route ??= label ?? routeLabel(req)
    return cache.afterPass(
      tx,
      res.statusCode,
      headerString(res.getHeader('location')),
      headerString(res.getHeader('content-location')),
    )
  }
  const onFinish = () => void settle()
  const end = res.end
  if (SAFE_METHODS.has(tx.req.method)) {
    res.once('finish', onFinish)
  } else {
    // The response completes only once the invalidation was sent, so the client's next request sees it.
    res.end = function (this: Response, ...args: unknown[]) {
      res.end = end
      settle().then(() => (end as (...a: unknown[]) => Response).apply(res, args))
      return res
    } as Response['end']
  }
  return () => {
    if (res.headersSent) return false
    for (const [name] of status) res.removeHeader(name)
    res.off('finish', onFinish)
    res.end = end
    return true
  }
}

export type { InvalidateOptions, MetricsSnapshot, RouteCacheOptions }
export { ResponseCache }
