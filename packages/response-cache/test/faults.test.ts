// memcached down, frozen or silent, and stored data that is corrupt or belongs to another URL:
// requests still reach the handler (within the client timeout) and get the right response.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { createClient, type MemcachedClient } from '@memkit/client'
import { rawCommand, startMemcached, startSilentServer, useMemcached } from '@memkit/testing'
import { type Entry, encodeEntry } from '../src/entry.js'
import { KeySpace, rawUrlKey } from '../src/key.js'
import { FRAMEWORKS, makeApp, type Route, type TestApp, until } from './harness.js'

const TIMEOUT = 250
const routes: Route[] = [
  {
    path: '/page',
    handler: (_req, call) => ({ headers: { 'cache-control': 'max-age=600' }, body: `page ${call}` }),
  },
  { path: '/other', handler: () => ({ headers: { 'cache-control': 'max-age=600' }, body: 'other' }) },
  { path: '/page', method: 'POST', handler: () => ({ status: 204 }) },
  { path: '/boom', handler: () => ({ throws: true }) },
]
const host = { host: 'app.example' }

const { server: shared, client: sharedClient, closeAfter } = await useMemcached({ createClient })
const clients: MemcachedClient[] = []
closeAfter({ close: () => Promise.all(clients.map((c) => c.close())) })

function faultClient(address: string): MemcachedClient {
  const client = createClient({
    servers: address,
    timeout: TIMEOUT,
    deadTimeout: 300,
    connectTimeout: TIMEOUT,
  })
  clients.push(client)
  return client
}

/**
 * A request against a server that never answers would hang if the client's timeout did not fire:
 * the test runner's timeout (far above the few client timeouts a test can spend) turns such a
 * hang into a failure. How long a failure takes is measured by the benchmarks, not asserted here.
 */
const HANG_GUARD = { timeout: 60_000 }

/** The codes of the failures the cache absorbed and reported, without repeats, in order. */
const codesOf = (errors: Error[]) => [...new Set(errors.map((e) => (e as { code?: string }).code))]

