// Stampede protection: concurrent misses of one key share one handler call in a process, and a
// lease taken with memcached `add` makes other processes wait for it.
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { get as httpGet } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createInterface } from 'node:readline'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { createClient, type MemcachedClient } from '@memkit/client'
import { useMemcached, waitUntil } from '@memkit/testing'
import Fastify from 'fastify'
import fastifyResponseCache from '../src/fastify.js'
import { KeySpace, originOf, rawUrlKey } from '../src/key.js'
import { FRAMEWORKS, makeApp, type TestApp } from './harness.js'

const { server, client, closeAfter } = await useMemcached({ createClient })
const children: ChildProcess[] = []
const extraClients: MemcachedClient[] = []
closeAfter({ close: () => Promise.all(extraClients.map((c) => c.close())) })
closeAfter({
  close() {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  },
})

for (const framework of FRAMEWORKS) {
  describe(`in one process (${framework})`, () => {
    test('30 concurrent misses of one key call the handler once and all get its response', async () => {
      const app: TestApp = await makeApp(framework, { client, keyPrefix: `sp-${framework}:` }, [
        {
          path: '/cold',
          handler: async (_req, call) => {
            // The fill goes on once every request has arrived (they wait on it, or find it stored).
            await waitUntil(() => app.arrivals('/cold') === 30, { message: '30 requests arrive' })
            return { headers: { 'cache-control': 'max-age=60' }, body: `call ${call}` }
          },
        },
      ])
      try {
        const responses = await Promise.all(Array.from({ length: 30 }, () => app.request('/cold')))
        assert.equal(app.calls('/cold'), 1)
        for (const res of responses) {
          assert.equal(res.status, 200)
          assert.equal(res.text, 'call 1')
        }
        const kinds = responses.map((r) => r.headers['x-cache'])
        assert.equal(kinds.filter((k) => k === 'MISS').length, 1)
        assert.equal(kinds.filter((k) => k === 'HIT').length, 29)
        assert.equal(app.metrics().total.collapsed, 29)
      } finally {
        await app.close()
      }
    })

    test('responses that may not be shared are not: each concurrent request gets its own handler call', async () => {
      const app: TestApp = await makeApp(framework, { client, keyPrefix: `sp-private-${framework}:` }, [
        {
          path: '/private',
          handler: async (_req, call) => {
            if (call === 1)
              await waitUntil(() => app.arrivals('/private') === 8, { message: '8 requests arrive' })
            return { headers: { 'cache-control': 'private, max-age=60' }, body: `for ${call}` }
          },
        },
      ])
      try {
        const responses = await Promise.all(Array.from({ length: 8 }, () => app.request('/private')))
        assert.equal(app.calls('/private'), 8)
        assert.equal(new Set(responses.map((r) => r.text)).size, 8)
      } finally {
        await app.close()
      }
    })
  })
}

/**
 * Waits that the code under test must end by an event (a release) rather than by its own limits
 * (lockWait, lockTtl: set far beyond this) fail through the test runner's timeout if they do not.
 */
const HANG_GUARD = { timeout: 60_000 }

