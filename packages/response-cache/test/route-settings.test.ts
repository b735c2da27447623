// Route settings apply however the cache is mounted: every combination of app-level and
// route-level use, on both frameworks. Each route answers without Cache-Control, so only a `ttl`
// (from the settings that apply) makes it storable, and only the tags of those settings purge it.
import assert from 'node:assert/strict'
import type { Server } from 'node:http'
import { describe, test } from 'node:test'
import express, { type RequestHandler } from 'express'
import Fastify from 'fastify'
import supertest from 'supertest'
import { responseCache } from '../src/express.js'
import fastifyResponseCache from '../src/fastify.js'
import type { RouteCacheOptions } from '../src/index.js'
import { cacheTestbed } from './harness.js'

const bed = await cacheTestbed('rs')
let n = 0
const prefix = () => `rs${++n}:`
const host = 'shop.example'

interface Probe {
  /** GET the path; the X-Cache and body. */
  get(
    path: string,
    headers?: Record<string, string>,
  ): Promise<{ xcache: string | undefined; body: string; status: string }>
  calls(path: string): number
  close(): Promise<void>
}

/** Runs `fn` against an Express app built by `mount`, closing it whatever happens. */
async function withExpress(
  mount: (app: express.Express, handler: (path: string) => RequestHandler) => void,
  fn: (probe: Probe) => Promise<void>,
): Promise<void> {
  const probe = await expressProbe(mount)
  try {
    await fn(probe)
  } finally {
    await probe.close()
  }
}

