// Runs the suite against one adapter in a child process (run.ts) and turns the raw results into
// the suite's verdicts. Tests whose verdict differs from what is expected run once more, alone
// with what they depend on: a loaded machine can trip a timing-based test once; a real change
// in behaviour fails twice.
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Adapter } from './oracle.js'
import { type RawResult, type SuiteTest, type Verdict, verdicts } from './suite.js'

const RUN = fileURLToPath(new URL('./run.ts', import.meta.url))

export function runAdapter(
  adapter: Adapter,
  memcached: string,
  only?: Iterable<string>,
): Promise<Record<string, RawResult>> {
  const args = ['--import', 'tsx', RUN, adapter, memcached]
  if (only) args.push([...only].join(','))
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      args,
      { timeout: 300_000, maxBuffer: 32 * 1024 * 1024 },
      (error, stdout) => {
        if (error) {
          reject(error)
          return
        }
        const line = stdout.trim().split('\n').at(-1)!
        resolve((JSON.parse(line) as { results: Record<string, RawResult> }).results)
      },
    )
    child.stderr?.resume()
  })
}

export interface AdapterRun {
  /** The suite's verdict per test id, after the retry. */
  verdicts: Record<string, Verdict>
  /** Ids that differed from `expected` on the first run (retried). */
  retried: string[]
}

/** One adapter's verdicts; tests that differ from `expected` are run a second time. */
export async function settledRun(
  adapter: Adapter,
  memcached: string,
  tests: ReadonlyMap<string, SuiteTest>,
  expected: Record<string, Verdict> | undefined,
): Promise<AdapterRun> {
  const results = await runAdapter(adapter, memcached)
  const first = await verdicts(results)
  const retried = expected ? Object.keys(first).filter((id) => first[id] !== expected[id]) : []
  if (retried.length === 0) return { verdicts: first, retried }
  const again = await runAdapter(adapter, memcached, withDependencies(retried, tests))
  return { verdicts: await verdicts({ ...results, ...again }), retried }
}

function withDependencies(ids: string[], tests: ReadonlyMap<string, SuiteTest>): Set<string> {
  const out = new Set<string>()
  const add = (id: string) => {
    if (out.has(id)) return
    out.add(id)
    for (const dependency of tests.get(id)?.depends_on ?? []) add(dependency)
  }
  for (const id of ids) add(id)
  return out
}
