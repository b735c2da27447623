// RFC 9111 behaviour through both adapters against a real memcached: the same table runs on
// Express (supertest) and Fastify (inject).
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { rawCommand } from '@memkit/testing'
import express from 'express'
import supertest from 'supertest'
import { responseCache } from '../src/express.js'
import { KeySpace, originOf, rawUrlKey } from '../src/key.js'
import { cacheTestbed, FRAMEWORKS, type Route } from './harness.js'

/** Every app gets its own key prefix, so tests never see each other's entries. */
const { server, client, withApp } = await cacheTestbed('hs')

const pastDate = (secondsAgo: number) => new Date(Date.now() - secondsAgo * 1000).toUTCString()

for (const framework of FRAMEWORKS) {
  describe(`HTTP semantics (${framework})`, () => {
    test('a response with max-age is stored and served: HIT, Age, Cache-Status, one handler call', async () => {
      await withApp(
        framework,
        [{ path: '/a', handler: () => ({ headers: { 'cache-control': 'max-age=60' }, body: 'hello' }) }],
        async (app) => {
          const first = await app.request('/a')
          assert.equal(first.status, 200)
          assert.equal(first.headers['x-cache'], 'MISS')
          assert.equal(first.headers['cache-status'], 'memkit; fwd=uri-miss; stored')
          const second = await app.request('/a')
          assert.equal(second.headers['x-cache'], 'HIT')
          assert.match(second.headers['cache-status']!, /^memkit; hit; ttl=(59|60)$/)
          assert.equal(second.text, 'hello')
          assert.equal(second.headers['cache-control'], 'max-age=60')
          assert.match(second.headers.age!, /^\d+$/)
          assert.equal(second.headers['content-length'], '5')
          assert.equal(app.calls(), 1)
        },
      )
    })

    test('s-maxage beats max-age, max-age beats Expires, Expires works alone', async () => {
      const expires = new Date(Date.now() + 3600_000).toUTCString()
      await withApp(
        framework,
        [
          { path: '/s0', handler: () => ({ headers: { 'cache-control': 's-maxage=0, max-age=3600' } }) },
          { path: '/m0', handler: () => ({ headers: { 'cache-control': 'max-age=0', expires } }) },
          { path: '/exp', handler: () => ({ headers: { expires } }) },
        ],
        async (app) => {
          for (const path of ['/s0', '/m0', '/exp']) {
            await app.request(path)
            await app.request(path)
          }
          assert.equal(app.calls('/s0'), 2)
          assert.equal(app.calls('/m0'), 2)
          assert.equal(app.calls('/exp'), 1)
        },
      )
    })

    test('never stored: no-store, private, Set-Cookie, Vary: *, 5xx, no explicit freshness', async () => {
      const cases: Array<[string, Record<string, string>, number, string]> = [
        ['/no-store', { 'cache-control': 'max-age=60, no-store' }, 200, 'no-store'],
        ['/private', { 'cache-control': 'private, max-age=60' }, 200, 'private'],
        ['/cookie', { 'cache-control': 'max-age=60', 'set-cookie': 'sid=secret' }, 200, 'set-cookie'],
        ['/vary-star', { 'cache-control': 'max-age=60', vary: 'Accept, *' }, 200, 'vary-star'],
        ['/error', { 'cache-control': 'max-age=60' }, 503, 'status'],
        ['/plain', {}, 200, 'no-freshness'],
      ]
      await withApp(
        framework,
        cases.map(([path, headers, status]) => ({ path, handler: () => ({ status, headers, body: path }) })),
        async (app) => {
          for (const [path, , status, reason] of cases) {
            const first = await app.request(path)
            assert.equal(first.status, status)
            assert.equal(first.headers['x-cache'], 'MISS', path)
            assert.equal(first.headers['cache-status'], `memkit; fwd=uri-miss; detail=${reason}`, path)
            const second = await app.request(path)
            assert.equal(second.headers['x-cache'], 'MISS', path)
            assert.equal(app.calls(path), 2, path)
          }
          const notStored = app.metrics().total.notStored
          for (const [, , , reason] of cases) assert.equal(notStored[reason], 2, reason)
        },
      )
    })

    test('CDN-Cache-Control (and a targeted field named in the options) rules this cache and reaches the client', async () => {
      const routes: Route[] = [
        // Browsers revalidate, this cache keeps it a minute.
        {
          path: '/cdn',
          handler: () => ({ headers: { 'cache-control': 'no-cache', 'cdn-cache-control': 'max-age=60' } }),
        },
        // The targeted field says no-store: Cache-Control's max-age does not count here.
        {
          path: '/veto',
          handler: () => ({ headers: { 'cache-control': 'max-age=60', 'cdn-cache-control': 'no-store' } }),
        },
        // An invalid targeted field is ignored as a whole.
        {
          path: '/bad',
          handler: () => ({
            headers: { 'cache-control': 'max-age=60', 'cdn-cache-control': 'max-age=60, &&' },
          }),
        },
        // A field for this cache alone beats CDN-Cache-Control when the options list it first.
        {
          path: '/own',
          handler: () => ({
            headers: { 'cdn-cache-control': 'max-age=60', 'memkit-cache-control': 'private' },
          }),
        },
      ]
      await withApp(
        framework,
        routes,
        async (app) => {
          for (const path of ['/cdn', '/veto', '/bad', '/own']) {
            await app.request(path)
            await app.request(path)
          }
          assert.equal(app.calls('/cdn'), 1)
          assert.equal(app.calls('/veto'), 2)
          assert.equal(app.calls('/bad'), 1)
          assert.equal(app.calls('/own'), 2)
          const hit = await app.request('/cdn')
          assert.equal(hit.headers['x-cache'], 'HIT')
          assert.equal(hit.headers['cdn-cache-control'], 'max-age=60', 'passed on to a CDN in front')
          assert.equal(hit.headers['cache-control'], 'no-cache')
        },
        { targetedCacheControl: ['Memkit-Cache-Control', 'CDN-Cache-Control'] },
      )
    })

    test('Authorization and Cookie requests bypass the cache unless the route declares them shareable', async () => {
      await withApp(
        framework,
        [
          {
            path: '/default',
            handler: () => ({ headers: { 'cache-control': 'public, max-age=60' }, body: 'x' }),
          },
          {
            path: '/shared-needs-public',
            cache: { shareable: true },
            handler: () => ({ headers: { 'cache-control': 'max-age=60' }, body: 'for-ann' }),
          },
          {
            path: '/shared-public',
            cache: { shareable: true },
            handler: () => ({ headers: { 'cache-control': 'public, max-age=60' }, body: 'for-all' }),
          },
          {
            path: '/cookie-ok',
            cache: { shareable: { cookie: true } },
            handler: () => ({ headers: { 'cache-control': 'max-age=60' }, body: 'c' }),
          },
        ],
        async (app) => {
          const auth = { authorization: 'Bearer ann' }
          const bypassed = await app.request('/default', { headers: auth })
          assert.equal(bypassed.headers['x-cache'], 'BYPASS')
          assert.equal(bypassed.headers['cache-status'], 'memkit; fwd=bypass; detail=authorization')
          const cookie = await app.request('/default', { headers: { cookie: 'sid=1' } })
          assert.equal(cookie.headers['cache-status'], 'memkit; fwd=bypass; detail=cookie')
          assert.equal((await app.request('/default')).headers['x-cache'], 'MISS')
          assert.equal(app.calls('/default'), 3)

          // Shareable, but the response does not allow reuse for other users (RFC 9111 §3.5).
          const ann = await app.request('/shared-needs-public', { headers: auth })
          assert.equal(ann.headers['cache-status'], 'memkit; fwd=uri-miss; detail=authorization')
          const anon = await app.request('/shared-needs-public')
          assert.equal(anon.headers['x-cache'], 'MISS')
          assert.equal(app.calls('/shared-needs-public'), 2)

          await app.request('/shared-public', { headers: auth })
          const reuse = await app.request('/shared-public')
          assert.equal(reuse.headers['x-cache'], 'HIT')
          assert.equal(reuse.text, 'for-all')

          await app.request('/cookie-ok', { headers: { cookie: 'a=1' } })
          assert.equal(
            (await app.request('/cookie-ok', { headers: { cookie: 'a=2' } })).headers['x-cache'],
            'HIT',
          )
          // Authorization is still not shareable on that route.
          assert.equal((await app.request('/cookie-ok', { headers: auth })).headers['x-cache'], 'BYPASS')
        },
      )
    })

    test('a route ttl applies only without explicit freshness, and only to statuses cacheable by default', async () => {
      await withApp(
        framework,
        [
          { path: '/ttl', cache: { ttl: 60 }, handler: () => ({ body: 'plain' }) },
          {
            path: '/ttl-but-max-age-0',
            cache: { ttl: 60 },
            handler: () => ({ headers: { 'cache-control': 'max-age=0' } }),
          },
          { path: '/ttl-201', cache: { ttl: 60 }, handler: () => ({ status: 201 }) },
          { path: '/ttl-404', cache: { ttl: 60 }, handler: () => ({ status: 404, body: 'nope' }) },
        ],
        async (app) => {
          for (const path of ['/ttl', '/ttl-but-max-age-0', '/ttl-201', '/ttl-404']) {
            await app.request(path)
            await app.request(path)
          }
          assert.equal(app.calls('/ttl'), 1)
          assert.equal(app.calls('/ttl-but-max-age-0'), 2)
          assert.equal(app.calls('/ttl-201'), 2)
          assert.equal(app.calls('/ttl-404'), 1)
          const cached404 = await app.request('/ttl-404')
          assert.equal(cached404.status, 404)
          assert.equal(cached404.text, 'nope')
        },
      )
    })

    test('HEAD is answered from the GET entry and never stored itself', async () => {
      await withApp(
        framework,
        [
          {
            path: '/h',
            handler: () => ({ headers: { 'cache-control': 'max-age=60' }, body: 'twelve bytes' }),
          },
        ],
        async (app) => {
          const headMiss = await app.request('/h', { method: 'HEAD' })
          assert.equal(headMiss.headers['x-cache'], 'MISS')
          assert.equal((await app.request('/h', { method: 'HEAD' })).headers['x-cache'], 'MISS')
          await app.request('/h')
          const head = await app.request('/h', { method: 'HEAD' })
          assert.equal(head.headers['x-cache'], 'HIT')
          assert.equal(head.headers['content-length'], '12')
          assert.equal(head.body.length, 0)
          assert.equal(app.calls(), 3)
        },
      )
    })

    test('a stale entry is revalidated with its validators; a 304 from the handler freshens stored headers', async () => {
      await withApp(
        framework,
        [
          {
            path: '/r',
            handler: (req, call) => {
              if (call === 1) {
                return {
                  headers: {
                    // Ten seconds old with five seconds of freshness: stale at once.
                    date: pastDate(10),
                    'cache-control': 'max-age=5',
                    etag: '"v1"',
                    'last-modified': pastDate(100),
                    'x-version': 'a',
                  },
                  body: 'stored body',
                }
              }
              assert.equal(req.headers['if-none-match'], '"v1"')
              assert.ok(req.headers['if-modified-since'], "req.headers['if-modified-since']")
              return {
                status: 304,
                headers: { 'cache-control': 'max-age=60', 'x-version': 'b', etag: '"v1"' },
              }
            },
          },
        ],
        async (app) => {
          await app.request('/r')
          const revalidated = await app.request('/r')
          assert.equal(revalidated.status, 200)
          assert.equal(revalidated.text, 'stored body')
          assert.equal(revalidated.headers['x-version'], 'b')
          assert.equal(revalidated.headers['cache-control'], 'max-age=60')
          assert.equal(revalidated.headers['cache-status'], 'memkit; fwd=stale; fwd-status=304; stored')
          const hit = await app.request('/r')
          assert.equal(hit.headers['x-cache'], 'HIT')
          assert.equal(hit.headers['x-version'], 'b')
          assert.equal(hit.text, 'stored body')
          assert.equal(app.calls('/r'), 2)
          assert.equal(app.metrics().total.revalidated, 1)
        },
      )
    })

    test('no-cache="fields": the fields listed, in any case, are sent to the client that filled and never stored', async () => {
      await withApp(
        framework,
        [
          {
            path: '/fields',
            handler: (_req, call) => ({
              headers: {
                'cache-control': 'max-age=60, no-cache="X-User, x-TRACE"',
                'x-user': `user ${call}`,
                'X-Trace': `trace ${call}`,
                'x-kept': `kept ${call}`,
              },
              body: 'page',
            }),
          },
        ],
        async (app) => {
          const filled = await app.request('/fields')
          assert.equal(filled.headers['x-cache'], 'MISS')
          assert.deepEqual(
            [filled.headers['x-user'], filled.headers['x-trace'], filled.headers['x-kept']],
            ['user 1', 'trace 1', 'kept 1'],
          )
          const hit = await app.request('/fields')
          assert.equal(hit.headers['x-cache'], 'HIT')
          assert.equal(hit.text, 'page')
          assert.deepEqual(
            [hit.headers['x-user'], hit.headers['x-trace'], hit.headers['x-kept']],
            [undefined, undefined, 'kept 1'],
          )
          assert.equal(
            app.calls('/fields'),
            1,
            'a qualified no-cache does not make the response need revalidation',
          )
        },
      )
    })

    test('no-cache is stored but revalidated on every use', async () => {
      await withApp(
        framework,
        [
          {
            path: '/nc',
            handler: (req, call) =>
              call === 1
                ? { headers: { 'cache-control': 'no-cache', etag: '"n1"' }, body: 'body' }
                : req.headers['if-none-match'] === '"n1"'
                  ? { status: 304, headers: { etag: '"n1"' } }
                  : { status: 500 },
          },
        ],
        async (app) => {
          await app.request('/nc')
          for (let i = 0; i < 2; i++) {
            const res = await app.request('/nc')
            assert.equal(res.status, 200)
            assert.equal(res.text, 'body')
            assert.equal(res.headers['cache-status'], 'memkit; fwd=stale; fwd-status=304; stored')
          }
          assert.equal(app.calls('/nc'), 3)
        },
      )
    })

    test('client conditionals: If-None-Match (weak, lists, *) and If-Modified-Since answer 304 with ETag and Cache-Control', async () => {
      const lastModified = pastDate(3600)
      await withApp(
        framework,
        [
          {
            path: '/c',
            handler: () => ({
              headers: { 'cache-control': 'max-age=60', etag: '"abc"', 'last-modified': lastModified },
              body: 'content',
            }),
          },
        ],
        async (app) => {
          // The first request is conditional too: the handler still produces the full response to store.
          const first = await app.request('/c', { headers: { 'if-none-match': '"abc"' } })
          assert.equal(first.status, 304)
          assert.equal(first.headers['cache-status'], 'memkit; fwd=uri-miss; stored')
          const matching = ['W/"abc"', '"zzz", "abc"', '*', ' "x" ,W/"abc" ']
          for (const inm of matching) {
            const res = await app.request('/c', { headers: { 'if-none-match': inm } })
            assert.equal(res.status, 304, inm)
            assert.equal(res.headers.etag, '"abc"')
            assert.equal(res.headers['cache-control'], 'max-age=60')
            assert.equal(res.body.length, 0)
            assert.equal(res.headers['x-cache'], 'HIT')
          }
          assert.equal((await app.request('/c', { headers: { 'if-none-match': '"other"' } })).status, 200)
          const ims = (date: string) => app.request('/c', { headers: { 'if-modified-since': date } })
          assert.equal((await ims(new Date().toUTCString())).status, 304)
          assert.equal((await ims(pastDate(7200))).status, 200)
          // If-None-Match wins over If-Modified-Since.
          const both = await app.request('/c', {
            headers: { 'if-none-match': '"other"', 'if-modified-since': new Date().toUTCString() },
          })
          assert.equal(both.status, 200)
          assert.equal(both.text, 'content')
          assert.equal(app.calls('/c'), 1)
        },
      )
    })

    test('Vary stores variants under one URL; Accept-Encoding is normalised to the set of codings accepted', async () => {
      await withApp(
        framework,
        [
          {
            path: '/lang',
            handler: (req) => ({
              headers: { 'cache-control': 'max-age=60', vary: 'Accept-Language' },
              body: `lang=${req.headers['accept-language'] ?? 'none'}`,
            }),
          },
          {
            path: '/enc',
            handler: (req) => {
              const ae = String(req.headers['accept-encoding'] ?? '')
              const coding = ae.includes('br') ? 'br' : ae.includes('gzip') ? 'gzip' : 'identity'
              return {
                headers: { 'cache-control': 'max-age=60', vary: 'Accept-Encoding' },
                body: `coded=${coding}`,
              }
            },
          },
        ],
        async (app) => {
          const get = (path: string, headers: Record<string, string> = {}) => app.request(path, { headers })
          assert.equal((await get('/lang', { 'accept-language': 'en' })).text, 'lang=en')
          assert.equal((await get('/lang', { 'accept-language': 'de' })).text, 'lang=de')
          const en = await get('/lang', { 'accept-language': 'en' })
          assert.equal(en.headers['x-cache'], 'HIT')
          assert.equal(en.text, 'lang=en')
          const de = await get('/lang', { 'accept-language': 'de' })
          assert.equal(de.headers['x-cache'], 'HIT')
          assert.equal(de.text, 'lang=de')
          const none = await get('/lang')
          assert.equal(none.headers['x-cache'], 'MISS')
          assert.equal(none.headers['cache-status'], 'memkit; fwd=vary-miss; stored')
          assert.equal(app.calls('/lang'), 3)

          await get('/enc', { 'accept-encoding': 'gzip, deflate, br' })
          const reordered = await get('/enc', { 'accept-encoding': 'br;q=1.0, gzip, deflate' })
          assert.equal(reordered.headers['x-cache'], 'HIT')
          const gzipOnly = await get('/enc', { 'accept-encoding': 'gzip' })
          assert.equal(gzipOnly.headers['x-cache'], 'MISS')
          assert.equal(gzipOnly.text, 'coded=gzip')
          assert.equal((await get('/enc', { 'accept-encoding': 'gzip' })).text, 'coded=gzip')
          const refusedBr = await get('/enc', { 'accept-encoding': 'gzip, br;q=0' })
          assert.equal(refusedBr.headers['x-cache'], 'HIT')
          assert.equal(refusedBr.text, 'coded=gzip')
          assert.equal(app.calls('/enc'), 2)
        },
      )
    })

    test('hop-by-hop headers and fields listed in Connection are not stored', async () => {
      await withApp(
        framework,
        [
          {
            path: '/hop',
            handler: () => ({
              headers: {
                'cache-control': 'max-age=60',
                connection: 'x-private',
                'x-private': 'per-connection',
                'proxy-authenticate': 'Basic',
                'x-public': 'kept',
              },
              body: 'hop',
            }),
          },
        ],
        async (app) => {
          await app.request('/hop')
          const hit = await app.request('/hop')
          assert.equal(hit.headers['x-cache'], 'HIT')
          assert.equal(hit.headers['x-public'], 'kept')
          assert.equal(hit.headers['x-private'], undefined)
          assert.equal(hit.headers['proxy-authenticate'], undefined)
        },
      )
    })

    test('a 4 KB URL is cached under a hashed key of fixed length; the query and host are part of the key', async () => {
      const long = `/long?q=${'a'.repeat(4096)}`
      await withApp(
        framework,
        [
          {
            path: '/long',
            handler: (req) => ({
              headers: { 'cache-control': 'max-age=60' },
              body: `${req.url.length}:${req.headers.host}`,
            }),
          },
        ],
        async (app, prefix) => {
          // The origin the key holds: the Host the handler saw (supertest: 127.0.0.1:<port>; inject: localhost:80).
          const seen = new URL(
            `http://${(await app.request(long)).text.slice(String(long.length).length + 1)}`,
          )
          const hit = await app.request(long)
          assert.equal(hit.headers['x-cache'], 'HIT')
          assert.equal(hit.text.split(':')[0], String(long.length))
          assert.equal((await app.request('/long?q=b')).headers['x-cache'], 'MISS')
          const otherHost = await app.request(long, { headers: { host: 'other.example' } })
          assert.equal(otherHost.headers['x-cache'], 'MISS')
          assert.equal(otherHost.text.split(':')[1], 'other.example')
          // The memcached key is the prefix plus a SHA-256 of the raw key; the raw key is inside the entry.
          const raw = rawUrlKey(originOf('http', seen.hostname, seen.port), long)
          const key = new KeySpace(prefix).url(raw)
          assert.ok(key.length < 60, key)
          assert.match(await rawCommand(server.address, `mg ${key} s\r\n`), /^HD s\d+/)
          const stored = (await client.get(key)) as Buffer
          assert.ok(
            stored.includes(Buffer.from(JSON.stringify(raw).slice(1, -1))),
            'stored.includes(Buffer.from(JSON.stringify(raw).slice(1, -1)))',
          )
        },
      )
    })

    test('hosts outside the allow-list bypass the cache', async () => {
      await withApp(
        framework,
        [{ path: '/host', handler: () => ({ headers: { 'cache-control': 'max-age=60' } }) }],
        async (app) => {
          const evil = await app.request('/host', { headers: { host: 'evil.example' } })
          assert.equal(evil.headers['cache-status'], 'memkit; fwd=bypass; detail=host')
          await app.request('/host', { headers: { host: 'www.good.example' } })
          const good = await app.request('/host', { headers: { host: 'www.good.example' } })
          assert.equal(good.headers['x-cache'], 'HIT')
        },
        { hosts: ['*.good.example'] },
      )
    })

    test('successful unsafe requests invalidate the URL, Location and Content-Location; failed ones do not', async () => {
      const fresh = { headers: { 'cache-control': 'max-age=600' } }
      const routes: Route[] = [
        { path: '/items', handler: () => ({ ...fresh, body: 'list' }) },
        { path: '/items/7', handler: () => ({ ...fresh, body: 'item 7' }) },
        { path: '/items/8', handler: () => ({ ...fresh, body: 'item 8' }) },
        {
          path: '/items',
          method: 'POST',
          handler: (req) =>
            req.headers['x-fail']
              ? { status: 500 }
              : { status: 201, headers: { location: '/items/7', 'content-location': '/items/8' } },
        },
        { path: '/items/7', method: 'PUT', handler: () => ({ status: 204 }) },
        { path: '/items/7', method: 'PATCH', handler: () => ({ status: 200 }) },
        { path: '/items/7', method: 'DELETE', handler: () => ({ status: 204 }) },
      ]
      await withApp(framework, routes, async (app) => {
        const warm = async () => {
          for (const p of ['/items', '/items/7', '/items/8']) await app.request(p)
        }
        const state = async (p: string) => (await app.request(p)).headers['x-cache']
        await warm()
        const failed = await app.request('/items', { method: 'POST', headers: { 'x-fail': '1' }, body: 'x' })
        assert.equal(failed.status, 500)
        assert.equal(failed.headers['x-cache'], 'BYPASS')
        assert.equal(failed.headers['cache-status'], 'memkit; fwd=method')
        assert.equal(await state('/items'), 'HIT')

        const created = await app.request('/items', { method: 'POST', body: 'x' })
        assert.equal(created.status, 201)
        assert.equal(await state('/items'), 'MISS')
        assert.equal(await state('/items/7'), 'MISS')
        assert.equal(await state('/items/8'), 'MISS')
        for (const method of ['PUT', 'PATCH', 'DELETE']) {
          assert.equal(await state('/items/7'), 'HIT', method)
          await app.request('/items/7', { method, body: 'x' })
          assert.equal(await state('/items/7'), 'MISS', method)
        }
      })
    })

    test('the bypass header is honoured only with the configured secret', async () => {
      const secret = 'correct horse battery staple'
      await withApp(
        framework,
        [
          {
            path: '/b',
            handler: (_r, call) => ({ headers: { 'cache-control': 'max-age=60' }, body: `v${call}` }),
          },
        ],
        async (app) => {
          await app.request('/b')
          const wrong = await app.request('/b', { headers: { 'x-cache-bypass': 'guess' } })
          assert.equal(wrong.headers['x-cache'], 'HIT')
          assert.equal(wrong.text, 'v1')
          const right = await app.request('/b', { headers: { 'x-cache-bypass': secret } })
          assert.equal(right.headers['x-cache'], 'BYPASS')
          assert.equal(right.headers['cache-status'], 'memkit; fwd=bypass; detail=bypass-header')
          assert.equal(right.text, 'v2')
          // A bypassed response is not stored either.
          assert.equal((await app.request('/b')).text, 'v1')
        },
        { bypass: { secret } },
      )
    })

    test('byte ranges are served from a cached response', async () => {
      await withApp(
        framework,
        [
          {
            path: '/range',
            handler: () => ({ headers: { 'cache-control': 'max-age=60', etag: '"r"' }, body: '0123456789' }),
          },
        ],
        async (app) => {
          const first = await app.request('/range', { headers: { range: 'bytes=2-4' } })
          assert.equal(first.status, 206)
          assert.equal(first.text, '234')
          const suffix = await app.request('/range', { headers: { range: 'bytes=-3' } })
          assert.equal(suffix.status, 206)
          assert.equal(suffix.text, '789')
          assert.equal(suffix.headers['content-range'], 'bytes 7-9/10')
          assert.equal((await app.request('/range', { headers: { range: 'bytes=50-' } })).status, 416)
          const ifRangeMismatch = await app.request('/range', {
            headers: { range: 'bytes=0-1', 'if-range': '"old"' },
          })
          assert.equal(ifRangeMismatch.status, 200)
          assert.equal(ifRangeMismatch.text, '0123456789')
          assert.equal(app.calls(), 1)
        },
      )
    })

    test('request no-store is not stored; only-if-cached answers 504 on a miss', async () => {
      await withApp(
        framework,
        [{ path: '/rq', handler: () => ({ headers: { 'cache-control': 'max-age=60' }, body: 'x' }) }],
        async (app) => {
          const noStore = await app.request('/rq', { headers: { 'cache-control': 'no-store' } })
          assert.equal(noStore.headers['cache-status'], 'memkit; fwd=uri-miss; detail=request-no-store')
          const onlyIfCached = await app.request('/rq', { headers: { 'cache-control': 'only-if-cached' } })
          assert.equal(onlyIfCached.status, 504)
          assert.equal(app.calls(), 1)
          await app.request('/rq')
          assert.equal(
            (await app.request('/rq', { headers: { 'cache-control': 'only-if-cached' } })).status,
            200,
          )
        },
      )
    })

    test('Age counts the Age the handler sent plus the time the entry was stored', async () => {
      await withApp(
        framework,
        [
          {
            path: '/age',
            handler: () => ({ headers: { 'cache-control': 'max-age=600', age: '100' }, body: 'x' }),
          },
        ],
        async (app) => {
          await app.request('/age')
          const hit = await app.request('/age')
          assert.ok(Number(hit.headers.age) >= 100 && Number(hit.headers.age) < 110, hit.headers.age)
          assert.match(hit.headers['cache-status']!, /ttl=(49\d|500)$/)
        },
      )
    })
  })
}

test('Express: a revalidation answered 304 by res.send (Express ETag) refreshes the entry', async () => {
  const app = express()
  let calls = 0
  const mw = responseCache({ client, keyPrefix: 'hs-etag:' })
  app.get('/e', mw, (_req, res) => {
    calls++
    res.set('cache-control', 'max-age=0, must-revalidate').send('express body')
  })
  // One listener, as in production: its address (Host) is part of the key.
  const listener = app.listen(0)
  const agent = supertest(listener)
  const first = await agent.get('/e')
  assert.match(first.headers.etag!, /^W\/"/)
  const second = await agent.get('/e')
  assert.equal(second.status, 200)
  assert.equal(second.text, 'express body')
  assert.equal(second.headers['cache-status'], 'memkit; fwd=stale; fwd-status=304; stored')
  assert.equal(calls, 2)
  listener.close()
  await mw.close()
})
