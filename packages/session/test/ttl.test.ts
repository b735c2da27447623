// How long a session is kept, on a pinned clock: which of cookie.expires (a Date, or the string
// it becomes in JSON), cookie.maxAge and the store's ttl wins, the lifetime cap, and the TTL
// memcached gets (rounded up, plus the clock slack). The store tests check the same against
// memcached's own TTL; these pin the exact figures and every fallback.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { CLOCK_SLACK_SECONDS, keptUntil, sessionExpiry, storageTtl } from '../src/ttl.js'

const NOW = Date.UTC(2026, 10, 30, 12, 0, 0)
const expiry = (
  session: Parameters<typeof sessionExpiry>[0],
  fallback: Parameters<typeof sessionExpiry>[1] = 60,
) => sessionExpiry(session, fallback, NOW, NOW, undefined)

describe('sessionExpiry: cookie.expires, else cookie.maxAge, else the ttl option', () => {
  test('cookie.expires as a Date', () => {
    assert.equal(expiry({ cookie: { expires: new Date(NOW + 5000), maxAge: 999_000 } }), NOW + 5000)
  })

  test('cookie.expires as the string a stored session carries (JSON), whatever maxAge says', () => {
    const iso = new Date(NOW + 45_400).toISOString()
    assert.equal(expiry({ cookie: { expires: iso, maxAge: 999_000 } }), NOW + 45_400)
    const utc = new Date(NOW + 90_000).toUTCString()
    assert.equal(expiry({ cookie: { expires: utc } }), NOW + 90_000)
    // in the past: the expiry is in the past too (the store deletes the session)
    assert.equal(expiry({ cookie: { expires: new Date(NOW - 1).toISOString() } }), NOW - 1)
  })

  test('an expires that is not a date (unparsable string, invalid Date, a number) falls back to maxAge', () => {
    // (12 is not read as a string: Date.parse('12') is a day in 2001)
    for (const expires of ['soon', new Date(Number.NaN), NOW + 1000, 12, true] as unknown[]) {
      assert.equal(expiry({ cookie: { expires, maxAge: 3000 } as never }), NOW + 3000, String(expires))
      assert.equal(expiry({ cookie: { expires } as never }), NOW + 60_000, `${String(expires)}, no maxAge`)
    }
  })

  test('cookie.maxAge (ms from now) when expires is null or absent', () => {
    assert.equal(expiry({ cookie: { expires: null, maxAge: 2500 } }), NOW + 2500)
    assert.equal(expiry({ cookie: { maxAge: 86_400_000 } }), NOW + 86_400_000)
    assert.equal(expiry({ cookie: { maxAge: -5 } }), NOW - 5, 'a negative maxAge has expired')
    assert.equal(expiry({ cookie: { maxAge: 0 } }), NOW, 'maxAge 0 expires now')
  })

  test('a maxAge that is not a finite number falls back to the ttl option', () => {
    for (const maxAge of [Number.POSITIVE_INFINITY, Number.NaN, '5000', null] as unknown[]) {
      assert.equal(expiry({ cookie: { maxAge } as never }, 300), NOW + 300_000, String(maxAge))
    }
  })

  test('no cookie (or not an object) uses the ttl option, in seconds', () => {
    assert.equal(expiry({}, 300), NOW + 300_000)
    assert.equal(expiry({ cookie: null }, 300), NOW + 300_000)
    assert.equal(expiry({ cookie: 'expires=tomorrow' } as never, 300), NOW + 300_000)
    assert.equal(expiry({ cookie: {} }, 0.5), NOW + 500)
  })

  test('a ttl function gets the session and answers seconds; anything but a finite number is an error', () => {
    const seen: unknown[] = []
    const session = { cookie: null, user: 'ann' }
    const byUser = (s: Parameters<typeof sessionExpiry>[0]) => {
      seen.push(s)
      return s.user === 'ann' ? 30 : 10
    }
    assert.equal(expiry(session, byUser), NOW + 30_000)
    assert.deepEqual(seen, [session])
    assert.equal(expiry({ cookie: { maxAge: 1000 } }, byUser), NOW + 1000, 'not called when the cookie says')
    assert.equal(seen.length, 1)
    assert.equal(
      expiry({}, () => -1),
      NOW - 1000,
      'a negative answer has expired',
    )
    for (const [answer, message] of [
      ['30', /must return a number of seconds; got 30$/],
      [undefined, /must return a number of seconds; got undefined$/],
      [Number.NaN, /must return a number of seconds; got NaN$/],
      [Number.POSITIVE_INFINITY, /returned Infinity$/],
    ] as const) {
      assert.throws(
        () => expiry({}, () => answer as never),
        (error: unknown) => {
          assert.equal((error as { code: string }).code, 'ERR_MEMKIT_SESSION_VALUE', String(answer))
          assert.match((error as Error).message, message)
          return true
        },
      )
    }
  })

  test('maxLifetime caps the expiry at createdAt + maxLifetime, and only caps it', () => {
    const createdAt = NOW - 10_000
    const session = { cookie: { maxAge: 60_000 } }
    assert.equal(sessionExpiry(session, 60, NOW, createdAt, 15_000), NOW + 5000)
    assert.equal(sessionExpiry(session, 60, NOW, createdAt, 3_600_000), NOW + 60_000)
    assert.equal(sessionExpiry({}, 60, NOW, createdAt, 15_000), NOW + 5000, 'the ttl option too')
    assert.equal(sessionExpiry(session, 60, NOW, createdAt, 5000), NOW - 5000, 'past the lifetime: expired')
  })
})

describe('storageTtl and keptUntil', () => {
  test('the time left rounded up to whole seconds, plus the clock slack', () => {
    assert.equal(CLOCK_SLACK_SECONDS, 2)
    assert.equal(storageTtl(NOW + 1, NOW), 1 + 2)
    assert.equal(storageTtl(NOW + 1000, NOW), 1 + 2)
    assert.equal(storageTtl(NOW + 1001, NOW), 2 + 2)
    assert.equal(storageTtl(NOW + 2500, NOW), 3 + 2)
    assert.equal(storageTtl(NOW + 90_400, NOW), 91 + 2)
  })

  test('zero when the expiry is now or past (delete, do not store)', () => {
    assert.equal(storageTtl(NOW, NOW), 0)
    assert.equal(storageTtl(NOW - 1, NOW), 0)
    assert.equal(storageTtl(Number.NaN, NOW), 0)
  })

  test('keptUntil: the earliest memcached may drop an entry stored with that TTL', () => {
    assert.equal(keptUntil(10, NOW), NOW + 8000)
    assert.equal(keptUntil(storageTtl(NOW + 2500, NOW), NOW), NOW + 3000)
    // an entry stored for an expiry is kept at least until that expiry
    for (const left of [1, 999, 1000, 1001, 59_999, 3_600_000])
      assert.ok(keptUntil(storageTtl(NOW + left, NOW), NOW) >= NOW + left, String(left))
  })
})
