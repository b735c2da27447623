// Fastify adapter: a plugin (fastify-plugin, so it sees every route) whose named hooks map the
// cache's phases onto Fastify's lifecycle: `lookup` (onRequest or preHandler) answers from the
// cache or lets the handler run, `capture` (onSend) stores the handler's payload, `settle`
// (onResponse) and `abort` (onRequestAbort) release what a reply that never reached onSend held.
import { Readable } from 'node:stream'
import { InvalidOptionError } from '@memkit/client'
import type {
  FastifyInstance,
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
  onRequestAbortAsyncHookHandler,
  onResponseAsyncHookHandler,
  onSendAsyncHookHandler,
  preHandlerAsyncHookHandler,
} from 'fastify'
import fp from 'fastify-plugin'
import {
  headerListFrom,
  headerString,
  portOf,
  presetFrom,
  resolveTags,
  SAFE_METHODS,
} from './adapter-helpers.js'
import { type InvalidateOptions, ResponseCache, type Transaction } from './cache.js'
import type { MetricsSnapshot } from './metrics.js'
import { parseRouteSettings, type ResponseCacheOptions, type RouteCacheOptions } from './options.js'
import type { CacheRequest, OutgoingResponse, RequestHeaders, RouteSettings } from './types.js'

export interface FastifyResponseCacheOptions extends ResponseCacheOptions<FastifyRequest> {
  /** Cache every route unless its `config.cache` is `false` (`true`), or only routes with `config.cache` (`false`). Default `true`. */
  global?: boolean
  /**
   * Hook that looks the request up. `'preHandler'` (default) runs after every route-level
   * `onRequest` hook (where rate limiters such as @memkit/rate-limit attach) and after
   * `preHandler` hooks registered before the plugin (authentication), so a cached response is
   * still rate-limited and authenticated. `'onRequest'` answers earlier and skips body parsing,
   * but also skips those hooks on a hit.
   */
  hook?: 'onRequest' | 'preHandler'
}

/** `fastify.responseCache` */
export interface FastifyResponseCacheDecorator {
  readonly cache: ResponseCache
  /** Per-route hit/miss/stale/bypass counters and hit ratio. */
  metrics(): MetricsSnapshot
  /** Every entry recorded under `tag` misses from the next request on, in every process. */
  invalidateTag(tag: string): Promise<void>
  /** Removes the stored responses of one URL (all variants). */
  invalidate(url: string, options?: InvalidateOptions): Promise<void>
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `false`: the cache leaves this route alone; `true` or settings: cache it (settings override the plugin's). */
    cache?: boolean | RouteCacheOptions<FastifyRequest>
  }
  interface FastifyInstance {
    responseCache: FastifyResponseCacheDecorator
  }
}

type State = { type: 'served' } | { type: 'pass'; tx: Transaction } | { type: 'forward'; tx: Transaction }

const plugin: FastifyPluginAsync<FastifyResponseCacheOptions> = async (fastify, options) => {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError('@memkit/response-cache/fastify takes an options object')
  }
  const { global: cacheAll = true, hook = 'preHandler', ...rest } = options
  if (typeof cacheAll !== 'boolean') throw new InvalidOptionError('`global` must be true or false')
  if (hook !== 'onRequest' && hook !== 'preHandler') {
    throw new InvalidOptionError("`hook` must be 'onRequest' or 'preHandler'")
  }
  const cache = new ResponseCache(rest as ResponseCacheOptions)
  const settingsOf = routeSettingsResolver(cache.config.route, cacheAll)
  const hooks = cacheHooks(fastify, cache, settingsOf)

  const decorator: FastifyResponseCacheDecorator = {
    cache,
    metrics: () => cache.metricsSnapshot(),
    invalidateTag: (tag) => cache.invalidateTag(tag),
    invalidate: (url, opts) => cache.invalidate(url, opts),
  }
  fastify.decorate('responseCache', decorator)

  // Route settings are checked when the route is declared, not on its first request.
  fastify.addHook('onRoute', (route) => {
    settingsOf(route.config)
  })
  fastify.addHook(hook, hooks.lookup)
  fastify.addHook('onSend', hooks.capture)
  fastify.addHook('onResponse', hooks.settle)
  fastify.addHook('onRequestAbort', hooks.abort)
  fastify.addHook('onClose', async () => {
    await cache.close()
  })
}

