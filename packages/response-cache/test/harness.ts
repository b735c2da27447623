// One test table, two frameworks: builds an Express app (driven with supertest) or a Fastify app
// (driven with fastify.inject) with the same routes behind the cache, and counts handler calls.
import { request as httpRequest, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { createClient, type MemkitClient } from '@memkit/client'
import { type MemcachedOptions, useMemcached, withApp } from '@memkit/testing'
import express from 'express'
import Fastify, { type FastifyInstance } from 'fastify'
import supertest from 'supertest'
import { type ResponseCacheMiddleware, responseCache } from '../src/express.js'
import fastifyResponseCache from '../src/fastify.js'
import type { MetricsSnapshot, ResponseCache, ResponseCacheOptions, RouteCacheOptions } from '../src/index.js'

export type Framework = 'express' | 'fastify'
export const FRAMEWORKS: readonly Framework[] = ['express', 'fastify']

export interface OriginRequest {
  method: string
  url: string
  headers: Record<string, string | string[] | undefined>
}

export interface OriginResponse {
  status?: number
  headers?: Record<string, string | string[] | undefined>
  body?: string | Buffer
  /** The handler throws instead of answering. */
  throws?: boolean
}

export interface Route {
  path: string
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  /** Route-level cache settings (Express: middleware.route(); Fastify: config.cache). */
  cache?: RouteCacheOptions | false
  handler(req: OriginRequest, call: number): OriginResponse | Promise<OriginResponse>
}

export interface Res {
  status: number
  headers: Record<string, string>
  body: Buffer
  text: string
}

export interface TestApp {
  framework: Framework
  /** Handler calls so far, per route path. */
  calls(path?: string): number
  /** Requests that reached the app (before the cache saw them) so far, per path. */
  arrivals(path: string): number
  request(
    path: string,
    init?: { method?: string; headers?: Record<string, string>; body?: string },
  ): Promise<Res>
  /** The bytes as sent on the wire (no client-side decompression). */
  rawRequest(path: string, headers?: Record<string, string>): Promise<Res>
  /** A port the app listens on, for requests a framework client cannot express (absolute-form targets, aborts). */
  listen(): Promise<number>
  metrics(): MetricsSnapshot
  invalidateTag(tag: string): Promise<void>
  cache: ResponseCache
  close(): Promise<void>
}

export interface AppSetup {
  /** Express `trust proxy` / Fastify `trustProxy`: X-Forwarded-Proto and -Host count. */
  trustProxy?: boolean
}

export async function makeApp(
  framework: Framework,
  options: ResponseCacheOptions & { client: MemkitClient },
  routes: Route[],
  setup: AppSetup = {},
): Promise<TestApp> {
  const counts = new Map<string, number>()
  const bump = (path: string) => {
    const n = (counts.get(path) ?? 0) + 1
    counts.set(path, n)
    return n
  }
  const calls = (path?: string) =>
    path === undefined ? [...counts.values()].reduce((a, b) => a + b, 0) : (counts.get(path) ?? 0)
  const arrived = new Map<string, number>()
  const counter: Counter = {
    bump,
    calls,
    arrive: (path) => arrived.set(path, (arrived.get(path) ?? 0) + 1),
    arrivals: (path) => arrived.get(path) ?? 0,
  }
  return framework === 'express'
    ? expressApp(options, routes, counter, setup)
    : fastifyApp(options, routes, counter, setup)
}

interface Counter {
  bump(path: string): number
  calls(path?: string): number
  arrive(path: string): void
  arrivals(path: string): number
}

async function expressApp(
  options: ResponseCacheOptions,
  routes: Route[],
  { bump, calls, arrive, arrivals }: Counter,
  setup: AppSetup,
): Promise<TestApp> {
  const app = express()
  if (setup.trustProxy) app.set('trust proxy', true)
  app.set('etag', false)
  app.set('x-powered-by', false)
  app.use((req, _res, next) => {
    arrive(req.path)
    next()
  })
  const middleware: ResponseCacheMiddleware = responseCache(options)
  for (const route of routes) {
    const method = (route.method ?? 'GET').toLowerCase() as 'get'
    const handlers: express.RequestHandler[] = []
    if (route.cache !== false) handlers.push(middleware.route(route.cache ?? {}))
    handlers.push(async (req, res) => {
      const out = await route.handler(
        { method: req.method, url: req.originalUrl, headers: req.headers },
        bump(route.path),
      )
      if (out.throws) throw new Error('handler failed')
      res.status(out.status ?? 200)
      for (const [k, v] of Object.entries(out.headers ?? {})) if (v !== undefined) res.setHeader(k, v)
      res.send(out.body ?? '')
    })
    app[method](route.path, ...handlers)
  }
  // Keep error output quiet and deterministic.
  app.use((_error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(500).send('internal error')
  })
  const server: Server = app.listen(0, '127.0.0.1')
  await new Promise<void>((resolve) => server.once('listening', () => resolve()))
  return {
    framework: 'express',
    calls,
    arrivals,
    cache: middleware.cache,
    listen: async () => (server.address() as AddressInfo).port,
    metrics: () => middleware.metrics(),
    invalidateTag: (tag) => middleware.invalidateTag(tag),
    async request(path, init = {}) {
      const method = (init.method ?? 'GET').toLowerCase() as 'get'
      // A fresh supertest request each time: no cookie jar carrying Set-Cookie into the next request.
      let req = supertest(server)[method](path)
      for (const [k, v] of Object.entries(init.headers ?? {})) req = req.set(k, v)
      req = req.buffer(true).parse((res, callback) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => callback(null, Buffer.concat(chunks)))
      })
      if (init.body !== undefined) req = req.send(init.body)
      const res = await req
      const body = Buffer.isBuffer(res.body) ? res.body : Buffer.alloc(0)
      return { status: res.status, headers: flatten(res.headers), body, text: body.toString() }
    },
    rawRequest(path, headers = {}) {
      const { port } = server.address() as AddressInfo
      return new Promise<Res>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path, headers }, (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => {
            const body = Buffer.concat(chunks)
            resolve({ status: res.statusCode!, headers: flatten(res.headers), body, text: body.toString() })
          })
          res.on('error', reject)
        })
        req.on('error', reject)
        req.end()
      })
    },
    close: async () => {
      await new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
      await middleware.close()
    },
  }
}

