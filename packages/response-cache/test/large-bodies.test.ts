// Bodies around and over memcached's 1 MiB item limit: chunked with a manifest and a content
// hash, or skipped and counted; a damaged or missing chunk is a miss, never a wrong body.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import { decodeStored, type Entry } from '../src/entry.js'
import type { ResponseCacheOptions } from '../src/index.js'
import { KeySpace, rawUrlKey } from '../src/key.js'
import { cacheTestbed, FRAMEWORKS, type Framework, type TestApp } from './harness.js'

const MiB = 1024 * 1024
const bodies = {
  '/0.99': randomBytes(Math.floor(0.99 * MiB)),
  '/1': randomBytes(MiB),
  '/5': randomBytes(5 * MiB),
}

const bed = await cacheTestbed('lb', { memoryMb: 128 })
const { client } = bed

/** An app serving `bodies`, with its own key prefix. */
function withApp(
  framework: Framework,
  options: Partial<ResponseCacheOptions>,
  fn: (app: TestApp, prefix: string) => Promise<void>,
): Promise<void> {
  const routes = Object.entries(bodies).map(([path, body]) => ({
    path,
    handler: () => ({
      headers: { 'cache-control': 'max-age=600', 'content-type': 'application/octet-stream' },
      body,
    }),
  }))
  return bed.withApp(framework, routes, fn, options)
}

const host = { host: 'files.example' }

async function manifest(prefix: string, path: string): Promise<Entry> {
  const stored = await client.get(new KeySpace(prefix).url(rawUrlKey('http://files.example', path)))
  return decodeStored(stored) as Entry
}

for (const framework of FRAMEWORKS) {
  describe(`large bodies (${framework})`, () => {
    test('0.99 MiB fits one item; 1 MiB and 5 MiB are chunked; all come back byte for byte', async () => {
      await withApp(framework, {}, async (app, prefix) => {
        for (const [path, body] of Object.entries(bodies)) {
          const miss = await app.request(path, { headers: host })
          assert.equal(miss.headers['cache-status'], 'memkit; fwd=uri-miss; stored', path)
          assert.ok(miss.body.equals(body), path)
          const hit = await app.request(path, { headers: host })
          assert.equal(hit.headers['x-cache'], 'HIT', path)
          assert.equal(hit.headers['content-length'], String(body.length))
          assert.ok(hit.body.equals(body), `${path} differs after the round trip`)
        }
        assert.equal((await manifest(prefix, '/0.99')).chunks, undefined)
        assert.equal((await manifest(prefix, '/1')).chunks?.count, 2)
        assert.equal((await manifest(prefix, '/5')).chunks?.count, 6)
        assert.equal(app.metrics().chunked, 2)
        assert.equal(app.calls(), 3)
      })
    })

    test('a missing or altered chunk makes the entry a miss, and the next store repairs it', async () => {
      await withApp(framework, {}, async (app, prefix) => {
        await app.request('/5', { headers: host })
        const keys = new KeySpace(prefix)
        const first = (await manifest(prefix, '/5')).chunks!
        assert.ok(
          await client.delete(keys.chunk(first.id, 3)),
          'await client.delete(keys.chunk(first.id, 3))',
        )
        const missing = await app.request('/5', { headers: host })
        assert.equal(missing.headers['cache-status'], 'memkit; fwd=uri-miss; detail=corrupt; stored')
        assert.ok(missing.body.equals(bodies['/5']), "missing.body.equals(bodies['/5'])")

        const second = (await manifest(prefix, '/5')).chunks!
        const chunk = (await client.get(keys.chunk(second.id, 0))) as Buffer
        const altered = Buffer.from(chunk)
        altered[100] = altered[100]! ^ 0xff
        await client.set(keys.chunk(second.id, 0), altered)
        const damaged = await app.request('/5', { headers: host })
        assert.equal(damaged.headers['x-cache'], 'MISS')
        assert.ok(damaged.body.equals(bodies['/5']), "damaged.body.equals(bodies['/5'])")
        assert.equal((await app.request('/5', { headers: host })).headers['x-cache'], 'HIT')
        assert.equal(app.metrics().corrupt, 2)
        assert.equal(app.calls('/5'), 3)
      })
    })

    test("largeBodies: 'skip' stores what fits and counts what does not", async () => {
      await withApp(framework, { largeBodies: 'skip' }, async (app) => {
        for (const path of ['/0.99', '/1', '/5']) {
          const res = await app.request(path, { headers: host })
          assert.ok(
            res.body.equals(bodies[path as keyof typeof bodies]),
            'res.body.equals(bodies[path as keyof typeof bodies])',
          )
          const expected = path === '/0.99' ? 'stored' : 'detail=too-large'
          assert.equal(res.headers['cache-status'], `memkit; fwd=uri-miss; ${expected}`, path)
        }
        assert.equal((await app.request('/1', { headers: host })).headers['x-cache'], 'MISS')
        assert.equal((await app.request('/0.99', { headers: host })).headers['x-cache'], 'HIT')
        assert.equal(app.metrics().total.notStored['too-large'], 3)
      })
    })

    test('bodies over maxBodySize stream through unstored', async () => {
      await withApp(framework, { maxBodySize: 512 * 1024 }, async (app) => {
        const res = await app.request('/1', { headers: host })
        assert.ok(res.body.equals(bodies['/1']), "res.body.equals(bodies['/1'])")
        assert.equal(res.headers['cache-status'], 'memkit; fwd=uri-miss; detail=too-large')
        assert.equal((await app.request('/1', { headers: host })).headers['x-cache'], 'MISS')
      })
    })
  })
}
