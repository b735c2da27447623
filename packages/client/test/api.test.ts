// Options, keys on the wire, TTL arithmetic, and the compound operations' edge cases.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { dumpKeys, freePort, rawCommand, useMemcached, waitUntil } from '@memkit/testing'
import {
  CHANNELS,
  type CommandEvent,
  createClient,
  InvalidOptionError,
  LoadTimeoutError,
  MAX_EXPTIME,
  MAX_NON_ASCII_KEY_LENGTH,
  parseServers,
  toExptime,
} from '../src/index.js'

const { server, client } = await useMemcached({ createClient })

describe('options', () => {
  const invalid: Array<[string, Record<string, unknown>]> = [
    ['an unknown option', { srevers: 'x' }],
    ['a negative timeout', { timeout: -1 }],
    ['a zero deadTimeout', { deadTimeout: 0 }],
    ['a fractional connection count', { connections: 1.5 }],
    ['a tiny maxItemSize', { maxItemSize: 10 }],
    ['a bad decodeErrors', { decodeErrors: 'ignore' }],
    ['a bad compression', { compression: 'lz4' }],
    ['a keyPrefix with a space', { keyPrefix: 'my app:' }],
    ['a server with a bad port', { servers: 'localhost:99999' }],
    ['a server with a zero weight', { servers: [{ host: 'a', weight: 0 }] }],
    ['a server listed twice', { servers: ['a:1', 'a:1'] }],
    ['an empty server list', { servers: [] }],
    ['a serializer without deserialize', { serializer: { serialize: () => ({}) } }],
  ]
  for (const [label, options] of invalid) {
    test(`${label} is refused at construction with ERR_MEMKIT_INVALID_OPTION`, () => {
      assert.throws(
        () => createClient(options),
        (error: unknown) => {
          assert.ok(error instanceof InvalidOptionError)
          assert.equal(error.code, 'ERR_MEMKIT_INVALID_OPTION')
          return true
        },
      )
    })
  }

  test('the parsed config is frozen', () => {
    assert.ok(Object.isFrozen(client.config))
    assert.ok(Object.isFrozen(client.config.servers))
  })

  test('servers: strings, lists, IPv6, weights, and MEMCACHED_SERVERS as the default', () => {
    assert.deepEqual(
      parseServers('a:1, b ,[::1]:3').map((s) => s.label),
      ['a:1', 'b:11211', '[::1]:3'],
    )
    assert.deepEqual(
      parseServers(undefined, 'env-a:5,env-b:6').map((s) => s.label),
      ['env-a:5', 'env-b:6'],
    )
    assert.deepEqual(
      parseServers(undefined, '').map((s) => s.label),
      ['127.0.0.1:11211'],
    )
    assert.equal(parseServers({ host: 'w', weight: 3 })[0]!.weight, 3)
  })

  test('creating a client connects nothing (an app starts even when every server is down)', async () => {
    const port = await freePort()
    const lazy = createClient({ servers: `127.0.0.1:${port}` })
    assert.equal(lazy.serverFor('k'), `127.0.0.1:${port}`)
    await lazy.close()
  })
})

