// npm run bench:rate-limit -w benchmarks (after `npm run build`): memkit's rate limiter against
// the peers in one run, each behind a small JSON route, load from autocannon.
//
//   Fastify: no limiter / memkit plugin / @fastify/rate-limit (in-memory store) /
//            rate-limiter-flexible RateLimiterMemcache (`memcached` client)
//   Express: no limiter / memkit middleware / express-rate-limit (memory store) /
//            express-rate-limit + rate-limit-memcached
//
// Each app runs in its own child process (autocannon keeps this one busy); every limit is high
// enough that all requests pass, so the cost measured is the counting. A second, sequential
// pass through a counting TCP relay gives memcached commands and round trips (client writes)
// per request.
//
// Options: --duration=<seconds per measurement> (default 5), --rounds=<n> (default 3; the
//          median is reported), --connections=<n> (default 32), --only=<setup,...>
import { type ChildProcess, fork } from 'node:child_process'
import { createServer, connect as netConnect, type Socket } from 'node:net'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import { machine, printComparison, type Row } from './lib/report.js'

const SETUPS = [
  'fastify: no limiter',
  'fastify: memkit',
  'fastify: memkit (sliding)',
  'fastify: @fastify/rate-limit memory',
  'fastify: rate-limiter-flexible memcache',
  'express: no limiter',
  'express: memkit',
  'express: express-rate-limit memory',
  'express: express-rate-limit + rate-limit-memcached',
] as const
type Setup = (typeof SETUPS)[number]

const LIMIT = 1_000_000_000
const WINDOW_MS = 60_000

// ---- child: one app on two ports (memcached direct, and through the counting relay) -----------

async function serve(setup: Setup, direct: string, relayed: string): Promise<void> {
  const ports = [await buildApp(setup, direct), await buildApp(setup, relayed)]
  // The parent asks for this process's CPU time (µs) before and after each measurement.
  process.on('message', () => {
    const { user, system } = process.cpuUsage()
    process.send?.({ cpu: user + system })
  })
  process.send?.({ ports })
}

async function buildApp(setup: Setup, servers: string): Promise<number> {
  const [framework] = setup.split(':') as ['fastify' | 'express']
  if (framework === 'fastify') {
    const { default: Fastify } = await import('fastify')
    const app = Fastify()
    if (setup === 'fastify: memkit' || setup === 'fastify: memkit (sliding)') {
      const { createClient } = await import('@memkit/client')
      const { default: fastifyRateLimit } = await import('@memkit/rate-limit/fastify')
      await app.register(fastifyRateLimit, {
        client: createClient({ servers }),
        limit: LIMIT,
        windowMs: WINDOW_MS,
        algorithm: setup.includes('sliding') ? 'sliding' : 'fixed',
      })
    } else if (setup === 'fastify: @fastify/rate-limit memory') {
      const { default: frl } = await import('@fastify/rate-limit')
      await app.register(frl, { max: LIMIT, timeWindow: WINDOW_MS })
    } else if (setup === 'fastify: rate-limiter-flexible memcache') {
      const { default: Memcached } = await import('memcached')
      const { RateLimiterMemcache } = await import('rate-limiter-flexible')
      const limiter = new RateLimiterMemcache({
        storeClient: new Memcached(servers),
        points: LIMIT,
        duration: WINDOW_MS / 1000,
      })
      app.addHook('onRequest', async (request, reply) => {
        try {
          await limiter.consume(request.ip)
        } catch (rejection) {
          if (rejection instanceof Error) throw rejection
          return reply.code(429).send('Too Many Requests')
        }
      })
    }
    app.get('/', async () => ({ hello: 'world' }))
    await app.listen({ port: 0, host: '127.0.0.1' })
    return (app.server.address() as { port: number }).port
  }
  const { default: express } = await import('express')
  const app = express()
  if (setup === 'express: memkit') {
    const { createClient } = await import('@memkit/client')
    const { rateLimit } = await import('@memkit/rate-limit/express')
    app.use(rateLimit({ client: createClient({ servers }), limit: LIMIT, windowMs: WINDOW_MS }))
  } else if (setup === 'express: express-rate-limit memory') {
    const { rateLimit } = await import('express-rate-limit')
    app.use(rateLimit({ limit: LIMIT, windowMs: WINDOW_MS, validate: false }))
  } else if (setup === 'express: express-rate-limit + rate-limit-memcached') {
    const { rateLimit } = await import('express-rate-limit')
    const { default: Memcached } = await import('memcached')
    const { MemcachedStore } = await import('rate-limit-memcached')
    app.use(
      rateLimit({
        limit: LIMIT,
        windowMs: WINDOW_MS,
        validate: false,
        store: new MemcachedStore({ client: new Memcached(servers), prefix: 'rlm:' }),
      }),
    )
  }
  app.get('/', (_req, res) => {
    res.json({ hello: 'world' })
  })
  return new Promise((resolve) => {
    const server = app.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port))
  })
}

