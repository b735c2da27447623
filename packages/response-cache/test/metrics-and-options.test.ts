// Per-route counters reachable from both adapters, and option validation with coded errors.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { createClient } from '@memkit/client'
import { useMemcached } from '@memkit/testing'
import express from 'express'
import Fastify from 'fastify'
import supertest from 'supertest'
import { responseCache } from '../src/express.js'
import fastifyResponseCache from '../src/fastify.js'
import { ResponseCache } from '../src/index.js'
import { FRAMEWORKS, makeApp } from './harness.js'

const { client } = await useMemcached({ createClient })

for (const framework of FRAMEWORKS) {
  test(`per-route hit/miss/stale/bypass counters and hit ratio (${framework})`, async () => {
    const app = await makeApp(framework, { client, keyPrefix: `mt-${framework}:` }, [
      { path: '/a/:id', handler: () => ({ headers: { 'cache-control': 'max-age=60' }, body: 'a' }) },
      { path: '/b', handler: () => ({ headers: { 'cache-control': 'no-store' }, body: 'b' }) },
    ])
    try {
      await app.request('/a/1')
      await app.request('/a/1')
      await app.request('/a/1')
      await app.request('/a/2')
      await app.request('/b')
      await app.request('/b', { headers: { authorization: 'Basic x' } })
      const snapshot = app.metrics()
      const a = snapshot.routes['/a/:id']!
      assert.deepEqual([a.hit, a.miss, a.stale, a.bypass, a.stored], [2, 2, 0, 0, 2])
      assert.equal(a.hitRatio, 0.5)
      const b = snapshot.routes['/b']!
      assert.deepEqual([b.hit, b.miss, b.bypass], [0, 1, 1])
      assert.deepEqual(b.notStored, { 'no-store': 1 })
      assert.equal(snapshot.total.hit, 2)
      assert.equal(snapshot.total.miss, 3)
      assert.equal(snapshot.errors, 0)
      assert.ok(snapshot.since <= Date.now(), 'snapshot.since <= Date.now()')
    } finally {
      await app.close()
    }
  })
}

test('Express: app-level middleware labels hits with the route that produced the entry', async () => {
  const app = express()
  const cache = responseCache({ client, keyPrefix: 'mt-use:' })
  app.use(cache)
  app.get('/users/:id', (_req, res) => {
    res.set('cache-control', 'max-age=60').send('user')
  })
  await supertest(app).get('/users/1').set('host', 'shop.example')
  const hit = await supertest(app).get('/users/1').set('host', 'shop.example')
  assert.equal(hit.headers['x-cache'], 'HIT')
  assert.deepEqual(Object.keys(cache.metrics().routes), ['/users/:id'])
  assert.equal(cache.metrics().routes['/users/:id']!.hit, 1)
  await cache.close()
})

test('Fastify: global: false caches only routes that set config.cache; hook: preHandler runs auth hooks first', async () => {
  const app = Fastify()
  // Hooks of one phase run in registration order: the auth hook goes first.
  app.addHook('preHandler', async (request, reply) => {
    if (request.headers['x-token'] !== 'ok') return reply.code(401).send('no')
  })
  await app.register(fastifyResponseCache, {
    client,
    keyPrefix: 'mt-global:',
    global: false,
    hook: 'preHandler',
  })
  let calls = 0
  app.get('/cached', { config: { cache: { ttl: 60 } } }, async () => `c${++calls}`)
  app.get('/plain', async (_req, reply) => {
    reply.header('cache-control', 'max-age=60')
    return `p${++calls}`
  })
  const get = (url: string, token = 'ok') => app.inject({ url, headers: { 'x-token': token } })
  assert.equal((await get('/cached')).body, 'c1')
  assert.equal((await get('/cached')).headers['x-cache'], 'HIT')
  // The cache looks up after the auth hook: an unauthenticated request never sees the entry.
  assert.equal((await get('/cached', 'bad')).statusCode, 401)
  const plain = await get('/plain')
  assert.equal(plain.headers['x-cache'], undefined)
  assert.equal((await get('/plain')).body, 'p3')
  assert.deepEqual(Object.keys(app.responseCache.metrics().routes), ['/cached'])
  await app.close()
})