describe('keys on the wire', () => {
  test('keyPrefix namespaces every key and counts toward the 250-byte limit', async () => {
    const prefixed = createClient({ servers: server.address, keyPrefix: 'app1:' })
    try {
      await prefixed.set('user', 'ann')
      assert.match(await rawCommand(server.address, 'mg app1:user v\r\n'), /^VA 3\r\nann/)
      assert.equal(await client.get('user'), undefined)
      assert.equal(await prefixed.get('user'), 'ann')
      await assert.rejects(prefixed.set('x'.repeat(246), 1), {
        code: 'ERR_MEMKIT_KEY',
        message: /with the prefix/,
      })
      assert.equal(await prefixed.set('x'.repeat(245), 1), true)
    } finally {
      await prefixed.close()
    }
  })

  test('hashLongKeys stores an over-long key as prefix + h: + its SHA-256', async () => {
    const hashing = createClient({ servers: server.address, keyPrefix: 'hl:', hashLongKeys: true })
    try {
      const long = `report:${'q'.repeat(1000)}`
      await hashing.set(long, 'stored')
      assert.equal(await hashing.get(long), 'stored')
      // memcached's LRU crawler can miss an item written a moment ago: look until it shows.
      let stored: string[] = []
      await waitUntil(async () => {
        stored = (await dumpKeys(server.address)).filter((k) => k.startsWith('hl:'))
        return stored.length > 0
      })
      assert.equal(stored.length, 1)
      assert.match(stored[0]!, /^hl:h:[A-Za-z0-9_-]{43}$/)
      // short keys are stored as they are
      await hashing.set('short', 1)
      assert.match(await rawCommand(server.address, 'mg hl:short v\r\n'), /^VA /)
      // hashing never makes a key with a space acceptable
      await assert.rejects(hashing.set(`${'a'.repeat(300)} b`, 1), { code: 'ERR_MEMKIT_KEY' })
    } finally {
      await hashing.close()
    }
  })

  test('non-ASCII keys travel base64 on the meta protocol and are stored as their UTF-8 bytes', async () => {
    await client.set('ключ:✓', 'v')
    // the classic protocol, which sends raw bytes, finds the same item
    const reply = await rawCommand(server.address, Buffer.from('get ключ:✓\r\n'))
    assert.match(reply, /^VALUE \S+ 16 1\r\nv\r\nEND\r\n$/)
    // 188 bytes base64-encode to 252 characters, over memcached's limit for the encoded form
    await assert.rejects(client.set('é'.repeat(94), 1), {
      code: 'ERR_MEMKIT_KEY',
      message: /188 bytes with the prefix; keys with non-ASCII characters may be at most 186 bytes/,
    })
    assert.equal(await client.set('é'.repeat(93), 1), true)
    assert.equal(MAX_NON_ASCII_KEY_LENGTH, 186)
  })
})

describe('one key, one item, on every transport', () => {
  const long = `report:${'q'.repeat(1000)}`
  const keys = [
    ['ASCII', 'plain:key'],
    ['ASCII at the limit', 'a'.repeat(250)],
    ['non-ASCII at the limit', 'é'.repeat(93)],
    ['non-ASCII between 187 and 250 bytes (hashed)', 'é'.repeat(110)],
    ['long ASCII (hashed)', long],
    ['long non-ASCII (hashed)', 'ключ'.repeat(100)],
  ] as const
  const transports = ['meta', 'classic', 'binary'] as const

  test('a key written on one transport is the same item on the others, and on a raw classic get', async () => {
    const clients = transports.map((protocol) =>
      createClient({ servers: server.address, protocol, hashLongKeys: true }),
    )
    try {
      for (const [label, key] of keys) {
        for (const [w, writer] of clients.entries()) {
          const value = `${label} by ${transports[w]}`
          await writer.set(key, value)
          for (const [r, reader] of clients.entries()) {
            assert.equal(await reader.get(key), value, `${label}: ${transports[w]} → ${transports[r]}`)
          }
        }
      }
      // Every transport placed the 110-character non-ASCII key under one hashed name.
      const hashed = `h:${createHash('sha256').update('é'.repeat(110)).digest('base64url')}`
      assert.match(await rawCommand(server.address, `mg ${hashed} v\r\n`), /^VA /)
    } finally {
      for (const c of clients) await c.close()
    }
  })

  test('the hashed name of a long key cannot be reached with a short key', async () => {
    const hashing = createClient({ servers: server.address, hashLongKeys: true })
    try {
      await hashing.set(long, 'the report')
      const hashedName = `h:${createHash('sha256').update(long).digest('base64url')}`
      // An attacker who controls a key (a URL, a header) sends the hashed form itself:
      await hashing.set(hashedName, 'poisoned')
      assert.equal(await hashing.get(long), 'the report')
      assert.equal(await hashing.get(hashedName), 'poisoned', 'its own item, stored hashed in turn')
      assert.match(await rawCommand(server.address, `mg ${hashedName} v\r\n`), /the report/)
      // Without hashLongKeys there are no hashed names, and "h:" keys are ordinary.
      await client.set('h:plain', 1)
      assert.match(await rawCommand(server.address, 'mg h:plain v\r\n'), /^VA /)
    } finally {
      await hashing.close()
    }
  })
})

