// npm run profile -- <scenario> [options] (from the repository root): one benchmark app under a
// CPU profiler, then where its CPU time per request goes.
//
// The app is the benchmark's own: this starts the benchmark file in its app (child) mode, with
// the same options, in a process run with `node --cpu-prof`, drives it with autocannon at the
// benchmark's connection count (a warm-up, then the measured run), stops it so that Node writes
// the .cpuprofile, and sums the samples of the measured run only (see lib/profile-child.ts):
// idle / GC / (program) / code, the top functions by self time, the time by package (self and
// inclusive), the event-loop callbacks it is spent under, and µs per request (process CPU time
// from process.cpuUsage, and main-thread sampled time). Memcached comes from @memkit/testing;
// everything listens on 127.0.0.1 and every process started here is stopped.
//
// Scenarios: fastify-limiter, fastify-limiter-peer, fastify-session, fastify-session-peer,
//            cache-hit-2kb-fastify, cache-hit-2kb-express, no-cache-2kb-fastify, no-cache-2kb-express,
//            prebuilt-2kb-fastify, prebuilt-2kb-express (the floor under a hit: the same body
//            serialized once at start-up, no cache)
// Options:   --duration=<s> (default 6), --warmup=<s> (default 2), --connections=<n> (default: the
//            benchmark's), --interval=<µs> (sampling interval, default 500), --top=<n> (default 15),
//            --out=<dir> (default <tmp>/memkit-profiles), --bare (no profiler: CPU per request only)
// Compare two saved summaries (memkit against the peer): npm run profile -- --compare <a.json> <b.json>
import { type ChildProcess, fork } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import {
  type CpuProfile,
  familyOf,
  type Share,
  SOCKET_WRITE,
  type Summary,
  summarise,
} from './lib/cpuprofile.js'
import type { Mark } from './lib/profile-child.js'

interface Scenario {
  title: string
  /** The benchmark file whose app (child) mode serves the app. */
  file: string
  args: (memcached: string) => string[]
  env?: (memcached: string) => Record<string, string>
  path: string
  connections: number
  /** Session cookies: one session per connection, created through this path. */
  sessions?: string
  /** Responses must carry this X-Cache value once warm. */
  expectCache?: string
}

const limiter = (setup: string): Scenario => ({
  title: `Fastify + ${setup.split(': ')[1]}, GET / (rate-limit.bench.ts)`,
  file: 'rate-limit.bench.ts',
  args: (memcached) => ['--serve', setup, '--direct', memcached, '--relayed', memcached],
  path: '/',
  connections: 32,
})
const session = (id: string): Scenario => ({
  title: `Fastify + @fastify/session, ${id === 'fastify:memory' ? 'in-memory store' : '@memkit/session store'}, GET /read (session.bench.ts)`,
  file: 'session.bench.ts',
  args: () => [],
  env: (memcached) => ({ MEMKIT_BENCH_APP: JSON.stringify({ id, address: memcached }) }),
  path: '/read',
  connections: 50,
  sessions: '/modify',
})
const cache = (id: string, title: string, expectCache?: string): Scenario => ({
  title: `${title}, GET /products, 2 KB JSON (response-cache.bench.ts)`,
  file: 'response-cache.bench.ts',
  args: (memcached) => [`--serve=${id}`, `--memcached=${memcached}`, '--body=2k'],
  path: '/products',
  connections: 50,
  ...(expectCache ? { expectCache } : {}),
})

const prebuilt = (framework: 'fastify' | 'express'): Scenario => ({
  title: `${framework === 'fastify' ? 'Fastify' : 'Express'}, GET /products answered with the 2 KB JSON serialized once at start-up, no cache (lib/prebuilt-app.ts)`,
  file: 'lib/prebuilt-app.ts',
  args: () => [`--framework=${framework}`],
  path: '/products',
  connections: 50,
})

