// Errors are recognised across copies of the package: two installed versions, or the ESM and
// CJS builds side by side, must still agree that a timeout is a timeout.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { describe, test } from 'node:test'
import * as esm from '../src/index.js'

const require = createRequire(import.meta.url)
// The CommonJS build is a second copy of every class (built by `npm run build`).
const cjs = require('../dist/index.cjs') as typeof esm

describe('errors across copies of @memkit/client', () => {
  test('the two builds really hold different classes', () => {
    assert.notEqual(cjs.TimeoutError, esm.TimeoutError)
  })

  test('instanceof checks the brand: a timeout from one copy is a timeout to the other', () => {
    const error = new cjs.TimeoutError('get on a:1 timed out', 'a:1')
    assert.ok(error instanceof esm.TimeoutError)
    assert.ok(error instanceof esm.ServerFailureError)
    assert.ok(error instanceof esm.MemkitError)
    assert.ok(error instanceof Error)
    assert.ok(!(error instanceof esm.ConnectionError), 'a sibling class does not match')
    assert.ok(!(new cjs.ConnectionError('x', 'a:1') instanceof esm.TimeoutError))
    assert.ok(
      new cjs.ServerDownError('x', 'a:1') instanceof esm.ConnectionError,
      'down is a connection error',
    )
  })

  test('isMemkitError recognises any copy, optionally by code', () => {
    const error = new cjs.OverloadedError('busy', 'a:1')
    assert.ok(esm.isMemkitError(error))
    assert.ok(esm.isMemkitError(error, 'ERR_MEMKIT_OVERLOADED'))
    assert.ok(esm.isMemkitError(error, 'ERR_MEMKIT_TIMEOUT', 'ERR_MEMKIT_OVERLOADED'))
    assert.ok(!esm.isMemkitError(error, 'ERR_MEMKIT_TIMEOUT'))
    assert.ok(!esm.isMemkitError(new Error('plain')))
    assert.ok(!esm.isMemkitError(Object.assign(new Error('look-alike'), { code: 'ERR_MEMKIT_TIMEOUT' })))
    assert.ok(!esm.isMemkitError(undefined))
  })

  test('a subclass an application defines without a brand still works with instanceof', () => {
    class AppError extends esm.MemkitError {}
    const error = new AppError('mine')
    assert.ok(error instanceof AppError)
    assert.ok(error instanceof esm.MemkitError)
    assert.ok(!(new esm.MemkitError('base') instanceof AppError))
  })

  test('the brand is not enumerable: errors log and serialise as before', () => {
    const error = new esm.TimeoutError('t', 'a:1')
    assert.deepEqual(Object.keys(error).sort(), ['code', 'name', 'server'])
    assert.equal(
      JSON.stringify(error),
      JSON.stringify({ name: 'TimeoutError', code: 'ERR_MEMKIT_TIMEOUT', server: 'a:1' }),
    )
  })

  test('PartialReadError carries the hits and the failed keys', () => {
    const cause = new esm.ServerDownError('down', 'b:2')
    const error = new esm.PartialReadError('partial', new Map([['a', 1]]), new Map([['b', cause]]))
    assert.ok(error instanceof esm.ServerFailureError)
    assert.equal(error.code, 'ERR_MEMKIT_PARTIAL_READ')
    assert.equal(error.server, 'b:2')
    assert.deepEqual([...error.hits], [['a', 1]])
    assert.equal(error.failed.get('b'), cause)
  })
})
