// The store's behaviour through express-session and @fastify/session, each test run on both
// frameworks against a real memcached.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { createClient } from '@memkit/client'
import { dumpKeys, useMemcached } from '@memkit/testing'
import { MemcachedStore, type MemcachedStoreOptions, type SessionError } from '../src/index.js'
import {
  type App,
  type AppOptions,
  countCommands,
  type Framework,
  forBoth,
  makeApp,
  uniquePrefix,
  waitFor,
} from './harness.js'
import { rawGet, rawSet, storageKey } from './raw.js'

const SECRET = 'store secret for tests'
const DAY_MS = 86_400_000
const WRITES = ['set', 'cas', 'add']

const { server: mc, client, closeAfter } = await useMemcached({ createClient })
const apps: App[] = []
closeAfter({
  async close() {
    for (const app of apps) await app.close()
  },
})

/** A store on its own prefix and an app on it. */
async function setup(
  framework: Framework,
  storeOptions: MemcachedStoreOptions = {},
  appOptions: AppOptions = { maxAge: 60_000 },
): Promise<{ store: MemcachedStore; app: App; prefix: string }> {
  const prefix = uniquePrefix()
  const store = new MemcachedStore({ client, prefix, secret: SECRET, ...storeOptions })
  const app = await makeApp(framework, store, appOptions)
  apps.push(app)
  return { store, app, prefix }
}

async function keyOf(app: App, prefix: string, cookie: string | undefined): Promise<string> {
  assert.ok(cookie, 'the response set a session cookie')
  return storageKey(mc.address, prefix, app.sidOf(cookie), SECRET)
}

function writes(counts: Record<string, number>): number {
  return WRITES.reduce((sum, name) => sum + (counts[name] ?? 0), 0)
}

// ---- expiry ------------------------------------------------------------------------------

forBoth(
  '31-day and 365-day sessions survive a set (memcached reads exptimes over 30 days as dates)',
  async (fw) => {
    for (const days of [31, 365]) {
      const { app, prefix } = await setup(fw, {}, { maxAge: days * DAY_MS })
      const user = app.agent()
      assert.equal((await user.get('/write?key=plan&value=long')).status, 200)
      const read = await user.get('/read')
      assert.deepEqual(read.body.data, { plan: 'long' }, `${days}-day session read back`)
      const item = await rawGet(mc.address, await keyOf(app, prefix, user.cookie))
      assert.ok(item, `${days}-day session is in memcached`)
      assert.ok(Math.abs(item.ttl - days * 86_400) <= 5, `${days}-day session has TTL ${item.ttl}`)
    }
  },
)

forBoth('a 500 ms session is stored for 1 s plus the clock slack, then gone', async (fw) => {
  const { store, app, prefix } = await setup(fw, {}, { maxAge: 500 })
  const user = app.agent()
  await user.get('/write?key=a&value=1')
  const key = await keyOf(app, prefix, user.cookie)
  const item = await rawGet(mc.address, key)
  // ceil(0.5 s) + CLOCK_SLACK (2 s): memcached's whole-second clock never drops it early.
  assert.ok(item && item.ttl >= 2 && item.ttl <= 3, `TTL 1 + 2 s, got ${item?.ttl}`)
  await waitFor(async () => (await rawGet(mc.address, key)) === undefined, 'the entry expiring', 6000)
  assert.equal(await store.get(app.sidOf(user.cookie!)), null)
  const later = await app.request('/read', user.cookie)
  assert.equal(later.status, 200)
  assert.deepEqual(later.body.data, {}, 'a fresh session')
})

forBoth(
  'a browser-session cookie takes the ttl option: a number, or a function of the session',
  async (fw) => {
    const fixed = await setup(fw, { ttl: 120 }, {})
    const a = fixed.app.agent()
    await a.get('/write?key=x&value=1')
    const itemA = await rawGet(mc.address, await keyOf(fixed.app, fixed.prefix, a.cookie))
    assert.ok(itemA && itemA.ttl > 110 && itemA.ttl <= 122, `ttl 120 + 2, got ${itemA?.ttl}`)

    const seen: unknown[] = []
    const computed = await setup(
      fw,
      {
        ttl: (session) => {
          seen.push(session.role)
          return session.role === 'admin' ? 60 : 600
        },
      },
      {},
    )
    const b = computed.app.agent()
    await b.get('/write?key=role&value=admin')
    const itemB = await rawGet(mc.address, await keyOf(computed.app, computed.prefix, b.cookie))
    assert.ok(itemB && itemB.ttl > 50 && itemB.ttl <= 62, `ttl from the function, got ${itemB?.ttl}`)
    assert.ok(seen.includes('admin'), 'the function saw the session')
  },
)

