// npm run bench:client — memkit vs memjs, memcached (3rd-Eden) and memcache-client against one
// local memcached, in one run: get and set at concurrency 1, 50 and 200 with 200-byte values,
// and getMany of 100 keys. Prints ops/s, latency, and the ratio to memjs.
//
// Options: --duration=<ms per measurement> (default 2000), --only=<library,...>
import { parseArgs } from 'node:util'
import { createClient } from '@memkit/client'
import { startMemcached, stopAll } from '@memkit/testing'
import { MemcacheClient } from 'memcache-client'
import Memcached from 'memcached'
import memjs from 'memjs'
import { measure } from './lib/measure.js'
import { machine, printComparison, type Row } from './lib/report.js'

const { values: args } = parseArgs({
  options: { duration: { type: 'string', default: '2000' }, only: { type: 'string' } },
})
const durationMs = Number(args.duration)

interface Adapter {
  name: string
  get(key: string): Promise<unknown>
  set(key: string, value: string): Promise<unknown>
  /** One call fetching many keys; libraries without multi-get issue parallel gets. */
  getMany(keys: string[]): Promise<unknown>
  note?: string
  close(): Promise<void> | void
}

const server = await startMemcached({ memoryMb: 256 })
const address = server.address
const value = 'v'.repeat(200)
const keys = Array.from({ length: 1000 }, (_, i) => `bench:key:${i}`)
const batch = keys.slice(0, 100)

function memkit(): Adapter {
  const client = createClient({ servers: address })
  return {
    name: 'memkit',
    get: (key) => client.get(key),
    set: (key, v) => client.set(key, v),
    getMany: (list) => client.getMany(list),
    close: () => client.close(),
  }
}

function memjsAdapter(): Adapter {
  const client = memjs.Client.create(address)
  return {
    name: 'memjs',
    get: (key) => client.get(key),
    set: (key, v) => client.set(key, v, { expires: 0 }),
    getMany: (list) => Promise.all(list.map((key) => client.get(key))),
    note: 'no multi-get: parallel gets',
    close: () => client.close(),
  }
}

function memcachedAdapter(): Adapter {
  const client = new Memcached(address)
  return {
    name: 'memcached',
    get: (key) =>
      new Promise((resolve, reject) =>
        client.get(key, (e: unknown, d: unknown) => (e ? reject(e) : resolve(d))),
      ),
    set: (key, v) =>
      new Promise((resolve, reject) =>
        client.set(key, v, 0, (e: unknown) => (e ? reject(e) : resolve(true))),
      ),
    getMany: (list) =>
      new Promise((resolve, reject) =>
        client.getMulti(list, (e: unknown, d: unknown) => (e ? reject(e) : resolve(d))),
      ),
    close: () => client.end(),
  }
}

function memcacheClientAdapter(): Adapter {
  const client = new MemcacheClient({ server: address })
  return {
    name: 'memcache-client',
    get: (key) => client.get(key),
    set: (key, v) => client.set(key, v),
    getMany: (list) => client.get(list),
    close: () => client.shutdown(),
  }
}

const factories = [memkit, memjsAdapter, memcachedAdapter, memcacheClientAdapter]
const only = args.only?.split(',')
const adapters = factories.map((make) => make()).filter((a) => !only || only.includes(a.name))

console.log(`client benchmark: ${machine()}, memcached at ${address}, ${durationMs} ms per measurement`)
// Seed every key once so gets hit.
const seed = adapters[0]!
for (const key of keys) await seed.set(key, value)

const rows: Row[] = []
let counter = 0
const nextKey = () => keys[counter++ % keys.length]!

const scenarios: Array<{ name: string; concurrency: number; run: (a: Adapter) => () => Promise<unknown> }> =
  []
for (const concurrency of [1, 50, 200]) {
  scenarios.push({ name: `get, concurrency ${concurrency}`, concurrency, run: (a) => () => a.get(nextKey()) })
}
for (const concurrency of [1, 50, 200]) {
  scenarios.push({
    name: `set, concurrency ${concurrency}`,
    concurrency,
    run: (a) => () => a.set(nextKey(), value),
  })
}
scenarios.push({
  name: 'getMany of 100 keys, concurrency 10',
  concurrency: 10,
  run: (a) => () => a.getMany(batch),
})

for (const scenario of scenarios) {
  for (const adapter of adapters) {
    const result = await measure(scenario.run(adapter), { concurrency: scenario.concurrency, durationMs })
    rows.push({
      scenario: scenario.name,
      library: adapter.name,
      value: result.opsPerSec,
      unit: 'ops/s',
      extra: `p50 ${result.p50.toFixed(0)} µs  p99 ${result.p99.toFixed(0)} µs${result.errors ? `  errors ${result.errors}` : ''}${scenario.name.startsWith('getMany') && adapter.note ? `  (${adapter.note})` : ''}`,
    })
  }
}

printComparison(rows, 'memjs', 'Client: memkit vs memjs, memcached, memcache-client')
for (const adapter of adapters) await adapter.close()
await stopAll()
process.exit(0)
