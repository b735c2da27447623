// The store on its own: option validation, callback and Promise forms, the TTL rules, errors,
// and the express-session Store base behaviour it re-implements.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { CHANNELS, type CommandEvent, createClient, InvalidOptionError } from '@memkit/client'
import { useMemcached } from '@memkit/testing'
import expressSession from 'express-session'
import { MemcachedStore, type SessionRecord } from '../src/index.js'
import { countCommands, uniquePrefix, waitFor } from './harness.js'
import { rawGet, storageKey } from './raw.js'

const SECRET = 'store secret for tests'

const { server: mc, client } = await useMemcached({ createClient })

function newStore(options: Record<string, unknown> = {}): { store: MemcachedStore; prefix: string } {
  const prefix = uniquePrefix()
  return { store: new MemcachedStore({ client, prefix, secret: SECRET, ...options }), prefix }
}

function callback<T>(
  run: (cb: (error: Error | null, value?: T) => void) => void,
): Promise<{ error: Error | null; value?: T; calls: number }> {
  return new Promise((resolve) => {
    let calls = 0
    run((error, value) => {
      calls++
      // Resolve on the next turn so a second call would still be counted.
      setImmediate(() => resolve({ error, value, calls }))
    })
  })
}

test('durations take seconds or a string with a unit', () => {
  const store = new MemcachedStore({
    client,
    ttl: '1d',
    touchAfter: '5m',
    generationRefresh: '500ms',
    maxLifetime: '12h',
    tombstoneTtl: '10m',
  })
  assert.equal(store.config.ttl, 86_400)
  assert.equal(store.config.touchAfterMs, 300_000)
  assert.equal(store.config.generationRefreshMs, 500)
  assert.equal(store.config.maxLifetimeMs, 43_200_000)
  assert.equal(store.config.tombstoneTtl, 600)
})

test('invalid options throw ERR_MEMKIT_INVALID_OPTION at construction', () => {
  const bad: Array<[string, Record<string, unknown>]> = [
    ['unknown option', { tll: 60 }],
    ['ttl zero', { ttl: 0 }],
    ['ttl string without a unit', { ttl: '60' }],
    ['negative touchAfter', { touchAfter: -1 }],
    ['generationRefresh not a duration', { generationRefresh: 'soon' }],
    ['negative generationRefresh', { generationRefresh: -1 }],
    ['maxLifetime zero', { maxLifetime: 0 }],
    ['prefix with a space', { prefix: 'my sess:' }],
    ['prefix too long', { prefix: 'p'.repeat(151) }],
    ['empty secret', { secret: '' }],
    ['onUnavailable', { onUnavailable: 'ignore' }],
    ['emitDisconnect', { emitDisconnect: 'yes' }],
    ['client and servers', { client, servers: '127.0.0.1:1' }],
    ['not a client', { client: {} }],
    ['no keys', { encryption: { keys: [] } }],
    ['short key', { encryption: { keys: [{ id: 'a', key: randomBytes(16) }] } }],
    ['key without id', { encryption: { keys: [{ key: randomBytes(32) }] } }],
    [
      'duplicate key id',
      {
        encryption: {
          keys: [
            { id: 'a', key: randomBytes(32) },
            { id: 'a', key: randomBytes(32) },
          ],
        },
      },
    ],
    ['bad client option', { clientOptions: { timeout: -5 } }],
  ]
  for (const [label, options] of bad) {
    assert.throws(
      () => new MemcachedStore(options),
      (error: unknown) => {
        assert.ok(error instanceof InvalidOptionError, label)
        assert.equal((error as InvalidOptionError).code, 'ERR_MEMKIT_INVALID_OPTION', label)
        return true
      },
    )
  }
  // Keys as hex and base64 are accepted.
  const key = randomBytes(32)
  new MemcachedStore({
    client,
    encryption: {
      keys: [
        { id: 'hex', key: key.toString('hex') },
        { id: 'b64', key: key.toString('base64') },
      ],
    },
  })
})

