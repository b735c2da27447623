// When memcached fails: each onStoreError policy with a real server killed or frozen, through
// both frameworks; bounded latency; the circuit breaker; recovery.
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { after, describe, test } from 'node:test'
import {
  captureWarnings,
  type MemcachedServer,
  startMemcached,
  startSilentServer,
  stopAll,
} from '@memkit/testing'
import {
  clientFor,
  countCommands,
  type Harness,
  harnesses,
  type SharedOptions,
  sleep,
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

/** SIGSTOP is asynchronous: wait until the kernel reports the process stopped. */
async function freeze(server: MemcachedServer): Promise<void> {
  await server.freeze()
  for (let i = 0; i < 100; i++) {
    const stat = await readFile(`/proc/${server.pid}/stat`, 'utf8').catch(() => '')
    if (/^\d+ \(.*\) T /.test(stat)) return
    await sleep(10)
  }
  throw new Error('memcached did not stop')
}

async function timed(
  harness: Harness,
): Promise<{ status: number; ms: number; headers: Record<string, string> }> {
  const start = performance.now()
  const reply = await harness.request('/')
  return { status: reply.status, ms: performance.now() - start, headers: reply.headers }
}

for (const { framework, make } of harnesses) {
  describe(`${framework}: memcached failures`, () => {
    test("killed, onStoreError 'allow': requests pass without rate-limit headers; the breaker stops the attempts", async () => {
      const r = await rig(make, { limit: 2, breaker: { threshold: 3, cooldownMs: 60_000 } })
      try {
        assert.equal((await timed(r.harness)).status, 200)
        await r.server.kill()
        const commands = countCommands()
        const replies = []
        for (let i = 0; i < 8; i++) replies.push(await timed(r.harness))
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
        const replies = [await timed(r.harness), await timed(r.harness), await timed(r.harness)]
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
        assert.equal((await timed(r.harness)).headers['x-ratelimit-remaining'], '5')
        await r.server.kill()
        const local = []
        for (let i = 0; i < 4; i++) local.push(await timed(r.harness))
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
        await sleep(400)
        // After the cooldown one probe goes to the (empty) restarted memcached and closes the circuit.
        let back = await timed(r.harness)
        for (let i = 0; i < 20 && back.headers['x-ratelimit-limit'] !== '6'; i++) {
          await sleep(300)
          back = await timed(r.harness)
        }
        assert.equal(back.status, 200)
        assert.equal(back.headers['x-ratelimit-limit'], '6')
        assert.equal(r.harness.metrics()[0]!.breaker.state, 'closed')
      } finally {
        await r.close()
      }
    })

    test('frozen (SIGSTOP): no request waits beyond the client timeout, and the breaker then answers at once', async () => {
      const r = await rig(make, { limit: 5, breaker: { threshold: 3, cooldownMs: 60_000 } })
      try {
        await timed(r.harness)
        await freeze(r.server)
        const commands = countCommands()
        const concurrent = await Promise.all(Array.from({ length: 5 }, () => timed(r.harness)))
        for (const reply of concurrent) {
          assert.equal(reply.status, 200)
          assert.ok(
            reply.ms < 3 * TIMEOUT,
            `took ${reply.ms.toFixed(0)} ms with a ${TIMEOUT} ms client timeout`,
          )
        }
        const seen = commands.count()
        const later = [await timed(r.harness), await timed(r.harness)]
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
    })

    test('a server that accepts TCP and never answers does not stall requests', async () => {
      const silent = await startSilentServer()
      const client = clientFor(silent.address, { timeout: TIMEOUT })
      const harness = await make({
        client,
        prefix: uniquePrefix('silent'),
        limit: 5,
        onStoreError: 'deny',
        breaker: false,
        onError: () => {},
      })
      try {
        const replies = await Promise.all(Array.from({ length: 3 }, () => timed(harness)))
        for (const reply of replies) {
          assert.equal(reply.status, 503)
          assert.ok(reply.ms < 3 * TIMEOUT, `took ${reply.ms.toFixed(0)} ms`)
        }
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
        await timed(r.harness) // opens the circuit
        await sleep(350)
        const commands = countCommands()
        const replies = await Promise.all(Array.from({ length: 6 }, () => timed(r.harness)))
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
    await sleep(10)
    assert.equal(warnings.items.length, 1)
    assert.match(warnings.items[0]!.message, /onStoreError: 'allow'/)
  } finally {
    warnings.restore()
    await harness.close()
    await client.close()
  }
})
