// The shop story through Express (supertest) against a real memcached: caching with tags,
// rate limits with their headers, login/logout with sessions, the status page and metrics.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import type { Server } from 'node:http'
import { after, before, test } from 'node:test'
import { createClient, type MemcachedClient } from '@memkit/client'
import {
  captureConsole,
  captureWarnings,
  type MemcachedServer,
  startMemcached,
  stopAll,
  waitUntil,
} from '@memkit/testing'
import request from 'supertest'
import { buildApp } from '../src/app.js'

let mc: MemcachedServer
let client: MemcachedClient
let shop: ReturnType<typeof buildApp>
// One listener for the whole story, as in production: the cache keys on the address the
// request was sent to (host and port), and supertest given an app would start one per request.
let server: Server
before(async () => {
  mc = await startMemcached()
  client = createClient({ servers: mc.address })
  shop = buildApp({
    client,
    cookieSecret: 'a-test-cookie-secret-of-32-chars!',
    storeSecret: 'test',
    catalogDelayMs: 5,
  })
  server = shop.app.listen(0, '127.0.0.1')
  await once(server, 'listening')
})
after(async () => {
  server.close()
  shop.close()
  await client.close()
  await stopAll()
})

test('the shop: cached products, admin login and tag invalidation, logout, login limit, status and metrics', async () => {
  const visitor = request.agent(server)

  // The product listing: a miss fills the cache, the next request is a hit; the API limit's headers.
  const first = await visitor.get('/api/products').expect(200)
  assert.equal(first.headers['x-cache'], 'MISS')
  assert.equal(first.headers['x-ratelimit-limit'], '100')
  assert.equal(first.headers['x-ratelimit-remaining'], '99')
  assert.ok(
    Number(first.headers['x-ratelimit-reset']) > Date.now() / 1000,
    'reset is a Unix time in the future',
  )
  assert.match(String(first.headers['cache-status']), /fwd=uri-miss/)
  const second = await visitor.get('/api/products').expect(200)
  assert.equal(second.headers['x-cache'], 'HIT')
  assert.equal(second.headers['x-ratelimit-remaining'], '98')
  assert.deepEqual(second.body, first.body)
  assert.equal(shop.catalog.reads, 1, 'the second request never reached the database')

  // Logging in as admin gives a session; the public listing is still served from the cache.
  const admin = request.agent(server)
  const login = await admin.post('/login').send({ username: 'admin', password: 'swordfish' }).expect(200)
  assert.match(String(login.headers['set-cookie']), /shop\.sid=/)
  assert.deepEqual((await admin.get('/me').expect(200)).body, { user: { name: 'admin', role: 'admin' } })
  assert.equal((await admin.get('/api/products').expect(200)).headers['x-cache'], 'HIT')

  // A price change invalidates the 'products' tag: the next request misses and shows it.
  await admin.post('/admin/products/1/price').send({ price: 15 }).expect(200)
  const fresh = await visitor.get('/api/products').expect(200)
  assert.equal(fresh.headers['x-cache'], 'MISS')
  assert.equal(fresh.body.products[0].price, 15)
  assert.equal((await visitor.get('/api/products/1').expect(200)).headers['x-cache'], 'MISS')
  assert.equal((await visitor.get('/api/products/1').expect(200)).headers['x-cache'], 'HIT')

  // Customers cannot change prices; logging out ends the session.
  const alice = request.agent(server)
  await alice
    .post('/login')
    .set('x-forwarded-for', '198.51.100.7')
    .send({ username: 'alice', password: 'wonderland' })
  await alice.post('/admin/products/1/price').send({ price: 0 }).expect(403)
  await admin.post('/logout').expect(204)
  await admin.get('/me').expect(401)

  // POST /login allows 5 attempts per 15 minutes per address, then answers 429.
  const attacker = '203.0.113.9'
  for (let i = 0; i < 5; i++) {
    const attempt = await request(server)
      .post('/login')
      .set('x-forwarded-for', attacker)
      .send({ username: 'admin', password: 'guess' })
    assert.equal(attempt.status, 401)
    assert.equal(attempt.headers['x-ratelimit-limit'], '5')
  }
  const blocked = await request(server)
    .post('/login')
    .set('x-forwarded-for', attacker)
    .send({ username: 'admin', password: 'swordfish' })
  assert.equal(blocked.status, 429)
  assert.equal(blocked.headers['x-ratelimit-remaining'], '0')
  assert.ok(Number(blocked.headers['retry-after']) >= 1)
  assert.equal(blocked.body.statusCode, 429)
  assert.equal(blocked.body.error, 'Too Many Requests')
  // another address is not affected
  await request(server)
    .post('/login')
    .set('x-forwarded-for', '203.0.113.10')
    .send({ username: 'admin', password: 'swordfish' })
    .expect(200)

  // The status page and its figures.
  const page = await request(server).get('/memkit').expect(200)
  assert.match(String(page.headers['content-type']), /text\/html/)
  const status = (await request(server).get('/memkit?format=json').expect(200)).body
  assert.equal(status.servers[0].server, mc.address)
  assert.equal(status.servers[0].up, true)
  const products = status.caches.find((c: { route: string }) => c.route === '/api/products')
  assert.ok(products.hit >= 2 && products.miss >= 2)
  const loginLimit = status.rateLimits.find((l: { name: string }) => l.name === 'login')
  assert.equal(loginLimit.blocked, 1)

  // Prometheus metrics from the shared client.
  const metrics = await request(server).get('/metrics').expect(200)
  assert.match(metrics.text, /^memkit_cache_hits_total\{command="\w+"\} [1-9]\d*/m)
  assert.match(metrics.text, new RegExp(`memkit_server_up\\{server="${mc.address}"\\} 1`))
})

test('when memcached is down the shop still answers: products uncached, no limit, sessions fail clearly', async () => {
  const down = await startMemcached()
  const downClient = createClient({
    servers: down.address,
    timeout: 200,
    failureLimit: 1,
    deadTimeout: 60_000,
  })
  const degraded = buildApp({
    client: downClient,
    cookieSecret: 'a-test-cookie-secret-of-32-chars!',
    catalogDelayMs: 1,
  })
  // The outage is reported once by the rate limiter (a process warning), and Express logs the
  // session save that express-session attempts after the 503 has gone out.
  const warnings = captureWarnings('MEMKIT_RATE_LIMIT_STORE_ERROR')
  const logged = captureConsole()
  try {
    await down.kill()
    const products = await request(degraded.app).get('/api/products').expect(200)
    assert.equal(products.body.products.length, 3)
    assert.match(String(products.headers['x-cache']), /MISS|BYPASS/)
    const login = await request(degraded.app)
      .post('/login')
      .send({ username: 'alice', password: 'wonderland' })
    assert.equal(login.status, 503, 'a login cannot be kept without the session store')
    await waitUntil(() => logged.items.length > 0, { message: 'Express logs the late save failure' })
    const [late] = logged.items[0]!.args as [{ code?: string }]
    assert.equal(late.code, 'ERR_MEMKIT_SESSION_UNAVAILABLE')
    assert.ok(warnings.items.length >= 1, 'the limiter reports the outage')
  } finally {
    warnings.restore()
    logged.restore()
    degraded.close()
    await downClient.close()
  }
})
