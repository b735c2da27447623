// The embedded backend (servers: 'memory://') must behave like memcached: the same
// conformance suite runs against it as against real servers, plus its own limits.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { createClient } from '../src/index.js'
import { describeConformance } from './conformance.js'

describeConformance("embedded backend (servers: 'memory://')", {
  client: (options) => createClient({ servers: 'memory://conformance', ...options }),
})

describe('memory:// specifics', () => {
  test('clients naming the same store share it; other names are separate', async () => {
    const a = createClient({ servers: 'memory://shared' })
    const b = createClient({ servers: 'memory://shared' })
    const c = createClient({ servers: 'memory://other' })
    await a.set('k', 'v')
    assert.equal(await b.get('k'), 'v')
    assert.equal(await c.get('k'), undefined)
  })

  test('LRU eviction under the memory limit: recently read items survive, evictions are counted', async () => {
    const client = createClient({ servers: 'memory://lru?mb=1' })
    const value = Buffer.alloc(10_000, 1)
    await client.set('keep', value)
    for (let i = 0; i < 200; i++) {
      await client.set(`filler:${i}`, value)
      await client.get('keep') // keeps it most recently used
    }
    assert.deepEqual(await client.get('keep'), value)
    assert.equal(await client.get('filler:0'), undefined, 'the oldest was evicted')
    const [stats] = await client.stats()
    assert.ok(stats!.evictions! > 90, `evictions ${stats!.evictions}`)
    assert.ok(stats!.bytes! <= 1024 * 1024)
    assert.equal(stats!.limitMaxbytes, 1024 * 1024)
    assert.equal(stats!.server, 'memory://lru')
  })

  test('counters wrap at 2^64 like memcached', async () => {
    const client = createClient({ servers: 'memory://wrap' })
    assert.equal(await client.incrBig('w', 0n, { initial: 2n ** 64n - 1n }), 2n ** 64n - 1n)
    assert.equal(await client.incrBig('w', 2n), 1n)
  })

  test('a returned Buffer is a copy: mutating it does not change the stored item', async () => {
    const client = createClient({ servers: 'memory://copy' })
    await client.set('b', Buffer.from('abc'))
    const first = (await client.get<Buffer>('b'))!
    first[0] = 0x7a
    assert.equal((await client.get<Buffer>('b'))!.toString(), 'abc')
  })

  test('memory:// cannot be mixed with network servers', () => {
    assert.throws(() => createClient({ servers: ['memory://', '127.0.0.1:11211'] }), {
      code: 'ERR_MEMKIT_INVALID_OPTION',
    })
    assert.throws(() => createClient({ servers: 'memory://bad name' }), { code: 'ERR_MEMKIT_INVALID_OPTION' })
  })
})
