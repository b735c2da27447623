// npm run bench:client — the client against the wire and against its peers, on one local
// memcached, in interleaved rounds (every contender once per round; the median round is reported,
// with CPU microseconds per operation and the load average):
//
//   1. gets at concurrency 200 (200-byte values): memkit vs the raw pipelined meta loop
//      (benchmarks/lib/wire-loop.ts) and vs memjs, memcached, memcache-client; and at concurrency 1
//   2. the value-size sweep: get and set of string and Buffer values of 1 KB to 1 MB, memkit vs
//      memjs (memjs's Buffer decoded to a string too for string values), in MB/s
//   3. getMany of 10, 100 and 1000 keys
//
// Options: --duration=<ms per round> (default 1500), --rounds=<n> (default 3),
//          --only=<section,...> (wire, peers, sizes, getmany)
import { parseArgs } from 'node:util'
import { createClient } from '@memkit/client'
import { startMemcached, stopAll } from '@memkit/testing'
import { MemcacheClient } from 'memcache-client'
import Memcached from 'memcached'
import memjs from 'memjs'
import { type Contender, type Figures, interleave, loadAverage } from './lib/interleave.js'
import { machine, printComparison, type Row } from './lib/report.js'
import { wireLoop } from './lib/wire-loop.js'

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '1500' },
    rounds: { type: 'string', default: '3' },
    only: { type: 'string' },
  },
})
const durationMs = Number(args.duration)
const rounds = Number(args.rounds)
const sections = new Set(args.only?.split(',') ?? ['wire', 'peers', 'sizes', 'getmany'])

const MIB = 1024 * 1024
const server = await startMemcached({ memoryMb: 512, itemSize: '2m' })
const address = server.address
const value = 'v'.repeat(200)
const keys = Array.from({ length: 1000 }, (_, i) => `bench:key:${i}`)

const memkit = createClient({ servers: address, maxItemSize: 2 * MIB })
const memjsClient = memjs.Client.create(address, { logger: { log: () => {} } })
const memcached = new Memcached(address)
const memcacheClient = new MemcacheClient({ server: address })
for (const key of keys) await memkit.set(key, value)

console.log(
  `client benchmark: ${machine()}, memcached at ${address}, ${rounds} interleaved rounds of ${durationMs} ms, load average ${loadAverage()}`,
)
const rows: Row[] = []
let counter = 0
const nextKey = () => keys[counter++ % keys.length]!

function record(scenario: string, figures: Figures[], extra?: (f: Figures) => string): void {
  for (const f of figures) {
    rows.push({
      scenario,
      library: f.name,
      value: f.opsPerSec,
      unit: 'ops/s',
      extra: `${f.cpuMicros.toFixed(2)} µs CPU/op${f.p50 ? `  p50 ${f.p50.toFixed(0)} µs  p99 ${f.p99.toFixed(0)} µs` : ''}${f.errors ? `  errors ${f.errors}` : ''}${extra ? `  ${extra(f)}` : ''}`,
    })
  }
}

if (sections.has('wire')) {
  const contenders: Contender[] = [
    { name: 'wire loop', run: (ms) => wireLoop(server.host, server.port, keys, 200, ms) },
    { name: 'memkit', op: () => memkit.get(nextKey()) },
  ]
  const figures = await interleave(contenders, { concurrency: 200, durationMs, rounds, latency: false })
  const loop = figures[0]!
  record('get, concurrency 200, 200-byte values (vs the raw pipelined loop)', figures, (f) =>
    f === loop
      ? ''
      : `${(f.opsPerSec / loop.opsPerSec).toFixed(2)} of the loop, CPU ${(f.cpuMicros / loop.cpuMicros).toFixed(2)}x`,
  )
}

if (sections.has('peers')) {
  const peers: Contender[] = [
    { name: 'memkit', op: () => memkit.get(nextKey()) },
    { name: 'memjs', op: () => memjsClient.get(nextKey()) },
    {
      name: 'memcached',
      op: () =>
        new Promise((resolve, reject) =>
          memcached.get(nextKey(), (e: unknown, d: unknown) => (e ? reject(e) : resolve(d))),
        ),
    },
    { name: 'memcache-client', op: () => memcacheClient.get(nextKey()) },
  ]
  for (const concurrency of [1, 200]) {
    record(
      `get, concurrency ${concurrency}, 200-byte values`,
      await interleave(peers, { concurrency, durationMs, rounds }),
    )
  }
}

if (sections.has('sizes')) {
  for (const size of [1024, 10 * 1024, 100 * 1024, 500 * 1024, MIB]) {
    const label = size >= MIB ? `${size / MIB} MB` : `${size / 1024} KB`
    const text = 'x'.repeat(size - 100) + 'é'.repeat(50) // a string with multi-byte characters
    const bytes = Buffer.alloc(size, 7)
    const textKey = `bench:size:text:${size}`
    const bytesKey = `bench:size:bytes:${size}`
    await memkit.set(textKey, text)
    await memkit.set(bytesKey, bytes)
    const concurrency = size >= 100 * 1024 ? 8 : 50
    const mbps = (f: Figures) => `${((f.opsPerSec * size) / MIB).toFixed(0)} MB/s`
    const sweep = async (name: string, contenders: Contender[]) =>
      record(
        `${name} ${label}, concurrency ${concurrency}`,
        await interleave(contenders, { concurrency, durationMs, rounds }),
        mbps,
      )
    await sweep('get string', [
      { name: 'memkit', op: () => memkit.get(textKey) },
      { name: 'memjs', op: async () => (await memjsClient.get(textKey)).value?.toString() },
    ])
    await sweep('get Buffer', [
      { name: 'memkit', op: () => memkit.get(bytesKey) },
      { name: 'memjs', op: () => memjsClient.get(bytesKey) },
    ])
    await sweep('set string', [
      { name: 'memkit', op: () => memkit.set(`${textKey}:w`, text) },
      { name: 'memjs', op: () => memjsClient.set(`${textKey}:m`, text, { expires: 0 }) },
    ])
    await sweep('set Buffer', [
      { name: 'memkit', op: () => memkit.set(`${bytesKey}:w`, bytes) },
      { name: 'memjs', op: () => memjsClient.set(`${bytesKey}:m`, bytes, { expires: 0 }) },
    ])
  }
}

if (sections.has('getmany')) {
  for (const count of [10, 100, 1000]) {
    const batch = keys.slice(0, count)
    record(
      `getMany of ${count} keys, concurrency 10`,
      await interleave(
        [
          { name: 'memkit', op: () => memkit.getMany(batch) },
          { name: 'memjs', op: () => Promise.all(batch.map((k) => memjsClient.get(k))) },
          {
            name: 'memcached',
            op: () =>
              new Promise((resolve, reject) =>
                memcached.getMulti(batch, (e: unknown, d: unknown) => (e ? reject(e) : resolve(d))),
              ),
          },
        ],
        { concurrency: 10, durationMs, rounds },
      ),
    )
  }
}

printComparison(rows, 'memjs', 'Client: memkit vs the wire and vs memjs, memcached, memcache-client')
console.log(`\nload average after the run: ${loadAverage()}`)
await memkit.close()
memjsClient.close()
memcached.end()
memcacheClient.shutdown()
await stopAll()
process.exit(0)
