import assert from 'node:assert/strict'
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, test } from 'node:test'
import { createClient } from '@memkit/client'
import { captureWarnings, useMemcached, waitUntil } from '@memkit/testing'
import express, { type ErrorRequestHandler } from 'express'
import request from 'supertest'
import { type ExpressRateLimitOptions, rateLimit } from '../src/express.js'
import type { RateLimitInfo } from '../src/info.js'
import { countCommands, uniquePrefix } from './helpers.js'

const { server: mc, client } = await useMemcached({ createClient })

function limiter(options: Partial<ExpressRateLimitOptions> = {}) {
  return rateLimit({ client, prefix: uniquePrefix('ex'), windowMs: '1 hour', ...options })
}

const errorHandler: ErrorRequestHandler = (error, _req, res, _next) => {
  res.status(500).json({ code: (error as { code?: string }).code ?? 'unknown' })
}

describe('Express middleware', () => {
  test('app-wide and per-route limiters count separately, each in one memcached command per request', async () => {
    const app = express()
    app.use(limiter({ limit: 10 }))
    app.get('/login', limiter({ limit: 2 }), (_req, res) => {
      res.send('login')
    })
    app.get('/', (_req, res) => {
      res.send('home')
    })
    const commands = countCommands()
    const login = []
    for (let i = 0; i < 3; i++) login.push(await request(app).get('/login'))
    const home = await request(app).get('/')
    commands.stop()
    assert.deepEqual(
      login.map((r) => r.status),
      [200, 200, 429],
    )
    // The last header written wins: the route limiter's.
    assert.equal(login[0]!.headers['x-ratelimit-limit'], '2')
    assert.equal(home.headers['x-ratelimit-limit'], '10')
    assert.equal(home.headers['x-ratelimit-remaining'], '6')
    assert.equal(commands.count(), 3 * 2 + 1)
    assert.ok(commands.events.every((e) => e.command === 'incr'))
  })

  test('sliding window: two pipelined commands per request', async () => {
    const app = express()
    app.use(limiter({ limit: 10, algorithm: 'sliding' }))
    app.get('/', (_req, res) => {
      res.send('ok')
    })
    const commands = countCommands()
    for (let i = 0; i < 3; i++) await request(app).get('/')
    commands.stop()
    assert.equal(commands.count(), 6)
  })

  test('req.rateLimit carries the decision (requestPropertyName renames it)', async () => {
    const app = express()
    app.use(limiter({ limit: 3, requestPropertyName: 'quota' }))
    app.get('/', (req, res) => {
      res.json((req as unknown as { quota: RateLimitInfo }).quota)
    })
    const res = await request(app).get('/')
    assert.equal(res.body.limit, 3)
    assert.equal(res.body.used, 1)
    assert.equal(res.body.remaining, 2)
    assert.equal(res.body.allowed, true)
    assert.equal(res.body.source, 'store')
    assert.equal(res.body.key, '::ffff:127.0.0.1'.replace('::ffff:', ''))
    assert.ok(Date.parse(res.body.resetTime) > Date.now())
  })

  test('handler replaces the blocked response; status and headers are already set', async () => {
    const app = express()
    let seen: RateLimitInfo | undefined
    app.use(
      limiter({
        limit: 1,
        handler: (_req, res, _next, info) => {
          seen = info
          res.send(`wait ${info.retryAfter}s`)
        },
      }),
    )
    app.get('/', (_req, res) => {
      res.send('ok')
    })
    await request(app).get('/')
    const res = await request(app).get('/')
    assert.equal(res.status, 429)
    assert.equal(res.text, `wait ${seen!.retryAfter}s`)
    assert.equal(res.headers['retry-after'], String(seen!.retryAfter))
    assert.equal(res.headers['x-ratelimit-remaining'], '0')
  })

  test('trust proxy off: X-Forwarded-For does not change the key', async () => {
    const app = express()
    app.use(limiter({ limit: 1 }))
    app.get('/', (_req, res) => {
      res.send('ok')
    })
    const warnings = captureWarnings('MEMKIT_RATE_LIMIT_UNEXPECTED_X_FORWARDED_FOR')
    try {
      const a = await request(app).get('/').set('X-Forwarded-For', '198.51.100.1')
      const b = await request(app).get('/').set('X-Forwarded-For', '198.51.100.2')
      assert.deepEqual([a.status, b.status], [200, 429])
    } finally {
      warnings.restore()
    }
    assert.equal(warnings.items.length, 1, 'the set-up is reported once')
  })

  test('a failing keyGenerator or limit reaches the error handler; a failing hook changes nothing', async () => {
    const app = express()
    app.get('/key', limiter({ keyGenerator: () => Promise.reject(new Error('no user')) }), (_req, res) => {
      res.send('ok')
    })
    app.get('/limit', limiter({ limit: () => -3 }), (_req, res) => {
      res.send('ok')
    })
    app.get('/key-type', limiter({ keyGenerator: () => ({}) as unknown as string }), (_req, res) => {
      res.send('ok')
    })
    const warnings: string[] = []
    app.get(
      '/hooks',
      limiter({
        limit: 0,
        onBlocked: () => {
          throw new Error('hook broke')
        },
        onLimitReached: async () => {
          throw new Error('async hook broke')
        },
        onError: (error) => warnings.push(error.message),
      }),
      (_req, res) => {
        res.send('ok')
      },
    )
    app.use(errorHandler)
    assert.equal((await request(app).get('/key')).status, 500)
    const limit = await request(app).get('/limit')
    assert.deepEqual([limit.status, limit.body.code], [500, 'ERR_MEMKIT_INVALID_ARGUMENT'])
    assert.deepEqual((await request(app).get('/key-type')).body, { code: 'ERR_MEMKIT_INVALID_ARGUMENT' })
    assert.equal((await request(app).get('/hooks')).status, 429)
    // The async hook's rejection is reported when it settles, which may be after the response.
    await waitUntil(() => warnings.length === 2, { message: 'both hook failures reported' })
    assert.deepEqual(warnings.sort(), ['async hook broke', 'hook broke'])
  })

  test('skipFailedRequests: a request whose client hangs up before the response is taken back', async () => {
    const app = express()
    const middleware = limiter({ limit: 5, skipFailedRequests: true, keyGenerator: () => 'hangup' })
    app.use(middleware)
    let arrived!: () => void
    const reached = new Promise<void>((resolve) => {
      arrived = resolve
    })
    // The handler never answers: the client hangs up first, whatever the machine's speed.
    app.get('/slow', () => arrived())
    const server = app.listen(0, '127.0.0.1')
    await new Promise((resolve) => server.once('listening', resolve))
    try {
      const { port } = server.address() as AddressInfo
      const req = httpRequest({ host: '127.0.0.1', port, path: '/slow' })
      req.on('error', () => {})
      req.end()
      await reached
      assert.equal((await middleware.limiter.peek('hangup')).used, 1, 'counted while in progress')
      req.destroy()
      await waitUntil(async () => (await middleware.limiter.peek('hangup')).used === 0, {
        message: 'the hung-up request is taken back',
      })
    } finally {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  })

  test('metrics() and resetKey() on the middleware', async () => {
    const app = express()
    const middleware = limiter({ limit: 2 })
    app.use(middleware)
    app.get('/', (_req, res) => {
      res.send('ok')
    })
    for (let i = 0; i < 4; i++) await request(app).get('/')
    const snapshot = middleware.metrics()
    assert.deepEqual([snapshot.totals.allowed, snapshot.totals.blocked], [2, 2])
    assert.equal(snapshot.perMinute.at(-1)!.blocked, 2)
    await middleware.resetKey('127.0.0.1')
    assert.equal((await request(app).get('/')).status, 200)
  })

  test('servers: the middleware opens its own client and close() closes it', async () => {
    const middleware = rateLimit({ servers: mc.address, prefix: uniquePrefix('own'), limit: 1 })
    const app = express()
    app.use(middleware)
    app.get('/', (_req, res) => {
      res.send('ok')
    })
    assert.equal((await request(app).get('/')).status, 200)
    assert.equal((await request(app).get('/')).status, 429)
    await middleware.close()
    assert.equal(middleware.limiter.client.closed, true)
  })

  test('mounting one limiter twice on a request is reported once', async () => {
    const app = express()
    const middleware = limiter({ limit: 10 })
    app.use(middleware)
    app.get('/', middleware, (_req, res) => {
      res.send('ok')
    })
    const warnings = captureWarnings('MEMKIT_RATE_LIMIT_DOUBLE_COUNT')
    try {
      await request(app).get('/')
      await request(app).get('/')
      // process.emitWarning emits on the next tick: one turn of the event loop delivers them all.
      await new Promise(setImmediate)
    } finally {
      warnings.restore()
    }
    assert.equal(warnings.items.length, 1)
  })

  test('invalid options throw ERR_MEMKIT_INVALID_OPTION when the middleware is created, naming the right form', () => {
    const bad: Array<[Record<string, unknown>, RegExp?]> = [
      [{ handler: 'nope' }],
      [{ requestPropertyName: 5 }],
      [
        { headers: 'draft-9' },
        /^`headers` must be 'legacy', 'draft-6', 'draft-7', 'draft-8', an array of those, or 'none'; got "draft-9"$/,
      ],
      [
        { headers: ['draft-6', 'draft-7'] },
        /^`headers` may hold only one of draft-6 and draft-7 \(both set RateLimit-Policy\)$/,
      ],
      [{ headers: ['legacy', 'legacy'] }, /^`headers` lists a format twice$/],
      [{ resetFormat: 'iso' }, /^`resetFormat` must be one of 'epoch', 'delta'; got the string "iso"$/],
      [{ retryAfterHeader: 'yes' }, /^`retryAfterHeader` must be true or false; got the string "yes"$/],
      [{ statusCode: 200 }],
      [{ ipv6Subnet: 0 }],
      [{ ipv6Subnet: 129 }],
      [{ limit: 'many' }],
      [{ cost: -1 }],
      [{ cost: 1, skip: 'always' }],
      [{ message: 5 }],
      [{ policyName: 5 }, /^`policyName` must be a string or a function$/],
      [{ onBlocked: 'log' }],
      [{ keyGenerator: 'ip' }],
      [{ max: 5 }],
    ]
    for (const [options, message] of bad) {
      assert.throws(
        () => rateLimit({ client, ...options } as ExpressRateLimitOptions),
        message ? { code: 'ERR_MEMKIT_INVALID_OPTION', message } : { code: 'ERR_MEMKIT_INVALID_OPTION' },
        JSON.stringify(options),
      )
    }
    for (const policyName of ['api', () => 'api']) {
      assert.doesNotThrow(() => rateLimit({ client, headers: 'draft-8', policyName }), String(policyName))
    }
  })
})
