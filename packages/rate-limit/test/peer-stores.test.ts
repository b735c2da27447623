// memkit's counter under the real express-rate-limit and @fastify/rate-limit.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { describe, test } from 'node:test'
import { createClient, type MemcachedClient } from '@memkit/client'
import { useMemcached, waitUntil } from '@memkit/testing'
import express from 'express'
import { rateLimit as expressRateLimit } from 'express-rate-limit'
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify'
import request from 'supertest'
import { createFastifyRateLimitStore, ExpressRateLimitStore } from '../src/peer-stores.js'
import { clientFor, countCommands, uniquePrefix } from './helpers.js'

// Loaded untyped: its `config.rateLimit` declaration would clash with this package's.
const frl = createRequire(import.meta.url)('@fastify/rate-limit') as FastifyPluginAsync<
  Record<string, unknown>
>

const { client } = await useMemcached({ createClient })

function erlApp(
  options: Record<string, unknown>,
  store = new ExpressRateLimitStore({ client, prefix: uniquePrefix('erl') }),
) {
  const app = express()
  const middleware = expressRateLimit({ windowMs: 3_600_000, validate: false, store, ...options })
  app.use(middleware)
  app.get('/', (req, res) => {
    res.status(Number(req.query.status ?? 200)).send('ok')
  })
  app.use((_error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(500).send('store failed')
  })
  return { app, middleware, store }
}

describe('ExpressRateLimitStore under express-rate-limit', () => {
  test('limits with one memcached command per request; Reset is the window grid’s epoch', async () => {
    const { app } = erlApp({ limit: 3 })
    const commands = countCommands()
    const replies = []
    for (let i = 0; i < 5; i++) replies.push(await request(app).get('/'))
    commands.stop()
    assert.deepEqual(
      replies.map((r) => r.status),
      [200, 200, 200, 429, 429],
    )
    assert.equal(commands.count(), 5)
    const reset = Number(replies[0]!.headers['x-ratelimit-reset'])
    assert.ok(reset * 1000 > Date.now() && reset * 1000 <= Date.now() + 3_600_000 + 1000)
    assert.equal(replies[4]!.headers['x-ratelimit-reset'], String(reset))
    assert.ok(Number(replies[4]!.headers['retry-after']) >= 1)
  })

  test('skipSuccessfulRequests decrements through the store', async () => {
    const { app, middleware } = erlApp({ limit: 2, skipSuccessfulRequests: true })
    const statuses = []
    for (let i = 0; i < 4; i++) statuses.push((await request(app).get('/')).status)
    statuses.push((await request(app).get('/?status=500')).status)
    statuses.push((await request(app).get('/?status=500')).status)
    // express-rate-limit decrements when a response finishes: the two failures are what is left.
    await waitUntil(async () => (await middleware.getKey('127.0.0.1'))?.totalHits === 2, {
      message: 'the successful requests are taken back',
    })
    statuses.push((await request(app).get('/?status=500')).status)
    assert.deepEqual(statuses, [200, 200, 200, 200, 500, 500, 429])
  })

  test('getKey and resetKey', async () => {
    const { app, middleware } = erlApp({ limit: 1 })
    await request(app).get('/')
    const info = await middleware.getKey('127.0.0.1')
    assert.equal(info?.totalHits, 1)
    assert.ok(info?.resetTime instanceof Date)
    assert.equal((await request(app).get('/')).status, 429)
    await middleware.resetKey('127.0.0.1')
    assert.equal(await middleware.getKey('127.0.0.1'), undefined)
    assert.equal((await request(app).get('/')).status, 200)
  })

  test('sliding windows', async () => {
    const store = new ExpressRateLimitStore({ client, prefix: uniquePrefix('erls'), algorithm: 'sliding' })
    const { app } = erlApp({ limit: 2 }, store)
    const statuses = []
    for (let i = 0; i < 3; i++) statuses.push((await request(app).get('/')).status)
    assert.deepEqual(statuses, [200, 200, 429])
  })

  test('a dead memcached surfaces as a store error (passOnStoreError lets requests through)', async () => {
    const dead = clientFor('127.0.0.1:1', { timeout: 200 })
    try {
      const store = new ExpressRateLimitStore({ client: dead, prefix: uniquePrefix('dead') })
      const { app } = erlApp({ limit: 1, passOnStoreError: true, logger: { warn() {}, error() {} } }, store)
      assert.equal((await request(app).get('/')).status, 200)
      const strict = erlApp(
        { limit: 1 },
        new ExpressRateLimitStore({ client: dead, prefix: uniquePrefix('dead') }),
      )
      assert.equal((await request(strict.app).get('/')).status, 500)
    } finally {
      await dead.close()
    }
  })

  test('bad store options are refused', () => {
    assert.throws(() => new ExpressRateLimitStore({ client: {} as MemcachedClient }), {
      code: 'ERR_MEMKIT_INVALID_OPTION',
    })
    assert.throws(() => new ExpressRateLimitStore({ client, prefix: 'a b' }), {
      code: 'ERR_MEMKIT_INVALID_OPTION',
    })
    assert.throws(() => new ExpressRateLimitStore({ client, algorithm: 'gcra' as 'fixed' }), {
      code: 'ERR_MEMKIT_INVALID_OPTION',
    })
  })
})

