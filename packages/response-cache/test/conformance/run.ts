// One conformance run in its own process (the suite keeps its state in module globals):
//   node --import tsx test/conformance/run.ts <express|fastify> <memcached host:port> [id,id,...]
// Prints one JSON line: { adapter, results, required, passedRequired }. With ids, runs only those.
import { createClient } from '@memkit/client'
import { getResults, runTests } from 'http-cache-tests/client/runner.mjs'
import suites from 'http-cache-tests/tests/index.mjs'
import { startExpress, startFastify } from './apps.js'

const [adapter, address, only] = process.argv.slice(2)
if ((adapter !== 'express' && adapter !== 'fastify') || !address) {
  console.error('usage: run.ts <express|fastify> <memcached host:port>')
  process.exit(2)
}

// The suite logs setup problems of the origin with console.log; keep stdout for the result.
const log = console.log
console.log = (...args: unknown[]) => console.error(...args)

const client = createClient({ servers: address })
const app = adapter === 'express' ? await startExpress(client) : await startFastify(client)
try {
  const ids = only ? new Set(only.split(',')) : undefined
  const selected = ids
    ? suites.map((suite) => ({ ...suite, tests: suite.tests.filter((t) => ids.has(t.id)) }))
    : suites
  await runTests(selected, fetch, false, app.base)
  const results = getResults()
  const required: string[] = []
  for (const suite of suites) {
    for (const test of suite.tests) {
      if (test.browser_only) continue
      if (test.kind === undefined || test.kind === 'required') required.push(test.id)
    }
  }
  log(
    JSON.stringify({
      adapter,
      results,
      required: required.length,
      passedRequired: required.filter((id) => results[id] === true).length,
    }),
  )
} finally {
  await app.close()
  await client.close()
}
