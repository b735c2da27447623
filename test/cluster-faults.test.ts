// The cluster fault suite: both example shops (sessions + rate limits + response cache on one
// client) against three real memcached nodes, while one node is killed, paused past deadTimeout
// and resumed (any node, and the one holding the shared state), or while the event loop is
// blocked. Each case states what users see; the figures are printed as test diagnostics and
// copied into the client README's fault table. Loopback only, bounded in count and time.
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { once } from 'node:events'
import { after, describe, test } from 'node:test'
import { createClient, type MemcachedClient } from '@memkit/client'
import {
  captureWarnings,
  dumpKeys,
  type MemcachedServer,
  startMemcachedCluster,
  stopAll,
} from '@memkit/testing'
import { type Framework, type Reply, type Shop, startShop, User } from './cluster-faults/shop.js'

after(stopAll)

const USERS = 24
/** Small timeouts keep each case short; the logic does not depend on their size. */
const TIMEOUT = 200
const SESSION_KEY = /^sess:[0-9a-z]+:/
/** The example shops' store secret (shop.ts): session keys are an HMAC of the id under it. */
const STORE_SECRET = 'faults'

interface World {
  servers: MemcachedServer[]
  client: MemcachedClient
  shop: Shop
  users: User[]
  admin: User
  /** The node that held the session namespace generation when it was one key. */
  sharedStateNode: MemcachedServer
  close(): Promise<void>
}

let addressSeed = 0
function nextAddress(): string {
  addressSeed++
  return `10.${(addressSeed >> 16) & 255}.${(addressSeed >> 8) & 255}.${addressSeed & 255}`
}

async function world(framework: Framework, failover: boolean): Promise<World> {
  const servers = await startMemcachedCluster(3)
  const client = createClient({
    servers: servers.map((s) => s.address),
    failover,
    timeout: TIMEOUT,
    failureLimit: 2,
    deadTimeout: 300,
  })
  // Failures a fault provokes are reported on purpose; the suite asserts on what users see.
  client.on('error', () => {})
  // A node's loss makes the limiter fall back per onStoreError, which it reports once per outage.
  const warnings = captureWarnings(['MEMKIT_RATE_LIMIT_STORE_ERROR'])
  const shop = await startShop(framework, client)
  const users: User[] = []
  for (let i = 0; i < USERS; i++) {
    const user = new User(shop, nextAddress())
    assert.equal((await user.login('alice', 'wonderland')).status, 200)
    assert.equal((await user.request('POST', '/note', { note: `note-${framework}-${i}` })).status, 200)
    users.push(user)
  }
  const admin = new User(shop, nextAddress())
  assert.equal((await admin.login('admin', 'swordfish')).status, 200)
  const sharedStateNode = servers.find((s) => s.address === client.serverFor('sess:gen'))!
  return {
    servers,
    client,
    shop,
    users,
    admin,
    sharedStateNode,
    async close() {
      for (const server of servers) server.resume()
      await shop.close()
      await client.close()
      warnings.restore()
    },
  }
}

/**
 * How many users' sessions live on `server`: the store keys a session by an HMAC of its id (with
 * the shops' store secret), so each user's key is found among the keys the servers hold.
 */
async function sessionsOn(w: World, server: MemcachedServer, users = w.users): Promise<number> {
  const keys = await dumpKeys(server.address)
  return users.filter((user) => {
    const hash = createHmac('sha256', STORE_SECRET).update(user.sessionId!).digest('base64url')
    return keys.some((key) => SESSION_KEY.test(key) && key.endsWith(`:${hash}`))
  }).length
}

interface Census {
  kept: number
  loggedOut: number
  unavailable: number
  /** A session answered with another session's data. Must always be 0. */
  wrong: number
}

/** Every user reads their note once, all at once: whose session is still theirs. */
async function census(w: World, users = w.users): Promise<Census> {
  const result: Census = { kept: 0, loggedOut: 0, unavailable: 0, wrong: 0 }
  const replies = await Promise.all(users.map((user) => user.request('GET', '/note')))
  replies.forEach((reply, i) => {
    const mine = `note-${w.shop.framework}-${w.users.indexOf(users[i]!)}`
    if (reply.status === 200) {
      if (reply.body.note === mine && reply.body.user === 'alice') result.kept++
      else result.wrong++
    } else if (reply.status === 401) result.loggedOut++
    else result.unavailable++
  })
  return result
}