describe('TTL arithmetic', () => {
  test('up to 30 days is relative; beyond is an absolute Unix time; fractions round up', () => {
    const now = Date.UTC(2026, 10, 22, 12, 0, 0)
    assert.equal(toExptime(0, now), 0)
    assert.equal(toExptime(0.2, now), 1)
    assert.equal(toExptime(59.5, now), 60)
    assert.equal(toExptime(30 * 86400, now), 30 * 86400)
    assert.equal(toExptime(30 * 86400 + 1, now), now / 1000 + 30 * 86400 + 1)
    assert.throws(() => toExptime(-1), { code: 'ERR_MEMKIT_INVALID_ARGUMENT' })
    assert.throws(() => toExptime(Number.NaN), { code: 'ERR_MEMKIT_INVALID_ARGUMENT' })
  })

  test('an expiry memcached cannot hold (past 2038-01-19T03:14:07Z) is capped there', () => {
    const now = Date.UTC(2026, 10, 22, 12, 0, 0)
    const limit = Date.UTC(2038, 0, 19, 3, 14, 7) / 1000
    assert.equal(MAX_EXPTIME, limit)
    assert.equal(toExptime(limit - now / 1000, now), limit)
    assert.equal(toExptime(20 * 365 * 86400, now), limit)
    assert.equal(toExptime(1e12, now), limit)
    assert.equal(toExptime(Number.MAX_SAFE_INTEGER, now), limit)
  })

  test('a 20-year TTL is kept (until 2038), on memcached and on the embedded backend alike', async () => {
    const memory = createClient({ servers: 'memory://ttl-2038' })
    try {
      for (const target of [client, memory]) {
        assert.equal(await target.set('ttl:20y', 'kept', { ttl: 20 * 365 * 86400 }), true)
        assert.equal(await target.get('ttl:20y'), 'kept')
        const counter = await target.incrWithTtl('ttl:20y:n', 1, { initial: 1, ttl: 20 * 365 * 86400 })
        // memcached counts in whole seconds on its own clock: within a minute of the cap.
        assert.ok(
          counter!.ttl > 10 * 365 * 86400 && counter!.ttl <= MAX_EXPTIME - Date.now() / 1000 + 60,
          `${counter!.ttl}`,
        )
        assert.equal(await target.get('ttl:20y:n').then((v) => v !== undefined), true)
        assert.equal(await target.touch('ttl:20y', 30 * 365 * 86400), true)
        assert.equal(await target.get('ttl:20y'), 'kept')
      }
    } finally {
      await memory.close()
    }
  })

  test('the server sees the intended remaining TTL for 31 and 365 days', async () => {
    for (const days of [31, 365]) {
      await client.set(`ttl:${days}`, 1, { ttl: days * 86400 })
      const reply = await rawCommand(server.address, `mg ttl:${days} t\r\n`)
      const remaining = Number(/t(\d+)/.exec(reply)![1])
      assert.ok(Math.abs(remaining - days * 86400) < 5, `${days} days: t=${remaining}`)
    }
  })

  test('a negative TTL is a typed error; nothing is stored', async () => {
    await assert.rejects(client.set('neg', 1, { ttl: -5 }), { code: 'ERR_MEMKIT_INVALID_ARGUMENT' })
    assert.equal(await client.get('neg'), undefined)
  })

  test('defaultTtl applies to writes that give none', async () => {
    const short = createClient({ servers: server.address, defaultTtl: 100 })
    try {
      await short.set('dflt', 1)
      const t = Number(/t(\d+)/.exec(await rawCommand(server.address, 'mg dflt t\r\n'))![1])
      assert.ok(t > 95 && t <= 100)
    } finally {
      await short.close()
    }
  })
})

