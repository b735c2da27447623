// npm run bench:response-cache -w benchmarks — a route returning a JSON body (2 KB and 200 KB)
// after 20 ms of simulated work, in one run:
//   Fastify: no work and no cache (reference) / no cache / memkit cache hits / @fastify/caching
//   Express: no work and no cache (reference) / no cache / memkit cache hits / apicache (memory)
// Each server runs in its own child process (started from this file with --serve) and autocannon
// drives it from this process; memcached comes from @memkit/testing. The setups of one body size
// are measured in interleaved rounds (A, B, C, A, B, C, ...) and the median round is printed, with
// the server process's CPU time per request, the load average, and the ratio to the reference.
//
// Options: --duration=<ms per round> (default 3000), --rounds=<n> (default 3),
//          --connections=<n> (default 50), --bodies=<2k,200k>, --only=<scenario id,...>
import { fork } from 'node:child_process'
import type { AddressInfo } from 'node:net'
import { loadavg } from 'node:os'
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
    duration: { type: 'string', default: '3000' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    bodies: { type: 'string', default: '2k,200k' },
    body: { type: 'string', default: '2k' },
    only: { type: 'string' },
    serve: { type: 'string' },
    memcached: { type: 'string' },
  },
})

const WORK_MS = 20
/** A JSON catalogue of about `kb` KB, built once. */
function catalogue(kb: number) {
  return {
    items: Array.from({ length: Math.round(kb * 17.5) }, (_, i) => ({
      id: i,
      name: `product number ${i}`,
      price: i * 3.5,
      stock: i % 7,
    })),
  }
}
const payload = catalogue(Number.parseInt(args.body!, 10))
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
  // Child mode: start one server, report its port, and answer CPU-time requests from the parent.
  const scenario = scenarios.find((s) => s.id === args.serve)
  if (!scenario || !args.memcached) throw new Error(`unknown scenario ${args.serve}`)
  const port = await scenario.start(args.memcached)
  process.on('message', () => {
    const { user, system } = process.cpuUsage()
    process.send?.({ cpu: user + system })
  })
  process.send?.({ port })
} else {
  await main()
}

interface Child {
  port: number
  cpuMicros(): Promise<number>
  stop(): void
}

async function serve(id: string, memcached: string, body: string): Promise<Child> {
  const child = fork(
    fileURLToPath(import.meta.url),
    [`--serve=${id}`, `--memcached=${memcached}`, `--body=${body}`],
    {
      execArgv: process.execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  )
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${id} exited with ${code}`)))
    child.once('message', (message) => resolve((message as { port: number }).port))
  })
  return {
    port,
    cpuMicros: () =>
      new Promise((resolve) => {
        child.once('message', (message) => resolve((message as { cpu: number }).cpu))
        child.send('cpu')
      }),
    stop: () => child.kill('SIGKILL'),
  }
}

interface Result {
  requests: { average: number; total: number }
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
  const rounds = Math.max(1, Number(args.rounds))
  const only = args.only?.split(',')
  const server = await startMemcached({ memoryMb: 256 })
  console.log(
    `response-cache benchmark: ${machine()}, ${args.connections} connections, ${rounds} interleaved rounds of ${duration} ms, load average ${loadavg()[0]!.toFixed(2)}`,
  )
  const rows: Row[] = []
  for (const body of args.bodies!.split(',')) {
    const size = JSON.stringify(catalogue(Number.parseInt(body, 10))).length
    const chosen = scenarios.filter((s) => !only || only.includes(s.id))
    const children = new Map<Scenario, Child>()
    const samples = new Map<Scenario, Array<Result & { cpu: number }>>()
    try {
      for (const scenario of chosen) {
        const child = await serve(scenario.id, server.address, body)
        children.set(scenario, child)
        const url = `http://127.0.0.1:${child.port}/products`
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
      }
      for (let round = 0; round < rounds; round++) {
        for (const scenario of chosen) {
          const child = children.get(scenario)!
          const before = await child.cpuMicros()
          const result = await run(`http://127.0.0.1:${child.port}/products`, scenario.headers, duration)
          const cpu = ((await child.cpuMicros()) - before) / Math.max(1, result.requests.total)
          samples.set(scenario, [...(samples.get(scenario) ?? []), { ...result, cpu }])
        }
      }
    } finally {
      for (const child of children.values()) child.stop()
    }
    for (const scenario of chosen) {
      const sorted = [...samples.get(scenario)!].sort((a, b) => a.requests.average - b.requests.average)
      const result = sorted[Math.floor(sorted.length / 2)]!
      rows.push({
        scenario: `${scenario.framework}: GET /products (${Math.round(size / 1024)} KB JSON, ${WORK_MS} ms of work behind the cache)`,
        library: scenario.library,
        value: result.requests.average,
        unit: 'req/s',
        extra: `${result.cpu.toFixed(1)} µs CPU/req  p50 ${result.latency.p50} ms  p99 ${result.latency.p99} ms${result.non2xx ? `  non-2xx ${result.non2xx}` : ''}${result.errors ? `  errors ${result.errors}` : ''}`,
      })
    }
  }
  console.log(`\nload average after the run: ${loadavg()[0]!.toFixed(2)}`)
  printComparison(rows, REFERENCE, 'Response cache: memkit vs @fastify/caching, apicache')
  console.log('\ntargets')
  for (const scenario of new Set(rows.map((r) => r.scenario))) {
    const value = (library: string) =>
      rows.find((r) => r.scenario === scenario && r.library === library)?.value
    const checks: Array<[string, number | undefined, number | undefined, number]> = [
      ['memkit hits / no work, no cache', value('memkit, cache hits'), value(REFERENCE), 1.5],
      ['memkit hits / apicache hits', value('memkit, cache hits'), value('apicache (memory), cache hits'), 1],
    ]
    for (const [name, a, b, target] of checks) {
      if (a === undefined || b === undefined) continue
      const ratio = a / b
      console.log(
        `  ${scenario.split(' JSON')[0]}): ${name.padEnd(36)} ${ratio.toFixed(2)}  (target >= ${target})  ${ratio >= target ? 'met' : 'NOT met'}`,
      )
    }
  }
  await stopAll()
  process.exit(0)
}
