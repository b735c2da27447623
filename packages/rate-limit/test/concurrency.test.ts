// Exact counts under concurrency: several application processes, each with its own memkit
// client, share one memcached; 500 concurrent requests for one key, spread over them, must get
// exactly `limit` successes.
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { Agent, request } from 'node:http'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { type MemcachedServer, startMemcached, stopAll } from '@memkit/testing'
import { RateLimiter } from '../src/limiter.js'
import { uniquePrefix } from './helpers.js'

const FIXTURE = fileURLToPath(new URL('./fixtures/app-process.ts', import.meta.url))
const FRAMEWORKS = ['express', 'fastify', 'express', 'fastify']
const FIXED_LIMIT = 137
const SLIDING_LIMIT = 61
const REQUESTS = 500

let mc: MemcachedServer
let prefix = ''
const children: ChildProcess[] = []
const ports: number[] = []

function startApp(framework: string, prefix: string): Promise<number> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', FIXTURE, framework, mc.address, prefix, String(FIXED_LIMIT), String(SLIDING_LIMIT)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  children.push(child)
  return new Promise((resolve, reject) => {
    let out = ''
    let err = ''
    const timer = setTimeout(() => reject(new Error(`${framework} app did not start: ${err}`)), 30_000)
    child.stderr!.on('data', (chunk: Buffer) => {
      err += chunk.toString()
    })
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      const match = /\{"port":(\d+)\}/.exec(out)
      if (match) {
        clearTimeout(timer)
        resolve(Number(match[1]))
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${framework} app exited with ${code}: ${err}`))
    })
  })
}

before(async () => {
  mc = await startMemcached()
  prefix = uniquePrefix('conc')
  ports.push(...(await Promise.all(FRAMEWORKS.map((framework) => startApp(framework, prefix)))))
})

after(async () => {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve()
          child.once('exit', () => resolve())
          child.kill('SIGKILL')
        }),
    ),
  )
  await stopAll()
})

/** A key whose current window has over a minute left, so a burst cannot straddle two windows. */
function keyWithRoom(name: string): string {
  // The apps' limiter, as far as windows go: the same prefix, name and window length.
  const limiter = new RateLimiter({ servers: mc.address, prefix, name, windowMs: '1 hour' })
  for (let i = 0; ; i++) {
    const key = `key-${i}`
    if (limiter.windowFor(key).end - Date.now() > 60_000) return key
  }
}

/** Fires all requests at once (one socket each) and tallies the statuses. */
async function burst(path: string, key: string): Promise<Map<number, number>> {
  const agent = new Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY })
  try {
    const statuses = await Promise.all(
      Array.from(
        { length: REQUESTS },
        (_, i) =>
          new Promise<number>((resolve, reject) => {
            const req = request(
              { host: '127.0.0.1', port: ports[i % ports.length], path, agent, headers: { 'x-key': key } },
              (res) => {
                res.resume()
                res.on('end', () => resolve(res.statusCode ?? 0))
              },
            )
            req.setTimeout(20_000, () => req.destroy(new Error('request timed out')))
            req.on('error', reject)
            req.end()
          }),
      ),
    )
    const tally = new Map<number, number>()
    for (const status of statuses) tally.set(status, (tally.get(status) ?? 0) + 1)
    return tally
  } finally {
    agent.destroy()
  }
}

test(`fixed window: ${REQUESTS} concurrent requests over 4 processes allow exactly ${FIXED_LIMIT}`, async () => {
  const tally = await burst('/fixed', keyWithRoom('fixed'))
  assert.deepEqual(Object.fromEntries(tally), { 200: FIXED_LIMIT, 429: REQUESTS - FIXED_LIMIT })
})

test(`sliding window (empty previous window): exactly ${SLIDING_LIMIT} allowed`, async () => {
  const tally = await burst('/sliding', keyWithRoom('sliding'))
  assert.deepEqual(Object.fromEntries(tally), { 200: SLIDING_LIMIT, 429: REQUESTS - SLIDING_LIMIT })
})