test('Fastify: a hijacked reply (never cached) releases the requests waiting on it', HANG_GUARD, async () => {
  const app = Fastify()
  let arrived = 0
  app.addHook('onRequest', async () => {
    arrived++
  })
  await app.register(fastifyResponseCache, {
    client,
    keyPrefix: 'sp-hijack:',
    lockWait: 600_000,
    lockTtl: 600,
  })
  let calls = 0
  app.get('/raw', async (_request, reply) => {
    calls++
    reply.hijack()
    // The first call answers once the other four requests have arrived and wait on its fill.
    await waitUntil(() => arrived === 5, { message: '5 requests arrive' })
    reply.raw.writeHead(200, { 'cache-control': 'max-age=60' })
    reply.raw.end('raw')
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  try {
    const { port } = app.server.address() as AddressInfo
    const bodies = await Promise.all(
      Array.from({ length: 5 }, async () => (await fetch(`http://127.0.0.1:${port}/raw`)).text()),
    )
    assert.deepEqual(bodies, ['raw', 'raw', 'raw', 'raw', 'raw'])
    assert.equal(calls, 5)
  } finally {
    await app.close()
  }
})

describe('across instances (one memcached, separate caches, as separate processes have)', () => {
  /** The key of the lease an instance holds while it fills /slow (no Vary: the URL's key). */
  const leaseOf = (prefix: string) => {
    const keys = new KeySpace(prefix)
    return keys.lease(keys.url(rawUrlKey(originOf('http', 'lease.example', ''), '/slow')))
  }
  const leaseHeld = async (prefix: string) => (await client.get(leaseOf(prefix))) !== undefined

  /**
   * Two apps; the Express one's handler blocks on `gate` from its second call on, and resolves
   * `filling` as that call starts (it runs only once its request holds the lease). `events`
   * records, in order, the Fastify app's reads of the lease key and its handler calls.
   */
  async function pair(prefix: string, lockWait: number, firstHeaders: Record<string, string>) {
    let open!: () => void
    const gate = new Promise<void>((resolve) => {
      open = resolve
    })
    let started!: () => void
    const filling = new Promise<void>((resolve) => {
      started = resolve
    })
    const events: string[] = []
    const make = (framework: 'express' | 'fastify') => {
      const own = createClient({ servers: server.address })
      extraClients.push(own)
      const lease = leaseOf(prefix)
      const watched =
        framework === 'express'
          ? own
          : observed(own, (method, args) => {
              if (method === 'get' && args[0] === lease) events.push('lease read')
            })
      return makeApp(framework, { client: watched, keyPrefix: prefix, lockWait }, [
        {
          path: '/slow',
          handler: async (_req, call) => {
            if (framework === 'fastify') events.push('handler')
            if (call === 1 && framework === 'express') return { headers: firstHeaders, body: 'first' }
            if (framework === 'express') {
              started()
              await gate
            }
            return { headers: { 'cache-control': 'max-age=60' }, body: `${framework} ${call}` }
          },
        },
      ])
    }
    return { a: await make('express'), b: await make('fastify'), open, filling, events }
  }
  const host = { host: 'lease.example' }

  test(
    'while another instance fills a stale entry, the stale entry is served at once',
    HANG_GUARD,
    async () => {
      const stale = {
        date: new Date(Date.now() - 10_000).toUTCString(),
        'cache-control': 'max-age=5',
        etag: '"s"',
      }
      const { a, b, open, filling } = await pair('sp-lease1:', 600_000, stale)
      try {
        await a.request('/slow', { headers: host })
        const filled = a.request('/slow', { headers: host }) // takes the lease, waits on the gate
        await filling
        const served = await b.request('/slow', { headers: host })
        assert.equal(served.headers['x-cache'], 'STALE')
        assert.match(served.headers['cache-status']!, /detail=updating$/)
        assert.equal(served.text, 'first')
        open()
        assert.equal((await filled).text, 'express 2')
        assert.equal(b.calls(), 0)
      } finally {
        open()
        await a.close()
        await b.close()
      }
    },
  )

  test('without a stale entry the others wait for the fill, at most lockWait', async () => {
    const { a, b, open, filling, events } = await pair('sp-lease2:', 400, {})
    try {
      // a's first call returns an uncacheable response; its second call holds the lease.
      await a.request('/slow', { headers: host })
      const filled = a.request('/slow', { headers: host })
      await filling
      const waited = await b.request('/slow', { headers: host })
      assert.equal(waited.text, 'fastify 1', 'after lockWait the waiting instance runs its own handler')
      assert.equal(waited.headers['x-cache'], 'MISS')
      // It polled the lease before giving up on it, and gave up while the lease was still held.
      assert.equal(events[0], 'lease read', `b's events: ${events.join(', ')}`)
      assert.equal(events.at(-1), 'handler')
      assert.equal(events.filter((e) => e === 'handler').length, 1)
      assert.ok(await leaseHeld('sp-lease2:'), 'a still fills')
      open()
      assert.equal((await filled).text, 'express 2')
    } finally {
      open()
      await a.close()
      await b.close()
    }
  })
})

/** The client, with `onCall(method, args)` called before each of its methods runs. */
function observed(
  target: MemcachedClient,
  onCall: (method: string, args: unknown[]) => void,
): MemcachedClient {
  return new Proxy(target, {
    get(object, property) {
      const value = Reflect.get(object, property, object) as unknown
      if (typeof value !== 'function') return value
      return (...args: unknown[]) => {
        onCall(String(property), args)
        return (value as (...a: unknown[]) => unknown).apply(object, args)
      }
    },
  })
}

function getVia(
  port: number,
  path: string,
  host: string,
): Promise<{ status: number; body: string; xcache: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: '127.0.0.1', port, path, headers: { host }, timeout: 60_000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        body += chunk
      })
      res.on('end', () =>
        resolve({ status: res.statusCode!, body, xcache: res.headers['x-cache'] as string | undefined }),
      )
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error('no answer in 60 s')))
    req.on('error', reject)
  })
}

