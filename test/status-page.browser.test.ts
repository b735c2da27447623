// The status page (GET /memkit) of both example apps, in a real headless Chromium (Debian's,
// driven by playwright-core): its first paint already holds the figures (even with JavaScript
// off), they match the client's stats(), idle limiters are not rows of zeros, it is readable
// 400 px wide, and it refreshes itself. Screenshots are written to test/output/.
import assert from 'node:assert/strict'
import { mkdirSync, statSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { createClient, type MemcachedClient } from '@memkit/client'
import { startMemcachedCluster, stopAll } from '@memkit/testing'
import { type Browser, chromium } from 'playwright-core'
import { start as startExpress } from '../examples/express-app/src/server.js'
import { start as startFastify } from '../examples/fastify-app/src/server.js'

const output = fileURLToPath(new URL('./output/', import.meta.url))
mkdirSync(output, { recursive: true })

let browser: Browser
before(async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  })
})
after(async () => {
  await browser?.close()
  await stopAll()
})

// In-page code is given to Chromium as text: code compiled by tsx carries helpers (__name)
// that do not exist in the page.
const READ_SERVER_ROWS = `[...document.querySelectorAll('[data-testid=servers] tbody tr')].map((tr) => {
  const value = (field) => tr.querySelector('[data-field=' + field + ']')?.dataset.value
  return {
    server: value('server'), up: value('up'), items: value('currItems'), evictions: value('evictions'),
    limit: tr.querySelector('[data-field=bytes]')?.dataset.limit,
  }
})`
const READ_LIMIT_ROWS = `[...document.querySelectorAll('[data-testid=rate-limits] tbody tr')].map((tr) => ({
  name: tr.querySelector('[data-field=name]')?.textContent ?? '',
  allowed: Number(tr.querySelector('[data-field=allowed]')?.dataset.value),
  blocked: Number(tr.querySelector('[data-field=blocked]')?.dataset.value),
}))`
// At 400 px: nothing wider than the window, and every figure of every table inside it.
const NARROW_LAYOUT = `(() => {
  const cells = [...document.querySelectorAll('td')].map((td) => td.getBoundingClientRect())
  return {
    pageWidth: document.documentElement.scrollWidth,
    cells: cells.length,
    outside: cells.filter((r) => r.left < 0 || r.right > window.innerWidth + 0.5 || r.width === 0).length,
  }
})()`

const apps = [
  ['Express', startExpress],
  ['Fastify', startFastify],
] as const

describe('the status page in Chromium', () => {
  for (const [name, start] of apps) {
    test(`${name}: figures match stats(), blocks and cache hits show, the page refreshes`, async () => {
      const servers = await startMemcachedCluster(2)
      const addresses = servers.map((s) => s.address).join(',')
      const shop = await start({ servers: addresses, port: 0 })
      const client: MemcachedClient = createClient({ servers: addresses })
      const page = await browser.newPage({ viewport: { width: 1100, height: 800 } })
      try {
        // Some traffic: cache misses and hits, and a blocked login.
        for (let i = 0; i < 3; i++) await fetch(`${shop.url}/api/products`)
        for (let i = 0; i < 6; i++) {
          await fetch(`${shop.url}/login`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-forwarded-for': '203.0.113.50' },
            body: '{}',
          })
        }

        const errors: string[] = []
        page.on('pageerror', (error) => errors.push(error.message))
        page.on('console', (message) => {
          if (message.type() === 'error') errors.push(message.text())
        })
        // First paint, with JavaScript off: the tables are already filled by the server.
        const noScript = await browser.newPage({ javaScriptEnabled: false })
        await noScript.goto(`${shop.url}/memkit`)
        assert.equal(
          ((await noScript.evaluate(READ_SERVER_ROWS)) as unknown[]).length,
          2,
          'server rows without JS',
        )
        assert.match((await noScript.textContent('[data-testid=caches] tbody')) ?? '', /\/api\/products/)
        await noScript.close()

        await page.goto(`${shop.url}/memkit`)
        await page.waitForSelector('body[data-ready="true"]', { timeout: 10_000 })
        assert.deepEqual(errors, [], 'no script or CSP errors')
        assert.match(await page.title(), new RegExp(`memkit example shop \\(${name}\\)`))

        // Servers: the page's figures against the client's own stats().
        const stats = await client.stats()
        const rows = (await page.evaluate(READ_SERVER_ROWS)) as Array<Record<string, string | undefined>>
        assert.equal(rows.length, 2)
        for (const s of stats) {
          const row = rows.find((r) => r.server === s.server)
          assert.ok(row, `a row for ${s.server}`)
          assert.equal(row.up, 'true')
          assert.equal(Number(row.limit), s.limitMaxbytes)
          assert.equal(Number(row.items), s.currItems)
          assert.equal(Number(row.evictions), s.evictions)
        }

        // The cached route's hit ratio and the login limiter's block.
        const cacheText = await page.textContent('[data-testid=caches] tbody')
        assert.match(cacheText ?? '', /\/api\/products/)
        const hitRatio = Number(
          await page.getAttribute('[data-testid=caches] tbody tr [data-field=hitRatio]', 'data-value'),
        )
        assert.ok(hitRatio > 0.5, `hit ratio ${hitRatio}`)
        const limiters = (await page.evaluate(READ_LIMIT_ROWS)) as Array<{
          name: string
          allowed: number
          blocked: number
        }>
        assert.equal(limiters.find((l) => l.name.includes('login'))?.blocked, 1)
        // Fastify's plugin is registered with global: false: its own limiter never counts, and
        // is not a row of zeros (the same for any limiter no request has reached yet).
        for (const l of limiters)
          assert.ok(l.allowed + l.blocked > 0, `${l.name} is a row only once it counted`)

        // Readable on a phone: 400 px wide, no horizontal scrolling, every cell on screen.
        const narrow = await browser.newPage({ viewport: { width: 400, height: 800 } })
        await narrow.goto(`${shop.url}/memkit`)
        const layout = (await narrow.evaluate(NARROW_LAYOUT)) as {
          pageWidth: number
          cells: number
          outside: number
        }
        assert.ok(layout.cells >= 10, `${layout.cells} cells`)
        assert.ok(layout.pageWidth <= 400, `page width ${layout.pageWidth} px at a 400 px window`)
        assert.equal(layout.outside, 0, 'every cell inside the window')
        const narrowFile = `${output}status-${name.toLowerCase()}-400px.png`
        await narrow.screenshot({ path: narrowFile, fullPage: true })
        await narrow.close()

        // It refreshes: a server killed now shows as down without reloading the page.
        await servers[1]!.kill()
        await page.waitForSelector(
          `[data-testid=servers] tr[data-server="${servers[1]!.address}"] [data-field=up][data-value=false]`,
          {
            timeout: 10_000,
          },
        )

        const file = `${output}status-${name.toLowerCase()}.png`
        await page.screenshot({ path: file, fullPage: true })
        assert.ok(statSync(file).size > 10_000, 'a real screenshot')
      } finally {
        await page.close()
        await client.close()
        await shop.stop()
      }
    })
  }
})