// ---- parent ------------------------------------------------------------------------------

const VERBS =
  /^(get|gets|gat|gats|set|add|replace|append|prepend|cas|incr|decr|delete|touch|mg|ms|md|ma|mn|me)\b/

/** A TCP relay in front of memcached counting client commands and client writes. */
async function countingRelay(target: { host: string; port: number }) {
  const totals = { commands: 0, writes: 0 }
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const upstream = netConnect(target)
    sockets.add(client).add(upstream)
    client.on('data', (chunk: Buffer) => {
      totals.writes++
      for (const line of chunk.toString('latin1').split('\r\n')) if (VERBS.test(line)) totals.commands++
      upstream.write(chunk)
    })
    upstream.pipe(client)
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
    client.on('close', () => upstream.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    address: `127.0.0.1:${(server.address() as { port: number }).port}`,
    totals,
    close: () => {
      for (const socket of sockets) socket.destroy()
      server.close()
    },
  }
}

function cpuMicros(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.once('message', (message) => resolve((message as { cpu: number }).cpu))
    child.send('cpu')
  })
}

function startChild(
  setup: Setup,
  direct: string,
  relayed: string,
): Promise<{ child: ChildProcess; ports: number[] }> {
  const child = fork(
    fileURLToPath(import.meta.url),
    ['--serve', setup, '--direct', direct, '--relayed', relayed],
    {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  )
  return new Promise((resolve, reject) => {
    child.once('message', (message) => resolve({ child, ports: (message as { ports: number[] }).ports }))
    child.once('exit', (code) => reject(new Error(`${setup} exited with ${code}`)))
  })
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      duration: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '3' },
      connections: { type: 'string', default: '32' },
      only: { type: 'string' },
      serve: { type: 'string' },
      direct: { type: 'string' },
      relayed: { type: 'string' },
    },
  })
  if (args.serve) return serve(args.serve as Setup, args.direct!, args.relayed!)

  const { startMemcached, stopAll } = await import('@memkit/testing')
  const duration = Number(args.duration)
  const connections = Number(args.connections)
  const rounds = Math.max(1, Number(args.rounds))
  const only = args.only?.split(',')
  const setups = SETUPS.filter((s) => !only || only.some((o) => s.includes(o)))
  const memcached = await startMemcached({ memoryMb: 256 })
  const relay = await countingRelay({ host: memcached.host, port: memcached.port })
  console.log(
    `rate-limit benchmark: ${machine()}, memcached at ${memcached.address}, autocannon ${connections} connections, median of ${rounds} x ${duration} s per setup`,
  )
  // Every app is started first and measured in rounds, setup after setup, so a burst of load
  // from elsewhere on a shared machine spreads over all of them; each figure is the median.
  const apps = new Map<Setup, { child: ChildProcess; ports: number[] }>()
  const samples = new Map<Setup, Array<autocannon.Result & { cpuPerRequest: number }>>()
  const perRequest = new Map<Setup, { commands: number; trips: number; writesUnderLoad: number }>()
  const loadBefore = loadavg()[0]!.toFixed(2)
  try {
    for (const setup of setups) apps.set(setup, await startChild(setup, memcached.address, relay.address))
    for (const setup of setups) {
      await autocannon({ url: `http://127.0.0.1:${apps.get(setup)!.ports[0]}/`, connections, duration: 1 })
    }
    for (let round = 0; round < rounds; round++) {
      for (const setup of setups) {
        const url = `http://127.0.0.1:${apps.get(setup)!.ports[0]}/`
        const child = apps.get(setup)!.child
        const cpuBefore = await cpuMicros(child)
        const result = await autocannon({ url, connections, duration })
        const cpuPerRequest = ((await cpuMicros(child)) - cpuBefore) / Math.max(1, result.requests.total)
        samples.set(setup, [...(samples.get(setup) ?? []), { ...result, cpuPerRequest }])
      }
    }
    // Sequential requests through the relay: commands and client writes (round trips) per request.
    for (const setup of setups) {
      const url = `http://127.0.0.1:${apps.get(setup)!.ports[1]}/`
      await autocannon({ url, connections: 1, amount: 20 })
      const before = { ...relay.totals }
      const amount = 200
      await autocannon({ url, connections: 1, amount })
      const commands = (relay.totals.commands - before.commands) / amount
      const trips = (relay.totals.writes - before.writes) / amount
      // Under load (the same connections as the measurement): socket writes to memcached per
      // HTTP request, i.e. how well the commands of concurrent requests share writes.
      const loaded = { ...relay.totals }
      const load = await autocannon({ url, connections, duration: 2 })
      const writesUnderLoad = (relay.totals.writes - loaded.writes) / Math.max(1, load.requests.total)
      perRequest.set(setup, { commands, trips, writesUnderLoad })
    }
  } finally {
    for (const { child } of apps.values()) child.kill('SIGKILL')
  }
  const rows: Row[] = []
  for (const setup of setups) {
    const results = [...samples.get(setup)!].sort((a, b) => a.requests.average - b.requests.average)
    const result = results[Math.floor(results.length / 2)]!
    const [framework, library] = setup.split(': ') as [string, string]
    rows.push({
      scenario: framework === 'fastify' ? 'Fastify, GET / (JSON)' : 'Express, GET / (JSON)',
      library,
      value: result.requests.average,
      unit: 'req/s',
      extra: `${result.cpuPerRequest.toFixed(1)} µs CPU/req  p50 ${result.latency.p50} ms  p99 ${result.latency.p99} ms${result.non2xx ? `  non-2xx ${result.non2xx}` : ''}${result.errors ? `  errors ${result.errors}` : ''}`,
    })
  }
  for (const row of rows) {
    const counts = perRequest.get(
      `${row.scenario.startsWith('Fastify') ? 'fastify' : 'express'}: ${row.library}` as Setup,
    )
    if (counts && counts.commands > 0)
      row.extra = `memcached: ${counts.commands.toFixed(2)} cmd, ${counts.trips.toFixed(2)} round trips/req at 1 connection, ${counts.writesUnderLoad.toFixed(2)} writes/req at ${connections}  ${row.extra}`
  }
  console.log(`\nload average: ${loadBefore} before, ${loadavg()[0]!.toFixed(2)} after`)
  printComparison(
    rows,
    'no limiter',
    'Rate limiting: memkit vs @fastify/rate-limit, rate-limiter-flexible, express-rate-limit (+ rate-limit-memcached)',
  )

  const value = (library: string, scenario: string) =>
    rows.find((r) => r.library === library && r.scenario.startsWith(scenario))?.value
  const targets: Array<[string, string, string, string, number]> = [
    ['Fastify', 'memkit', 'rate-limiter-flexible memcache', 'memkit / rate-limiter-flexible memcache', 1.25],
    ['Fastify', 'memkit', '@fastify/rate-limit memory', 'memkit / @fastify/rate-limit memory', 0.95],
    [
      'Express',
      'memkit',
      'express-rate-limit + rate-limit-memcached',
      'memkit / express-rate-limit + rate-limit-memcached',
      1.3,
    ],
    ['Express', 'memkit', 'express-rate-limit memory', 'memkit / express-rate-limit memory', 1.0],
  ]
  console.log('\ntargets')
  for (const [scenario, ours, theirs, label, target] of targets) {
    const a = value(ours, scenario)
    const b = value(theirs, scenario)
    if (a === undefined || b === undefined) continue
    const ratio = a / b
    console.log(
      `  ${scenario} ${label.padEnd(52)} ${ratio.toFixed(2)}x  (target >= ${target}x: ${ratio >= target ? 'met' : 'NOT met'})`,
    )
  }
  relay.close()
  await stopAll()
}

await main()
if (!process.argv.includes('--serve')) process.exit(0)
