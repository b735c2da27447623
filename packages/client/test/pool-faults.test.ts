// A three-server pool under steady load loses a server, then gets it back. Bounded in time (the
// runner's timeout); all traffic on loopback. Each step waits for a state (traffic flowing, a
// server marked down or up), not for time; the counts are printed as test diagnostics, the
// latencies are in the benchmarks.
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { startMemcachedCluster, stopAll, waitUntil } from '@memkit/testing'
import {
  createClient,
  type MemcachedClient,
  type MemkitError,
  PartialReadError,
  ServerFailureError,
} from '../src/index.js'

after(stopAll)

const KEYS = Array.from({ length: 3000 }, (_, i) => `pool:${i}`)

interface LoadResult {
  ok: number
  failed: Map<string, number>
  wrong: number
}

/** Reads and writes random keys from 40 loops until `stop()`; values are the key itself. */
function steadyLoad(client: MemcachedClient, keys: string[]) {
  const result: LoadResult = { ok: 0, failed: new Map(), wrong: 0 }
  let running = true
  const loop = async (seed: number) => {
    let i = seed
    while (running) {
      i = (i * 1103515245 + 12345) % 2147483648
      const key = keys[i % keys.length]!
      try {
        const value = await client.get<string>(key)
        if (value === undefined) await client.set(key, key)
        else if (value !== key) result.wrong++
        result.ok++
      } catch (error) {
        const code = (error as MemkitError).code
        result.failed.set(code, (result.failed.get(code) ?? 0) + 1)
        // a failing-fast loop would otherwise spin without yielding to the timers
        await sleep(1)
      }
    }
  }
  const loops = Array.from({ length: 40 }, (_, i) => loop(i + 1))
  return {
    result,
    async stop() {
      running = false
      await Promise.all(loops)
    },
  }
}

