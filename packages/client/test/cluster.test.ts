import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { describe, test } from 'node:test'
import { rawCommand, startMemcached, startMemcachedCluster, useMemcached } from '@memkit/testing'
import { CHANNELS, type CommandEvent, Continuum, createClient } from '../src/index.js'

const { servers, client } = await useMemcached({ count: 3, createClient })

describe('a pool of three servers', () => {
  test('each key lives on the server serverFor names, and only there', async () => {
    const keys = Array.from({ length: 150 }, (_, i) => `placed:${i}`)
    await Promise.all(keys.map((k) => client.set(k, k)))
    const counts = new Map<string, number>()
    for (const key of keys) {
      const owner = client.serverFor(key)
      counts.set(owner, (counts.get(owner) ?? 0) + 1)
      for (const server of servers) {
        const reply = await rawCommand(server.address, `mg ${key} v\r\n`)
        assert.equal(reply.startsWith('VA '), server.address === owner, `${key} on ${server.address}`)
      }
    }
    assert.equal(counts.size, 3)
    for (const n of counts.values()) assert.ok(n > 20, `spread: ${[...counts.values()]}`)
  })

  test('getMany splits keys by server and runs one batch per server, in parallel', async () => {
    const keys = Array.from({ length: 100 }, (_, i) => `batch:${i}`)
    await Promise.all(keys.map((k, i) => client.set(k, i)))
    const events: CommandEvent[] = []
    const listener = (message: unknown) => events.push(message as CommandEvent)
    subscribe(CHANNELS.command, listener)
    try {
      const result = await client.getMany([...keys, 'batch:missing'])
      assert.equal(result.size, 100)
      for (const [i, k] of keys.entries()) assert.equal(result.get(k), i)
    } finally {
      unsubscribe(CHANNELS.command, listener)
    }
    const batches = events.filter((e) => e.command === 'getMany')
    assert.equal(batches.length, 3, 'one pipelined batch per server')
    assert.deepEqual(new Set(batches.map((e) => e.server)), new Set(servers.map((s) => s.address)))
  })

  test('weights: a server with weight 3 gets three times the ring points and clearly more keys', () => {
    const weighted = createClient({
      servers: [
        { host: '10.9.0.1', port: 11211, weight: 1 },
        { host: '10.9.0.2', port: 11211, weight: 3 },
      ],
    })
    const ring = new Continuum([
      { host: '10.9.0.1', port: 11211, weight: 1 },
      { host: '10.9.0.2', port: 11211, weight: 3 },
    ])
    assert.deepEqual(ring.pointCounts(), [80, 240])
    const counts = new Map<string, number>()
    for (let i = 0; i < 20_000; i++) {
      const owner = weighted.serverFor(`w:${i}`)
      counts.set(owner, (counts.get(owner) ?? 0) + 1)
    }
    // 80 vs 240 points: the share of keys follows, with ketama's variance (libmemcached agrees)
    const ratio = counts.get('10.9.0.2:11211')! / counts.get('10.9.0.1:11211')!
    assert.ok(ratio > 2 && ratio < 4, `ratio ${ratio}`)
    void weighted.close()
  })

  test('stats reports every server: up, hit ratio, memory used vs limit, items, evictions, connections, uptime', async () => {
    await client.set('stats:k', 'v')
    await client.get('stats:k')
    await client.get('stats:missing')
    const stats = await client.stats()
    assert.deepEqual(
      stats.map((s) => s.server),
      servers.map((s) => s.address),
    )
    for (const s of stats) {
      assert.equal(s.up, true)
      assert.match(s.version!, /^1\.6\./)
      assert.equal(s.limitMaxbytes, 64 * 1024 * 1024)
      assert.ok(typeof s.bytes === 'number' && s.bytes >= 0)
      assert.ok(s.memoryUsage! >= 0 && s.memoryUsage! < 1)
      assert.equal(typeof s.evictions, 'number')
      assert.ok(s.currItems! >= 0)
      assert.ok(s.currConnections! >= 1)
      assert.ok(s.uptime! >= 0)
      assert.equal(s.raw!.pid !== undefined, true)
    }
    const owner = stats.find((s) => s.server === client.serverFor('stats:k'))!
    assert.ok(owner.getHits! >= 1)
    assert.ok(owner.hitRatio! > 0 && owner.hitRatio! <= 1)
  })

  test('flush empties every server', async () => {
    const keys = Array.from({ length: 30 }, (_, i) => `flush:${i}`)
    await Promise.all(keys.map((k) => client.set(k, 1)))
    await client.flush()
    assert.equal((await client.getMany(keys)).size, 0)
  })

  test('a server that forbids flush_all (-F): flush fails with its refusal, on both text protocols', async () => {
    const locked = await startMemcached({ args: ['-F'] })
    for (const protocol of ['meta', 'classic'] as const) {
      const strict = createClient({ servers: locked.address, protocol })
      try {
        await strict.set('kept', 'yes')
        await assert.rejects(strict.flush(), {
          code: 'ERR_MEMKIT_PROTOCOL',
          message: `${locked.address} answered flush with CLIENT_ERROR flush_all not allowed`,
        })
        assert.equal(await strict.get('kept'), 'yes', 'nothing was flushed; the client still works')
      } finally {
        await strict.close()
      }
    }
  })
})

describe('one server down in a pool', () => {
  test('failover: false — only that server’s keys fail, fast; the others keep working', async () => {
    const pool = await startMemcachedCluster(3)
    const strict = createClient({
      servers: pool.map((s) => s.address),
      failover: false,
      failureLimit: 1,
      deadTimeout: 60_000,
    })
    try {
      const keys = Array.from({ length: 60 }, (_, i) => `ff:${i}`)
      await Promise.all(keys.map((k) => strict.set(k, k)))
      const victim = pool[1]!
      await victim.kill()
      await strict.get(keys.find((k) => strict.serverFor(k) === victim.address)!).catch(() => {})
      for (const key of keys) {
        if (strict.serverFor(key) === victim.address) {
          await assert.rejects(strict.get(key), { code: 'ERR_MEMKIT_SERVER_DOWN' })
        } else {
          assert.equal(await strict.get(key), key)
        }
      }
    } finally {
      await strict.close()
    }
  })

  test('failover: true — that server’s keys move to the others; the rest stay where they were', async () => {
    const pool = await startMemcachedCluster(3)
    const lenient = createClient({
      servers: pool.map((s) => s.address),
      failover: true,
      failureLimit: 1,
      deadTimeout: 60_000,
    })
    try {
      const keys = Array.from({ length: 300 }, (_, i) => `fo:${i}`)
      const before = new Map(keys.map((k) => [k, lenient.serverFor(k)]))
      const victim = pool[0]!
      await victim.kill()
      await lenient.get(keys.find((k) => before.get(k) === victim.address)!).catch(() => {})
      for (const key of keys) {
        const now = lenient.serverFor(key)
        assert.notEqual(now, victim.address)
        if (before.get(key) !== victim.address) assert.equal(now, before.get(key), `${key} stayed`)
        assert.equal(await lenient.set(key, key), true)
        assert.equal(await lenient.get(key), key)
      }
    } finally {
      await lenient.close()
    }
  })
})
