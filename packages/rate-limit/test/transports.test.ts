// The limiter on every transport: 'classic' through a real twemproxy in front of two memcached
// nodes, 'binary' (memjs) against memcached with SASL, and 'meta' for reference. Each must count
// exactly under concurrency from two application processes, send the headers meta sends, and
// cost the round trips the README states; configurations that cannot count are refused.
import assert from 'node:assert/strict'
import { afterEach, describe, mock, test } from 'node:test'
import { type ClientOptions, createClient, type MemcachedClient } from '@memkit/client'
import { startMemcached, startTwemproxy, useMemcached } from '@memkit/testing'
import { rateLimit } from '../src/express.js'
import { RateLimiter } from '../src/limiter.js'
import { createFastifyRateLimitStore, ExpressRateLimitStore } from '../src/peer-stores.js'
import { burst, keyWithRoom, startApp, stopApps } from './app-processes.js'
import { countCommands, expressHarness, rateHeaders, startRelay, uniquePrefix } from './helpers.js'

const USER = { username: 'ann', password: 'hunter2' }

const { servers: nodes, closeAfter } = await useMemcached({ count: 2 })
closeAfter({ close: stopApps })
const [meta, sasl] = await Promise.all([startMemcached(), startMemcached({ sasl: [USER] })])
const proxy = await startTwemproxy(
  nodes.map((n) => n.address),
  { hash: 'md5', distribution: 'ketama' },
)
afterEach(() => mock.timers.reset())

interface Transport {
  name: string
  /** Client options for this transport; `address` replaces the server (to put a relay in front). */
  options(address?: string): ClientOptions
  /** The server the client talks to. */
  server(): { host: string; port: number }
}

const transports: Transport[] = [
  {
    name: 'meta',
    options: (address) => ({ servers: address ?? meta.address }),
    server: () => meta,
  },
  {
    name: 'classic through twemproxy (2 nodes)',
    options: (address) => ({ servers: address ?? proxy.address, protocol: 'classic', proxy: true }),
    server: () => proxy,
  },
  {
    name: 'binary (memjs) with SASL',
    options: (address) => ({ servers: address ?? sasl.address, protocol: 'binary', auth: USER }),
    server: () => sasl,
  },
]

async function withClient<T>(
  options: ClientOptions,
  fn: (client: MemcachedClient) => Promise<T>,
): Promise<T> {
  const client = createClient(options)
  try {
    return await fn(client)
  } finally {
    await client.close()
  }
}

describe('exact counts on every transport: 300 concurrent requests from two app processes', () => {
  for (const transport of transports.slice(1)) {
    test(transport.name, async () => {
      const prefix = uniquePrefix('tr')
      const limits = { prefix, fixed: 97, sliding: 43 }
      const ports = await Promise.all([
        startApp('express', transport.options(), limits),
        startApp('fastify', transport.options(), limits),
      ])
      const fixed = await burst(ports, '/fixed', await keyWithRoom(prefix, 'fixed'), 300)
      assert.deepEqual(fixed, { 200: 97, 429: 203 })
      const sliding = await burst(ports, '/sliding', await keyWithRoom(prefix, 'sliding'), 300)
      assert.deepEqual(sliding, { 200: 43, 429: 257 })
    })
  }
})

test('the same headers on every transport, fixed and sliding windows', async () => {
  // A fixed instant near the real time, so every transport sees the same windows.
  const now = Math.floor(Date.now() / 60_000) * 60_000 + 17_000
  const replies: Record<string, Array<Record<string, string>>> = {}
  for (const transport of transports) {
    await withClient(transport.options(), async (client) => {
      const prefix = uniquePrefix('hd')
      const seen: Array<Record<string, string>> = []
      for (const algorithm of ['fixed', 'sliding'] as const) {
        mock.timers.enable({ apis: ['Date'], now })
        const harness = await expressHarness({
          client,
          prefix,
          limit: 3,
          windowMs: '1 hour',
          algorithm,
          headers: ['legacy', 'draft-7', 'draft-8'],
        })
        try {
          for (let i = 0; i < 5; i++) {
            const reply = await harness.request('/')
            seen.push({ status: String(reply.status), ...rateHeaders(reply) })
          }
        } finally {
          await harness.close()
          mock.timers.reset()
        }
      }
      replies[transport.name] = seen
    })
  }
  const [reference, ...others] = transports.map((t) => replies[t.name]!)
  assert.deepEqual(
    reference!.map((r) => r.status),
    ['200', '200', '200', '429', '429', '200', '200', '200', '429', '429'],
  )
  for (const other of others) assert.deepEqual(other, reference)
})

