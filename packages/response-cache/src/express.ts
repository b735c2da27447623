import { IncomingMessage, ServerResponse, STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import { Duplex } from 'node:stream'
import { InvalidOptionError } from '@memkit/client'
import type { Application, NextFunction, Request, RequestHandler, Response } from 'express'
import { type InvalidateOptions, ResponseCache, type Transaction } from './cache.js'
import type { MetricsSnapshot } from './metrics.js'
import { parseRouteSettings, type ResponseCacheOptions, type RouteCacheOptions } from './options.js'
import type { CacheRequest, HeaderList, OutgoingResponse, RequestHeaders, RouteSettings } from './types.js'

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
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'SEARCH', 'REPORT'])

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
  const tags = resolveTags(settings, req)
  const creq: CacheRequest = {
    method: req.method.toUpperCase(),
    host: (req.hostname ?? '').toLowerCase(),
    url: req.originalUrl,
    headers: req.headers as RequestHeaders,
    route: label ?? routeLabel(req),
    tags,
    settings,
    preset: presetOf(res),
  }
  const begin = await cache.begin(creq, { refresh: (headers) => refreshThrough(req, headers) })
  if (begin.type === 'respond') {
    send(res, begin.response, false)
    return
  }
  if (begin.type === 'pass') {
    passThrough(cache, req, res, begin.tx, label)
    proceed()
    return
  }
  capture(cache, req, res, begin.tx, label)
  proceed()
}

function resolveTags(settings: RouteSettings, req: Request): readonly string[] {
  const tags = settings.tags
  if (tags === undefined) return []
  if (typeof tags !== 'function') return tags
  const out = (tags as (r: Request) => readonly string[])(req)
  if (!Array.isArray(out) || out.some((t) => typeof t !== 'string' || t.length === 0)) {
    throw new TypeError('the tags function must return an array of non-empty strings')
  }
  return out
}

function routeLabel(req: Request): string | undefined {
  const route = req.route as { path?: unknown } | undefined
  if (!route || route.path === undefined) return undefined
  return `${req.baseUrl}${String(route.path)}`
}

function presetOf(res: Response): Map<string, string> | undefined {
  const names = res.getHeaderNames()
  if (names.length === 0) return undefined
  const preset = new Map<string, string>()
  for (const name of names) {
    const value = res.getHeader(name)
    if (value !== undefined) preset.set(name, Array.isArray(value) ? value.join(', ') : String(value))
  }
  return preset
}

function headersOf(res: ServerResponse): HeaderList {
  const out: HeaderList = []
  // getRawHeaderNames keeps the handler's spelling (Node >= 15.13; missing from @types/node 20).
  const raw = (res as ServerResponse & { getRawHeaderNames?: () => string[] }).getRawHeaderNames
  const names = raw ? raw.call(res) : res.getHeaderNames()
  for (const name of names) {
    const value = res.getHeader(name)
    if (value === undefined) continue
    out.push([name, Array.isArray(value) ? value.map(String) : String(value)])
  }
  return out
}

