// remember({ lease: true }) across processes, and update() under contention: 4 real processes
// against one real memcached, each with many concurrent callers on one key.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { rawCommand, useMemcached } from '@memkit/testing'
import { createClient, NotSupportedError } from '../src/index.js'
import { type ContenderResult, runContenders } from './contenders.js'

const { server, client } = await useMemcached({ createClient })

const sum = (results: ContenderResult[], pick: (r: ContenderResult) => number) =>
  results.reduce((total, r) => total + pick(r), 0)

describe('remember with lease: one load per key across processes', () => {
  test('cold key, 4 processes × 50 callers: 1 load, every caller gets its value', async (t) => {
    await client.set('db:cold', 'from-db')
    const run = await runContenders(4, {
      server: server.address,
      scenario: 'lease',
      key: 'lease:cold',
      dbKey: 'db:cold',
      loadMs: 300,
      callers: 50,
    })
    const results = await run.done
    const loads = sum(results, (r) => r.loads)
    const values = results.flatMap((r) => r.results)
    assert.deepEqual(
      results.flatMap((r) => r.errors),
      [],
    )
    assert.equal(values.length, 200)
    assert.ok(
      values.every((v) => v === 'from-db'),
      'every caller got the loaded value',
    )
    assert.equal(loads, 1, 'one load across all processes')
    assert.equal(await client.get('lease:cold'), 'from-db')
    t.diagnostic(`cold key: ${loads} load for ${values.length} callers in 4 processes`)
  })

  test('without lease, the same 4 processes load once each (what the lease saves)', async (t) => {
    await client.set('db:nolease', 'v')
    const run = await runContenders(4, {
      server: server.address,
      scenario: 'lease',
      lease: false,
      key: 'nolease:cold',
      dbKey: 'db:nolease',
      loadMs: 300,
      callers: 50,
    })
    const results = await run.done
    const loads = sum(results, (r) => r.loads)
    assert.equal(loads, 4, 'one load per process: the in-process single flight only')
    t.diagnostic(`cold key without lease: ${loads} loads for 200 callers in 4 processes`)
  })

  test('expiring hot key, 4 processes × 50 callers: 1 load, everyone served the current value meanwhile', async (t) => {
    await client.set('lease:hot', 'old', { ttl: 5 })
    await client.set('db:hot', 'new')
    const run = await runContenders(4, {
      server: server.address,
      scenario: 'lease',
      key: 'lease:hot',
      dbKey: 'db:hot',
      loadMs: 300,
      callers: 50,
      ttl: 60,
      // 5 s left < 10 s: the first reader anywhere reloads it in the background
      refreshAhead: 10,
      awaitCached: 'new',
    })
    const results = await run.done
    const loads = sum(results, (r) => r.loads)
    const values = results.flatMap((r) => r.results)
    assert.deepEqual(
      results.flatMap((r) => r.errors),
      [],
    )
    assert.equal(loads, 1, 'one reload across all processes')
    assert.equal(values.length, 200)
    assert.ok(
      values.every((v) => v === 'old'),
      'nobody waited for the reload: all were served the current value',
    )
    assert.equal(await client.get('lease:hot'), 'new', 'the reload replaced it')
    assert.match(await rawCommand(server.address, 'mg lease:hot t\r\n'), /^HD t(5\d|60)\r\n$/)
    t.diagnostic(`expiring key: ${loads} load; ${values.length} callers served the current value at once`)
  })

  test('invalidated key: served stale to all but one, who reloads', async () => {
    await client.set('lease:inv', 'v1', { ttl: 60 })
    await client.set('db:inv', 'v2')
    assert.equal(await client.invalidate('lease:inv'), true)
    const run = await runContenders(4, {
      server: server.address,
      scenario: 'lease',
      key: 'lease:inv',
      dbKey: 'db:inv',
      loadMs: 200,
      callers: 50,
      awaitCached: 'v2',
    })
    const results = await run.done
    assert.equal(
      sum(results, (r) => r.loads),
      1,
    )
    assert.ok(results.flatMap((r) => r.results).every((v) => v === 'v1'))
    assert.equal(await client.get('lease:inv'), 'v2')
  })

  test('an invalidation racing a slow loader: its stale result is not written back', async (t) => {
    await client.set('db:race', 'old')
    const run = await runContenders(4, {
      server: server.address,
      scenario: 'lease',
      key: 'lease:race',
      dbKey: 'db:race',
      loadMs: 1500,
      callers: 50,
    })
    // The winner has read 'old' from the "database" and is still loading: the data changes
    // and the application invalidates the key, as it would after a write.
    await run.loading
    await client.set('db:race', 'new')
    assert.equal(await client.invalidate('lease:race'), true)
    const results = await run.done
    const values = results.flatMap((r) => r.results)
    const loads = sum(results, (r) => r.loads)
    assert.deepEqual(
      results.flatMap((r) => r.errors),
      [],
    )
    // The invalidation handed the lease to a waiter, who loaded 'new' and stored it; the slow
    // loader's write of 'old' came later and was refused (its CAS had changed).
    assert.equal(loads, 2, 'the slow load, and one reload after the invalidation')
    assert.equal(await client.get('lease:race'), 'new', 'the stale value was not written back')
    // The slow loader's own process shares its load: its 50 callers get what it read.
    const old = values.filter((v) => v === 'old').length
    assert.equal(old, 50, 'the slow loader’s process got its result')
    assert.equal(values.filter((v) => v === 'new').length, 150, 'the others got the reloaded value')
    t.diagnostic(
      `invalidation race: ${loads} loads; ${old} callers got the slow loader's result, ${200 - old} the reloaded value; cache holds 'new'`,
    )
  })

  test('a set() while a lease is held wins over the lease holder’s write', async () => {
    const local = createClient({ servers: server.address })
    try {
      let release!: () => void
      const gate = new Promise<void>((resolve) => {
        release = resolve
      })
      const pending = local.remember(
        'lease:set-race',
        60,
        async () => {
          await gate
          return 'loaded'
        },
        { lease: true },
      )
      // wait until the placeholder exists (the lease is held)
      while (!(await rawCommand(server.address, 'mg lease:set-race v\r\n')).startsWith('VA 0')) {}
      await client.set('lease:set-race', 'written meanwhile')
      release()
      assert.equal(await pending, 'loaded')
      assert.equal(await client.get('lease:set-race'), 'written meanwhile')
    } finally {
      await local.close()
    }
  })

  test('a failing loader frees the lease at once, so the next caller loads', async () => {
    await assert.rejects(
      client.remember(
        'lease:fail',
        60,
        () => {
          throw new Error('db down')
        },
        { lease: true },
      ),
      /db down/,
    )
    assert.equal(await client.remember('lease:fail', 60, () => 'second', { lease: true }), 'second')
  })

  test('refused on the classic transport (no leases there)', async () => {
    const classic = createClient({ servers: server.address, protocol: 'classic' })
    try {
      await assert.rejects(
        classic.remember('k', 60, () => 1, { lease: true }),
        (error: unknown) =>
          error instanceof NotSupportedError && /meta protocol/.test((error as Error).message),
      )
    } finally {
      await classic.close()
    }
  })
})

describe('update() under contention', () => {
  test('40 concurrent updaters of one key (4 processes × 10) all succeed with the default retries', async (t) => {
    await client.delete('counter:contended')
    const run = await runContenders(4, {
      server: server.address,
      scenario: 'update',
      key: 'counter:contended',
      callers: 10,
    })
    const results = await run.done
    assert.deepEqual(
      results.flatMap((r) => r.errors),
      [],
    )
    const stored = results.flatMap((r) => r.results) as number[]
    assert.equal(await client.get('counter:contended'), 40, 'no update was lost')
    assert.deepEqual(
      [...stored].sort((a, b) => a - b),
      Array.from({ length: 40 }, (_, i) => i + 1),
      'each updater stored a distinct step',
    )
    t.diagnostic(`update: 40/40 updaters succeeded, final value ${await client.get('counter:contended')}`)
  })
})
