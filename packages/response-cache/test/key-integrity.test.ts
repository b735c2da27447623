// The key holds everything that selects a response (scheme, host, port, target, then the Vary'd
// request headers), so what one client sends can never change what another receives. Each kind
// runs on both adapters against a real memcached.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { gzipSync } from 'node:zlib'
import { cacheTestbed, FRAMEWORKS, type Route, rawHttp } from './harness.js'

const { withApp } = await cacheTestbed('ki')

const cached = { 'cache-control': 'max-age=60' }

for (const framework of FRAMEWORKS) {
  describe(`cache key integrity (${framework})`, () => {
    test('scheme: behind a trusted proxy, http and https are different entries (an http->https redirect never reaches https clients)', async () => {
      const routes: Route[] = [
        {
          path: '/account',
          handler: (req) =>
            req.headers['x-forwarded-proto'] === 'https'
              ? { headers: cached, body: 'the page' }
              : { status: 301, headers: { ...cached, location: 'https://shop.example/account' }, body: '' },
        },
      ]
      await withApp(
        framework,
        routes,
        async (app) => {
          const http = { host: 'shop.example', 'x-forwarded-proto': 'http' }
          const https = { host: 'shop.example', 'x-forwarded-proto': 'https' }
          assert.equal((await app.request('/account', { headers: http })).status, 301)
          assert.equal((await app.request('/account', { headers: http })).headers['x-cache'], 'HIT')
          const secure = await app.request('/account', { headers: https })
          assert.equal(secure.status, 200)
          assert.equal(secure.text, 'the page')
          assert.equal(secure.headers['x-cache'], 'MISS')
          assert.equal((await app.request('/account', { headers: https })).text, 'the page')
          assert.equal(app.calls(), 2)
        },
        {},
        { trustProxy: true },
      )
    })

    test('port: Host with and without a port are different entries, unless ignorePort', async () => {
      const routes: Route[] = [
        { path: '/p', handler: (req) => ({ headers: cached, body: String(req.headers.host) }) },
      ]
      await withApp(framework, routes, async (app) => {
        assert.equal(
          (await app.request('/p', { headers: { host: 'shop.example:8080' } })).text,
          'shop.example:8080',
        )
        const other = await app.request('/p', { headers: { host: 'shop.example' } })
        assert.equal(other.text, 'shop.example')
        assert.equal(other.headers['x-cache'], 'MISS')
        // The default port is no port.
        assert.equal(
          (await app.request('/p', { headers: { host: 'shop.example:80' } })).headers['x-cache'],
          'HIT',
        )
        assert.equal(app.calls(), 2)
      })
      await withApp(
        framework,
        routes,
        async (app) => {
          await app.request('/p', { headers: { host: 'shop.example:8080' } })
          assert.equal(
            (await app.request('/p', { headers: { host: 'shop.example' } })).headers['x-cache'],
            'HIT',
          )
          assert.equal(app.calls(), 1)
        },
        { ignorePort: true },
      )
    })

    test('invalidation reaches the entries of both schemes, and the port it names', async () => {
      const routes: Route[] = [
        { path: '/item', handler: (_req, call) => ({ headers: cached, body: `item ${call}` }) },
        { path: '/item', method: 'POST', handler: () => ({ status: 204 }) },
      ]
      await withApp(
        framework,
        routes,
        async (app) => {
          const http = { host: 'shop.example', 'x-forwarded-proto': 'http' }
          const https = { host: 'shop.example', 'x-forwarded-proto': 'https' }
          const port = { host: 'shop.example:8080', 'x-forwarded-proto': 'http' }
          for (const headers of [http, https, port]) await app.request('/item', { headers })
          await app.request('/item', { method: 'POST', headers: https })
          assert.equal((await app.request('/item', { headers: http })).headers['x-cache'], 'MISS')
          assert.equal((await app.request('/item', { headers: https })).headers['x-cache'], 'MISS')
          assert.equal(
            (await app.request('/item', { headers: port })).headers['x-cache'],
            'HIT',
            'another port',
          )
          await app.cache.invalidate('/item', { host: 'shop.example:8080' })
          assert.equal((await app.request('/item', { headers: port })).headers['x-cache'], 'MISS')
          assert.equal((await app.request('/item', { headers: http })).headers['x-cache'], 'HIT')
          await app.cache.invalidate('https://shop.example/item')
          assert.equal((await app.request('/item', { headers: http })).headers['x-cache'], 'MISS')
        },
        {},
        { trustProxy: true },
      )
    })

    test('hosts: checked against the host the handler sees (trusted X-Forwarded-Host), ports when listed', async () => {
      const routes: Route[] = [{ path: '/h', handler: () => ({ headers: cached, body: 'h' }) }]
      await withApp(
        framework,
        routes,
        async (app) => {
          const forwarded = await app.request('/h', {
            headers: { host: 'internal:3000', 'x-forwarded-host': 'shop.example' },
          })
          assert.equal(forwarded.headers['cache-status'], 'memkit; fwd=uri-miss; stored')
          const direct = await app.request('/h', { headers: { host: 'shop.example' } })
          assert.equal(direct.headers['x-cache'], 'HIT', 'the same host the handler sees')
          const internal = await app.request('/h', { headers: { host: 'internal:3000' } })
          assert.equal(internal.headers['cache-status'], 'memkit; fwd=bypass; detail=host')
          const admin = await app.request('/h', { headers: { host: 'admin.example:8443' } })
          assert.equal(admin.headers['x-cache'], 'MISS')
          const adminOtherPort = await app.request('/h', { headers: { host: 'admin.example' } })
          assert.equal(adminOtherPort.headers['cache-status'], 'memkit; fwd=bypass; detail=host')
        },
        { hosts: ['shop.example', 'admin.example:8443'] },
        { trustProxy: true },
      )
    })

    test('absolute-form targets: another host than Host bypasses; the same host is the ordinary entry', async () => {
      const routes: Route[] = [
        { path: '/page', handler: (req) => ({ headers: cached, body: `${req.headers.host} ${req.url}` }) },
      ]
      await withApp(framework, routes, async (app) => {
        const port = await app.listen()
        const host = { host: 'shop.example' }
        const stored = await rawHttp(port, '/page?x=1', host)
        assert.equal(stored.headers['x-cache'], 'MISS')
        const other = await rawHttp(port, 'http://other.example/page?x=1', host)
        assert.equal(other.headers['cache-status'], 'memkit; fwd=bypass; detail=target')
        assert.equal(other.text, 'shop.example http://other.example/page?x=1', 'the handler ran')
        const same = await rawHttp(port, 'http://shop.example/page?x=1', host)
        assert.equal(same.headers['x-cache'], 'HIT')
        assert.equal(same.text, 'shop.example /page?x=1')
        const otherPort = await rawHttp(port, 'http://shop.example:9999/page?x=1', host)
        assert.equal(otherPort.headers['cache-status'], 'memkit; fwd=bypass; detail=target')
        assert.equal(
          (await rawHttp(port, '/page?x=1', host)).text,
          'shop.example /page?x=1',
          'entry untouched',
        )
        assert.equal(app.calls(), 3)
      })
    })

    test('a GET or HEAD with a body bypasses the cache: not answered from it, and does not replace an entry', async () => {
      const routes: Route[] = [
        { path: '/q', handler: (_req, call) => ({ headers: cached, body: `answer ${call}` }) },
      ]
      await withApp(framework, routes, async (app) => {
        const port = await app.listen()
        const host = { host: 'shop.example' }
        assert.equal((await rawHttp(port, '/q', host)).text, 'answer 1')
        for (const [headers, body] of [
          [{ ...host, 'content-length': '13' }, '{"q":"other"}'],
          [{ ...host, 'transfer-encoding': 'chunked' }, '{"q":"other"}'],
        ] as const) {
          const withBody = await rawHttp(port, '/q', headers, body)
          assert.equal(withBody.headers['cache-status'], 'memkit; fwd=bypass; detail=request-body')
          assert.match(withBody.text, /^answer [23]$/)
        }
        const later = await rawHttp(port, '/q', host)
        assert.equal(later.headers['x-cache'], 'HIT')
        assert.equal(later.text, 'answer 1')
        assert.equal(
          (await rawHttp(port, '/q', { ...host, 'content-length': '0' })).headers['x-cache'],
          'HIT',
        )
      })
    })

    test('Vary over two fields: each combination of values is its own variant, however the values split', async () => {
      const routes: Route[] = [
        {
          path: '/pair',
          handler: (req, call) => ({
            headers: { ...cached, vary: 'X-A, X-B' },
            body: `${req.headers['x-a']}|${req.headers['x-b']}|${call}`,
          }),
        },
      ]
      await withApp(framework, routes, async (app) => {
        const get = (a: string, b: string) =>
          app.request('/pair', { headers: { host: 'shop.example', 'x-a': a, 'x-b': b } })
        assert.equal((await get('ab', 'c')).text, 'ab|c|1')
        assert.equal(
          (await get('a', 'bc')).text,
          'a|bc|2',
          'the same characters split otherwise: another variant',
        )
        for (const [a, b, body] of [
          ['ab', 'c', 'ab|c|1'],
          ['a', 'bc', 'a|bc|2'],
        ] as const) {
          const hit = await get(a, b)
          assert.equal(hit.headers['x-cache'], 'HIT', `${a} ${b}`)
          assert.equal(hit.text, body)
        }
        assert.equal(app.calls('/pair'), 2)
      })
    })

    test('invalidation targets: the query counts, the fragment does not, scheme-relative and relative references resolve against the request', async () => {
      const routes: Route[] = [
        { path: '/items', handler: (req, call) => ({ headers: cached, body: `${req.url} ${call}` }) },
        { path: '/dir/sub/', handler: (_req, call) => ({ headers: cached, body: `sub ${call}` }) },
        {
          path: '/dir/x',
          method: 'POST',
          handler: (req) => ({ status: 201, headers: { location: String(req.headers['x-location']) } }),
        },
      ]
      await withApp(framework, routes, async (app) => {
        const host = { host: 'shop.example' }
        const state = async (path: string) => (await app.request(path, { headers: host })).headers['x-cache']
        const cases: Array<[location: string, invalidated: string | undefined]> = [
          ['/items?page=2', '/items?page=2'],
          ['/items?page=3#top', '/items?page=3'],
          ['/items#top', '/items'],
          ['http://shop.example/items?page=4#top', '/items?page=4'],
          ['//shop.example/items?page=5', '/items?page=5'],
          ['//elsewhere.example/items?page=6', undefined],
          ['sub/', '/dir/sub/'],
        ]
        const paths = [
          ...new Set(['/items', ...cases.flatMap(([, path]) => (path ? [path] : [])), '/items?page=6']),
        ]
        for (const [location, invalidated] of cases) {
          for (const path of paths) await app.request(path, { headers: host })
          const posted = await app.request('/dir/x', {
            method: 'POST',
            headers: { ...host, 'x-location': location },
            body: 'x',
          })
          assert.equal(posted.status, 201)
          for (const path of paths) {
            assert.equal(
              await state(path),
              path === invalidated ? 'MISS' : 'HIT',
              `Location ${location}: ${path}`,
            )
          }
        }
      })
    })

    test('Vary: list fields are normalised as lists; free-form fields (User-Agent, Cookie, custom) as sent', async () => {
      const routes: Route[] = [
        {
          path: '/ua',
          handler: (req) => ({
            headers: { ...cached, vary: 'User-Agent' },
            body: `${req.headers['user-agent']}`,
          }),
        },
        {
          path: '/lang',
          handler: (req) => ({
            headers: { ...cached, vary: 'Accept-Language' },
            body: `${req.headers['accept-language']}`,
          }),
        },
        {
          path: '/cookie',
          cache: { shareable: { cookie: true } },
          handler: (req) => ({ headers: { ...cached, vary: 'Cookie' }, body: `${req.headers.cookie}` }),
        },
      ]
      await withApp(framework, routes, async (app) => {
        const get = (path: string, headers: Record<string, string>) =>
          app.request(path, { headers: { host: 'shop.example', ...headers } })
        await get('/ua', { 'user-agent': 'agent a, b' })
        const ua = await get('/ua', { 'user-agent': 'agent a,b' })
        assert.equal(ua.headers['x-cache'], 'MISS', 'two User-Agent strings, two variants')
        assert.equal(ua.text, 'agent a,b')
        assert.equal((await get('/ua', { 'user-agent': ' agent a,b ' })).headers['x-cache'], 'HIT', 'trimmed')
        await get('/cookie', { cookie: 'sid=a,b' })
        const cookie = await get('/cookie', { cookie: 'sid=a, b' })
        assert.equal(cookie.headers['x-cache'], 'MISS')
        assert.equal(cookie.text, 'sid=a, b')
        await get('/lang', { 'accept-language': 'en, de' })
        assert.equal((await get('/lang', { 'accept-language': 'EN,de' })).headers['x-cache'], 'HIT', 'a list')
        assert.equal(app.calls('/ua'), 2)
        assert.equal(app.calls('/cookie'), 2)
        assert.equal(app.calls('/lang'), 1)
      })
    })

    test('Accept-Encoding: invalid or negative q-values refuse the coding; a client that cannot take gzip never gets gzip from the cache', async () => {
      const plain = 'hello, plain'
      const gzipped = gzipSync(plain)
      // A sloppy handler: gzip for anything mentioning gzip. The cache must not turn its mistakes into others'.
      const sloppy = (ae: unknown, vary: boolean) =>
        String(ae ?? '').includes('gzip')
          ? {
              headers: {
                ...cached,
                ...(vary ? { vary: 'Accept-Encoding' } : {}),
                'content-encoding': 'gzip',
              },
              body: gzipped,
            }
          : { headers: { ...cached, ...(vary ? { vary: 'Accept-Encoding' } : {}) }, body: plain }
      const routes: Route[] = [
        { path: '/vary', handler: (req) => sloppy(req.headers['accept-encoding'], true) },
        { path: '/novary', handler: (req) => sloppy(req.headers['accept-encoding'], false) },
      ]
      await withApp(framework, routes, async (app) => {
        const get = (path: string, ae: string) =>
          app.rawRequest(path, { host: 'shop.example', 'accept-encoding': ae })
        for (const path of ['/vary', '/novary']) {
          const gz = await get(path, 'gzip')
          assert.equal(gz.headers['content-encoding'], 'gzip')
          assert.equal((await get(path, 'gzip')).headers['x-cache'], 'HIT')
          for (const refuses of ['gzip;q=abc', 'gzip;q=-1', 'gzip;q=0', 'gzip;q=1.5', 'identity', 'br']) {
            const res = await get(path, refuses)
            if (res.headers['x-cache'] === 'HIT') {
              assert.equal(
                res.headers['content-encoding'],
                undefined,
                `${path} ${refuses}: gzip from the cache`,
              )
              assert.equal(res.text, plain)
            } else if (res.headers['content-encoding'] === 'gzip') {
              // The handler's own answer passes through; the cache did not store it for others.
              assert.match(res.headers['cache-status']!, /detail=content-coding/, `${path} ${refuses}`)
            }
          }
          const identity = await get(path, 'identity')
          assert.equal(identity.headers['content-encoding'], undefined)
          assert.equal(identity.text, plain)
        }
      })
    })
  })
}