describe('counters: arguments', () => {
  test('negative, fractional or oversized deltas are typed errors', async () => {
    await assert.rejects(client.incr('c', -1), { code: 'ERR_MEMKIT_INVALID_ARGUMENT' })
    await assert.rejects(client.incr('c', 1.5), { code: 'ERR_MEMKIT_INVALID_ARGUMENT' })
    await assert.rejects(client.incrBig('c', 2n ** 64n), { code: 'ERR_MEMKIT_INVALID_ARGUMENT' })
    await assert.rejects(client.incr('c', 1, { ttl: 5 }), {
      code: 'ERR_MEMKIT_INVALID_ARGUMENT',
      message: /initial/,
    })
  })

  test('a counter created with initial and ttl expires', async () => {
    assert.equal(await client.incr('c:ttl', 1, { initial: 1, ttl: 1 }), 1)
    assert.match(await rawCommand(server.address, 'mg c:ttl t\r\n'), /^HD t1\r\n/, 'stored with the TTL')
    // memcached drops it within its TTL and a second: wait for that state, not for a fixed time
    await waitUntil(async () => (await rawCommand(server.address, 'mg c:ttl\r\n')) === 'EN\r\n')
    assert.equal(await client.incr('c:ttl', 1), undefined)
  })
  for (const protocol of ['meta', 'classic', 'binary'] as const) {
    test(`${protocol}: create-or-increment from many connections at once counts each call once`, async () => {
      // The first hits of a key race to create it. On the binary protocol memcached creates
      // with a separate add, and the loser is answered NOT_STORED (about 1 in 700 calls here);
      // classic sends incr, then add, then incr. Either way no call may fail or count twice.
      const clients = Array.from({ length: 8 }, () => createClient({ servers: server.address, protocol }))
      try {
        for (let round = 0; round < 300; round++) {
          const key = `c:race:${protocol}:${round}`
          const values = await Promise.all(
            clients.flatMap((c) => [
              c.incr(key, 1, { initial: 1, ttl: 60 }),
              c.incr(key, 1, { initial: 1, ttl: 60 }),
            ]),
          )
          assert.deepEqual(
            values.sort((a, b) => a! - b!),
            Array.from({ length: 16 }, (_, i) => i + 1),
            `round ${round}`,
          )
        }
      } finally {
        await Promise.all(clients.map((c) => c.close()))
      }
    })
  }
})

describe('lock', () => {
  test('an expired lock can be taken over; the old holder can then neither release nor extend it', async () => {
    const first = await client.lock('order:1', { ttl: 1 })
    await waitUntil(async () => (await rawCommand(server.address, 'mg lock:order:1\r\n')) === 'EN\r\n', {
      message: 'the lock expired',
    })
    const second = await client.lock('order:1', { ttl: 30 })
    assert.equal(await first.release(), false)
    assert.equal(await first.extend(30), false)
    assert.equal(
      await rawCommand(server.address, 'mg lock:order:1 v\r\n').then((r) => r.includes(second.token)),
      true,
    )
    assert.equal(await second.extend(60), true)
    const t = Number(/t(\d+)/.exec(await rawCommand(server.address, 'mg lock:order:1 t\r\n'))![1])
    assert.ok(t > 55, 'extend set the new TTL')
    assert.equal(await second.release(), true)
  })

  test('waiting: the lock is acquired as soon as its holder releases it', async () => {
    const holder = await client.lock('order:2', { ttl: 30 })
    let released = false
    let attempts = 0
    const counting = createClient({ servers: server.address })
    const onCommand = (event: unknown) => {
      if ((event as CommandEvent).client === counting) attempts++
    }
    subscribe(CHANNELS.command, onCommand)
    try {
      const waiting = counting.lock('order:2', { wait: 10_000, retryInterval: 20 })
      // the waiter has tried (and failed) more than once while the lock was held...
      await waitUntil(() => attempts >= 3, { message: 'the waiter retrying' })
      await holder.release().then((ok) => {
        released = ok
      })
      // ...and gets it once it is released
      const waiter = await waiting
      assert.equal(released, true)
      assert.equal(await waiter.release(), true)
    } finally {
      unsubscribe(CHANNELS.command, onCommand)
      await counting.close()
    }
  })

  test('of many concurrent contenders exactly one wins', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 30 }, () => client.lock('order:3', { ttl: 30 })),
    )
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1)
    for (const r of results)
      if (r.status === 'rejected') assert.equal(r.reason.code, 'ERR_MEMKIT_LOCK_TIMEOUT')
  })

  test('invalid lock options are typed errors', async () => {
    await assert.rejects(client.lock('x', { ttl: 0 }), { code: 'ERR_MEMKIT_INVALID_ARGUMENT' })
  })
})