forBoth('a session saved with an expiry in the past is deleted, not stored', async (fw) => {
  const { app, prefix } = await setup(fw)
  const user = app.agent()
  await user.get('/write?key=a&value=1')
  const cookie = user.cookie
  const key = await keyOf(app, prefix, cookie)
  assert.ok(await rawGet(mc.address, key))
  assert.equal((await app.request('/expire', cookie)).status, 200)
  assert.equal(await rawGet(mc.address, key), undefined, 'the entry was deleted')
  assert.deepEqual((await app.request('/read', cookie)).body.data, {})
})

forBoth('an active session kept alive by its reads alone outlives its original maxAge', async (fw) => {
  const { app } = await setup(fw, {}, { maxAge: 2000 })
  const user = app.agent()
  await user.get('/write?key=a&value=1')
  const { counts } = await countCommands(mc.address, async () => {
    for (let i = 0; i < 6; i++) {
      await sleep(500)
      const read = await user.get('/read')
      assert.deepEqual(read.body.data, { a: '1' }, `read ${i + 1}, ${(i + 1) * 500} ms after the write`)
    }
  })
  assert.equal(writes(counts), 0, 'never rewritten')
  assert.equal(counts.getAndTouch, 6, 'each read set the expiry (mg with T)')
})

forBoth('maxLifetime ends a session however active it is', async (fw) => {
  const { app, prefix } = await setup(fw, { maxLifetime: 3 }, { maxAge: 60_000 })
  const user = app.agent()
  await user.get('/write?key=a&value=1')
  const key = await keyOf(app, prefix, user.cookie)
  // The lifetime (3 s) plus the clock slack (2 s) that keeps memcached from dropping it early.
  assert.ok((await rawGet(mc.address, key))!.ttl <= 5, 'the TTL is capped by the lifetime')
  await sleep(1000)
  assert.deepEqual((await user.get('/read')).body.data, { a: '1' })
  assert.ok((await rawGet(mc.address, key))!.ttl <= 4, 'a touch does not extend past the lifetime')
  await sleep(2500)
  const late = await app.request('/read', user.cookie)
  assert.deepEqual(late.body.data, {}, 'a fresh session after 3.5 s')
  await waitFor(async () => (await rawGet(mc.address, key)) === undefined, 'the entry expiring', 6000)
})

// ---- touch -------------------------------------------------------------------------------

const raceVariants: Array<[string, AppOptions]> = [
  ['defaults', { maxAge: 60_000 }],
  ['resave/rolling on', { maxAge: 60_000, resave: true, rolling: true }],
]
for (const [label, options] of raceVariants) {
  forBoth(`a write to the cart during a slow read-only request survives (${label})`, async (fw) => {
    const { app } = await setup(fw, {}, options)
    const user = app.agent()
    await user.get('/cart/add?item=apple')
    const gate = app.gate('slow')
    const slow = app.request('/slow-read?gate=slow', user.cookie)
    await gate.reached
    const added = await user.get('/cart/add?item=pear')
    assert.deepEqual(added.body.data.cart, ['apple', 'pear'])
    const { result: slowReply, counts } = await countCommands(mc.address, () => {
      gate.open()
      return slow
    })
    assert.deepEqual(slowReply.body.data.cart, ['apple'], 'the slow request saw the old cart')
    assert.equal(writes(counts), 0, 'the slow read-only request wrote nothing')
    const read = await user.get('/read')
    assert.deepEqual(read.body.data.cart, ['apple', 'pear'], 'the concurrent write survived')
  })
}

forBoth('touchAfter: ten reads inside the interval cause at most one touch and no rewrite', async (fw) => {
  const { app } = await setup(fw, { touchAfter: 60 })
  const user = app.agent()
  await user.get('/write?key=a&value=1')
  const { counts } = await countCommands(mc.address, async () => {
    for (let i = 0; i < 10; i++) assert.deepEqual((await user.get('/read')).body.data, { a: '1' })
  })
  assert.ok((counts.touch ?? 0) <= 1, `touches: ${counts.touch}`)
  assert.equal(writes(counts), 0)
  assert.equal(counts.gets, 10, 'one read per request')
})

