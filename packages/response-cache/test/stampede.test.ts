// Stampede protection: concurrent misses of one key share one handler call in a process, and a
// lease taken with memcached `add` makes other processes wait for it.
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import type { AddressInfo } from 'node:net'
import { createInterface } from 'node:readline'
import { after, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { createClient, type MemcachedClient } from '@memkit/client'
import { type MemcachedServer, startMemcached, stopAll } from '@memkit/testing'
import Fastify from 'fastify'
import fastifyResponseCache from '../src/fastify.js'
import { FRAMEWORKS, makeApp } from './harness.js'

let server: MemcachedServer
let client: MemcachedClient
const children: ChildProcess[] = []

before(async () => {
  server = await startMemcached()
  client = createClient({ servers: server.address })
})
after(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  await client.close()
  await stopAll()
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
    const responses = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const res = await fetch(`http://127.0.0.1:${ports[i % 4]}/cold`, {
          signal: AbortSignal.timeout(20_000),
        })
        return { status: res.status, body: await res.text(), xcache: res.headers.get('x-cache') }
      }),
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
