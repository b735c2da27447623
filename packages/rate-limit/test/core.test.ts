import assert from 'node:assert/strict'
import { after, afterEach, before, describe, mock, test } from 'node:test'
import { createClient, type MemcachedClient } from '@memkit/client'
import { dumpKeys, rawCommand, useMemcached } from '@memkit/testing'
import { ipKeyGenerator } from 'express-rate-limit'
import { parseDuration } from '../src/duration.js'
import { IpKeys, ipKey } from '../src/ip.js'
import { hashKey, KeyHasher } from '../src/key.js'
import { RateLimiter } from '../src/limiter.js'
import { ExpressRateLimitStore } from '../src/peer-stores.js'
import { clientFor, countCommands, startRelay, ttlOf as storedTtl, uniquePrefix } from './helpers.js'

const { server: mc, client } = await useMemcached({ createClient })
afterEach(() => mock.timers.reset())

function limiter(options: ConstructorParameters<typeof RateLimiter>[0] = {}): RateLimiter {
  return new RateLimiter({ client, prefix: uniquePrefix('core'), windowMs: '1 hour', ...options })
}

function catchError(work: () => unknown): unknown {
  try {
    work()
  } catch (error) {
    return error
  }
  assert.fail('expected an error')
}

async function ttlOf(key: string): Promise<number> {
  const ttl = await storedTtl(mc.address, key)
  assert.ok(ttl !== undefined, `no item under ${key}`)
  return ttl
}

/** Pins Date.now() to `offset` ms into the window of `key` that contains the real now. */
function pinClock(
  l: RateLimiter,
  key: string,
  offset: number,
): { start: number; end: number; set(ms: number): void } {
  mock.timers.reset() // a test may pin several keys, one after the other
  const window = l.windowFor(key)
  mock.timers.enable({ apis: ['Date'], now: window.start + offset })
  return {
    start: window.start,
    end: window.end,
    set: (ms: number) => mock.timers.setTime(window.start + ms),
  }
}

describe('counting', () => {
  test('one memcached command per request, the first of a window included, and no second key', async () => {
    const l = limiter({ limit: 3, preBlock: false })
    const commands = countCommands()
    const results = []
    for (let i = 0; i < 5; i++) results.push(await l.consume('client-a'))
    commands.stop()
    assert.equal(commands.count(), 5)
    assert.deepEqual(
      commands.events.map((e) => e.command),
      ['incr', 'incr', 'incr', 'incr', 'incr'],
    )
    assert.deepEqual(
      results.map((r) => [r.allowed, r.used, r.remaining]),
      [
        [true, 1, 2],
        [true, 2, 1],
        [true, 3, 0],
        [false, 4, 0],
        [false, 5, 0],
      ],
    )
    // Exactly one item for this key: the counter itself, no separate expiry key.
    const keys = (await dumpKeys(mc.address)).filter((k) => k.startsWith(l.config.prefix))
    assert.deepEqual(keys, [l.storageKey('client-a')])
  })

  test('the sliding window sends its two commands in one write: one round trip', async () => {
    // A TCP relay in front of the real memcached shows how the client writes.
    const relay = await startRelay(mc)
    const relayed = clientFor(relay.address)
    try {
      const l = new RateLimiter({
        client: relayed,
        prefix: uniquePrefix('slide'),
        windowMs: '1 hour',
        algorithm: 'sliding',
      })
      await l.consume('warm-up') // the connection is opened on first use
      relay.clear()
      const commands = countCommands()
      for (let i = 0; i < 4; i++) await l.consume('client-b')
      commands.stop()
      assert.equal(relay.writes.length, 4, 'one write per request')
      assert.equal(relay.trips(), 4, 'one round trip per request')
      for (const chunk of relay.writes) assert.equal(chunk.match(/^ma /gm)?.length, 2, chunk)
      assert.equal(commands.count(), 8)
    } finally {
      await relayed.close()
      await relay.close()
    }
  })

  test('the reset time sits on the key’s window grid and stays right after the counter is evicted', async () => {
    const l = limiter({ limit: 5, windowMs: '1 minute' })
    const first = await l.consume('evicted')
    assert.equal(first.resetTime, l.windowFor('evicted').end)
    await l.consume('evicted')
    await client.delete(l.storageKey('evicted'))
    const after = await l.consume('evicted')
    // A lost counter starts over at 1 with the same reset: no double count, no stale expiry.
    assert.equal(after.used, 1)
    assert.equal(after.resetTime, first.resetTime)
    assert.ok(after.retryAfter >= 1 && after.retryAfter <= 60)
  })

  test('different keys get different window phases, so resets are spread out', async () => {
    const l = limiter({ windowMs: '1 hour' })
    const resets = new Set<number>()
    for (let i = 0; i < 20; i++) resets.add((await l.consume(`spread-${i}`)).resetTime)
    assert.ok(resets.size >= 18, `only ${resets.size} distinct reset times`)
  })

  test('cost per request, and cost 0 counts nothing', async () => {
    const l = limiter({ limit: 10 })
    const used = []
    for (let i = 0; i < 4; i++) used.push(await l.consume('costly', { cost: 3 }))
    assert.deepEqual(
      used.map((r) => [r.used, r.allowed]),
      [
        [3, true],
        [6, true],
        [9, true],
        [12, false],
      ],
    )
    const free = await l.consume('free', { cost: 0 })
    assert.deepEqual([free.used, free.allowed, free.remaining], [0, true, 10])
    await assert.rejects(l.consume('x', { cost: 1.5 }), { code: 'ERR_MEMKIT_INVALID_ARGUMENT' })
    await assert.rejects(l.consume('x', { limit: -1 }), { code: 'ERR_MEMKIT_INVALID_ARGUMENT' })
  })

  test('limit 0 refuses everything', async () => {
    const l = limiter({ limit: 0 })
    const result = await l.consume('nobody')
    assert.equal(result.allowed, false)
    assert.equal(result.remaining, 0)
  })

  test('limitReached is set on the one request that takes a key over its limit', async () => {
    const l = limiter({ limit: 2 })
    const flags = []
    for (let i = 0; i < 5; i++) flags.push((await l.consume('reach')).limitReached)
    assert.deepEqual(flags, [false, false, true, false, false])
  })

  test('limitReached is once per key and window across every instance that shares memcached', async () => {
    // A second process (here: a second limiter on the same prefix) sees a count already over the
    // limit: its refusals did not take the key over, so they are not "reached" again.
    for (const algorithm of ['fixed', 'sliding'] as const) {
      const prefix = uniquePrefix(`reach-${algorithm}`)
      const options = { client, prefix, limit: 2, windowMs: '1 hour', algorithm, preBlock: false } as const
      const a = new RateLimiter(options)
      const b = new RateLimiter(options)
      const flags = []
      for (let i = 0; i < 3; i++) flags.push((await a.consume('shared')).limitReached)
      for (let i = 0; i < 2; i++) flags.push((await b.consume('shared')).limitReached)
      assert.deepEqual(flags, [false, false, true, false, false], algorithm)
      // A costly request that takes the key from under the limit to far over it is the crossing.
      const c = new RateLimiter({ ...options, prefix: uniquePrefix(`reach-cost-${algorithm}`) })
      const d = new RateLimiter({ ...options, prefix: c.config.prefix })
      assert.equal((await c.consume('costly')).limitReached, false)
      assert.equal((await d.consume('costly', { cost: 5 })).limitReached, true, algorithm)
      assert.equal((await c.consume('costly')).limitReached, false, algorithm)
    }
  })

  test('a counter holding something else is started over instead of failing', async () => {
    const l = limiter({ limit: 3 })
    const key = l.storageKey('corrupt')
    await rawCommand(mc.address, `set ${key} 0 60 7\r\ngarbage\r\n`)
    const result = await l.consume('corrupt')
    assert.equal(result.source, 'store')
    assert.equal(result.used, 1)
    assert.equal((await l.consume('corrupt')).used, 2)
  })

  test('keys are hashed: any client-supplied text becomes a short, inert memcached key', async () => {
    const l = limiter({ limit: 3 })
    const nasty = ['has spaces', 'line\r\nflush_all\r\nset x 0 0 1', 'ü€😀', 'x'.repeat(10_000), '']
    for (const key of nasty) {
      assert.equal((await l.consume(key)).used, 1)
      assert.equal((await l.consume(key)).used, 2)
    }
    const keys = (await dumpKeys(mc.address)).filter((k) => k.startsWith(l.config.prefix))
    assert.equal(keys.length, nasty.length)
    for (const key of keys) {
      assert.match(key, new RegExp(`^${l.config.prefix}[A-Za-z0-9_-]{22}:-?\\d+$`))
    }
    assert.ok(!(await dumpKeys(mc.address)).some((k) => k.includes('flush_all')))
  })
})