describe('remember and update', () => {
  test('remember: a loader error reaches every concurrent caller and nothing is cached', async () => {
    let calls = 0
    const loader = async () => {
      calls++
      await sleep(20)
      throw new Error('database down')
    }
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, () => client.remember('rem:err', 60, loader)),
    )
    assert.equal(calls, 1)
    for (const r of results)
      assert.equal(r.status === 'rejected' && (r.reason as Error).message, 'database down')
    assert.equal(await client.get('rem:err'), undefined)
  })

  test('remember: with memcached down the loader still answers, and the failure is reported', async () => {
    const port = await freePort()
    const down = createClient({ servers: `127.0.0.1:${port}` })
    const errors: Error[] = []
    down.on('error', (e) => errors.push(e))
    try {
      assert.equal(await down.remember('k', 60, () => 'from the database'), 'from the database')
      assert.ok(errors.length >= 1)
      assert.match((errors[0] as { code?: string }).code ?? '', /^ERR_MEMKIT_(CONNECTION|SERVER_DOWN)$/)
    } finally {
      await down.close()
    }
  })

  test('remember: a loader that never settles fails its waiting callers after loadTimeout; the next call loads again; the late value is not cached', async () => {
    let release: (value: string) => void = () => {}
    const hung = new Promise<string>((resolve) => {
      release = resolve
    })
    let calls = 0
    const hangs = () => {
      calls++
      return hung
    }
    const waiting = Array.from({ length: 5 }, () =>
      client.remember('rem:hang', 60, hangs, { loadTimeout: 50 }),
    )
    for (const r of await Promise.allSettled(waiting)) {
      assert.equal(r.status, 'rejected')
      assert.ok((r as PromiseRejectedResult).reason instanceof LoadTimeoutError)
      assert.equal((r as PromiseRejectedResult).reason.code, 'ERR_MEMKIT_LOAD_TIMEOUT')
    }
    assert.equal(calls, 1, 'they shared one load')
    // The key is free again: the next caller runs its own loader.
    assert.equal(await client.remember('rem:hang', 60, () => 'fresh'), 'fresh')
    // The abandoned load finishing later must not overwrite what the newer load stored.
    release('stale')
    await hung
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(await client.get('rem:hang'), 'fresh')
  })

  test('remember: loadTimeout is validated; Infinity waits for ever', async () => {
    for (const loadTimeout of [0, -1, Number.NaN, '10' as unknown as number]) {
      await assert.rejects(
        client.remember('rem:opt', 60, () => 1, { loadTimeout }),
        {
          code: 'ERR_MEMKIT_INVALID_ARGUMENT',
        },
      )
    }
    assert.equal(
      await client.remember('rem:inf', 60, () => 'ok', { loadTimeout: Number.POSITIVE_INFINITY }),
      'ok',
    )
  })

  test('remember: undefined is returned but not cached', async () => {
    let calls = 0
    await client.remember('rem:undef', 60, () => {
      calls++
      return undefined
    })
    await client.remember('rem:undef', 60, () => {
      calls++
      return undefined
    })
    assert.equal(calls, 2)
  })

  test('remember: null is not cached unless nullTtl asks for negative caching, with its own TTL', async () => {
    let calls = 0
    const notFound = () => {
      calls++
      return null
    }
    assert.equal(await client.remember('rem:null', 600, notFound), null)
    assert.equal(await client.remember('rem:null', 600, notFound), null)
    assert.equal(calls, 2, 'by default null is loaded again')
    assert.equal(await rawCommand(server.address, 'mg rem:null v\r\n'), 'EN\r\n')

    assert.equal(await client.remember('rem:neg', 600, notFound, { nullTtl: 5 }), null)
    assert.equal(await client.remember('rem:neg', 600, notFound, { nullTtl: 5 }), null)
    assert.equal(calls, 3, 'negative caching: the second call was served from memcached')
    assert.match(
      await rawCommand(server.address, 'mg rem:neg t\r\n'),
      /^HD t[45]\r\n$/,
      'for nullTtl, not ttl',
    )
    // a value is cached for ttl as before
    assert.equal(await client.remember('rem:val', '10m', () => 'v', { nullTtl: '5s' }), 'v')
    assert.match(await rawCommand(server.address, 'mg rem:val t\r\n'), /^HD t(599|600)\r\n$/)
  })

  test('update: returning undefined writes nothing; a writer that always interferes ends in ERR_MEMKIT_CAS_CONFLICT', async () => {
    await client.set('upd', 1)
    assert.equal(await client.update('upd', () => undefined), 1)
    await assert.rejects(
      client.update<number>(
        'upd',
        async (n) => {
          await client.set('upd', 100) // someone else writes between gets and cas
          return (n ?? 0) + 1
        },
        { retries: 3 },
      ),
      { code: 'ERR_MEMKIT_CAS_CONFLICT' },
    )
    assert.equal(await client.get('upd'), 100)
  })

  test('update creates a missing key with add (and loses to a concurrent creator)', async () => {
    assert.equal(await client.update<number>('upd:new', (n) => (n ?? 10) + 1), 11)
    assert.equal(await client.get('upd:new'), 11)
  })
})
