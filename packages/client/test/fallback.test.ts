// Migrating to a new pool without a cold cache: two real pools, old and new.
import assert from 'node:assert/strict'
import { after, beforeEach, describe, test } from 'node:test'
import { type MemcachedServer, startMemcachedCluster, stopAll } from '@memkit/testing'
import { createClient, createFallbackClient, type MemcachedClient, type MemkitClient } from '../src/index.js'

after(stopAll)

let oldPool: MemcachedServer[]
let newPool: MemcachedServer[]
let oldClient: MemcachedClient
let newClient: MemcachedClient
beforeEach(async () => {
  oldPool = await startMemcachedCluster(2)
  newPool = await startMemcachedCluster(2)
  oldClient = createClient({ servers: oldPool.map((s) => s.address), failureLimit: 1, deadTimeout: 60_000 })
  newClient = createClient({ servers: newPool.map((s) => s.address) })
})

describe('createFallbackClient([new, old])', () => {
  test('reads try the new pool, then the old one; writes go to the new pool only', async () => {
    const client = createFallbackClient([newClient, oldClient])
    await oldClient.set('only-old', 'from old')
    await oldClient.set('both', 'old value')
    await newClient.set('both', 'new value')
    assert.equal(await client.get('only-old'), 'from old')
    assert.equal(await client.get('both'), 'new value')
    assert.deepEqual(
      await client.getMany(['only-old', 'both', 'nowhere']),
      new Map([
        ['both', 'new value'],
        ['only-old', 'from old'],
      ]),
    )
    await client.set('written', 1)
    assert.equal(await newClient.get('written'), 1)
    assert.equal(await oldClient.get('written'), undefined, 'the old pool is never written')
    await client.close()
  })

  test('a delete reaches the old pool too, so the value cannot come back from it', async () => {
    const client = createFallbackClient([newClient, oldClient])
    await oldClient.set('gone', 'stale')
    await newClient.set('gone', 'fresh')
    assert.equal(await client.delete('gone'), true)
    assert.equal(await client.get('gone'), undefined)
    assert.equal(await oldClient.get('gone'), undefined)
    await client.close()
  })

  test('remember copies what it finds in the old pool into the new one', async () => {
    const client = createFallbackClient([newClient, oldClient])
    await oldClient.set('report', { rows: 3 })
    let loads = 0
    const value = await client.remember('report', 60, () => {
      loads++
      return { rows: 0 }
    })
    assert.deepEqual(value, { rows: 3 })
    assert.equal(loads, 0)
    assert.deepEqual(await newClient.get('report'), { rows: 3 }, 'warmed into the new pool')
    await client.close()
  })

  test('with ignoreErrors (default) the old pool can be switched off: reads just miss', async () => {
    const client: MemkitClient = createFallbackClient([newClient, oldClient])
    const errors: Error[] = []
    client.on('error', (e) => errors.push(e))
    await newClient.set('kept', 'ok')
    for (const server of oldPool) await server.kill()
    assert.equal(await client.get('kept'), 'ok')
    assert.equal(await client.get('missing'), undefined)
    assert.equal((await client.getMany(['kept', 'missing'])).size, 1)
    assert.equal(await client.delete('kept'), true)
    assert.ok(errors.length > 0, 'old pool failures are reported as events')
    await client.close()
  })

  test('with ignoreErrors: false an old pool failure is the caller’s error', async () => {
    const client = createFallbackClient([newClient, oldClient], { ignoreErrors: false })
    for (const server of oldPool) await server.kill()
    await assert.rejects(client.get('missing'), { code: /^ERR_MEMKIT_(CONNECTION|SERVER_DOWN)$/ })
    await client.close()
  })

  test('CAS, counters and locks work on the new pool', async () => {
    const client = createFallbackClient([newClient, oldClient])
    await oldClient.set('n', 41)
    // gets does not fall back: a token from the old pool could never be used with the new one
    assert.equal(await client.gets('n'), undefined)
    assert.equal(await client.update<number>('n', (v) => (v ?? 0) + 1), 1)
    assert.equal(await client.incr('c', 1, { initial: 5 }), 5)
    const lock = await client.lock('l')
    assert.equal(await lock.release(), true)
    assert.equal((await client.stats()).length, 4)
    await client.close()
  })

  test('needs at least two clients', () => {
    assert.throws(() => createFallbackClient([newClient]), { code: 'ERR_MEMKIT_INVALID_OPTION' })
  })
})
