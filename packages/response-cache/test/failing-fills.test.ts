// Fills that fail: a fill that never completes (the client aborts a streamed response, the
// handler's stream fails midway, the handler hangs) releases the requests waiting on it and the
// cross-process lease at once; a response cut short stays visibly cut short and is not stored;
// a 304 from a stored entry carries no body-describing fields. Both adapters, real listeners.
import assert from 'node:assert/strict'
import { type ClientRequest, request as httpRequest, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { PassThrough, Readable } from 'node:stream'
import { describe, test } from 'node:test'
import express from 'express'
import Fastify, { type FastifyInstance } from 'fastify'
import { responseCache } from '../src/express.js'
import fastifyResponseCache from '../src/fastify.js'
import { KeySpace, rawUrlKey } from '../src/key.js'
import { cacheTestbed, FRAMEWORKS, type Framework, until } from './harness.js'

const bed = await cacheTestbed('ff')
let n = 0

/** What the handler does on a call: answer, or start a streamed answer that does not complete. */
type Behaviour = 'answer' | 'stream-then-hang' | 'stream-then-fail' | 'hang' | 'short-stream' | 'short-buffer'

interface FillApp {
  port: number
  prefix: string
  calls(): number
  /** Resolves when the handler call numbered `call` has started (and written what it writes first). */
  started(call: number): Promise<void>
  close(): Promise<void>
}

/**
 * An app whose /fill route behaves per call as `script` says. A lease that is not released would
 * make the next request wait `lockWait` (10 minutes here) and live `lockTtl` (10 minutes): only a
 * release lets the tests below finish.
 */
async function fillApp(framework: Framework, script: Behaviour[]): Promise<FillApp> {
  const prefix = `ff${++n}:`
  const options = { client: bed.client, keyPrefix: prefix, lockWait: 600_000, lockTtl: 600 }
  let calls = 0
  const starts = new Map<number, () => void>()
  const startedPromises = new Map<number, Promise<void>>()
  const startedOf = (call: number) => {
    let p = startedPromises.get(call)
    if (!p) {
      p = new Promise<void>((resolve) => starts.set(call, resolve))
      startedPromises.set(call, p)
    }
    return p
  }
  const begin = () => {
    const call = ++calls
    startedOf(call)
    return { call, behaviour: script[call - 1] ?? 'answer', started: () => starts.get(call)!() }
  }
  const headers = { 'cache-control': 'max-age=60', 'content-type': 'text/plain' }
  if (framework === 'express') {
    const app = express()
    app.get('/fill', responseCache(options), (_req, res) => {
      const { call, behaviour, started } = begin()
      res.set(headers)
      if (behaviour === 'answer') {
        started()
        res.send(`answer ${call}`)
      } else if (behaviour === 'hang') {
        started()
      } else if (behaviour === 'short-buffer' || behaviour === 'short-stream') {
        res.setHeader('content-length', '10')
        res.end('12345')
        started()
      } else {
        const body = new PassThrough()
        body.pipe(res)
        body.write('part ')
        setImmediate(() => {
          started()
          // A failing source: the handler gives up on the response, as stream.pipeline would.
          if (behaviour === 'stream-then-fail') res.destroy(new Error('source failed'))
        })
      }
    })
    const server: Server = app.listen(0, '127.0.0.1')
    await new Promise<void>((resolve) => server.once('listening', () => resolve()))
    return {
      port: (server.address() as AddressInfo).port,
      prefix,
      calls: () => calls,
      started: startedOf,
      close: () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections()
          server.close(() => resolve())
        }),
    }
  }
  const app: FastifyInstance = Fastify()
  await app.register(fastifyResponseCache, options)
  app.get('/fill', async (_request, reply) => {
    const { call, behaviour, started } = begin()
    reply.headers(headers)
    if (behaviour === 'answer') {
      started()
      return `answer ${call}`
    }
    if (behaviour === 'hang') {
      started()
      return new Promise(() => {})
    }
    if (behaviour === 'short-buffer') {
      started()
      return reply.header('content-length', '10').send('12345')
    }
    if (behaviour === 'short-stream') {
      started()
      return reply.header('content-length', '10').send(Readable.from([Buffer.from('12345')]))
    }
    const body = new PassThrough()
    body.write('part ')
    setImmediate(() => {
      started()
      if (behaviour === 'stream-then-fail') body.destroy(new Error('source failed'))
    })
    return reply.send(body)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    port: (app.server.address() as AddressInfo).port,
    prefix,
    calls: () => calls,
    started: startedOf,
    close: () => app.close(),
  }
}

interface Received {
  status: number
  headers: IncomingMessage['headers']
  body: string
  /** The response arrived whole (its framing was satisfied). */
  complete: boolean
}