describe('options are validated once, with coded errors', () => {
  // Built when the test runs, once the client exists: each case is invalid for its named reason only.
  const invalid: Array<[string, () => unknown]> = [
    ['no client', () => ({})],
    ['both client and servers', () => ({ client, servers: '127.0.0.1:1' })],
    ['unknown option', () => ({ client, tll: 60 })],
    ['negative ttl', () => ({ client, ttl: -1 })],
    ['ttl as string', () => ({ client, ttl: '60' })],
    ['short bypass secret', () => ({ client, bypass: { secret: 'short' } })],
    ['bad largeBodies', () => ({ client, largeBodies: 'split' })],
    ['bad compression', () => ({ client, compression: 'zstd' })],
    ['bad hosts', () => ({ client, hosts: 'example.com' })],
    ['bad tags', () => ({ client, tags: ['ok', ''] })],
    ['bad shareable', () => ({ client, shareable: 'yes' })],
    ['bad keyPrefix', () => ({ client, keyPrefix: 'has space' })],
    ['bad lockWait', () => ({ client, lockWait: 1.5 })],
    ['bad cacheStatusName', () => ({ client, cacheStatusName: 'two words' })],
    ['targetedCacheControl as a string', () => ({ client, targetedCacheControl: 'CDN-Cache-Control' })],
    ['targetedCacheControl with a non-name', () => ({ client, targetedCacheControl: ['CDN Cache Control'] })],
    ['heuristic fraction above 1', () => ({ client, heuristic: { fraction: 1.5 } })],
    ['heuristic as a number', () => ({ client, heuristic: 0.1 })],
  ]
  for (const [name, options] of invalid) {
    test(name, () => {
      assert.throws(() => new ResponseCache(options() as never), { code: 'ERR_MEMKIT_INVALID_OPTION' })
      assert.throws(() => responseCache(options() as never), { code: 'ERR_MEMKIT_INVALID_OPTION' })
    })
  }

  test('the same options without the fault are accepted', () => {
    assert.ok(
      new ResponseCache({
        client,
        ttl: 60,
        bypass: { secret: 'sixteen chars ok' },
        compression: 'br',
        targetedCacheControl: ['Memkit-Cache-Control', 'CDN-Cache-Control'],
        heuristic: { fraction: 0.2, max: 3600 },
      }),
    )
  })

  test('Express route() rejects global options', () => {
    const mw = responseCache({ client })
    assert.throws(() => mw.route({ keyPrefix: 'x' } as never), { code: 'ERR_MEMKIT_INVALID_OPTION' })
    assert.throws(() => mw.route({ staleIfError: -5 }), { code: 'ERR_MEMKIT_INVALID_OPTION' })
  })

  test('Fastify rejects bad plugin options at register and bad route settings at declaration', async () => {
    const bad = Fastify()
    bad.register(fastifyResponseCache, { client, hook: 'onResponse' as never })
    await assert.rejects(
      async () => {
        await bad.ready()
      },
      { code: 'ERR_MEMKIT_INVALID_OPTION' },
    )
    const app = Fastify()
    await app.register(fastifyResponseCache, { client })
    assert.throws(() => app.get('/x', { config: { cache: { ttl: 'soon' as never } } }, async () => 'x'), {
      code: 'ERR_MEMKIT_INVALID_OPTION',
    })
    assert.throws(
      () => app.get('/y', { config: { cache: { keyPrefix: 'nope' } as never } }, async () => 'y'),
      {
        code: 'ERR_MEMKIT_INVALID_OPTION',
      },
    )
    await app.close()
  })
})
