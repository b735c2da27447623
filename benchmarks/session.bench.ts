// npm run bench:session (from the repository root) — session stores under HTTP load, ratios printed.
//   Express + express-session: the memkit store vs connect-memcached vs connect-memjs, with
//   express-session's MemoryStore (no memcached at all) as the peer to beat on the read route.
//   Fastify + @fastify/session: the memkit store vs @fastify/session's default in-memory store.
//   Two routes: one that only reads the session, one that modifies it.
// Every store talks to the same local memcached. Each app runs in its own child process and
// autocannon drives it from this one; every autocannon connection carries its own session
// cookie, so the load is many users, not one session fought over.
//
// Every app is started first and measured in rounds, app after app (A, B, C, A, B, C...), so a
// burst of load from elsewhere on a shared machine spreads over all of them; each figure is the
// median of the rounds. Next to req/s: the app process's CPU time per request (steadier than
// req/s when other processes share the CPU) and the memcached commands per request, from
// memcached's own `stats` counters taken around each measurement (only one app is under load at
// a time; memcached counts a read that sets a TTL, `mg ... T`, as one touch).
//
// Options: --duration=<seconds per measurement> (default 5), --rounds=<n> (default 3),
//          --connections=<n> (default 50), --only=<target,...> (e.g. express:memkit,fastify:memory)
import { type ChildProcess, fork } from 'node:child_process'
import { createRequire } from 'node:module'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { rawCommand, startMemcached, stopAll } from '@memkit/testing'
import autocannon from 'autocannon'
import { machine, printComparison, type Row } from './lib/report.js'

interface Target {
  id: string
  framework: 'express' | 'fastify'
  library: string
}

const TARGETS: Target[] = [
  { id: 'express:memkit', framework: 'express', library: 'memkit' },
  { id: 'express:memkit-lazy', framework: 'express', library: 'memkit (touchAfter 60)' },
  { id: 'express:connect-memcached', framework: 'express', library: 'connect-memcached' },
  { id: 'express:connect-memjs', framework: 'express', library: 'connect-memjs' },
  // No memcached at all: what Express and express-session cost on their own.
  { id: 'express:memory', framework: 'express', library: 'MemoryStore' },
  { id: 'fastify:memkit', framework: 'fastify', library: 'memkit' },
  { id: 'fastify:memkit-lazy', framework: 'fastify', library: 'memkit (touchAfter 60)' },
  { id: 'fastify:memory', framework: 'fastify', library: 'in-memory' },
]
const ROUTES = ['read', 'modify'] as const
const DAY_MS = 86_400_000

/** memcached `stats` counters whose sum is the number of commands served. */
const COMMAND_STATS = [
  'cmd_get',
  'cmd_set',
  'cmd_touch',
  'delete_hits',
  'delete_misses',
  'incr_hits',
  'incr_misses',
  'decr_hits',
  'decr_misses',
]

const role = process.env.MEMKIT_BENCH_APP
if (role) await serve(JSON.parse(role) as { id: string; address: string })
else await main()

