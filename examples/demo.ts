// npm run demo [express]: starts the example shop (Fastify by default) with a memcached it
// finds or starts, prints the URL and a few commands to try, and cleans up on Ctrl-C.
//
// Backend, in this order: MEMCACHED_SERVERS when set; else a memcached binary on PATH, started
// on a free loopback port and stopped on exit; else the embedded in-process backend.
import { existsSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { startMemcached } from '@memkit/testing'
import { tryLines } from './shared/catalog.js'

const framework = process.argv.includes('express') ? 'express' : 'fastify'
const label = framework === 'express' ? 'Express' : 'Fastify'

function onPath(binary: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, binary))) return join(dir, binary)
  }
  return undefined
}

/** Where the demo keeps its state; `resets`: a restart of the demo starts with empty counters. */
async function chooseBackend(): Promise<{
  servers: string
  lines: string[]
  resets: boolean
  stop(): Promise<void>
}> {
  const configured = process.env.MEMCACHED_SERVERS?.trim()
  if (configured) {
    return {
      servers: configured,
      lines: [`Backend: memcached at ${configured} (from MEMCACHED_SERVERS)`],
      resets: false,
      stop: async () => {},
    }
  }
  const binary = onPath('memcached')
  if (binary) {
    try {
      const server = await startMemcached({ binary })
      return {
        servers: server.address,
        lines: [`Backend: memcached (${binary}) started on ${server.address}; it stops when the demo exits`],
        resets: true,
        stop: () => server.stop(),
      }
    } catch (error) {
      console.warn(`Could not start ${binary}: ${(error as Error).message.split('\n')[0]}`)
    }
  }
  return {
    servers: 'memory://demo',
    lines: [
      'Backend: the embedded in-process backend (memory://), because no memcached was found on PATH.',
      '         Sessions, rate limits and cached pages then live in this process only (not shared',
      '         between processes); it is for development and tests, not production.',
      '         Install memcached (apt-get install memcached) or set MEMCACHED_SERVERS to use a real one.',
    ],
    resets: true,
    stop: async () => {},
  }
}

const backend = await chooseBackend()
for (const line of backend.lines) console.log(line)
const { start } = (await import(
  `./${framework}-app/src/server.ts`
)) as typeof import('./fastify-app/src/server.js')

// PORT set: that port or nothing (a script or a proxy expects it there). Not set: 3000, or a
// free port when 3000 is taken, said out loud.
const explicitPort = process.env.PORT?.trim() ? Number(process.env.PORT) : undefined
if (
  explicitPort !== undefined &&
  !(Number.isInteger(explicitPort) && explicitPort >= 0 && explicitPort < 65536)
) {
  await refuse(`PORT=${process.env.PORT} is not a port number (0-65535; 0 picks a free one).`)
}
let running: Awaited<ReturnType<typeof start>>
let moved = ''
try {
  running = await start({ servers: backend.servers, port: explicitPort ?? 3000 })
} catch (error) {
  if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error
  if (explicitPort !== undefined) {
    await refuse(
      `Port ${explicitPort} is already in use (PORT=${explicitPort}); the demo did not start.\n` +
        `Stop what is listening there, or pick another port: PORT=3001 npm run demo${framework === 'express' ? ' express' : ''}`,
    )
  }
  running = await start({ servers: backend.servers, port: 0 })
  moved = `Port 3000 is in use, so the demo took a free port instead (set PORT to choose one; it then refuses a taken port).`
}

console.log(`\nmemkit demo shop (${label}) listening on ${running.url}\n`)
if (moved) console.log(`${moved}\n`)
console.log(`Status page: ${running.url}/memkit (open it in a browser)   Metrics: ${running.url}/metrics`)
console.log('Demo logins: admin / swordfish (may change prices), alice / wonderland\n')
console.log('Try:')
for (const line of tryLines(running.url)) console.log(`  ${line}`)
console.log(`
The login limit counts failed and successful attempts per client address, 5 per 15 minutes.
To try again before the window ends: restart the demo${backend.resets ? ' (its memcached starts empty)' : ' after flushing your memcached, or wait'},
or act as another client: the demo trusts proxies on loopback, so add -H 'x-forwarded-for: 203.0.113.9'.`)
console.log('\nCtrl-C stops the demo.')

let stopping = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return
    stopping = true
    void running
      .stop()
      .then(() => backend.stop())
      .finally(() => process.exit(0))
  })
}

async function refuse(message: string): Promise<never> {
  console.error(`\n${message}`)
  await backend.stop()
  process.exit(1)
}
