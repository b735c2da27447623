// A Fastify shop using all three memkit middleware over one shared memcached client:
// sessions (login/logout), rate limits (strict on POST /login, looser on the API), a cached
// product listing with tags that an admin action invalidates, a status page and metrics.
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import type { MemkitClient } from '@memkit/client'
import { createPrometheusCollector } from '@memkit/client/prometheus'
import { createStatusPage } from '@memkit/client/status'
import fastifyRateLimit from '@memkit/rate-limit/fastify'
import fastifyResponseCache from '@memkit/response-cache/fastify'
import { MemcachedStore } from '@memkit/session'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { Registry } from 'prom-client'
import { authenticate, Catalog, tryLines, type User } from '../../shared/catalog.js'

declare module 'fastify' {
  interface Session {
    user?: User
  }
}

export interface AppOptions {
  /** The shared memkit client (createClient from @memkit/client). */
  client: MemkitClient
  /** Signs the session cookie (at least 32 characters). */
  cookieSecret: string
  /** Keys the session ids into memcached keys (HMAC); set it in production. */
  storeSecret?: string
  /** Simulated database latency per catalogue read, ms. Default 50. */
  catalogDelayMs?: number
  /** Fastify's logger. Default off. */
  logger?: boolean
}

export async function buildApp(options: AppOptions) {
  const { client } = options
  const catalog = new Catalog(options.catalogDelayMs)
  // The demo runs behind no proxy; trusting loopback lets local tools set X-Forwarded-For.
  const app = Fastify({ trustProxy: '127.0.0.1', logger: options.logger ?? false })

  await app.register(fastifyCookie)
  await app.register(fastifySession, {
    cookieName: 'shop.sid',
    store: new MemcachedStore({ client, secret: options.storeSecret }),
    secret: options.cookieSecret,
    saveUninitialized: false,
    // Re-sending the cookie on every response would make public pages uncacheable (Set-Cookie).
    rolling: false,
    cookie: { httpOnly: true, sameSite: 'lax', secure: 'auto', maxAge: 8 * 60 * 60 * 1000 },
  })
  // Only routes with config.rateLimit / config.cache are limited / cached.
  await app.register(fastifyRateLimit, { client, global: false })
  // The product pages are public: cache them for every visitor, with or without a session cookie.
  await app.register(fastifyResponseCache, { client, global: false, shareable: { cookie: true } })

  app.get('/', async (request) => ({
    shop: 'memkit example (Fastify)',
    try: tryLines(`${request.protocol}://${request.host}`),
  }))

  app.post(
    '/login',
    { config: { rateLimit: { name: 'login', limit: 5, windowMs: '15 minutes' } } },
    async (request, reply) => {
      const body = (request.body ?? {}) as { username?: unknown; password?: unknown }
      const user = authenticate(body.username, body.password)
      if (!user) return reply.code(401).send({ error: 'wrong username or password' })
      // A new session id on login prevents session fixation.
      await request.session.regenerate()
      request.session.user = user
      return { user }
    },
  )

  app.post('/logout', async (request, reply) => {
    await request.session.destroy()
    return reply.code(204).send()
  })

  app.get('/me', async (request, reply) => {
    if (!request.session.user) return reply.code(401).send({ error: 'not logged in' })
    return { user: request.session.user }
  })

  const api = { name: 'api', limit: 100, windowMs: '1 minute' }

  app.get(
    '/api/products',
    { config: { rateLimit: api, cache: { ttl: 30, tags: ['products'] } } },
    async () => ({
      products: await catalog.list(),
    }),
  )

  app.get(
    '/api/products/:id',
    {
      config: {
        rateLimit: api,
        cache: {
          ttl: 30,
          tags: (request) => ['products', `product:${(request.params as { id: string }).id}`],
        },
      },
    },
    async (request, reply) => {
      const product = await catalog.get(Number((request.params as { id: string }).id))
      if (!product) return reply.code(404).send({ error: 'no such product' })
      return { product }
    },
  )

  app.post('/admin/products/:id/price', { preHandler: requireAdmin }, async (request, reply) => {
    const price = Number((request.body as { price?: unknown } | undefined)?.price)
    if (!Number.isFinite(price) || price < 0)
      return reply.code(400).send({ error: 'price must be a number >= 0' })
    const product = catalog.setPrice(Number((request.params as { id: string }).id), price)
    if (!product) return reply.code(404).send({ error: 'no such product' })
    // Every cached page tagged 'products' misses from the next request on, in every process.
    await app.responseCache.invalidateTag('products')
    return { product }
  })

  const status = createStatusPage({
    client,
    title: 'memkit example shop (Fastify)',
    rateLimits: [() => app.rateLimitMetrics()],
    responseCaches: [() => app.responseCache.metrics()],
  })
  app.get('/memkit', (request, reply) => {
    reply.hijack()
    status.handle(request.raw, reply.raw)
  })

  const registry = new Registry()
  const collector = createPrometheusCollector(client, { registry })
  app.get('/metrics', async (_request, reply) =>
    reply.type(registry.contentType).send(await registry.metrics()),
  )
  app.addHook('onClose', async () => collector.stop())

  return { app, catalog }
}

async function requireAdmin(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (request.session.user?.role !== 'admin') await reply.code(403).send({ error: 'admins only' })
}