describe('across processes', () => {
  test(
    '200 concurrent requests spread over 4 worker processes (2 Express, 2 Fastify) call the handler once',
    HANG_GUARD,
    async () => {
      const worker = fileURLToPath(new URL('./fixtures/stampede-worker.ts', import.meta.url))
      const prefix = 'sp-x:'
      const ports = await Promise.all(
        ['express', 'fastify', 'express', 'fastify'].map(
          (framework) =>
            new Promise<number>((resolve, reject) => {
              const child = spawn(
                process.execPath,
                ['--import', 'tsx', worker, framework, server.address, prefix],
                {
                  stdio: ['ignore', 'pipe', 'inherit'],
                },
              )
              children.push(child)
              child.once('error', reject)
              child.once('exit', (code) => reject(new Error(`worker exited with ${code}`)))
              createInterface({ input: child.stdout! }).once('line', (line) => {
                resolve((JSON.parse(line) as { port: number }).port)
              })
            }),
        ),
      )
      const state = () =>
        Promise.all(
          ports.map(
            async (port) =>
              (await (await fetch(`http://127.0.0.1:${port}/state`)).json()) as {
                arrived: number
                calls: number
              },
          ),
        )
      const keys = new KeySpace(prefix)
      const lease = keys.lease(keys.url(rawUrlKey(originOf('http', 'cold.example', ''), '/cold')))
      // As a load balancer in front of the workers sends them: one public Host, whatever the port.
      const pending = Promise.all(
        Array.from({ length: 200 }, (_, i) => getVia(ports[i % 4]!, '/cold', 'cold.example')),
      )
      // The one fill (its handler waits for /open) holds the lease while every request arrives; the
      // workers wait for it far beyond this test's timeout (lockWait, lockTtl), so none gives up.
      await waitUntil(
        async () =>
          (await state()).reduce((sum, s) => sum + s.arrived, 0) === 200 &&
          (await client.get(lease)) !== undefined,
        { timeoutMs: 30_000, message: '200 requests arrive while one process holds the lease' },
      )
      await Promise.all(ports.map((port) => fetch(`http://127.0.0.1:${port}/open`).then((r) => r.text())))
      const responses = await pending
      const calls = (await state()).map((s) => s.calls)
      assert.equal(
        calls.reduce((a, b) => a + b, 0),
        1,
        `handler calls per process: ${calls.join(', ')}`,
      )
      assert.ok(
        responses.every((r) => r.status === 200),
        'responses.every((r) => r.status === 200)',
      )
      assert.equal(
        new Set(responses.map((r) => r.body)).size,
        1,
        'every client got the one computed response',
      )
      assert.equal(responses.filter((r) => r.xcache === 'MISS').length, 1)
    },
  )
})
