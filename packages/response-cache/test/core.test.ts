// The framework-free core on its own: header parsing, freshness, storability, preconditions,
// ranges, keys and the stored envelope. No memcached needed here.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { deltaSeconds, listedFields, parseCacheControl } from '../src/cache-control.js'
import { evaluatePreconditions, evaluateRange, parseEntityTags } from '../src/conditional.js'
import {
  CorruptEntryError,
  decodeStored,
  type Entry,
  encodeEntry,
  encodeIndex,
  envelopeSize,
} from '../src/entry.js'
import {
  acceptedCodings,
  acceptsContentCoding,
  endToEnd,
  normalizeRequestHeader,
  varyNames,
} from '../src/headers.js'
import { parseHttpDate } from '../src/http-date.js'
import { KeySpace, originOf, pathAndQuery, rawUrlKey, rawVariantKey, resolveSameOrigin } from '../src/key.js'
import { parseRouteSettings } from '../src/options.js'
import {
  controlOf,
  currentAge,
  freshnessOf,
  isFresh,
  mayAnswer,
  mayServeWhileUpdating,
  notStorableReason,
  parseAge,
  remainingFreshness,
  reuseOf,
  staleIfErrorAllowed,
  storageTtl,
} from '../src/policy.js'
import type { HeaderList } from '../src/types.js'

const settings = parseRouteSettings({})