forBoth(
  'a read-only request costs one memcached command: the read sets the expiry, the touch sends nothing',
  async (fw) => {
    // @fastify/session calls set() on every request (rolling); express-session calls touch().
    // generationRefresh 60: this counts the request's own commands, not the once-a-second
    // generation read (the benchmark counts everything).
    const { app } = await setup(
      fw,
      { generationRefresh: 60 },
      { maxAge: 60_000, rolling: true, resave: true },
    )
    const user = app.agent()
    await user.get('/write?key=a&value=1')
    const { counts } = await countCommands(mc.address, async () => {
      for (let i = 0; i < 10; i++) await user.get('/read')
    })
    assert.deepEqual(counts, { getAndTouch: 10 }, 'one mg with T per request, nothing else')
  },
)

forBoth('exact rolling expiry: each read moves the expiry to what the cookie asks for', async (fw) => {
  const { app, prefix } = await setup(fw, {}, { maxAge: 60_000 })
  const user = app.agent()
  await user.get('/write?key=a&value=1')
  const key = await keyOf(app, prefix, user.cookie)
  await user.get('/read')
  // Shortened behind the store's back: the next read alone must put it back.
  await rawSet(mc.address, key, (await rawGet(mc.address, key))!.data, 0, 5)
  const { counts } = await countCommands(mc.address, () => user.get('/read'))
  const ttl = (await rawGet(mc.address, key))!.ttl
  // 60 s of cookie, 1 s read-ahead for the framework's touch, 2 s of clock slack.
  assert.ok(ttl >= 61 && ttl <= 63, `the read set the TTL to ${ttl}`)
  assert.equal(writes(counts) + (counts.touch ?? 0), 0, 'by the read alone')
})

forBoth('a changed cookie ("remember me": only maxAge changes) is saved, and kept', async (fw) => {
  const HOUR = 3_600_000
  const { app, prefix } = await setup(fw, {}, { maxAge: HOUR, rolling: true })
  const user = app.agent()
  await user.get('/write?key=user&value=ann')
  const key = await keyOf(app, prefix, user.cookie)
  const remember = await user.get(`/remember?ms=${14 * DAY_MS}`)
  assert.ok(Math.abs(remember.cookieExpires! - (Date.now() + 14 * DAY_MS)) < 60_000, 'two-week cookie sent')
  const stored = (await rawGet(mc.address, key))!
  assert.ok(stored.ttl > 14 * 86_400 - 60, `the entry lives two weeks: TTL ${stored.ttl}`)
  assert.match(stored.data.toString('utf8'), new RegExp(`"originalMaxAge":${14 * DAY_MS}`))

  // The next requests send the two-week cookie again, not the one-hour one, and rewrite nothing.
  const { result: next, counts } = await countCommands(mc.address, () => user.get('/read'))
  assert.deepEqual(next.body.data, { user: 'ann' })
  assert.ok(Math.abs(next.cookieExpires! - (Date.now() + 14 * DAY_MS)) < 60_000, 'still a two-week cookie')
  assert.equal(writes(counts), 0, 'a plain request after it is not a rewrite')
  assert.ok((await rawGet(mc.address, key))!.ttl > 14 * 86_400 - 60, 'the TTL did not fall back to an hour')
})

test('express-session with rolling: false saves a changed cookie too; the next modifying response sends it', async () => {
  const { app, prefix } = await setup('express', {}, { maxAge: 3_600_000, rolling: false })
  const user = app.agent()
  await user.get('/write?key=user&value=ann')
  const key = await keyOf(app, prefix, user.cookie)
  // express-session sends no cookie for an unmodified session without rolling: its own choice.
  assert.equal((await user.get(`/remember?ms=${14 * DAY_MS}`)).cookie, undefined)
  assert.ok((await rawGet(mc.address, key))!.ttl > 14 * 86_400 - 60, 'stored for two weeks')
  const next = await user.get('/write?key=cart&value=book')
  assert.ok(Math.abs(next.cookieExpires! - (Date.now() + 14 * DAY_MS)) < 60_000, 'a two-week cookie')
})

forBoth('a cookie change saved at the end of a request keeps data written meanwhile', async (fw) => {
  const { app } = await setup(fw, {}, { maxAge: 3_600_000, rolling: true })
  const user = app.agent()
  await user.get('/write?key=user&value=ann')
  const gate = app.gate('remember')
  const remember = app.request(`/remember?ms=${14 * DAY_MS}&gate=remember`, user.cookie)
  await gate.reached
  await user.get('/write?key=cart&value=book')
  gate.open()
  await remember
  const read = await user.get('/read')
  assert.deepEqual(read.body.data, { user: 'ann', cart: 'book' }, 'the concurrent write survived')
  assert.ok(Math.abs(read.cookieExpires! - (Date.now() + 14 * DAY_MS)) < 60_000, 'and the new cookie too')
})

