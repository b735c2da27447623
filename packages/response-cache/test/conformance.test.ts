// The public HTTP caching test suite (http-tests/cache-tests, newest revision, vendored under
// test/conformance/vendor) with memkit as a reverse proxy in front of the suite's own origin
// server, on both adapters, backed by a real memcached. The suite's own verdict of every test must
// be the one recorded in test/conformance/expected-results.json; every test that does not pass
// must be explained there; security-relevant tests must pass; and the scores must reach MINIMUM.
// `npm run conformance:update` records a new run, but cannot make a failing run pass (see update.ts).
import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'
import { useMemcached } from '@memkit/testing'
import {
  ADAPTERS,
  type Adapter,
  deviating,
  kindOf,
  MINIMUM,
  passes,
  readExpected,
  SECURITY,
  score,
  UNEXPLAINED,
} from './conformance/oracle.js'
import { type AdapterRun, settledRun } from './conformance/runs.js'
import { type SuiteTest, sharedCacheTests, source } from './conformance/suite.js'

const expected = readExpected()
const { server } = await useMemcached({ memcached: { memoryMb: 64 } })
let tests: Map<string, SuiteTest>
const runs = new Map<Adapter, AdapterRun>()

before(async () => {
  tests = await sharedCacheTests()
  const done = await Promise.all(
    ADAPTERS.map((adapter) => settledRun(adapter, server.address, tests, expected.verdicts[adapter])),
  )
  for (const [i, adapter] of ADAPTERS.entries()) runs.set(adapter, done[i]!)
})

test('the expected results were recorded against the vendored revision of the suite', () => {
  assert.equal(expected.suite.commit, source.commit)
  const count = (kind: string) => [...tests.values()].filter((t) => kindOf(t) === kind).length
  assert.deepEqual(
    { required: count('required'), optimal: count('optimal'), check: count('check') },
    { required: expected.suite.required, optimal: expected.suite.optimal, check: expected.suite.check },
  )
})

test('every test that does not pass is a listed deviation with a reason, and every deviation is one', () => {
  const open = deviating(expected.verdicts, tests)
  const unexplained = [...open].filter(
    (id) => !expected.deviations[id] || expected.deviations[id] === UNEXPLAINED,
  )
  assert.deepEqual(unexplained, [], 'deviations without a reason')
  const stale = Object.keys(expected.deviations).filter((id) => !open.has(id))
  assert.deepEqual(stale, [], 'listed as deviations but passing on both adapters')
})

for (const adapter of ADAPTERS) {
  describe(`cache-tests against the ${adapter} adapter`, () => {
    test('the suite gives every test the recorded verdict (tests that differ run once more, alone)', (t) => {
      const { verdicts, retried } = runs.get(adapter)!
      const recorded = expected.verdicts[adapter]
      assert.deepEqual(Object.keys(verdicts).sort(), Object.keys(recorded).sort(), 'the same tests ran')
      const changed = Object.keys(recorded)
        .filter((id) => verdicts[id] !== recorded[id])
        .map((id) => `${id}: expected ${recorded[id]}, got ${verdicts[id]}`)
      if (retried.length) t.diagnostic(`ran again after a first difference: ${retried.join(', ')}`)
      assert.deepEqual(changed, [])
    })

    test('every security-relevant test passes (no-store, private, Authorization, Vary, 5xx, invalidation, CDN-Cache-Control)', () => {
      const { verdicts } = runs.get(adapter)!
      const ids = Object.keys(verdicts).filter((id) => SECURITY.test(id) && kindOf(tests.get(id)) !== 'check')
      assert.ok(ids.length >= 40, `only ${ids.length} security tests ran`)
      const failed = ids.filter((id) => !passes(verdicts[id]) && !(id in expected.deviations))
      assert.deepEqual(failed, [])
    })

    test(`at least ${MINIMUM.required} of ${expected.suite.required} required and ${MINIMUM.optimal} of ${expected.suite.optimal} optimal tests pass`, (t) => {
      const got = score(runs.get(adapter)!.verdicts, tests)
      t.diagnostic(
        `${got.required}/${expected.suite.required} required, ${got.optimal}/${expected.suite.optimal} optimal`,
      )
      assert.ok(got.required >= MINIMUM.required, `${got.required} required tests pass`)
      assert.ok(got.optimal >= MINIMUM.optimal, `${got.optimal} optimal tests pass`)
    })
  })
}