test('Promise and callback forms: set, get, touch, destroy; a miss is null', async () => {
  const { store } = newStore()
  const session = { cookie: { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000) }, user: 'ann' }
  assert.equal(await store.get('nobody'), null)
  const miss = await callback<SessionRecord | null>((cb) => store.get('nobody', cb))
  assert.deepEqual([miss.error, miss.value, miss.calls], [null, null, 1])

  assert.equal(await store.set('s1', session), undefined)
  const got = await store.get('s1')
  assert.equal(got?.user, 'ann')
  assert.ok(got?.cookie.expires instanceof Date, 'expires comes back as a Date')
  const viaCallback = await callback<SessionRecord | null>((cb) => store.get('s1', cb))
  assert.equal(viaCallback.value?.user, 'ann')
  assert.equal(viaCallback.calls, 1)

  const saved = await callback((cb) => store.set('s2', { ...session, user: 'bob' }, cb))
  assert.deepEqual([saved.error, saved.calls], [null, 1])
  assert.equal((await store.get('s2'))?.user, 'bob')
  assert.equal((await callback((cb) => store.touch('s2', session, cb))).error, null)
  assert.equal((await callback((cb) => store.destroy('s2', cb))).error, null)
  assert.equal(await store.get('s2'), null)
  await store.destroy('s1')
  assert.equal(await store.get('s1'), null)
})

test('touch never brings back a session that is gone', async () => {
  const { store } = newStore()
  await store.touch('never-saved', { cookie: { maxAge: 60_000 } })
  assert.equal(await store.get('never-saved'), null)
})

test('TTL: cookie.expires rounded up plus slack, else cookie.maxAge, else ttl; expired means deleted', async () => {
  const { store, prefix } = newStore({ ttl: 300 })
  const ttlOf = async (sid: string) =>
    (await rawGet(mc.address, await storageKey(mc.address, prefix, sid, SECRET)))?.ttl
  await store.set('expires', { cookie: { expires: new Date(Date.now() + 90_400) } })
  // Rounded up, plus 2 s of clock slack (memcached's clock counts whole seconds).
  assert.ok([92, 93].includes((await ttlOf('expires'))!), 'ceil(90.4) + 2 = 93 (memcached may have ticked)')
  // the string a session read back from JSON carries, whatever its maxAge says
  await store.set('expires-string', {
    cookie: { expires: new Date(Date.now() + 45_400).toISOString(), maxAge: 600_000 },
  })
  assert.ok([47, 48].includes((await ttlOf('expires-string'))!), 'ceil(45.4) + 2 = 48')
  await store.set('max-age', { cookie: { maxAge: 2500 } })
  assert.ok([4, 5].includes((await ttlOf('max-age'))!), 'ceil(2.5) + 2 = 5')
  await store.set('not-a-date', { cookie: { expires: 'soon', maxAge: 2500 } })
  assert.ok([4, 5].includes((await ttlOf('not-a-date'))!), 'an unparsable expires leaves it to maxAge')
  await store.set('fallback', { cookie: { originalMaxAge: null, expires: null } })
  assert.ok([301, 302].includes((await ttlOf('fallback'))!), 'ttl 300 + 2')
  await store.set('no-cookie', { user: 'x' })
  assert.ok([301, 302].includes((await ttlOf('no-cookie'))!), 'ttl 300 + 2')

  await store.set('expired', { cookie: { expires: new Date(Date.now() + 60_000) } })
  assert.ok(await store.get('expired'))
  await store.set('expired', { cookie: { expires: new Date(Date.now() - 1) } })
  assert.equal(await ttlOf('expired'), undefined, 'deleted')
  await store.set('never-stored', { cookie: { maxAge: -5 } })
  assert.equal(await ttlOf('never-stored'), undefined, 'not stored')

  const fn = newStore({ ttl: () => 0 })
  await fn.store.set('zero', { user: 1 })
  assert.equal(await fn.store.get('zero'), null, 'a ttl function answering 0 means expired')
  const bad = newStore({ ttl: () => Number.NaN })
  await assert.rejects(bad.store.set('nan', { user: 1 }), { code: 'ERR_MEMKIT_SESSION_VALUE' })
})

