import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { connect, createServer, type Socket } from 'node:net'
import { CHANNELS, type CommandEvent, createClient, type MemcachedClient } from '@memkit/client'
import { rawCommand } from '@memkit/testing'
import express, { type Request } from 'express'
import Fastify, { type FastifyInstance } from 'fastify'
import request from 'supertest'
import { type ExpressRateLimitOptions, type RateLimitMiddleware, rateLimit } from '../src/express.js'
import fastifyRateLimit, { type FastifyRateLimitOptions } from '../src/fastify.js'

export interface Reply {
  status: number
  headers: Record<string, string>
  body: string
}

/** One app behind a uniform request function, so one test table runs on both frameworks. */
export interface Harness {
  readonly framework: 'express' | 'fastify'
  request(path?: string, headers?: Record<string, string>): Promise<Reply>
  metrics(): ReturnType<RateLimitMiddleware['metrics']>[]
  close(): Promise<void>
}

/** Options both adapters accept (the request type is the only difference). */
export type SharedOptions = Omit<
  ExpressRateLimitOptions,
  | 'handler'
  | 'requestWasSuccessful'
  | 'keyGenerator'
  | 'limit'
  | 'cost'
  | 'skip'
  | 'message'
  | 'onLimitReached'
  | 'onBlocked'
  | 'policyName'
> & {
  /** Functions receive a small view of the request both frameworks can give. */
  keyGenerator?: (req: { headers: Record<string, unknown> }) => string
  limit?: number | ((req: { headers: Record<string, unknown> }) => number)
  cost?: number | ((req: { headers: Record<string, unknown> }) => number)
  skip?: (req: { headers: Record<string, unknown> }) => boolean
  message?: string | object | ((req: { headers: Record<string, unknown> }) => string | object)
  onLimitReached?: (req: { headers: Record<string, unknown> }) => void
  onBlocked?: (req: { headers: Record<string, unknown> }) => void
  policyName?: string | ((req: { headers: Record<string, unknown> }) => string)
}

/** `status` replies with this status code (for the skip options). */
function statusFor(url: string): number {
  const match = /status=(\d{3})/.exec(url)
  return match ? Number(match[1]) : 200
}

export async function expressHarness(options: SharedOptions): Promise<Harness> {
  const app = express()
  app.set('trust proxy', 'loopback') // the tests' requests come from loopback, as from a proxy
  const limiter = rateLimit(options as ExpressRateLimitOptions)
  app.use(limiter)
  app.use((req: Request, res) => {
    res.status(statusFor(req.url)).type('text/plain').send('ok')
  })
  const agent = request(app)
  return {
    framework: 'express',
    async request(path = '/', headers = {}) {
      const res = await agent.get(path).set(headers)
      return { status: res.status, headers: normalize(res.headers), body: res.text }
    },
    metrics: () => [limiter.metrics()],
    close: () => limiter.close(),
  }
}

export async function fastifyHarness(options: SharedOptions): Promise<Harness> {
  const app: FastifyInstance = Fastify({ trustProxy: '127.0.0.1' })
  await app.register(fastifyRateLimit, options as FastifyRateLimitOptions)
  app.all('/*', async (req, reply) => {
    reply.code(statusFor(req.url)).type('text/plain')
    return 'ok'
  })
  await app.ready()
  return {
    framework: 'fastify',
    async request(path = '/', headers = {}) {
      const res = await app.inject({ method: 'GET', url: path, headers })
      return { status: res.statusCode, headers: normalize(res.headers), body: res.body }
    },
    metrics: () => app.rateLimitMetrics(),
    close: () => app.close(),
  }
}

export const harnesses = [
  { framework: 'express' as const, make: expressHarness },
  { framework: 'fastify' as const, make: fastifyHarness },
]

function normalize(headers: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value)
  }
  return out
}

const RATE_HEADERS = [
  'x-ratelimit-limit',
  'x-ratelimit-remaining',
  'x-ratelimit-reset',
  'ratelimit',
  'ratelimit-policy',
  'ratelimit-limit',
  'ratelimit-remaining',
  'ratelimit-reset',
  'retry-after',
]

/** The rate-limit headers of a reply (absent ones left out). */
export function rateHeaders(reply: Reply): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of RATE_HEADERS) if (reply.headers[name] !== undefined) out[name] = reply.headers[name]
  return out
}

/** Counts memcached commands (the client publishes one event per command) until `stop()`. */
export function countCommands(): { readonly events: CommandEvent[]; count(): number; stop(): void } {
  const events: CommandEvent[] = []
  const listener = (message: unknown) => {
    events.push(message as CommandEvent)
  }
  subscribe(CHANNELS.command, listener)
  return {
    events,
    count: () => events.length,
    stop: () => unsubscribe(CHANNELS.command, listener),
  }
}

export function clientFor(
  address: string,
  options: Parameters<typeof createClient>[0] = {},
): MemcachedClient {
  return createClient({ servers: address, ...options })
}

/** Remaining TTL in seconds of a stored item (mg <key> t), or undefined when it is missing. */
export async function ttlOf(address: string, key: string): Promise<number | undefined> {
  const reply = await rawCommand(address, `mg ${key} t\r\n`, (text) => text.endsWith('\r\n'))
  const match = /^HD .*t(-?\d+)/.exec(reply)
  return match ? Number(match[1]) : undefined
}

/** A prefix no other test uses, so tests sharing a memcached never share counters. */
export { uniquePrefix } from '@memkit/testing'

/**
 * A TCP relay in front of a server that records what the client writes: `writes` (each chunk
 * as received) and `trips`, the round trips: a client write after the server has answered
 * starts a new one, writes before any answer belong to the same one.
 */
export async function startRelay(target: { host: string; port: number }) {
  const writes: string[] = []
  let trips = 0
  let answered = true
  const sockets = new Set<Socket>()
  const server = createServer((downstream) => {
    const upstream = connect({ host: target.host, port: target.port })
    sockets.add(downstream).add(upstream)
    downstream.on('data', (chunk: Buffer) => {
      writes.push(chunk.toString('latin1'))
      if (answered) trips++
      answered = false
      upstream.write(chunk)
    })
    upstream.on('data', (chunk: Buffer) => {
      answered = true
      downstream.write(chunk)
    })
    downstream.on('error', () => upstream.destroy())
    upstream.on('error', () => downstream.destroy())
    downstream.on('close', () => upstream.destroy())
    upstream.on('close', () => downstream.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    address: `127.0.0.1:${(server.address() as { port: number }).port}`,
    writes,
    trips: () => trips,
    /** Forgets what was recorded so far. */
    clear(): void {
      writes.length = 0
      trips = 0
    },
    async close(): Promise<void> {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
