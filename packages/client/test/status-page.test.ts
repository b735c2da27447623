import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, test } from 'node:test'
import { startMemcached, stopAll } from '@memkit/testing'
import { createClient } from '../src/index.js'
import { createStatusPage, type StatusSnapshot } from '../src/status-page.js'

after(stopAll)

test('the status page serves its figures as JSON and a self-contained HTML page with a strict CSP', async () => {
  const mc = await startMemcached()
  const client = createClient({ servers: mc.address })
  await client.set('k', 'v')
  await client.get('k')
  const status = createStatusPage({
    client,
    title: 'Shop <status>',
    rateLimits: [
      () => ({
        name: 'login',
        algorithm: 'fixed',
        windowMs: 60_000,
        limit: 5,
        totals: { allowed: 7, blocked: 3 },
        perMinute: [{ minute: 0, allowed: 7, blocked: 3 }],
      }),
    ],
    responseCaches: [
      () => ({ routes: { '/products': { hit: 9, miss: 1, stale: 0, bypass: 2, hitRatio: 0.9 } } }),
    ],
  })
  const server = createServer((req, res) => status.handle(req, res))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/memkit`
  try {
    const json = await fetch(`${base}?format=json`)
    assert.equal(json.headers.get('cache-control'), 'no-store')
    const data = (await json.json()) as StatusSnapshot
    const [stats] = await client.stats()
    assert.equal(data.servers[0]!.server, mc.address)
    assert.equal(data.servers[0]!.up, true)
    assert.equal(data.servers[0]!.limitMaxbytes, stats!.limitMaxbytes)
    assert.equal(data.servers[0]!.raw, undefined, 'raw figures stay out of the page')
    assert.deepEqual(data.caches, [
      { route: '/products', hit: 9, miss: 1, stale: 0, bypass: 2, hitRatio: 0.9 },
    ])
    assert.equal(data.rateLimits[0]!.blocked, 3)

    const page = await fetch(base)
    const html = await page.text()
    // First paint carries the figures: no script has to run for the tables to fill.
    assert.ok(html.includes(`<tr data-server="${mc.address}">`), 'the server row is in the HTML')
    assert.ok(html.includes(`data-field="currItems" data-value="${stats!.currItems}"`))
    assert.ok(html.includes('<tr data-route="/products">'))
    assert.ok(html.includes('data-field="blocked" data-value="3"'))
    assert.ok(!html.includes('loading'), 'never an empty "loading" table')
    const csp = page.headers.get('content-security-policy')!
    const nonce = /script-src 'nonce-([^']+)'/.exec(csp)![1]
    assert.ok(html.includes(`<script nonce="${nonce}">`))
    assert.match(csp, /default-src 'none'/)
    assert.ok(html.includes('Shop &#60;status&#62;'), 'the title is escaped')
    assert.ok(!html.includes('<status>'))
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff')
  } finally {
    server.close()
    await client.close()
  }
})

test('limiters that share a name (one counter) are one row with their figures added', async () => {
  const client = createClient({ servers: 'memory://status-merge' })
  const page = createStatusPage({
    client,
    rateLimits: [
      () => [
        {
          name: 'api',
          limit: 100,
          totals: { allowed: 3, blocked: 1 },
          perMinute: [{ minute: 60_000, allowed: 3, blocked: 1 }],
        },
        {
          name: 'api',
          limit: 100,
          totals: { allowed: 2, blocked: 0 },
          perMinute: [{ minute: 120_000, allowed: 2, blocked: 0 }],
        },
        { name: 'login', limit: 5, totals: { allowed: 1, blocked: 0 }, perMinute: [] },
      ],
    ],
  })
  const rows = (await page.snapshot()).rateLimits
  assert.deepEqual(
    rows.map((r) => [r.name, r.allowed, r.blocked, r.perMinute.length]),
    [
      ['api', 5, 1, 2],
      ['login', 1, 0, 0],
    ],
  )
})

test('idle limiters and routes (a global: false plugin, a route not requested yet) are named, not rows of zeros', async () => {
  const client = createClient({ servers: 'memory://status-idle' })
  const page = createStatusPage({
    client,
    rateLimits: [
      () => [
        { name: 'fixed:60000:100', limit: 100, totals: { allowed: 0, blocked: 0 }, perMinute: [] },
        {
          name: 'login',
          limit: 5,
          totals: { allowed: 4, blocked: 1 },
          perMinute: [{ minute: 0, allowed: 4, blocked: 1 }],
        },
      ],
    ],
    responseCaches: [
      () => ({
        routes: {
          '/products': { hit: 3, miss: 1, stale: 0, bypass: 0, hitRatio: 0.75 },
          '/never': { hit: 0, miss: 0, stale: 0, bypass: 0, hitRatio: 0 },
        },
      }),
    ],
  })
  const data = await page.snapshot()
  assert.equal(data.rateLimits.length, 2, 'the JSON keeps every limiter')
  const html = page.html(data)
  assert.ok(html.includes('<tr data-limiter="login">'))
  assert.ok(!html.includes('<tr data-limiter="fixed:60000:100">'), 'no row for the idle limiter')
  assert.match(html, /data-testid="idle-limiters">Limiters without requests yet: fixed:60000:100</)
  assert.ok(html.includes('<tr data-route="/products">'))
  assert.ok(!html.includes('<tr data-route="/never">'))
  assert.match(html, /data-testid="idle-routes">Routes not requested yet: \/never</)

  const quiet = createStatusPage({
    client,
    rateLimits: [() => ({ ...data.rateLimits[0]!, totals: { allowed: 0, blocked: 0 } })],
  })
  assert.match(quiet.html(await quiet.snapshot()), /no request has reached a rate limiter yet/)
  await client.close()
})

test('names and routes are escaped; refreshMs: 0 leaves the script out', async () => {
  const client = createClient({ servers: 'memory://status-escape' })
  const hostile = '"><img src=x onerror=alert(1)>'
  const page = createStatusPage({
    client,
    refreshMs: 0,
    rateLimits: [() => ({ name: hostile, totals: { allowed: 1, blocked: 0 }, perMinute: [] })],
    responseCaches: [
      () => ({ routes: { [hostile]: { hit: 1, miss: 0, stale: 0, bypass: 0, hitRatio: 1 } } }),
    ],
  })
  const html = page.html(await page.snapshot(), 'n0nce')
  assert.ok(!html.includes('<img'), 'no markup from data')
  assert.ok(html.includes('&#34;&#62;&#60;img src=x onerror=alert(1)&#62;'))
  assert.ok(!html.includes('<script'), 'no refresh script with refreshMs: 0')
  assert.ok(html.includes('<style nonce="n0nce">'))
  await client.close()
})
