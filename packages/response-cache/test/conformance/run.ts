// One conformance run of one adapter, in its own process (the suite keeps its state in module
// globals): starts the suite's origin server and memkit in front of it, runs the suite, and
// prints one JSON line { adapter, results } on stdout.
//   node --import tsx test/conformance/run.ts <express|fastify> <memcached host:port> [id,id,...] [--dump]
// With ids, runs only those; --dump shows their requests and responses (on stderr).
import { createClient } from '@memkit/client'
import { startExpress, startFastify } from './apps.js'
import { startOrigin } from './origin.js'
import { runSuite } from './suite.js'

const dump = process.argv.includes('--dump')
const [adapter, address, only] = process.argv.slice(2).filter((a) => a !== '--dump')
if ((adapter !== 'express' && adapter !== 'fastify') || !address) {
  console.error('usage: run.ts <express|fastify> <memcached host:port> [id,id,...]')
  process.exit(2)
}

// The suite reports setup problems with console.log; keep stdout for the result line.
const print = console.log
console.log = (...args: unknown[]) => console.error(...args)

const origin = await startOrigin()
const client = createClient({ servers: address })
const app =
  adapter === 'express' ? await startExpress(client, origin.url) : await startFastify(client, origin.url)
try {
  const results = await runSuite(app.base, only ? new Set(only.split(',')) : undefined, dump)
  print(JSON.stringify({ adapter, results }))
} finally {
  await app.close()
  await client.close()
  await origin.stop()
}
