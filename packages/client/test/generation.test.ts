// Replicated generations: the state other keys depend on (a session namespace, a cache tag)
// survives any one server's loss or eviction and never moves backwards. Three real servers.
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { type MemcachedServer, rawCommand, useMemcached } from '@memkit/testing'
import { createClient, type MemcachedClient, ServerFailureError } from '../src/index.js'

const { servers, client } = await useMemcached({
  count: 3,
  createClient,
  client: { timeout: 300, failureLimit: 1 },
})

/** The server a copy key lives on (no failover: always its home). */
function serverOf(key: string): MemcachedServer {
  return servers.find((s) => s.address === client.serverFor(key))!
}

async function copyValue(key: string): Promise<string | undefined> {
  const reply = await rawCommand(serverOf(key).address, `mg ${key} v\r\n`)
  return reply.startsWith('VA ') ? reply.split('\r\n')[1]!.trim() : undefined
}

describe('a generation kept on three servers', () => {
  test('its copies live on three different servers; the first copy is the key itself', () => {
    const generation = client.generation('ns:a')
    assert.equal(generation.copyKeys[0], 'ns:a')
    assert.equal(generation.copyKeys.length, 3)
    assert.equal(new Set(generation.copyKeys.map((k) => client.serverFor(k))).size, 3)
    assert.equal(client.generation('ns:a'), generation, 'one object per key')
  })

  test('a fresh generation starts at the current time in microseconds, the same on every copy', async () => {
    const before = Date.now() * 1000
    const value = await client.generation('ns:fresh').read()
    assert.ok(value >= before && value <= Date.now() * 1000, `${value}`)
    // Created with one value, not raised to it afterwards: a reader of any single copy (another
    // client, a tool reading the first copy) sees the highest value as soon as read() resolves.
    for (const key of client.generation('ns:fresh').copyKeys) {
      assert.equal(await copyValue(key), String(value), key)
    }
  })

  test('bump moves forward on every copy; another client reads the new value', async () => {
    const generation = client.generation('ns:bump')
    const first = await generation.read()
    const second = await generation.bump()
    assert.ok(second > first)
    for (const key of generation.copyKeys) assert.equal(await copyValue(key), String(second))
    const other = createClient({ servers: servers.map((s) => s.address) })
    try {
      assert.equal(await other.generation('ns:bump').read(), second)
    } finally {
      await other.close()
    }
  })

  test('a lost or evicted copy loses nothing: the others answer, and the copy is put back', async () => {
    const generation = client.generation('ns:evicted')
    const value = await generation.bump()
    const [first, second] = generation.copyKeys
    await rawCommand(serverOf(first!).address, `md ${first}\r\n`)
    await rawCommand(serverOf(second!).address, `md ${second}\r\n`)
    const other = createClient({ servers: servers.map((s) => s.address) })
    try {
      assert.equal(await other.generation('ns:evicted').read(), value)
      await waitFor(async () => (await copyValue(first!)) === String(value))
      await waitFor(async () => (await copyValue(second!)) === String(value))
    } finally {
      await other.close()
    }
  })

  test('an older copy (a server that missed a bump) never wins, and is raised', async () => {
    const generation = client.generation('ns:older')
    const value = await generation.bump()
    const [, , third] = generation.copyKeys
    // What a server that was away during the bump would hold.
    await rawCommand(serverOf(third!).address, `ms ${third} 3 T0\r\n123\r\n`)
    const other = createClient({ servers: servers.map((s) => s.address) })
    try {
      assert.equal(await other.generation('ns:older').read(), value)
      await waitFor(async () => (await copyValue(third!)) === String(value))
    } finally {
      await other.close()
    }
  })

  test('a copy that holds something else is replaced; the value stands', async () => {
    const generation = client.generation('ns:junk')
    const value = await generation.bump()
    const [first] = generation.copyKeys
    await rawCommand(serverOf(first!).address, `ms ${first} 5 T0\r\nhello\r\n`)
    const other = createClient({ servers: servers.map((s) => s.address) })
    try {
      assert.equal(await other.generation('ns:junk').read(), value)
      await waitFor(async () => (await copyValue(first!)) === String(value))
    } finally {
      await other.close()
    }
  })

  test('every copy gone: it restarts above the old value (what it guarded stays ended)', async () => {
    const generation = client.generation('ns:gone')
    const value = await generation.bump()
    for (const key of generation.copyKeys) await rawCommand(serverOf(key).address, `md ${key}\r\n`)
    const other = createClient({ servers: servers.map((s) => s.address) })
    try {
      assert.ok((await other.generation('ns:gone').read()) > value)
    } finally {
      await other.close()
    }
  })

  test('observe folds copies read in a batch: the highest wins, missing copies are repaired', async () => {
    const generation = client.generation('ns:observe')
    const value = await generation.bump()
    const other = createClient({ servers: servers.map((s) => s.address) })
    try {
      const mirror = other.generation('ns:observe')
      const [first, second, third] = mirror.copyKeys
      await rawCommand(serverOf(third!).address, `md ${third}\r\n`)
      const found = new Map<string, unknown>([
        [first!, Buffer.from(String(value))],
        [second!, Buffer.from('17')],
      ])
      assert.equal(mirror.observe(found), value)
      await waitFor(async () => (await copyValue(third!)) === String(value))
      await waitFor(async () => (await copyValue(second!)) === String(value))
      assert.equal(other.generation('ns:unknown').observe(new Map()), undefined)
    } finally {
      await other.close()
    }
  })

  test('one server down: reads and bumps go on with the other two copies', async () => {
    const generation = client.generation('ns:down')
    const before = await generation.bump()
    const victim = serverOf(generation.copyKeys[1]!)
    await victim.kill()
    try {
      const other = createClient({ servers: servers.map((s) => s.address), timeout: 300 })
      try {
        assert.equal(await other.generation('ns:down').read(), before)
        const after = await other.generation('ns:down').bump()
        assert.ok(after > before)
        assert.equal(await createReader().generation('ns:down').read(), after)
      } finally {
        await other.close()
      }
    } finally {
      await victim.restart()
    }
  })

  test('every copy unreachable: the value this process knows, else the server error', async () => {
    const lone = createClient({ servers: [servers[0]!.address], timeout: 300, failureLimit: 1 })
    try {
      const generation = lone.generation('ns:lonely')
      assert.equal(generation.copyKeys.length, 1, 'one server, one copy')
      const value = await generation.read()
      await servers[0]!.freeze()
      try {
        assert.equal(await generation.read(), value)
        await assert.rejects(lone.generation('ns:never-read').read(), ServerFailureError)
      } finally {
        servers[0]!.resume()
      }
    } finally {
      await lone.close()
    }
  })

  test('replicas is validated', () => {
    assert.throws(() => client.generation('ns:bad', { replicas: 0 }), { code: 'ERR_MEMKIT_INVALID_ARGUMENT' })
  })
})

const readers: MemcachedClient[] = []
after(async () => {
  for (const reader of readers) await reader.close()
})
function createReader(): MemcachedClient {
  const reader = createClient({ servers: servers.map((s) => s.address), timeout: 300 })
  readers.push(reader)
  return reader
}

async function waitFor(condition: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await condition()) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  assert.fail('condition not reached')
}