test('no session is gone before its cookie expires (memcached counts whole seconds)', async () => {
  // One-second cookies, stored at every phase of memcached's clock; each is looked up (raw, so
  // nothing extends it) just before its cookie expires. Saves and touches are both checked.
  const { store, prefix } = newStore()
  const checks: Array<Promise<{ valid: boolean; present: boolean }>> = []
  const lookUp = (sid: string, expiresAt: number) =>
    new Promise<{ valid: boolean; present: boolean }>((resolve, reject) => {
      setTimeout(
        async () => {
          try {
            const item = await rawGet(mc.address, await storageKey(mc.address, prefix, sid, SECRET))
            // Valid only if memcached answered before the cookie expired.
            resolve({ valid: Date.now() < expiresAt, present: item !== undefined })
          } catch (error) {
            reject(error)
          }
        },
        expiresAt - Date.now() - 60,
      )
    })
  const session = async (i: number) => {
    const sid = `short-${i}`
    let expiresAt = Date.now() + 1000
    await store.set(sid, { cookie: { expires: new Date(expiresAt) }, i })
    if (i % 2 === 1) {
      // A touch moves the expiry: it must hold for the new one.
      await sleep(100)
      expiresAt = Date.now() + 1000
      await store.touch(sid, { cookie: { expires: new Date(expiresAt) }, i })
    }
    return lookUp(sid, expiresAt)
  }
  for (let i = 0; i < 60; i++) {
    checks.push(session(i))
    await sleep(29)
  }
  const results = await Promise.all(checks)
  const valid = results.filter((r) => r.valid)
  assert.ok(valid.length >= 40, `${valid.length} of 60 lookups answered before their cookie expired`)
  assert.equal(valid.filter((r) => !r.present).length, 0, 'sessions gone before their cookie expired')
})

test('a generation copy overwritten with a non-number: a process that knows the generation repairs it', async () => {
  const { store, prefix } = newStore({ generationRefresh: 0 })
  const errors: Error[] = []
  store.on('error', (e) => errors.push(e))
  await store.set('kept', { cookie: { maxAge: 60_000 }, n: 1 })
  const gen = (await rawGet(mc.address, `${prefix}gen`))!.data.toString('latin1')
  await client.set(`${prefix}gen`, 'not a number')
  assert.equal((await store.get('kept'))?.n, 1, 'the session stays: this process knows its generation')
  await waitFor(async () => (await rawGet(mc.address, `${prefix}gen`))?.data.toString('latin1') === gen)
  assert.deepEqual(errors, [])
})

test('every generation copy overwritten and no process knows it: a new generation starts and is reported', async () => {
  const { store, prefix } = newStore({ generationRefresh: 0 })
  await store.set('before', { cookie: { maxAge: 60_000 }, n: 1 })
  await client.set(`${prefix}gen`, 'not a number')
  // Another process: its own client, so it knows no generation yet.
  const elsewhere = createClient({ servers: mc.address })
  try {
    const fresh = new MemcachedStore({ client: elsewhere, prefix, secret: SECRET, generationRefresh: 0 })
    const errors: Error[] = []
    fresh.on('error', (e) => errors.push(e))
    assert.equal(await fresh.get('before'), null, 'the old generation is gone')
    assert.equal((errors[0] as { code?: string }).code, 'ERR_MEMKIT_SESSION_CORRUPT')
    await fresh.set('after', { cookie: { maxAge: 60_000 }, n: 2 })
    assert.equal((await fresh.get('after'))?.n, 2)
    assert.equal((await store.get('after'))?.n, 2, 'the first process follows the new, higher generation')
    assert.equal(await store.get('before'), null)
  } finally {
    await elsewhere.close()
  }
})

test('a touch from a process that never loaded the session still respects maxLifetime', async () => {
  const { store, prefix } = newStore({ maxLifetime: 3 })
  await store.set('lifetime', { cookie: { maxAge: 60_000 } })
  const elsewhere = new MemcachedStore({ client, prefix, secret: SECRET, maxLifetime: 3 })
  await elsewhere.touch('lifetime', { cookie: { maxAge: 60_000 } })
  const item = await rawGet(mc.address, await storageKey(mc.address, prefix, 'lifetime', SECRET))
  assert.ok(item && item.ttl <= 5, `TTL capped by the lifetime (3 s + 2 s slack), got ${item?.ttl}`)
})