describe('windows', () => {
  test("window lengths from strings: '1 minute', '1.5 s', '500ms', '2h', '1 day'", () => {
    assert.equal(parseDuration('1 minute', 'w'), 60_000)
    assert.equal(parseDuration('1.5 s', 'w'), 1500)
    assert.equal(parseDuration('1.5seconds', 'w'), 1500)
    assert.equal(parseDuration('500ms', 'w'), 500)
    assert.equal(parseDuration('2h', 'w'), 7_200_000)
    assert.equal(parseDuration('1 day', 'w'), 86_400_000)
    assert.equal(parseDuration('31 days', 'w'), 31 * 86_400_000)
    assert.equal(parseDuration('250', 'w'), 250)
    assert.equal(parseDuration(1500, 'w'), 1500)
    for (const bad of [
      '',
      'soon',
      '1 fortnight',
      '-1s',
      '0',
      0,
      -5,
      Number.NaN,
      '11 years',
      '3650 weeks',
      null,
      {},
    ]) {
      assert.throws(() => parseDuration(bad, 'windowMs'), { code: 'ERR_MEMKIT_INVALID_OPTION' }, String(bad))
    }
  })

  test('a 0.5 s window expires (it is not "never")', async () => {
    const l = limiter({ limit: 1, windowMs: 500 })
    const clock = pinClock(l, 'half', 100)
    assert.equal((await l.consume('half')).allowed, true)
    const second = await l.consume('half')
    assert.equal(second.allowed, false)
    assert.equal(second.resetTime, clock.end)
    assert.equal(second.retryAfter, 1, 'Retry-After is at least one whole second')
    // Memcached counts whole seconds: 0.4 s left + 1 s of rounding is sent as 2 s, not as 0 (never).
    const ttl = await ttlOf(l.storageKey('half'))
    assert.ok(ttl >= 1 && ttl <= 2, `ttl ${ttl}`)
    clock.set(500)
    const later = await l.consume('half')
    assert.deepEqual([later.allowed, later.used], [true, 1])
  })

  test('a 1.5 s window works and its counter gets a whole-second TTL that outlives it', async () => {
    const l = limiter({ limit: 2, windowMs: '1.5s' })
    const clock = pinClock(l, 'one-and-a-half', 0)
    const first = await l.consume('one-and-a-half')
    assert.equal(first.resetTime - Date.now(), 1500)
    // 1.5 s + 1 s of rounding, rounded up to whole seconds.
    const ttl = await ttlOf(l.storageKey('one-and-a-half'))
    assert.ok(ttl >= 2 && ttl <= 3, `ttl ${ttl}`)
    assert.equal((await l.consume('one-and-a-half')).used, 2)
    clock.set(1500)
    assert.equal((await l.consume('one-and-a-half')).used, 1)
  })

  test('a 31-day window is not "already expired": the counter lives and keeps counting', async () => {
    const fixed = limiter({ limit: 5, windowMs: '31 days' })
    await fixed.consume('month')
    const second = await fixed.consume('month')
    assert.equal(second.used, 2)
    assert.ok(second.resetTime > Date.now())
    const ttl = await ttlOf(fixed.storageKey('month'))
    assert.ok(Math.abs(ttl - (second.resetTime - Date.now()) / 1000) <= 3, `ttl ${ttl}`)
    // A sliding counter must outlive the next window too: a TTL over 30 days, which memcached
    // would read as a date in 1970 unless it is sent as an absolute time.
    const sliding = limiter({ limit: 5, windowMs: '31 days', algorithm: 'sliding' })
    await sliding.consume('month')
    assert.equal((await sliding.consume('month')).used, 2)
    const slidingTtl = await ttlOf(sliding.storageKey('month'))
    assert.ok(slidingTtl > 31 * 86_400 && slidingTtl <= 62 * 86_400 + 2, `ttl ${slidingTtl}`)
  })

  test('sliding window: the previous window counts by its remaining overlap', async () => {
    const l = limiter({ limit: 10, windowMs: '10s', algorithm: 'sliding' })
    const clock = pinClock(l, 'slide', 1000)
    for (let i = 0; i < 8; i++) assert.equal((await l.consume('slide')).allowed, true)
    // 25% into the next window the previous 8 weigh 6: four more fit.
    clock.set(10_000 + 2500)
    const results = []
    for (let i = 0; i < 5; i++) results.push(await l.consume('slide'))
    assert.deepEqual(
      results.map((r) => r.allowed),
      [true, true, true, true, false],
    )
    const peeked = await l.peek('slide')
    assert.deepEqual([peeked.used, peeked.remaining], [11, 0], 'peek weighs the previous window too')
    const blocked = results[4]!
    // 5 counted now + 8 × 0.75: one more fits once the weight drops to 0.5, at 50% of the window.
    assert.equal(blocked.resetTime, clock.start + 10_000 + 5000)
    assert.equal(results[3]!.remaining, 0)
    clock.set(10_000 + 5001)
    assert.equal((await l.consume('slide')).allowed, true)
  })

  test('sliding window at the exact limit: floating-point error in the weight never refuses a request that fits', async () => {
    const l = limiter({ limit: 15, windowMs: '10s', algorithm: 'sliding', preBlock: false })
    // 44% into the next window the previous 25 weigh 25 × 0.56 = 14, which floating point
    // computes as 14.000000000000002.
    assert.equal(
      25 * ((10_000 - 4400) / 10_000),
      14.000000000000002,
      'the case really has the rounding error',
    )
    const first = []
    const clocks = []
    for (const key of ['exact-15', 'exact-16']) {
      const clock = pinClock(l, key, 1000)
      for (let i = 0; i < 25; i++) await l.consume(key, { limit: 30 })
      clock.set(10_000 + 4400)
      first.push(await l.consume(key, { limit: key === 'exact-15' ? 15 : 16 }))
      clocks.push(clock)
    }
    // 1 + 14 = 15: the request fits a limit of 15 exactly, and leaves one unit of a limit of 16.
    assert.deepEqual(
      first.map((r) => [r.allowed, r.used, r.remaining, r.limitReached]),
      [
        [true, 15, 0, false],
        [true, 15, 1, false],
      ],
    )
    const clock = clocks[0]!
    clock.set(10_000 + 4400)
    const [second, third] = [await l.consume('exact-15'), await l.consume('exact-15')]
    assert.deepEqual(
      [second.allowed, second.used, second.remaining, second.limitReached],
      [false, 16, 0, true],
    )
    assert.deepEqual([third.allowed, third.used, third.remaining, third.limitReached], [false, 17, 0, false])
    // 2 counted now + 25 × weight: one more fits when the weight is (14 − 2) / 25 = 0.48, 52% into
    // the window; after the third refusal (it counts too) at 0.44.
    assert.deepEqual([second.resetTime - clock.start, second.retryAfter], [10_000 + 5200, 1])
    assert.deepEqual([third.resetTime - clock.start, third.retryAfter], [10_000 + 5600, 2])
  })

  test('sliding window: a refused request learns exactly when the same request fits again', async () => {
    // Each case twice, on two keys with the same history: one retries at the reset time its
    // refusal gave, the other a millisecond before. Refused requests count, as in every window.
    const l = limiter({ limit: 10, windowMs: '10s', algorithm: 'sliding', preBlock: false })
    const cases = [
      // The previous window's 20 weigh 10 at 50%: the first request is refused; with it, 2 + 20 × w
      // fits once w = 0.4, 60% into the window.
      { key: 'overlap', previous: 20, at: 5000, requests: 1, retryAt: 6000 },
      // An empty previous window, 12 counted late in this one: the retry waits until enough of
      // them have slid out, 25% into the next window (1 + 12 × 0.75 = 10).
      { key: 'next', previous: 0, at: 9000, requests: 12, retryAt: 10_000 + 2500 },
      // The previous 20 weigh 1 at 95%, and the 12 counted now keep the retry out of this window
      // (it would need w < 0): the same 25% into the next one.
      { key: 'both', previous: 20, at: 9500, requests: 12, retryAt: 10_000 + 2500 },
    ]
    for (const { key, previous, at, requests, retryAt } of cases) {
      for (const early of [false, true]) {
        const name = `${key}-${early ? 'early' : 'on-time'}`
        const clock = pinClock(l, name, 0)
        if (previous > 0) {
          clock.set(-5000)
          await l.consume(name, { cost: previous })
        }
        clock.set(at)
        let refused: Awaited<ReturnType<RateLimiter['consume']>> | undefined
        for (let i = 0; i < requests; i++) refused = await l.consume(name)
        assert.equal(refused!.allowed, false, `${name}: the last request is refused`)
        assert.equal(refused!.resetTime - clock.start, retryAt, `${name}: reset time`)
        assert.equal(refused!.retryAfter, Math.ceil((retryAt - at) / 1000), `${name}: Retry-After`)
        clock.set(retryAt - (early ? 1 : 0))
        assert.equal((await l.consume(name)).allowed, !early, `${name}: retried`)
      }
    }
  })

  test('a request costing more than the limit is refused until its window (sliding: the next one too) has passed', async () => {
    for (const algorithm of ['fixed', 'sliding'] as const) {
      const l = limiter({ limit: 3, windowMs: '10s', algorithm, preBlock: false })
      const clock = pinClock(l, algorithm, 1000)
      const result = await l.consume(algorithm, { cost: 5 })
      assert.equal(result.allowed, false)
      assert.equal(result.limitReached, true)
      const wait = algorithm === 'sliding' ? 2 * 10_000 : 10_000
      assert.equal(result.resetTime, clock.start + wait, algorithm)
      assert.equal(result.retryAfter, (wait - 1000) / 1000, algorithm)
    }
  })

  test('undo takes a request back from its own window only, and never below zero', async () => {
    const l = limiter({ limit: 5, windowMs: '10s' })
    const clock = pinClock(l, 'undo', 1000)
    const a = await l.consume('undo')
    const b = await l.consume('undo')
    await l.undo(b)
    await l.undo(b) // a second undo of the same request does nothing
    assert.equal((await l.peek('undo')).used, 1)
    // The next window: a late undo of `a` must not touch it.
    clock.set(10_000 + 1000)
    await l.consume('undo')
    await l.undo(a)
    assert.equal((await l.peek('undo')).used, 1)
    // And memcached's decrement stops at zero.
    clock.set(1000)
    assert.equal((await l.peek('undo')).used, 0)
    await client.decr(l.storageKey('undo'), 5)
    assert.equal((await l.peek('undo')).used, 0)
  })

  test('undoable: false: undo() of that result takes nothing back; other results still can be', async () => {
    const l = limiter({ limit: 5 })
    const kept = await l.consume('not-undoable', { undoable: false })
    const undoable = await l.consume('not-undoable')
    assert.equal(kept.allowed, true)
    await l.undo(kept)
    assert.equal((await l.peek('not-undoable')).used, 2, 'nothing taken back')
    await l.undo(undoable)
    assert.equal((await l.peek('not-undoable')).used, 1)
    await assert.rejects(l.consume('not-undoable', { undoable: 'no' as unknown as boolean }), {
      code: 'ERR_MEMKIT_INVALID_ARGUMENT',
      message: /undoable must be true or false/,
    })
  })

  test('reset forgets a key', async () => {
    const l = limiter({ limit: 1 })
    await l.consume('forget')
    assert.equal((await l.consume('forget')).allowed, false)
    await l.reset('forget')
    assert.equal((await l.consume('forget')).allowed, true)
  })
})

