// Tag invalidation by generation counters: two applications with their own clients (as two
// processes would have) share one memcached; invalidating on one is seen by the other at once.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createClient, type MemcachedClient } from '@memkit/client'
import { useMemcached } from '@memkit/testing'
import { makeApp, type Route, type TestApp } from './harness.js'

const { server, closeAfter } = await useMemcached()
const { address } = server
const clients: MemcachedClient[] = []
closeAfter({ close: () => Promise.all(clients.map((c) => c.close())) })

const routes: Route[] = [
  {
    path: '/products/:id',
    cache: { tags: ['products'] },
    handler: (req, call) => ({ headers: { 'cache-control': 'max-age=600' }, body: `${req.url} #${call}` }),
  },
  {
    path: '/items/:id',
    cache: {
      // Tags computed from the request: one tag per item plus the collection.
      tags: (req: unknown) => {
        const url = (req as { originalUrl?: string; url: string }).originalUrl ?? (req as { url: string }).url
        return ['items', `item:${url.split('/').pop()}`]
      },
    },
    handler: (req, call) => ({ headers: { 'cache-control': 'max-age=600' }, body: `${req.url} #${call}` }),
  },
  {
    path: '/untagged',
    handler: (_req, call) => ({ headers: { 'cache-control': 'max-age=600' }, body: `u${call}` }),
  },
]

async function twoProcesses(prefix: string): Promise<[TestApp, TestApp]> {
  const make = (framework: 'express' | 'fastify') => {
    const client = createClient({ servers: address })
    clients.push(client)
    return makeApp(framework, { client, keyPrefix: prefix }, routes)
  }
  return [await make('express'), await make('fastify')]
}

// Both apps must see the same host to share entries.
const host = { host: 'shop.example' }

test('invalidateTag on one process makes every entry under the tag miss on every process', async () => {
  const [a, b] = await twoProcesses('tags1:')
  try {
    const get = (app: TestApp, path: string) => app.request(path, { headers: host })
    await get(a, '/products/1')
    await get(a, '/products/2')
    await get(a, '/untagged')
    assert.equal((await get(b, '/products/1')).headers['x-cache'], 'HIT')
    assert.equal((await get(b, '/products/2')).headers['x-cache'], 'HIT')

    await a.invalidateTag('products')

    const b1 = await get(b, '/products/1')
    assert.equal(b1.headers['x-cache'], 'MISS')
    assert.equal(b1.headers['cache-status'], 'memkit; fwd=uri-miss; detail=invalidated; stored')
    const a2 = await get(a, '/products/2')
    assert.equal(a2.headers['x-cache'], 'MISS')
    assert.equal(a2.text, '/products/2 #3')
    // The new entries carry the new generation and are shared again.
    assert.equal((await get(a, '/products/1')).headers['x-cache'], 'HIT')
    assert.equal((await get(b, '/products/2')).headers['x-cache'], 'HIT')
    // Entries without the tag are untouched.
    assert.equal((await get(b, '/untagged')).headers['x-cache'], 'HIT')
  } finally {
    await a.close()
    await b.close()
  }
})

test('tags computed from the request invalidate only what they name', async () => {
  const [a, b] = await twoProcesses('tags2:')
  try {
    const get = (app: TestApp, path: string) => app.request(path, { headers: host })
    await get(a, '/items/1')
    await get(a, '/items/2')
    await b.invalidateTag('item:1')
    assert.equal((await get(a, '/items/1')).headers['x-cache'], 'MISS')
    assert.equal((await get(a, '/items/2')).headers['x-cache'], 'HIT')
    await a.invalidateTag('items')
    assert.equal((await get(b, '/items/1')).headers['x-cache'], 'MISS')
    assert.equal((await get(b, '/items/2')).headers['x-cache'], 'MISS')
  } finally {
    await a.close()
    await b.close()
  }
})

test('an evicted generation counter never validates old entries again', async () => {
  const [a, b] = await twoProcesses('tags3:')
  try {
    const get = (app: TestApp, path: string) => app.request(path, { headers: host })
    await get(a, '/products/9')
    // Losing the counter (eviction, restart of that server) must not resurrect or keep old entries.
    const counterKey = `tags3:t:${(await import('../src/key.js')).hashKey('products')}`
    assert.ok(await clients[0]!.delete(counterKey), 'await clients[0]!.delete(counterKey)')
    assert.equal((await get(b, '/products/9')).headers['x-cache'], 'MISS')
    assert.equal((await get(a, '/products/9')).headers['x-cache'], 'HIT')
  } finally {
    await a.close()
    await b.close()
  }
})
