// The expected results of the conformance run (expected-results.json): the suite's own verdict
// for every test on each adapter, and a reason for each deliberate deviation. What the build
// demands of a run is here too, so the test and the update script read the same rules.
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { SuiteTest, Verdict } from './suite.js'

export const ADAPTERS = ['express', 'fastify'] as const
export type Adapter = (typeof ADAPTERS)[number]

/** Passing tests the build demands on every adapter (the target), fixed here, not in the file. */
export const MINIMUM = { required: 155, optimal: 90 } as const

/** What a shared cache must never get wrong: any of these failing (without a listed reason) fails the build. */
export const SECURITY =
  /^(?:cc-resp-no-store|cc-resp-private-shared$|other-authorization$|vary-|heuristic-.+-not_cached$|invalidate-|cdn-private$|cdn-no-store)/

/** The reason an update writes for a new deviation; the test refuses it until a person explains. */
export const UNEXPLAINED = 'TODO: explain why this test does not pass, or fix it'

export interface ExpectedResults {
  /** The vendored revision these verdicts were recorded against (vendor/SOURCE.json). */
  suite: { commit: string; required: number; optimal: number; check: number }
  /** Test id -> why memkit does not pass it (required and optimal tests only). */
  deviations: Record<string, string>
  /** Adapter -> test id -> the suite's verdict. */
  verdicts: Record<Adapter, Record<string, Verdict>>
}

const PATH = fileURLToPath(new URL('./expected-results.json', import.meta.url))

export function readExpected(): ExpectedResults {
  return JSON.parse(readFileSync(PATH, 'utf8')) as ExpectedResults
}

export function writeExpected(expected: ExpectedResults): void {
  writeFileSync(PATH, `${JSON.stringify(expected, null, 2)}\n`)
}

export function kindOf(test: SuiteTest | undefined): 'required' | 'optimal' | 'check' {
  return test?.kind ?? 'required'
}

/** A verdict that counts as passing for its kind ('yes'/'no' are answers to checks, not failures). */
export function passes(verdict: Verdict | undefined): boolean {
  return verdict === 'pass'
}

/** Passing required and optimal tests of one adapter's verdicts. */
export function score(
  verdicts: Record<string, Verdict>,
  tests: ReadonlyMap<string, SuiteTest>,
): { required: number; optimal: number } {
  const out = { required: 0, optimal: 0 }
  for (const [id, verdict] of Object.entries(verdicts)) {
    const kind = kindOf(tests.get(id))
    if (kind !== 'check' && passes(verdict)) out[kind]++
  }
  return out
}

/** Required and optimal tests that do not pass on some adapter. */
export function deviating(
  verdicts: Record<Adapter, Record<string, Verdict>>,
  tests: ReadonlyMap<string, SuiteTest>,
): Set<string> {
  const out = new Set<string>()
  for (const adapter of ADAPTERS)
    for (const [id, verdict] of Object.entries(verdicts[adapter]))
      if (kindOf(tests.get(id)) !== 'check' && !passes(verdict)) out.add(id)
  return out
}
