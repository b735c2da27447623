// npm run bench:response-cache -w benchmarks — a route returning a 2 KB JSON body after 20 ms of
// simulated work, in one run:
//   Fastify: no work and no cache (reference) / no cache / memkit cache hits / @fastify/caching
//   Express: no work and no cache (reference) / no cache / memkit cache hits / apicache (memory)
// Each server runs in its own child process (started from this file with --serve) and autocannon
// drives it from this process; memcached comes from @memkit/testing. Prints req/s, latency and
// the ratio to the reference route.
//
// Options: --duration=<ms per measurement> (default 5000), --connections=<n> (default 50),
//          --only=<scenario id,...>
import { spawn } from 'node:child_process'
import type { AddressInfo } from 'node:net'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import fastifyCaching from '@fastify/caching'
import { createClient } from '@memkit/client'
import { responseCache } from '@memkit/response-cache/express'
import fastifyResponseCache from '@memkit/response-cache/fastify'
import { startMemcached, stopAll } from '@memkit/testing'
import apicache from 'apicache'
import autocannon from 'autocannon'
import express from 'express'
import Fastify from 'fastify'
import { machine, printComparison, type Row } from './lib/report.js'

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '5000' },
    connections: { type: 'string', default: '50' },
    only: { type: 'string' },
    serve: { type: 'string' },
    memcached: { type: 'string' },
  },
})

const WORK_MS = 20
// ~2 KB of JSON, built once.
const payload = {
  items: Array.from({ length: 35 }, (_, i) => ({
    id: i,
    name: `product number ${i}`,
    price: i * 3.5,
    stock: i % 7,
  })),
}
const work = async () => {
  await sleep(WORK_MS)
  return payload
}

interface Scenario {
  id: string
  framework: 'Fastify' | 'Express'
  library: string
  /** Extra request headers autocannon sends. */
  headers?: Record<string, string>
  /** Responses must carry this X-Cache value once warm (checked before measuring). */
  expectCache?: string
  start(memcached: string): Promise<number>
}

async function listenExpress(app: express.Express): Promise<number> {
  const server = app.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  return (server.address() as AddressInfo).port
}

async function listenFastify(app: ReturnType<typeof Fastify>): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as AddressInfo).port
}

const REFERENCE = 'no work, no cache (reference)'

const scenarios: Scenario[] = [
  {
    id: 'fastify-reference',
    framework: 'Fastify',
    library: REFERENCE,
    start: () => {
      const app = Fastify()
      app.get('/products', async () => payload)
      return listenFastify(app)
    },
  },
  {
    id: 'fastify-nocache',
    framework: 'Fastify',
    library: 'no cache, 20 ms work',
    start: () => {
      const app = Fastify()
      app.get('/products', work)
      return listenFastify(app)
    },
  },
  {
    id: 'fastify-memkit',
    framework: 'Fastify',
    library: 'memkit, cache hits',
    expectCache: 'HIT',
    start: async (memcached) => {
      const app = Fastify()
      await app.register(fastifyResponseCache, { client: createClient({ servers: memcached }) })
      app.get('/products', { config: { cache: { ttl: 600 } } }, work)
      return listenFastify(app)
    },
  },
  {
    id: 'fastify-caching',
    framework: 'Fastify',
    library: '@fastify/caching (plain GET)',
    start: async () => {
      const app = Fastify()
      await app.register(fastifyCaching, { privacy: 'public', expiresIn: 600 })
      app.get('/products', async (_req, reply) => {
        reply.etag('"products-v1"')
        return work()
      })
      return listenFastify(app)
    },
  },
  {
    id: 'fastify-caching-304',
    framework: 'Fastify',
    library: '@fastify/caching (If-None-Match: 304)',
    headers: { 'if-none-match': '"products-v1"' },
    start: async () => {
      const app = Fastify()
      await app.register(fastifyCaching, { privacy: 'public', expiresIn: 600 })
      app.get('/products', async (_req, reply) => {
        reply.etag('"products-v1"')
        return work()
      })
      return listenFastify(app)
    },
  },
  {
    id: 'express-reference',
    framework: 'Express',
    library: REFERENCE,
    start: () => {
      const app = express()
      app.get('/products', (_req, res) => {
        res.json(payload)
      })
      return listenExpress(app)
    },
  },
  {
    id: 'express-nocache',
    framework: 'Express',
    library: 'no cache, 20 ms work',
    start: () => {
      const app = express()
      app.get('/products', async (_req, res) => {
        res.json(await work())
      })
      return listenExpress(app)
    },
  },
  {
    id: 'express-memkit',
    framework: 'Express',
    library: 'memkit, cache hits',
    expectCache: 'HIT',
    start: (memcached) => {
      const app = express()
      app.get(
        '/products',
        responseCache({ client: createClient({ servers: memcached }), ttl: 600 }),
        async (_req, res) => {
          res.json(await work())
        },
      )
      return listenExpress(app)
    },
  },
  {
    id: 'express-apicache',
    framework: 'Express',
    library: 'apicache (memory), cache hits',
    start: () => {
      const app = express()
      app.get(
        '/products',
        apicache.middleware('10 minutes'),
        async (_req: express.Request, res: express.Response) => {
          res.json(await work())
        },
      )
      return listenExpress(app)
    },
  },
]