describe('memcached commands and round trips per request', () => {
  // [commands, round trips] for the 1st, 2nd and 3rd request of a key in a window.
  const expected: Record<string, Record<'fixed' | 'sliding', Array<[number, number]>>> = {
    meta: {
      fixed: [
        [1, 1],
        [1, 1],
        [1, 1],
      ],
      sliding: [
        [2, 1],
        [2, 1],
        [2, 1],
      ],
    },
    // incr misses on the first hit of a window, then add creates the counter with its TTL.
    'classic through twemproxy (2 nodes)': {
      fixed: [
        [2, 2],
        [1, 1],
        [1, 1],
      ],
      sliding: [
        [3, 2],
        [2, 1],
        [2, 1],
      ],
    },
    // The two INCREMENTs of a sliding window leave in one write (memjs leaves Nagle's algorithm
    // on: written separately, the second one waited for the first one's reply).
    'binary (memjs) with SASL': {
      fixed: [
        [1, 1],
        [1, 1],
        [1, 1],
      ],
      sliding: [
        [2, 1],
        [2, 1],
        [2, 1],
      ],
    },
  }
  for (const transport of transports) {
    test(transport.name, async () => {
      const relay = await startRelay(transport.server())
      try {
        await withClient(transport.options(relay.address), async (client) => {
          for (const algorithm of ['fixed', 'sliding'] as const) {
            const limiter = new RateLimiter({
              client,
              prefix: uniquePrefix('rt'),
              windowMs: '1 hour',
              algorithm,
            })
            await limiter.consume('warm-up') // connects (and authenticates) first
            const observed: Array<[number, number]> = []
            for (let i = 0; i < 3; i++) {
              relay.clear()
              const commands = countCommands()
              const result = await limiter.consume('client')
              commands.stop()
              assert.equal(result.source, 'store')
              assert.equal(result.used, i + 1)
              observed.push([commands.events.filter((e) => e.client === client).length, relay.trips()])
            }
            assert.deepEqual(observed, expected[transport.name]![algorithm], algorithm)
          }
        })
      } finally {
        await relay.close()
      }
    })
  }
})

describe('configurations that cannot count are refused at construction', () => {
  test("a proxy tier with protocol 'meta' or 'binary': twemproxy forwards only classic commands", async () => {
    for (const protocol of ['meta', 'binary'] as const) {
      await withClient({ servers: proxy.address, protocol, proxy: true }, async (client) => {
        const refused = { code: 'ERR_MEMKIT_INVALID_OPTION', message: /protocol: 'classic', proxy: true/ }
        assert.throws(() => new RateLimiter({ client }), refused)
        assert.throws(() => rateLimit({ client }), refused)
        assert.throws(() => new ExpressRateLimitStore({ client }), refused)
        assert.throws(() => createFastifyRateLimitStore({ client }), refused)
      })
    }
  })

  test('keys that would exceed 250 bytes with the client keyPrefix, unless hashLongKeys', async () => {
    const keyPrefix = `app-${'x'.repeat(150)}:`
    const prefix = `rl-${'p'.repeat(70)}:`
    await withClient({ servers: meta.address, keyPrefix }, async (client) => {
      assert.throws(() => new RateLimiter({ client, prefix }), {
        code: 'ERR_MEMKIT_INVALID_OPTION',
        message: /over memcached's 250; shorten the prefixes or create the client with hashLongKeys: true/,
      })
    })
    await withClient({ servers: meta.address, keyPrefix, hashLongKeys: true }, async (client) => {
      const limiter = new RateLimiter({ client, prefix: `${prefix}${uniquePrefix('long')}`, limit: 1 })
      assert.deepEqual(
        [(await limiter.consume('k')).source, (await limiter.consume('k')).allowed],
        ['store', false],
      )
    })
  })

  test('wrong SASL credentials reject the request instead of letting it through', async () => {
    await withClient(
      { servers: sasl.address, protocol: 'binary', auth: { username: 'ann', password: 'wrong' } },
      async (client) => {
        const limiter = new RateLimiter({ client, prefix: uniquePrefix('auth'), onError: () => {} })
        await assert.rejects(limiter.consume('k'), { code: 'ERR_MEMKIT_AUTH' })
        assert.equal(limiter.metrics().totals.failOpen, 0)
      },
    )
  })
})
