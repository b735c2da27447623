// The client conformance suite: the semantics every transport must give, run against real
// servers (and, for other transports, through whatever they talk to). Not a test file itself:
// `*.test.ts` files call `describeConformance` with a way to make a client.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { MemcachedClient } from '../src/index.js'
import { RELEASED } from '../src/lock.js'

export interface ConformanceTarget {
  /** A fresh client on the target; the suite closes it. */
  client(options?: Record<string, unknown>): Promise<MemcachedClient> | MemcachedClient
  /**
   * Features the transport lacks by design: instead of the feature's test, the suite checks
   * that the transport refuses it with ERR_MEMKIT_NOT_SUPPORTED (the README documents each).
   */
  lacks?: Array<'remainingTtl' | 'conditionalDelete'>
}

/** Unique keys per test so tests never see each other's data. */
let sequence = 0
function key(name: string): string {
  return `conf:${process.pid}:${++sequence}:${name}`
}

/** ms: the client timeout of the conformance tests (the client's default is 500). */
const CONFORMANCE_TIMEOUT = 5000

export function describeConformance(name: string, target: ConformanceTarget): void {
  const lacks = new Set(target.lacks ?? [])
  const withClient = (title: string, body: (client: MemcachedClient) => Promise<void>) =>
    test(title, async () => {
      // What is tested here is each command's result, not how fast it comes: a long timeout, so
      // a loaded machine (a proxy or memcached waiting for a CPU) cannot fail a command.
      const client = await target.client({ timeout: CONFORMANCE_TIMEOUT })
      try {
        await body(client)
      } finally {
        await client.close()
      }
    })

  describe(`conformance: ${name}`, () => {
    withClient('set then get returns the value; a missing key is undefined', async (client) => {
      const k = key('basic')
      assert.equal(await client.get(k), undefined)
      assert.equal(await client.set(k, 'hello'), true)
      assert.equal(await client.get(k), 'hello')
    })

    withClient('values round-trip with their type', async (client) => {
      const cases: Array<[string, unknown]> = [
        ['buffer', Buffer.from([0, 1, 2, 253, 254, 255])],
        ['empty buffer', Buffer.alloc(0)],
        ['string', 'plain text'],
        ['empty string', ''],
        ['unicode', 'héllo wörld ✓ 𝄞'],
        ['integer', 42],
        ['negative integer', -7],
        ['zero', 0],
        ['float', 3.25],
        ['big safe integer', Number.MAX_SAFE_INTEGER],
        ['bigint', 2n ** 70n],
        ['true', true],
        ['false', false],
        ['null', null],
        ['object', { name: 'Ann', tags: ['a', 'b'], nested: { n: 1 } }],
        ['array', [1, 'two', { three: 3 }]],
      ]
      for (const [label, value] of cases) {
        const k = key(label.replace(/ /g, '-'))
        await client.set(k, value)
        assert.deepEqual(await client.get(k), value, label)
      }
    })

    withClient('add stores only when missing; replace only when present', async (client) => {
      const k = key('add')
      assert.equal(await client.replace(k, 'x'), false)
      assert.equal(await client.get(k), undefined)
      assert.equal(await client.add(k, 'first'), true)
      assert.equal(await client.add(k, 'second'), false)
      assert.equal(await client.get(k), 'first')
      assert.equal(await client.replace(k, 'third'), true)
      assert.equal(await client.get(k), 'third')
    })

    withClient('append and prepend join bytes and keep the type; false when missing', async (client) => {
      const k = key('append')
      assert.equal(await client.append(k, 'x'), false)
      await client.set(k, 'middle')
      assert.equal(await client.append(k, '-end'), true)
      assert.equal(await client.prepend(k, 'start-'), true)
      assert.equal(await client.get(k), 'start-middle-end')
    })

    withClient('delete removes; false when already gone', async (client) => {
      const k = key('delete')
      await client.set(k, 1)
      assert.equal(await client.delete(k), true)
      assert.equal(await client.get(k), undefined)
      assert.equal(await client.delete(k), false)
    })

    withClient(
      'gets and cas: a stale token loses, a missing key fails, the fresh token wins',
      async (client) => {
        const k = key('cas')
        assert.equal(await client.gets(k), undefined)
        await client.set(k, 'v1')
        const first = await client.gets<string>(k)
        assert.ok(first)
        assert.equal(first.value, 'v1')
        assert.match(first.cas, /^\d+$/)
        assert.equal(await client.cas(k, 'v2', first.cas), true)
        assert.equal(await client.cas(k, 'v3', first.cas), false, 'stale token must lose')
        assert.equal(await client.get(k), 'v2')
        const second = await client.gets<string>(k)
        assert.notEqual(second?.cas, first.cas)
        await client.delete(k)
        assert.equal(await client.cas(k, 'v4', second!.cas), false, 'missing key')
        assert.equal(await client.get(k), undefined)
      },
    )

    if (lacks.has('conditionalDelete')) {
      withClient(
        'deleteIfUnchanged is refused with ERR_MEMKIT_NOT_SUPPORTED, and deletes nothing',
        async (client) => {
          const k = key('cad')
          await client.set(k, 'a')
          const item = await client.gets(k)
          await assert.rejects(client.deleteIfUnchanged(k, item!.cas), { code: 'ERR_MEMKIT_NOT_SUPPORTED' })
          assert.equal(await client.get(k), 'a')
        },
      )
    } else
      withClient('deleteIfUnchanged deletes only with the current token', async (client) => {
        const k = key('cad')
        await client.set(k, 'a')
        const item = await client.gets(k)
        await client.set(k, 'b')
        assert.equal(await client.deleteIfUnchanged(k, item!.cas), false)
        assert.equal(await client.get(k), 'b')
        const fresh = await client.gets(k)
        assert.equal(await client.deleteIfUnchanged(k, fresh!.cas), true)
        assert.equal(await client.get(k), undefined)
      })

    withClient('touch changes the TTL without rewriting; false when missing', async (client) => {
      const k = key('touch')
      assert.equal(await client.touch(k, 10), false)
      await client.set(k, 'kept', { ttl: 1 })
      assert.equal(await client.touch(k, 60), true)
      await sleep(2100)
      assert.equal(await client.get(k), 'kept', 'the touch extended the TTL')
    })

    withClient(
      'getAndTouch and getsAndTouch read and extend in one step; the CAS token works',
      async (client) => {
        const k = key('gat')
        const g = key('gats')
        assert.equal(await client.getAndTouch(k, 10), undefined)
        assert.equal(await client.getsAndTouch(g, 10), undefined)
        await client.set(k, { a: 1 }, { ttl: 1 })
        await client.set(g, 'first', { ttl: 1 })
        assert.deepEqual(await client.getAndTouch(k, 60), { a: 1 })
        const item = await client.getsAndTouch<string>(g, 60)
        assert.equal(item?.value, 'first')
        assert.match(item!.cas, /^\d+$/)
        await sleep(2100)
        assert.deepEqual(await client.get(k), { a: 1 })
        assert.equal(await client.get(g), 'first', 'the read extended the TTL')
        assert.equal(await client.cas(g, 'second', item!.cas), true, 'its CAS token is the item’s')
        assert.equal(await client.cas(g, 'third', item!.cas), false)
        assert.equal(await client.get(g), 'second')
      },
    )

    withClient(
      'incr and decr with initial create the counter, then count; decr stops at 0',
      async (client) => {
        const k = key('counter')
        assert.equal(await client.incr(k, 1), undefined, 'no initial: a miss stays a miss')
        assert.equal(await client.get(k), undefined)
        assert.equal(
          await client.incr(k, 5, { initial: 10, ttl: 60 }),
          10,
          'created with initial, delta not applied',
        )
        assert.equal(await client.incr(k, 5, { initial: 10 }), 15)
        assert.equal(await client.decr(k, 20), 0, 'stops at zero')
        assert.equal(await client.decr(k, 1, { initial: 3 }), 0)
        assert.equal(await client.incr(k, 0), 0, 'incr by 0 reads a counter')
      },
    )

    withClient(
      'a counter read with get gives memcached’s bytes: a shrunk counter is padded with spaces',
      async (client) => {
        const k = key('padded')
        assert.equal(await client.incr(k, 1, { initial: 100 }), 100)
        assert.deepEqual(await client.get(k), Buffer.from('100'))
        assert.equal(await client.decr(k, 1), 99)
        assert.deepEqual(await client.get(k), Buffer.from('99 '), 'written in place, padded')
        assert.equal(await client.incr(k, 1), 100, 'the padding does not get in the way')
        assert.equal(await client.incr(k, 900), 1000)
        assert.deepEqual(await client.get(k), Buffer.from('1000'), 'longer: a new, exact item')
        assert.equal(await client.decr(k, 995), 5)
        assert.deepEqual(await client.get(k), Buffer.from('5   '))
      },
    )

    withClient(
      'counters are exact beyond 32 bits (4294967302) and up to 2^64-1 with incrBig',
      async (client) => {
        const k = key('counter64')
        assert.equal(await client.incr(k, 2, { initial: 4294967300 }), 4294967300)
        assert.equal(await client.incr(k, 2), 4294967302)
        const big = key('counterBig')
        const max = 2n ** 64n - 1n
        assert.equal(await client.incrBig(big, 1n, { initial: max - 1n }), max - 1n)
        assert.equal(await client.incrBig(big, 1n), max)
        await assert.rejects(client.incr(big, 0), { code: 'ERR_MEMKIT_UNSAFE_INTEGER' })
      },
    )

    withClient('incr on a value that is not a number is a typed error', async (client) => {
      const k = key('nan')
      await client.set(k, 'abc')
      await assert.rejects(client.incr(k, 1), { code: 'ERR_MEMKIT_NOT_NUMERIC' })
      assert.equal(await client.get(k), 'abc', 'value untouched')
      // and the connection is still in step
      await client.set(k, 'next')
      assert.equal(await client.get(k), 'next')
    })

    if (lacks.has('remainingTtl')) {
      withClient(
        'incrWithTtl is refused with ERR_MEMKIT_NOT_SUPPORTED; incr with initial still works',
        async (client) => {
          const k = key('window')
          await assert.rejects(client.incrWithTtl(k, 1, { initial: 1, ttl: 60 }), {
            code: 'ERR_MEMKIT_NOT_SUPPORTED',
          })
          assert.equal(await client.incr(k, 1, { initial: 1, ttl: 60 }), 1)
        },
      )
    } else {
      withClient('incrWithTtl returns the count and the remaining TTL in one call', async (client) => {
        const k = key('window')
        const first = await client.incrWithTtl(k, 1, { initial: 1, ttl: 60 })
        assert.equal(first?.value, 1)
        assert.ok(first!.ttl > 55 && first!.ttl <= 60, `ttl ${first?.ttl}`)
        const second = await client.incrWithTtl(k, 1, { initial: 1, ttl: 60 })
        assert.equal(second?.value, 2)
        const forever = key('forever')
        assert.equal((await client.incrWithTtl(forever, 1, { initial: 1 }))?.ttl, -1)
      })
    }

    withClient('getMany returns the hits keyed by the caller’s keys; [] resolves empty', async (client) => {
      const keys = Array.from({ length: 50 }, (_, i) => key(`many${i}`))
      for (const [i, k] of keys.entries()) if (i % 3 !== 0) await client.set(k, { i })
      const result = await client.getMany([...keys, keys[1]!])
      assert.equal(result.size, keys.filter((_, i) => i % 3 !== 0).length)
      for (const [i, k] of keys.entries()) {
        assert.deepEqual(result.get(k), i % 3 === 0 ? undefined : { i })
      }
      assert.equal((await client.getMany([])).size, 0)
    })

    withClient('setMany stores every entry; deleteMany counts what existed', async (client) => {
      const keys = Array.from({ length: 40 }, (_, i) => key(`many${i}`))
      await client.setMany(
        keys.map((k, i) => [k, i % 2 ? `v${i}` : { i }] as const),
        { ttl: 60 },
      )
      const read = await client.getMany(keys)
      assert.equal(read.size, 40)
      assert.deepEqual(read.get(keys[1]!), 'v1')
      assert.deepEqual(read.get(keys[2]!), { i: 2 })
      assert.equal(await client.deleteMany([...keys.slice(0, 10), key('never')]), 10)
      assert.equal((await client.getMany(keys)).size, 30)
    })

    withClient('many concurrent operations on distinct keys each get their own reply', async (client) => {
      const keys = Array.from({ length: 500 }, (_, i) => key(`conc${i}`))
      await Promise.all(keys.map((k, i) => client.set(k, `value-${i}`)))
      const values = await Promise.all(keys.map((k) => client.get(k)))
      for (const [i, v] of values.entries()) assert.equal(v, `value-${i}`)
    })

    withClient('TTLs: 0 never expires, 31 and 365 days are kept, 0.5 s is gone after 2 s', async (client) => {
      const never = key('ttl0')
      const month = key('ttl31d')
      const year = key('ttl365d')
      const half = key('ttlHalf')
      await client.set(never, 'n', { ttl: 0 })
      await client.set(month, 'm', { ttl: 31 * 24 * 3600 })
      await client.set(year, 'y', { ttl: 365 * 24 * 3600 })
      await client.set(half, 'h', { ttl: 0.5 })
      assert.equal(await client.get(month), 'm', '31-day TTL must not be read as a date in 1970')
      assert.equal(await client.get(year), 'y')
      assert.equal(await client.get(half), 'h', 'a 0.5 s TTL rounds up to 1 s, it does not expire at once')
      await sleep(2100)
      assert.equal(await client.get(half), undefined, 'a 0.5 s TTL is not "never"')
      assert.equal(await client.get(never), 'n')
    })

    withClient('update runs a CAS loop: 20 concurrent increments all land', async (client) => {
      const k = key('update')
      await Promise.all(
        Array.from({ length: 20 }, () => client.update<number>(k, (n) => (n ?? 0) + 1, { retries: 100 })),
      )
      assert.equal(await client.get(k), 20)
    })

    withClient('lock: exclusive, released only by its holder', async (client) => {
      const name = key('lock')
      const lock = await client.lock(name, { ttl: 10 })
      await assert.rejects(client.lock(name, { wait: 100 }), { code: 'ERR_MEMKIT_LOCK_TIMEOUT' })
      assert.equal(await lock.release(), true)
      const next = await client.lock(name, { ttl: 10 })
      assert.equal(await lock.release(), false, 'a released lock cannot release its successor')
      assert.equal(await next.release(), true)
      // With compare-and-delete the key is gone; without, it holds a release marker for 1 s
      // (which the next lock() takes over with CAS).
      if (lacks.has('conditionalDelete')) assert.equal(await client.get(`lock:${name}`), RELEASED)
      else assert.equal(await client.get(`lock:${name}`), undefined)
    })

    withClient('remember loads once for concurrent callers and caches the result', async (client) => {
      const k = key('remember')
      let loads = 0
      const loader = async () => {
        loads++
        await sleep(50)
        return { loaded: loads }
      }
      const results = await Promise.all(Array.from({ length: 25 }, () => client.remember(k, 60, loader)))
      assert.equal(loads, 1)
      for (const r of results) assert.deepEqual(r, { loaded: 1 })
      assert.deepEqual(await client.remember(k, 60, loader), { loaded: 1 })
      assert.equal(loads, 1)
      assert.deepEqual(await client.get(k), { loaded: 1 })
    })

    withClient('keys: invalid keys are typed errors and inject nothing', async (client) => {
      const victim = key('victim')
      await client.set(victim, 'safe')
      for (const bad of [
        'a b',
        'a\r\nflush_all',
        'a\nb',
        'tab\there',
        'nul\0',
        'del\x7f',
        // lone surrogates: no UTF-8 form (Buffer.from would write U+FFFD, so two keys would share one item)
        '\ud800',
        'a\udc00b',
        '',
        'x'.repeat(251),
      ]) {
        await assert.rejects(client.set(bad, 'v'), { code: 'ERR_MEMKIT_KEY' }, JSON.stringify(bad))
        await assert.rejects(client.get(bad), { code: 'ERR_MEMKIT_KEY' })
      }
      assert.equal(await client.get(victim), 'safe')
    })

    withClient('keys: non-ASCII keys are measured in UTF-8 bytes and work', async (client) => {
      const k = `${key('ünïcødé')}-ключ-🔑`
      await client.set(k, 'yes')
      assert.equal(await client.get(k), 'yes')
      assert.equal((await client.getMany([k])).get(k), 'yes')
      // 126 two-byte characters = 252 bytes: over the limit although only 126 characters
      await assert.rejects(client.set('é'.repeat(126), 'v'), { code: 'ERR_MEMKIT_KEY' })
    })

    withClient('a value over the item size limit is refused before it is sent', async (client) => {
      const k = key('big')
      const error = await client.set(k, Buffer.alloc(1024 * 1024 + 1)).catch((e) => e)
      assert.equal(error.code, 'ERR_MEMKIT_VALUE_TOO_LARGE')
      assert.match(error.message, /1048576/)
      assert.ok(error.size > error.limit)
      assert.equal(await client.get(k), undefined)
      // just under the limit fits
      const fits = 1024 * 1024 - 59 - Buffer.byteLength(k) - 200
      assert.equal(await client.set(k, Buffer.alloc(fits, 1)), true)
      assert.equal(((await client.get(k)) as Buffer).length, fits)
    })
  })
}