interface Sample {
  requests: number
  cpuPerRequest: number
  commandsPerRequest: number
  p50: number
  p99: number
  failed: number
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      duration: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '3' },
      connections: { type: 'string', default: '50' },
      only: { type: 'string' },
    },
  })
  const duration = Number(args.duration)
  const rounds = Math.max(1, Number(args.rounds))
  const connections = Number(args.connections)
  const only = args.only?.split(',')
  const targets = TARGETS.filter((t) => !only || only.includes(t.id))
  const server = await startMemcached({ memoryMb: 256 })
  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')
  console.log(
    `session benchmark: ${machine()}, load average ${load} before the run, memcached at ${server.address}, ${connections} connections (one session each), median of ${rounds} x ${duration} s per app and route`,
  )
  const apps = new Map<string, { child: ChildProcess; base: string; cookies: string[] }>()
  const samples = new Map<string, Sample[]>()
  try {
    for (const target of targets) {
      const child = fork(fileURLToPath(import.meta.url), [], {
        execArgv: ['--import', 'tsx'],
        env: { ...process.env, MEMKIT_BENCH_APP: JSON.stringify({ id: target.id, address: server.address }) },
      })
      const port = await new Promise<number>((resolve, reject) => {
        child.once('message', (message) => resolve(message as number))
        child.once('error', reject)
        child.once('exit', (code) => reject(new Error(`${target.id} exited with ${code}`)))
      })
      const base = `http://127.0.0.1:${port}`
      apps.set(target.id, { child, base, cookies: await seedSessions(base, connections) })
    }
    for (const target of targets) {
      const app = apps.get(target.id)!
      for (const route of ROUTES) await run(`${app.base}/${route}`, app.cookies, connections, 1) // warm-up
    }
    for (let round = 0; round < rounds; round++) {
      for (const target of targets) {
        const app = apps.get(target.id)!
        for (const route of ROUTES) {
          const cpuBefore = await cpuMicros(app.child)
          const statsBefore = await commandCount(server.address)
          const result = await run(`${app.base}/${route}`, app.cookies, connections, duration)
          const commands = (await commandCount(server.address)) - statsBefore
          const cpu = (await cpuMicros(app.child)) - cpuBefore
          const total = result.requests.total
          const key = `${target.id} ${route}`
          samples.set(key, [
            ...(samples.get(key) ?? []),
            {
              requests: result.requests.average,
              cpuPerRequest: cpu / total,
              commandsPerRequest: commands / total,
              p50: result.latency.p50,
              p99: result.latency.p99,
              failed: result.errors + result.timeouts + result.non2xx,
            },
          ])
        }
      }
    }
  } finally {
    for (const { child } of apps.values()) child.kill()
  }

  const rows: Row[] = []
  for (const target of targets) {
    for (const route of ROUTES) {
      const list = samples.get(`${target.id} ${route}`)!
      const median = (pick: (s: Sample) => number) => {
        const sorted = list.map(pick).sort((a, b) => a - b)
        return sorted[Math.floor(sorted.length / 2)]!
      }
      const failed = list.reduce((sum, s) => sum + s.failed, 0)
      rows.push({
        scenario: `${target.framework}, ${route === 'read' ? 'read-only route' : 'modifying route'}`,
        library: target.library,
        value: median((s) => s.requests),
        unit: 'req/s',
        extra: `p50 ${median((s) => s.p50)} ms  p99 ${median((s) => s.p99)} ms  app CPU ${median((s) => s.cpuPerRequest).toFixed(0)} µs/req  memcached ${median((s) => s.commandsPerRequest).toFixed(2)} cmd/req${failed ? `  FAILED ${failed}` : ''}`,
      })
    }
  }
  printComparison(
    rows.filter((r) => r.scenario.startsWith('express')),
    'MemoryStore',
    'Sessions on Express: memkit vs connect-memcached, connect-memjs, MemoryStore (express-session)',
  )
  printComparison(
    rows.filter((r) => r.scenario.startsWith('fastify')),
    'in-memory',
    'Sessions on Fastify: memkit vs the in-memory store (@fastify/session)',
  )

  const value = (scenario: string, library: string) =>
    rows.find((r) => r.scenario === scenario && r.library === library)?.value
  const goals: Array<[string, string, string, number]> = [
    ['express, read-only route', 'memkit', 'MemoryStore', 0.9],
    ['fastify, read-only route', 'memkit', 'in-memory', 0.95],
  ]
  console.log('\ntargets')
  for (const [scenario, ours, theirs, goal] of goals) {
    const a = value(scenario, ours)
    const b = value(scenario, theirs)
    if (a === undefined || b === undefined) continue
    const ratio = a / b
    console.log(
      `  ${scenario.padEnd(26)} ${ours} / ${theirs}: ${ratio.toFixed(2)}x (target >= ${goal}x: ${ratio >= goal ? 'met' : 'NOT met'})`,
    )
  }
  await stopAll()
  process.exit(0)
}

/** Commands memcached has served so far (the sum of its per-command counters). */
async function commandCount(address: string): Promise<number> {
  const reply = await rawCommand(address, 'stats\r\n', (text) => text.endsWith('END\r\n'))
  let total = 0
  for (const line of reply.split('\r\n')) {
    const [, name, value] = line.split(' ')
    if (name && COMMAND_STATS.includes(name)) total += Number(value)
  }
  return total
}

/**
 * CPU time (user + system, µs) the app process has used so far: CPU per request is a steadier
 * figure than req/s when other processes share the machine.
 */
