// npm run bench:rate-limit-flood (from the repository root; it builds first): one client flooding
// a limit of 100 requests per minute on Fastify. After its first 100 requests every request is
// refused, so what is measured is the cost of saying no:
//
//   no limiter                    the route alone (what Fastify does on this machine)
//   memkit                        the default: a client over its limit is refused from memory,
//                                 with one memcached command per second per blocked key
//   memkit (preBlock: false)      every refused request still goes to memcached
//   @fastify/rate-limit memory    its in-process store (nothing shared between processes)
//
// Each app runs in its own child process, all on one memcached. The setups are measured in
// interleaved rounds (A, B, C, D, A, B, ...) and the median round is reported, with the load
// average while it ran, the app process's CPU time per request and, for memkit, the memcached
// commands per refused request, read from memcached's own `stats` before and after the round.
//
// Options: --duration=<seconds per round> (default 5), --rounds=<n> (default 5),
//          --connections=<n> (default 16), --only=<setup,...>
import { type ChildProcess, fork } from 'node:child_process'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import { machine, printComparison, type Row } from './lib/report.js'

const SETUPS = ['no limiter', 'memkit', 'memkit (preBlock: false)', '@fastify/rate-limit memory'] as const
type Setup = (typeof SETUPS)[number]

const LIMIT = 100
const WINDOW_MS = 60_000

// ---- child: one Fastify app ----------------------------------------------------------------

async function serve(setup: Setup, servers: string): Promise<void> {
  const { default: Fastify } = await import('fastify')
  const app = Fastify()
  if (setup === 'memkit' || setup === 'memkit (preBlock: false)') {
    const { createClient } = await import('@memkit/client')
    const { default: fastifyRateLimit } = await import('@memkit/rate-limit/fastify')
    await app.register(fastifyRateLimit, {
      client: createClient({ servers }),
      limit: LIMIT,
      windowMs: WINDOW_MS,
      preBlock: setup === 'memkit',
      // Each memkit app counts on its own, as the in-memory store does.
      prefix: setup === 'memkit' ? 'flood:' : 'flood-every:',
    })
  } else if (setup === '@fastify/rate-limit memory') {
    const { default: frl } = await import('@fastify/rate-limit')
    await app.register(frl, { max: LIMIT, timeWindow: WINDOW_MS })
  }
  app.get('/', async () => ({ hello: 'world' }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  process.on('message', () => {
    const { user, system } = process.cpuUsage()
    process.send?.({ cpu: user + system })
  })
  process.send?.({ port: (app.server.address() as { port: number }).port })
}

// ---- parent ------------------------------------------------------------------------------

function startChild(setup: Setup, servers: string): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(fileURLToPath(import.meta.url), ['--serve', setup, '--servers', servers], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  return new Promise((resolve, reject) => {
    child.once('message', (message) => resolve({ child, port: (message as { port: number }).port }))
    child.once('exit', (code) => reject(new Error(`${setup} exited with ${code}`)))
  })
}

/** The app process's CPU time so far, in microseconds. */
function cpuMicros(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.once('message', (message) => resolve((message as { cpu: number }).cpu))
    child.send('cpu')
  })
}

// memcached's counters of the commands it served. A meta `ma` that creates its counter (N flag)
// shows in none of them, only as a new item: items created other than by a set are counted
// too (total_items minus cmd_set).
const COMMAND_STATS = [
  'cmd_get',
  'cmd_set',
  'cmd_touch',
  'cmd_flush',
  'incr_hits',
  'incr_misses',
  'decr_hits',
  'decr_misses',
  'delete_hits',
  'delete_misses',
  'cas_hits',
  'cas_misses',
  'cas_badval',
]

async function commandsServed(address: string): Promise<{ commands: number; created: number }> {
  const { rawCommand } = await import('@memkit/testing')
  const reply = await rawCommand(address, 'stats\r\n', (text) => text.endsWith('END\r\n'))
  const stats = new Map<string, number>()
  for (const line of reply.split('\r\n')) {
    const [, name, value] = line.split(' ')
    if (name !== undefined) stats.set(name, Number(value))
  }
  const commands = COMMAND_STATS.reduce((sum, name) => sum + (stats.get(name) ?? 0), 0)
  return { commands, created: (stats.get('total_items') ?? 0) - (stats.get('cmd_set') ?? 0) }
}

/** Commands memcached served between two readings. */
function commandsBetween(
  before: { commands: number; created: number },
  after: { commands: number; created: number },
) {
  return after.commands - before.commands + Math.max(0, after.created - before.created)
}