// ---- keys --------------------------------------------------------------------------------

forBoth('no session id appears in a dump of the cache; keys are prefix + generation + hash', async (fw) => {
  const { app, prefix } = await setup(fw)
  const sids: string[] = []
  for (const name of ['ann', 'bob', 'cid']) {
    const user = app.agent()
    await user.get(`/write?key=name&value=${name}`)
    sids.push(app.sidOf(user.cookie!))
  }
  const keys = await dumpKeys(mc.address)
  const ours = keys.filter((k) => k.startsWith(prefix))
  assert.equal(ours.length, 4, `three sessions and the generation: ${ours.join(', ')}`)
  for (const key of ours) {
    if (key === `${prefix}gen`) continue
    assert.match(key.slice(prefix.length), /^[0-9a-z]+:[A-Za-z0-9_-]{43}$/)
  }
  for (const sid of sids) {
    for (const key of keys) assert.ok(!key.includes(sid), `key ${key} reveals session id ${sid}`)
  }
})

forBoth('a 600-character session id fits (the key stays under 250 bytes)', async (fw) => {
  const { app, prefix } = await setup(
    fw,
    {},
    { maxAge: 60_000, genid: () => randomBytes(450).toString('base64url') },
  )
  const user = app.agent()
  await user.get('/write?key=a&value=long-id')
  assert.equal(app.sidOf(user.cookie!).length, 600)
  assert.deepEqual((await user.get('/read')).body.data, { a: 'long-id' })
  const key = await keyOf(app, prefix, user.cookie)
  assert.ok(key.length < 250)
})

// ---- logout ------------------------------------------------------------------------------

forBoth('logout cannot be undone by a request that was in flight', async (fw) => {
  const { app, prefix } = await setup(fw)
  const user = app.agent()
  const login = await user.get('/login?user=ann')
  assert.deepEqual(login.body.data, { user: 'ann' })
  const cookie = user.cookie
  const writeGate = app.gate('write')
  const readGate = app.gate('read')
  const slowWrite = app.request('/slow-write?gate=write&key=cart&value=book', cookie)
  const slowRead = app.request('/slow-read?gate=read', cookie)
  await Promise.all([writeGate.reached, readGate.reached])
  assert.equal((await app.request('/logout', cookie)).status, 200)
  writeGate.open()
  readGate.open()
  const [w, r] = await Promise.all([slowWrite, slowRead])
  assert.equal(w.status, 200)
  assert.deepEqual(w.body.data, { user: 'ann', cart: 'book' }, 'the old request believed it saved')
  assert.deepEqual(r.body.data, { user: 'ann' })
  const after = await app.request('/read', cookie)
  assert.deepEqual(after.body.data, {}, 'still logged out')
  const item = await rawGet(mc.address, await keyOf(app, prefix, cookie))
  assert.ok(item?.data.toString('latin1').startsWith('t1\n'), 'a tombstone holds the key')
})

forBoth('regenerate (login) destroys the old session and issues a new id', async (fw) => {
  const { store, app } = await setup(fw)
  const user = app.agent()
  await user.get('/write?key=pre&value=login')
  const before = app.sidOf(user.cookie!)
  const login = await user.get('/login?user=ann')
  const afterSid = app.sidOf(user.cookie!)
  assert.notEqual(afterSid, before)
  assert.equal(login.body.sid, afterSid)
  assert.equal(await store.get(before), null, 'the pre-login session is gone')
  assert.deepEqual((await user.get('/read')).body.data, { user: 'ann' })
})

// ---- clear -------------------------------------------------------------------------------

