#!/usr/bin/env node
// Mutation testing (StrykerJS) of one package's logic modules: `npm run mutate -- <package> [module ...]`.
//
// Each logic module is mutated on its own, and each mutant is tested only by the test files that
// packages/<package>/mutation.json lists for that module (and, within those, only by the files
// that execute it: Stryker's tap runner records coverage per test file). The test files run as
// they do in `npm test` (node:test through tsx, real memcached), one process per file, in a
// sandbox copy of the package under .stryker-tmp/. A run is slow (a few minutes per module on a
// 2-core machine), so it is a tool for developers, not part of `npm test` or CI.
//
//   npm run mutate -- rate-limit                 every module listed for the package
//   npm run mutate -- rate-limit window ip       only src/window.ts and src/ip.ts
//   npm run mutate -- client protocol/meta --concurrency 2
//   npm run mutate -- session --incremental      reuse the previous run's results where neither
//                                                the module nor its test files changed
//   npm run mutate -- client protocol/meta-commands:186-496
//                                                only the mutants on lines 186-496 (a long module in
//                                                parts, e.g. two runs side by side); --report-only
//                                                on the module then sums its parts' reports, which
//                                                must all have been run on the same source
//
// A surviving mutant is either killed by a new test or listed, with a one-line reason, in
// packages/<package>/mutation-equivalents.json (file, mutator, original text, replacement; and
// sourceLine, the mutant's whole source line trimmed, where the text alone is ambiguous). The
// summary prints, per module, Stryker's score and the score with the listed equivalents set
// aside, then every survivor that is not listed and every listed entry that no longer survives.
// The exit code is 1 when either list is non-empty, a module scores under 90% after equivalents,
// or a mutant ended in an error (left out of the score). Reports: reports/mutation/<package>/.
//
// StrykerJS lives in scripts/mutation/ with its own lockfile (installed on first use with npm ci),
// outside the workspaces: npm test and CI never install it, and its dependencies need Node
// >=20.17 or >=22.13.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { parseArgs } from 'node:util'

const root = join(dirname(new URL(import.meta.url).pathname), '..')
const toolDir = join(root, 'scripts', 'mutation')
const strykerBin = join(toolDir, 'node_modules', '@stryker-mutator', 'core', 'bin', 'stryker.js')
const TARGET = 90

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    concurrency: { type: 'string', default: '1' },
    incremental: { type: 'boolean', default: false },
    'report-only': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})

const [packageName, ...moduleArgs] = positionals
if (flags.help || !packageName) {
  console.log(
    readFileSync(new URL(import.meta.url), 'utf8')
      .split('\n')
      .slice(1, 22)
      .join('\n'),
  )
  process.exit(flags.help ? 0 : 2)
}

const packageDir = join('packages', packageName)
const configPath = join(root, packageDir, 'mutation.json')
if (!existsSync(configPath)) fail(`no ${relative(root, configPath)}: which package? (e.g. rate-limit)`)
/** @type {{ modules: Record<string, string[]> }} */
const config = JSON.parse(readFileSync(configPath, 'utf8'))
const equivalentsPath = join(root, packageDir, 'mutation-equivalents.json')
/** @type {Array<{ file: string, mutator: string, original: string, replacement: string, reason: string }>} */
const equivalents = existsSync(equivalentsPath) ? JSON.parse(readFileSync(equivalentsPath, 'utf8')) : []
for (const [index, entry] of equivalents.entries()) {
  for (const field of ['file', 'mutator', 'original', 'replacement', 'reason']) {
    if (typeof entry[field] !== 'string' || entry[field].trim() === '')
      fail(`${relative(root, equivalentsPath)} entry ${index}: '${field}' must be a non-empty string`)
  }
  if (
    entry.sourceLine !== undefined &&
    (typeof entry.sourceLine !== 'string' || entry.sourceLine.trim() === '')
  )
    fail(
      `${relative(root, equivalentsPath)} entry ${index}: 'sourceLine', when given, must be a non-empty string`,
    )
}

const allModules = Object.keys(config.modules)
/** Entries of `modules` are `src/x.ts` or `src/x.ts:FROM-TO` (only the mutants on those lines). */
const modules =
  moduleArgs.length === 0
    ? allModules
    : moduleArgs.map((arg) => {
        const [path, lines, ...rest] = arg.split(':')
        if (rest.length > 0 || (lines !== undefined && !/^\d+-\d+$/.test(lines)))
          fail(`'${arg}': a module, or a module and a line range such as protocol/meta-commands:186-496`)
        const wanted = path.replace(/^src\//, '').replace(/\.ts$/, '')
        const found = allModules.find((module) => module === `src/${wanted}.ts`)
        if (!found) fail(`${packageName} has no module '${path}' in mutation.json (${allModules.join(', ')})`)
        return lines === undefined ? found : `${found}:${lines}`
      })
const concurrency = Number(flags.concurrency)
if (!Number.isInteger(concurrency) || concurrency < 1) fail('--concurrency: a whole number >= 1')

if (!flags['report-only'] && !existsSync(strykerBin)) {
  console.log('Installing StrykerJS into scripts/mutation (npm ci, once)')
  const install = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: toolDir, stdio: 'inherit' })
  if (install.status !== 0) fail('npm ci in scripts/mutation failed')
}

