// Header text compared with the peer libraries for the same state: express-rate-limit (legacy,
// draft-6, draft-7, draft-8) and @fastify/rate-limit (its delta reset). The peer runs on a "twin"
// store that reports exactly the count and reset memkit computes, with the clock pinned.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { afterEach, describe, mock, test } from 'node:test'
import { createClient } from '@memkit/client'
import { useMemcached } from '@memkit/testing'
import express from 'express'
import { rateLimit as expressRateLimit } from 'express-rate-limit'
import Fastify, { type FastifyPluginAsync } from 'fastify'
import request from 'supertest'
import { rateLimit } from '../src/express.js'
import fastifyRateLimit from '../src/fastify.js'
import { RateLimiter } from '../src/limiter.js'
import { rateHeaders, uniquePrefix } from './helpers.js'

// Loaded untyped: @fastify/rate-limit declares its own `config.rateLimit` type, which would
// clash with this package's in one compilation.
const frl = createRequire(import.meta.url)('@fastify/rate-limit') as FastifyPluginAsync<
  Record<string, unknown>
>

const { client } = await useMemcached({ createClient })
afterEach(() => mock.timers.reset())

const NOW = Math.floor(Date.now() / 60_000) * 60_000 + 29_500
const WINDOW = 3_600_000

/** A limiter counting like the memkit middleware named `name`, in its own key space. */
function twin(name: string): RateLimiter {
  return new RateLimiter({ client, prefix: uniquePrefix('twin'), name, windowMs: WINDOW })
}

/** express-rate-limit Store reporting the twin's state. */
function erlTwinStore(name: string) {
  const limiter = twin(name)
  return {
    localKeys: false,
    prefix: uniquePrefix('erl'),
    async increment(key: string) {
      const r = await limiter.consume(key, { limit: Number.MAX_SAFE_INTEGER })
      return { totalHits: r.used, resetTime: new Date(r.resetTime) }
    },
    async decrement() {},
    async resetKey() {},
  }
}