forBoth(
  'clear() ends every session of the store (in every process) and leaves other keys alone',
  async (fw) => {
    const { store, app, prefix } = await setup(fw)
    // Another process that reads the generation with every operation.
    const other = new MemcachedStore({
      client: createClient({ servers: mc.address }),
      prefix,
      secret: SECRET,
      generationRefresh: 0,
    })
    const alice = app.agent()
    const bob = app.agent()
    await alice.get('/write?key=name&value=alice')
    await bob.get('/write?key=name&value=bob')
    await client.set(`${prefix}unrelated`, 'keep me')
    await client.set('elsewhere:key', 'keep me too')
    const aliceSid = app.sidOf(alice.cookie!)
    assert.ok(await other.get(aliceSid), 'another process sees the session')

    await store.clear()
    assert.deepEqual((await app.request('/read', alice.cookie)).body.data, {})
    assert.deepEqual((await app.request('/read', bob.cookie)).body.data, {})
    assert.equal(await other.get(aliceSid), null, 'the other process misses it at once')
    assert.equal(await client.get(`${prefix}unrelated`), 'keep me')
    assert.equal(await client.get('elsewhere:key'), 'keep me too')

    const carol = app.agent()
    await carol.get('/write?key=name&value=carol')
    assert.deepEqual((await carol.get('/read')).body.data, { name: 'carol' }, 'new sessions work')
    await other.client.close()
  },
)

forBoth(
  'clear() with the default generationRefresh: at once in this process, at their next read of the generation in the others',
  async (fw) => {
    const { store, app, prefix } = await setup(fw)
    const otherClient = createClient({ servers: mc.address })
    const other = new MemcachedStore({ client: otherClient, prefix, secret: SECRET })
    try {
      const user = app.agent()
      await user.get('/write?key=name&value=ann')
      const sid = app.sidOf(user.cookie!)
      assert.ok(await other.get(sid), 'the other process reads the session')
      await store.clear()
      assert.deepEqual((await app.request('/read', user.cookie)).body.data, {}, 'ended here at once')
      await waitFor(async () => (await other.get(sid)) === null, 'the other process ending the session')
    } finally {
      await otherClient.close()
    }
  },
)

forBoth('a request in flight during clear() cannot save its session back', async (fw) => {
  const { store, app } = await setup(fw)
  const user = app.agent()
  await user.get('/write?key=a&value=1')
  const gate = app.gate('slow')
  const slow = app.request('/slow-write?gate=slow&key=b&value=2', user.cookie)
  await gate.reached
  await store.clear()
  gate.open()
  assert.equal((await slow).status, 200)
  assert.deepEqual((await app.request('/read', user.cookie)).body.data, {})
})

// ---- encryption --------------------------------------------------------------------------

forBoth('encryption: nothing readable at rest, ciphertext bound to its key, keys rotate', async (fw) => {
  const k1 = randomBytes(32)
  const k2 = randomBytes(32)
  const errors: SessionError[] = []
  const one = await setup(fw, { encryption: { keys: [{ id: 'k1', key: k1 }] } })
  one.store.on('error', (e) => errors.push(e))
  const alice = one.app.agent()
  const bob = one.app.agent()
  await alice.get('/write?key=card&value=SENSITIVE-4111')
  await bob.get('/write?key=name&value=bob')
  const aliceKey = await keyOf(one.app, one.prefix, alice.cookie)
  const bobKey = await keyOf(one.app, one.prefix, bob.cookie)
  const raw = (await rawGet(mc.address, aliceKey))!
  assert.ok(!raw.data.toString('latin1').includes('SENSITIVE'), 'no plaintext at rest')
  assert.equal(raw.data.subarray(0, 2).toString('latin1'), 'e1')
  assert.deepEqual((await alice.get('/read')).body.data, { card: 'SENSITIVE-4111' })

  // Alice's ciphertext copied under Bob's key fails authentication: Bob gets a fresh session.
  await rawSet(mc.address, bobKey, raw.data, 0, 60)
  const bobRead = await app(one).request('/read', bob.cookie)
  assert.equal(bobRead.status, 200)
  assert.deepEqual(bobRead.body.data, {})
  assert.equal(errors.at(-1)?.code, 'ERR_MEMKIT_SESSION_CORRUPT')

  // Rotation: k2 now encrypts, k1 still decrypts.
  const storeTwo = new MemcachedStore({
    client,
    prefix: one.prefix,
    secret: SECRET,
    encryption: {
      keys: [
        { id: 'k2', key: k2 },
        { id: 'k1', key: k1 },
      ],
    },
  })
  const two = await makeApp(fw, storeTwo, { maxAge: 60_000 })
  apps.push(two)
  assert.deepEqual((await two.request('/read', alice.cookie)).body.data, { card: 'SENSITIVE-4111' })
  await two.request('/write?key=card&value=rotated', alice.cookie)
  const rotated = (await rawGet(mc.address, aliceKey))!.data
  assert.equal(rotated.subarray(3, 3 + rotated[2]!).toString('utf8'), 'k2', 'rewritten under the new key')

  // A ring without k1 cannot read what k1 wrote: a miss and an error, never plaintext.
  const carol = one.app.agent()
  await carol.get('/write?key=name&value=carol')
  const storeThree = new MemcachedStore({
    client,
    prefix: one.prefix,
    secret: SECRET,
    encryption: { keys: [{ id: 'k2', key: k2 }] },
  })
  const threeErrors: SessionError[] = []
  storeThree.on('error', (e) => threeErrors.push(e))
  const three = await makeApp(fw, storeThree, { maxAge: 60_000 })
  apps.push(three)
  assert.deepEqual((await three.request('/read', carol.cookie)).body.data, {})
  assert.match(threeErrors[0]?.message ?? '', /key id "k1", which is not in the key ring/)
  assert.deepEqual((await three.request('/read', alice.cookie)).body.data, { card: 'rotated' })
})