const reportDir = join(root, 'reports', 'mutation', packageName)
mkdirSync(reportDir, { recursive: true })
mkdirSync(join(root, '.stryker-tmp'), { recursive: true })

const rows = []
const problems = []
for (const entry of modules) {
  const [module, lines] = entry.split(':')
  const baseName = module
    .replace(/^src\//, '')
    .replace(/\.ts$/, '')
    .replaceAll('/', '-')
  const name = lines === undefined ? baseName : `${baseName}-lines-${lines}`
  const jsonReport = join(reportDir, `${name}.json`)
  if (!flags['report-only']) {
    const strykerConfig = {
      $schema: './scripts/mutation/node_modules/@stryker-mutator/core/schema/stryker-schema.json',
      packageManager: 'npm',
      plugins: [join(toolDir, 'node_modules', '@stryker-mutator', 'tap-runner', 'dist', 'src', 'index.js')],
      testRunner: 'tap',
      tap: {
        testFiles: config.modules[module].map((file) => `${packageDir}/${file}`),
        nodeArgs: [
          '-r',
          '{{hookFile}}',
          '--import',
          'tsx',
          '--test-reporter=tap',
          '--disable-warning=ExperimentalWarning',
          '{{testFile}}',
        ],
        forceBail: true,
      },
      mutate: [`${packageDir}/${entry}`],
      coverageAnalysis: 'perTest',
      concurrency,
      // Test files start real servers; a loaded machine can stretch a file several times over.
      timeoutMS: 20_000,
      timeoutFactor: 3,
      // Only this package (and the root files its tsconfig extends) goes into the sandbox; the
      // other workspaces are reached through node_modules as usual, built (dist).
      ignorePatterns: [
        '/*',
        '!/package.json',
        '!/tsconfig.base.json',
        '!/packages',
        '/packages/*',
        `!/${packageDir}`,
        `/${packageDir}/dist`,
      ],
      incremental: flags.incremental,
      incrementalFile: join('reports', 'mutation', packageName, `${name}.incremental.json`),
      reporters: ['progress-append-only', 'json', 'html'],
      jsonReporter: { fileName: relative(root, jsonReport) },
      htmlReporter: { fileName: relative(root, join(reportDir, `${name}.html`)) },
      tempDirName: '.stryker-tmp',
      cleanTempDir: true,
    }
    const strykerConfigPath = join(root, '.stryker-tmp', `${packageName}-${name}.config.json`)
    writeFileSync(strykerConfigPath, `${JSON.stringify(strykerConfig, null, 2)}\n`)
    console.log(`\n=== ${packageName} ${entry}: ${config.modules[module].join(', ')}`)
    const run = spawnSync(process.execPath, [strykerBin, 'run', relative(root, strykerConfigPath)], {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, MEMKIT_NODE_LINES: 'none' },
    })
    if (run.status !== 0) problems.push(`${entry}: Stryker exited with ${run.status ?? run.signal}`)
  }
  const reports = reportsOf(jsonReport, lines === undefined && flags['report-only'] ? baseName : undefined)
  if (reports.length === 0) {
    problems.push(`${entry}: no report at ${relative(root, jsonReport)}`)
    continue
  }
  rows.push(summarise(entry, module, reports))
}

console.log(`\nMutation score of ${packageName} (target >= ${TARGET}% after listed equivalents)\n`)
console.log(
  '| module | mutants | killed | timeout | survived | no coverage | errors | equivalent | score | score excl. equivalents |',
)
console.log('|---|---|---|---|---|---|---|---|---|---|')
for (const row of rows) {
  console.log(
    `| ${row.module} | ${row.valid} | ${row.killed} | ${row.timeout} | ${row.survived} | ${row.noCoverage} | ${row.errors} | ${row.equivalent} | ${row.score} | ${row.adjusted} |`,
  )
  if (row.adjustedValue < TARGET)
    problems.push(`${row.module}: ${row.adjusted} after equivalents (< ${TARGET}%)`)
  // Errored mutants are left out of Stryker's score, so a run whose test files broke for another
  // reason (node_modules reinstalled or the worktree rebased meanwhile) would look clean.
  if (row.errors > 0)
    problems.push(
      `${row.module}: ${row.errors} mutant(s) ended in a runtime or compile error, not counted in the score; rerun with nothing else changing the worktree`,
    )
}
for (const row of rows) {
  for (const line of row.unexplained) problems.push(`${row.module}: survived, not listed: ${line}`)
  for (const line of row.stale)
    problems.push(`${row.module}: listed as equivalent but did not survive: ${line}`)
}
if (problems.length > 0) {
  console.log(`\n${problems.length} to look at:`)
  for (const problem of problems) console.log(`  - ${problem}`)
  process.exit(1)
}
console.log('\nEvery surviving mutant is listed as equivalent, with its reason.')

