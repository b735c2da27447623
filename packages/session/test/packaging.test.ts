// The published build: Fastify users do not need express-session, and the core never imports
// a framework at run time.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const here = dirname(fileURLToPath(import.meta.url))
const dist = join(here, '..', 'dist')

test('the built package (ESM and CJS) works with @fastify/session when express-session cannot load', async () => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [join(here, 'fixtures', 'fastify-without-express-session.mjs')],
    {
      cwd: join(here, '..'),
      timeout: 30_000,
    },
  )
  const result = JSON.parse(stdout)
  assert.deepEqual(result.denied, { esm: true, cjs: true }, 'express-session really is unavailable')
  assert.equal(result.esm, 'ann')
  assert.equal(result.cjs, 'ann')
})

test('no built file loads express, express-session, fastify or @fastify/session', async () => {
  const files = (await readdir(dist)).filter((f) => /\.(c?js)$/.test(f))
  assert.ok(files.length >= 2, 'dist holds the ESM and CJS builds')
  for (const file of files) {
    const text = await readFile(join(dist, file), 'utf8')
    assert.doesNotMatch(
      text,
      /(from|import\(|require\()\s*["'](express|express-session|fastify|@fastify\/[a-z-]+)["']/,
      file,
    )
  }
})