function app(s: { app: App }): App {
  return s.app
}

// ---- corrupt data ------------------------------------------------------------------------

const corruptions: Array<[string, Buffer | string, number]> = [
  ['random bytes', Buffer.from([0, 1, 2, 250, 251, 252]), 0],
  ['a JSON-flagged value that is not JSON', '{"cookie": nope', 32],
  ['a truncated session', 's1\n1700000000000\n', 0],
  ['invalid JSON in the session format', 's1\n1\n2\n{"path":"/"}\n{"a":', 0],
  ['an array instead of a session', 's1\n1\n2\nnull\n[1,2]', 0],
  ['a ciphertext in a store without encryption', 'e1\u0002k1garbagegarbagegarbagegarbage', 0],
]

forBoth('a corrupt stored value is a fresh session plus an error event, never a crash', async (fw) => {
  const { store, app, prefix } = await setup(fw)
  const errors: SessionError[] = []
  const listener = (e: SessionError) => errors.push(e)
  store.on('error', listener)
  for (const [label, value, flags] of corruptions) {
    const user = app.agent()
    await user.get('/write?key=a&value=1')
    const sid = app.sidOf(user.cookie!)
    await rawSet(mc.address, await keyOf(app, prefix, user.cookie), value, flags, 60)
    const before = errors.length
    const read = await app.request('/read', user.cookie)
    assert.equal(read.status, 200, label)
    assert.deepEqual(read.body.data, {}, `${label}: a fresh session`)
    assert.equal(errors.length, before + 1, `${label}: one error event`)
    assert.equal(errors.at(-1)!.code, 'ERR_MEMKIT_SESSION_CORRUPT')
    assert.ok(!errors.at(-1)!.message.includes(sid), 'the error does not reveal the session id')
  }
  // With no 'error' listener at all (express-session adds none), still no crash.
  store.off('error', listener)
  assert.equal(store.listenerCount('error'), 0)
  for (const [label, value, flags] of corruptions) {
    const user = app.agent()
    await user.get('/write?key=a&value=1')
    await rawSet(mc.address, await keyOf(app, prefix, user.cookie), value, flags, 60)
    const read = await app.request('/read', user.cookie)
    assert.equal(read.status, 200, `${label}, no listener`)
    assert.deepEqual(read.body.data, {})
  }
})

forBoth('with encryption on, a plaintext value is refused (no plaintext fallback)', async (fw) => {
  const { store, app, prefix } = await setup(fw, {
    encryption: { keys: [{ id: 'k', key: randomBytes(32) }] },
  })
  const errors: SessionError[] = []
  store.on('error', (e) => errors.push(e))
  const user = app.agent()
  await user.get('/write?key=a&value=1')
  const now = Date.now()
  await rawSet(
    mc.address,
    await keyOf(app, prefix, user.cookie),
    `s1\n${now}\n${now}\n{"originalMaxAge":60000}\n{"admin":true}`,
    0,
    60,
  )
  const read = await app.request('/read', user.cookie)
  assert.deepEqual(read.body.data, {}, 'the forged plaintext session is not used')
  assert.match(errors[0]?.message ?? '', /not encrypted/)
})

// ---- size --------------------------------------------------------------------------------

forBoth('a session over the item limit fails its save clearly and the stored version is kept', async (fw) => {
  const { app } = await setup(fw)
  const user = app.agent()
  await user.get('/write?key=a&value=1')
  const big = await user.get(`/big?size=${1_500_000}`)
  assert.equal(big.status, 500)
  assert.equal(big.body.code, 'ERR_MEMKIT_SESSION_TOO_LARGE')
  assert.match(big.body.message, /item size limit/)
  assert.deepEqual((await user.get('/read')).body.data, { a: '1' }, 'the previous version is intact')
})
