// The cache next to other middleware: a rate limiter's per-client quota headers are never
// stored or replayed to another client, and on Fastify a cache hit still passes through the
// route-level onRequest hooks (where rate limiters attach) with the default settings.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createClient } from '@memkit/client'
import { useMemcached } from '@memkit/testing'
import express from 'express'
import Fastify from 'fastify'
import supertest from 'supertest'
import { responseCache } from '../src/express.js'
import fastifyResponseCache from '../src/fastify.js'

const { client } = await useMemcached({ createClient })

test('Express: quota headers are not stored; each response carries its own', async () => {
  let remaining = 10
  let calls = 0
  const app = express()
  app.use((_req, res, next) => {
    res.setHeader('X-RateLimit-Remaining', String(--remaining))
    next()
  })
  app.get('/page', responseCache({ client, keyPrefix: 'comp-e:', ttl: 60 }), (_req, res) => {
    calls++
    // set by the handler too, as some apps do: still not stored
    res.setHeader('RateLimit', `limit=10, remaining=${remaining}, reset=60`)
    res.send('page')
  })
  const first = await supertest(app).get('/page').set('host', 'shop.example')
  assert.equal(first.headers['x-cache'], 'MISS')
  assert.equal(first.headers['x-ratelimit-remaining'], '9')
  assert.equal(first.headers.ratelimit, 'limit=10, remaining=9, reset=60')
  const second = await supertest(app).get('/page').set('host', 'shop.example')
  assert.equal(second.headers['x-cache'], 'HIT')
  assert.equal(second.headers['x-ratelimit-remaining'], '8', 'the live quota, not the stored one')
  assert.equal(second.headers.ratelimit, undefined, 'the handler-set quota was not stored')
  assert.equal(calls, 1)
})

test('Fastify: with the default hook, route-level onRequest hooks run for cache hits, and their headers are live', async () => {
  let remaining = 10
  let hookRuns = 0
  let calls = 0
  const app = Fastify()
  await app.register(fastifyResponseCache, { client, keyPrefix: 'comp-f:' })
  app.get(
    '/page',
    {
      // what a rate limiter attaches: a route-level onRequest hook setting the quota
      onRequest: async (_request, reply) => {
        hookRuns++
        reply.header('X-RateLimit-Remaining', String(--remaining))
      },
      config: { cache: { ttl: 60 } },
    },
    async () => {
      calls++
      return 'page'
    },
  )
  const first = await app.inject({ url: '/page' })
  assert.equal(first.headers['x-cache'], 'MISS')
  assert.equal(first.headers['x-ratelimit-remaining'], '9')
  const second = await app.inject({ url: '/page' })
  assert.equal(second.headers['x-cache'], 'HIT')
  assert.equal(second.headers['x-ratelimit-remaining'], '8')
  assert.equal(hookRuns, 2, 'the hook ran for the hit too')
  assert.equal(calls, 1)
  await app.close()
})