describe('headers match express-rate-limit byte for byte', () => {
  const formats = ['legacy', 'draft-6', 'draft-7', 'draft-8'] as const
  for (const format of formats) {
    test(format, async () => {
      mock.timers.enable({ apis: ['Date'], now: NOW })
      const name = `cmp-${format}`
      const ours = express()
      ours.use(
        rateLimit({
          client,
          prefix: uniquePrefix('ours'),
          name,
          limit: 2,
          windowMs: WINDOW,
          headers: format,
        }),
      )
      ours.get('/', (_req, res) => {
        res.send('ok')
      })
      const theirs = express()
      theirs.use(
        expressRateLimit({
          windowMs: WINDOW,
          limit: 2,
          legacyHeaders: format === 'legacy',
          standardHeaders: format === 'legacy' ? false : format,
          store: erlTwinStore(name),
          validate: false,
        }),
      )
      theirs.get('/', (_req, res) => {
        res.send('ok')
      })
      for (let i = 0; i < 4; i++) {
        const a = await request(ours).get('/')
        const b = await request(theirs).get('/')
        assert.equal(a.status, b.status)
        const mine = rateHeaders({ status: a.status, headers: a.headers as Record<string, string>, body: '' })
        const peer = rateHeaders({ status: b.status, headers: b.headers as Record<string, string>, body: '' })
        assert.deepEqual(mine, peer, `request ${i + 1}`)
        assert.ok(Object.keys(mine).length >= (format === 'legacy' ? 3 : 2))
      }
    })
  }

  for (const format of [['legacy', 'draft-7'], 'draft-6'] as const) {
    test(`${String(format)} from two stacked limiters: the second one's fields replace the first's`, async () => {
      mock.timers.enable({ apis: ['Date'], now: NOW })
      const formats: Array<'legacy' | 'draft-6' | 'draft-7'> =
        typeof format === 'string' ? [format] : [...format]
      // A stale Retry-After set earlier by the application is replaced too, never joined.
      const stale: express.RequestHandler = (_req, res, next) => {
        res.setHeader('Retry-After', '3600')
        next()
      }
      const ours = express()
      ours.use(stale)
      const theirs = express()
      theirs.use(stale)
      for (const [name, limit] of [
        ['wide', 5],
        ['narrow', 2],
      ] as const) {
        ours.use(
          rateLimit({ client, prefix: uniquePrefix('o'), name, limit, windowMs: WINDOW, headers: formats }),
        )
        theirs.use(
          expressRateLimit({
            windowMs: WINDOW,
            limit,
            legacyHeaders: formats.includes('legacy'),
            standardHeaders: formats.includes('draft-7') ? 'draft-7' : 'draft-6',
            store: erlTwinStore(name),
            validate: false,
          }),
        )
      }
      for (const app of [ours, theirs]) {
        app.get('/', (_req, res) => {
          res.send('ok')
        })
      }
      for (let i = 0; i < 3; i++) {
        const a = await request(ours).get('/')
        const b = await request(theirs).get('/')
        assert.equal(a.status, i < 2 ? 200 : 429)
        assert.equal(a.status, b.status)
        const mine = rateHeaders({ status: a.status, headers: a.headers as Record<string, string>, body: '' })
        const peer = rateHeaders({ status: b.status, headers: b.headers as Record<string, string>, body: '' })
        assert.deepEqual(mine, peer, `request ${i + 1}`)
        for (const [name, value] of Object.entries(mine)) {
          if (name !== 'ratelimit') assert.doesNotMatch(value, /,/, `${name}: one value`)
        }
        assert.equal(mine['x-ratelimit-limit'] ?? mine['ratelimit-limit'] ?? '2', '2')
      }
    })
  }

  test('draft-8 from two stacked limiters: both policies listed, in order', async () => {
    mock.timers.enable({ apis: ['Date'], now: NOW })
    const ours = express()
    ours.use(
      rateLimit({
        client,
        prefix: uniquePrefix('o1'),
        name: 'burst',
        limit: 5,
        windowMs: WINDOW,
        headers: 'draft-8',
      }),
    )
    ours.use(
      rateLimit({
        client,
        prefix: uniquePrefix('o2'),
        name: 'daily',
        limit: 9,
        windowMs: WINDOW,
        headers: 'draft-8',
      }),
    )
    ours.get('/', (_req, res) => {
      res.send('ok')
    })
    const theirs = express()
    for (const [name, limit] of [
      ['burst', 5],
      ['daily', 9],
    ] as const) {
      theirs.use(
        expressRateLimit({
          windowMs: WINDOW,
          limit,
          legacyHeaders: false,
          standardHeaders: 'draft-8',
          store: erlTwinStore(name),
          validate: false,
        }),
      )
    }
    theirs.get('/', (_req, res) => {
      res.send('ok')
    })
    const a = await request(ours).get('/')
    const b = await request(theirs).get('/')
    assert.equal(a.headers.ratelimit, b.headers.ratelimit)
    assert.equal(a.headers['ratelimit-policy'], b.headers['ratelimit-policy'])
    assert.match(a.headers.ratelimit!, /^"5-in-1hr"; r=4; t=\d+, "9-in-1hr"; r=8; t=\d+$/)
  })

  test('draft-8 after a handler that set the fields as lists of values: appended after each value', async () => {
    mock.timers.enable({ apis: ['Date'], now: NOW })
    const earlier: express.RequestHandler = (_req, res, next) => {
      res.setHeader('RateLimit', ['"a"; r=1; t=9', '"b"; r=2; t=9'])
      res.setHeader('RateLimit-Policy', ['"a"; q=3; w=9', '"b"; q=4; w=9'])
      next()
    }
    const ours = express()
    ours.use(earlier)
    ours.use(
      rateLimit({
        client,
        prefix: uniquePrefix('o'),
        name: 'list',
        limit: 5,
        windowMs: WINDOW,
        headers: 'draft-8',
      }),
    )
    const theirs = express()
    theirs.use(earlier)
    theirs.use(
      expressRateLimit({
        windowMs: WINDOW,
        limit: 5,
        legacyHeaders: false,
        standardHeaders: 'draft-8',
        store: erlTwinStore('list'),
        validate: false,
      }),
    )
    for (const app of [ours, theirs]) {
      app.get('/', (_req, res) => {
        res.send('ok')
      })
    }
    const a = await request(ours).get('/')
    const b = await request(theirs).get('/')
    assert.equal(a.headers.ratelimit, b.headers.ratelimit)
    assert.equal(a.headers['ratelimit-policy'], b.headers['ratelimit-policy'])
    assert.match(a.headers.ratelimit!, /^"a"; r=1; t=9, "b"; r=2; t=9, "5-in-1hr"; r=4; t=\d+$/)
    assert.match(
      a.headers['ratelimit-policy']!,
      /^"a"; q=3; w=9, "b"; q=4; w=9, "5-in-1hr"; q=5; w=3600; pk=:/,
    )
  })
})

test("resetFormat 'delta' matches @fastify/rate-limit's x-ratelimit-reset and retry-after", async () => {
  mock.timers.enable({ apis: ['Date'], now: NOW })
  const name = 'cmp-frl'
  const ours = Fastify()
  await ours.register(fastifyRateLimit, {
    client,
    prefix: uniquePrefix('ours'),
    name,
    limit: 2,
    windowMs: WINDOW,
    resetFormat: 'delta',
  })
  ours.get('/', async () => 'ok')
  const limiter = twin(name)
  class TwinStore {
    incr(key: string, cb: (e: Error | null, r?: { current: number; ttl: number }) => void) {
      limiter.consume(key, { limit: Number.MAX_SAFE_INTEGER }).then(
        (r) => cb(null, { current: r.used, ttl: r.resetTime - Date.now() }),
        (e: Error) => cb(e),
      )
    }
    child() {
      return this
    }
  }
  const theirs = Fastify()
  await theirs.register(frl, { max: 2, timeWindow: WINDOW, store: TwinStore })
  theirs.get('/', async () => 'ok')
  for (let i = 0; i < 4; i++) {
    const a = await ours.inject('/')
    const b = await theirs.inject('/')
    assert.equal(a.statusCode, b.statusCode)
    const mine = rateHeaders({ status: a.statusCode, headers: a.headers as Record<string, string>, body: '' })
    const peer = rateHeaders({ status: b.statusCode, headers: b.headers as Record<string, string>, body: '' })
    assert.deepEqual(mine, peer, `request ${i + 1}`)
  }
  await ours.close()
  await theirs.close()
})
