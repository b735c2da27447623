// TTL to memcached's exptime on a pinned clock: 0 is "never", fractions round up, the 30-day
// line between relative and absolute, the 2038 cap, strings with a unit, and the refusals.
// api.test.ts checks the same against memcached's own TTL.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { MAX_EXPTIME, MAX_RELATIVE_TTL, toExptime } from '../src/ttl.js'

const NOW = Date.UTC(2026, 10, 22, 12, 0, 0)
const DAY = 86_400

test('up to 30 days is relative, in whole seconds rounded up', () => {
  assert.equal(MAX_RELATIVE_TTL, 30 * DAY)
  assert.equal(toExptime(0, NOW), 0, '0 is "never expires"')
  assert.equal(toExptime(0.001, NOW), 1, 'a fraction of a second is not "never"')
  assert.equal(toExptime(1, NOW), 1)
  assert.equal(toExptime(59.01, NOW), 60)
  assert.equal(toExptime(30 * DAY, NOW), 30 * DAY)
  assert.equal(toExptime(30 * DAY - 0.5, NOW), 30 * DAY)
})

test('beyond 30 days: an absolute Unix time from the whole second of now', () => {
  assert.equal(toExptime(30 * DAY + 1, NOW), NOW / 1000 + 30 * DAY + 1)
  assert.equal(toExptime(30 * DAY + 0.5, NOW), NOW / 1000 + 30 * DAY + 1, 'rounded up first')
  // now's milliseconds are dropped, never rounded up into the next second
  assert.equal(toExptime(31 * DAY, NOW + 999), NOW / 1000 + 31 * DAY)
  assert.equal(toExptime(365 * DAY, NOW + 1), NOW / 1000 + 365 * DAY)
})

test('the clock defaults to now', () => {
  const before = Math.floor(Date.now() / 1000)
  const exptime = toExptime(31 * DAY)
  const after = Math.floor(Date.now() / 1000)
  assert.ok(exptime >= before + 31 * DAY && exptime <= after + 31 * DAY, String(exptime))
})

test('capped at 2038-01-19T03:14:07Z, the last exptime memcached holds', () => {
  assert.equal(MAX_EXPTIME, Date.UTC(2038, 0, 19, 3, 14, 7) / 1000)
  const left = MAX_EXPTIME - NOW / 1000
  assert.equal(toExptime(left - 1, NOW), MAX_EXPTIME - 1)
  assert.equal(toExptime(left, NOW), MAX_EXPTIME)
  assert.equal(toExptime(left + 1, NOW), MAX_EXPTIME)
})

test('a string with a unit', () => {
  assert.equal(toExptime('5m', NOW), 300)
  assert.equal(toExptime('1500ms', NOW), 2)
  assert.equal(toExptime('31d', NOW), NOW / 1000 + 31 * DAY)
  assert.throws(() => toExptime('300', NOW), {
    code: 'ERR_MEMKIT_INVALID_ARGUMENT',
    message: /^`ttl` is the string "300": a string without a unit; pass the number 300 \(seconds\)/,
  })
})

test('negative, infinite or NaN is refused with a typed error that says what is allowed', () => {
  for (const ttl of [-1, -0.001, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NaN]) {
    assert.throws(() => toExptime(ttl, NOW), {
      code: 'ERR_MEMKIT_INVALID_ARGUMENT',
      message: `\`ttl\` must be a finite number of seconds >= 0 (0 = no expiry); got ${String(ttl)}`,
    })
  }
})