/** Writes a response the cache produced; `replace` drops whatever headers the handler had set. */
function send(res: ServerResponse, out: OutgoingResponse, replace: boolean, callback?: () => void): void {
  if (res.headersSent || res.writableEnded) return
  if (replace) for (const name of res.getHeaderNames()) res.removeHeader(name)
  for (const [name, value] of out.headers) res.setHeader(name, value)
  res.statusCode = out.status
  res.statusMessage = out.reason ?? STATUS_CODES[out.status] ?? 'Unknown'
  if (out.body === undefined) res.end(callback)
  else res.end(out.body, callback)
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

type EndArgs = [chunk?: unknown, encoding?: unknown, callback?: unknown]

/**
 * Buffers the handler's response (writeHead/write/end are intercepted), unless it is clearly not
 * storable, in which case it streams through from its first byte.
 */
function capture(
  cache: ResponseCache,
  req: Request,
  res: Response,
  tx: Transaction,
  label: string | undefined,
): void {
  const original = {
    writeHead: res.writeHead,
    write: res.write,
    end: res.end,
    flushHeaders: res.flushHeaders,
  }
  const chunks: Buffer[] = []
  let size = 0
  let mode: 'undecided' | 'capture' | 'pass' = 'undecided'

  const restore = () => {
    res.writeHead = original.writeHead
    res.write = original.write
    res.end = original.end
    res.flushHeaders = original.flushHeaders
  }
  const addStatusHeaders = () => {
    for (const [name, value] of cache.statusHeaders(tx)) res.setHeader(name, value)
  }
  const decide = (): 'capture' | 'pass' => {
    if (mode !== 'undecided') return mode
    tx.req.route ??= label ?? routeLabel(req)
    mode = cache.precheck(tx, res.statusCode, headersOf(res))
    if (mode === 'pass') {
      restore()
      addStatusHeaders()
    }
    return mode
  }
  const append = (chunk: unknown, encoding: unknown) => {
    if (chunk === undefined || chunk === null || typeof chunk === 'function') return
    const buf = Buffer.isBuffer(chunk)
      ? chunk
      : chunk instanceof Uint8Array
        ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
        : Buffer.from(String(chunk), typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8')
    chunks.push(buf)
    size += buf.length
  }
  const overflow = () => {
    // Too large to store: stream what was buffered and the rest straight through.
    cache.abandon(tx, 'too-large')
    mode = 'pass'
    restore()
    addStatusHeaders()
    for (const chunk of chunks.splice(0)) res.write(chunk)
  }

  res.writeHead = function (this: Response, statusCode: number, reason?: unknown, headers?: unknown) {
    let fields = headers
    if (typeof reason === 'string') res.statusMessage = reason
    else fields = reason
    res.statusCode = statusCode
    if (Array.isArray(fields)) {
      // Either [[k, v], ...] or the flat [k, v, k, v] form.
      if (fields.length > 0 && Array.isArray(fields[0])) {
        for (const [k, v] of fields as [string, string][]) res.setHeader(k, v)
      } else {
        for (let i = 0; i + 1 < fields.length; i += 2)
          res.setHeader(String(fields[i]), fields[i + 1] as string)
      }
    } else if (fields && typeof fields === 'object') {
      for (const [k, v] of Object.entries(fields as Record<string, string | number | string[]>)) {
        if (v !== undefined) res.setHeader(k, v)
      }
    }
    return res
  } as Response['writeHead']

  res.flushHeaders = function (this: Response) {
    if (decide() === 'pass') res.flushHeaders()
  }

  res.write = function (this: Response, chunk: unknown, encoding?: unknown, callback?: unknown) {
    if (decide() === 'pass') return (res.write as (...a: unknown[]) => boolean)(chunk, encoding, callback)
    append(chunk, encoding)
    const cb = typeof encoding === 'function' ? encoding : callback
    if (size > cache.config.maxBodySize) overflow()
    if (typeof cb === 'function') process.nextTick(cb as () => void)
    return true
  } as Response['write']

  res.end = function (this: Response, ...args: EndArgs) {
    if (decide() === 'pass') return (res.end as (...a: unknown[]) => Response)(...args)
    const [chunk, encoding, callback] = args
    append(chunk, encoding)
    const cb = [chunk, encoding, callback].find((a) => typeof a === 'function') as (() => void) | undefined
    restore()
    const captured = {
      status: res.statusCode,
      reason: res.statusMessage || undefined,
      headers: headersOf(res),
      body: Buffer.concat(chunks),
    }
    cache.finish(tx, captured).then(
      (out) => send(res, out, true, cb),
      (error: unknown) => {
        cache.reportError(error)
        send(res, { ...captured, body: captured.body }, false, cb)
      },
    )
    return res
  } as Response['end']
}

function headerString(value: string | number | string[] | undefined): string | undefined {
  if (value === undefined) return undefined
  return Array.isArray(value) ? value[0] : String(value)
}

/** A socket that discards what is written: background refresh responses have no client. */
class NullSocket extends Duplex {
  constructor(readonly remoteAddress: string | undefined) {
    super()
  }
  override _read(): void {}
  override _write(_chunk: unknown, _encoding: BufferEncoding, callback: () => void): void {
    callback()
  }
  setTimeout(): this {
    return this
  }
  setNoDelay(): this {
    return this
  }
  setKeepAlive(): this {
    return this
  }
}

/**
 * Runs a GET for the same URL through the whole application, detached from any client: the
 * background refresh of stale-while-revalidate. Resolves when the response is complete.
 */
function refreshThrough(req: Request, headers: RequestHeaders): Promise<void> {
  let app = req.app as Application & { parent?: Application }
  while (app.parent) app = app.parent as Application & { parent?: Application }
  return new Promise((resolve) => {
    // The original peer address, so trust-proxy decisions (and thus the key) come out the same.
    const socket = new NullSocket(req.socket?.remoteAddress)
    const fakeReq = new IncomingMessage(socket as unknown as Socket)
    fakeReq.method = 'GET'
    fakeReq.url = req.originalUrl
    fakeReq.httpVersion = '1.1'
    fakeReq.httpVersionMajor = 1
    fakeReq.httpVersionMinor = 1
    fakeReq.headers = headers as IncomingMessage['headers']
    fakeReq.rawHeaders = Object.entries(headers).flatMap(([k, v]) =>
      v === undefined ? [] : Array.isArray(v) ? v.flatMap((x) => [k, x]) : [k, v],
    )
    fakeReq.push(null)
    const fakeRes = new ServerResponse(fakeReq)
    fakeRes.assignSocket(socket as unknown as Socket)
    let done = false
    const finish = () => {
      if (done) return
      done = true
      socket.destroy()
      resolve()
    }
    fakeRes.once('finish', finish)
    fakeRes.once('close', finish)
    ;(app as unknown as (q: IncomingMessage, s: ServerResponse, n: (e?: unknown) => void) => void)(
      fakeReq,
      fakeRes,
      (error?: unknown) => {
        // Nothing handled the refresh (or it failed): end it so the cache can settle.
        if (!fakeRes.writableEnded) {
          fakeRes.statusCode = error ? 500 : 404
          fakeRes.end()
        }
      },
    )
  })
}

export type { InvalidateOptions, MetricsSnapshot, RouteCacheOptions }
export { ResponseCache }