const SCENARIOS: Record<string, Scenario> = {
  'fastify-limiter': limiter('fastify: memkit'),
  'fastify-limiter-peer': limiter('fastify: @fastify/rate-limit memory'),
  'fastify-session': session('fastify:memkit'),
  'fastify-session-peer': session('fastify:memory'),
  'cache-hit-2kb-fastify': cache('fastify-memkit', 'Fastify + @memkit/response-cache hits', 'HIT'),
  'cache-hit-2kb-express': cache('express-memkit', 'Express + @memkit/response-cache hits', 'HIT'),
  'no-cache-2kb-fastify': cache('fastify-reference', 'Fastify, no work and no cache (reference)'),
  'no-cache-2kb-express': cache('express-reference', 'Express, no work and no cache (reference)'),
  // The floor under a hit: the same response, serialized once at start-up (lib/prebuilt-app.ts).
  'prebuilt-2kb-fastify': prebuilt('fastify'),
  'prebuilt-2kb-express': prebuilt('express'),
}

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    duration: { type: 'string', default: '6' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string' },
    interval: { type: 'string', default: '500' },
    top: { type: 'string', default: '15' },
    out: { type: 'string', default: join(tmpdir(), 'memkit-profiles') },
    bare: { type: 'boolean', default: false },
    compare: { type: 'boolean', default: false },
  },
})

interface Saved {
  scenario: string
  title: string
  date: string
  load: { before: string; after: string }
  connections: number
  seconds: number
  requests: number
  /** Process CPU time (user + system, all threads) per request, µs. */
  cpuPerRequest: number
  /** The main thread's scheduler counters (Linux), µs per request. */
  mainThread?: { onCpu: number; waiting: number; slices: number; user?: number; system?: number }
  /** Process CPU time per request in user mode and in the kernel (system calls: socket I/O, epoll). */
  user?: number
  system?: number
  summary?: Summary
}

const here = fileURLToPath(new URL('.', import.meta.url))
const perRequest = (micros: number, saved: Saved) => micros / saved.requests
const us = (n: number) => n.toFixed(2).padStart(7)
const pct = (n: number) => `${(100 * n).toFixed(1).padStart(5)}%`

/**
 * The profiler samples wall-clock time: a sample lands on whatever the main thread was doing when
 * it was last running, so time spent waiting for a CPU (preempted by the load generator and
 * memcached on a busy machine) is counted too, mostly at the socket writes that wake them. The
 * rest of the samples are spread like the CPU time, so the user-mode estimate below takes the
 * shares of the samples outside socket writes, (program) and idle, times the process's user time.
 */
const NOT_USER = new Set(['(idle)', '(program)', SOCKET_WRITE])

if (args.compare) {
  const [a, b] = positionals.map((file) => JSON.parse(readFileSync(file, 'utf8')) as Saved)
  if (!a?.summary || !b?.summary)
    throw new Error('--compare needs two summary .json files written by a profiled run')
  compare(a, b, Number(args.top))
} else {
  const name = positionals[0]
  const scenario = name ? SCENARIOS[name] : undefined
  if (!name || !scenario) {
    console.error(`usage: npm run profile -- <${Object.keys(SCENARIOS).join('|')}> [--duration=6] [--bare]`)
    process.exit(2)
  }
  await profile(name, scenario)
}

