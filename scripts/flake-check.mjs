#!/usr/bin/env node
// npm run flake-check: `npm test` several times in a row while other processes keep every core
// busy, to show the suite does not depend on a quiet machine (issue 17: a test that orders
// events by sleeping, or asserts a duration, fails here sooner or later).
//
//   npm run flake-check                      5 runs, one CPU burner per core, this Node only
//   npm run flake-check -- --runs 3 --burners 1
//   MEMKIT_NODE_LINES=22,24 npm run flake-check   the other Node lines too (much longer)
//
// It stops at the first failing run. Each run's output goes to .flake-check/run-<n>.log; the
// summary gives every run's result and duration and the load average seen. Everything it starts
// is bounded: a run is killed (with its whole process group) after --run-timeout minutes, and the
// burners stop when this script ends, is killed, or outlives its own bound.
import { spawn } from 'node:child_process'
import { createWriteStream, mkdirSync } from 'node:fs'
import { availableParallelism, loadavg } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

const root = join(new URL('.', import.meta.url).pathname, '..')
const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    burners: { type: 'string', default: String(availableParallelism()) },
    'run-timeout': { type: 'string', default: '30' },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (flags.help) {
  console.log('usage: npm run flake-check -- [--runs 5] [--burners <cores>] [--run-timeout <minutes, 30>]')
  process.exit(0)
}
const runs = wholeNumber(flags.runs, '--runs')
const burnerCount = wholeNumber(flags.burners, '--burners', 0)
const runTimeoutMs = wholeNumber(flags['run-timeout'], '--run-timeout') * 60_000
const logDir = join(root, '.flake-check')
mkdirSync(logDir, { recursive: true })
const env = { ...process.env, MEMKIT_NODE_LINES: process.env.MEMKIT_NODE_LINES ?? 'none' }

// A burner spins on one core. It checks, every 100 ms of spinning, that this script is still its
// parent and that its bound has not passed, so it cannot outlive the check even if this script
// is SIGKILLed.
const burnerBoundMs = runs * runTimeoutMs + 60_000
const burnerSource = `
  const parent = process.ppid
  const end = Date.now() + ${burnerBoundMs}
  for (;;) {
    const slice = Date.now() + 100
    while (Date.now() < slice) {}
    if (process.ppid !== parent || Date.now() > end) process.exit(0)
  }
`
const burners = Array.from({ length: burnerCount }, () =>
  spawn(process.execPath, ['-e', burnerSource], { stdio: 'ignore' }),
)
let current
function stopEverything() {
  for (const burner of burners) burner.kill('SIGKILL')
  if (current?.pid) killGroup(current.pid)
}
process.on('exit', stopEverything)
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    stopEverything()
    process.exit(130)
  })
}

console.log(
  `flake-check: ${runs} × npm test (MEMKIT_NODE_LINES=${env.MEMKIT_NODE_LINES}) with ${burnerCount} CPU burner(s) on ${availableParallelism()} core(s); logs in .flake-check/`,
)
const results = []
for (let run = 1; run <= runs; run++) {
  const log = join(logDir, `run-${run}.log`)
  const started = Date.now()
  const loads = []
  const sampler = setInterval(() => loads.push(loadavg()[0]), 5000)
  const outcome = await runOnce(log)
  clearInterval(sampler)
  const minutes = ((Date.now() - started) / 60_000).toFixed(1)
  const load = loads.length ? (loads.reduce((a, b) => a + b, 0) / loads.length).toFixed(1) : '-'
  results.push({ run, outcome, minutes, load })
  console.log(`run ${run}: ${outcome} in ${minutes} min (mean 1-min load average ${load})`)
  if (outcome !== 'passed') break
}
stopEverything()

const passed = results.filter((r) => r.outcome === 'passed').length
console.log(
  `\n${passed} of ${runs} runs passed in a row${passed === runs ? '' : ` (see ${join('.flake-check', `run-${results.at(-1).run}.log`)})`}`,
)
process.exit(passed === runs ? 0 : 1)

function runOnce(log) {
  return new Promise((resolve) => {
    const out = createWriteStream(log)
    // Its own process group, so a run that hangs is killed whole (npm, turbo, node, servers).
    current = spawn('npm', ['test'], { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    current.stdout.pipe(out)
    current.stderr.pipe(out)
    const timer = setTimeout(() => {
      out.write(`\nflake-check: killed after ${runTimeoutMs / 60_000} minutes\n`)
      killGroup(current.pid)
    }, runTimeoutMs)
    // 'close', not 'exit': the run's output is fully piped to its log by then.
    current.on('close', (code, signal) => {
      clearTimeout(timer)
      current = undefined
      out.end()
      resolve(code === 0 ? 'passed' : signal ? `killed (${signal})` : `failed (exit ${code})`)
    })
  })
}

function killGroup(pid) {
  try {
    process.kill(-pid, 'SIGKILL')
  } catch {
    // already gone
  }
}

function wholeNumber(value, name, min = 1) {
  const n = Number(value)
  if (!Number.isInteger(n) || n < min) {
    console.error(`flake-check: ${name} must be a whole number >= ${min}`)
    process.exit(2)
  }
  return n
}
