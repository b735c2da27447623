// Compiled by `npm run typecheck` (never run): what must and must not type-check for users.
import { createClient } from '@memkit/client'
import express from 'express'
import Fastify, { type RouteShorthandOptions } from 'fastify'
import { type RateLimitInfo, type RateLimitMiddleware, rateLimit } from '../src/express.js'
import fastifyRateLimit, {
  type FastifyRateLimitRouteOptions,
  fastifyRateLimit as namedPlugin,
} from '../src/fastify.js'
import {
  createFastifyRateLimitStore,
  ExpressRateLimitStore,
  RateLimiter,
  type RateLimitMetrics,
} from '../src/index.js'

const client = createClient({ servers: '127.0.0.1:11211' })

// ---- Express -------------------------------------------------------------------------
const app = express()
const limiter: RateLimitMiddleware = rateLimit({ client, limit: 100, windowMs: '1 minute' })
app.use(limiter)
app.post(
  '/login',
  rateLimit({ client, limit: (req) => (req.headers.authorization ? 10 : 5), windowMs: 900_000 }),
  (_req, res) => {
    res.send('ok')
  },
)
rateLimit({
  client,
  headers: ['legacy', 'draft-8'],
  resetFormat: 'delta',
  algorithm: 'sliding',
  keyGenerator: (req) => req.ip ?? 'unknown',
  handler: (_req, res, _next, info: RateLimitInfo) => res.json({ wait: info.retryAfter }),
  onStoreError: 'local',
  instances: 4,
  breaker: { threshold: 3, cooldownMs: '10 seconds' as unknown as number },
})
// req.rateLimit is declared on Express's Request (declaration merging)
app.get('/quota', limiter, (req, res) => {
  const info: RateLimitInfo | undefined = req.rateLimit
  res.json({ remaining: info?.remaining, reset: req.rateLimit?.resetTime.getTime() })
  // @ts-expect-error only requests that passed a limiter carry it: possibly undefined
  req.rateLimit.remaining
  // @ts-expect-error it is a RateLimitInfo, not a number
  const wrong: number | undefined = req.rateLimit
  void wrong
})
const snapshot: RateLimitMetrics = limiter.metrics()
snapshot.perMinute.map((m) => m.allowed + m.blocked)
// @ts-expect-error limit is a number or a function
rateLimit({ client, limit: '100' })
// @ts-expect-error unknown header format
rateLimit({ client, headers: 'draft-9' })
// @ts-expect-error onStoreError is allow, deny or local
rateLimit({ client, onStoreError: 'ignore' })
// @ts-expect-error max is the Fastify alias, not an Express option
rateLimit({ client, max: 5 })
// The set-up checks are turned off by their codes; floods, overload and resets
rateLimit({
  client,
  validate: { MEMKIT_RATE_LIMIT_PERMISSIVE_TRUST_PROXY: false },
  preBlock: true,
  preBlockRecheckMs: '500ms',
  onOverload: 'deny',
})
rateLimit({ client, validate: false })
// @ts-expect-error an unknown validation code
rateLimit({ client, validate: { MEMKIT_RATE_LIMIT_TRUST: false } })
// @ts-expect-error onOverload is allow, deny or local
rateLimit({ client, onOverload: 'queue' })
const reset: Promise<void> = limiter.resetKey('203.0.113.7')
void reset

// ---- Fastify -------------------------------------------------------------------------
const fastify = Fastify()
await fastify.register(fastifyRateLimit, { client, max: 100, timeWindow: '1 minute' })
await fastify.register(namedPlugin, {
  client,
  limit: 100,
  windowMs: 60_000,
  global: false,
  hook: 'preHandler',
})
fastify.get('/a', { config: { rateLimit: { limit: 5, windowMs: '1 minute' } } }, async () => 'a')
fastify.get(
  '/b',
  { config: { rateLimit: { max: 5, timeWindow: 1000, headers: 'draft-7' } } },
  async () => 'b',
)
fastify.get('/c', { config: { rateLimit: false } }, async () => 'c')
fastify.get('/d', async (request) => {
  const info: RateLimitInfo | null = request.rateLimit
  return info?.remaining
})
// Route shorthands infer their config type from the literal, so the merged declaration is
// checked where route options are typed without inference:
const typed: RouteShorthandOptions = { config: { rateLimit: { limit: 5, algorithm: 'sliding' } } }
fastify.get('/e', typed, async () => 'e')
// @ts-expect-error config.rateLimit is options or false, not true
const notTrue: RouteShorthandOptions = { config: { rateLimit: true } }
// @ts-expect-error max must be a number or a function
fastify.get('/f', { config: { rateLimit: { max: '5' } } }, async () => 'f')
// @ts-expect-error the client is set once, on the plugin
const noClient: RouteShorthandOptions = { config: { rateLimit: { client } } }
void [notTrue, noClient]
const routeOptions: FastifyRateLimitRouteOptions = { limit: 1, hook: 'onRequest' }
fastify.setNotFoundHandler({ preHandler: fastify.rateLimitHook(routeOptions) }, async () => 'missing')
const all: RateLimitMetrics[] = fastify.rateLimitMetrics()
all.map((m) => m.breaker.state)
const resetEverywhere: Promise<void> = fastify.rateLimitResetKey('203.0.113.7')
void resetEverywhere
fastify.get('/g', { config: { rateLimit: { limit: 5, shareHeadWithGet: false } } }, async () => 'g')
// @ts-expect-error shareHeadWithGet is a boolean
const headFlag: RouteShorthandOptions = { config: { rateLimit: { shareHeadWithGet: 'no' } } }
void headFlag
// @ts-expect-error unknown hook name
await fastify.register(fastifyRateLimit, { client, hook: 'onSend' })

// ---- core and peer stores -----------------------------------------------------------
const core = new RateLimiter({ client, limit: 10, windowMs: '1 minute', algorithm: 'sliding' })
const result = await core.consume('user:1', { cost: 2 })
const allowed: boolean = result.allowed
void allowed
new ExpressRateLimitStore({ client, prefix: 'erl:' })
const Store = createFastifyRateLimitStore({ client })
new Store({})
// @ts-expect-error a store needs the client
new ExpressRateLimitStore({})