async function profile(name: string, scenario: Scenario): Promise<void> {
  const { startMemcached, stopAll } = await import('@memkit/testing')
  const connections = Number(args.connections ?? scenario.connections)
  const seconds = Number(args.duration)
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  const dir = join(args.out!, `${name}-${stamp}${args.bare ? '-bare' : ''}`)
  mkdirSync(dir, { recursive: true })
  const marksFile = join(dir, 'marks.json')
  const memcached = await startMemcached({ memoryMb: 256 })
  const loadBefore = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')
  let child: ChildProcess | undefined
  try {
    const execArgv = [
      ...(args.bare ? [] : ['--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-interval=${args.interval}`]),
      '--import',
      'tsx',
      '--import',
      join(here, 'lib', 'profile-child.ts'),
    ]
    child = fork(join(here, scenario.file), scenario.args(memcached.address), {
      cwd: here,
      execArgv,
      env: { ...process.env, ...scenario.env?.(memcached.address), MEMKIT_PROFILE_MARKS: marksFile },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    const started = child
    const port = await new Promise<number>((resolve, reject) => {
      started.once('message', (message) => resolve(portOf(message)))
      started.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)))
    })
    const url = `http://127.0.0.1:${port}${scenario.path}`
    const cookies = scenario.sessions
      ? await seedSessions(`http://127.0.0.1:${port}${scenario.sessions}`, connections)
      : []
    if (scenario.expectCache) {
      for (let i = 0; i < 2; i++) {
        const res = await fetch(url)
        await res.arrayBuffer()
        if (i === 1 && res.headers.get('x-cache') !== scenario.expectCache)
          throw new Error(`expected X-Cache ${scenario.expectCache}, got ${res.headers.get('x-cache')}`)
      }
    }
    await drive(url, connections, Number(args.warmup), cookies)
    const cpuBefore = await cpuMicros(started)
    const result = await drive(url, connections, seconds, cookies)
    const cpu = (await cpuMicros(started)) - cpuBefore
    await stop(started)
    child = undefined
    const loadAfter = loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')
    const requests = result.requests.total
    const failed = result.errors + result.timeouts + result.non2xx
    if (failed) throw new Error(`${failed} of ${requests} requests failed`)
    const saved: Saved = {
      scenario: name,
      title: scenario.title,
      date: new Date().toISOString(),
      load: { before: loadBefore, after: loadAfter },
      connections,
      seconds,
      requests,
      cpuPerRequest: cpu / requests,
    }
    const marks = JSON.parse(readFileSync(marksFile, 'utf8')) as Mark[]
    const [from, to] = [marks[0], marks[1]]
    if (from && to) {
      saved.user = (to.user - from.user) / requests
      saved.system = (to.system - from.system) / requests
      if (from.sched && to.sched)
        saved.mainThread = {
          onCpu: (to.sched.onCpu - from.sched.onCpu) / requests,
          waiting: (to.sched.waiting - from.sched.waiting) / requests,
          slices: (to.sched.slices - from.sched.slices) / requests,
          ...(from.thread && to.thread
            ? {
                user: (to.thread.user - from.thread.user) / requests,
                system: (to.thread.system - from.thread.system) / requests,
              }
            : {}),
        }
    }
    console.log(`${name}: ${scenario.title}`)
    console.log(
      `  ${connections} connections, ${seconds} s: ${requests} requests, ${(requests / seconds).toFixed(0)} req/s; load average (1, 5, 15 min) ${loadBefore} before, ${loadAfter} after`,
    )
    console.log(
      `  process CPU ${saved.cpuPerRequest.toFixed(2)} µs/req (all threads, ${args.bare ? 'no profiler' : 'under the profiler'}): user ${saved.user?.toFixed(2)}, system ${saved.system?.toFixed(2)} (the kernel: socket reads and writes, epoll)`,
    )
    if (saved.mainThread)
      console.log(
        `  main thread: on a CPU ${saved.mainThread.onCpu.toFixed(2)} µs/req (user ${saved.mainThread.user?.toFixed(2)}, system ${saved.mainThread.system?.toFixed(2)}), runnable but waiting for a CPU ${saved.mainThread.waiting.toFixed(2)} µs/req, scheduled in ${saved.mainThread.slices.toFixed(3)} times per request; other threads (GC helpers, JIT compilers${args.bare ? '' : ', the profiler'}) ${(saved.cpuPerRequest - saved.mainThread.onCpu).toFixed(2)} µs/req`,
      )
    if (!args.bare) {
      const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))
      if (!file) throw new Error(`no .cpuprofile in ${dir}`)
      const window = from && to ? { from: from.at, to: to.at } : undefined
      const cpuProfile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile
      if (!window || window.from < cpuProfile.startTime || window.to > cpuProfile.endTime)
        throw new Error('the measured window is not inside the profile')
      saved.summary = summarise(cpuProfile, window)
      print(saved, Number(args.top))
      console.log(`\n  profile: ${join(dir, file)}`)
      saved.summary.functions = saved.summary.functions.slice(0, 300)
      saved.summary.functionsByOrigin = saved.summary.functionsByOrigin.slice(0, 300)
    }
    const summaryFile = join(dir, 'summary.json')
    writeFileSync(summaryFile, JSON.stringify(saved, null, 1))
    console.log(`  summary: ${summaryFile}`)
  } finally {
    if (child) child.kill('SIGKILL')
    await stopAll()
  }
}

function portOf(message: unknown): number {
  if (typeof message === 'number') return message
  const m = message as { port?: number; ports?: number[] }
  return m.port ?? m.ports![0]!
}

/** The app's CPU time so far; the benchmark apps answer any message with it. */
function cpuMicros(app: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    app.once('message', (message) =>
      resolve(typeof message === 'number' ? message : (message as { cpu: number }).cpu),
    )
    app.send('cpu')
  })
}

/** SIGTERM: lib/profile-child.ts exits normally so that the profile is written; SIGKILL after 20 s. */
function stop(app: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => app.kill('SIGKILL'), 20_000)
    app.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    app.kill('SIGTERM')
  })
}

