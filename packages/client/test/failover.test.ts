// Failover without stale rejoin. Three real servers; one is paused (SIGSTOP) past deadTimeout,
// its keys are rewritten and deleted elsewhere, then it resumes. It must never answer with what
// it held before: a logout or a purge done while it was away stays done.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, describe, test } from 'node:test'
import {
  type MemcachedServer,
  rawCommand,
  startMemcached,
  startMemcachedCluster,
  stopAll,
} from '@memkit/testing'
import { type ClientOptions, createClient, type MemcachedClient } from '../src/index.js'

after(stopAll)

const KEYS = Array.from({ length: 300 }, (_, i) => `fo:${i}`)

interface Scene {
  servers: MemcachedServer[]
  client: MemcachedClient
  victim: MemcachedServer
  onVictim: string[]
  elsewhere: string[]
}

async function scene(options: ClientOptions, victimArgs?: string[]): Promise<Scene> {
  const servers = await startMemcachedCluster(2)
  servers.splice(1, 0, await startMemcached({ args: victimArgs }))
  const client = createClient({
    servers: servers.map((s) => s.address),
    // Long enough that a healthy server answers in time on a loaded machine (a timeout marks it
    // down at once with failureLimit 1); the paused one is found out after this long.
    timeout: 1000,
    failureLimit: 1,
    deadTimeout: 200,
    ...options,
  })
  await Promise.all(KEYS.map((k) => client.set(k, 'before')))
  const victim = servers[1]!
  const onVictim = KEYS.filter((k) => client.serverFor(k) === victim.address)
  const elsewhere = KEYS.filter((k) => !onVictim.includes(k))
  assert.ok(onVictim.length > 30, `${onVictim.length} keys on the victim`)
  return { servers, client, victim, onVictim, elsewhere }
}

/** Pauses the victim and waits until the client has marked it down. */
async function pauseUntilDown({ client, victim, onVictim }: Scene): Promise<void> {
  const down = once(client, 'server:down')
  await victim.freeze()
  await client.get(onVictim[0]!).catch(() => {})
  await down
}

/** What the pool answers for `keys`: how many read the pre-failover value, how many deleted keys came back. */
async function audit(client: MemcachedClient, rewritten: string[], deleted: string[]) {
  const stale = (await Promise.all(rewritten.map((k) => client.get(k)))).filter((v) => v === 'before').length
  const resurrected = (await Promise.all(deleted.map((k) => client.get(k)))).filter(
    (v) => v !== undefined,
  ).length
  return { stale, resurrected }
}