async function fastifyApp(
  options: ResponseCacheOptions,
  routes: Route[],
  { bump, calls, arrive, arrivals }: Counter,
  setup: AppSetup,
): Promise<TestApp> {
  const app: FastifyInstance = Fastify({ trustProxy: setup.trustProxy ?? false })
  // Registered before the cache's hooks, so it runs first.
  app.addHook('onRequest', async (request) => {
    arrive(request.url.split('?')[0]!)
  })
  await app.register(fastifyResponseCache, options)
  for (const route of routes) {
    app.route({
      method: route.method ?? 'GET',
      url: route.path,
      config: { cache: route.cache === false ? false : (route.cache ?? true) },
      handler: async (request, reply) => {
        const out = await route.handler(
          { method: request.method, url: request.url, headers: request.headers },
          bump(route.path),
        )
        if (out.throws) throw new Error('handler failed')
        reply.code(out.status ?? 200)
        for (const [k, v] of Object.entries(out.headers ?? {})) if (v !== undefined) reply.header(k, v)
        return reply.send(out.body ?? '')
      },
    })
  }
  await app.ready()
  return {
    framework: 'fastify',
    calls,
    arrivals,
    cache: app.responseCache.cache,
    async listen() {
      if (!app.server.listening) await app.listen({ port: 0, host: '127.0.0.1' })
      return (app.server.address() as AddressInfo).port
    },
    metrics: () => app.responseCache.metrics(),
    invalidateTag: (tag) => app.responseCache.invalidateTag(tag),
    async request(path, init = {}) {
      const headers = { ...init.headers }
      if (init.body !== undefined && !('content-type' in headers)) headers['content-type'] = 'text/plain'
      const res = await app.inject({
        method: (init.method ?? 'GET') as 'GET',
        url: path,
        headers,
        payload: init.body,
      })
      return { status: res.statusCode, headers: flatten(res.headers), body: res.rawPayload, text: res.body }
    },
    async rawRequest(path, headers = {}) {
      const res = await app.inject({ method: 'GET', url: path, headers })
      return { status: res.statusCode, headers: flatten(res.headers), body: res.rawPayload, text: res.body }
    },
    close: () => app.close(),
  }
}

function flatten(headers: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue
    out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : String(v)
  }
  return out
}

/** Polls `condition` every 10 ms for up to `ms` (for work the cache finishes after responding). */
export async function until(condition: () => boolean | Promise<boolean>, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await sleep(10)
  }
}

/**
 * One request on its own connection, written as given: `target` may be an absolute URL, `body`
 * goes out with the framing the headers declare. Resolves with the response (or the error the
 * client sees when the connection ends early).
 */
export function rawHttp(
  port: number,
  target: string,
  headers: Record<string, string>,
  body?: string,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: target, headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const data = Buffer.concat(chunks)
        resolve({ status: res.statusCode!, headers: flatten(res.headers), body: data, text: data.toString() })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

/**
 * A test file's memcached (`useMemcached`: started now, stopped after the file's tests), its
 * client, and a `withApp` that gives every app its own key prefix `<tag><n>:` (passed to `fn`),
 * so tests never see each other's entries.
 */
export async function cacheTestbed(tag: string, memcached?: MemcachedOptions) {
  const { server, client, closeAfter } = await useMemcached({ createClient, memcached })
  let n = 0
  return {
    client,
    server,
    closeAfter,
    withApp(
      framework: Framework,
      routes: Route[],
      fn: (app: TestApp, prefix: string) => Promise<void>,
      options: Partial<ResponseCacheOptions> = {},
      setup: AppSetup = {},
    ): Promise<void> {
      const prefix = `${tag}${++n}:`
      return withApp(makeApp(framework, { client, keyPrefix: prefix, ...options }, routes, setup), (app) =>
        fn(app, prefix),
      )
    },
  }
}