function cpuMicros(app: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    app.once('message', (message) => resolve(message as number))
    app.send('cpu')
  })
}

/** One session per connection: the first request of each creates it and returns its cookie. */
async function seedSessions(base: string, count: number): Promise<string[]> {
  const cookies: string[] = []
  for (let i = 0; i < count; i++) {
    const res = await fetch(`${base}/modify`)
    const setCookie = res.headers.get('set-cookie')
    if (!res.ok || !setCookie) throw new Error(`seeding failed: ${res.status} ${await res.text()}`)
    cookies.push(setCookie.split(';')[0]!)
  }
  return cookies
}

function run(url: string, cookies: string[], connections: number, seconds: number) {
  let next = 0
  return autocannon({
    url,
    connections,
    duration: seconds,
    setupClient: (client) => {
      client.setHeaders({ cookie: cookies[next++ % cookies.length]! })
    },
  })
}

// ---- the apps (child processes) ------------------------------------------------------

async function serve({ id, address }: { id: string; address: string }): Promise<void> {
  const port = id.startsWith('express') ? await expressApp(id, address) : await fastifyApp(id, address)
  // Never outlive the benchmark (it may have crashed).
  process.on('disconnect', () => process.exit(0))
  process.on('message', () => {
    const { user, system } = process.cpuUsage()
    process.send!(user + system)
  })
  process.send!(port)
}

async function expressApp(id: string, address: string): Promise<number> {
  const { default: express } = await import('express')
  const { default: session } = await import('express-session')
  const require = createRequire(import.meta.url)
  let store: unknown
  if (id === 'express:memkit' || id === 'express:memkit-lazy') {
    const { createClient } = await import('@memkit/client')
    const { MemcachedStore } = await import('@memkit/session')
    store = new MemcachedStore({
      client: createClient({ servers: address }),
      ...(id.endsWith('lazy') ? { touchAfter: 60 } : {}),
    })
  } else if (id === 'express:connect-memcached') {
    const ConnectMemcached = require('connect-memcached')(session)
    store = new ConnectMemcached({ hosts: [address], prefix: 'cm:' })
  } else if (id === 'express:connect-memjs') {
    const ConnectMemjs = require('connect-memjs')(session)
    store = new ConnectMemjs({ servers: [address], prefix: 'cj:' })
  } else {
    store = new session.MemoryStore()
  }
  const app = express()
  app.use(
    session({
      store: store as session.Store,
      secret: 'benchmark secret',
      resave: false,
      saveUninitialized: false,
      cookie: { maxAge: DAY_MS },
    }),
  )
  // biome-ignore lint/suspicious/noExplicitAny: free-form session data
  const data = (req: { session: unknown }) => req.session as any
  app.get('/read', (req, res) => {
    res.json({ views: data(req).views ?? 0 })
  })
  app.get('/modify', (req, res) => {
    data(req).views = (data(req).views ?? 0) + 1
    res.json({ views: data(req).views })
  })
  return new Promise((resolve) => {
    const server = app.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port))
  })
}

async function fastifyApp(id: string, address: string): Promise<number> {
  const { default: Fastify } = await import('fastify')
  const { default: fastifyCookie } = await import('@fastify/cookie')
  const { default: fastifySession } = await import('@fastify/session')
  const app = Fastify()
  await app.register(fastifyCookie)
  let store: unknown
  if (id !== 'fastify:memory') {
    const { createClient } = await import('@memkit/client')
    const { MemcachedStore } = await import('@memkit/session')
    store = new MemcachedStore({
      client: createClient({ servers: address }),
      ...(id.endsWith('lazy') ? { touchAfter: 60 } : {}),
    })
  }
  await app.register(fastifySession, {
    secret: 'a benchmark secret of at least 32 characters',
    cookie: { secure: false, maxAge: DAY_MS },
    saveUninitialized: false,
    ...(store ? { store: store as never } : {}),
  })
  // biome-ignore lint/suspicious/noExplicitAny: free-form session data
  const data = (req: { session: unknown }) => req.session as any
  app.get('/read', async (req) => ({ views: data(req).views ?? 0 }))
  app.get('/modify', async (req) => {
    data(req).views = (data(req).views ?? 0) + 1
    return { views: data(req).views }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as { port: number }).port
}
