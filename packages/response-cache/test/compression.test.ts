// Stored compression: bodies are compressed once when stored, sent compressed to clients that
// accept the coding and decompressed, byte for byte, for those that do not.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib'
import { type Entry, encodeEntry } from '../src/entry.js'
import type { ResponseCacheOptions } from '../src/index.js'
import { KeySpace, rawUrlKey } from '../src/key.js'
import { Metrics } from '../src/metrics.js'
import { Storage } from '../src/storage.js'
import { cacheTestbed, FRAMEWORKS, type Framework, type TestApp } from './harness.js'

const json = JSON.stringify(
  Array.from({ length: 300 }, (_, i) => ({ id: i, name: `product ${i}`, price: i * 3, tags: ['a', 'b'] })),
)
const small = '{"ok":true}'
const png = Buffer.alloc(4096, 7)
const pregzipped = gzipSync(Buffer.from('already compressed by the handler '.repeat(100)))

const bed = await cacheTestbed('cz')
const { client } = bed

/** An app serving the bodies above, with its own key prefix, compressing with `compression`. */
function withApp(
  framework: Framework,
  compression: ResponseCacheOptions['compression'],
  fn: (app: TestApp, keys: KeySpace) => Promise<void>,
): Promise<void> {
  const fresh = 'max-age=600'
  const routes = [
    {
      path: '/json',
      handler: () => ({
        headers: { 'cache-control': fresh, 'content-type': 'application/json', etag: '"j1"' },
        body: json,
      }),
    },
    {
      path: '/small',
      handler: () => ({
        headers: { 'cache-control': fresh, 'content-type': 'application/json' },
        body: small,
      }),
    },
    {
      path: '/png',
      handler: () => ({ headers: { 'cache-control': fresh, 'content-type': 'image/png' }, body: png }),
    },
    {
      path: '/pre',
      handler: () => ({
        headers: {
          'cache-control': fresh,
          'content-type': 'text/plain',
          'content-encoding': 'gzip',
          vary: 'Accept-Encoding',
        },
        body: pregzipped,
      }),
    },
  ]
  return bed.withApp(framework, routes, (app, prefix) => fn(app, new KeySpace(prefix)), { compression })
}

const host = 'zip.example'
/** The entry as stored, following a Vary index to the gzip variant when there is one. */
async function stored(keys: KeySpace, path: string): Promise<Entry> {
  const storage = new Storage(client, keys, new Metrics(), () => {})
  const found = await storage.lookup(rawUrlKey(`http://${host}`, path), { 'accept-encoding': 'gzip' }, [])
  assert.ok(found.entry, `no entry for ${path}`)
  return found.entry
}

for (const framework of FRAMEWORKS) {
  describe(`stored compression (${framework})`, () => {
    test('gzip: stored compressed, sent gzip to gzip clients and plain to the others', async () => {
      await withApp(framework, 'gzip', async (app, keys) => {
        const get = (ae?: string) => app.rawRequest('/json', ae ? { host, 'accept-encoding': ae } : { host })
        const first = await get()
        assert.equal(first.headers['content-encoding'], undefined)
        assert.equal(first.text, json)
        const entry = await stored(keys, '/json')
        assert.equal(entry.encoding, 'gzip')
        assert.ok(entry.size < json.length / 3, `stored ${entry.size} bytes for ${json.length}`)

        const zipped = await get('gzip, deflate, br')
        assert.equal(zipped.headers['x-cache'], 'HIT')
        assert.equal(zipped.headers['content-encoding'], 'gzip')
        assert.match(zipped.headers.vary!, /Accept-Encoding/)
        assert.equal(zipped.headers.etag, 'W/"j1"')
        assert.equal(zipped.headers['content-length'], String(zipped.body.length))
        assert.equal(gunzipSync(zipped.body).toString(), json)

        for (const ae of [undefined, 'identity', 'br', 'gzip;q=0, deflate']) {
          const plain = await get(ae)
          assert.equal(plain.headers['content-encoding'], undefined, String(ae))
          assert.equal(plain.headers.etag, '"j1"')
          assert.equal(plain.text, json, String(ae))
        }
        assert.equal(app.calls('/json'), 1)
      })
    })

    test('a stored compressed body that no longer decompresses is a miss, and gets repaired', async () => {
      await withApp(framework, 'gzip', async (app, keys) => {
        await app.rawRequest('/json', { host })
        const entry = await stored(keys, '/json')
        const damaged = Buffer.from(entry.body)
        damaged.fill(0x41, 10, 60)
        await client.set(
          keys.url(rawUrlKey(`http://${host}`, '/json')),
          encodeEntry({ ...entry, body: damaged }),
        )
        const res = await app.rawRequest('/json', { host })
        assert.equal(res.headers['cache-status'], 'memkit; fwd=uri-miss; detail=corrupt; stored')
        assert.equal(res.text, json)
        assert.equal((await app.rawRequest('/json', { host })).headers['x-cache'], 'HIT')
        assert.equal(app.metrics().corrupt, 1)
        assert.equal(app.calls('/json'), 2)
      })
    })

    test('br: brotli clients get br, gzip-only clients get the plain body', async () => {
      await withApp(framework, { algorithm: 'br', threshold: 512 }, async (app, keys) => {
        await app.rawRequest('/json', { host, 'accept-encoding': 'br' })
        assert.equal((await stored(keys, '/json')).encoding, 'br')
        const br = await app.rawRequest('/json', { host, 'accept-encoding': 'gzip, br' })
        assert.equal(br.headers['content-encoding'], 'br')
        assert.equal(brotliDecompressSync(br.body).toString(), json)
        const gzipOnly = await app.rawRequest('/json', { host, 'accept-encoding': 'gzip' })
        assert.equal(gzipOnly.headers['content-encoding'], undefined)
        assert.equal(gzipOnly.text, json)
      })
    })

    test('small bodies, incompressible types and responses the handler encoded are stored as they are', async () => {
      await withApp(framework, 'gzip', async (app, keys) => {
        for (const path of ['/small', '/png', '/pre']) {
          await app.rawRequest(path, { host, 'accept-encoding': 'gzip' })
          const entry = await stored(keys, path)
          assert.equal(entry.encoding, undefined, path)
          assert.equal(entry.varyNames.join(), path === '/pre' ? 'accept-encoding' : '', path)
        }
        const pre = await app.rawRequest('/pre', { host, 'accept-encoding': 'gzip' })
        assert.equal(pre.headers['x-cache'], 'HIT')
        assert.equal(pre.headers['content-encoding'], 'gzip')
        assert.ok(pre.body.equals(pregzipped), 'pre.body.equals(pregzipped)')
        const image = await app.rawRequest('/png', { host, 'accept-encoding': 'gzip' })
        assert.ok(image.body.equals(png), 'image.body.equals(png)')
      })
    })
  })
}
