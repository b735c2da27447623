// Stampede protection: concurrent misses of one key share one handler call in a process, and a
// lease taken with memcached `add` makes other processes wait for it.
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { get as httpGet } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createInterface } from 'node:readline'
import { describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { createClient, type MemcachedClient } from '@memkit/client'
import { useMemcached } from '@memkit/testing'
import Fastify from 'fastify'
import fastifyResponseCache from '../src/fastify.js'
import { FRAMEWORKS, makeApp } from './harness.js'

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
      const app = await makeApp(framework, { client, keyPrefix: `sp-${framework}:` }, [
        {
          path: '/cold',
          handler: (_req, call) => ({
            headers: { 'cache-control': 'max-age=60' },
            body: `call ${call}`,
            delayMs: 200,
          }),
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
      const app = await makeApp(framework, { client, keyPrefix: `sp-private-${framework}:` }, [
        {
          path: '/private',
          handler: (_req, call) => ({
            headers: { 'cache-control': 'private, max-age=60' },
            body: `for ${call}`,
            delayMs: 100,
          }),
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

test('Fastify: a hijacked reply (never cached) releases the requests waiting on it', async () => {
  const app = Fastify()
  await app.register(fastifyResponseCache, { client, keyPrefix: 'sp-hijack:', lockWait: 20_000 })
  let calls = 0
  app.get('/raw', async (_request, reply) => {
    calls++
    reply.hijack()
    await sleep(100)
    reply.raw.writeHead(200, { 'cache-control': 'max-age=60' })
    reply.raw.end('raw')
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  try {
    const { port } = app.server.address() as AddressInfo
    const started = Date.now()
    const bodies = await Promise.all(
      Array.from({ length: 5 }, async () => (await fetch(`http://127.0.0.1:${port}/raw`)).text()),
    )
    assert.deepEqual(bodies, ['raw', 'raw', 'raw', 'raw', 'raw'])
    assert.equal(calls, 5)
    // Bound, not speed: the followers did not sit out lockWait (20 s) or the lease (10 s).
    assert.ok(Date.now() - started < 5000)
  } finally {
    await app.close()
  }
})

describe('across instances (one memcached, separate caches, as separate processes have)', () => {
  /** Two apps; the Express one's handler blocks on `gate` from its second call on. */
  async function pair(prefix: string, lockWait: number, firstHeaders: Record<string, string>) {
    let open!: () => void
    const gate = new Promise<void>((resolve) => {
      open = resolve
    })
    const make = (framework: 'express' | 'fastify') => {
      const own = createClient({ servers: server.address })
      extraClients.push(own)
      return makeApp(framework, { client: own, keyPrefix: prefix, lockWait }, [
        {
          path: '/slow',
          handler: async (_req, call) => {
            if (call === 1 && framework === 'express') return { headers: firstHeaders, body: 'first' }
            if (framework === 'express') await gate
            return { headers: { 'cache-control': 'max-age=60' }, body: `${framework} ${call}` }
          },
        },
      ])
    }
    return { a: await make('express'), b: await make('fastify'), open }
  }
  const host = { host: 'lease.example' }

  test('while another instance fills a stale entry, the stale entry is served at once', async () => {
    const stale = {
      date: new Date(Date.now() - 10_000).toUTCString(),
      'cache-control': 'max-age=5',
      etag: '"s"',
    }
    const { a, b, open } = await pair('sp-lease1:', 3000, stale)
    try {
      await a.request('/slow', { headers: host })
      const filling = a.request('/slow', { headers: host }) // takes the lease, waits on the gate
      await sleep(200)
      const served = await b.request('/slow', { headers: host })
      assert.equal(served.headers['x-cache'], 'STALE')
      assert.match(served.headers['cache-status']!, /detail=updating$/)
      assert.equal(served.text, 'first')
      open()
      assert.equal((await filling).text, 'express 2')
      assert.equal(b.calls(), 0)
    } finally {
      open()
      await a.close()
      await b.close()
    }
  })

  test('without a stale entry the others wait for the fill, at most lockWait', async () => {
    const { a, b, open } = await pair('sp-lease2:', 400, {})
    try {
      // a's first call returns an uncacheable response; its second call holds the lease.
      await a.request('/slow', { headers: host })
      const filling = a.request('/slow', { headers: host })
      await sleep(100)
      const started = Date.now()
      const waited = await b.request('/slow', { headers: host })
      open()
      assert.equal(waited.text, 'fastify 1', 'after lockWait the waiting instance runs its own handler')
      assert.ok(Date.now() - started >= 300, 'it waited for the lease first')
      assert.equal((await filling).text, 'express 2')
    } finally {
      open()
      await a.close()
      await b.close()
    }
  })
})

function getVia(
  port: number,
  path: string,
  host: string,
): Promise<{ status: number; body: string; xcache: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: '127.0.0.1', port, path, headers: { host }, timeout: 20_000 }, (res) => {
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
    req.on('timeout', () => req.destroy(new Error('no answer in 20 s')))
    req.on('error', reject)
  })
}

describe('across processes', () => {
  test('200 concurrent requests spread over 4 worker processes (2 Express, 2 Fastify) call the handler once', async () => {
    const worker = fileURLToPath(new URL('./fixtures/stampede-worker.ts', import.meta.url))
    const ports = await Promise.all(
      ['express', 'fastify', 'express', 'fastify'].map(
        (framework) =>
          new Promise<number>((resolve, reject) => {
            const child = spawn(
              process.execPath,
              ['--import', 'tsx', worker, framework, server.address, 'sp-x:'],
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
    // As a load balancer in front of the workers sends them: one public Host, whatever the port.
    const responses = await Promise.all(
      Array.from({ length: 200 }, (_, i) => getVia(ports[i % 4]!, '/cold', 'cold.example')),
    )
    const calls = await Promise.all(
      ports.map(
        async (port) =>
          ((await (await fetch(`http://127.0.0.1:${port}/calls`)).json()) as { calls: number }).calls,
      ),
    )
    assert.equal(
      calls.reduce((a, b) => a + b, 0),
      1,
      `handler calls per process: ${calls.join(', ')}`,
    )
    assert.ok(responses.every((r) => r.status === 200))
    assert.equal(new Set(responses.map((r) => r.body)).size, 1, 'every client got the one computed response')
    assert.equal(responses.filter((r) => r.xcache === 'MISS').length, 1)
  })
})
