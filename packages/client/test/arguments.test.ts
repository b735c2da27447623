// Wrong arguments fail loudly in plain JavaScript, and pymemcache habits are named.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { captureWarnings, rawCommand, useMemcached } from '@memkit/testing'
import { createClient, createFallbackClient, InvalidArgumentError, InvalidOptionError } from '../src/index.js'

const { server, client } = await useMemcached({ createClient })

/** The client as plain JavaScript sees it: no types to stop a wrong call. */
const js = () => client as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>

function rejectsWith(pattern: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof InvalidArgumentError, `InvalidArgumentError, got ${String(error)}`)
    assert.equal((error as InvalidArgumentError).code, 'ERR_MEMKIT_INVALID_ARGUMENT')
    assert.match((error as Error).message, pattern)
    return true
  }
}

describe('options arguments are checked on every call', () => {
  test('set(key, value, 60) is refused, names the right form, and stores nothing', async () => {
    await assert.rejects(
      js().set!('args:n', 'v', 60),
      rejectsWith(
        /set\(\): options must be an object such as set\(key, value, \{ ttl: 60 \}\).*got the number 60/,
      ),
    )
    assert.equal(await rawCommand(server.address, 'mg args:n v\r\n'), 'EN\r\n')
  })

  test("{ expire: 60 } (pymemcache's name) is refused and named as memkit's ttl; nothing stored", async () => {
    await assert.rejects(
      js().set!('args:e', 'v', { expire: 60 }),
      rejectsWith(/unknown option `expire`; pymemcache's `expire` is memkit's `ttl` \(seconds/),
    )
    assert.equal(await rawCommand(server.address, 'mg args:e v\r\n'), 'EN\r\n')
  })

  test("ttl: '60' says it is a string; a string with a unit is read", async () => {
    await assert.rejects(
      js().set!('args:s', 'v', { ttl: '60' }),
      rejectsWith(/`ttl` is the string "60": a string without a unit; pass the number 60 \(seconds\)/),
    )
    assert.equal(await client.set('args:unit', 'v', { ttl: '2 minutes' }), true)
    assert.match(await rawCommand(server.address, 'mg args:unit t\r\n'), /^HD t1[12]\d\r\n$/)
    await assert.rejects(
      js().touch!('args:unit', { ttl: 5 }),
      rejectsWith(/`ttl` must be a number of seconds.*got an object/),
    )
  })

  test('every method that takes options refuses an unknown field and a non-object', async () => {
    const calls: Array<[string, unknown[]]> = [
      ['add', ['k', 1, { tll: 1 }]],
      ['replace', ['k', 1, 'ttl=5']],
      ['cas', ['k', 1, '1', { ttl: 1, noreply: true }]],
      ['incr', ['k', 1, { inital: 1 }]],
      ['decr', ['k', 1, 5]],
      ['incrBig', ['k', 1n, { expire: 1 }]],
      ['incrWithTtl', ['k', 1, []]],
      ['update', ['k', (v: unknown) => v, { retry: 3 }]],
      ['lock', ['k', { timeout: 5 }]],
      ['remember', ['k', 60, () => 1, { timeout: 5 }]],
      ['setMany', [{ a: 1 }, { expire: 5 }]],
    ]
    for (const [method, args] of calls) {
      await assert.rejects(js()[method]!(...args), rejectsWith(new RegExp(`^${method}\\(\\): `)), method)
    }
    assert.throws(
      () => client.generation('g', { replica: 2 } as never),
      rejectsWith(/unknown option `replica`/),
    )
  })

  test('createFallbackClient options: an unknown field or a wrong type is refused', () => {
    const other = createClient({ servers: server.address })
    assert.throws(
      () => createFallbackClient([client, other], { ignore_exc: true } as never),
      /unknown option `ignore_exc`/,
    )
    assert.throws(
      () => createFallbackClient([client, other], { ignoreErrors: 'yes' } as never),
      /true or false/,
    )
    assert.throws(() => createFallbackClient([client, other], 5 as never), /options must be an object/)
    void other.close()
  })

  test('remember checks its own arguments before loading', async () => {
    let loads = 0
    await assert.rejects(
      js().remember!('k', () => 1),
      rejectsWith(/`ttl` must be a number of seconds or a string with a unit.*got a function/),
    )
    await assert.rejects(js().remember!('k', 60, 'value'), rejectsWith(/loader must be a function/))
    await assert.rejects(
      client.remember(
        'k',
        60,
        () => {
          loads++
          return 1
        },
        { loadTimeout: '10' },
      ),
      rejectsWith(/`loadTimeout` is the string "10"/),
    )
    assert.equal(loads, 0)
  })

  test('lock durations: strings with units, and wrong types named', async () => {
    const lock = await client.lock('args:lock', { ttl: '30s', wait: '1s', retryInterval: '20ms' })
    assert.match(await rawCommand(server.address, 'mg lock:args:lock t\r\n'), /^HD t(29|30)\r\n$/)
    await lock.release()
    await assert.rejects(client.lock('args:lock2', { wait: '5' }), rejectsWith(/`wait` is the string "5"/))
  })
})

describe('client options: units and pymemcache names', () => {
  test('durations take strings with a unit', () => {
    const c = createClient({
      servers: '127.0.0.1:1',
      timeout: '2s',
      connectTimeout: '1.5 seconds',
      deadTimeout: '1 minute',
      keepAlive: '30s',
      defaultTtl: '1h',
      failoverTtl: '2m',
    })
    assert.equal(c.config.timeout, 2000)
    assert.equal(c.config.connectTimeout, 1500)
    assert.equal(c.config.deadTimeout, 60_000)
    assert.equal(c.config.keepAlive, 30_000)
    assert.equal(c.config.defaultTtl, 3600)
    assert.equal(c.config.failoverTtl, 120)
  })

  test('a unitless string is refused, naming the unit the option takes', () => {
    assert.throws(
      () => createClient({ deadTimeout: '60' }),
      (error: unknown) =>
        error instanceof InvalidOptionError &&
        /`deadTimeout` is the string "60": a string without a unit; pass the number 60 \(milliseconds\) or a string with a unit such as '60ms'/.test(
          error.message,
        ),
    )
  })

  test('pymemcache option names are refused with the memkit option they mean', () => {
    const cases: Array<[string, RegExp]> = [
      ['dead_timeout', /pymemcache's `dead_timeout` is memkit's `deadTimeout` \(milliseconds/],
      ['retry_attempts', /is memkit's `failureLimit`/],
      ['ignore_exc', /memkit never hides errors/],
      ['connect_timeout', /is memkit's `connectTimeout`/],
      ['key_prefix', /is memkit's `keyPrefix`/],
      ['hasher', /`distribution` \('rendezvous'/],
      ['serde', /`serializer`/],
      ['max_pool_size', /`connections`/],
    ]
    for (const [name, pattern] of cases) {
      assert.throws(
        () => createClient({ [name]: 1 } as never),
        (error: unknown) =>
          error instanceof InvalidOptionError &&
          error.message.startsWith(`unknown option \`${name}\``) &&
          pattern.test(error.message),
        name,
      )
    }
  })

  test('deadTimeout: 30 (seconds to a pymemcache user) warns once; plausible values do not', () => {
    const warnings = captureWarnings('MEMKIT_DEAD_TIMEOUT_UNIT')
    try {
      createClient({ servers: '127.0.0.1:1', deadTimeout: 500 })
      assert.equal(warnings.items.length, 0, '500 ms is plausible')
      createClient({ servers: '127.0.0.1:1', deadTimeout: 30 })
      createClient({ servers: '127.0.0.1:1', deadTimeout: 60 })
    } finally {
      warnings.restore()
    }
    const ours = warnings.items
    assert.equal(ours.length, 1, 'warned once')
    assert.match(
      ours[0]!.message,
      /`deadTimeout: 30` is 30 milliseconds.*for 30 seconds write 30000 or '30s'/,
    )
  })
})
