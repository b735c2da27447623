// Compiled by `npm run typecheck`, never run: the public types, including Fastify's declaration
// merging, accept what they should and reject what they must not (@ts-expect-error lines).
import { createClient } from '@memkit/client'
import express from 'express'
import Fastify, { type FastifyRequest } from 'fastify'
import { type ResponseCacheMiddleware, responseCache } from '../src/express.js'
import fastifyResponseCache, { fastifyResponseCache as named } from '../src/fastify.js'
import type { MetricsSnapshot } from '../src/index.js'

const client = createClient({ servers: '127.0.0.1:11211' })

// ---- Express ----
const app = express()
const cache: ResponseCacheMiddleware = responseCache({ client, ttl: 60, tags: ['products'] })
app.use(cache)
app.get('/x', responseCache({ client, ttl: 60 }), (_req, res) => {
  res.send('x')
})
app.get(
  '/y',
  cache.route({ ttl: 5, tags: (req) => [req.path], shareable: { cookie: true } }),
  (_req, res) => {
    res.send('y')
  },
)
const snapshot: MetricsSnapshot = cache.metrics()
const ratio: number = snapshot.total.hitRatio
void ratio
void cache.invalidateTag('products')
void cache.invalidate('/x', { host: 'example.com' })
// @ts-expect-error ttl is a number of seconds
responseCache({ client, ttl: '60' })
// @ts-expect-error compression is 'gzip' | 'br' | false | { algorithm, threshold }
responseCache({ client, compression: 'zstd' })
// @ts-expect-error route() takes route settings only
cache.route({ client })

// ---- Fastify ----
const fastify = Fastify()
fastify.register(fastifyResponseCache, { client, ttl: 30, hook: 'preHandler', global: false })
fastify.register(named, { servers: '127.0.0.1:11211' })
fastify.get(
  '/a',
  { config: { cache: { ttl: 60, tags: (request: FastifyRequest) => [request.url] } } },
  async () => 'a',
)
fastify.get('/b', { config: { cache: false } }, async () => 'b')
fastify.get('/c', { config: { cache: true } }, async () => 'c')
// @ts-expect-error ttl is a number
fastify.get('/d', { config: { cache: { ttl: 'long' } } }, async () => 'd')
// @ts-expect-error hook must be onRequest or preHandler
fastify.register(fastifyResponseCache, { client, hook: 'onResponse' })
const fromDecorator: MetricsSnapshot = fastify.responseCache.metrics()
void fromDecorator
void fastify.responseCache.invalidateTag('a')
// @ts-expect-error tags are strings
void fastify.responseCache.invalidateTag(42)
