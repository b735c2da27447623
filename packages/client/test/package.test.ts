// The published shape: ESM and CJS builds with types, `types` first in every exports
// condition, and optional peers that are only loaded by the entry points that need them.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8'))

test('exports: every entry has import and require conditions with types first, and the files exist', () => {
  assert.equal(pkg.engines.node, '>=20.19')
  for (const [entry, conditions] of Object.entries<Record<string, Record<string, string>>>(pkg.exports)) {
    if (entry === './package.json') continue
    for (const kind of ['import', 'require']) {
      const condition = conditions[kind]!
      assert.equal(Object.keys(condition)[0], 'types', `${entry} ${kind}: types first`)
      for (const file of Object.values(condition)) assert.ok(existsSync(`${root}${file}`), `${file} built`)
    }
  }
})

test('the CJS and ESM builds export the same names', () => {
  const names = (format: 'cjs' | 'esm') =>
    execFileSync(
      process.execPath,
      format === 'cjs'
        ? ['-e', "console.log(Object.keys(require('@memkit/client')).sort().join(','))"]
        : [
            '--input-type=module',
            '-e',
            "const m = await import('@memkit/client'); console.log(Object.keys(m).sort().join(','))",
          ],
      { cwd: root },
    )
      .toString()
      .trim()
  const cjs = names('cjs')
  assert.equal(cjs, names('esm'))
  for (const name of [
    'createClient',
    'MemcachedClient',
    'createFallbackClient',
    'TimeoutError',
    'CHANNELS',
  ]) {
    assert.ok(cjs.split(',').includes(name), name)
  }
})

test('importing the client loads neither memjs nor prom-client', () => {
  const loaded = execFileSync(
    process.execPath,
    [
      '-e',
      "require('@memkit/client'); console.log(Object.keys(require.cache).filter((f) => /node_modules\\/(memjs|prom-client)\\//.test(f)).length)",
    ],
    { cwd: root },
  )
  assert.equal(loaded.toString().trim(), '0')
})