interface Sample {
  rps: number
  requests: number
  refused: number
  cpuPerRequest: number
  load: number
  /** memcached commands served during the round (memkit setups only). */
  commands: number | undefined
  p99: number
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      duration: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '5' },
      connections: { type: 'string', default: '16' },
      only: { type: 'string' },
      serve: { type: 'string' },
      servers: { type: 'string' },
    },
  })
  if (args.serve) return serve(args.serve as Setup, args.servers!)

  const { startMemcached, stopAll } = await import('@memkit/testing')
  const duration = Number(args.duration)
  const connections = Number(args.connections)
  const rounds = Math.max(1, Number(args.rounds))
  const only = args.only?.split(',')
  const setups = SETUPS.filter((s) => !only || only.some((o) => s === o))
  const memcached = await startMemcached({ memoryMb: 64 })
  console.log(
    `rate-limit flood benchmark: ${machine()}, memcached at ${memcached.address}, one client (127.0.0.1) over ${connections} connections flooding ${LIMIT} requests/${WINDOW_MS / 1000} s, ${rounds} interleaved rounds of ${duration} s`,
  )
  const apps = new Map<Setup, { child: ChildProcess; port: number }>()
  const samples = new Map<Setup, Sample[]>()
  try {
    for (const setup of setups) apps.set(setup, await startChild(setup, memcached.address))
    // Warm-up: each app serves (and the limited ones use up the client's limit) before any round.
    for (const setup of setups) {
      await autocannon({ url: `http://127.0.0.1:${apps.get(setup)!.port}/`, connections, duration: 1 })
    }
    for (let round = 0; round < rounds; round++) {
      for (const setup of setups) {
        const { child, port } = apps.get(setup)!
        const commandsBefore = await commandsServed(memcached.address)
        const cpuBefore = await cpuMicros(child)
        const loadBefore = loadavg()[0]!
        const result = await autocannon({ url: `http://127.0.0.1:${port}/`, connections, duration })
        const cpu = (await cpuMicros(child)) - cpuBefore
        const commands = commandsBetween(commandsBefore, await commandsServed(memcached.address))
        const refused = result.non2xx
        const list = samples.get(setup) ?? []
        list.push({
          rps: result.requests.average,
          requests: result.requests.total,
          refused,
          cpuPerRequest: cpu / Math.max(1, result.requests.total),
          load: (loadBefore + loadavg()[0]!) / 2,
          commands: setup.startsWith('memkit') ? commands : undefined,
          p99: result.latency.p99,
        })
        samples.set(setup, list)
      }
    }
  } finally {
    for (const { child } of apps.values()) child.kill('SIGKILL')
  }

  const rows: Row[] = []
  const summary = new Map<Setup, { rps: number; cpu: number }>()
  for (const setup of setups) {
    const list = samples.get(setup)!
    const rps = median(list.map((s) => s.rps))
    const cpu = median(list.map((s) => s.cpuPerRequest))
    summary.set(setup, { rps, cpu })
    const refused = list.reduce((n, s) => n + s.refused, 0)
    const requests = list.reduce((n, s) => n + s.requests, 0)
    // Each allowed request costs its one counting command; what is left was spent on refusals.
    const commands = list.some((s) => s.commands !== undefined)
      ? list.reduce((n, s) => n + (s.commands ?? 0), 0) - (requests - refused)
      : undefined
    rows.push({
      scenario: `Fastify, one client flooding a limit of ${LIMIT}/min`,
      library: setup,
      value: rps,
      unit: 'req/s',
      extra: [
        `CPU ${cpu.toFixed(0)} µs/req`,
        `load ${median(list.map((s) => s.load)).toFixed(2)}`,
        `p99 ${median(list.map((s) => s.p99))} ms`,
        `refused ${refused} of ${requests}`,
        commands !== undefined && refused > 0
          ? `memcached: ${commands} commands for ${refused} refusals, ${(commands / refused).toFixed(6)} per refused request`
          : '',
      ]
        .filter(Boolean)
        .join('  '),
    })
  }
  printComparison(
    rows,
    '@fastify/rate-limit memory',
    'Rate limiting under a flood: memkit vs @fastify/rate-limit (memory store) vs no limiter',
  )

  const ratio = (a: Setup, b: Setup, key: 'rps' | 'cpu') => {
    const x = summary.get(a)?.[key]
    const y = summary.get(b)?.[key]
    return x === undefined || y === undefined ? undefined : x / y
  }
  console.log('\nratios (medians)')
  const lines: Array<[string, number | undefined, string]> = [
    [
      'req/s    memkit / @fastify/rate-limit memory',
      ratio('memkit', '@fastify/rate-limit memory', 'rps'),
      'target >= 1.0',
    ],
    ['req/s    memkit / no limiter', ratio('memkit', 'no limiter', 'rps'), ''],
    ['req/s    memkit / memkit (preBlock: false)', ratio('memkit', 'memkit (preBlock: false)', 'rps'), ''],
    [
      'CPU/req  memkit / @fastify/rate-limit memory',
      ratio('memkit', '@fastify/rate-limit memory', 'cpu'),
      'lower is better',
    ],
    ['CPU/req  memkit / no limiter', ratio('memkit', 'no limiter', 'cpu'), ''],
  ]
  for (const [label, value, note] of lines) {
    if (value !== undefined) console.log(`  ${label.padEnd(46)} ${value.toFixed(2)}x  ${note}`)
  }
  await stopAll()
}

await main()
if (!process.argv.includes('--serve')) process.exit(0)
