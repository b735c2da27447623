// The shop story through Fastify (inject) against a real memcached: caching with tags,
// rate limits with their headers, login/logout with sessions, the status page and metrics.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { createClient, type MemcachedClient } from '@memkit/client'
import { captureWarnings, type MemcachedServer, startMemcached, stopAll } from '@memkit/testing'
import type { LightMyRequestResponse } from 'fastify'
import { buildApp } from '../src/app.js'

let mc: MemcachedServer
let client: MemcachedClient
let shop: Awaited<ReturnType<typeof buildApp>>
before(async () => {
  mc = await startMemcached()
  client = createClient({ servers: mc.address })
  shop = await buildApp({
    client,
    cookieSecret: 'a-test-cookie-secret-of-32-chars!',
    storeSecret: 'test',
    catalogDelayMs: 5,
  })
})
after(async () => {
  await shop.app.close()
  await client.close()
  await stopAll()
})

/** A browser-like visitor: keeps the session cookie between requests, from one address. */
function visitor(remoteAddress = '127.0.0.1') {
  let cookie: string | undefined
  return async (method: 'GET' | 'POST', url: string, payload?: object): Promise<LightMyRequestResponse> => {
    const response = await shop.app.inject({
      method,
      url,
      payload,
      remoteAddress,
      headers: cookie ? { cookie } : {},
    })
    const set = response.cookies.find((c) => c.name === 'shop.sid')
    if (set) cookie = `shop.sid=${set.value}`
    return response
  }
}

test('the shop: cached products, admin login and tag invalidation, logout, login limit, status and metrics', async () => {
  const guest = visitor()

  const first = await guest('GET', '/api/products')
  assert.equal(first.statusCode, 200)
  assert.equal(first.headers['x-cache'], 'MISS')
  assert.equal(first.headers['x-ratelimit-limit'], '100')
  assert.equal(first.headers['x-ratelimit-remaining'], '99')
  assert.ok(
    Number(first.headers['x-ratelimit-reset']) > Date.now() / 1000,
    'reset is a Unix time in the future',
  )
  const second = await guest('GET', '/api/products')
  assert.equal(second.headers['x-cache'], 'HIT')
  assert.equal(second.headers['x-ratelimit-remaining'], '98')
  assert.equal(second.body, first.body)
  assert.equal(shop.catalog.reads, 1, 'the second request never reached the database')

  const admin = visitor()
  const login = await admin('POST', '/login', { username: 'admin', password: 'swordfish' })
  assert.equal(login.statusCode, 200)
  assert.deepEqual((await admin('GET', '/me')).json(), { user: { name: 'admin', role: 'admin' } })
  assert.equal((await admin('GET', '/api/products')).headers['x-cache'], 'HIT')

  assert.equal((await admin('POST', '/admin/products/1/price', { price: 15 })).statusCode, 200)
  const fresh = await guest('GET', '/api/products')
  assert.equal(fresh.headers['x-cache'], 'MISS')
  assert.equal(fresh.json().products[0].price, 15)
  assert.equal((await guest('GET', '/api/products/1')).headers['x-cache'], 'MISS')
  assert.equal((await guest('GET', '/api/products/1')).headers['x-cache'], 'HIT')

  const alice = visitor('198.51.100.7')
  assert.equal((await alice('POST', '/login', { username: 'alice', password: 'wonderland' })).statusCode, 200)
  assert.equal((await alice('POST', '/admin/products/1/price', { price: 0 })).statusCode, 403)
  assert.equal((await admin('POST', '/logout')).statusCode, 204)
  assert.equal((await admin('GET', '/me')).statusCode, 401)

  const attacker = visitor('203.0.113.9')
  for (let i = 0; i < 5; i++) {
    const attempt = await attacker('POST', '/login', { username: 'admin', password: 'guess' })
    assert.equal(attempt.statusCode, 401)
    assert.equal(attempt.headers['x-ratelimit-limit'], '5')
  }
  const blocked = await attacker('POST', '/login', { username: 'admin', password: 'swordfish' })
  assert.equal(blocked.statusCode, 429)
  assert.equal(blocked.headers['x-ratelimit-remaining'], '0')
  assert.ok(Number(blocked.headers['retry-after']) >= 1)
  assert.equal(blocked.json().error, 'Too Many Requests')
  assert.equal(
    (await visitor('203.0.113.10')('POST', '/login', { username: 'admin', password: 'swordfish' }))
      .statusCode,
    200,
  )

  const page = await shop.app.inject({ url: '/memkit' })
  assert.equal(page.statusCode, 200)
  assert.match(String(page.headers['content-type']), /text\/html/)
  const status = (await shop.app.inject({ url: '/memkit?format=json' })).json()
  assert.equal(status.servers[0].server, mc.address)
  assert.equal(status.servers[0].up, true)
  const products = status.caches.find(
    (c: { route: string }) => c.route.startsWith('GET /api/products') || c.route === '/api/products',
  )
  assert.ok(products.hit >= 2 && products.miss >= 2, JSON.stringify(status.caches))
  const loginLimit = status.rateLimits.find((l: { name: string }) => l.name.includes('login'))
  assert.equal(loginLimit.blocked, 1)

  const metrics = await shop.app.inject({ url: '/metrics' })
  assert.match(metrics.body, /^memkit_cache_hits_total\{command="\w+"\} [1-9]\d*/m)
  assert.match(metrics.body, new RegExp(`memkit_server_up\\{server="${mc.address}"\\} 1`))
})

test('when memcached is down the shop still answers: products uncached, no limit, sessions fail clearly', async () => {
  const down = await startMemcached()
  const downClient = createClient({
    servers: down.address,
    timeout: 200,
    failureLimit: 1,
    deadTimeout: 60_000,
  })
  const degraded = await buildApp({
    client: downClient,
    cookieSecret: 'a-test-cookie-secret-of-32-chars!',
    catalogDelayMs: 1,
  })
  const warnings = captureWarnings('MEMKIT_RATE_LIMIT_STORE_ERROR')
  try {
    await down.kill()
    const products = await degraded.app.inject({ url: '/api/products' })
    assert.equal(products.statusCode, 200)
    assert.equal(products.json().products.length, 3)
    const login = await degraded.app.inject({
      method: 'POST',
      url: '/login',
      payload: { username: 'alice', password: 'wonderland' },
    })
    assert.equal(login.statusCode, 503, 'a login cannot be kept without the session store')
    assert.ok(warnings.items.length >= 1, 'the limiter reports the outage')
  } finally {
    warnings.restore()
    await degraded.app.close()
    await downClient.close()
  }
})