describe('failover: true, a server paused past deadTimeout and resumed', () => {
  for (const protocol of ['meta', 'classic', 'binary'] as const)
    test(`${protocol}: its keys move to stand-ins with a capped TTL; back, it is emptied first: no stale read, no resurrection`, async (t) => {
      const s = await scene({ failover: true, failoverTtl: 30, protocol })
      const events: string[] = []
      s.client.on('server:flushed', ({ server, reason }) => events.push(`flushed ${server} ${reason}`))
      s.client.on('server:up', ({ server, flushed }) => events.push(`up ${server} ${flushed}`))
      try {
        await pauseUntilDown(s)
        const rewritten = s.onVictim.filter((_, i) => i % 2 === 0)
        const deleted = s.onVictim.filter((_, i) => i % 2 === 1)
        // While it is away: its keys are served by the others (rewrites and deletes land there).
        await Promise.all(rewritten.map((k) => s.client.set(k, 'during', { ttl: 3600 })))
        await Promise.all(deleted.map((k) => s.client.delete(k)))
        assert.deepEqual(await audit(s.client, rewritten, deleted), { stale: 0, resurrected: 0 })
        // A stand-in's copy is a short-lived gutter entry: at most failoverTtl, whatever was asked.
        const standIn = s.client.serverFor(rewritten[0]!)
        assert.notEqual(standIn, s.victim.address)
        const ttl = Number(/ t(\d+)/.exec(await rawCommand(standIn, `mg ${rewritten[0]} t\r\n`))![1])
        assert.ok(ttl > 0 && ttl <= 30, `stand-in TTL ${ttl}`)

        const up = once(s.client, 'server:up')
        s.victim.resume()
        await up
        assert.deepEqual(events, [`flushed ${s.victim.address} rejoin`, `up ${s.victim.address} true`])
        assert.equal(s.client.serverFor(rewritten[0]!), s.victim.address, 'its keys came home')
        const after = await audit(s.client, rewritten, deleted)
        t.diagnostic(`after the heal: ${after.stale} stale reads, ${after.resurrected} resurrected deletes`)
        assert.deepEqual(after, { stale: 0, resurrected: 0 })
        // What lived on the other servers was never touched.
        const kept = await s.client.getMany(s.elsewhere)
        assert.equal(kept.size, s.elsewhere.length)
        // The returning server is empty: what it held before the pause is gone, not served.
        assert.equal(await rawCommand(s.victim.address, `mg ${deleted[0]} v\r\n`), 'EN\r\n')
      } finally {
        s.victim.resume()
        await s.client.close()
      }
    })

  test("rejoin: 'keep' serves what the server held (the documented risk), and emits no flush", async () => {
    const s = await scene({ failover: true, rejoin: 'keep' })
    let flushed = false
    s.client.on('server:flushed', () => {
      flushed = true
    })
    try {
      await pauseUntilDown(s)
      await s.client.delete(s.onVictim[1]!)
      const up = once(s.client, 'server:up')
      s.victim.resume()
      const [{ flushed: upFlushed }] = (await up) as [{ flushed: boolean }]
      assert.equal(upFlushed, false)
      assert.equal(flushed, false)
      assert.equal(
        await s.client.get(s.onVictim[1]!),
        'before',
        'the delete made while it was away is undone',
      )
    } finally {
      s.victim.resume()
      await s.client.close()
    }
  })

  test('a server that refuses flush_all (memcached -F) stays down rather than serve stale data', async () => {
    const s = await scene({ failover: true }, ['-F'])
    let up = false
    s.client.on('server:up', () => {
      up = true
    })
    try {
      await pauseUntilDown(s)
      s.victim.resume()
      // Probes run every deadTimeout (200 ms): several come and go, none readmits it.
      await waitFor(async () => {
        const [, victim] = await s.client.stats()
        return victim?.error !== undefined && /flush_all not allowed/.test(victim.error.message)
      })
      assert.equal(up, false)
      assert.notEqual(s.client.serverFor(s.onVictim[0]!), s.victim.address)
      assert.equal(
        await rawCommand(s.victim.address, `mg ${s.onVictim[0]} v\r\n`).then((r) => r.startsWith('VA')),
        true,
      )
    } finally {
      s.victim.resume()
      await s.client.close()
    }
  })
})

describe('failover: false', () => {
  test('the paused server’s keys fail fast while it is down; back, it keeps its data (nothing was written elsewhere)', async () => {
    const s = await scene({ failover: false })
    let flushed = false
    s.client.on('server:flushed', () => {
      flushed = true
    })
    try {
      await pauseUntilDown(s)
      await assert.rejects(s.client.set(s.onVictim[1]!, 'during'), { code: 'ERR_MEMKIT_SERVER_DOWN' })
      await assert.rejects(s.client.delete(s.onVictim[2]!), { code: 'ERR_MEMKIT_SERVER_DOWN' })
      assert.equal(await s.client.get(s.elsewhere[0]!), 'before')
      const up = once(s.client, 'server:up')
      s.victim.resume()
      await up
      assert.equal(flushed, false)
      assert.equal(await s.client.get(s.onVictim[1]!), 'before')
    } finally {
      s.victim.resume()
      await s.client.close()
    }
  })
})

async function waitFor(condition: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await condition()) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  assert.fail('condition not reached')
}