describe('Cache-Control parsing', () => {
  test('directives are case-insensitive, the first occurrence wins, quoted commas do not split', () => {
    const cc = parseCacheControl(['MaX-AgE=10, ext="a, max-age=99"', 'max-age=20, no-cache="set-cookie"'])
    assert.equal(deltaSeconds(cc, 'max-age'), 10)
    assert.equal(cc.get('ext'), 'a, max-age=99')
    assert.equal(cc.get('no-cache'), 'set-cookie')
  })
  test('field lines join as one list; quoted strings: escapes, closing quote, unterminated', () => {
    const lines = parseCacheControl(['max-age=10', 'no-store'])
    assert.equal(deltaSeconds(lines, 'max-age'), 10)
    assert.equal(lines.get('no-store'), true)
    // A backslash escapes the next character: an escaped quote neither ends the string nor splits.
    const escaped = parseCacheControl('ext="a\\", max-age=99", max-age=5')
    assert.equal(escaped.get('ext'), 'a", max-age=99')
    assert.equal(deltaSeconds(escaped, 'max-age'), 5)
    assert.equal(parseCacheControl('ext="a\\"b"').get('ext'), 'a"b')
    assert.equal(parseCacheControl('ext="a\\').get('ext'), 'a', 'a trailing backslash escapes nothing')
    // The string ends at its closing quote; one left open runs to the end of the field.
    assert.equal(parseCacheControl('ext="a"b').get('ext'), 'a')
    assert.equal(parseCacheControl('ext=a"b"').get('ext'), 'a"b"', 'not quoted: as it is')
    assert.deepEqual(listedFields(parseCacheControl('no-cache="X-A, x-b'), 'no-cache'), ['x-a', 'x-b'])
    // Field names in a qualified directive: trimmed, compared lowercased, empty members dropped.
    assert.deepEqual(listedFields(parseCacheControl('no-cache="Set-Cookie,, X-Trace ,"'), 'no-cache'), [
      'set-cookie',
      'x-trace',
    ])
    assert.deepEqual(listedFields(parseCacheControl('no-cache'), 'no-cache'), [])
    assert.deepEqual(listedFields(parseCacheControl('max-age=5'), 'no-cache'), [])
    // Lists (splitList): empty members, also a last one, are dropped.
    assert.equal(normalizeRequestHeader('accept-language', 'en, , de,'), 'en,de')
    assert.equal(normalizeRequestHeader('accept', ',text/html,,'), 'text/html')
  })
  test('delta-seconds: digits only (leading zeros fine, quoted accepted), capped at 2^31', () => {
    const v = (text: string) => deltaSeconds(parseCacheControl(text), 'max-age')
    assert.equal(v('max-age=003600'), 3600)
    assert.equal(v('max-age="60"'), 60)
    assert.equal(v('max-age=99999999999'), 2147483648)
    for (const bad of ["max-age='60'", 'max-age=-1', 'max-age=1.5', 'max-age=', 'max-age'])
      assert.ok(Number.isNaN(v(bad)), bad)
    assert.equal(v('s-maxage=5'), undefined)
  })
  test('Age: the first value counts; an invalid one is ignored (the response is not made stale)', () => {
    assert.equal(parseAge(undefined), 0)
    assert.equal(parseAge('30'), 30)
    assert.equal(parseAge(['30']), 30)
    assert.equal(parseAge(' 30 '), 30)
    // Several values: the first line, the first member of a list.
    assert.equal(parseAge(['0', '7200']), 0)
    assert.equal(parseAge(['7200', '0']), 7200)
    assert.equal(parseAge('0, 7200'), 0)
    assert.equal(parseAge('7200, 0'), 7200)
    assert.equal(parseAge('2147483649'), 2147483648)
    for (const bad of ['abc', '-1', '1.0', '1;x=2', '', '+5', '0x10'] as const)
      assert.equal(parseAge(bad), 0, bad)
  })
  test('HTTP-date: IMF-fixdate, RFC 850 and asctime; nothing else', () => {
    const t = Date.UTC(1994, 10, 6, 8, 49, 37)
    assert.equal(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT'), t)
    assert.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT'), t)
    assert.equal(parseHttpDate('Sun Nov  6 08:49:37 1994'), t)
    // Names in any case (the grammar says otherwise; caches accept them).
    assert.equal(parseHttpDate('SUN, 06 NOV 1994 08:49:37 gmt'), t)
    assert.equal(parseHttpDate('sunday, 06-nov-94 08:49:37 GMT'), t)
    for (const bad of [
      '0',
      'tomorrow',
      'Sun, 31 Feb 1994 08:49:37 GMT',
      '2024-01-01T00:00:00Z',
      'Sun 06 Nov 1994 08:49:37 GMT',
    ]) {
      assert.equal(parseHttpDate(bad), undefined, bad)
    }
  })
})

describe('freshness and storage rules', () => {
  const now = Date.now()
  const fresh = (headers: HeaderList, status = 200, s = settings) => freshnessOf(status, headers, now, now, s)
  test('s-maxage > max-age > Expires > route ttl', () => {
    const expires = new Date(now + 100_000).toUTCString()
    const date = new Date(now).toUTCString()
    assert.equal(
      fresh([
        ['cache-control', 'max-age=10, s-maxage=20'],
        ['expires', expires],
      ]).lifetime,
      20,
    )
    assert.equal(
      fresh([
        ['cache-control', 'max-age=10'],
        ['expires', expires],
      ]).lifetime,
      10,
    )
    assert.ok(
      Math.abs(
        fresh([
          ['expires', expires],
          ['date', date],
        ]).lifetime! - 100,
      ) < 1.5,
    )
    assert.equal(fresh([['expires', '0']]).lifetime, 0)
    const ttl = parseRouteSettings({ ttl: 30 })
    assert.equal(fresh([], 200, ttl).lifetime, 30)
    assert.equal(fresh([], 201, ttl).lifetime, null)
    assert.equal(fresh([['cache-control', 'max-age=5']], 200, ttl).lifetime, 5)
    assert.equal(fresh([]).lifetime, null)
  })
  test('route ttl and heuristic freshness: statuses cacheable by default or public responses, ttl first', () => {
    const day = 86400_000
    const date = new Date(now).toUTCString()
    const lastModified = new Date(now - 10 * day).toUTCString()
    const withLm: HeaderList = [
      ['date', date],
      ['last-modified', lastModified],
    ]
    const heuristic = parseRouteSettings({ heuristic: true })
    // 10% of the ten days since Last-Modified, capped at a day by default.
    assert.equal(fresh(withLm, 200, heuristic).lifetime, 86400)
    const tenth = parseRouteSettings({ heuristic: { fraction: 0.05, max: 10 * 86400 } })
    assert.equal(fresh(withLm, 200, tenth).lifetime, 0.5 * 86400)
    assert.equal(fresh(withLm, 200).lifetime, null, 'off by default')
    assert.equal(fresh([['date', date]], 200, heuristic).lifetime, null, 'no Last-Modified, no heuristic')
    assert.equal(fresh(withLm, 500, heuristic).lifetime, null, 'not cacheable by default')
    assert.equal(fresh([...withLm, ['cache-control', 'public']], 599, heuristic).lifetime, 86400, 'public')
    assert.equal(fresh([['cache-control', 'public']], 599, parseRouteSettings({ ttl: 7 })).lifetime, 7)
    const both = parseRouteSettings({ ttl: 30, heuristic: true })
    assert.equal(fresh(withLm, 200, both).lifetime, 30, 'the route ttl wins over the heuristic')
    assert.equal(fresh([...withLm, ['cache-control', 'max-age=3']], 200, both).lifetime, 3)
    assert.throws(() => parseRouteSettings({ heuristic: { fraction: 2 } }), /heuristic\.fraction/)
  })
  test('targeted fields (RFC 9213): the first valid one replaces Cache-Control and Expires', () => {
    const targets = ['memkit-cache-control', 'cdn-cache-control']
    const life = (headers: HeaderList) =>
      freshnessOf(200, headers, now, now, settings, controlOf(headers, targets))
    const expires = new Date(now + 100_000).toUTCString()
    assert.equal(
      life([
        ['cache-control', 'max-age=5'],
        ['cdn-cache-control', 'max-age=60'],
      ]).lifetime,
      60,
    )
    assert.equal(
      life([
        ['cache-control', 'max-age=500'],
        ['cdn-cache-control', 'max-age=1'],
      ]).lifetime,
      1,
    )
    assert.equal(
      life([
        ['memkit-cache-control', 'max-age=7'],
        ['cdn-cache-control', 'max-age=60'],
      ]).lifetime,
      7,
      'target-list order, not field order',
    )
    // Expires is ignored under a targeted field; an invalid field is ignored as a whole.
    assert.equal(
      life([
        ['cdn-cache-control', 'private'],
        ['expires', expires],
      ]).lifetime,
      null,
    )
    for (const invalid of ['max-age=60, &&&', 'MaX-aGe=60', 'max-age =60', ''])
      assert.equal(
        life([
          ['cache-control', 'max-age=5'],
          ['cdn-cache-control', invalid],
        ]).lifetime,
        5,
        invalid,
      )
    // A member of the wrong type is dropped, the field still replaces Cache-Control.
    for (const wrong of ['max-age="60"', 'max-age=1.5', 'max-age=-1'])
      assert.equal(
        life([
          ['cache-control', 'max-age=5'],
          ['cdn-cache-control', wrong],
        ]).lifetime,
        null,
        wrong,
      )
    assert.equal(life([['cdn-cache-control', 'foo, max-age=99999999999']]).lifetime, 2147483648)
    const control = controlOf(
      [
        ['cache-control', 'no-store'],
        ['cdn-cache-control', 'no-cache="a, b", max-age=9'],
      ],
      targets,
    )
    assert.equal(control.targeted, true)
    assert.equal(control.cc.get('no-cache'), 'a, b')
    assert.equal(control.cc.has('no-store'), false)
    assert.equal(controlOf([['cdn-cache-control', 'max-age=9']], []).targeted, false, 'empty target list')
  })
  test('age: apparent age from Date, the Age header and the response delay', () => {
    const f = freshnessOf(
      200,
      [
        ['date', new Date(now - 50_000).toUTCString()],
        ['age', '10'],
      ],
      now - 2000,
      now,
      settings,
    )
    assert.ok(f.initialAge >= 49 && f.initialAge <= 51, String(f.initialAge))
    const g = freshnessOf(
      200,
      [
        ['age', '100'],
        ['cache-control', 'max-age=300'],
      ],
      now - 2000,
      now,
      settings,
    )
    assert.equal(g.initialAge, 102)
    assert.ok(
      Math.abs(remainingFreshness(g, now, now + 8000) - 190) < 0.01,
      'Math.abs(remainingFreshness(g, now, now + 8000) - 190) < 0.01',
    )
  })
  test('stale permissions: explicit directives, route defaults, and what forbids them', () => {
    const route = parseRouteSettings({ staleWhileRevalidate: 30, staleIfError: 40 })
    assert.deepEqual(
      [fresh([['cache-control', 'max-age=1']], 200, route)].map((f) => [f.swr, f.sie]),
      [[30, 40]],
    )
    const explicit = fresh([['cache-control', 's-maxage=1, stale-while-revalidate=5']], 200, route)
    assert.deepEqual([explicit.swr, explicit.sie, explicit.noStale], [5, 0, true])
    const forbidden = fresh([['cache-control', 'max-age=1, must-revalidate, stale-if-error=60']], 200, route)
    assert.deepEqual([forbidden.swr, forbidden.sie], [0, 0])
  })
  test('freshness: several or past Expires, the 2^31 cap, a future Last-Modified, ages that cannot go negative', () => {
    const date = new Date(now).toUTCString()
    const inAnHour = new Date(now + 3600_000).toUTCString()
    assert.equal(fresh([['expires', [inAnHour, inAnHour]]]).lifetime, 0, 'several Expires lines: expired')
    assert.equal(
      fresh([
        ['expires', [inAnHour]],
        ['date', date],
      ]).lifetime,
      3600,
      'one line in an array',
    )
    assert.equal(
      fresh([
        ['expires', new Date(now - 3600_000).toUTCString()],
        ['date', date],
      ]).lifetime,
      0,
    )
    assert.equal(fresh([['expires', 'Fri, 01 Jan 2100 00:00:00 GMT']]).lifetime, 2147483648)
    assert.equal(fresh([['cache-control', 'max-age=99999999999']]).lifetime, 2147483648)
    assert.equal(fresh([['cache-control', 'max-age=abc']]).lifetime, 0, 'an invalid max-age: stale')
    assert.equal(
      fresh([['cache-control', 's-maxage=-1, max-age=60']]).lifetime,
      0,
      'an invalid s-maxage still rules',
    )
    const heuristic = parseRouteSettings({ heuristic: true })
    const future: HeaderList = [
      ['date', date],
      ['last-modified', new Date(now + 60_000).toUTCString()],
    ]
    assert.equal(fresh(future, 200, heuristic).lifetime, null, 'Last-Modified after Date: no heuristic')
    const justNow: HeaderList = [
      ['date', date],
      ['last-modified', date],
    ]
    assert.equal(fresh(justNow, 200, heuristic).lifetime, 0)
    // A Date in the future and a response received before its request give no negative age.
    const ahead = freshnessOf(
      200,
      [['date', new Date(now + 60_000).toUTCString()]],
      now + 5000,
      now,
      settings,
    )
    assert.equal(ahead.initialAge, 0)
    const f = fresh([['cache-control', 'max-age=60']])
    assert.equal(currentAge(f, now, now - 5000), 0)
    assert.equal(currentAge(f, now, now + 5000), 5)
  })
  test('no-cache, must-revalidate, proxy-revalidate and s-maxage: which forbid stale use, and which explicit permissions survive', () => {
    const route = parseRouteSettings({ staleWhileRevalidate: 30, staleIfError: 40 })
    const permissions = (cc: string) => {
      const f = fresh([['cache-control', cc]], 200, route)
      return [f.noCache, f.noStale, f.swr, f.sie]
    }
    assert.deepEqual(permissions('max-age=1'), [false, false, 30, 40])
    assert.deepEqual(permissions('max-age=1, no-cache, stale-while-revalidate=5'), [true, true, 0, 0])
    assert.deepEqual(permissions('max-age=1, no-cache="x-a", stale-while-revalidate=5'), [
      false,
      false,
      5,
      40,
    ])
    assert.deepEqual(permissions('max-age=1, must-revalidate, stale-while-revalidate=5, stale-if-error=6'), [
      false,
      true,
      0,
      0,
    ])
    assert.deepEqual(permissions('max-age=1, proxy-revalidate, stale-while-revalidate=5, stale-if-error=6'), [
      false,
      true,
      0,
      0,
    ])
    assert.deepEqual(permissions('max-age=1, proxy-revalidate'), [false, true, 0, 0])
    assert.deepEqual(permissions('s-maxage=1'), [false, true, 0, 0])
    assert.deepEqual(permissions('s-maxage=1, stale-if-error=6'), [false, true, 0, 6])
    assert.deepEqual(permissions('max-age=1, stale-while-revalidate=abc, stale-if-error=-1'), [
      false,
      false,
      30,
      40,
    ])
    assert.deepEqual(permissions('max-age=1, stale-while-revalidate=0'), [false, false, 0, 40])
  })
  test('reuse at the boundaries: fresh, within stale-while-revalidate, stale-if-error, memcached TTL', () => {
    const entryOf = (headers: HeaderList, s = settings): Entry => ({
      kind: 'entry',
      rawKey: 'k',
      status: 200,
      reason: undefined,
      headers,
      requestTime: now,
      responseTime: now,
      freshness: freshnessOf(200, headers, now, now, s),
      varyNames: [],
      varyValues: [],
      tags: {},
      route: undefined,
      encoding: undefined,
      body: Buffer.alloc(0),
      size: 0,
      chunks: undefined,
      shared: { authorization: false, cookie: false },
    })
    const e = entryOf([['cache-control', 'max-age=10, stale-while-revalidate=5, stale-if-error=20']])
    assert.equal(isFresh(e, now + 9_999), true)
    assert.equal(isFresh(e, now + 10_000), false, 'no freshness left: stale')
    assert.deepEqual(reuseOf(e, now + 9_000, true), { kind: 'fresh', remaining: 1 })
    assert.deepEqual(reuseOf(e, now + 15_000, true), { kind: 'stale-while-revalidate', remaining: -5 })
    assert.deepEqual(reuseOf(e, now + 15_001, true), { kind: 'stale' })
    assert.deepEqual(reuseOf(e, now + 12_000, false), { kind: 'stale' }, 'no background refresh possible')
    const noSwr = entryOf([['cache-control', 'max-age=10']])
    assert.deepEqual(reuseOf(noSwr, now + 10_000, true), { kind: 'stale' })
    assert.equal(staleIfErrorAllowed(e, now + 30_000), true)
    assert.equal(staleIfErrorAllowed(e, now + 30_001), false)
    assert.equal(staleIfErrorAllowed(noSwr, now + 10_001), false, 'no stale-if-error')
    const neverFresh = entryOf([
      ['cache-control', 'no-cache, stale-if-error=20'],
      ['etag', '"x"'],
    ])
    assert.equal(staleIfErrorAllowed(neverFresh, now), false)
    assert.equal(remainingFreshness(neverFresh.freshness, now, now), Number.NEGATIVE_INFINITY)
    assert.equal(remainingFreshness(fresh([]), now, now), Number.NEGATIVE_INFINITY, 'no lifetime')
    const noCache = fresh([['cache-control', 'max-age=60, no-cache']])
    assert.equal(remainingFreshness(noCache, now, now), Number.NEGATIVE_INFINITY, 'no-cache with a lifetime')
    assert.equal(staleIfErrorAllowed(noSwr, now), false, 'fresh, and no stale-if-error')
    const noLifetime = entryOf([
      ['cache-control', 'stale-if-error=20'],
      ['etag', '"x"'],
    ])
    assert.equal(staleIfErrorAllowed(noLifetime, now), false, 'never fresh: no staleness to allow')
    assert.equal(mayServeWhileUpdating(e), true)
    assert.equal(mayServeWhileUpdating(entryOf([['cache-control', 'max-age=10, must-revalidate']])), false)
    assert.equal(
      mayServeWhileUpdating(
        entryOf([
          ['cache-control', 'no-cache'],
          ['etag', '"x"'],
        ]),
      ),
      false,
    )
    // memcached keeps an entry for its freshness plus the longest stale use (keepStale with a validator).
    assert.equal(storageTtl(e, now, 300, 86400), 30)
    assert.equal(storageTtl(e, now + 2500, 300, 86400), 28, 'rounded up')
    assert.equal(storageTtl(noSwr, now, 300, 86400), 10)
    assert.equal(
      storageTtl(
        entryOf([
          ['cache-control', 'max-age=10'],
          ['etag', '"x"'],
        ]),
        now,
        300,
        86400,
      ),
      310,
    )
    assert.equal(
      storageTtl(
        entryOf([
          ['cache-control', 'max-age=10'],
          ['last-modified', new Date(now).toUTCString()],
        ]),
        now,
        300,
        86400,
      ),
      310,
    )
    assert.equal(storageTtl(e, now, 300, 25), 25, 'at most maxTtl')
    assert.equal(storageTtl(noSwr, now + 60_000, 300, 86400), 1, 'at least a second')
  })
  test('which stored responses may answer which requests', () => {
    const entryWith = (headers: HeaderList, shared = { authorization: false, cookie: false }) =>
      ({ headers, shared }) as unknown as Entry
    const gzip: HeaderList = [['content-encoding', 'gzip']]
    assert.equal(mayAnswer(entryWith(gzip), { 'accept-encoding': 'gzip' }), true)
    assert.equal(mayAnswer(entryWith(gzip), { 'accept-encoding': 'br' }), false)
    assert.equal(mayAnswer(entryWith([]), {}), true)
    assert.equal(mayAnswer(entryWith([]), { authorization: 'Bearer x' }), false)
    assert.equal(
      mayAnswer(entryWith([], { authorization: true, cookie: false }), { authorization: 'Bearer x' }),
      true,
    )
    assert.equal(mayAnswer(entryWith([]), { cookie: 'a=1' }), false)
    assert.equal(mayAnswer(entryWith([], { authorization: false, cookie: true }), { cookie: 'a=1' }), true)
    assert.equal(
      mayAnswer(entryWith([], { authorization: false, cookie: true }), { authorization: 'x', cookie: 'a=1' }),
      false,
    )
  })
  test('never stored: the reasons, in a shared cache', () => {
    const reason = (
      headers: HeaderList,
      extra: { status?: number; authorization?: boolean; noStore?: boolean } = {},
    ) => {
      const control = controlOf(headers)
      return notStorableReason({
        status: extra.status ?? 200,
        headers,
        cc: control.cc,
        freshness: freshnessOf(extra.status ?? 200, headers, now, now, settings, control),
        authorization: extra.authorization ?? false,
        requestNoStore: extra.noStore ?? false,
        settings,
      })
    }
    const ok: HeaderList = [['cache-control', 'max-age=60']]
    // must-understand: a status this cache implements is stored despite no-store; another is not.
    assert.equal(reason([['cache-control', 'max-age=60, no-store, must-understand']]), undefined)
    assert.equal(
      reason([['cache-control', 'max-age=60, no-store, must-understand']], { status: 299 }),
      'must-understand',
    )
    assert.equal(
      reason([['cache-control', 'max-age=60, must-understand']], { status: 299 }),
      'must-understand',
    )

    assert.equal(reason(ok), undefined)
    assert.equal(reason(ok, { noStore: true }), 'request-no-store')
    assert.equal(reason(ok, { status: 206 }), 'status')
    assert.equal(reason(ok, { status: 500 }), 'status')
    assert.equal(reason([['cache-control', 'no-store, max-age=60']]), 'no-store')
    assert.equal(reason([['cache-control', 'private="x", max-age=60']]), 'private')
    assert.equal(reason([...ok, ['set-cookie', 'a=b']]), 'set-cookie')
    assert.equal(reason([...ok, ['vary', 'accept, *']]), 'vary-star')
    assert.equal(reason(ok, { authorization: true }), 'authorization')
    assert.equal(reason([['cache-control', 'public, max-age=60']], { authorization: true }), undefined)
    assert.equal(reason([['cache-control', 's-maxage=60']], { authorization: true }), undefined)
    assert.equal(reason([]), 'no-freshness')
    assert.equal(reason([['cache-control', 'max-age=0']]), 'stale')
    assert.equal(
      reason([
        ['cache-control', 'max-age=0'],
        ['etag', '"x"'],
      ]),
      undefined,
    )
    assert.equal(
      reason([
        ['cache-control', 'no-cache'],
        ['etag', '"x"'],
      ]),
      undefined,
    )
    for (const status of [100, 199, 206, 304, 600])
      assert.equal(reason(ok, { status }), 'status', String(status))
    for (const status of [200, 203, 204, 299, 301, 404, 410])
      assert.equal(reason(ok, { status }), undefined, String(status))
    const serverErrors = parseRouteSettings({ cacheServerErrors: true })
    const withSettings = (status: number, s = serverErrors) =>
      notStorableReason({
        status,
        headers: ok,
        cc: controlOf(ok).cc,
        freshness: freshnessOf(status, ok, now, now, s, controlOf(ok)),
        authorization: false,
        requestNoStore: false,
        settings: s,
      })
    assert.equal(withSettings(503), undefined, 'cacheServerErrors')
    assert.equal(withSettings(599), undefined)
    assert.equal(withSettings(600), 'status')
    assert.equal(
      reason([['cache-control', 'max-age=60, must-revalidate']], { authorization: true }),
      undefined,
    )
    assert.equal(
      reason([['cache-control', 'max-age=60, proxy-revalidate']], { authorization: true }),
      'authorization',
    )
    assert.equal(
      reason([['cache-control', 'no-cache']]),
      'stale',
      'always revalidated, and nothing to revalidate with',
    )
    assert.equal(
      reason([['cache-control', 'max-age=60, no-cache']]),
      'stale',
      'a lifetime does not help no-cache',
    )
    // Stale on arrival: stored only with a validator or a stale permission.
    const old: HeaderList = [
      ['cache-control', 'max-age=60'],
      ['age', '60'],
    ]
    assert.equal(reason(old), 'stale')
    assert.equal(reason([...old, ['last-modified', new Date(now).toUTCString()]]), undefined)
    assert.equal(
      reason([
        ['cache-control', 'max-age=60, stale-while-revalidate=5'],
        ['age', '60'],
      ]),
      undefined,
    )
    assert.equal(
      reason([
        ['cache-control', 'max-age=60, stale-if-error=5'],
        ['age', '60'],
      ]),
      undefined,
    )
    assert.equal(
      reason([
        ['cache-control', 'max-age=60'],
        ['age', '59'],
      ]),
      undefined,
    )
    assert.equal(reason([...ok, ['vary', 'accept']]), undefined)
    assert.equal(reason([...ok, ['vary', '*, accept']]), 'vary-star')
    // An invalid Age is ignored; an Age beyond the lifetime makes the response stale on arrival.
    assert.equal(
      reason([
        ['cache-control', 'max-age=60'],
        ['age', 'abc'],
      ]),
      undefined,
    )
    assert.equal(
      reason([
        ['cache-control', 'max-age=60'],
        ['age', '61'],
      ]),
      'stale',
    )
  })
})

describe('preconditions and ranges', () => {
  const lm = Date.UTC(2024, 0, 1)
  test('If-None-Match: weak comparison, lists, * ; it takes precedence over If-Modified-Since', () => {
    assert.deepEqual(parseEntityTags(' "a" , W/"b",junk, *'), ['"a"', 'W/"b"', '*'])
    assert.equal(evaluatePreconditions({ ifNoneMatch: 'W/"x"' }, '"x"', lm), 304)
    assert.equal(evaluatePreconditions({ ifNoneMatch: '"y", "x"' }, 'W/"x"', lm), 304)
    assert.equal(evaluatePreconditions({ ifNoneMatch: '*' }, undefined, lm), 304)
    assert.equal(evaluatePreconditions({ ifNoneMatch: '"y"' }, '"x"', lm), undefined)
    const later = new Date(lm + 1000).toUTCString()
    assert.equal(evaluatePreconditions({ ifModifiedSince: later }, '"x"', lm), 304)
    assert.equal(
      evaluatePreconditions({ ifModifiedSince: new Date(lm - 1000).toUTCString() }, '"x"', lm),
      undefined,
    )
    assert.equal(evaluatePreconditions({ ifNoneMatch: '"y"', ifModifiedSince: later }, '"x"', lm), undefined)
    assert.equal(evaluatePreconditions({ ifModifiedSince: 'garbage' }, '"x"', lm), undefined)
  })
  test('If-Match is strong; a failed one is 412', () => {
    assert.equal(evaluatePreconditions({ ifMatch: '"x"' }, '"x"', lm), undefined)
    assert.equal(evaluatePreconditions({ ifMatch: 'W/"x"' }, 'W/"x"', lm), 412)
    assert.equal(evaluatePreconditions({ ifMatch: '"y"' }, '"x"', lm), 412)
  })
  test('If-Unmodified-Since (only without If-Match), If-Match lists and *, dates compared to the second', () => {
    const at = (ms: number) => new Date(ms).toUTCString()
    assert.equal(evaluatePreconditions({ ifUnmodifiedSince: at(lm - 1000) }, '"x"', lm), 412)
    assert.equal(
      evaluatePreconditions({ ifUnmodifiedSince: at(lm) }, '"x"', lm),
      undefined,
      'not modified since',
    )
    assert.equal(evaluatePreconditions({ ifUnmodifiedSince: at(lm + 1000) }, '"x"', lm), undefined)
    assert.equal(evaluatePreconditions({ ifUnmodifiedSince: 'garbage' }, '"x"', lm), undefined)
    assert.equal(evaluatePreconditions({ ifUnmodifiedSince: at(lm - 1000) }, '"x"', undefined), undefined)
    assert.equal(
      evaluatePreconditions({ ifMatch: '"x"', ifUnmodifiedSince: at(lm - 1000) }, '"x"', lm),
      undefined,
      'If-Match decides alone',
    )
    assert.equal(evaluatePreconditions({ ifMatch: '*' }, undefined, lm), undefined)
    assert.equal(evaluatePreconditions({ ifMatch: '"y", "x"' }, '"x"', lm), undefined)
    assert.equal(evaluatePreconditions({ ifMatch: '"x"' }, undefined, lm), 412)
    assert.equal(evaluatePreconditions({ ifMatch: '"x"' }, 'W/"x"', lm), 412)
    // A failed If-Match is 412 whatever If-None-Match says; a passed one lets If-None-Match decide.
    assert.equal(evaluatePreconditions({ ifMatch: '"y"', ifNoneMatch: '"x"' }, '"x"', lm), 412)
    assert.equal(evaluatePreconditions({ ifMatch: '"x"', ifNoneMatch: '"x"' }, '"x"', lm), 304)
    assert.equal(evaluatePreconditions({ ifModifiedSince: at(lm) }, '"x"', lm), 304, 'equal: not modified')
    assert.equal(evaluatePreconditions({ ifModifiedSince: at(lm + 1000) }, '"x"', undefined), undefined)
    assert.equal(evaluatePreconditions({ ifNoneMatch: '"x"' }, undefined, lm), undefined)
    assert.equal(evaluatePreconditions({}, '"x"', lm), undefined)
    assert.deepEqual(parseEntityTags('W/x, "a"b, w/"c", "", W/""'), ['""', 'W/""'])
  })
  test('ranges: If-Range by date or strong tag, suffixes, sizes, spelling', () => {
    const lastModified = new Date(lm).toUTCString()
    const range = (c: Parameters<typeof evaluateRange>[0], size = 10, etag?: string, date?: string) =>
      evaluateRange(c, size, etag, date)
    assert.deepEqual(range({}), { kind: 'full' })
    assert.deepEqual(range({ range: 'bytes=0-1', ifRange: lastModified }, 10, '"a"', lastModified), {
      kind: 'partial',
      start: 0,
      end: 1,
    })
    assert.equal(
      range({ range: 'bytes=0-1', ifRange: ` ${lastModified} ` }, 10, '"a"', lastModified).kind,
      'partial',
    )
    assert.equal(
      range({ range: 'bytes=0-1', ifRange: new Date(lm + 1000).toUTCString() }, 10, '"a"', lastModified).kind,
      'full',
    )
    assert.equal(range({ range: 'bytes=0-1', ifRange: '"b"' }, 10, '"a"', lastModified).kind, 'full')
    assert.equal(range({ range: 'bytes=0-1', ifRange: '"a"' }, 10, undefined, lastModified).kind, 'full')
    assert.equal(range({ range: 'bytes=0-1', ifRange: 'W/"a"' }, 10, '"a"', lastModified).kind, 'full')
    assert.deepEqual(range({ range: 'bytes=-0' }), { kind: 'unsatisfiable' })
    assert.deepEqual(range({ range: 'bytes=-' }), { kind: 'full' })
    assert.deepEqual(range({ range: 'bytes=-20' }), { kind: 'partial', start: 0, end: 9 })
    assert.deepEqual(range({ range: 'bytes=0-' }, 0), { kind: 'unsatisfiable' })
    assert.deepEqual(range({ range: 'bytes=-5' }, 0), { kind: 'unsatisfiable' })
    assert.deepEqual(range({ range: 'bytes=3-3' }), { kind: 'partial', start: 3, end: 3 })
    assert.deepEqual(range({ range: 'bytes=9-9' }), { kind: 'partial', start: 9, end: 9 })
    assert.deepEqual(range({ range: ' Bytes = 2 - 4 ' }), { kind: 'partial', start: 2, end: 4 })
    for (const full of ['bytes=a-3', 'bytes 0-3', 'bytes=0-3x', 'xbytes=0-3'])
      assert.deepEqual(range({ range: full }), { kind: 'full' }, full)
  })
  test('one byte range; several, other units or a failed If-Range give the full body', () => {
    assert.deepEqual(evaluateRange({ range: 'bytes=0-3' }, 10, undefined, undefined), {
      kind: 'partial',
      start: 0,
      end: 3,
    })
    assert.deepEqual(evaluateRange({ range: 'bytes=8-' }, 10, undefined, undefined), {
      kind: 'partial',
      start: 8,
      end: 9,
    })
    assert.deepEqual(evaluateRange({ range: 'bytes=-4' }, 10, undefined, undefined), {
      kind: 'partial',
      start: 6,
      end: 9,
    })
    assert.deepEqual(evaluateRange({ range: 'bytes=5-100' }, 10, undefined, undefined), {
      kind: 'partial',
      start: 5,
      end: 9,
    })
    assert.deepEqual(evaluateRange({ range: 'bytes=10-' }, 10, undefined, undefined), {
      kind: 'unsatisfiable',
    })
    for (const full of ['bytes=0-1,3-4', 'items=0-1', 'bytes=5-2']) {
      assert.deepEqual(evaluateRange({ range: full }, 10, undefined, undefined), { kind: 'full' }, full)
    }
    assert.deepEqual(
      evaluateRange({ range: 'bytes=0-1', ifRange: '"a"' }, 10, '"a"', undefined).kind,
      'partial',
    )
    assert.deepEqual(
      evaluateRange({ range: 'bytes=0-1', ifRange: 'W/"a"' }, 10, 'W/"a"', undefined).kind,
      'full',
    )
  })
})

describe('headers and keys', () => {
  test('end-to-end headers drop hop-by-hop fields and those Connection lists', () => {
    const out = endToEnd([
      ['Connection', 'X-A, close'],
      ['X-A', '1'],
      ['Keep-Alive', 'timeout=5'],
      ['Transfer-Encoding', 'chunked'],
      ['Content-Length', '9'],
      ['X-Keep', '2'],
    ])
    assert.deepEqual(out, [['X-Keep', '2']])
  })
  test('Vary names; Accept-Encoding normalised to accepted codings; whitespace and case of lists', () => {
    assert.deepEqual(varyNames(['Accept-Encoding, Foo', 'foo']), ['accept-encoding', 'foo'])
    assert.deepEqual(varyNames(', *'), ['*'])
    assert.deepEqual(acceptedCodings('gzip;q=0.5, br, identity'), ['br', 'gzip'])
    assert.deepEqual(acceptedCodings('*;q=1, gzip;q=0'), ['br', 'deflate', 'zstd'])
    assert.equal(
      normalizeRequestHeader('accept-encoding', 'br, gzip'),
      normalizeRequestHeader('accept-encoding', 'gzip,br;q=0.9'),
    )
    // q-values per RFC 9110 §12.4.2: anything that is not one refuses its coding.
    for (const bad of ['abc', '-1', '1.5', '0.0001', '2', '', '.5'])
      assert.deepEqual(acceptedCodings(`gzip;q=${bad}, br`), ['br'], bad)
    for (const good of ['1', '1.', '1.000', '0.5', '0.001'])
      assert.deepEqual(acceptedCodings(`gzip;Q=${good}`), ['gzip'], good)
    assert.deepEqual(acceptedCodings('gzip;q=0.000, br;q=0.'), [])
    assert.deepEqual(acceptedCodings('x-gzip, deflate;level=1'), ['deflate', 'gzip'])
    assert.equal(acceptsContentCoding('gzip;q=abc', 'gzip'), false)
    assert.equal(acceptsContentCoding('br, gzip', 'gzip'), true)
    assert.equal(acceptsContentCoding(undefined, 'gzip'), false, 'no Accept-Encoding: identity only')
    assert.equal(acceptsContentCoding(undefined, 'x-custom'), true, 'codings the cache does not know pass')
    assert.equal(acceptsContentCoding(undefined, undefined), true)
    // Lists (Accept-*): members trimmed, lines joined. Free-form fields: as sent, trimmed.
    assert.equal(
      normalizeRequestHeader('accept', ' text/html ,  */*;q=0.1'),
      normalizeRequestHeader('accept', ['text/html', '*/*;q=0.1']),
    )
    assert.equal(normalizeRequestHeader('accept-language', 'EN, De'), 'en,de')
    assert.notEqual(normalizeRequestHeader('user-agent', 'a, b'), normalizeRequestHeader('user-agent', 'a,b'))
    assert.notEqual(normalizeRequestHeader('cookie', 'a=1; b=2'), normalizeRequestHeader('cookie', 'a=1;b=2'))
    assert.notEqual(normalizeRequestHeader('x-tenant', 'a,b'), normalizeRequestHeader('x-tenant', 'a, b'))
    assert.equal(normalizeRequestHeader('user-agent', ' a, b '), 'a, b')
    assert.equal(
      normalizeRequestHeader('foo', ['1', '2']),
      normalizeRequestHeader('foo', '1, 2'),
      'lines as Node joins them',
    )
    assert.notEqual(normalizeRequestHeader('foo', undefined), normalizeRequestHeader('foo', ''))
  })
  test('keys are fixed-length hashes of method class, origin (scheme, host, port) and URL', () => {
    const keys = new KeySpace('p:')
    const long = keys.url(rawUrlKey('http://example.com', `/x?q=${'y'.repeat(5000)}`))
    assert.equal(long.length, 'p:'.length + 43)
    assert.notEqual(
      keys.url(rawUrlKey('http://a.example', '/x')),
      keys.url(rawUrlKey('http://b.example', '/x')),
    )
    assert.equal(rawUrlKey('http://h', 'http://h/x?y'), rawUrlKey('http://h', '/x?y'))
    assert.equal(rawUrlKey('http://h', 'http://h/dir/'), rawUrlKey('http://h', '/dir/'))
    // A target that is neither a path nor a URL (OPTIONS *, a mangled one) is kept as it came.
    assert.equal(pathAndQuery('*'), '*')
    assert.notEqual(rawUrlKey('http://h', '*'), rawUrlKey('http://h', 'x'))
    // A variant's key separates the values of each Vary'd field: no two value lists share one.
    assert.notEqual(rawVariantKey('k', ['ab', 'c']), rawVariantKey('k', ['a', 'bc']))
    assert.notEqual(rawVariantKey('k', ['a', '']), rawVariantKey('k', ['', 'a']))
    // The origin: scheme and port count, default ports and case do not.
    assert.notEqual(originOf('http', 'h', ''), originOf('https', 'h', ''))
    assert.notEqual(originOf('http', 'h', ''), originOf('http', 'h', '8080'))
    assert.equal(originOf('http', 'H.Example', '80'), 'http://h.example')
    assert.equal(originOf('https', 'h', '443'), 'https://h')
    assert.equal(originOf('https', 'h', '80'), 'https://h:80')
    assert.equal(originOf('http', '[::1]', '8080'), 'http://[::1]:8080')
  })
  test('Location and Content-Location resolve against the request, same host and port only', () => {
    const origin = 'http://example.com'
    assert.equal(resolveSameOrigin('/a/b?c', origin, '/z'), '/a/b?c')
    assert.equal(resolveSameOrigin('b', origin, '/a/z'), '/a/b')
    assert.equal(
      resolveSameOrigin('https://example.com/q', origin, '/'),
      '/q',
      'the other scheme: same resource',
    )
    assert.equal(resolveSameOrigin('http://example.com:8080/q', origin, '/'), undefined)
    assert.equal(resolveSameOrigin('http://example.com:8080/q', 'http://example.com:8080', '/'), '/q')
    assert.equal(resolveSameOrigin('https://elsewhere.example/q', origin, '/'), undefined)
    assert.equal(resolveSameOrigin('//elsewhere.example/q', origin, '/'), undefined)
    assert.equal(resolveSameOrigin('/q', 'http://', '/'), '/q', 'a request without Host')
    // Query kept, fragment dropped, in each form.
    assert.equal(resolveSameOrigin('/items?page=2#top', origin, '/z'), '/items?page=2')
    assert.equal(resolveSameOrigin('http://example.com/items?page=2#top', origin, '/z'), '/items?page=2')
    assert.equal(resolveSameOrigin('//example.com/items?page=2#top', origin, '/z'), '/items?page=2')
    assert.equal(resolveSameOrigin('sub/', origin, '/dir/x'), '/dir/sub/')
    assert.equal(resolveSameOrigin('?page=3', origin, '/dir/x?page=1'), '/dir/x?page=3')
    // A path keeps its spelling (as the router will see it); other forms are as the URL parser writes them.
    assert.equal(resolveSameOrigin("/search?q=it's", origin, '/z'), "/search?q=it's")
    assert.equal(resolveSameOrigin("  /search?q=it's ", origin, '/z'), "/search?q=it's", 'padding trimmed')
    assert.equal(resolveSameOrigin("http://example.com/search?q=it's", origin, '/z'), '/search?q=it%27s')
    // A blank value names nothing (not the request's own URL, respelled).
    assert.equal(resolveSameOrigin('  ', origin, '/a/./b'), undefined)
  })
})

describe('stored envelope', () => {
  const entry: Entry = {
    kind: 'entry',
    rawKey: rawUrlKey('http://h', '/x'),
    status: 200,
    reason: 'OK',
    headers: [
      ['Content-Type', 'text/plain'],
      ['Cache-Control', ['max-age=1', 'public']],
    ],
    requestTime: 1,
    responseTime: 2,
    freshness: { lifetime: 60, initialAge: Infinity, swr: 1, sie: 2, noCache: true, noStale: false },
    varyNames: ['accept-language'],
    varyValues: ['en'],
    tags: { products: 12 },
    route: '/x',
    encoding: 'gzip',
    body: Buffer.from('body bytes'),
    size: 10,
    chunks: undefined,
    shared: { authorization: false, cookie: true },
  }
  test('round-trips entries and indexes', () => {
    assert.deepEqual(decodeStored(encodeEntry(entry)), entry)
    const index = { kind: 'index' as const, rawKey: 'k', id: 'abc', varyNames: ['foo'] }
    assert.deepEqual(decodeStored(encodeIndex(index)), index)
  })
  /** The envelope of `value` with its metadata replaced by `edit(meta)` (and its body by `body`). */
  const rewrite = (value: Buffer, edit: (meta: Record<string, unknown>) => unknown, body?: Buffer) => {
    const length = value.readUInt32BE(6)
    const meta = JSON.parse(value.subarray(10, 10 + length).toString('utf8')) as Record<string, unknown>
    const json = Buffer.from(JSON.stringify(edit(meta)))
    const head = Buffer.from(value.subarray(0, 10))
    head.writeUInt32BE(json.length, 6)
    return Buffer.concat([head, json, body ?? value.subarray(10 + length)])
  }
  test('round-trips the other values of each field; optional fields absent decode to their defaults', () => {
    const plain: Entry = {
      ...entry,
      reason: undefined,
      freshness: { lifetime: null, initialAge: 3, swr: 0, sie: 0, noCache: false, noStale: true },
      varyNames: [],
      varyValues: [],
      tags: {},
      route: undefined,
      encoding: undefined,
      shared: { authorization: true, cookie: false },
    }
    const encoded = encodeEntry(plain)
    assert.deepEqual(decodeStored(encoded), plain)
    assert.equal(envelopeSize(plain), encoded.length)
    const both: Entry = {
      ...entry,
      freshness: { ...entry.freshness, noStale: true },
      shared: { authorization: true, cookie: true },
    }
    assert.deepEqual(decodeStored(encodeEntry(both)), both)
    // Absent or ill-typed optional fields.
    const bare = decodeStored(
      rewrite(encoded, ({ r: _r, rt: _rt, sh: _sh, vn: _vn, vv: _vv, tg: _tg, enc: _enc, ...rest }) => rest),
    ) as Entry
    assert.deepEqual(
      [bare.reason, bare.route, bare.shared, bare.varyNames, bare.varyValues, bare.tags, bare.encoding],
      [undefined, undefined, { authorization: false, cookie: false }, [], [], {}, undefined],
    )
    const odd = decodeStored(rewrite(encoded, (m) => ({ ...m, r: 7, rt: 7 }))) as Entry
    assert.deepEqual([odd.reason, odd.route], [undefined, undefined])
    // A chunk manifest: no body of its own, the chunks named.
    const manifest: Entry = { ...entry, chunks: { id: 'abc', count: 3, sha256: 'h' } }
    const stored = encodeEntry(manifest)
    assert.equal(stored.length, envelopeSize(manifest) - manifest.size)
    assert.deepEqual(decodeStored(stored), { ...manifest, body: Buffer.alloc(0) })
  })
  /** `decodeStored(value)` throws CorruptEntryError (by class and by name) with `message`. */
  const corrupt = (value: unknown, message: string | RegExp, what: string) =>
    assert.throws(
      () => decodeStored(value),
      (error: unknown) => {
        assert.ok(error instanceof CorruptEntryError, what)
        // The cache tells a corrupt entry from a failure by this name (it counts only the latter as errors).
        assert.equal(error.name, 'CorruptEntryError', what)
        if (typeof message === 'string') assert.equal(error.message, message, what)
        else assert.match(error.message, message, what)
        return true
      },
      what,
    )
  test('an entry stores only the optional fields it has: the minimal entry is seven fields', () => {
    const minimal: Entry = {
      ...entry,
      reason: undefined,
      varyNames: [],
      varyValues: [],
      tags: {},
      route: undefined,
      encoding: undefined,
      shared: { authorization: false, cookie: false },
    }
    const stored = encodeEntry(minimal)
    const meta = JSON.parse(stored.subarray(10, 10 + stored.readUInt32BE(6)).toString('utf8'))
    assert.deepEqual(Object.keys(meta), ['k', 's', 'h', 'rq', 'rs', 'f', 'len'])
    assert.deepEqual(
      stored.subarray(10 + stored.readUInt32BE(6)),
      minimal.body,
      'the body follows the metadata',
    )
    const withEmptyBody = encodeEntry({ ...minimal, body: Buffer.alloc(0), size: 0 })
    assert.equal(withEmptyBody.length, 10 + withEmptyBody.readUInt32BE(6), 'an empty body adds nothing')
  })
  test('each malformed field of the metadata is CorruptEntryError naming what is wrong', () => {
    const good = encodeEntry(entry)
    const METADATA = 'malformed entry metadata'
    const FRESHNESS = 'malformed freshness'
    const CHUNKS = 'malformed chunk manifest'
    const VARY = 'malformed vary data'
    const bad: Array<[string, (m: Record<string, unknown>) => unknown, string]> = [
      ['null', () => null, METADATA],
      ['a number', () => 5, METADATA],
      ['key', (m) => ({ ...m, k: 1 }), METADATA],
      ['status', (m) => ({ ...m, s: 200.5 }), METADATA],
      ['status text', (m) => ({ ...m, s: '200' }), METADATA],
      ['headers', (m) => ({ ...m, h: 'x' }), METADATA],
      ['a header pair of one', (m) => ({ ...m, h: [['a']] }), METADATA],
      ['a header pair of three', (m) => ({ ...m, h: [['a', 'b', 'c']] }), METADATA],
      ['a header name', (m) => ({ ...m, h: [[1, 'a']] }), METADATA],
      ['a header value', (m) => ({ ...m, h: [['a', 1]] }), METADATA],
      ['a header line', (m) => ({ ...m, h: [['a', ['b', 2]]] }), METADATA],
      ['a header that is not a pair', (m) => ({ ...m, h: ['ab'] }), METADATA],
      [
        'one bad header after a good one',
        (m) => ({
          ...m,
          h: [
            ['a', 'b'],
            ['c', 1],
          ],
        }),
        METADATA,
      ],
      ['request time', (m) => ({ ...m, rq: '1' }), METADATA],
      ['response time', (m) => ({ ...m, rs: '2' }), METADATA],
      ['freshness', (m) => ({ ...m, f: 'x' }), METADATA],
      ['freshness of four', (m) => ({ ...m, f: [60, 0, 0, 0] }), METADATA],
      ['freshness of six', (m) => ({ ...m, f: [60, 0, 0, 0, 0, 0] }), METADATA],
      ['length', (m) => ({ ...m, len: 10.5 }), METADATA],
      ['length missing', ({ len: _len, ...m }) => m, METADATA],
      ['lifetime', (m) => ({ ...m, f: ['60', 0, 0, 0, 0] }), FRESHNESS],
      ['initial age', (m) => ({ ...m, f: [60, '0', 0, 0, 0] }), FRESHNESS],
      ['swr', (m) => ({ ...m, f: [60, 0, null, 0, 0] }), FRESHNESS],
      ['sie', (m) => ({ ...m, f: [60, 0, 0, null, 0] }), FRESHNESS],
      ['flags', (m) => ({ ...m, f: [60, 0, 0, 0, null] }), FRESHNESS],
      ['body length', (m) => ({ ...m, len: 9 }), 'body is 10 bytes, metadata says 9'],
      ['chunks', (m) => ({ ...m, ch: 'x' }), CHUNKS],
      ['chunks an object', (m) => ({ ...m, ch: { 0: 'id', 1: 2, 2: 'h' } }), CHUNKS],
      ['chunk id', (m) => ({ ...m, ch: [1, 2, 'h'] }), CHUNKS],
      ['chunk count', (m) => ({ ...m, ch: ['id', 2.5, 'h'] }), CHUNKS],
      ['chunk digest', (m) => ({ ...m, ch: ['id', 2, 3] }), CHUNKS],
      ['vary names', (m) => ({ ...m, vn: 'accept' }), VARY],
      ['vary name', (m) => ({ ...m, vn: [1] }), VARY],
      ['vary values missing', ({ vv: _vv, ...m }) => m, VARY],
      ['vary values', (m) => ({ ...m, vv: [1] }), VARY],
      ['vary values of another length', (m) => ({ ...m, vv: ['en', 'de'] }), VARY],
      ['tags', (m) => ({ ...m, tg: 'products' }), 'malformed tags'],
      ['tags null', (m) => ({ ...m, tg: null }), 'malformed tags'],
      ['sharing flags', (m) => ({ ...m, sh: 1.5 }), 'malformed sharing flags'],
      ['encoding', (m) => ({ ...m, enc: 'zstd' }), 'unknown encoding'],
    ]
    for (const [what, edit, message] of bad) corrupt(rewrite(good, edit), message, what)
    // A chunk manifest carries no body; each part of the manifest is checked on its own.
    const manifest = encodeEntry({ ...entry, chunks: { id: 'abc', count: 3, sha256: 'h' } })
    corrupt(
      rewrite(manifest, (m) => m, Buffer.from('x')),
      'chunk manifest carries a body',
      'manifest body',
    )
    for (const [what, ch] of [
      ['id', [1, 3, 'h']],
      ['count', ['abc', '3', 'h']],
      ['digest', ['abc', 3, null]],
    ] as const) {
      corrupt(
        rewrite(manifest, (m) => ({ ...m, ch })),
        CHUNKS,
        `manifest ${what}`,
      )
    }
    const index = encodeIndex({ kind: 'index', rawKey: 'k', id: 'abc', varyNames: ['foo'] })
    for (const [what, edit] of [
      ['null', () => null],
      ['a string', () => 'x'],
      ['key', (m: Record<string, unknown>) => ({ ...m, k: 1 })],
      ['id', (m: Record<string, unknown>) => ({ ...m, id: 1 })],
      ['a vary name', (m: Record<string, unknown>) => ({ ...m, vn: [1] })],
      ['vary names', (m: Record<string, unknown>) => ({ ...m, vn: 'foo' })],
    ] as const)
      corrupt(rewrite(index, edit), 'malformed vary index', `index ${what}`)
  })
  test('anything else is CorruptEntryError naming what is wrong, never a crash or a wrong value', () => {
    const good = encodeEntry(entry)
    const NO_ENVELOPE = 'stored value has no response-cache envelope'
    const withByte = (index: number, byte: number) => {
      const b = Buffer.from(good)
      b[index] = byte
      return b
    }
    const broken: Array<[string, unknown, string | RegExp]> = [
      ['a string', 'a string', 'stored value is not a byte string'],
      ['the magic alone', Buffer.from('MKRC'), NO_ENVELOPE],
      ['nine bytes of a header', good.subarray(0, 9), NO_ENVELOPE],
      ['another magic', Buffer.from('XXXX\u0001E\u0000\u0000\u0000\u0002{}'), NO_ENVELOPE],
      ['another magic, whole value', withByte(0, 0x58), NO_ENVELOPE],
      ['another version', withByte(4, 2), NO_ENVELOPE],
      [
        'a header and no metadata',
        Buffer.concat([good.subarray(0, 6), Buffer.alloc(4)]),
        'envelope metadata is not JSON',
      ],
      ['cut short', good.subarray(0, good.length - 3), 'body is 7 bytes, metadata says 10'],
      ['cut inside the metadata', good.subarray(0, 20), 'truncated envelope'],
      ['one byte more', Buffer.concat([good, Buffer.from('!')]), 'body is 11 bytes, metadata says 10'],
      ['damaged JSON', withByte(10, 0x5b), 'envelope metadata is not JSON'],
      ['JSON with a damaged name', withByte(12, 0x7b), 'malformed entry metadata'],
      ['an unknown kind', withByte(5, 0x5a), 'unknown envelope kind "Z"'],
    ]
    for (const [what, value, message] of broken) corrupt(value, message, what)
  })
})
