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

async function chooseBackend(): Promise<{ servers: string; lines: string[]; stop(): Promise<void> }> {
  const configured = process.env.MEMCACHED_SERVERS?.trim()
  if (configured) {
    return {
      servers: configured,
      lines: [`Backend: memcached at ${configured} (from MEMCACHED_SERVERS)`],
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
    stop: async () => {},
  }
}

const backend = await chooseBackend()
const { start } = (await import(
  `./${framework}-app/src/server.ts`
)) as typeof import('./fastify-app/src/server.js')
const requested = Number(process.env.PORT ?? 3000)
let running: Awaited<ReturnType<typeof start>>
try {
  running = await start({ servers: backend.servers, port: requested })
} catch (error) {
  if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error
  // Port taken: any free port will do for a demo.
  running = await start({ servers: backend.servers, port: 0 })
}

console.log(`\nmemkit demo shop (${label}) listening on ${running.url}\n`)
for (const line of backend.lines) console.log(line)
console.log(`Status page: ${running.url}/memkit   Metrics: ${running.url}/metrics`)
console.log('Demo logins: admin / swordfish (may change prices), alice / wonderland\n')
console.log('Try:')
for (const line of tryLines(running.url)) console.log(`  ${line}`)
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