test('all() and length() refuse with ERR_MEMKIT_SESSION_NOT_SUPPORTED', async () => {
  const { store } = newStore()
  await assert.rejects(store.all(), { code: 'ERR_MEMKIT_SESSION_NOT_SUPPORTED', message: /cannot list/ })
  await assert.rejects(store.length(), { code: 'ERR_MEMKIT_SESSION_NOT_SUPPORTED' })
  const viaCallback = await callback((cb) => store.length(cb))
  assert.equal((viaCallback.error as { code?: string }).code, 'ERR_MEMKIT_SESSION_NOT_SUPPORTED')
  assert.equal(viaCallback.calls, 1)
})

test('bad arguments reach the callback as typed errors, never as throws', async () => {
  const { store } = newStore()
  const noId = await callback((cb) => store.get('' as string, cb))
  assert.equal((noId.error as { code?: string }).code, 'ERR_MEMKIT_SESSION_ARGUMENT')
  const notObject = await callback((cb) => store.set('sid', null as unknown as object, cb))
  assert.equal((notObject.error as { code?: string }).code, 'ERR_MEMKIT_SESSION_ARGUMENT')
  const cyclic: Record<string, unknown> = { cookie: { maxAge: 1000 } }
  cyclic.self = cyclic
  const cycle = await callback((cb) => store.set('sid', cyclic, cb))
  assert.equal((cycle.error as { code?: string }).code, 'ERR_MEMKIT_SESSION_VALUE')
  await assert.rejects(store.set('sid', { n: 1n }), { code: 'ERR_MEMKIT_SESSION_VALUE' })
})

test('servers and clientOptions build a client the store owns; MEMCACHED_SERVERS when neither', async () => {
  const owned = new MemcachedStore({
    servers: mc.address,
    clientOptions: { timeout: 400 },
    prefix: uniquePrefix(),
  })
  assert.equal(owned.client.config.timeout, 400)
  await owned.set('x', { cookie: { maxAge: 10_000 }, v: 1 })
  assert.equal((await owned.get('x'))?.v, 1)
  await owned.close()
  assert.equal(owned.client.closed, true, 'close() closes an owned client')

  const shared = new MemcachedStore({ client })
  await shared.close()
  assert.equal(client.closed, false, 'close() leaves a shared client open')

  const saved = process.env.MEMCACHED_SERVERS
  process.env.MEMCACHED_SERVERS = mc.address
  try {
    const fromEnv = new MemcachedStore({ prefix: uniquePrefix() })
    assert.deepEqual(fromEnv.client.serverFor('anything'), mc.address)
    await fromEnv.set('y', { v: 2 })
    assert.equal((await fromEnv.get('y'))?.v, 2)
    await fromEnv.close()
  } finally {
    if (saved === undefined) delete process.env.MEMCACHED_SERVERS
    else process.env.MEMCACHED_SERVERS = saved
  }
})

test('an ignored Promise of a failing call is not an unhandled rejection', async () => {
  const dead = createClient({ servers: '127.0.0.1:1', timeout: 200 })
  const store = new MemcachedStore({ client: dead })
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown) => unhandled.push(reason)
  process.on('unhandledRejection', onUnhandled)
  try {
    let failed = 0
    const onCommand = (event: unknown) => {
      if ((event as CommandEvent).client === dead && (event as CommandEvent).error) failed++
    }
    subscribe(CHANNELS.command, onCommand)
    try {
      void store.destroy('sid')
      void store.get('sid')
      // Their read (one command for both: the client coalesces reads of one key) failed, and so
      // did a later call; a turn of the event loop later, an unhandled rejection is reported.
      await waitFor(() => failed >= 1, 'the ignored calls failing')
      await assert.rejects(store.get('sid'), { code: 'ERR_MEMKIT_SESSION_UNAVAILABLE' })
      await new Promise((resolve) => setImmediate(resolve))
      await new Promise((resolve) => setImmediate(resolve))
    } finally {
      unsubscribe(CHANNELS.command, onCommand)
    }
    assert.deepEqual(unhandled, [])
  } finally {
    process.off('unhandledRejection', onUnhandled)
    await dead.close()
  }
})

