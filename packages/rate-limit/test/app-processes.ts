// Application processes for the concurrency tests: each runs fixtures/app-process.ts (an
// Express or Fastify app with its own memkit client) and is killed by `stopApps()`.
import { type ChildProcess, spawn } from 'node:child_process'
import { Agent, request } from 'node:http'
import { fileURLToPath } from 'node:url'
import type { ClientOptions } from '@memkit/client'
import { RateLimiter } from '../src/limiter.js'

const FIXTURE = fileURLToPath(new URL('./fixtures/app-process.ts', import.meta.url))
const children: ChildProcess[] = []

export interface AppLimits {
  prefix: string
  fixed: number
  sliding: number
}

/** Starts one app process limiting /fixed and /sliding by the x-key header; resolves with its port. */
export function startApp(
  framework: 'express' | 'fastify',
  client: ClientOptions,
  limits: AppLimits,
): Promise<number> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      FIXTURE,
      framework,
      JSON.stringify(client),
      limits.prefix,
      String(limits.fixed),
      String(limits.sliding),
    ],
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

/** Kills every app process this file started. */
export async function stopApps(): Promise<void> {
  await Promise.all(
    children.splice(0).map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve()
          child.once('exit', () => resolve())
          child.kill('SIGKILL')
        }),
    ),
  )
}

/** Fires `count` requests at once (one socket each), spread over `ports`, and tallies the statuses. */
export async function burst(
  ports: readonly number[],
  path: string,
  key: string,
  count: number,
): Promise<Record<number, number>> {
  const agent = new Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY })
  try {
    const statuses = await Promise.all(
      Array.from(
        { length: count },
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
    const tally: Record<number, number> = {}
    for (const status of statuses) tally[status] = (tally[status] ?? 0) + 1
    return tally
  } finally {
    agent.destroy()
  }
}

/**
 * A key whose window (for the fixture apps' limiter `name`, one-hour windows) has over a minute
 * left, so a burst cannot straddle two windows.
 */
export async function keyWithRoom(prefix: string, name: string): Promise<string> {
  // The apps' limiter, as far as windows go: the same prefix, name and window length.
  const limiter = new RateLimiter({ servers: '127.0.0.1:1', prefix, name, windowMs: '1 hour' })
  try {
    for (let i = 0; ; i++) {
      const key = `key-${i}`
      if (limiter.windowFor(key).end - Date.now() > 60_000) return key
    }
  } finally {
    await limiter.close()
  }
}
