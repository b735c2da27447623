// Records a new conformance run in expected-results.json: `npm run conformance:update` in this
// package, after a change that moves verdicts on purpose. It cannot make a failing build pass:
// a required or optimal test that stops passing gets the reason UNEXPLAINED, which the test
// rejects until a person writes the real one (or fixes the cache); the minimum scores and the
// security list live in the test, not in the file. Review the diff before committing.
import { startMemcached, stopAll } from '@memkit/testing'
import {
  ADAPTERS,
  deviating,
  type ExpectedResults,
  readExpected,
  score,
  UNEXPLAINED,
  writeExpected,
} from './oracle.js'
import { settledRun } from './runs.js'
import { sharedCacheTests, source } from './suite.js'

const tests = await sharedCacheTests()
const previous = readExpected()
const server = await startMemcached({ memoryMb: 64 })
try {
  const runs = await Promise.all(
    ADAPTERS.map((adapter) => settledRun(adapter, server.address, tests, previous.verdicts[adapter])),
  )
  const count = (kind: string) => [...tests.values()].filter((t) => (t.kind ?? 'required') === kind).length
  const next: ExpectedResults = {
    suite: {
      commit: source.commit,
      required: count('required'),
      optimal: count('optimal'),
      check: count('check'),
    },
    deviations: {},
    verdicts: { express: runs[0]!.verdicts, fastify: runs[1]!.verdicts },
  }
  for (const id of [...deviating(next.verdicts, tests)].sort())
    next.deviations[id] = previous.deviations[id] ?? UNEXPLAINED
  writeExpected(next)
  for (const adapter of ADAPTERS) {
    const before = previous.verdicts[adapter] ?? {}
    const after = next.verdicts[adapter]
    const changed = Object.keys(after).filter((id) => before[id] !== after[id])
    console.log(`${adapter}:`, score(after, tests), `${changed.length} verdicts changed`)
    for (const id of changed) console.log(`  ${id}: ${before[id] ?? '(new)'} -> ${after[id]}`)
  }
  const unexplained = Object.keys(next.deviations).filter((id) => next.deviations[id] === UNEXPLAINED)
  if (unexplained.length) console.log(`explain or fix (the test fails until then): ${unexplained.join(', ')}`)
} finally {
  await stopAll()
}