/** One session per connection, as session.bench.ts seeds them. */
async function seedSessions(url: string, count: number): Promise<string[]> {
  const cookies: string[] = []
  for (let i = 0; i < count; i++) {
    const res = await fetch(url)
    const setCookie = res.headers.get('set-cookie')
    if (!res.ok || !setCookie) throw new Error(`seeding failed: ${res.status} ${await res.text()}`)
    cookies.push(setCookie.split(';')[0]!)
  }
  return cookies
}

function drive(url: string, connections: number, seconds: number, cookies: string[]) {
  let next = 0
  return autocannon({
    url,
    connections,
    duration: seconds,
    ...(cookies.length
      ? {
          setupClient: (client: { setHeaders(headers: Record<string, string>): void }) => {
            client.setHeaders({ cookie: cookies[next++ % cookies.length]! })
          },
        }
      : {}),
  })
}

/** The main thread's user time per request (the process's, all threads, when /proc is not there). */
function mainUser(saved: Saved): number | undefined {
  return saved.mainThread?.user ?? saved.user
}

function print(saved: Saved, top: number): void {
  const s = saved.summary!
  const busy = s.window.micros - s.idle
  const writes = s.selfByGroup.find((g) => g.name === SOCKET_WRITE)?.micros ?? 0
  console.log(
    `  main thread, sampled: ${s.window.samples} samples over ${(s.window.micros / 1e6).toFixed(2)} s; idle ${pct(s.idle / s.window.micros)}, busy ${perRequest(busy, saved).toFixed(2)} µs/req (wall clock: includes waiting for a CPU)`,
  )
  console.log(
    `  of the busy samples: socket writes ${pct(writes / busy)}, GC ${pct(s.gc / busy)}, (program) ${pct(s.program / busy)} (native work outside JS: libuv socket reads, the HTTP parser, epoll), the rest (JS and other native calls) ${pct((s.code - writes) / busy)}`,
  )
  const table = (title: string, rows: Share[], n: number, withGroup: boolean, scale = 1, of = busy) => {
    console.log(`\n  ${title}\n     µs/req   share  ${withGroup ? 'group'.padEnd(34) : ''}name`)
    for (const row of rows.slice(0, n))
      console.log(
        `    ${us(perRequest(row.micros * scale, saved))}  ${pct(row.micros / of)}  ${withGroup ? row.group.padEnd(34) : ''}${row.name}`,
      )
  }
  const families = new Map<string, number>()
  for (const g of s.selfByGroup.filter((g) => g.name !== '(idle)'))
    families.set(familyOf(g.name), (families.get(familyOf(g.name)) ?? 0) + g.micros)
  const familyRows = [...families]
    .map(([name, micros]) => ({ name, group: name, micros }))
    .sort((a, b) => b.micros - a.micros)
  table('sampled (wall-clock) time by family', familyRows, 20, false)
  const selfGroups = s.selfByGroup.filter((g) => g.name !== '(idle)')
  table('sampled time by group', selfGroups, 25, false)
  table('inclusive sampled time by group (a frame of it on the stack)', s.inclusiveByGroup, 20, false)
  table(`top ${top} functions by sampled self time`, s.functions, top, true)
  table(
    `top ${top} functions by self time, by the library that called into them`,
    s.functionsByOrigin,
    top,
    false,
  )
  table('entry points (bottom frame of the stack)', s.entryPoints, 12, true)
  const user = mainUser(saved)
  if (user !== undefined) {
    const userSampled = selfGroups.filter((g) => !NOT_USER.has(g.name)).reduce((sum, g) => sum + g.micros, 0)
    const scale = (user * saved.requests) / userSampled
    table(
      `estimated user CPU by family (shares of the ${pct(userSampled / busy).trim()} of busy samples outside socket writes and (program), x the main thread's user time, ${user.toFixed(2)} µs/req)`,
      familyRows.filter((f) => !NOT_USER.has(f.name)),
      20,
      false,
      scale,
      userSampled,
    )
    table(
      'estimated user CPU by group',
      selfGroups.filter((g) => !NOT_USER.has(g.name)),
      25,
      false,
      scale,
      userSampled,
    )
    table(
      `estimated user CPU, top ${top} functions`,
      s.functions.filter((f) => !NOT_USER.has(f.group)),
      top,
      true,
      scale,
      userSampled,
    )
  }
}

