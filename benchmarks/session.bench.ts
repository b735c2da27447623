// npm run build && npm run bench:session -w benchmarks — session stores under HTTP load, in one run, ratios printed.
//   Express + express-session: the memkit store vs connect-memcached vs connect-memjs, on a route
//   that only reads the session and one that modifies it (baseline: connect-memcached), with
//   express-session's MemoryStore as the ceiling (what Express itself allows on this machine).
//   Fastify + @fastify/session: the memkit store vs @fastify/session's default in-memory store
//   (baseline: in-memory).
// Every store talks to the same local memcached. Each app runs in its own child process and
// autocannon drives it from this one; every autocannon connection carries its own session
// cookie, so the load is many users, not one session fought over.
//
// Besides req/s and latency, each row shows the app process's CPU time per request, which stays
// comparable when other processes share the CPU.
//
// Options: --duration=<ms per measurement> (default 5000), --connections=<n> (default 50),
//          --only=<target,...> (e.g. express:memkit,fastify:memory)
import { type ChildProcess, fork } from 'node:child_process'
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'
import { startMemcached, stopAll } from '@memkit/testing'
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
  // No memcached at all: the most any store could reach on this machine.
  { id: 'express:memory', framework: 'express', library: 'MemoryStore (ceiling)' },
  { id: 'fastify:memkit', framework: 'fastify', library: 'memkit' },
  { id: 'fastify:memkit-lazy', framework: 'fastify', library: 'memkit (touchAfter 60)' },
  { id: 'fastify:memory', framework: 'fastify', library: 'in-memory' },
]
const DAY_MS = 86_400_000

const role = process.env.MEMKIT_BENCH_APP
if (role) await serve(JSON.parse(role) as { id: string; address: string })
else await main()

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      duration: { type: 'string', default: '5000' },
      connections: { type: 'string', default: '50' },
      only: { type: 'string' },
    },
  })
  const durationMs = Number(args.duration)
  const connections = Number(args.connections)
  const only = args.only?.split(',')
  const targets = TARGETS.filter((t) => !only || only.includes(t.id))
  const server = await startMemcached({ memoryMb: 256 })
  console.log(
    `session benchmark: ${machine()}, memcached at ${server.address}, ${durationMs} ms per measurement, ${connections} connections (one session each)`,
  )
  const rows: Row[] = []
  for (const target of targets) {
    const app = fork(new URL(import.meta.url).pathname, [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, MEMKIT_BENCH_APP: JSON.stringify({ id: target.id, address: server.address }) },
    })
    const port = await new Promise<number>((resolve, reject) => {
      app.once('message', (message) => resolve(message as number))
      app.once('error', reject)
      app.once('exit', (code) => reject(new Error(`${target.id} exited with ${code}`)))
    })
    const base = `http://127.0.0.1:${port}`
    const cookies = await seedSessions(base, connections)
    for (const route of ['read', 'modify'] as const) {
      await load(`${base}/${route}`, cookies, connections, 1000) // warm-up
      const before = await cpuMicros(app)
      const result = await load(`${base}/${route}`, cookies, connections, durationMs)
      const cpuPerRequest = ((await cpuMicros(app)) - before) / result.requests.total
      const failed = result.errors + result.timeouts + result.non2xx
      rows.push({
        scenario: `${target.framework}, ${route === 'read' ? 'read-only route' : 'modifying route'}`,
        library: target.library,
        value: result.requests.average,
        unit: 'req/s',
        extra: `p50 ${result.latency.p50} ms  p99 ${result.latency.p99} ms  app CPU ${cpuPerRequest.toFixed(0)} µs/req${failed ? `  FAILED ${failed}` : ''}`,
      })
    }
    app.kill()
  }
  printComparison(
    rows.filter((r) => r.scenario.startsWith('express')),
    'connect-memcached',
    'Sessions on Express: memkit vs connect-memcached, connect-memjs (express-session)',
  )
  printComparison(
    rows.filter((r) => r.scenario.startsWith('fastify')),
    'in-memory',
    'Sessions on Fastify: memkit vs the in-memory store (@fastify/session)',
  )
  await stopAll()
  process.exit(0)
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

function load(url: string, cookies: string[], connections: number, durationMs: number) {
  let next = 0
  return autocannon({
    url,
    connections,
    duration: durationMs / 1000,
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