let n = 0
for (const framework of FRAMEWORKS) {
  describe(`faults (${framework})`, () => {
    test(
      'memcached killed: every request is served by the handler, the failures reported typed',
      HANG_GUARD,
      async () => {
        const server = await startMemcached()
        await server.kill()
        const errors: Error[] = []
        const app = await makeApp(
          framework,
          { client: faultClient(server.address), onError: (e) => errors.push(e) },
          routes,
        )
        try {
          for (let i = 1; i <= 4; i++) {
            const res = await app.request('/page', { headers: host })
            assert.equal(res.status, 200)
            assert.equal(res.text, `page ${i}`)
            assert.equal(res.headers['cache-status'], 'memkit; fwd=uri-miss; detail=unavailable')
          }
          // Refused connections, then (the server marked dead for deadTimeout) no attempt at all.
          const codes = codesOf(errors)
          assert.equal(codes[0], 'ERR_MEMKIT_CONNECTION')
          assert.ok(
            codes.every((code) => code === 'ERR_MEMKIT_CONNECTION' || code === 'ERR_MEMKIT_SERVER_DOWN'),
            codes.join(', '),
          )
          const post = await app.request('/page', { method: 'POST', headers: host, body: 'x' })
          assert.equal(post.status, 204)
          assert.ok(errors.length > 0, 'errors.length > 0')
          assert.ok(app.metrics().errors > 0, 'app.metrics().errors > 0')
          await assert.rejects(app.invalidateTag('anything'), { code: /^ERR_MEMKIT_/ })
        } finally {
          await app.close()
        }
      },
    )

    test(
      'memcached frozen: requests fall back to the handler after the client timeout, hits resume after',
      HANG_GUARD,
      async () => {
        const server = await startMemcached()
        const errors: Error[] = []
        const app = await makeApp(
          framework,
          { client: faultClient(server.address), onError: (e) => errors.push(e) },
          routes,
        )
        try {
          await app.request('/page', { headers: host })
          assert.equal((await app.request('/page', { headers: host })).headers['x-cache'], 'HIT')
          await server.freeze()
          for (let i = 0; i < 3; i++) {
            const res = await app.request('/page', { headers: host })
            assert.equal(res.status, 200)
            assert.equal(res.text, `page ${i + 2}`)
            assert.equal(res.headers['x-cache'], 'MISS')
            assert.equal(res.headers['cache-status'], 'memkit; fwd=uri-miss; detail=unavailable')
          }
          assert.equal(codesOf(errors)[0], 'ERR_MEMKIT_TIMEOUT')
          server.resume()
          await until(
            async () => (await app.request('/page', { headers: host })).headers['x-cache'] === 'HIT',
            5000,
          )
        } finally {
          server.resume()
          await app.close()
        }
      },
    )

    test(
      'a server that accepts connections and never answers: the handler serves after the client timeout',
      HANG_GUARD,
      async () => {
        const silent = await startSilentServer()
        const errors: Error[] = []
        const app = await makeApp(
          framework,
          { client: faultClient(silent.address), onError: (e) => errors.push(e) },
          routes,
        )
        try {
          const res = await app.request('/page', { headers: host })
          assert.equal(res.status, 200)
          assert.equal(res.text, 'page 1')
          assert.equal(res.headers['cache-status'], 'memkit; fwd=uri-miss; detail=unavailable')
          assert.equal(codesOf(errors)[0], 'ERR_MEMKIT_TIMEOUT')
        } finally {
          await app.close()
        }
      },
    )

    test('corrupt, foreign and undecodable stored values are misses, and get repaired', async () => {
      const prefix = `ft${++n}:`
      const app = await makeApp(framework, { client: sharedClient, keyPrefix: prefix }, routes)
      const key = new KeySpace(prefix).url(rawUrlKey('http://app.example', '/page'))
      const expectRepair = async (what: string) => {
        const before = app.calls('/page')
        const miss = await app.request('/page', { headers: host })
        assert.equal(miss.status, 200, what)
        assert.equal(miss.text, `page ${before + 1}`, what)
        assert.equal(miss.headers['x-cache'], 'MISS', what)
        assert.equal((await app.request('/page', { headers: host })).headers['x-cache'], 'HIT', what)
      }
      try {
        await rawCommand(shared.address, `ms ${key} 11 T60\r\nnot-an-mkrc\r\n`)
        await expectRepair('garbage bytes')
        await sharedClient.set(key, { some: 'json' })
        await expectRepair('a JSON value of another application')
        // Flag 1 is a Python pickle: the client cannot decode it at all.
        await rawCommand(shared.address, `ms ${key} 3 T60 F1\r\nabc\r\n`)
        await expectRepair('an undecodable item')
        const valid = (await sharedClient.get(key)) as Buffer
        await rawCommand(
          shared.address,
          Buffer.concat([Buffer.from(`ms ${key} 20 T60\r\n`), valid.subarray(0, 20), Buffer.from('\r\n')]),
        )
        await expectRepair('a truncated envelope')
        assert.ok(app.metrics().corrupt >= 4, 'app.metrics().corrupt >= 4')
      } finally {
        await app.close()
      }
    })

    test("an entry of another URL under this URL's key is never served", async () => {
      const prefix = `ft${++n}:`
      const app = await makeApp(framework, { client: sharedClient, keyPrefix: prefix }, routes)
      try {
        const keys = new KeySpace(prefix)
        await app.request('/other', { headers: host })
        const other = (await sharedClient.get(keys.url(rawUrlKey('http://app.example', '/other')))) as Buffer
        // As if two URLs hashed alike, or someone wrote /other's entry where /page's belongs.
        await sharedClient.set(keys.url(rawUrlKey('http://app.example', '/page')), other)
        const res = await app.request('/page', { headers: host })
        assert.equal(res.text, 'page 1')
        assert.equal(res.headers['cache-status'], 'memkit; fwd=uri-miss; detail=corrupt; stored')
        // A hand-made entry with a different raw key is refused the same way.
        const forged: Entry = {
          kind: 'entry',
          rawKey: rawUrlKey('http://evil.example', '/page'),
          status: 200,
          reason: undefined,
          headers: [['cache-control', 'max-age=600']],
          requestTime: Date.now(),
          responseTime: Date.now(),
          freshness: { lifetime: 600, initialAge: 0, swr: 0, sie: 0, noCache: false, noStale: false },
          varyNames: [],
          varyValues: [],
          tags: {},
          route: undefined,
          encoding: undefined,
          body: Buffer.from('forged'),
          size: 6,
          chunks: undefined,
          shared: { authorization: false, cookie: false },
        }
        await sharedClient.set(keys.url(rawUrlKey('http://app.example', '/page')), encodeEntry(forged))
        assert.equal((await app.request('/page', { headers: host })).text, 'page 2')
      } finally {
        await app.close()
      }
    })

    test('a failing handler without a stale entry fails as it would without the cache', async () => {
      const app: TestApp = await makeApp(framework, { client: sharedClient, keyPrefix: `ft${++n}:` }, routes)
      try {
        const res = await app.request('/boom', { headers: host })
        assert.equal(res.status, 500)
        assert.equal(res.headers['x-cache'], 'MISS')
        assert.equal(res.headers['cache-status'], 'memkit; fwd=uri-miss; detail=status')
        assert.equal((await app.request('/page', { headers: host })).status, 200)
      } finally {
        await app.close()
      }
    })
  })
}