function compare(a: Saved, b: Saved, top: number): void {
  const sa = a.summary!
  const sb = b.summary!
  console.log(`${a.scenario} (A) against ${b.scenario} (B), µs per request`)
  console.log(
    `  process CPU: A ${a.cpuPerRequest.toFixed(2)}  B ${b.cpuPerRequest.toFixed(2)}  A - B ${(a.cpuPerRequest - b.cpuPerRequest).toFixed(2)}`,
  )
  const busyA = sa.window.micros - sa.idle
  const busyB = sb.window.micros - sb.idle
  console.log(
    `  main thread busy: A ${perRequest(busyA, a).toFixed(2)}  B ${perRequest(busyB, b).toFixed(2)}  A - B ${(perRequest(busyA, a) - perRequest(busyB, b)).toFixed(2)}`,
  )
  const diff = (title: string, ra: Share[], rb: Share[], n: number) => {
    const keys = new Set([...ra.map((r) => r.name), ...rb.map((r) => r.name)])
    const rows = [...keys].map((key) => {
      const x = perRequest(ra.find((r) => r.name === key)?.micros ?? 0, a)
      const y = perRequest(rb.find((r) => r.name === key)?.micros ?? 0, b)
      return { key, x, y, d: x - y }
    })
    rows.sort((p, q) => Math.abs(q.d) - Math.abs(p.d))
    console.log(`\n  ${title}\n          A        B    A - B  name`)
    for (const row of rows.slice(0, n))
      console.log(`    ${us(row.x)}  ${us(row.y)}  ${us(row.d)}  ${row.key}`)
  }
  const families = (s: Summary) => {
    const map = new Map<string, number>()
    for (const g of s.selfByGroup.filter((g) => g.name !== '(idle)'))
      map.set(familyOf(g.name), (map.get(familyOf(g.name)) ?? 0) + g.micros)
    return [...map].map(([name, micros]) => ({ name, group: name, micros }))
  }
  if (a.user !== undefined && b.user !== undefined && a.system !== undefined && b.system !== undefined) {
    const [ta, tb] = [a.mainThread, b.mainThread]
    if (
      ta?.user !== undefined &&
      tb?.user !== undefined &&
      ta.system !== undefined &&
      tb.system !== undefined
    )
      console.log(
        `  main thread user: A ${ta.user.toFixed(2)}  B ${tb.user.toFixed(2)}  A - B ${(ta.user - tb.user).toFixed(2)};  main thread system: A ${ta.system.toFixed(2)}  B ${tb.system.toFixed(2)}  A - B ${(ta.system - tb.system).toFixed(2)};  other threads: A ${(a.cpuPerRequest - ta.onCpu).toFixed(2)}  B ${(b.cpuPerRequest - tb.onCpu).toFixed(2)}`,
      )
    console.log(
      `  user: A ${a.user.toFixed(2)}  B ${b.user.toFixed(2)}  A - B ${(a.user - b.user).toFixed(2)};  system: A ${a.system.toFixed(2)}  B ${b.system.toFixed(2)}  A - B ${(a.system - b.system).toFixed(2)}`,
    )
    // Each side's user-mode estimate (see print()), in µs per request, so the rows subtract.
    const userRows = (saved: Saved, rows: Share[]) => {
      const s = saved.summary!
      const sampled = s.selfByGroup.filter((g) => !NOT_USER.has(g.name)).reduce((sum, g) => sum + g.micros, 0)
      const scale = (mainUser(saved)! * saved.requests) / sampled
      return rows.filter((r) => !NOT_USER.has(r.group)).map((r) => ({ ...r, micros: r.micros * scale }))
    }
    diff('estimated user CPU by family', userRows(a, families(sa)), userRows(b, families(sb)), 20)
    diff('estimated user CPU by group', userRows(a, sa.selfByGroup), userRows(b, sb.selfByGroup), 25)
    diff(
      'estimated user CPU by function (largest differences)',
      userRows(a, sa.functions),
      userRows(b, sb.functions),
      top,
    )
  }
  diff('sampled time by family', families(sa), families(sb), 20)
  diff(
    'sampled time by group',
    sa.selfByGroup.filter((g) => g.name !== '(idle)'),
    sb.selfByGroup.filter((g) => g.name !== '(idle)'),
    25,
  )
  diff('inclusive sampled time by group', sa.inclusiveByGroup, sb.inclusiveByGroup, 20)
  diff('functions by sampled self time (largest differences)', sa.functions, sb.functions, top)
  diff(
    'functions by self time and calling library (largest differences)',
    sa.functionsByOrigin,
    sb.functionsByOrigin,
    top,
  )
  diff('entry points', sa.entryPoints, sb.entryPoints, 12)
}