/** An Express app built by `mount`, whose handlers count calls and answer `path #call`. */
async function expressProbe(
  mount: (app: express.Express, handler: (path: string) => RequestHandler) => void,
): Promise<Probe> {
  const counts = new Map<string, number>()
  const app = express()
  app.set('etag', false)
  mount(app, (path) => (_req, res) => {
    const call = (counts.get(path) ?? 0) + 1
    counts.set(path, call)
    res.send(`${path} #${call}`)
  })
  const server: Server = app.listen(0, '127.0.0.1')
  await new Promise<void>((resolve) => server.once('listening', () => resolve()))
  const agent = supertest(server)
  return {
    async get(path, headers = {}) {
      const res = await agent.get(path).set('host', host).set(headers)
      return { xcache: res.headers['x-cache'], body: res.text, status: res.headers['cache-status'] ?? '' }
    },
    calls: (path) => counts.get(path) ?? 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** Asserts the route is stored (second GET a HIT) and that `tag` purges it; returns nothing. */
async function storedUnder(probe: Probe, path: string, invalidate: () => Promise<void>): Promise<void> {
  const first = await probe.get(path)
  assert.equal(first.xcache, 'MISS', `${path}: ${first.status}`)
  assert.match(first.status, /stored/, path)
  assert.equal((await probe.get(path)).xcache, 'HIT', path)
  await invalidate()
  const after = await probe.get(path)
  assert.equal(after.xcache, 'MISS', `${path} purged by its tag`)
  assert.equal(probe.calls(path), 2, path)
}

async function notStored(probe: Probe, path: string, detail: RegExp): Promise<void> {
  const first = await probe.get(path)
  assert.match(first.status, detail, path)
  assert.notEqual((await probe.get(path)).xcache, 'HIT', path)
  assert.equal(probe.calls(path), 2, path)
}

describe('Express: app-level and route-level use', () => {
  test('app.use(cache) alone: the app-level settings', async () => {
    const cache = responseCache({ client: bed.client, keyPrefix: prefix(), ttl: 60, tags: ['site'] })
    await withExpress(
      (app, h) => {
        app.use(cache)
        app.get('/a', h('/a'))
      },
      async (probe) => {
        await storedUnder(probe, '/a', () => cache.invalidateTag('site'))
      },
    )
  })

  test('a route-level middleware alone: its settings', async () => {
    const cache = responseCache({ client: bed.client, keyPrefix: prefix(), ttl: 60, tags: ['r'] })
    await withExpress(
      (app, h) => app.get('/a', cache, h('/a')),
      async (probe) => {
        await storedUnder(probe, '/a', () => cache.invalidateTag('r'))
      },
    )
  })

  test('cache.route() alone, without app.use: its settings', async () => {
    const cache = responseCache({ client: bed.client, keyPrefix: prefix() })
    await withExpress(
      (app, h) => app.get('/a', cache.route({ ttl: 60, tags: ['r'] }), h('/a')),
      async (probe) => {
        await storedUnder(probe, '/a', () => cache.invalidateTag('r'))
      },
    )
  })

  test('app.use(cache) with cache.route({ ttl, tags }) on a route: the route settings apply (they were ignored)', async () => {
    const cache = responseCache({ client: bed.client, keyPrefix: prefix() })
    await withExpress(
      (app, h) => {
        app.use(cache)
        app.get('/products', cache.route({ ttl: 60, tags: ['products'] }), h('/products'))
        app.get('/plain', h('/plain'))
      },
      async (probe) => {
        await storedUnder(probe, '/products', () => cache.invalidateTag('products'))
        // A route without its own settings keeps the app-level ones (no ttl: not stored).
        await notStored(probe, '/plain', /detail=no-freshness/)
      },
    )
  })

  test('app.use(cache) with another responseCache() on a route: the route-level cache and its settings', async () => {
    const site = responseCache({ client: bed.client, keyPrefix: prefix(), ttl: 5, tags: ['site'] })
    const own = responseCache({ client: bed.client, keyPrefix: prefix(), ttl: 60, tags: ['own'] })
    await withExpress(
      (app, h) => {
        app.use(site)
        app.get('/a', own, h('/a'))
      },
      async (probe) => {
        await storedUnder(probe, '/a', () => own.invalidateTag('own'))
        assert.equal(site.metrics().total.stored, 0, 'the app-level cache stored nothing')
      },
    )
  })

  test('router.use(cache) in a sub-router with cache.route() on its route: the route settings', async () => {
    const cache = responseCache({ client: bed.client, keyPrefix: prefix() })
    await withExpress(
      (app, h) => {
        const router = express.Router()
        router.use(cache)
        router.get('/a', cache.route({ ttl: 60, tags: ['api'] }), h('/api/a'))
        app.use('/api', router)
      },
      async (probe) => {
        await storedUnder(probe, '/api/a', () => cache.invalidateTag('api'))
      },
    )
  })

  test('route shareability applies both ways: a shareable route stores Cookie requests; a stricter route is not answered by a looser app-level layer', async () => {
    const cache = responseCache({
      client: bed.client,
      keyPrefix: prefix(),
      ttl: 60,
      shareable: { cookie: true },
    })
    await withExpress(
      (app, h) => {
        app.use(cache)
        app.get('/strict', cache.route({ shareable: false }), h('/strict'))
        app.get('/open', h('/open'))
      },
      async (probe) => {
        const cookie = { cookie: 'sid=1' }
        await probe.get('/open', cookie)
        assert.equal((await probe.get('/open', cookie)).xcache, 'HIT')
        // Stored by the strict route for a request without Cookie...
        await probe.get('/strict')
        assert.equal((await probe.get('/strict')).xcache, 'HIT')
        // ...it is not handed to a Cookie request by the app-level layer: the route bypasses.
        const withCookie = await probe.get('/strict', cookie)
        assert.equal(withCookie.xcache, 'BYPASS')
        assert.equal(withCookie.body, '/strict #2')
      },
    )
  })

  test('a route-level layer taking over sees the request as the client sent it (conditionals restored)', async () => {
    const cache = responseCache({ client: bed.client, keyPrefix: prefix() })
    const seen: Array<string | undefined> = []
    const app = express()
    app.set('etag', false)
    app.use(cache)
    app.get('/doc', cache.route({ tags: ['doc'] }), (req, res) => {
      seen.push(req.headers['if-none-match'])
      // Stored (it has a validator) and stale at once: every use revalidates.
      res.set({ 'cache-control': 'max-age=0', etag: '"v1"' })
      if (req.headers['if-none-match'] === '"v1"') res.status(304).end()
      else res.send('doc v1')
    })
    const server = app.listen(0, '127.0.0.1')
    try {
      const agent = supertest(server)
      await agent.get('/doc').set('host', host)
      const res = await agent.get('/doc').set('host', host).set('if-none-match', '"client"')
      assert.deepEqual(seen, [undefined, '"v1"'], "the stored validator, not the client's, and only once")
      assert.equal(res.status, 200, "the client's own If-None-Match does not match")
      assert.equal(res.text, 'doc v1')
      assert.equal(res.headers['cache-status'], 'memkit; fwd=stale; fwd-status=304; stored')
    } finally {
      server.closeAllConnections()
      server.close()
    }
  })

  test('two app-level layers: the first handles the request', async () => {
    const first = responseCache({ client: bed.client, keyPrefix: prefix(), ttl: 60, tags: ['first'] })
    const second = responseCache({ client: bed.client, keyPrefix: prefix(), ttl: 60, tags: ['second'] })
    await withExpress(
      (app, h) => {
        app.use(first)
        app.use(second)
        app.get('/a', h('/a'))
      },
      async (probe) => {
        await storedUnder(probe, '/a', () => first.invalidateTag('first'))
        assert.equal(second.metrics().total.miss, 0)
      },
    )
  })
})

describe('Fastify: plugin options and route config.cache', () => {
  type Setting = undefined | boolean | RouteCacheOptions
  const cases: Array<[global: boolean, route: Setting, expect: 'plugin' | 'route' | 'untouched']> = [
    [true, undefined, 'plugin'],
    [true, true, 'plugin'],
    [true, false, 'untouched'],
    [true, { ttl: 60, tags: ['route'] }, 'route'],
    [false, undefined, 'untouched'],
    [false, true, 'plugin'],
    [false, false, 'untouched'],
    [false, { ttl: 60, tags: ['route'] }, 'route'],
  ]
  for (const [global, setting, expect] of cases) {
    test(`global: ${global}, config.cache: ${JSON.stringify(setting)} -> ${expect} settings`, async () => {
      const counts = new Map<string, number>()
      const app = Fastify()
      await app.register(fastifyResponseCache, {
        client: bed.client,
        keyPrefix: prefix(),
        global,
        ttl: 60,
        tags: ['plugin'],
      })
      app.get('/a', setting === undefined ? {} : { config: { cache: setting } }, async () => {
        const call = (counts.get('/a') ?? 0) + 1
        counts.set('/a', call)
        return `/a #${call}`
      })
      await app.ready()
      const probe: Probe = {
        async get(path) {
          const res = await app.inject({ method: 'GET', url: path, headers: { host } })
          return {
            xcache: res.headers['x-cache'] as string | undefined,
            body: res.body,
            status: String(res.headers['cache-status'] ?? ''),
          }
        },
        calls: (path) => counts.get(path) ?? 0,
        close: () => app.close(),
      }
      try {
        if (expect === 'untouched') {
          const res = await probe.get('/a')
          assert.equal(res.xcache, undefined, 'the cache left the route alone')
          await probe.get('/a')
          assert.equal(probe.calls('/a'), 2)
        } else {
          await storedUnder(probe, '/a', () =>
            app.responseCache.invalidateTag(expect === 'route' ? 'route' : 'plugin'),
          )
          if (expect === 'route') {
            // The plugin's tag does not purge a route that set its own.
            await probe.get('/a')
            await app.responseCache.invalidateTag('plugin')
            assert.equal((await probe.get('/a')).xcache, 'HIT')
          }
        }
      } finally {
        await probe.close()
      }
    })
  }
})
