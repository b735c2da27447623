// When memcached fails: each onStoreError policy with a real server killed or frozen, through
// both frameworks; bounded latency; the circuit breaker; recovery.
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import {
  captureWarnings,
  type MemcachedServer,
  startMemcached,
  startSilentServer,
  stopAll,
  waitUntil,
} from '@memkit/testing'
import {
  clientFor,
  countCommands,
  type Harness,
  harnesses,
  type SharedOptions,
  uniquePrefix,
} from './helpers.js'

after(stopAll)

const TIMEOUT = 250

interface Rig {
  server: MemcachedServer
  harness: Harness
  close(): Promise<void>
}

async function rig(make: (typeof harnesses)[number]['make'], options: SharedOptions): Promise<Rig> {
  const server = await startMemcached()
  // A short deadTimeout: the client probes a server it marked down soon after it is back.
  const client = clientFor(server.address, { timeout: TIMEOUT, deadTimeout: 300 })
  const harness = await make({
    client,
    prefix: uniquePrefix('fault'),
    windowMs: '1 hour',
    onError: () => {},
    ...options,
  })
  return {
    server,
    harness,
    async close() {
      server.resume()
      await harness.close()
      await client.close()
      await server.kill()
    },
  }
}

async function send(harness: Harness): Promise<{ status: number; headers: Record<string, string> }> {
  const reply = await harness.request('/')
  return { status: reply.status, headers: reply.headers }
}

/**
 * A test against a server that never answers would hang forever if the client's timeout did not
 * fire: the test runner's own timeout turns such a hang into a failure. How long a failure takes
 * is measured (and printed) by benchmarks/faults.bench.ts, not asserted here.
 */
const HANG_GUARD = { timeout: 60_000 }

/**
 * What a command that met an unresponsive server failed with: its own ERR_MEMKIT_TIMEOUT, or, when
 * it was queued behind a command that timed out first, the ERR_MEMKIT_CONNECTION of the reset that
 * timeout caused (caused by that timeout). Which of the two a queued command gets depends on
 * whether its own deadline had passed when the connection was reset, i.e. on timing.
 */
function timeoutOrReset(error: unknown): string | undefined {
  const { code, cause } = (error ?? {}) as { code?: string; cause?: { code?: string } }
  if (code === 'ERR_MEMKIT_CONNECTION' && cause?.code === 'ERR_MEMKIT_TIMEOUT') return 'reset by a timeout'
  return code
}

/** Resolves once the open circuit's cooldown is over (the next request may probe memcached). */
async function cooledDown(harness: Harness): Promise<void> {
  const { openUntil } = harness.metrics()[0]!.breaker
  assert.ok(openUntil !== undefined, 'the circuit is open')
  await waitUntil(() => Date.now() >= openUntil, { message: 'the breaker cooldown ends' })
}