function get(
  port: number,
  extra: Record<string, string> = {},
): { req: ClientRequest; done: Promise<Received> } {
  let req!: ClientRequest
  const done = new Promise<Received>((resolve, reject) => {
    req = httpRequest(
      { host: '127.0.0.1', port, path: '/fill', headers: { host: 'fill.example', ...extra }, agent: false },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          body += chunk
        })
        const finish = () =>
          resolve({ status: res.statusCode!, headers: res.headers, body, complete: res.complete })
        res.on('end', finish)
        res.on('close', finish)
        res.on('error', finish)
      },
    )
    req.on('error', reject)
    req.end()
  })
  return { req, done }
}

/** The cross-process lease of /fill for fill.example (see stampede.ts). */
function leaseKey(prefix: string): string {
  const keys = new KeySpace(prefix)
  return keys.lease(keys.url(rawUrlKey('http://fill.example', '/fill')))
}

for (const framework of FRAMEWORKS) {
  describe(`fills that fail (${framework})`, () => {
    for (const behaviour of ['stream-then-hang', 'hang', 'stream-then-fail'] as const) {
      const what = {
        'stream-then-hang': 'the client aborts a streamed fill',
        hang: 'the handler hangs and the client gives up',
        'stream-then-fail': "the handler's stream fails midway",
      }[behaviour]
      test(`${what}: the lease goes at once, the next request fills without waiting, nothing half-done is stored`, {
        timeout: 30_000,
      }, async () => {
        const app = await fillApp(framework, [behaviour, 'answer'])
        try {
          const first = get(app.port)
          first.done.catch(() => {})
          await app.started(1)
          assert.notEqual(await bed.client.get(leaseKey(app.prefix)), undefined, 'the fill holds the lease')
          if (behaviour !== 'stream-then-fail') first.req.destroy()
          // Released on the abort or the failure, not when the lease expires (lockTtl: 10 minutes).
          await until(async () => (await bed.client.get(leaseKey(app.prefix))) === undefined, 10_000)
          // A request in this process must not wait on the abandoned fill either (lockWait: 10 minutes).
          const second = await get(app.port).done
          assert.equal(second.body, 'answer 2')
          assert.equal(second.headers['x-cache'], 'MISS')
          const third = await get(app.port).done
          assert.equal(third.headers['x-cache'], 'HIT')
          assert.equal(third.body, 'answer 2')
          assert.equal(app.calls(), 2)
        } finally {
          await app.close()
        }
      })
    }

    test('a response shorter than its Content-Length stays cut short for the client and is not stored', async () => {
      const app = await fillApp(
        framework,
        framework === 'express' ? ['short-buffer', 'short-buffer'] : ['short-stream', 'short-stream'],
      )
      try {
        const cut = await get(app.port).done
        assert.equal(cut.headers['content-length'], '10', 'the declared length, not the body')
        assert.equal(cut.body, '12345')
        assert.equal(cut.complete, false, 'the connection closed before the declared length')
        assert.match(cut.headers['cache-status'] as string, /detail=incomplete/)
        const again = await get(app.port).done
        assert.equal(again.headers['x-cache'], 'MISS')
        assert.equal(again.complete, false)
        assert.equal(app.calls(), 2)
      } finally {
        await app.close()
      }
    })

    if (framework === 'fastify') {
      test('Fastify: a buffered payload with a wrong Content-Length is framed by Fastify, as without the cache', async () => {
        const app = await fillApp(framework, ['short-buffer', 'short-buffer'])
        try {
          const first = await get(app.port).done
          assert.equal(first.complete, true)
          assert.equal(first.body, '12345')
          assert.equal(first.headers['content-length'], '5')
          assert.equal((await get(app.port).done).headers['x-cache'], 'HIT')
          assert.equal(app.calls(), 1)
        } finally {
          await app.close()
        }
      })
    }

    test('a 304 answered from a stored entry carries no body-describing fields (RFC 9110 §15.4.5)', async () => {
      const app = await fillApp(framework, ['answer'])
      try {
        const stored = await get(app.port).done
        const etag = stored.headers.etag as string | undefined
        const validator: Record<string, string> = etag
          ? { 'if-none-match': etag }
          : { 'if-modified-since': stored.headers.date as string }
        assert.ok(stored.headers['content-type'], 'the stored response describes its body')
        const notModified = await get(app.port, validator).done
        assert.equal(notModified.status, 304)
        assert.equal(notModified.headers['x-cache'], 'HIT')
        assert.equal(notModified.body, '')
        // Representation metadata a 304 must not invent (Fastify once sent a JSON type and a length of 4).
        const describing = [
          'content-type',
          'content-length',
          'content-encoding',
          'content-language',
          'content-range',
          'transfer-encoding',
        ].filter((name) => name in notModified.headers)
        assert.deepEqual(describing, [])
        assert.equal(notModified.headers['cache-control'], 'max-age=60')
      } finally {
        await app.close()
      }
    })
  })
}