/**
 * The module's report; with `partsOf`, when the module has no whole report, the reports of its
 * line-range parts (`<name>-lines-FROM-TO.json`).
 */
function reportsOf(jsonReport, partsOf) {
  if (existsSync(jsonReport)) return [JSON.parse(readFileSync(jsonReport, 'utf8'))]
  if (partsOf === undefined) return []
  const prefix = `${partsOf}-lines-`
  return readdirSync(reportDir)
    .filter((file) => file.startsWith(prefix) && /^\d+-\d+\.json$/.test(file.slice(prefix.length)))
    .map((file) => {
      console.log(`${partsOf}: part ${file}`)
      return JSON.parse(readFileSync(join(reportDir, file), 'utf8'))
    })
}

/** One module's counts from Stryker's JSON report(s), with the listed equivalents matched. */
function summarise(label, module, reports) {
  const files = reports.map((report) => {
    const key = Object.keys(report.files).find((file) => file.endsWith(`${packageDir}/${module}`))
    if (!key) fail(`report has no ${module}`)
    return report.files[key]
  })
  const { source } = files[0]
  if (files.some((file) => file.source !== source))
    fail(`${module}: its parts were run on different versions of the source; run them again`)
  const mutants = files.flatMap((file) => file.mutants)
  const lines = source.split('\n')
  const textAt = ({ start, end }) => {
    if (start.line === end.line) return lines[start.line - 1].slice(start.column - 1, end.column - 1)
    return [
      lines[start.line - 1].slice(start.column - 1),
      ...lines.slice(start.line, end.line - 1),
      lines[end.line - 1].slice(0, end.column - 1),
    ].join('\n')
  }
  const squash = (text) => text.replace(/\s+/g, ' ').trim()
  const listed = equivalents.filter((entry) => entry.file === module)
  const count = (status) => mutants.filter((mutant) => mutant.status === status).length
  const unexplained = []
  let equivalent = 0
  for (const mutant of mutants) {
    const original = squash(textAt(mutant.location))
    const replacement = squash(mutant.replacement ?? '')
    const entry = listed.find(
      (candidate) => candidate.mutator === mutant.mutatorName && matches(mutant, candidate),
    )
    const where = `line ${mutant.location.start.line} ${mutant.mutatorName}: ${change(original, replacement)}`
    if (mutant.status === 'Survived' || mutant.status === 'NoCoverage') {
      if (entry) equivalent += 1
      else unexplained.push(`${where} (${mutant.status})`)
    }
  }
  // An entry that matched no survivor is stale: the mutant is killed now, or the code changed.
  // (Not judged on one part of a module: the entry's mutant may lie in another part.)
  const stale = (label !== module ? [] : listed)
    .filter(
      (entry) => !mutants.some((m) => m.mutatorName === entry.mutator && isSurvivor(m) && matches(m, entry)),
    )
    .map(
      (entry) => `${entry.mutator}: ${squash(entry.original).slice(0, 70)} -> ${squash(entry.replacement)}`,
    )
  function matches(mutant, entry) {
    return (
      squash(textAt(mutant.location)) === squash(entry.original) &&
      squash(mutant.replacement ?? '') === squash(entry.replacement) &&
      (entry.sourceLine === undefined ||
        lines[mutant.location.start.line - 1].trim() === entry.sourceLine.trim())
    )
  }
  const killed = count('Killed')
  const timeout = count('Timeout')
  const survived = count('Survived')
  const noCoverage = count('NoCoverage')
  const errors = count('RuntimeError') + count('CompileError')
  const valid = killed + timeout + survived + noCoverage
  const percent = (part, whole) => (whole === 0 ? 100 : (100 * part) / whole)
  const adjustedValue = percent(killed + timeout, valid - equivalent)
  return {
    module: label,
    valid,
    killed,
    timeout,
    survived,
    noCoverage,
    errors,
    equivalent,
    score: `${percent(killed + timeout, valid).toFixed(1)}%`,
    adjusted: `${adjustedValue.toFixed(1)}%`,
    adjustedValue,
    unexplained,
    stale,
  }
}

/** `original -> replacement`, cut to the part that differs when they are long. */
function change(original, replacement) {
  if (original.length <= 60 && replacement.length <= 60) return `${original} -> ${replacement}`
  let start = 0
  while (start < original.length && original[start] === replacement[start]) start++
  let end = 0
  while (
    end < original.length - start &&
    end < replacement.length - start &&
    original[original.length - 1 - end] === replacement[replacement.length - 1 - end]
  )
    end++
  const from = Math.max(0, start - 20)
  const cut = (text) => {
    const middle = text.slice(from, Math.min(text.length, text.length - end + 20))
    return `${from > 0 ? '…' : ''}${middle.slice(0, 80)}${text.length - end + 20 < text.length ? '…' : ''}`
  }
  return `${cut(original)} -> ${cut(replacement)}`
}

function isSurvivor(mutant) {
  return mutant.status === 'Survived' || mutant.status === 'NoCoverage'
}

function fail(message) {
  console.error(`mutate: ${message}`)
  process.exit(2)
}