// ---- express-session's Store base ----------------------------------------------------------

/** A store wired to express-session the way its middleware wires any store. */
function attachedToExpress(store: MemcachedStore): void {
  expressSession({
    store: store as unknown as expressSession.Store,
    secret: 's',
    resave: false,
    saveUninitialized: false,
  })
  assert.equal(typeof store.generate, 'function', 'express-session assigned store.generate')
}

test('createSession builds the same Session as express-session own Store#createSession', async () => {
  const { store } = newStore()
  attachedToExpress(store)
  const expires = new Date(Date.now() + 60_000)
  await store.set('sid-1', {
    cookie: { originalMaxAge: 60_000, expires, path: '/', httpOnly: true, secure: false },
    n: 1,
  })
  const ours = await store.get('sid-1')
  const theirs = await store.get('sid-1')
  const reqA: { sessionID: string; sessionStore: MemcachedStore; session?: unknown } = {
    sessionID: 'sid-1',
    sessionStore: store,
  }
  const reqB = { sessionID: 'sid-1', sessionStore: store }
  const a = store.createSession(reqA, ours!)
  const b = expressSession.Store.prototype.createSession.call(store, reqB as never, theirs as never)
  assert.equal(Object.getPrototypeOf(a), Object.getPrototypeOf(b), 'same Session class')
  assert.ok(a instanceof expressSession.Session)
  assert.equal(Object.getPrototypeOf(a.cookie), Object.getPrototypeOf(b.cookie), 'same Cookie prototype')
  assert.deepEqual(JSON.parse(JSON.stringify(a)), JSON.parse(JSON.stringify(b)))
  assert.equal(a.id, 'sid-1')
  assert.equal(reqA.session, a, 'req.session is set')
  assert.ok(a.cookie.expires instanceof Date)
  assert.equal(a.cookie.originalMaxAge, 60_000)
  assert.ok(Math.abs((a.cookie.maxAge as number) - 60_000) < 2000, 'the maxAge getter works')
  // The Session methods work against this store.
  a.n = 2
  await new Promise<void>((resolve, reject) => a.save((error) => (error ? reject(error) : resolve())))
  assert.equal((await store.get('sid-1'))?.n, 2)
})

test('load() gives a Session (or nothing on a miss); regenerate() destroys and generates', async () => {
  const { store } = newStore()
  attachedToExpress(store)
  await store.set('sid-2', {
    cookie: { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000) },
    n: 5,
  })
  const loaded = await new Promise<unknown>((resolve, reject) =>
    store.load('sid-2', (error, session) => (error ? reject(error) : resolve(session))),
  )
  assert.ok(loaded instanceof expressSession.Session)
  assert.equal((loaded as unknown as { n: number }).n, 5)
  const missing = await new Promise<unknown[]>((resolve) => store.load('nope', (...args) => resolve(args)))
  assert.deepEqual(missing, [null])

  const req: { sessionID?: string; session?: unknown } = { sessionID: 'sid-2' }
  const error = await new Promise((resolve) => store.regenerate(req, resolve))
  assert.equal(error, null)
  assert.notEqual(req.sessionID, 'sid-2', 'a new id')
  assert.ok(req.session instanceof expressSession.Session, 'a new Session')
  assert.equal(await store.get('sid-2'), null, 'the old session is destroyed')

  const detached = newStore().store
  const failed = await new Promise((resolve) => detached.regenerate({ sessionID: 'x' }, resolve))
  assert.equal((failed as { code?: string }).code, 'ERR_MEMKIT_SESSION_ARGUMENT')
})

test('the store is an EventEmitter that express-session can listen to', () => {
  const { store } = newStore()
  attachedToExpress(store)
  // express-session subscribes to connect/disconnect to know when to skip sessions.
  assert.equal(store.listenerCount('disconnect'), 1)
  assert.equal(store.listenerCount('connect'), 1)
})

