// stale-while-revalidate (one background refresh) and stale-if-error (handler throws or answers
// 5xx), through both adapters against a real memcached.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { cacheTestbed, FRAMEWORKS, type Route, until } from './harness.js'

const { withApp } = await cacheTestbed('st')

/** Headers of a response that is already stale when it arrives: 10 s old, 5 s of freshness. */
const staleAtOnce = (cc: string, extra: Record<string, string> = {}) => ({
  date: new Date(Date.now() - 10_000).toUTCString(),
  'cache-control': cc,
  ...extra,
})

for (const framework of FRAMEWORKS) {
  describe(`stale responses (${framework})`, () => {
    test('stale-while-revalidate serves stale at once and runs exactly one background refresh', async () => {
      // The refresh is held until the burst is answered, so every request of it sees the stale entry.
      let open!: () => void
      const gate = new Promise<void>((resolve) => {
        open = resolve
      })
      await withApp(
        framework,
        [
          {
            path: '/swr',
            handler: async (_req, call) => {
              if (call === 1)
                return { headers: staleAtOnce('max-age=5, stale-while-revalidate=60'), body: 'old' }
              await gate
              return { headers: { 'cache-control': 'max-age=60' }, body: 'new' }
            },
          },
        ],
        async (app) => {
          await app.request('/swr')
          const burst = await Promise.all(Array.from({ length: 20 }, () => app.request('/swr')))
          open()
          for (const res of burst) {
            assert.equal(res.text, 'old')
            assert.equal(res.headers['x-cache'], 'STALE')
            assert.match(
              res.headers['cache-status']!,
              /^memkit; hit; ttl=-\d+; detail=stale-while-revalidate$/,
            )
          }
          await until(() => app.calls('/swr') === 2 && app.metrics().total.stored === 2)
          const fresh = await app.request('/swr')
          assert.equal(fresh.headers['x-cache'], 'HIT')
          assert.equal(fresh.text, 'new')
          assert.equal(app.calls('/swr'), 2)
          assert.equal(app.metrics().total.refreshes, 1)
        },
      )
    })

    test('a route-level staleWhileRevalidate applies when the response allows stale use', async () => {
      await withApp(
        framework,
        [
          {
            path: '/route-swr',
            cache: { staleWhileRevalidate: 30 },
            handler: (_req, call) => ({ headers: staleAtOnce('max-age=5'), body: `v${call}` }),
          },
          {
            path: '/must-revalidate',
            cache: { staleWhileRevalidate: 30 },
            handler: (_req, call) => ({
              headers: staleAtOnce('max-age=5, must-revalidate', { etag: `"m${call}"` }),
              body: `m${call}`,
            }),
          },
        ],
        async (app) => {
          await app.request('/route-swr')
          const stale = await app.request('/route-swr')
          assert.equal(stale.headers['x-cache'], 'STALE')
          assert.equal(stale.text, 'v1')
          await until(() => app.calls('/route-swr') === 2)

          // must-revalidate forbids serving stale: the request waits for the handler.
          await app.request('/must-revalidate')
          const revalidated = await app.request('/must-revalidate')
          assert.equal(revalidated.headers['x-cache'], 'MISS')
          assert.equal(revalidated.text, 'm2')
        },
      )
    })

    test('must-revalidate and proxy-revalidate forbid every stale use: explicit stale-while-revalidate and stale-if-error, route defaults', async () => {
      const forbidding = [
        ['must-revalidate', '/must'],
        ['proxy-revalidate', '/proxy'],
        ['Proxy-Revalidate', '/proxy-mixed-case'],
      ] as const
      const routes: Route[] = [...forbidding, ['', '/allowed'] as const].map(([directive, path]) => ({
        path,
        cache: { staleWhileRevalidate: 30, staleIfError: 60 },
        handler: (_req, call) =>
          call === 1
            ? {
                headers: staleAtOnce(
                  `max-age=5, stale-while-revalidate=30, stale-if-error=60${directive ? `, ${directive}` : ''}`,
                  { etag: '"v1"' },
                ),
                body: 'v1',
              }
            : { status: 503, body: 'down' },
      }))
      await withApp(framework, routes, async (app) => {
        // Without the directive the stale entry is served (and refreshed in the background).
        await app.request('/allowed')
        const served = await app.request('/allowed')
        assert.equal(served.headers['x-cache'], 'STALE')
        assert.equal(served.text, 'v1')
        for (const [directive, path] of forbidding) {
          await app.request(path)
          // The request waits for the handler, and its failure reaches the client as it is.
          const res = await app.request(path)
          assert.equal(res.status, 503, directive)
          assert.equal(res.text, 'down', directive)
          assert.equal(res.headers['x-cache'], 'MISS', directive)
          assert.equal(app.calls(path), 2, directive)
        }
      })
    })

    test('stale-if-error serves the stale entry when the handler throws or answers 5xx', async () => {
      await withApp(
        framework,
        [
          {
            path: '/sie',
            handler: (_req, call) =>
              call === 1
                ? { headers: staleAtOnce('max-age=5, stale-if-error=60'), body: 'last good' }
                : call === 2
                  ? { throws: true }
                  : { status: 503, body: 'down' },
          },
          {
            path: '/no-sie',
            handler: (_req, call) =>
              call === 1
                ? { headers: staleAtOnce('max-age=5'), body: 'old' }
                : { status: 502, body: 'bad gateway' },
          },
          {
            path: '/route-sie',
            cache: { staleIfError: 30 },
            handler: (_req, call) =>
              call === 1 ? { headers: staleAtOnce('max-age=5'), body: 'kept' } : { throws: true },
          },
        ],
        async (app) => {
          await app.request('/sie')
          for (const status of [500, 503]) {
            const res = await app.request('/sie')
            assert.equal(res.status, 200)
            assert.equal(res.text, 'last good')
            assert.equal(res.headers['x-cache'], 'STALE')
            assert.equal(
              res.headers['cache-status'],
              `memkit; fwd=stale; fwd-status=${status}; detail=stale-if-error`,
            )
          }
          assert.equal(app.calls('/sie'), 3)

          await app.request('/no-sie')
          const failed = await app.request('/no-sie')
          assert.equal(failed.status, 502)
          assert.equal(failed.text, 'bad gateway')

          await app.request('/route-sie')
          const kept = await app.request('/route-sie')
          assert.equal(kept.status, 200)
          assert.equal(kept.text, 'kept')
        },
      )
    })

    test('stale-if-error does not reach past its window', async () => {
      await withApp(
        framework,
        [
          {
            path: '/old',
            handler: (_req, call) =>
              call === 1
                ? {
                    headers: {
                      date: new Date(Date.now() - 100_000).toUTCString(),
                      'cache-control': 'max-age=5, stale-if-error=10',
                      etag: '"e"',
                    },
                    body: 'too old',
                  }
                : { status: 500, body: 'error' },
          },
        ],
        async (app) => {
          await app.request('/old')
          const res = await app.request('/old')
          assert.equal(res.status, 500)
          assert.equal(res.text, 'error')
        },
      )
    })
  })
}