describe('floods: pre-block, resets seen everywhere, overload', () => {
  test('by default a key over its limit costs no memcached command until its window resets', async () => {
    const l = limiter({ limit: 2 })
    const clock = pinClock(l, 'flood', 1000)
    for (let i = 0; i < 3; i++) await l.consume('flood') // the third is refused by memcached
    const commands = countCommands()
    const refused = []
    for (let i = 0; i < 1000; i++) refused.push(await l.consume('flood'))
    const other = await l.consume('quiet')
    commands.stop()
    assert.equal(commands.count(), 1, 'only the other key reached memcached')
    assert.equal(other.source, 'store')
    assert.ok(refused.every((r) => !r.allowed && r.source === 'pre-block' && r.remaining === 0))
    // The same reset and Retry-After as memcached's own answer.
    assert.equal(refused[0]!.resetTime, clock.end)
    assert.equal(refused[0]!.retryAfter, Math.ceil((clock.end - Date.now()) / 1000))
    // A larger limit for the same key is not pre-blocked by a smaller one.
    assert.equal((await l.consume('flood', { limit: 100 })).source, 'store')
    assert.equal(l.metrics().totals.preBlocked, 1000)
    // The block ends with the window.
    clock.set(clock.end - clock.start)
    const next = await l.consume('flood')
    assert.deepEqual([next.allowed, next.source, next.used], [true, 'store', 1])
  })

  test('a blocked key asks memcached again once per preBlockRecheckMs while it keeps sending', async () => {
    const l = limiter({ limit: 1, preBlockRecheckMs: 1000 })
    const clock = pinClock(l, 'recheck', 1000)
    await l.consume('recheck')
    await l.consume('recheck') // refused by memcached: blocked in memory from here
    const sources: string[] = []
    for (const at of [1000, 1999, 2000, 2000, 2999, 3000]) {
      clock.set(at)
      sources.push((await l.consume('recheck')).source)
    }
    assert.deepEqual(sources, ['pre-block', 'pre-block', 'store', 'pre-block', 'pre-block', 'store'])
  })

  test('a reset made by another instance reaches this one within preBlockRecheckMs', async () => {
    const prefix = uniquePrefix('reset')
    const otherClient = clientFor(mc.address)
    try {
      const here = new RateLimiter({ client, prefix, name: 'login', limit: 1, windowMs: '1 hour' })
      const elsewhere = new RateLimiter({
        client: otherClient,
        prefix,
        name: 'login',
        limit: 1,
        windowMs: '1 hour',
      })
      const clock = pinClock(here, 'user-7', 1000)
      await here.consume('user-7')
      assert.equal((await here.consume('user-7')).allowed, false)
      clock.set(1300)
      await elsewhere.reset('user-7') // e.g. an admin unblocks, or a captcha was solved
      clock.set(1999)
      assert.equal(
        (await here.consume('user-7')).source,
        'pre-block',
        'not yet: the block was checked at 1000',
      )
      clock.set(2000)
      const after = await here.consume('user-7')
      assert.deepEqual([after.allowed, after.source, after.used], [true, 'store', 1])
      assert.equal((await here.consume('user-7')).source, 'store', 'the block is gone, not renewed')
    } finally {
      await otherClient.close()
    }
  })

  test('the block list holds at most maxLocalKeys keys (the oldest make room)', async () => {
    const l = limiter({ limit: 1, maxLocalKeys: 3 })
    pinClock(l, 'k0', 1000)
    const keys = ['k0', 'k1', 'k2', 'k3', 'k4']
    for (const key of keys) {
      await l.consume(key)
      await l.consume(key) // blocked
    }
    // Newest first, so that asking memcached again (which renews a block) happens last.
    const reached: string[] = []
    for (const key of [...keys].reverse()) {
      const commands = countCommands()
      await l.consume(key)
      commands.stop()
      reached.push(`${key}:${commands.count()}`)
    }
    // k0 and k1 were dropped to make room for k3 and k4.
    assert.deepEqual(reached, ['k4:0', 'k3:0', 'k2:0', 'k1:1', 'k0:1'])
  })

  test('preBlock: false sends every request to memcached', async () => {
    const l = limiter({ limit: 1, preBlock: false })
    pinClock(l, 'every', 1000)
    await l.consume('every')
    const commands = countCommands()
    for (let i = 0; i < 5; i++) assert.equal((await l.consume('every')).source, 'store')
    commands.stop()
    assert.equal(commands.count(), 5)
  })

  describe('overload (the client refuses past maxPending) is not permission', () => {
    let small: MemcachedClient
    before(() => {
      small = clientFor(mc.address, { maxPending: 1 })
    })
    after(() => small.close())

    /** 20 requests for one key at once: one reaches memcached, the client refuses the rest. */
    async function burst(options: ConstructorParameters<typeof RateLimiter>[0]) {
      const l = new RateLimiter({
        client: small,
        prefix: uniquePrefix('over'),
        limit: 5,
        windowMs: '1 hour',
        onError: () => {},
        ...options,
      })
      const results = await Promise.all(Array.from({ length: 20 }, () => l.consume('flooder')))
      const tally: Record<string, number> = {}
      for (const r of results)
        tally[`${r.source}:${r.allowed}`] = (tally[`${r.source}:${r.allowed}`] ?? 0) + 1
      assert.ok(
        results.filter((r) => r.error !== undefined).every((r) => r.error!.name === 'OverloadedError'),
      )
      return { tally, limiter: l }
    }

    test('default: the overloaded requests are counted in process (limit / instances), never let through', async () => {
      const { tally, limiter: l } = await burst({})
      assert.deepEqual(tally, { 'store:true': 1, 'local:true': 5, 'local:false': 14 })
      assert.equal(l.metrics().breaker.state, 'closed', 'overload does not open the breaker')
      assert.equal(l.metrics().totals.failOpen, 0)
    })

    test("onStoreError 'allow' does not apply to overload unless onOverload: 'allow' is chosen", async () => {
      assert.deepEqual((await burst({ onStoreError: 'allow', onOverload: 'allow' })).tally, {
        'store:true': 1,
        'fail-open:true': 19,
      })
    })

    test("under onStoreError: 'deny', overload is refused (fail-closed) by default", async () => {
      assert.deepEqual((await burst({ onStoreError: 'deny' })).tally, {
        'store:true': 1,
        'fail-closed:false': 19,
      })
    })
  })
})

