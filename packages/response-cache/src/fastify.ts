import { Readable } from 'node:stream'
import { InvalidOptionError } from '@memkit/client'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { type InvalidateOptions, ResponseCache, type Transaction } from './cache.js'
import type { MetricsSnapshot } from './metrics.js'
import { parseRouteSettings, type ResponseCacheOptions, type RouteCacheOptions } from './options.js'
import type { CacheRequest, HeaderList, OutgoingResponse, RequestHeaders, RouteSettings } from './types.js'

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

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'SEARCH', 'REPORT'])

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
  const base = cache.config.route
  const parsed = new WeakMap<object, RouteSettings>()
  const states = new WeakMap<FastifyRequest, State>()

  const routeConfig = (config: unknown): RouteSettings | null | undefined => {
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

  const decorator: FastifyResponseCacheDecorator = {
    cache,
    metrics: () => cache.metricsSnapshot(),
    invalidateTag: (tag) => cache.invalidateTag(tag),
    invalidate: (url, opts) => cache.invalidate(url, opts),
  }
  fastify.decorate('responseCache', decorator)

  // Route settings are checked when the route is declared, not on its first request.
  fastify.addHook('onRoute', (route) => {
    routeConfig(route.config)
  })

  fastify.addHook(hook, async (request: FastifyRequest, reply: FastifyReply) => {
    // routeOptions is a getter that builds a fresh object: read it once.
    const routeOptions = request.routeOptions
    let settings: RouteSettings | null | undefined
    try {
      settings = routeConfig(routeOptions.config)
    } catch (error) {
      cache.reportError(error)
      return
    }
    const method = request.method.toUpperCase()
    // Uncached routes still invalidate on unsafe methods, unless they opted out with `cache: false`.
    if (settings === null) return
    if (settings === undefined) {
      if (SAFE_METHODS.has(method)) return
      settings = base
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
      host: (request.hostname ?? '').toLowerCase(),
      url: request.url,
      headers: request.raw.headers as RequestHeaders,
      route: routeOptions.url ?? '(unmatched)',
      tags,
      settings,
      preset: presetOf(reply),
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
      return reply.send(begin.response.body ?? null)
    }
    states.set(request, begin)
  })

  fastify.addHook('onSend', async (request, reply, payload) => {
    const state = states.get(request)
    if (!state || state.type === 'served') return payload
    states.set(request, { type: 'served' })
    const tx = state.tx
    if (state.type === 'pass') {
      for (const [name, value] of cache.statusHeaders(tx)) reply.header(name, value)
      const settle = cache.afterPass(
        tx,
        reply.statusCode,
        headerString(reply.getHeader('location')),
        headerString(reply.getHeader('content-location')),
      )
      if (!SAFE_METHODS.has(tx.req.method)) await settle
      return payload
    }
    const headers = headersOf(reply)
    let body: Buffer
    if (payload instanceof Readable || isStream(payload)) {
      if (cache.precheck(tx, reply.statusCode, headers) === 'pass') {
        for (const [name, value] of cache.statusHeaders(tx)) reply.header(name, value)
        return payload
      }
      const collected = await collect(payload as Readable, cache.config.maxBodySize)
      if (collected.overflow) {
        cache.abandon(tx, 'too-large')
        for (const [name, value] of cache.statusHeaders(tx)) reply.header(name, value)
        return collected.overflow
      }
      body = collected.body
    } else if (payload === null || payload === undefined) {
      body = Buffer.alloc(0)
    } else if (Buffer.isBuffer(payload)) {
      body = payload
    } else if (payload instanceof Uint8Array) {
      body = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
    } else {
      body = Buffer.from(String(payload))
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
    return out.body ?? null
  })

  // A reply that never reached onSend (hijacked, or the request was aborted) must not keep its
  // lease or hold its followers until the lease expires.
  fastify.addHook('onResponse', async (request, reply) => {
    const state = states.get(request)
    if (!state || state.type === 'served') return
    states.delete(request)
    if (state.type === 'forward') cache.abandon(state.tx, 'aborted')
    else await cache.afterPass(state.tx, reply.statusCode)
  })
  fastify.addHook('onRequestAbort', async (request) => {
    const state = states.get(request)
    if (state?.type === 'forward') cache.abandon(state.tx, 'aborted')
  })

  fastify.addHook('onClose', async () => {
    await cache.close()
  })
}

function write(reply: FastifyReply, out: OutgoingResponse): void {
  reply.code(out.status)
  if (out.reason !== undefined) reply.raw.statusMessage = out.reason
  for (const [name, value] of out.headers) reply.header(name, value)
}

function resolveTags(settings: RouteSettings, request: FastifyRequest): readonly string[] {
  const tags = settings.tags
  if (tags === undefined) return []
  if (typeof tags !== 'function') return tags
  const out = (tags as (r: FastifyRequest) => readonly string[])(request)
  if (!Array.isArray(out) || out.some((t) => typeof t !== 'string' || t.length === 0)) {
    throw new TypeError('the tags function must return an array of non-empty strings')
  }
  return out
}

function presetOf(reply: FastifyReply): Map<string, string> | undefined {
  const headers = reply.getHeaders()
  const names = Object.keys(headers)
  if (names.length === 0) return undefined
  const preset = new Map<string, string>()
  for (const name of names) {
    const value = headers[name]
    if (value !== undefined) preset.set(name, Array.isArray(value) ? value.join(', ') : String(value))
  }
  return preset
}

function headersOf(reply: FastifyReply): HeaderList {
  const out: HeaderList = []
  for (const [name, value] of Object.entries(reply.getHeaders())) {
    if (value === undefined) continue
    out.push([name, Array.isArray(value) ? value.map(String) : String(value)])
  }
  return out
}

function headerString(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined
  return Array.isArray(value) ? String(value[0]) : String(value)
}

function isStream(value: unknown): boolean {
  return typeof value === 'object' && value !== null && typeof (value as Readable).pipe === 'function'
}

/** Reads a stream up to `limit` bytes; beyond that, hands back a stream of everything (read and unread). */
async function collect(stream: Readable, limit: number): Promise<{ body: Buffer; overflow?: Readable }> {
  const chunks: Buffer[] = []
  let size = 0
  const iterator = stream[Symbol.asyncIterator]()
  for (;;) {
    const { value, done } = await iterator.next()
    if (done) break
    const chunk = Buffer.isBuffer(value) ? value : Buffer.from(value as string)
    chunks.push(chunk)
    size += chunk.length
    if (size > limit) {
      const rest = async function* () {
        yield* chunks
        for (;;) {
          const next = await iterator.next()
          if (next.done) return
          yield next.value as Buffer
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
