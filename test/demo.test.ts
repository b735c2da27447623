// `npm run demo` on a machine with and without memcached: it must choose its backend, say so,
// serve the shop, and stop everything it started when interrupted.
import assert from 'node:assert/strict'
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { startMemcached, stopAll } from '@memkit/testing'

after(stopAll)

const root = fileURLToPath(new URL('..', import.meta.url))
const running = new Set<ChildProcessWithoutNullStreams>()
after(() => {
  for (const child of running) child.kill('SIGKILL')
})

/** Spawns the demo script (PORT=0 unless `env` says otherwise) and collects what it prints. */
function spawnDemo(args: string[], env: Record<string, string | undefined>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/demo.ts', ...args], {
    cwd: root,
    env: { ...process.env, PORT: '0', MEMCACHED_SERVERS: undefined, ...env },
  })
  running.add(child)
  const printed = { text: '' }
  child.stdout.on('data', (chunk: Buffer) => {
    printed.text += chunk.toString()
  })
  child.stderr.on('data', (chunk: Buffer) => {
    printed.text += chunk.toString()
  })
  return { child, printed }
}

/** Starts the demo script and resolves once it prints its URL; returns its output so far. */
async function startDemo(args: string[], env: Record<string, string | undefined>) {
  const { child, printed } = spawnDemo(args, env)
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the demo printed no URL in 20 s:\n${printed.text}`)),
      20_000,
    )
    const check = () => {
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(printed.text)
      if (match && /Ctrl-C stops the demo/.test(printed.text)) {
        clearTimeout(timer)
        resolve(match[1]!)
      }
    }
    child.stdout.on('data', check)
    child.once('exit', (code) => reject(new Error(`the demo exited (${code}):\n${printed.text}`)))
  })
  return {
    url,
    output: () => printed.text,
    async stop(): Promise<number | null> {
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
      child.kill('SIGINT')
      const code = await exited
      running.delete(child)
      return code
    },
  }
}

async function walkShop(url: string) {
  const first = await fetch(`${url}/api/products`)
  assert.equal(first.status, 200)
  assert.equal(first.headers.get('x-cache'), 'MISS')
  assert.equal(first.headers.get('x-ratelimit-limit'), '100')
  assert.equal((await fetch(`${url}/api/products`)).headers.get('x-cache'), 'HIT')
  const home = (await (await fetch(url)).json()) as { try: string[] }
  assert.ok(home.try.length > 3)
  const status = (await (await fetch(`${url}/memkit?format=json`)).json()) as {
    servers: Array<{ up: boolean }>
  }
  assert.equal(status.servers[0]!.up, true)
}

/** Runs the demo to its exit (it is expected to refuse to start). */
async function runDemoToExit(env: Record<string, string | undefined>) {
  const { child, printed } = spawnDemo([], env)
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  running.delete(child)
  return { code, output: printed.text }
}

/** Holds a loopback port (a free one, or `port` when it can), as another program would. */
async function occupy(port = 0): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer()
  const bound = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => resolve(true))
  })
  const address = server.address()
  return {
    // Not bound: something else already holds `port`, which serves the test as well.
    port: bound && typeof address === 'object' && address ? address.port : port,
    close: () => new Promise((resolve) => (bound ? server.close(() => resolve()) : resolve())),
  }
}

function portOpen(address: string): Promise<boolean> {
  const [host, port] = address.split(':')
  return new Promise((resolve) => {
    const socket = connect({ host, port: Number(port) })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

describe('npm run demo', () => {
  test('with memcached on PATH: starts one on a free port, serves the Fastify shop, stops it on Ctrl-C', async () => {
    const demo = await startDemo([], {})
    assert.match(demo.output(), /memkit demo shop \(Fastify\)/)
    const started = /Backend: memcached \(.+\) started on (127\.0\.0\.1:\d+)/.exec(demo.output())
    assert.ok(started, demo.output())
    await walkShop(demo.url)
    assert.equal(await portOpen(started[1]!), true)
    assert.equal(await demo.stop(), 0)
    assert.equal(await portOpen(started[1]!), false, 'the memcached it started is gone')
  })

  test('without memcached anywhere: the embedded backend, saying that state is per-process', async () => {
    const emptyPath = mkdtempSync(join(tmpdir(), 'memkit-no-memcached-'))
    const demo = await startDemo(['express'], { PATH: emptyPath })
    assert.match(demo.output(), /memkit demo shop \(Express\)/)
    assert.match(demo.output(), /embedded in-process backend \(memory:\/\/\)/)
    assert.match(demo.output(), /live in this process only/)
    await walkShop(demo.url)
    assert.equal(await demo.stop(), 0)
  })

  test('prints what to try, logout included, in words that fit any desktop, and how to reset the login limit', async () => {
    const demo = await startDemo([], {})
    const text = demo.output()
    assert.match(text, /-X POST http:\/\/127\.0\.0\.1:\d+\/logout/)
    assert.doesNotMatch(text, /^\s*(xdg-)?open /m, 'no platform-specific open command')
    assert.match(text, /\/memkit \(open it in a browser\)/)
    assert.match(text, /login limit .* 5 per 15 minutes/)
    assert.match(text, /restart the demo \(its memcached starts empty\)/)
    assert.match(text, /x-forwarded-for: 203\.0\.113\.9/)
    // The hint works: a sixth attempt from one address is refused, another address is not.
    const attempt = (address: string) =>
      fetch(`${demo.url}/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': address },
        body: '{}',
      })
    for (let i = 0; i < 5; i++) assert.equal((await attempt('198.51.100.1')).status, 401)
    assert.equal((await attempt('198.51.100.1')).status, 429)
    assert.equal((await attempt('203.0.113.9')).status, 401)
    assert.equal(await demo.stop(), 0)
  })

  test('an explicit PORT that is taken: refuses to start, says why, stops the memcached it started', async () => {
    const taken = await occupy()
    try {
      const { code, output } = await runDemoToExit({ PORT: String(taken.port) })
      assert.equal(code, 1, output)
      assert.match(
        output,
        new RegExp(`Port ${taken.port} is already in use \\(PORT=${taken.port}\\); the demo did not start`),
      )
      assert.match(output, /PORT=3001 npm run demo/)
      const started = /started on (127\.0\.0\.1:\d+)/.exec(output)
      assert.ok(started, output)
      assert.equal(await portOpen(started[1]!), false, 'the memcached it started is stopped')
    } finally {
      await taken.close()
    }
  })

  test('no PORT and 3000 taken: takes a free port and says so', async () => {
    const taken = await occupy(3000)
    try {
      const demo = await startDemo([], { PORT: undefined })
      assert.match(demo.output(), /Port 3000 is in use, so the demo took a free port instead/)
      assert.notEqual(new URL(demo.url).port, '3000')
      await walkShop(demo.url)
      assert.equal(await demo.stop(), 0)
    } finally {
      await taken.close()
    }
  })

  test('MEMCACHED_SERVERS wins over everything', async () => {
    const server = await startMemcached()
    const demo = await startDemo([], { MEMCACHED_SERVERS: server.address })
    assert.match(
      demo.output(),
      new RegExp(`Backend: memcached at ${server.address} \\(from MEMCACHED_SERVERS\\)`),
    )
    await walkShop(demo.url)
    assert.equal(await demo.stop(), 0)
    assert.equal(await portOpen(server.address), true, 'a server the demo did not start is left running')
  })
})
