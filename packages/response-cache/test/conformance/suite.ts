// The vendored suite (vendor/cache-tests, see vendor/SOURCE.json), loaded by path: its plain
// ES modules keep their run state in module globals, so each run is its own process.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const VENDOR = new URL('./vendor/cache-tests/', import.meta.url)

export interface SuiteTest {
  id: string
  kind?: 'required' | 'optimal' | 'check'
  browser_only?: boolean
  depends_on?: string[]
  dump?: boolean
}

export interface SuiteGroup {
  id: string
  name: string
  tests: SuiteTest[]
}

/** A test's raw outcome as the suite's runner records it. */
export type RawResult = true | [name: string, message: string]

/** The suite's verdict names (its `resultTypes`), the words the expected-results file uses. */
export type Verdict =
  | 'pass'
  | 'fail'
  | 'optional_fail'
  | 'yes'
  | 'no'
  | 'setup_fail'
  | 'harness_fail'
  | 'dependency_fail'
  | 'retry'
  | 'untested'

export interface Source {
  repository: string
  commit: string
  date: string
  license: string
}

export const source: Source = JSON.parse(
  readFileSync(fileURLToPath(new URL('./vendor/SOURCE.json', import.meta.url)), 'utf8'),
) as Source

async function load<T>(path: string): Promise<T> {
  return (await import(new URL(path, VENDOR).href)) as T
}

export async function suites(): Promise<SuiteGroup[]> {
  return (await load<{ default: SuiteGroup[] }>('tests/index.mjs')).default
}

/** The tests a shared (non-browser) cache runs, by id. */
export async function sharedCacheTests(): Promise<Map<string, SuiteTest>> {
  const out = new Map<string, SuiteTest>()
  for (const group of await suites())
    for (const test of group.tests) if (!test.browser_only) out.set(test.id, test)
  return out
}

/**
 * Runs the suite (or the tests named in `only`) against `base`; the raw result per test id.
 * `dump`: the suite prints every request and response of those tests (on stdout).
 */
export async function runSuite(
  base: string,
  only?: ReadonlySet<string>,
  dump = false,
): Promise<Record<string, RawResult>> {
  const runner = await load<{
    runTests(groups: SuiteGroup[], browserCache: boolean, base: string, chunkSize?: number): Promise<void>
    getResults(): Record<string, RawResult>
  }>('test-engine/client/runner.mjs')
  const all = await suites()
  const selected = only
    ? all.map((g) => ({ ...g, tests: g.tests.filter((t) => only.has(t.id)).map((t) => ({ ...t, dump })) }))
    : all
  await runner.runTests(selected, false, base, CHUNK)
  return runner.getResults()
}

/** Tests run at once. The suite's default is 25; its pauses (3 s) dominate, so larger chunks finish sooner. */
const CHUNK = 100

/** The suite's own verdict for each test (dependencies honoured), with its own `determineTestResult`. */
export async function verdicts(results: Record<string, RawResult>): Promise<Record<string, Verdict>> {
  const lib = await load<{
    resultTypes: Record<Verdict, unknown>
    determineTestResult(groups: SuiteGroup[], id: string, results: Record<string, RawResult>): unknown
  }>('test-engine/lib/results.mjs')
  const all = await suites()
  const names = new Map([...Object.entries(lib.resultTypes)].map(([name, type]) => [type, name as Verdict]))
  const out: Record<string, Verdict> = {}
  for (const id of Object.keys(results).sort())
    out[id] = names.get(lib.determineTestResult(all, id, results))!
  return out
}