/**
 * A route's settings from its `config.cache`: null when the route opted out (`false`), undefined
 * when it is not cached (`global: false` and nothing set). Parsed once per settings object.
 */
function routeSettingsResolver(
  base: RouteSettings,
  cacheAll: boolean,
): (config: unknown) => RouteSettings | null | undefined {
  const parsed = new WeakMap<object, RouteSettings>()
  return (config) => {
    const setting = (config as { cache?: unknown } | undefined)?.cache
    if (setting === false) return null
    if (setting === true) return base
    if (setting === undefined) return cacheAll ? base : undefined
    if (typeof setting !== 'object' || setting === null) {
      throw new InvalidOptionError('route `config.cache` must be a boolean or route cache settings')
    }
    let settings = parsed.get(setting)
    if (!settings) {
      settings = parseRouteSettings(setting, base, true)
      parsed.set(setting, settings)
    }
    return settings
  }
}

function cacheHooks(
  fastify: FastifyInstance,
  cache: ResponseCache,
  settingsOf: (config: unknown) => RouteSettings | null | undefined,
) {
  const states = new WeakMap<FastifyRequest, State>()

  /** Answers from the cache, or records how the handler's reply is to be treated. */
  const lookup: preHandlerAsyncHookHandler = async function lookup(request, reply) {
    // routeOptions is a getter that builds a fresh object: read it once.
    const routeOptions = request.routeOptions
    let settings: RouteSettings | null | undefined
    try {
      settings = settingsOf(routeOptions.config)
    } catch (error) {
      cache.reportError(error)
      return
    }
    const method = request.method.toUpperCase()
    // Uncached routes still invalidate on unsafe methods, unless they opted out with `cache: false`.
    if (settings === null) return
    if (settings === undefined) {
      if (SAFE_METHODS.has(method)) return
      settings = cache.config.route
    }
    let tags: readonly string[] = []
    try {
      tags = resolveTags(settings, request)
    } catch (error) {
      cache.reportError(error)
      return
    }
    const creq: CacheRequest = {
      method,
      scheme: request.protocol,
      host: (request.hostname ?? '').toLowerCase(),
      port: portOf(request.host),
      url: request.url,
      headers: request.raw.headers as RequestHeaders,
      route: routeOptions.url ?? '(unmatched)',
      tags,
      settings,
      preset: presetFrom(reply.getHeaders()),
    }
    let begin: Awaited<ReturnType<ResponseCache['begin']>>
    try {
      begin = await cache.begin(creq, {
        refresh: async (headers) => {
          await fastify.inject({
            method: 'GET',
            url: request.url,
            headers: headers as Record<string, string>,
            // The original peer address, so trust-proxy decisions (and thus the key) come out the same.
            remoteAddress: request.raw.socket?.remoteAddress,
          })
        },
      })
    } catch (error) {
      // A fault in the cache itself: the request goes on uncached.
      cache.reportError(error)
      return
    }
    if (begin.type === 'respond') {
      states.set(request, { type: 'served' })
      write(reply, begin.response)
      // No payload for 304 and friends: `null` would be serialised as JSON (Content-Type, Length 4).
      return begin.response.body === undefined ? reply.send() : reply.send(begin.response.body)
    }
    states.set(request, begin)
  }

  /** The handler's payload: passed through with status headers, or stored and replaced. */
  const capture: onSendAsyncHookHandler<unknown> = async function capture(request, reply, payload) {
    const state = states.get(request)
    if (!state || state.type === 'served') return payload
    const tx = state.tx
    if (state.type === 'pass') {
      states.set(request, { type: 'served' })
      for (const [name, value] of cache.statusHeaders(tx)) reply.header(name, value)
      const settled = cache.afterPass(
        tx,
        reply.statusCode,
        headerString(reply.getHeader('location')),
        headerString(reply.getHeader('content-location')),
      )
      if (!SAFE_METHODS.has(tx.req.method)) await settled
      return payload
    }
    // The state stays 'forward' until the response is decided: an abort meanwhile releases the fill.
    let headers = headerListFrom(reply.getHeaders())
    let body: Buffer
    if (payload instanceof Readable || isStream(payload)) {
      if (cache.precheck(tx, reply.statusCode, headers) === 'pass') {
        states.set(request, { type: 'served' })
        for (const [name, value] of cache.statusHeaders(tx)) reply.header(name, value)
        return payload
      }
      const collected = await collect(payload as Readable, cache.config.maxBodySize)
      states.set(request, { type: 'served' })
      if (collected.failed) {
        // The handler's stream failed midway: nothing is stored, the fill is released, and the
        // client gets what it would without the cache (the part that was read, then the failure).
        cache.abandon(tx, 'aborted')
        return collected.failed
      }
      if (collected.overflow) {
        cache.abandon(tx, 'too-large')
        for (const [name, value] of cache.statusHeaders(tx)) reply.header(name, value)
        return collected.overflow
      }
      body = collected.body
    } else {
      states.set(request, { type: 'served' })
      body = bufferOf(payload)
      // Fastify frames a buffered payload itself, correcting a wrong Content-Length: the
      // handler's value is not what the client would see.
      headers = headers.filter(([name]) => name.toLowerCase() !== 'content-length')
    }
    let out: OutgoingResponse
    try {
      out = await cache.finish(tx, { status: reply.statusCode, headers, body })
    } catch (error) {
      cache.reportError(error)
      return payload
    }
    for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name)
    write(reply, out)
    // A stream keeps the declared Content-Length (Fastify would correct a buffer's): the client
    // sees the response cut short.
    if (out.truncated) return Readable.from([out.body!])
    return out.body ?? null
  }

  // A reply that never reached onSend (hijacked, or the request was aborted) must not keep its
  // lease or hold its followers until the lease expires.
  const settle: onResponseAsyncHookHandler = async function settle(request, reply) {
    const state = states.get(request)
    if (!state || state.type === 'served') return
    states.delete(request)
    if (state.type === 'forward') cache.abandon(state.tx, 'aborted')
    else await cache.afterPass(state.tx, reply.statusCode)
  }

  const abort: onRequestAbortAsyncHookHandler = async function abort(request) {
    const state = states.get(request)
    if (state?.type === 'forward') cache.abandon(state.tx, 'aborted')
  }

  return { lookup, capture, settle, abort }
}