if (args.serve) {
  // Child mode: start one server and report its port.
  const scenario = scenarios.find((s) => s.id === args.serve)
  if (!scenario || !args.memcached) throw new Error(`unknown scenario ${args.serve}`)
  const port = await scenario.start(args.memcached)
  process.stdout.write(`${JSON.stringify({ port })}\n`)
} else {
  await main()
}

async function serve(id: string, memcached: string): Promise<{ port: number; stop(): void }> {
  const child = spawn(
    process.execPath,
    [...process.execArgv, fileURLToPath(import.meta.url), `--serve=${id}`, `--memcached=${memcached}`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${id} exited with ${code}`)))
    createInterface({ input: child.stdout! }).once('line', (line) => resolve(JSON.parse(line).port))
  })
  return { port, stop: () => child.kill('SIGKILL') }
}

interface Result {
  requests: { average: number }
  latency: { p50: number; p99: number }
  non2xx: number
  errors: number
}

function run(url: string, headers: Record<string, string> | undefined, duration: number): Promise<Result> {
  return autocannon({
    url,
    headers,
    connections: Number(args.connections),
    duration: duration / 1000,
  }) as Promise<Result>
}

async function main(): Promise<void> {
  const duration = Number(args.duration)
  const only = args.only?.split(',')
  const server = await startMemcached({ memoryMb: 128 })
  console.log(
    `response-cache benchmark: ${machine()}, ${args.connections} connections, ${duration} ms per measurement, body ${JSON.stringify(payload).length} bytes`,
  )
  const rows: Row[] = []
  for (const scenario of scenarios) {
    if (only && !only.includes(scenario.id)) continue
    const { port, stop } = await serve(scenario.id, server.address)
    try {
      const url = `http://127.0.0.1:${port}/products`
      // Warm up: fills the caches and the JIT.
      const first = await fetch(url, { headers: scenario.headers })
      await first.arrayBuffer()
      if (scenario.expectCache) {
        const again = await fetch(url)
        await again.arrayBuffer()
        if (again.headers.get('x-cache') !== scenario.expectCache) {
          throw new Error(
            `${scenario.id}: expected X-Cache ${scenario.expectCache}, got ${again.headers.get('x-cache')}`,
          )
        }
      }
      await run(url, scenario.headers, Math.min(1000, duration))
      const result = await run(url, scenario.headers, duration)
      rows.push({
        scenario: `${scenario.framework}: GET /products (2 KB JSON, ${WORK_MS} ms of work behind the cache)`,
        library: scenario.library,
        value: result.requests.average,
        unit: 'req/s',
        extra: `p50 ${result.latency.p50} ms  p99 ${result.latency.p99} ms${result.non2xx ? `  non-2xx ${result.non2xx}` : ''}${result.errors ? `  errors ${result.errors}` : ''}`,
      })
    } finally {
      stop()
    }
  }
  printComparison(rows, REFERENCE, 'Response cache: memkit vs @fastify/caching, apicache')
  const value = (framework: string, library: string) =>
    rows.find((r) => r.scenario.startsWith(framework) && r.library === library)?.value
  const targets: Array<[string, number | undefined, number | undefined, number]> = [
    [
      'Fastify memkit hits / reference',
      value('Fastify', 'memkit, cache hits'),
      value('Fastify', REFERENCE),
      0.8,
    ],
    [
      'Express memkit hits / reference',
      value('Express', 'memkit, cache hits'),
      value('Express', REFERENCE),
      0.8,
    ],
    [
      'Express memkit hits / apicache hits',
      value('Express', 'memkit, cache hits'),
      value('Express', 'apicache (memory), cache hits'),
      1,
    ],
  ]
  console.log('\ntargets')
  for (const [name, a, b, target] of targets) {
    if (a === undefined || b === undefined) continue
    const ratio = a / b
    console.log(
      `  ${name.padEnd(40)} ${ratio.toFixed(2)}  (target >= ${target})  ${ratio >= target ? 'met' : 'NOT met'}`,
    )
  }
  await stopAll()
  process.exit(0)
}
