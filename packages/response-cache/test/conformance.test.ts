// The public HTTP caching test suite (npm http-cache-tests 0.4.5) against both adapters, each in
// its own process, backed by one real memcached. Fails on any regression from
// test/conformance/expected.json, on any failure in the security-relevant groups, or when fewer
// than `minimumRequired` required tests pass. MEMKIT_UPDATE_CONFORMANCE=1 rewrites the expected
// list from this run (review the diff before committing it).
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { type MemcachedServer, startMemcached, stopAll } from '@memkit/testing'

const here = fileURLToPath(new URL('./conformance/', import.meta.url))
const expectedPath = `${here}expected.json`

interface Expected {
  minimumRequired: number
  /** Tests in the security groups that fail on purpose, with the README's reason. */
  deviations: Record<string, string>
  adapters: Record<'express' | 'fastify', { passedRequired: number; passed: string[] }>
}

interface Run {
  adapter: string
  results: Record<string, true | [string, string]>
  required: number
  passedRequired: number
}

// The groups the build refuses to fail: what a shared cache must never get wrong.
const SECURITY =
  /^(?:cc-resp-no-store|cc-resp-private-shared$|other-authorization$|vary-|heuristic-.+-not_cached$|invalidate-)/

function run(adapter: string, address: string, only?: string[]): Promise<Run> {
  const args = ['--import', 'tsx', `${here}run.ts`, adapter, address]
  if (only) args.push(only.join(','))
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      args,
      { timeout: 240_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout) => {
        if (error) {
          reject(error)
          return
        }
        const line = stdout.trim().split('\n').at(-1)!
        resolve(JSON.parse(line) as Run)
      },
    )
    child.stderr?.resume()
  })
}

let server: MemcachedServer
const runs = new Map<string, Run>()
const expected = JSON.parse(readFileSync(expectedPath, 'utf8')) as Expected
const update = process.env.MEMKIT_UPDATE_CONFORMANCE === '1'

before(async () => {
  server = await startMemcached({ memoryMb: 64 })
  const [express, fastify] = await Promise.all([
    run('express', server.address),
    run('fastify', server.address),
  ])
  runs.set('express', express)
  runs.set('fastify', fastify)
})
after(stopAll)

for (const adapter of ['express', 'fastify'] as const) {
  describe(`http-cache-tests against the ${adapter} adapter`, () => {
    test('no regression from the committed result list (a failure is retried once, alone)', async () => {
      const result = runs.get(adapter)!
      if (update) {
        expected.adapters[adapter] = {
          passedRequired: result.passedRequired,
          passed: Object.keys(result.results).filter((id) => result.results[id] === true),
        }
        writeFileSync(expectedPath, `${JSON.stringify(expected, null, 2)}\n`)
        return
      }
      let failing = expected.adapters[adapter].passed.filter((id) => result.results[id] !== true)
      if (failing.length > 0) {
        // Timing-based tests can trip on a loaded machine; a real regression fails twice.
        const retry = await run(adapter, server.address, failing)
        failing = failing.filter((id) => retry.results[id] !== true)
      }
      assert.deepEqual(
        failing.map((id) => [id, result.results[id]]),
        [],
        'tests that passed before fail now',
      )
    })

    test('every security-relevant test passes (no-store, private, Authorization, Vary, 5xx, invalidation)', () => {
      const result = runs.get(adapter)!
      const ids = Object.keys(result.results).filter((id) => SECURITY.test(id))
      assert.ok(ids.length >= 40, `only ${ids.length} security tests ran`)
      const failed = ids.filter((id) => result.results[id] !== true && !(id in expected.deviations))
      assert.deepEqual(
        failed.map((id) => [id, result.results[id]]),
        [],
      )
    })

    test(`at least the committed minimum of required tests passes`, () => {
      const result = runs.get(adapter)!
      console.log(`${adapter}: ${result.passedRequired} of ${result.required} runnable required tests pass`)
      assert.ok(
        result.passedRequired >= expected.minimumRequired,
        `${result.passedRequired} required tests passed, minimum ${expected.minimumRequired}`,
      )
    })
  })
}