test('an unchanged save sends no rewrite, even when express-session made originalMaxAge drift a millisecond', async () => {
  const { store, prefix } = newStore()
  attachedToExpress(store)
  await store.set('sid-3', {
    cookie: { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000) },
    n: 1,
  })
  const loadFrom = async (from: MemcachedStore) => {
    const req: { sessionID: string; session?: unknown } = { sessionID: 'sid-3' }
    return from.createSession(req, (await from.get('sid-3'))!)
  }
  const load = () => loadFrom(store)
  const commands = async (run: () => Promise<void>) => (await countCommands(mc.address, run)).counts
  // Stored once through express-session's own Cookie (path, httpOnly...), as the middleware does.
  await store.set('sid-3', await load())

  const same = await load()
  same.cookie.originalMaxAge = 59_999 // what Cookie's maxAge setter sometimes leaves behind
  same.touch()
  const a = await commands(() => store.set('sid-3', same))
  assert.deepEqual(a, {}, 'the read already set that expiry: nothing sent, no rewrite')

  // A process that had not seen the session reads it plainly; its unchanged save is one touch.
  const other = new MemcachedStore({ client, prefix, secret: SECRET })
  attachedToExpress(other)
  const elsewhere = await loadFrom(other)
  elsewhere.cookie.originalMaxAge = 59_999
  elsewhere.touch()
  const a2 = await commands(() => other.set('sid-3', elsewhere))
  assert.deepEqual(a2, { touch: 1 }, 'a touch, never a rewrite')

  const longer = await load()
  longer.cookie.maxAge = 3_600_000 // "remember me": a real cookie change
  longer.cookie.originalMaxAge = 3_600_000
  const b = await commands(() => store.set('sid-3', longer))
  assert.equal(b.cas, 1, 'a changed cookie is saved')
  assert.equal((await store.get('sid-3'))?.cookie.originalMaxAge, 3_600_000)

  const modified = await load()
  modified.n = 2
  const c = await commands(() => store.set('sid-3', modified))
  assert.equal(c.cas, 1, 'one compare-and-swap with the token from the read')
  assert.equal(c.gets ?? 0, 0, 'no second read')
  assert.equal((await store.get('sid-3'))?.n, 2)
})

test('a read that set a session TTL on a tombstone gives it back the tombstone TTL', async () => {
  const { store, prefix } = newStore({ tombstoneTtl: 30 })
  await store.set('gone', { cookie: { maxAge: 3_600_000 }, n: 1 })
  assert.ok(await store.get('gone'), 'this process has read it: its next read sets the TTL')
  // Logged out by another process.
  const other = new MemcachedStore({ client, prefix, secret: SECRET, tombstoneTtl: 30 })
  await other.destroy('gone')
  assert.equal(await store.get('gone'), null)
  const item = await rawGet(mc.address, await storageKey(mc.address, prefix, 'gone', SECRET))
  assert.ok(item?.data.toString('latin1').startsWith('t1\n'), 'the tombstone is there')
  assert.ok(item!.ttl <= 30, `tombstone TTL ${item!.ttl}, not the session's hour`)
})

test('a read that set too short a TTL (the cookie was made longer elsewhere) corrects it at once', async () => {
  // generationRefresh 60: only the read's own commands are counted.
  const { store, prefix } = newStore({ generationRefresh: 60 })
  await store.set('longer', { cookie: { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000) } })
  assert.ok(await store.get('longer'))
  // Another process saves it with a two-week cookie; this one still remembers one minute.
  const other = new MemcachedStore({ client, prefix, secret: SECRET })
  const twoWeeks = 14 * 86_400_000
  await other.set('longer', {
    cookie: { originalMaxAge: twoWeeks, expires: new Date(Date.now() + twoWeeks) },
  })
  const { counts } = await countCommands(mc.address, () => store.get('longer'))
  assert.deepEqual(counts, { getAndTouch: 1, touch: 1 }, 'the read, then one corrective touch')
  const item = await rawGet(mc.address, await storageKey(mc.address, prefix, 'longer', SECRET))
  assert.ok(item && item.ttl > 14 * 86_400 - 60, `TTL ${item?.ttl}: two weeks, not a minute`)
})