function write(reply: FastifyReply, out: OutgoingResponse): void {
  reply.code(out.status)
  if (out.reason !== undefined) reply.raw.statusMessage = out.reason
  for (const [name, value] of out.headers) reply.header(name, value)
}

function bufferOf(payload: unknown): Buffer {
  if (payload === null || payload === undefined) return Buffer.alloc(0)
  if (Buffer.isBuffer(payload)) return payload
  if (payload instanceof Uint8Array)
    return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
  return Buffer.from(String(payload))
}

function isStream(value: unknown): boolean {
  return typeof value === 'object' && value !== null && typeof (value as Readable).pipe === 'function'
}

/**
 * Reads a stream up to `limit` bytes. Beyond that, `overflow` replays everything (read and
 * unread); when the stream fails, `failed` replays what was read, then the same error.
 */
async function collect(
  stream: Readable,
  limit: number,
): Promise<{ body: Buffer; overflow?: Readable; failed?: Readable }> {
  const chunks: Buffer[] = []
  let size = 0
  const iterator = stream[Symbol.asyncIterator]()
  for (;;) {
    let next: IteratorResult<unknown>
    try {
      next = await iterator.next()
    } catch (error) {
      const replay = async function* () {
        yield* chunks
        throw error
      }
      return { body: Buffer.alloc(0), failed: Readable.from(replay()) }
    }
    if (next.done) break
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value as string)
    chunks.push(chunk)
    size += chunk.length
    if (size > limit) {
      const rest = async function* () {
        yield* chunks
        for (;;) {
          const more = await iterator.next()
          if (more.done) return
          yield more.value as Buffer
        }
      }
      return { body: Buffer.alloc(0), overflow: Readable.from(rest()) }
    }
  }
  return { body: Buffer.concat(chunks) }
}

/**
 * `app.register(fastifyResponseCache, { client })`; per route `config: { cache: { ttl: 60 } }`
 * or `config: { cache: false }`.
 */
export const fastifyResponseCache = fp(plugin, {
  fastify: '5.x',
  name: '@memkit/response-cache',
})

export default fastifyResponseCache

export type { InvalidateOptions, MetricsSnapshot, RouteCacheOptions }
export { ResponseCache }
