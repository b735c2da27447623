// The public HTTP caching test suite's origin server, mounted in-app as the route handler behind
// the cache (Express middleware or Fastify plugin), so the suite exercises the real adapters.
import type { AddressInfo } from 'node:net'
import type { MemcachedClient } from '@memkit/client'
import express from 'express'
import Fastify from 'fastify'
import handleConfig from 'http-cache-tests/server/handle-config.mjs'
import handleState from 'http-cache-tests/server/handle-state.mjs'
import handleTest from 'http-cache-tests/server/handle-test.mjs'
import { configs, setConfig } from 'http-cache-tests/server/utils.mjs'
import { responseCache } from '../../src/express.js'
import fastifyResponseCache from '../../src/fastify.js'

type Value = string | number | string[]

/**
 * Stands in for Node's ServerResponse while the suite's origin handler runs; the framework then
 * replays what it recorded. `disconnect` becomes a thrown error: an origin failure.
 */
export class OriginCapture {
  statusCode = 200
  statusPhrase: string | undefined
  readonly fields = new Map<string, { name: string; value: Value }>()
  readonly chunks: Buffer[] = []
  ended = false
  disconnected = false
  readonly socket = {
    destroy: () => {
      this.disconnected = true
    },
  }

  setHeader(name: string, value: Value): this {
    this.fields.set(name.toLowerCase(), { name, value })
    return this
  }
  getHeader(name: string): Value | undefined {
    return this.fields.get(name.toLowerCase())?.value
  }
  hasHeader(name: string): boolean {
    return this.fields.has(name.toLowerCase())
  }
  removeHeader(name: string): void {
    this.fields.delete(name.toLowerCase())
  }
  getHeaders(): Record<string, Value> {
    return Object.fromEntries([...this.fields].map(([k, v]) => [k, v.value]))
  }
  writeHead(status: number, headers?: Record<string, Value>): this {
    this.statusCode = status
    for (const [k, v] of Object.entries(headers ?? {})) this.setHeader(k, v)
    return this
  }
  write(chunk: string | Buffer): boolean {
    this.chunks.push(Buffer.from(chunk))
    return true
  }
  end(chunk?: string | Buffer): this {
    if (chunk !== undefined) this.chunks.push(Buffer.from(chunk))
    this.ended = true
    return this
  }
  get body(): Buffer | undefined {
    return this.chunks.length ? Buffer.concat(this.chunks) : undefined
  }
  *headerLines(): Iterable<[string, string | string[]]> {
    for (const { name, value } of this.fields.values()) {
      yield [name, Array.isArray(value) ? value.map(String) : String(value)]
    }
  }
}

function testSegments(path: string): string[] {
  return path.split('?')[0]!.split('/').slice(2)
}

export interface RunningApp {
  base: string
  close(): Promise<void>
}

export async function startExpress(client: MemcachedClient): Promise<RunningApp> {
  const app = express()
  app.set('etag', false)
  app.set('x-powered-by', false)
  app.put('/config/:id', (req, res) => handleConfig([req.params.id], req, res))
  app.get('/state/:id', (req, res) => handleState([req.params.id], req, res))
  app.all('/test/*rest', responseCache({ client }), (req, res, next) => {
    const origin = new OriginCapture()
    handleTest(testSegments(req.originalUrl), req, origin)
    if (origin.disconnected) {
      next(new Error('origin closed the connection'))
      return
    }
    res.statusCode = origin.statusCode
    if (origin.statusPhrase) res.statusMessage = origin.statusPhrase
    for (const [name, value] of origin.headerLines()) res.setHeader(name, value)
    res.end(origin.body)
  })
  const server = app.listen(0, '127.0.0.1')
  await new Promise<void>((resolve) => server.once('listening', () => resolve()))
  const { port } = server.address() as AddressInfo
  return {
    base: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

export async function startFastify(client: MemcachedClient): Promise<RunningApp> {
  const app = Fastify()
  app.addHttpMethod('M-SEARCH', { hasBody: true })
  await app.register(fastifyResponseCache, { client })
  app.put('/config/:id', { config: { cache: false } }, async (request, reply) => {
    const { id } = request.params as { id: string }
    if (configs.has(id)) return reply.code(409).send(`Config already exists for ${id}`)
    setConfig(id, request.body)
    return reply.code(201).send('OK')
  })
  app.get('/state/:id', { config: { cache: false } }, (request, reply) => {
    const { id } = request.params as { id: string }
    const origin = new OriginCapture()
    handleState([id], request.raw, origin)
    reply.code(origin.statusCode)
    for (const [name, value] of origin.headerLines()) reply.header(name, value)
    return reply.send(origin.body ?? '')
  })
  app.route({
    method: ['GET', 'POST', 'PUT', 'DELETE', 'M-SEARCH'],
    url: '/test/*',
    handler: async (request, reply) => {
      const origin = new OriginCapture()
      handleTest(testSegments(request.url), request.raw, origin)
      if (origin.disconnected) throw new Error('origin closed the connection')
      reply.code(origin.statusCode > 599 ? 500 : origin.statusCode)
      if (origin.statusPhrase) reply.raw.statusMessage = origin.statusPhrase
      for (const [name, value] of origin.headerLines()) reply.header(name, value)
      return reply.send(origin.body ?? null)
    },
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  return { base: `http://127.0.0.1:${port}`, close: () => app.close() }
}
