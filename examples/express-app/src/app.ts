// An Express shop using all three memkit middleware over one shared memcached client:
// sessions (login/logout), rate limits (strict on POST /login, looser on the API), a cached
// product listing with tags that an admin action invalidates, a status page and metrics.
import type { MemkitClient } from '@memkit/client'
import { createPrometheusCollector } from '@memkit/client/prometheus'
import { createStatusPage } from '@memkit/client/status'
import { rateLimit } from '@memkit/rate-limit/express'
import { responseCache } from '@memkit/response-cache/express'
import { MemcachedStore } from '@memkit/session'
import express, { type NextFunction, type Request, type Response } from 'express'
import session from 'express-session'
import { Registry } from 'prom-client'
import { authenticate, Catalog, tryLines, type User } from '../../shared/catalog.js'

declare module 'express-session' {
  interface SessionData {
    user?: User
  }
}

export interface AppOptions {
  /** The shared memkit client (createClient from @memkit/client). */
  client: MemkitClient
  /** Signs the session cookie. */
  cookieSecret: string
  /** Keys the session ids into memcached keys (HMAC); set it in production. */
  storeSecret?: string
  /** Simulated database latency per catalogue read, ms. Default 50. */
  catalogDelayMs?: number
}

export function buildApp(options: AppOptions) {
  const { client } = options
  const catalog = new Catalog(options.catalogDelayMs)
  const app = express()
  // The demo runs behind no proxy; 'loopback' lets local tools set X-Forwarded-For.
  app.set('trust proxy', 'loopback')
  app.use(express.json())

  app.use(
    session({
      name: 'shop.sid',
      store: new MemcachedStore({ client, secret: options.storeSecret }),
      secret: options.cookieSecret,
      resave: false,
      saveUninitialized: false,
      cookie: { httpOnly: true, sameSite: 'lax', maxAge: 8 * 60 * 60 * 1000 },
    }),
  )

  const loginLimit = rateLimit({ client, name: 'login', limit: 5, windowMs: '15 minutes' })
  const apiLimit = rateLimit({ client, name: 'api', limit: 100, windowMs: '1 minute' })
  // The product pages are public: cache them for every visitor, with or without a session cookie.
  const cache = responseCache({ client, shareable: { cookie: true } })
  const productsCache = cache.route({ ttl: 30, tags: ['products'], label: '/api/products' })
  const productCache = cache.route({
    ttl: 30,
    tags: (req) => ['products', `product:${req.params.id}`],
    label: '/api/products/:id',
  })

  app.get('/', (req, res) => {
    res.json({ shop: 'memkit example (Express)', try: tryLines(`${req.protocol}://${req.get('host')}`) })
  })

  app.post('/login', loginLimit, (req, res, next) => {
    const user = authenticate(req.body?.username, req.body?.password)
    if (!user) {
      res.status(401).json({ error: 'wrong username or password' })
      return
    }
    // A new session id on login prevents session fixation.
    req.session.regenerate((error) => {
      if (error) return next(error)
      req.session.user = user
      res.json({ user })
    })
  })

  app.post('/logout', (req, res, next) => {
    req.session.destroy((error) => (error ? next(error) : res.status(204).end()))
  })

  app.get('/me', (req, res) => {
    if (!req.session.user) res.status(401).json({ error: 'not logged in' })
    else res.json({ user: req.session.user })
  })

  app.use('/api', apiLimit)

  app.get('/api/products', productsCache, async (_req, res) => {
    res.json({ products: await catalog.list() })
  })

  app.get('/api/products/:id', productCache, async (req, res) => {
    const product = await catalog.get(Number(req.params.id))
    if (!product) res.status(404).json({ error: 'no such product' })
    else res.json({ product })
  })

  app.post('/admin/products/:id/price', requireAdmin, async (req, res) => {
    const price = Number(req.body?.price)
    if (!Number.isFinite(price) || price < 0) {
      res.status(400).json({ error: 'price must be a number >= 0' })
      return
    }
    const product = catalog.setPrice(Number(req.params.id), price)
    if (!product) {
      res.status(404).json({ error: 'no such product' })
      return
    }
    // Every cached page tagged 'products' misses from the next request on, in every process.
    await cache.invalidateTag('products')
    res.json({ product })
  })

  const status = createStatusPage({
    client,
    title: 'memkit example shop (Express)',
    rateLimits: [loginLimit.metrics, apiLimit.metrics],
    responseCaches: [cache.metrics],
  })
  app.get('/memkit', status.handle)

  const registry = new Registry()
  const collector = createPrometheusCollector(client, { registry })
  app.get('/metrics', async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics())
  })

  app.use(
    (
      error: Error & { status?: number; statusCode?: number },
      _req: Request,
      res: Response,
      _next: NextFunction,
    ) => {
      const status = error.statusCode ?? error.status ?? 500
      res
        .status(status)
        .json({ error: status === 503 ? 'the cache is unavailable, try again shortly' : error.message })
    },
  )

  return {
    app,
    catalog,
    cache,
    close: () => collector.stop(),
  }
}

function requireAdmin(req: Request, res: Response, next: NextFunction): void {
  if (req.session.user?.role === 'admin') next()
  else res.status(403).json({ error: 'admins only' })
}