describe('createFastifyRateLimitStore under @fastify/rate-limit', () => {
  async function frlApp(options: Record<string, unknown>, storeClient = client): Promise<FastifyInstance> {
    const app = Fastify()
    await app.register(frl, {
      timeWindow: 3_600_000,
      store: createFastifyRateLimitStore({ client: storeClient, prefix: uniquePrefix('frl') }),
      ...options,
    })
    app.get('/', async () => 'ok')
    app.get('/own', { config: { rateLimit: { max: 1 } } }, async () => 'own')
    return app
  }

  test('limits with one memcached command per request; reset is seconds until the window ends', async () => {
    const app = await frlApp({ max: 2 })
    const commands = countCommands()
    const replies = []
    for (let i = 0; i < 3; i++) replies.push(await app.inject('/'))
    commands.stop()
    assert.deepEqual(
      replies.map((r) => r.statusCode),
      [200, 200, 429],
    )
    assert.equal(commands.count(), 3)
    const reset = Number(replies[0]!.headers['x-ratelimit-reset'])
    assert.ok(reset >= 1 && reset <= 3600)
    // The refusal states the same seconds-until-the-end as its own reset; it is
    // counted from a later instant than the first reply, so a second boundary may
    // fall between them (one second less, never more).
    const blockedReset = Number(replies[2]!.headers['x-ratelimit-reset'])
    assert.equal(replies[2]!.headers['retry-after'], String(blockedReset))
    assert.ok(reset - blockedReset === 0 || reset - blockedReset === 1, `${reset} then ${blockedReset}`)
    await app.close()
  })

  test('a route with its own config counts separately (child store)', async () => {
    const app = await frlApp({ max: 5 })
    assert.deepEqual(
      [(await app.inject('/own')).statusCode, (await app.inject('/own')).statusCode],
      [200, 429],
    )
    assert.equal((await app.inject('/')).headers['x-ratelimit-remaining'], '4')
    await app.close()
  })

  test('read-only peek through createRateLimit({ increment: false })', async () => {
    const app = await frlApp({ max: 5 })
    type Check = (req: unknown, options: unknown) => Promise<{ remaining: number }>
    const check = (app as unknown as { createRateLimit: () => Check }).createRateLimit()
    app.get('/peek', { config: { rateLimit: false } }, async (req) => check(req, { increment: false }))
    await app.inject('/')
    await app.inject('/')
    const peeks = [(await app.inject('/peek')).json(), (await app.inject('/peek')).json()]
    // The global counter, read twice without being counted.
    assert.deepEqual(
      peeks.map((p) => p.remaining),
      [3, 3],
    )
    await app.close()
  })

  test('continueExceeding is refused; skipOnError lets requests through when memcached is down', async () => {
    await assert.rejects(frlApp({ max: 1, continueExceeding: true }), { code: 'ERR_MEMKIT_INVALID_OPTION' })
    const dead = clientFor('127.0.0.1:1', { timeout: 200 })
    try {
      const app = await frlApp({ max: 1, skipOnError: true }, dead)
      assert.deepEqual([(await app.inject('/')).statusCode, (await app.inject('/')).statusCode], [200, 200])
      await app.close()
    } finally {
      await dead.close()
    }
  })
})
