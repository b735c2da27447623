// A blocked event loop is not a failed memcached. When the application blocks the loop (a large
// JSON.parse, a synchronous crypto call, a GC pause) for longer than `timeout`, replies that
// arrived meanwhile are waiting in the socket: no operation may fail, no server may be marked
// down. Healthy servers only; the loop is blocked for twice the timeout.
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { startMemcachedCluster, stopAll } from '@memkit/testing'
import { createClient, type MemcachedClient } from '../src/index.js'

after(stopAll)

// Generous, so that a loaded test machine does not make memcached itself miss it.
const TIMEOUT = 500

/** Keeps the thread busy, as a synchronous task in the application would. */
function blockFor(ms: number): void {
  const end = performance.now() + ms
  while (performance.now() < end) {
    // spin
  }
}

/** Wires a client's server:down events and 'error' events into one list of what went wrong. */
function watch(client: MemcachedClient): string[] {
  const trouble: string[] = []
  client.on('server:down', ({ server, error }) => trouble.push(`down ${server}: ${error.code}`))
  client.on('error', (error) => trouble.push(`error ${error.message}`))
  return trouble
}

const transports = [
  { name: 'meta, three servers', servers: 3, protocol: 'meta' },
  { name: 'classic', servers: 1, protocol: 'classic' },
  { name: 'binary (memjs)', servers: 1, protocol: 'binary' },
] as const

for (const transport of transports) {
  describe(`a blocked event loop, ${transport.name}`, () => {
    test('requests in flight while the loop is blocked for 2× timeout all succeed; no server is marked down', async () => {
      const servers = await startMemcachedCluster(transport.servers)
      const client = createClient({
        servers: servers.map((s) => s.address),
        protocol: transport.protocol,
        timeout: TIMEOUT,
        failureLimit: 1,
      })
      const trouble = watch(client)
      try {
        const keys = Array.from({ length: 300 }, (_, i) => `stall:${i}`)
        await Promise.all(keys.map((k) => client.set(k, k)))
        for (let round = 0; round < 2; round++) {
          // Sent and answered while the loop is blocked: the replies wait in the socket.
          const reads = keys.map((k) => client.get(k))
          const counts = keys.slice(0, 50).map((k) => client.incr(`${k}:n`, 1, { initial: 1 }))
          await new Promise((resolve) => setImmediate(resolve)) // written
          blockFor(TIMEOUT * 2)
          assert.deepEqual(await Promise.all(reads), keys)
          assert.ok((await Promise.all(counts)).every((n) => n === round + 1))
          // Issued just before the block, written after it: the timeout starts at the write.
          const late = keys.slice(0, 100).map((k) => client.get(k))
          blockFor(TIMEOUT * 2)
          assert.deepEqual(await Promise.all(late), keys.slice(0, 100))
        }
        assert.deepEqual(trouble, [])
      } finally {
        await client.close()
      }
    })
  })
}

describe('a blocked event loop does not hide a real stall', () => {
  test('a frozen server still times out (typed), with or without a blocked loop', async () => {
    const [server] = await startMemcachedCluster(1)
    const client = createClient({ servers: [server!.address], timeout: TIMEOUT, failureLimit: 1 })
    try {
      await client.set('frozen', 1)
      await server!.freeze()
      const pending = client.get('frozen')
      await new Promise((resolve) => setImmediate(resolve))
      blockFor(TIMEOUT * 2)
      await assert.rejects(pending, { code: 'ERR_MEMKIT_TIMEOUT' })
    } finally {
      server!.resume()
      await client.close()
    }
  })
})