/** Login attempts from one address until it is limited, then `extra` more: how many got through. */
async function overLimit(w: World, extra: number): Promise<{ before: number; after: () => Promise<number> }> {
  const attacker = new User(w.shop, nextAddress())
  let allowed = 0
  for (let i = 0; i < 5; i++) if ((await attacker.login('alice', 'wrong')).status !== 429) allowed++
  return {
    before: allowed,
    after: async () => {
      let through = 0
      for (let i = 0; i < extra; i++) {
        const status = (await attacker.login('alice', 'wrong')).status
        if (status !== 429 && status < 500) through++
      }
      return through
    },
  }
}

/** The price of product 1 as a visitor without a session sees it (the cached public listing). */
async function price(w: World): Promise<number | undefined> {
  const reply: Reply = await new User(w.shop, nextAddress()).request('GET', '/api/products')
  const products = reply.body.products as Array<{ id: number; price: number }> | undefined
  return products?.find((p) => p.id === 1)?.price
}

/** The admin changes a price (and purges the tag); logs in again if the fault ended the session. */
async function setPrice(w: World, value: number): Promise<Reply> {
  let reply = await w.admin.request('POST', '/admin/products/1/price', { price: value })
  if (reply.status === 403 || reply.status === 401) {
    w.admin = new User(w.shop, nextAddress())
    await w.admin.login('admin', 'swordfish')
    reply = await w.admin.request('POST', '/admin/products/1/price', { price: value })
  }
  return reply
}

/**
 * Users read their notes until the client marks the frozen `server` down. One census can take
 * a single timeout (its commands to that node leave in one write, and a timeout fails them
 * together, one failure), and failureLimit is 2.
 */
async function untilDown(w: World, server: MemcachedServer): Promise<void> {
  let down = false
  const marked = (event: { server: string }) => {
    if (event.server === server.address) down = true
  }
  w.client.on('server:down', marked)
  try {
    for (let pass = 0; pass < 20 && !down; pass++) await census(w)
  } finally {
    w.client.off('server:down', marked)
  }
  assert.ok(down, `${server.address} was never marked down`)
}

function blockFor(ms: number): void {
  const end = performance.now() + ms
  while (performance.now() < end) {
    // the application's synchronous work
  }
}

const frameworks: Framework[] = ['express', 'fastify']