describe('metrics', () => {
  test('metrics: allowed and blocked per minute for the last 15 minutes, with totals', async () => {
    const l = limiter({ limit: 2 })
    for (let i = 0; i < 5; i++) await l.consume('metrics')
    const snapshot = l.metrics()
    assert.equal(snapshot.perMinute.length, 15)
    const minutes = snapshot.perMinute.map((m) => m.minute)
    assert.deepEqual(
      minutes,
      [...minutes].sort((x, y) => x - y),
    )
    assert.equal(minutes[14], Math.floor(Date.now() / 60_000) * 60_000)
    const sum = snapshot.perMinute.reduce((acc, m) => [acc[0]! + m.allowed, acc[1]! + m.blocked], [0, 0])
    assert.deepEqual(sum, [2, 3])
    assert.deepEqual(
      [snapshot.totals.allowed, snapshot.totals.blocked, snapshot.totals.storeErrors],
      [2, 3, 0],
    )
    assert.equal(snapshot.limit, 2)
    assert.equal(snapshot.breaker.state, 'closed')
  })

  test('metrics keep 15 minutes: older minutes roll off', async () => {
    const l = limiter({ limit: 100 })
    mock.timers.enable({ apis: ['Date'], now: Math.floor(Date.now() / 60_000) * 60_000 })
    await l.consume('old')
    mock.timers.tick(20 * 60_000)
    await l.consume('new')
    const snapshot = l.metrics()
    assert.equal(
      snapshot.perMinute.reduce((n, m) => n + m.allowed, 0),
      1,
    )
    assert.equal(snapshot.totals.allowed, 2)
  })
})

