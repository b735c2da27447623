import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { createClient } from '@memkit/client'
import { captureWarnings, rawCommand, useMemcached, waitUntil } from '@memkit/testing'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyRateLimit, { type FastifyRateLimitOptions, fastifyRateLimit as named } from '../src/fastify.js'
import { countCommands, uniquePrefix } from './helpers.js'

const { server: mc, client } = await useMemcached({ createClient })

async function app(
  options: Partial<FastifyRateLimitOptions> = {},
  fastifyOptions = {},
): Promise<FastifyInstance> {
  const instance = Fastify(fastifyOptions)
  await instance.register(fastifyRateLimit, {
    client,
    prefix: uniquePrefix('fy'),
    windowMs: '1 hour',
    ...options,
  })
  return instance
}

async function statuses(instance: FastifyInstance, url: string, n: number, method: 'GET' | 'POST' = 'GET') {
  const out = []
  for (let i = 0; i < n; i++) out.push((await instance.inject({ method, url })).statusCode)
  return out
}

describe('Fastify plugin', () => {
  test('fastify-plugin metadata; default and named exports are the same plugin', () => {
    assert.equal(fastifyRateLimit, named)
    const meta = (fastifyRateLimit as unknown as Record<symbol, unknown>)[Symbol.for('plugin-meta')] as {
      fastify: string
      name: string
    }
    assert.equal(meta.fastify, '5.x')
    assert.equal(meta.name, '@memkit/rate-limit')
    assert.equal((fastifyRateLimit as unknown as Record<symbol, unknown>)[Symbol.for('skip-override')], true)
  })

  test('limits every route declared after it, one memcached command per request', async () => {
    const f = await app({ limit: 2 })
    f.get('/', async () => 'ok')
    const commands = countCommands()
    assert.deepEqual(await statuses(f, '/', 3), [200, 200, 429])
    commands.stop()
    assert.equal(commands.count(), 3)
    await f.close()
  })

  test('max and timeWindow, as @fastify/rate-limit users write them', async () => {
    const f = await app({ windowMs: undefined, max: 1, timeWindow: '1 minute' })
    f.get('/', async () => 'ok')
    const res = await f.inject('/')
    assert.equal(res.headers['x-ratelimit-limit'], '1')
    const reset = Number(res.headers['x-ratelimit-reset']) * 1000 - Date.now()
    assert.ok(reset > 0 && reset <= 61_000)
    assert.equal((await f.inject('/')).statusCode, 429)
    await f.close()
    await assert.rejects(app({ limit: 1, max: 2 }), { code: 'ERR_MEMKIT_INVALID_OPTION' })
    await assert.rejects(app({ windowMs: 1000, timeWindow: 2000 }), { code: 'ERR_MEMKIT_INVALID_OPTION' })
    await assert.rejects(app({ windowMs: undefined, timeWindow: (() => 5) as unknown as number }), {
      code: 'ERR_MEMKIT_INVALID_OPTION',
    })
  })

  test('config.rateLimit per route: own limit and counter; false exempts the route', async () => {
    const f = await app({ limit: 3 })
    f.get('/a', async () => 'a')
    f.get('/b', async () => 'b')
    f.get('/login', { config: { rateLimit: { max: 1 } } }, async () => 'login')
    f.get('/health', { config: { rateLimit: false } }, async () => 'up')
    assert.deepEqual(await statuses(f, '/login', 2), [200, 429])
    // /a and /b share the global counter; /login's requests did not count there.
    assert.deepEqual([...(await statuses(f, '/a', 2)), ...(await statuses(f, '/b', 2))], [200, 200, 200, 429])
    const health = await f.inject('/health')
    assert.equal(health.statusCode, 200)
    assert.equal(health.headers['x-ratelimit-limit'], undefined)
    await f.close()
  })

  test("a route's automatic HEAD route counts against its GET limit (shareHeadWithGet, default true)", async () => {
    const f = await app({ limit: 100 })
    f.get('/doc', { config: { rateLimit: { limit: 3 } } }, async () => 'doc')
    f.route({
      method: ['GET', 'POST'],
      url: '/form',
      config: { rateLimit: { limit: 2 } },
      handler: async () => 'f',
    })
    const sequence = []
    for (const method of ['GET', 'HEAD', 'HEAD', 'GET', 'HEAD'] as const) {
      sequence.push((await f.inject({ method, url: '/doc' })).statusCode)
    }
    assert.deepEqual(sequence, [200, 200, 200, 429, 429])
    assert.deepEqual(await statuses(f, '/form', 1, 'POST'), [200])
    assert.equal((await f.inject({ method: 'HEAD', url: '/form' })).statusCode, 200)
    assert.equal((await f.inject({ method: 'HEAD', url: '/form' })).statusCode, 429)
    // One limiter each, not one for GET and one for HEAD.
    const names = f.rateLimitMetrics().map((m) => m.name)
    assert.deepEqual(
      names.filter((n) => n.includes('/doc')),
      ['GET:/doc:fixed:3600000:3'],
    )
    assert.deepEqual(
      names.filter((n) => n.includes('/form')),
      ['GET,POST:/form:fixed:3600000:2'],
    )
    await f.close()
  })

  test('shareHeadWithGet: false gives the HEAD route a limit of its own; an explicit HEAD route has its own', async () => {
    const f = await app({ limit: 100 })
    f.get('/own', { config: { rateLimit: { limit: 1, shareHeadWithGet: false } } }, async () => 'own')
    f.head('/explicit', { config: { rateLimit: { limit: 1 } } }, async () => '')
    f.get('/explicit', { config: { rateLimit: { limit: 1 } } }, async () => 'explicit')
    assert.deepEqual(await statuses(f, '/own', 2), [200, 429])
    assert.equal((await f.inject({ method: 'HEAD', url: '/own' })).statusCode, 200)
    assert.deepEqual(await statuses(f, '/explicit', 2), [200, 429])
    assert.equal((await f.inject({ method: 'HEAD', url: '/explicit' })).statusCode, 200)
    await f.close()
  })

  test('shareHeadWithGet set on the plugin applies to every route', async () => {
    const f = await app({ limit: 100, shareHeadWithGet: false })
    f.get('/p', { config: { rateLimit: { limit: 1 } } }, async () => 'p')
    assert.deepEqual(await statuses(f, '/p', 1), [200])
    assert.equal((await f.inject({ method: 'HEAD', url: '/p' })).statusCode, 200)
    await assert.rejects(app({ shareHeadWithGet: 'yes' as never }), { code: 'ERR_MEMKIT_INVALID_OPTION' })
    await f.close()
  })

  test('routes with the same config.rateLimit name share a counter', async () => {
    const f = await app({ limit: 100 })
    f.get('/x', { config: { rateLimit: { limit: 2, name: 'shared' } } }, async () => 'x')
    f.get('/y', { config: { rateLimit: { limit: 2, name: 'shared' } } }, async () => 'y')
    assert.deepEqual([...(await statuses(f, '/x', 1)), ...(await statuses(f, '/y', 2))], [200, 200, 429])
    await f.close()
  })

  test('global: false limits only routes that ask for it', async () => {
    const f = await app({ limit: 1, global: false })
    f.get('/open', async () => 'open')
    f.get('/limited', { config: { rateLimit: {} } }, async () => 'limited')
    assert.deepEqual(await statuses(f, '/open', 3), [200, 200, 200])
    assert.deepEqual(await statuses(f, '/limited', 2), [200, 429])
    await f.close()
  })

  test("hook: 'preHandler' runs after validation, so invalid requests are not counted", async () => {
    const f = await app({ limit: 2, hook: 'preHandler' })
    f.post(
      '/items',
      { schema: { body: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } } },
      async (req) => req.body,
    )
    for (let i = 0; i < 3; i++) {
      const bad = await f.inject({ method: 'POST', url: '/items', payload: { nope: 1 } })
      assert.equal(bad.statusCode, 400)
    }
    const good = await f.inject({ method: 'POST', url: '/items', payload: { name: 'a' } })
    assert.equal(good.statusCode, 200)
    assert.equal(good.headers['x-ratelimit-remaining'], '1')
    await f.close()
  })

  test("hook: 'preParsing' leaves the body intact", async () => {
    const f = await app({ limit: 1, hook: 'preParsing' })
    f.post('/echo', async (req) => req.body)
    const ok = await f.inject({ method: 'POST', url: '/echo', payload: { hello: 'world' } })
    assert.deepEqual(ok.json(), { hello: 'world' })
    assert.equal(ok.headers['x-ratelimit-remaining'], '0')
    const blocked = await f.inject({ method: 'POST', url: '/echo', payload: { hello: 'again' } })
    assert.equal(blocked.statusCode, 429)
    await f.close()
  })

  test('rateLimitHook() limits what is not a route, e.g. the not-found handler', async () => {
    const f = await app({ limit: 1, global: false })
    f.setNotFoundHandler({ preHandler: f.rateLimitHook({ limit: 2 }) }, async (_req, reply) =>
      reply.code(404).send({ missing: true }),
    )
    assert.deepEqual(await statuses(f, '/nothing-here', 3), [404, 404, 429])
    await f.close()
  })

  test('request.rateLimit, rateLimitMetrics() for the global and each route limiter', async () => {
    const f = await app({ limit: 5 })
    f.get('/', async (req) => req.rateLimit)
    f.get('/r', { config: { rateLimit: { limit: 1 } } }, async () => 'r')
    const info = (await f.inject('/')).json()
    assert.deepEqual([info.limit, info.used, info.remaining, info.source], [5, 1, 4, 'store'])
    await statuses(f, '/r', 3)
    const metrics = f.rateLimitMetrics()
    const byName = Object.fromEntries(metrics.map((m) => [m.name, m.totals]))
    assert.deepEqual(
      [
        byName['fixed:3600000:5']?.allowed,
        byName['GET:/r:fixed:3600000:1']?.allowed,
        byName['GET:/r:fixed:3600000:1']?.blocked,
      ],
      [1, 1, 2],
    )
    await f.close()
  })

  test('trustProxy decides whether X-Forwarded-For is the client', async () => {
    const trusting = await app({ limit: 1 }, { trustProxy: '127.0.0.1' })
    trusting.get('/', async () => 'ok')
    const a = await trusting.inject({ url: '/', headers: { 'x-forwarded-for': '198.51.100.1' } })
    const b = await trusting.inject({ url: '/', headers: { 'x-forwarded-for': '198.51.100.2' } })
    assert.deepEqual([a.statusCode, b.statusCode], [200, 200])
    await trusting.close()
    const plain = await app({ limit: 1 })
    plain.get('/', async () => 'ok')
    const warnings = captureWarnings('MEMKIT_RATE_LIMIT_UNEXPECTED_X_FORWARDED_FOR')
    try {
      const c = await plain.inject({ url: '/', headers: { 'x-forwarded-for': '198.51.100.1' } })
      const d = await plain.inject({ url: '/', headers: { 'x-forwarded-for': '198.51.100.2' } })
      assert.deepEqual([c.statusCode, d.statusCode], [200, 429])
    } finally {
      warnings.restore()
      await plain.close()
    }
    assert.equal(warnings.items.length, 1, 'the set-up is reported once')
  })

  test('handler replaces the blocked response (returning the payload is enough)', async () => {
    const f = await app({ limit: 0, handler: (_req, _reply, info) => ({ slowDown: info.retryAfter }) })
    f.get('/', async () => 'ok')
    const res = await f.inject('/')
    assert.equal(res.statusCode, 429)
    assert.equal(res.json().slowDown, Number(res.headers['retry-after']))
    await f.close()
  })

  test('a failing keyGenerator becomes a 500 through Fastify’s error handling', async () => {
    const f = await app({
      keyGenerator: () => {
        throw new Error('no key')
      },
    })
    f.get('/', async () => 'ok')
    assert.equal((await f.inject('/')).statusCode, 500)
    await f.close()
  })

  test('an invalid config.rateLimit fails the route registration with a typed error', async () => {
    const f = await app({ limit: 1 })
    assert.throws(() => f.get('/bad', { config: { rateLimit: 5 as unknown as false } }, async () => 'x'), {
      code: 'ERR_MEMKIT_INVALID_OPTION',
    })
    assert.throws(() => f.get('/worse', { config: { rateLimit: { windowMs: 'never' } } }, async () => 'x'), {
      code: 'ERR_MEMKIT_INVALID_OPTION',
    })
    await f.close()
  })

  test('servers: the plugin opens its own client and closes it with Fastify', async () => {
    const connections = async () => {
      const stats = await rawCommand(mc.address, 'stats\r\n')
      return Number(/STAT curr_connections (\d+)/.exec(stats)?.[1])
    }
    const before = await connections()
    const f = Fastify()
    await f.register(fastifyRateLimit, { servers: mc.address, prefix: uniquePrefix('own'), limit: 1 })
    f.get('/', async () => 'ok')
    assert.deepEqual(await statuses(f, '/', 2), [200, 429])
    assert.equal(await connections(), before + 1)
    await f.close()
    // memcached notices the closed connection on its own schedule: wait for its count to drop.
    await waitUntil(async () => (await connections()) === before, {
      message: "the plugin's connection is closed on memcached's side",
    })
  })

  test('registered in two encapsulated scopes: each limits its own routes', async () => {
    const f = Fastify()
    await f.register(async (scope) => {
      await scope.register(fastifyRateLimit, { client, prefix: uniquePrefix('s1'), limit: 1, name: 'one' })
      scope.get('/one', async () => 'one')
    })
    await f.register(async (scope) => {
      await scope.register(fastifyRateLimit, { client, prefix: uniquePrefix('s2'), limit: 2, name: 'two' })
      scope.get('/two', async () => 'two')
    })
    assert.deepEqual(await statuses(f, '/one', 2), [200, 429])
    assert.deepEqual(await statuses(f, '/two', 3), [200, 200, 429])
    await f.close()
  })
})