describe('a pool of three under load loses one server', () => {
  test('failover: false: only the dead server’s keys fail, and fast; the rest never notice', {
    timeout: 60_000,
  }, async (t) => {
    const servers = await startMemcachedCluster(3)
    const client = createClient({
      servers: servers.map((s) => s.address),
      failover: false,
      timeout: 500,
      failureLimit: 2,
      deadTimeout: 60_000,
    })
    const down: string[] = []
    client.on('server:down', ({ server }) => down.push(server))
    try {
      await Promise.all(KEYS.map((k) => client.set(k, k)))
      const victim = servers[2]!
      const victimKeys = KEYS.filter((k) => client.serverFor(k) === victim.address)
      const otherKeys = KEYS.filter((k) => client.serverFor(k) !== victim.address)

      const load = steadyLoad(client, KEYS)
      await waitUntil(() => load.result.ok >= 300, { message: 'traffic flowing' })
      await victim.kill()
      await waitUntil(() => down.includes(victim.address), { message: 'the victim marked down' })
      // After the server is marked down: its keys fail at once (ERR_MEMKIT_SERVER_DOWN, not a
      // connection attempt or a timeout), everyone else is served.
      const probe = await Promise.allSettled(victimKeys.slice(0, 200).map((k) => client.get(k)))
      const others = await Promise.all(otherKeys.slice(0, 500).map((k) => client.get(k)))
      await load.stop()

      assert.ok(probe.every((r) => r.status === 'rejected' && r.reason.code === 'ERR_MEMKIT_SERVER_DOWN'))
      assert.deepEqual(others, otherKeys.slice(0, 500), 'keys on live servers all served')
      assert.equal(load.result.wrong, 0)
      for (const code of load.result.failed.keys())
        assert.match(code, /^ERR_MEMKIT_(CONNECTION|SERVER_DOWN|TIMEOUT)$/)
      t.diagnostic(
        `failover false: ${victimKeys.length}/${KEYS.length} keys on the dead server; under load ${load.result.ok} ops ok, failures ${JSON.stringify(Object.fromEntries(load.result.failed))}`,
      )
    } finally {
      await client.close()
    }
  })

  test('failover: true: its keys move to the survivors (about a third), and come back after a restart', {
    timeout: 60_000,
  }, async (t) => {
    const servers = await startMemcachedCluster(3)
    const client = createClient({
      servers: servers.map((s) => s.address),
      failover: true,
      timeout: 500,
      failureLimit: 2,
      deadTimeout: 500,
    })
    const events: string[] = []
    client.on('server:down', ({ server }) => events.push(`down ${server}`))
    client.on('server:up', ({ server }) => events.push(`up ${server}`))
    try {
      const before = new Map(KEYS.map((k) => [k, client.serverFor(k)]))
      const victim = servers[0]!
      const load = steadyLoad(client, KEYS)
      await waitUntil(() => load.result.ok >= 300, { message: 'traffic flowing' })
      await victim.kill()
      await waitUntil(() => events.includes(`down ${victim.address}`), { message: 'the victim marked down' })

      const during = new Map(KEYS.map((k) => [k, client.serverFor(k)]))
      const moved = KEYS.filter((k) => during.get(k) !== before.get(k))
      assert.ok(
        moved.every((k) => before.get(k) === victim.address),
        'only the dead server’s keys moved',
      )
      assert.ok(
        KEYS.every((k) => during.get(k) !== victim.address),
        'no key is placed on the dead server',
      )
      const fraction = moved.length / KEYS.length
      assert.ok(fraction > 0.2 && fraction < 0.45, `moved ${fraction}`)
      // while it is down, every key is served (moved keys start as misses and are refilled)
      const okDuring = await Promise.all(KEYS.slice(0, 600).map((k) => client.get(k).then(() => true)))
      assert.equal(okDuring.length, 600)

      await victim.restart()
      await waitUntil(() => events.includes(`up ${victim.address}`), {
        message: 'the probe found the restarted server',
      })
      const after = new Map(KEYS.map((k) => [k, client.serverFor(k)]))
      const back = KEYS.filter((k) => after.get(k) !== during.get(k))
      assert.deepEqual(back.sort(), moved.sort(), 'exactly the moved keys went back to their server')
      assert.ok(KEYS.every((k) => after.get(k) === before.get(k)))
      // the load runs on over the restored pool before it stops
      const okAtUp = load.result.ok
      await waitUntil(() => load.result.ok >= okAtUp + 300, { message: 'traffic on the restored pool' })
      await load.stop()
      assert.equal(load.result.wrong, 0)
      // the restarted server serves its keys again (it came back empty: misses are refilled)
      await Promise.all(moved.slice(0, 100).map((k) => client.set(k, k)))
      assert.deepEqual(await Promise.all(moved.slice(0, 100).map((k) => client.get(k))), moved.slice(0, 100))
      t.diagnostic(
        `failover true: ${moved.length}/${KEYS.length} keys moved (${(fraction * 100).toFixed(1)}%) when 1 of 3 servers died, all back after restart; under load ${load.result.ok} ops ok, failures ${JSON.stringify(Object.fromEntries(load.result.failed))}`,
      )
    } finally {
      await client.close()
    }
  })

  test('every server down at start: the app starts, operations fail fast, the pool connects when servers come up', {
    timeout: 30_000,
  }, async () => {
    const servers = await startMemcachedCluster(3)
    for (const server of servers) await server.kill()
    const client = createClient({ servers: servers.map((s) => s.address), failureLimit: 1, deadTimeout: 200 })
    const up: string[] = []
    client.on('server:up', ({ server }) => up.push(server))
    try {
      // refused connections, then fail-fast: never a timeout
      const results = await Promise.allSettled(KEYS.slice(0, 300).map((k) => client.get(k)))
      for (const r of results) {
        assert.equal(r.status, 'rejected')
        assert.match((r as PromiseRejectedResult).reason.code, /^ERR_MEMKIT_(CONNECTION|SERVER_DOWN)$/)
      }
      await Promise.all(servers.map((s) => s.restart()))
      await waitUntil(() => new Set(up).size === 3, { message: 'all three servers up' })
      assert.deepEqual(new Set(up), new Set(servers.map((s) => s.address)))
      await client.set('alive', 'yes')
      assert.equal(await client.get('alive'), 'yes')
    } finally {
      await client.close()
    }
  })

  test('getMany with one server dead: the hits of the other two, and the keys it could not read', async () => {
    const servers = await startMemcachedCluster(3)
    const client = createClient({ servers: servers.map((s) => s.address), failureLimit: 1 })
    try {
      const keys = KEYS.slice(0, 60)
      await Promise.all(keys.map((k) => client.set(k, k)))
      const victim = servers[1]!
      const onVictim = keys.filter((k) => client.serverFor(k) === victim.address)
      assert.ok(onVictim.length > 5 && onVictim.length < 50)
      await victim.kill()
      const error = await client.getMany([...keys, 'pool:absent']).then(
        () => assert.fail('a partial read must say so'),
        (e: unknown) => e as PartialReadError<string>,
      )
      assert.ok(error instanceof PartialReadError)
      assert.ok(error instanceof ServerFailureError, 'handlers of server failures still catch it')
      assert.equal(error.code, 'ERR_MEMKIT_PARTIAL_READ')
      assert.equal(error.server, victim.address)
      const absentOnVictim = client.serverFor('pool:absent') === victim.address ? ['pool:absent'] : []
      assert.deepEqual([...error.failed.keys()].sort(), [...onVictim, ...absentOnVictim].sort())
      for (const failure of error.failed.values())
        assert.match(failure.code, /^ERR_MEMKIT_(CONNECTION|SERVER_DOWN)$/)
      const healthy = keys.filter((k) => !onVictim.includes(k))
      assert.deepEqual(
        new Map(error.hits),
        new Map(healthy.map((k) => [k, k])),
        'every key of the healthy servers',
      )
      // Marked down now: the same read fails its keys fast, the rest still answers.
      const again = await client.getMany(keys).catch((e: PartialReadError<string>) => e)
      assert.ok(again instanceof PartialReadError)
      assert.equal(again.hits.size, healthy.length)
      assert.equal([...again.failed.values()][0]!.code, 'ERR_MEMKIT_SERVER_DOWN')
      // Only keys on healthy servers: a plain result.
      assert.equal((await client.getMany(healthy)).size, healthy.length)
    } finally {
      await client.close()
    }
  })
})