for (const { framework, make } of harnesses) {
  describe(`${framework}: memcached failures`, () => {
    test("killed, onStoreError 'allow': requests pass without rate-limit headers; the breaker stops the attempts", async () => {
      const r = await rig(make, { limit: 2, breaker: { threshold: 3, cooldownMs: 60_000 } })
      try {
        assert.equal((await send(r.harness)).status, 200)
        await r.server.kill()
        const commands = countCommands()
        const replies = []
        for (let i = 0; i < 8; i++) replies.push(await send(r.harness))
        commands.stop()
        assert.deepEqual(
          replies.map((x) => x.status),
          [200, 200, 200, 200, 200, 200, 200, 200],
        )
        assert.equal(replies[0]!.headers['x-ratelimit-limit'], undefined)
        assert.equal(commands.count(), 3, 'three failures open the circuit; then memcached is left alone')
        const metrics = r.harness.metrics()[0]!
        assert.equal(metrics.breaker.state, 'open')
        assert.deepEqual([metrics.totals.storeErrors, metrics.totals.failOpen], [3, 8])
      } finally {
        await r.close()
      }
    })

    test("killed, onStoreError 'deny': 503 with Retry-After (the breaker's cooldown)", async () => {
      const r = await rig(make, {
        limit: 5,
        onStoreError: 'deny',
        breaker: { threshold: 2, cooldownMs: 2000 },
      })
      try {
        await r.server.kill()
        const replies = [await send(r.harness), await send(r.harness), await send(r.harness)]
        assert.deepEqual(
          replies.map((x) => x.status),
          [503, 503, 503],
        )
        assert.equal(replies[2]!.headers['retry-after'], '2')
      } finally {
        await r.close()
      }
    })

    test("killed, onStoreError 'local': limit / instances in process; memcached again once it is back", async () => {
      const r = await rig(make, {
        limit: 6,
        instances: 2,
        onStoreError: 'local',
        breaker: { threshold: 1, cooldownMs: 300 },
      })
      try {
        assert.equal((await send(r.harness)).headers['x-ratelimit-remaining'], '5')
        await r.server.kill()
        const local = []
        for (let i = 0; i < 4; i++) local.push(await send(r.harness))
        assert.deepEqual(
          local.map((x) => [x.status, x.headers['x-ratelimit-limit']]),
          [
            [200, '3'],
            [200, '3'],
            [200, '3'],
            [429, '3'],
          ],
        )
        await r.server.restart()
        await cooledDown(r.harness)
        // After the cooldown one probe goes to the (empty) restarted memcached and closes the
        // circuit; until the client sees the server up again (its deadTimeout), requests stay local.
        let back = await send(r.harness)
        await waitUntil(
          async () => {
            back = await send(r.harness)
            return back.headers['x-ratelimit-limit'] === '6'
          },
          { intervalMs: 50, message: 'memcached counts again' },
        )
        assert.equal(back.status, 200)
        assert.equal(back.headers['x-ratelimit-limit'], '6')
        assert.equal(r.harness.metrics()[0]!.breaker.state, 'closed')
      } finally {
        await r.close()
      }
    })

    test(
      'frozen (SIGSTOP): requests fail open on the client timeout, and the breaker then answers at once',
      HANG_GUARD,
      async () => {
        const r = await rig(make, { limit: 5, breaker: { threshold: 3, cooldownMs: 60_000 } })
        try {
          await send(r.harness)
          await r.server.freeze()
          const commands = countCommands()
          const concurrent = await Promise.all(Array.from({ length: 5 }, () => send(r.harness)))
          assert.deepEqual(
            concurrent.map((reply) => reply.status),
            [200, 200, 200, 200, 200],
          )
          const outcomes = commands.events.map((e) => timeoutOrReset(e.error))
          assert.ok(outcomes.includes('ERR_MEMKIT_TIMEOUT'), JSON.stringify(outcomes))
          assert.ok(
            outcomes.every((outcome) => outcome === 'ERR_MEMKIT_TIMEOUT' || outcome === 'reset by a timeout'),
            `the frozen server cost the client timeout, nothing else: ${JSON.stringify(outcomes)}`,
          )
          const seen = commands.count()
          const later = [await send(r.harness), await send(r.harness)]
          commands.stop()
          assert.deepEqual(
            later.map((x) => x.status),
            [200, 200],
          )
          assert.equal(commands.count(), seen, 'the open circuit sends nothing to the frozen server')
          assert.ok(
            commands.events.every((e) => e.error !== undefined),
            `a frozen server answered: ${JSON.stringify(commands.events.map((e) => e.error?.code ?? 'ok'))}`,
          )
        } finally {
          await r.close()
        }
      },
    )

    test('a server that accepts TCP and never answers does not stall requests', HANG_GUARD, async () => {
      const silent = await startSilentServer()
      const client = clientFor(silent.address, { timeout: TIMEOUT })
      const errors: unknown[] = []
      const harness = await make({
        client,
        prefix: uniquePrefix('silent'),
        limit: 5,
        onStoreError: 'deny',
        breaker: false,
        onError: (error) => errors.push(error),
      })
      try {
        const replies = await Promise.all(Array.from({ length: 3 }, () => send(harness)))
        assert.deepEqual(
          replies.map((reply) => reply.status),
          [503, 503, 503],
        )
        // The first command in the connection's queue times out; each one behind it either times
        // out too or fails with the reset that timeout caused (never, e.g., a connect error).
        const outcomes = errors.map(timeoutOrReset)
        assert.equal(outcomes.length, 3)
        assert.equal(outcomes[0], 'ERR_MEMKIT_TIMEOUT', JSON.stringify(outcomes))
        assert.ok(
          outcomes.every((outcome) => outcome === 'ERR_MEMKIT_TIMEOUT' || outcome === 'reset by a timeout'),
          JSON.stringify(outcomes),
        )
        assert.ok(silent.received().includes('ma '), 'the limiter did try the server')
      } finally {
        await harness.close()
        await client.close()
        await silent.close()
      }
    })

    test('half-open: after the cooldown exactly one request probes a still-dead memcached', async () => {
      const r = await rig(make, { limit: 5, breaker: { threshold: 1, cooldownMs: 300 } })
      try {
        await r.server.kill()
        await send(r.harness) // opens the circuit
        await cooledDown(r.harness)
        const commands = countCommands()
        const replies = await Promise.all(Array.from({ length: 6 }, () => send(r.harness)))
        commands.stop()
        assert.ok(replies.every((x) => x.status === 200))
        assert.equal(commands.count(), 1)
        assert.equal(r.harness.metrics()[0]!.breaker.state, 'open')
      } finally {
        await r.close()
      }
    })
  })
}

test('without onError, an outage produces one warning, not one per request', async () => {
  const server = await startMemcached()
  const client = clientFor(server.address, { timeout: TIMEOUT })
  const { make } = harnesses[0]!
  const harness = await make({ client, prefix: uniquePrefix('warn'), limit: 5, breaker: false })
  const warnings = captureWarnings('MEMKIT_RATE_LIMIT_STORE_ERROR')
  try {
    await server.kill()
    for (let i = 0; i < 5; i++) assert.equal((await harness.request('/')).status, 200)
    // process.emitWarning emits on the next tick: one turn of the event loop delivers them all.
    await new Promise(setImmediate)
    assert.equal(warnings.items.length, 1)
    assert.match(warnings.items[0]!.message, /onStoreError: 'allow'/)
  } finally {
    warnings.restore()
    await harness.close()
    await client.close()
  }
})