for (const framework of frameworks) {
  for (const failover of [true, false]) {
    const label = `${framework}, failover: ${failover}`

    describe(`cluster faults, ${label}`, () => {
      test('the node holding the shared state is killed: only the sessions on it are lost', async (t) => {
        const w = await world(framework, failover)
        try {
          const victim = w.sharedStateNode
          const onVictim = await sessionsOn(w, victim)
          assert.ok(onVictim > 0 && onVictim < USERS, `${onVictim} of ${USERS} sessions on the victim`)
          assert.equal(await price(w), 12)
          const limit = await overLimit(w, 5)
          assert.equal(limit.before, 5)
          await victim.kill()
          await census(w) // the first requests find the node gone; the second pass is what stays
          const after = await census(w)
          const through = await limit.after()
          t.diagnostic(
            `kill ${label}: sessions kept ${after.kept}/${USERS} (${onVictim} lived on the killed node), logged out ${after.loggedOut}, unavailable ${after.unavailable}, wrong session ${after.wrong}, over-limit logins let through ${through}/5`,
          )
          assert.equal(after.wrong, 0)
          assert.equal(after.kept, USERS - onVictim, 'every session on the two other nodes is kept')
          if (failover) assert.equal(after.loggedOut + after.unavailable, onVictim)
          else
            assert.equal(
              after.unavailable,
              onVictim,
              'without failover they fail (503), they are not logged out',
            )
          assert.equal(await price(w), 12)
        } finally {
          await w.close()
        }
      })

      for (const which of ['a node', 'the node holding the shared state'] as const) {
        test(`${which} paused past deadTimeout and resumed: logouts and purges made meanwhile stay done`, async (t) => {
          const w = await world(framework, failover)
          try {
            const victim =
              which === 'a node' ? w.servers.find((s) => s !== w.sharedStateNode)! : w.sharedStateNode
            const onVictim = await sessionsOn(w, victim)
            const leaving = w.users.filter((_, i) => i % 2 === 0)
            const staying = w.users.filter((_, i) => i % 2 === 1)
            const stayingOnVictim = await sessionsOn(w, victim, staying)
            assert.equal(await price(w), 12)
            await victim.freeze()
            await untilDown(w, victim) // requests for its keys time out, then it is marked down
            // During the partition: half the users log out, the admin changes a price.
            const logouts = await Promise.all(leaving.map((u) => u.request('POST', '/logout')))
            const loggedOut = leaving.filter((_, i) => logouts[i]!.status === 204)
            const purge = await setPrice(w, 99)
            const during = await census(w, staying)

            const up = once(w.client, 'server:up')
            victim.resume()
            await up
            const me = await Promise.all(loggedOut.map((u) => u.request('GET', '/me')))
            const resurrections = me.filter((r) => r.status === 200).length
            const after = await census(w, staying)
            const prices = await Promise.all(Array.from({ length: 6 }, () => price(w)))
            const stale = purge.status === 200 ? prices.filter((p) => p === 12).length : 0
            t.diagnostic(
              `pause ${which}, ${label}: ${onVictim}/${USERS} sessions on it; logouts ${loggedOut.length}/${leaving.length} done (others: ${[...new Set(logouts.filter((r) => r.status !== 204).map((r) => r.status))].join(',') || '-'}); purge ${purge.status}; during: kept ${during.kept}/${staying.length}, unavailable ${during.unavailable}; after heal: resurrected logouts ${resurrections}, stale reads ${stale}/${prices.length}, kept ${after.kept}/${staying.length}, wrong ${during.wrong + after.wrong}`,
            )
            assert.equal(resurrections, 0, 'no logout is undone by the heal')
            assert.equal(stale, 0, 'no purge is undone by the heal')
            assert.equal(during.wrong + after.wrong, 0)
            if (!failover) {
              // Nothing moved: every logout either happened or failed visibly; the purge too.
              for (const r of logouts) assert.ok(r.status === 204 || r.status === 503, `logout ${r.status}`)
            } else {
              assert.equal(loggedOut.length, leaving.length, 'with failover every logout succeeds')
              assert.equal(purge.status, 200)
            }
            if (purge.status === 200) assert.ok(prices.every((p) => p === 99))
            // Only the sessions on the paused node are touched: unreachable while it is away
            // (failover: logged out; without: unavailable), and after the heal gone (failover:
            // the node was emptied) or back (without failover nothing was written elsewhere).
            assert.equal(during.kept, staying.length - stayingOnVictim)
            assert.equal(after.kept, failover ? staying.length - stayingOnVictim : staying.length)
          } finally {
            await w.close()
          }
        })
      }

      test('the event loop is blocked for 2× timeout again and again: nothing fails, the limiter stays exact', async (t) => {
        const w = await world(framework, failover)
        const trouble: string[] = []
        w.client.on('server:down', ({ server }) => trouble.push(`down ${server}`))
        try {
          const attacker = new User(w.shop, nextAddress())
          const blocker = setInterval(() => blockFor(TIMEOUT * 2), 150)
          let statuses: number[]
          let notes: Census
          try {
            const attempts = Promise.all(Array.from({ length: 20 }, () => attacker.login('alice', 'wrong')))
            notes = await census(w)
            const products = await Promise.all(w.users.map((u) => u.request('GET', '/api/products')))
            statuses = [...(await attempts).map((r) => r.status), ...products.map((r) => r.status)]
            notes = await census(w)
          } finally {
            clearInterval(blocker)
          }
          const logins = statuses.slice(0, 20)
          const allowed = logins.filter((s) => s !== 429).length
          const failures = statuses.filter((s) => s >= 500).length
          t.diagnostic(
            `blocked loop, ${label}: login attempts allowed ${allowed}/20 (limit 5, over-limit let through ${Math.max(0, allowed - 5)}), 5xx ${failures}, sessions kept ${notes.kept}/${USERS}, servers marked down ${trouble.length}`,
          )
          assert.equal(allowed, 5, 'exactly the limit, no more')
          assert.equal(failures, 0)
          assert.deepEqual(trouble, [])
          assert.equal(notes.kept, USERS)
          assert.equal(notes.wrong, 0)
        } finally {
          await w.close()
        }
      })
    })
  }
}
