// Tag generations on three real nodes: the node holding a tag's generation is killed, or paused
// while the tag is invalidated. Only the entries on that node are affected, and an invalidation
// made while it was away is never undone.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, describe, test } from 'node:test'
import { createClient, type MemcachedClient } from '@memkit/client'
import { dumpKeys, type MemcachedServer, startMemcachedCluster, stopAll } from '@memkit/testing'
import { hashKey } from '../src/key.js'
import { FRAMEWORKS, makeApp, type Route, type TestApp } from './harness.js'

after(stopAll)

const PAGES = 30
const routes: Route[] = [
  {
    path: '/products/:id',
    cache: { tags: ['products'] },
    handler: (req, call) => ({ headers: { 'cache-control': 'max-age=600' }, body: `${req.url} #${call}` }),
  },
]
const host = { host: 'shop.example' }
const PREFIX = 'tc:'
/** An entry's own key: the prefix and a 43-character hash (variants, chunks, tags and leases have a letter and a colon). */
const ENTRY_KEY = new RegExp(`^${PREFIX}[A-Za-z0-9_-]{43}$`)

interface Scene {
  servers: MemcachedServer[]
  client: MemcachedClient
  app: TestApp
  /** The node of the tag's first generation copy: where the whole generation lived before. */
  tagNode: MemcachedServer
}

/**
 * `timeout` is short only where a test freezes a node (so it is found out fast). A killed node
 * refuses at once, so elsewhere it is long: on a loaded machine a healthy node answering late
 * must not be marked down, which the tests would read as a fault.
 */
async function scene(
  framework: (typeof FRAMEWORKS)[number],
  failover: boolean,
  timeout = 5000,
): Promise<Scene> {
  const servers = await startMemcachedCluster(3)
  const client = createClient({
    servers: servers.map((s) => s.address),
    failover,
    timeout,
    failureLimit: 1,
    deadTimeout: 200,
  })
  client.on('error', () => {})
  const app = await makeApp(framework, { client, keyPrefix: PREFIX }, routes)
  for (let i = 0; i < PAGES; i++) await app.request(`/products/${i}`, { headers: host })
  const tagNode = servers.find((s) => s.address === client.serverFor(`${PREFIX}t:${hashKey('products')}`))!
  return { servers, client, app, tagNode }
}

async function hits(app: TestApp): Promise<number> {
  let n = 0
  for (let i = 0; i < PAGES; i++) {
    const res = await app.request(`/products/${i}`, { headers: host })
    if (res.headers['x-cache'] === 'HIT') n++
  }
  return n
}

for (const framework of FRAMEWORKS) {
  for (const failover of [true, false]) {
    describe(`tag generations on three nodes, ${framework}, failover: ${failover}`, () => {
      test('the node holding the tag’s generation is killed: the entries on the other nodes stay hits', async (t) => {
        const s = await scene(framework, failover)
        try {
          const onVictim = (await dumpKeys(s.tagNode.address)).filter((k) => ENTRY_KEY.test(k)).length
          assert.equal(await hits(s.app), PAGES)
          await s.tagNode.kill()
          // The first pass after the kill: entries on the dead node miss (and, with failover,
          // are filled again on a stand-in); every other entry must still be a hit.
          const kept = await hits(s.app)
          t.diagnostic(`${kept} of ${PAGES} entries still hit (${onVictim} lived on the killed node)`)
          assert.equal(kept, PAGES - onVictim)
        } finally {
          await s.app.close()
          await s.client.close()
        }
      })

      test('the node holding the tag’s generation is paused while the tag is invalidated: the invalidation stands after the heal', async () => {
        const s = await scene(framework, failover, 200)
        try {
          const down = once(s.client, 'server:down')
          await s.tagNode.freeze()
          await hits(s.app)
          await down
          await s.app.invalidateTag('products')
          assert.equal(await hits(s.app), 0, 'invalidated at once')
          const up = once(s.client, 'server:up')
          s.tagNode.resume()
          await up
          // Refill, then check nothing from before the invalidation is served: every page was
          // filled again after it (its body counts handler calls, so an old entry would show #1).
          for (let i = 0; i < PAGES; i++) {
            const res = await s.app.request(`/products/${i}`, { headers: host })
            assert.doesNotMatch(res.text, / #1$/, `page ${i} served from before the invalidation`)
          }
        } finally {
          s.tagNode.resume()
          await s.app.close()
          await s.client.close()
        }
      })
    })
  }
}
