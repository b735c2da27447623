// npm run bench: runs every benchmarks/*.bench.ts one after another (each in its own
// process, so they do not disturb each other), then writes benchmarks/results/<date>.json
// and BENCHMARKS.md with a table and an SVG chart per comparison.
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { machine, type Row } from './lib/report.js'
import { barChart } from './lib/svg-chart.js'

const here = fileURLToPath(new URL('.', import.meta.url))
const root = join(here, '..')
const only = process.argv.slice(2)
const scripts = readdirSync(here)
  .filter((file) => file.endsWith('.bench.ts'))
  .filter((file) => only.length === 0 || only.some((name) => file.startsWith(name)))
  .sort()

interface Result {
  date: string
  machine: string
  command: string
  failed: string[]
  benchmarks: Recorded[]
}

interface Recorded {
  script: string
  title: string
  baseline: string
  machine: string
  rows: Row[]
}

// `--report <results.json>` rebuilds BENCHMARKS.md and the charts from a saved run.
const reportFrom = process.argv.indexOf('--report')
if (reportFrom !== -1) {
  const file = process.argv[reportFrom + 1]!
  writeReport(JSON.parse(readFileSync(file, 'utf8')) as Result)
  process.exit(0)
}

const scratch = mkdtempSync(join(tmpdir(), 'memkit-bench-'))
const output = join(scratch, 'results.jsonl')
writeFileSync(output, '')
const failed: string[] = []
for (const script of scripts) {
  console.log(`\n=== ${script}`)
  const run = spawnSync(process.execPath, ['--import', 'tsx', join(here, script)], {
    stdio: 'inherit',
    env: { ...process.env, MEMKIT_BENCH_OUTPUT: output },
    cwd: here,
  })
  if (run.status !== 0) failed.push(script)
}

const recorded = readFileSync(output, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((line) => JSON.parse(line) as Recorded)
rmSync(scratch, { recursive: true, force: true })

const result: Result = {
  date: new Date().toISOString().slice(0, 10),
  machine: machine(),
  command: 'npm run bench',
  failed,
  benchmarks: recorded,
}
mkdirSync(join(here, 'results'), { recursive: true })
writeFileSync(join(here, 'results', `${result.date}.json`), `${JSON.stringify(result, null, 2)}\n`)
writeReport(result)
console.log(
  `\nwrote benchmarks/results/${result.date}.json and BENCHMARKS.md${failed.length ? `; failed: ${failed.join(', ')}` : ''}`,
)
process.exit(failed.length ? 1 : 0)

function writeReport(result: Result): void {
  const { date, failed } = result
  const chartsDir = join(here, 'results', 'charts')
  mkdirSync(chartsDir, { recursive: true })
  const lines: string[] = [
    '# memkit benchmarks',
    '',
    `Measured ${date} on ${result.machine}, with \`${result.command}\` (every benchmark in one run,`,
    'one after another; each compares memkit with the peer libraries side by side). Absolute',
    'figures drift on shared machines; compare the ratios. Raw data:',
    `[benchmarks/results/${date}.json](benchmarks/results/${date}.json). Where the CPU time of the`,
    'middleware goes, from CPU profiles: [benchmarks/PROFILES.md](benchmarks/PROFILES.md).',
    '',
  ]
  if (failed.length) lines.push(`**Failed to run:** ${failed.join(', ')}`, '')
  // Charts are numbered per script across all of its tables, so none overwrites another.
  const chartNumbers = new Map<string, number>()
  for (const bench of result.benchmarks) {
    lines.push(
      `## ${bench.title}`,
      '',
      `\`benchmarks/${bench.script}\` — ratios are to **${bench.baseline}**.`,
      '',
    )
    const scenarios = [...new Set(bench.rows.map((r) => r.scenario))]
    for (const scenario of scenarios) {
      const group = bench.rows.filter((r) => r.scenario === scenario)
      const base = group.find((r) => r.library === bench.baseline)
      const ratio = (r: Row) => (base && base.value > 0 ? r.value / base.value : undefined)
      lines.push(`### ${scenario}`, '', '| library | result | ratio | notes |', '|---|---|---|---|')
      for (const row of group) {
        const figure = row.value >= 100 ? Math.round(row.value).toLocaleString('en-US') : row.value.toFixed(2)
        const r = ratio(row)
        lines.push(
          `| ${row.library} | ${figure} ${row.unit} | ${r === undefined ? '' : `${r.toFixed(2)}x`} | ${row.extra ?? ''} |`,
        )
      }
      const stem = bench.script.replace(/\.bench\.ts$/, '')
      const n = (chartNumbers.get(stem) ?? 0) + 1
      chartNumbers.set(stem, n)
      const chart = `${stem}-${n}.svg`
      writeFileSync(
        join(chartsDir, chart),
        barChart(
          scenario,
          group[0]?.unit ?? '',
          group.map((row) => ({
            label: row.library,
            value: row.value,
            ratio: ratio(row),
            baseline: row.library === bench.baseline,
          })),
        ),
      )
      lines.push('', `![${scenario}](benchmarks/results/charts/${chart})`, '')
    }
  }
  writeFileSync(join(root, 'BENCHMARKS.md'), `${lines.join('\n')}\n`)
}
