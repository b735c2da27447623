import { appendFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { basename } from 'node:path'

export interface Row {
  scenario: string
  library: string
  value: number
  unit: string
  extra?: string
}

/**
 * Prints one table per scenario with each library's figure and its ratio to the baseline
 * library. Under `npm run bench` (MEMKIT_BENCH_OUTPUT set) it also records the rows, which
 * the runner turns into benchmarks/results/<date>.json and BENCHMARKS.md.
 */
export function printComparison(rows: Row[], baseline: string, title?: string): void {
  const output = process.env.MEMKIT_BENCH_OUTPUT
  if (output) {
    const script = basename(process.argv[1] ?? 'unknown')
    appendFileSync(
      output,
      `${JSON.stringify({ script, title: title ?? script, baseline, machine: machine(), rows })}\n`,
    )
  }
  const scenarios = [...new Set(rows.map((r) => r.scenario))]
  for (const scenario of scenarios) {
    const group = rows.filter((r) => r.scenario === scenario)
    const base = group.find((r) => r.library === baseline)
    console.log(`\n${scenario}`)
    for (const row of group) {
      const ratio = base && base.value > 0 ? `${(row.value / base.value).toFixed(2)}x ${baseline}` : ''
      console.log(
        `  ${row.library.padEnd(34)} ${format(row.value).padStart(12)} ${row.unit.padEnd(8)} ${ratio.padEnd(16)} ${row.extra ?? ''}`,
      )
    }
  }
}

export function machine(): string {
  const list = cpus()
  return `${list.length} x ${list[0]?.model ?? 'unknown CPU'}, Node ${process.version}`
}

function format(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2)
}
