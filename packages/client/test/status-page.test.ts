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