describe('options and keys', () => {
  test('invalid options throw ERR_MEMKIT_INVALID_OPTION at construction', () => {
    const bad: Record<string, unknown>[] = [
      {},
      { client, servers: mc.address },
      { client: {} },
      { client, limit: -1 },
      { client, limit: 1.5 },
      { client, windowMs: 0 },
      { client, windowMs: 'a while' },
      { client, algorithm: 'token-bucket' },
      { client, onStoreError: 'ignore' },
      { client, instances: 0 },
      { client, breaker: { threshold: 0 } },
      { client, breaker: { cooldown: 5 } },
      { client, prefix: 'has space' },
      { client, preBlock: 'yes' },
      { client, lmit: 5 },
    ]
    for (const options of bad) {
      assert.throws(
        () => new RateLimiter(options),
        { code: 'ERR_MEMKIT_INVALID_OPTION' },
        JSON.stringify(Object.keys(options)),
      )
    }
  })

  test('a window whose counters would outlive 2038-01-19 (32-bit expiry) is refused, naming the bound', () => {
    // A sliding window's counter lives two windows: ten years of sliding window reach 2036+.
    assert.throws(() => limiter({ windowMs: '3650 days', algorithm: 'sliding' }), {
      code: 'ERR_MEMKIT_INVALID_OPTION',
      message: /past 2038-01-19T03:14:07\.000Z, the last expiry memcached can store/,
    })
    assert.equal(limiter({ windowMs: '3650 days' }).config.windowMs, 3650 * 86_400_000)
    // The bound shrinks as time passes: in 2035 a fixed window of 1200 days no longer fits.
    mock.timers.enable({ apis: ['Date'], now: Date.UTC(2035, 0, 1) })
    assert.throws(() => limiter({ windowMs: '1200 days' }), { code: 'ERR_MEMKIT_INVALID_OPTION' })
    assert.throws(() => new ExpressRateLimitStore({ client }).init({ windowMs: 1200 * 86_400_000 }), {
      code: 'ERR_MEMKIT_INVALID_OPTION',
    })
    assert.equal(limiter({ windowMs: '365 days' }).config.windowMs, 365 * 86_400_000)
  })

  test('the longest window the 2038 error names is exact: that window fits, one millisecond more does not', () => {
    mock.timers.enable({ apis: ['Date'], now: Date.UTC(2035, 0, 1) })
    for (const algorithm of ['fixed', 'sliding'] as const) {
      const error = catchError(() => limiter({ windowMs: '1200 days', algorithm }))
      assert.equal((error as { code?: string }).code, 'ERR_MEMKIT_INVALID_OPTION')
      const message = String((error as Error).message)
      const longest = Number(/can be at most (\d+) ms/.exec(message)?.[1])
      // The counters of a window live its length (sliding: twice) plus one second of rounding.
      const lives = algorithm === 'sliding' ? 2 * longest : longest
      assert.ok(Date.now() + lives + 1000 <= (2 ** 31 - 1) * 1000, `${algorithm}: ${message}`)
      assert.equal(limiter({ windowMs: longest, algorithm }).config.windowMs, longest)
      assert.throws(() => limiter({ windowMs: longest + 1, algorithm }), {
        code: 'ERR_MEMKIT_INVALID_OPTION',
      })
    }
  })

  test('a limiter still running when 2038 comes close caps its counters at the bound', async () => {
    const l = limiter({ limit: 5, windowMs: '1 day' })
    // An hour before the last expiry memcached can store: the counter may live one hour.
    mock.timers.enable({ apis: ['Date'], now: (2 ** 31 - 1) * 1000 - 3_600_000 })
    const result = await l.consume('late')
    assert.deepEqual([result.source, result.used], ['store', 1])
    const ttl = await ttlOf(l.storageKey('late'))
    assert.ok(ttl <= 3600 && ttl >= 3598, `ttl ${ttl}`)
  })

  test('limiter name and client key cannot alias through a separator character', async () => {
    // Joined with a separator, ('login', 'x\0y') and ('login\0x', 'y') were the same text.
    const prefix = uniquePrefix('alias')
    const a = new RateLimiter({ client, prefix, name: 'login', limit: 1, windowMs: '1 hour' })
    const b = new RateLimiter({ client, prefix, name: 'login\0x', limit: 1, windowMs: '1 hour' })
    assert.notEqual(a.storageKey('x\0y'), b.storageKey('y'))
    assert.equal((await a.consume('x\0y')).allowed, true)
    assert.equal((await b.consume('y')).allowed, true, 'the other pair has its own counter')
    assert.equal((await a.consume('x\0y')).allowed, false)
  })

  test('IPv6 clients are grouped by subnet exactly as express-rate-limit groups them', () => {
    const addresses = [
      '1.2.3.4',
      '::1',
      '::',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      '::127.0.0.1',
      '2001:db8:abcd:12ff:1:2:3:4',
      '2001:0db8:0000:0000:0000:0000:0000:0001',
      'ABCD:EF01:2345:6789:ABCD:EF01:2345:6789',
      'fe80::1%eth0',
      '1:0:0:1:0:0:0:1',
      '1:0:0:0:1:0:0:1',
      '64:ff9b::1.2.3.4',
      '2001:db8:0:1:1:1:1:1',
      '2a00:1450:4001:82a::200e',
      // IPv4 in IPv6 only when the first 80 bits are zero; one zero group is not compressed,
      // two are; of two equal runs the first is.
      '1:0:0:0:0:ffff:102:304',
      '0:0:0:0:1:ffff:102:304',
      '1:2:3:4:5:6::8',
      '1:0:0:4:5:6:7:8',
      '1:0:0:2:0:0:3:4',
      'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    ]
    for (const ip of addresses) {
      for (const subnet of [1, 16, 17, 32, 48, 56, 60, 64, 127, 128]) {
        assert.equal(ipKey(ip, subnet), ipKeyGenerator(ip, subnet), `${ip}/${subnet}`)
      }
    }
    assert.equal(ipKey('2001:db8:abcd:12ff::1', 56), ipKey('2001:db8:abcd:1234::2', 56))
    assert.notEqual(ipKey('2001:db8:abcd:12ff::1', 64), ipKey('2001:db8:abcd:1234::2', 64))
  })

  test('the key hasher remembers its last keys (at most cacheSize, never long ones) and hashes alike either way', () => {
    const hasher = new KeyHasher('p:', 'ns', 60_000, 3)
    const a = hasher.hash('a')
    assert.deepEqual(a, hashKey('p:', 'ns', 'a', 60_000))
    assert.equal(hasher.hash('a'), a, 'a repeated key is not hashed again')
    const [b, c] = [hasher.hash('b'), hasher.hash('c')]
    hasher.hash('d') // the cache is full: the oldest, a, makes room
    assert.equal(hasher.hash('c'), c)
    assert.equal(hasher.hash('b'), b)
    const again = hasher.hash('a')
    assert.notEqual(again, a, 'a was forgotten and hashed again')
    assert.deepEqual(again, a, 'to the same value')
    const long = 'x'.repeat(257)
    assert.notEqual(hasher.hash(long), hasher.hash(long), 'a key over 256 characters is not remembered')
    const edge = 'y'.repeat(256)
    assert.equal(hasher.hash(edge), hasher.hash(edge), 'one of 256 is')
  })

  test('one address, one key: a table of spellings', () => {
    // Every spelling in a row is the same address and must get the row's key.
    const table: Array<{ key: string; subnet: number | false; spellings: string[] }> = [
      {
        key: '1.2.3.4',
        subnet: 56,
        spellings: [
          '1.2.3.4',
          '001.002.003.004', // zero-padded octets are decimal padding
          '01.2.3.04',
          ' 1.2.3.4 ',
          '1.2.3.4:8080',
          '::ffff:1.2.3.4', // IPv4-mapped
          '::FFFF:1.2.3.4',
          '::ffff:0102:0304',
          '::ffff:102:304',
          '0:0:0:0:0:ffff:1.2.3.4',
          '0000:0000:0000:0000:0000:FFFF:0102:0304',
          '::ffff:001.002.003.004',
          '[::ffff:1.2.3.4]',
          '[::ffff:1.2.3.4]:443',
          '::1.2.3.4', // IPv4-compatible (RFC 4291 2.5.5.1), however it is written
          '::0102:0304',
          '::102:304',
          '0:0:0:0:0:0:1.2.3.4',
        ],
      },
      {
        key: '2001:db8::1',
        subnet: false,
        spellings: [
          '2001:db8::1',
          '2001:DB8::1', // letter case
          '2001:0db8:0000:0000:0000:0000:0000:0001', // leading zeros, no compression
          '2001:db8:0:0:0:0:0:1',
          '2001:db8::0:1', // compression in other places
          '2001:db8:0::1',
          '2001:db8:0:0::0:1',
          '[2001:db8::1]',
          '[2001:DB8::1]:8080',
          '2001:db8::1%eth0', // zone id
        ],
      },
      {
        key: '2001:db8:abcd:1200::/56',
        subnet: 56,
        spellings: ['2001:db8:abcd:1200::1', '2001:DB8:ABCD:12FF:FFFF::', '2001:0db8:abcd:1234:0:0:0:1%2'],
      },
      {
        key: 'fe80::1',
        subnet: false,
        spellings: ['fe80::1', 'FE80::1%eth0', 'fe80:0:0:0:0:0:0:1%1', 'fe80::0001%lo'],
      },
      // Loopback and unspecified stay IPv6: ::0.0.0.1 is ::1, not an IPv4 address.
      { key: '::1', subnet: false, spellings: ['::1', '0:0:0:0:0:0:0:1', '::0.0.0.1', '[::1]:80'] },
      { key: '::', subnet: false, spellings: ['::', '0:0:0:0:0:0:0:0', '::0.0.0.0'] },
      // Any other address in ::/96 is IPv4-compatible.
      { key: '0.0.0.2', subnet: 56, spellings: ['::2', '::0.0.0.2', '0.0.0.2', '[::2]:80'] },
      { key: '0.0.1.2', subnet: 56, spellings: ['::102', '::0:102', '::0.0.1.2'] },
      // The highest octet is an octet.
      {
        key: '255.255.255.255',
        subnet: 56,
        spellings: ['255.255.255.255', '::ffff:255.255.255.255', '::ffff:ffff:ffff', '::FFFF:FFFF:FFFF'],
      },
      // `::` may stand for a single zero group (RFC 4291), which is then written out (RFC 5952).
      {
        key: '1:2:3:4:5:6:0:8',
        subnet: false,
        spellings: ['1:2:3:4:5:6::8', '1:2:3:4:5:6:0:8', '1:2:3:4:5:6:0000:8', '01:2:3:4:5:6:0:8'],
      },
      {
        key: '1::4:5:6:7:8',
        subnet: false,
        spellings: ['1:0:0:4:5:6:7:8', '1::4:5:6:7:8', '1:0::4:5:6:7:8'],
      },
    ]
    for (const { key, subnet, spellings } of table) {
      for (const spelling of spellings) assert.equal(ipKey(spelling, subnet), key, JSON.stringify(spelling))
    }
    // Different addresses keep different keys.
    const distinct = ['1.2.3.4', '1.2.3.5', '::ffff:1.2.3.5', '4.3.2.1', '::ffff:0:1.2.3.4', '::1', '::']
    assert.deepEqual(
      new Set(distinct.map((ip) => ipKey(ip, false))),
      new Set(['1.2.3.4', '1.2.3.5', '4.3.2.1', '::ffff:0:102:304', '::1', '::']),
    )

    // An IPv4 address is carried in IPv6 only behind 80 zero bits and then ffff (mapped) or 0
    // (compatible); anything else there is an IPv6 address of its own.
    const notIPv4 = {
      '1:0:0:0:0:ffff:102:304': '1::ffff:102:304',
      '0:1:0:0:0:ffff:102:304': '0:1::ffff:102:304',
      '0:0:1:0:0:ffff:102:304': '::1:0:0:ffff:102:304',
      '0:0:0:1:0:ffff:102:304': '::1:0:ffff:102:304',
      '0:0:0:0:1:ffff:102:304': '::1:ffff:102:304',
      '::1:102:304': '::1:102:304',
      '::fffe:1.2.3.4': '::fffe:102:304',
    }
    for (const [ip, key] of Object.entries(notIPv4)) assert.equal(ipKey(ip, false), key, ip)

    // Malformed text gets a key of its own that no real address can have.
    const malformed = [
      '1.2.3',
      '1.2.3.256',
      '1.2.3.4.5',
      '0x7f.0.0.1',
      '1.2.3.-4',
      '1.2.3.4 5',
      'not an ip',
      '2001:db8::/56', // the text of a subnet key
      '2001:db8:abcd:1200::/56',
      '::ffff:1.2.3',
      '12345::',
      ':::',
      '1:2:3:4:5:6:7:8::',
      '[::1',
      '[::1]x',
      'invalid:1.2.3.4',
      '1:2:3:4:5:6:7', // seven groups
      '1:2:3:4:5:6:7:8:9', // nine
      '1::2::3', // two compressions
      '1:2:3:4:5:6:7:8::1::', // eight groups, then two compressions
      '[1.2.3.4]', // brackets hold IPv6 only
      '1.2.3.4]',
    ]
    const valid = table.flatMap(({ key, spellings }) => [key, ...spellings.map((ip) => ipKey(ip, 56))])
    const malformedKeys = malformed.map((ip) => ipKey(ip, 56))
    assert.equal(new Set(malformedKeys).size, malformed.length, 'each malformed text has its own key')
    for (const [i, key] of malformedKeys.entries()) {
      assert.equal(key, `invalid:${malformed[i]}`)
      assert.ok(!valid.includes(key), `${malformed[i]} collides with a real address`)
    }
    assert.equal(ipKey('', 56), '', 'no address at all')
    assert.equal(ipKey(' \t ', 56), '', 'whitespace is no address either')
  })

  test('the address keys remember their last addresses (at most cacheSize, never long ones) and key alike either way', () => {
    const computed: string[] = []
    const counting = (ip: string, subnet: number | false) => {
      computed.push(ip)
      return ipKey(ip, subnet)
    }
    const keys = new IpKeys(56, 3, counting)
    assert.equal(keys.key('1.2.3.4'), '1.2.3.4')
    assert.equal(keys.key('::ffff:1.2.3.4'), '1.2.3.4')
    assert.equal(keys.key('1.2.3.4'), '1.2.3.4')
    assert.deepEqual(computed, ['1.2.3.4', '::ffff:1.2.3.4'], 'a repeated address is not parsed again')
    keys.key('2001:db8::1') // 3 remembered: the cache is full
    keys.key('1.2.3.4') // remembered, so nothing is forgotten
    keys.key('5.6.7.8') // the oldest, 1.2.3.4, makes room
    computed.length = 0
    for (const ip of ['::ffff:1.2.3.4', '2001:db8::1', '5.6.7.8']) keys.key(ip)
    assert.deepEqual(computed, [], 'the last three are remembered')
    assert.equal(keys.key('1.2.3.4'), '1.2.3.4')
    assert.deepEqual(computed, ['1.2.3.4'], 'the oldest was forgotten and is parsed again')
    computed.length = 0
    const long = ` ${'1'.repeat(64)}`
    const edge = long.slice(1)
    for (const ip of [long, long, edge, edge]) assert.equal(keys.key(ip), ipKey(ip, 56))
    assert.deepEqual(
      computed,
      [long, long, edge],
      'an address over 64 characters is not remembered; one of 64 is',
    )
  })
})
