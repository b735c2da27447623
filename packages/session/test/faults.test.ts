// memcached down (killed), frozen (SIGSTOP) or silent, through both frameworks: a typed error
// from the client's own failure detection (its timeout, a refused connection, a server marked
// down), or a fresh session with onUnavailable: 'new-session'. How fast the client gives up is
// the client's tests' business; here, what the user sees.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, afterEach, test } from 'node:test'
import { createClient, type MemcachedClient } from '@memkit/client'
import { type MemcachedServer, startMemcached, startSilentServer, stopAll } from '@memkit/testing'
import { MemcachedStore, type MemcachedStoreOptions, type SessionError } from '../src/index.js'
import { type App, type Framework, forBoth, makeApp, uniquePrefix, waitFor } from './harness.js'

const TIMEOUT = 300
/** The client's failures that mean "memcached is unavailable". */
const UNAVAILABLE = /ERR_MEMKIT_(TIMEOUT|CONNECTION|SERVER_DOWN)\b/

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})
after(stopAll)

async function setup(
  framework: Framework,
  storeOptions: MemcachedStoreOptions = {},
  clientOptions: Record<string, unknown> = {},
): Promise<{ mc: MemcachedServer; client: MemcachedClient; store: MemcachedStore; app: App }> {
  const mc = await startMemcached()
  const client = createClient({ servers: mc.address, timeout: TIMEOUT, ...clientOptions })
  const store = new MemcachedStore({ client, prefix: uniquePrefix(), ...storeOptions })
  const app = await makeApp(framework, store, { maxAge: 60_000 })
  cleanups.push(
    () => mc.stop(),
    () => client.close(),
    () => app.close(),
    () => mc.resume(),
  )
  return { mc, client, store, app }
}

/**
 * A new visitor's session is saved at the end of the request. @fastify/session saves before the
 * response goes out, so it fails with 503; express-session writes the response head first and
 * passes the save error to next() afterwards, so the client sees 200 and Express gets the error.
 */
async function newVisitorCannotSave(fw: Framework, app: App): Promise<void> {
  const reply = await app.request('/write?key=b&value=2')
  const late = await app.nextLateError()
  if (fw === 'fastify') {
    assert.equal(reply.status, 503)
    assert.match(reply.body.message, UNAVAILABLE)
  } else {
    assert.equal(reply.status, 200)
    assert.equal((late as SessionError).code, 'ERR_MEMKIT_SESSION_UNAVAILABLE')
    assert.match(((late as Error).cause as { code: string }).code, UNAVAILABLE)
  }
}

for (const fault of ['killed', 'frozen'] as const) {
  const breakServer = async (mc: MemcachedServer) => {
    // freeze() resolves once the process is stopped.
    if (fault === 'killed') return mc.kill()
    return mc.freeze()
  }

  forBoth(`memcached ${fault}: the request fails with 503 ERR_MEMKIT_SESSION_UNAVAILABLE`, async (fw) => {
    const { mc, app } = await setup(fw)
    const user = app.agent()
    assert.equal((await user.get('/write?key=a&value=1')).status, 200)
    await breakServer(mc)
    const result = await user.get('/read')
    assert.equal(result.status, 503)
    assert.equal(result.body.code, 'ERR_MEMKIT_SESSION_UNAVAILABLE')
    assert.match(result.body.message, UNAVAILABLE, 'the client gave up on the server')
    await newVisitorCannotSave(fw, app)
  })

  forBoth(
    `memcached ${fault}, onUnavailable 'new-session': the request goes on with a fresh session`,
    async (fw) => {
      const { mc, store, app } = await setup(fw, { onUnavailable: 'new-session' })
      const errors: SessionError[] = []
      store.on('error', (e) => errors.push(e))
      const user = app.agent()
      await user.get('/write?key=a&value=1')
      await breakServer(mc)
      const result = await user.get('/write?key=b&value=2')
      assert.equal(result.status, 200)
      assert.deepEqual(result.body.data, { b: '2' }, 'a fresh session, not the stored one')
      assert.ok(errors.length >= 1)
      assert.ok(errors.every((e) => e.code === 'ERR_MEMKIT_SESSION_UNAVAILABLE'))
      assert.ok(errors.every((e) => UNAVAILABLE.test((e.cause as { code: string }).code)))
      // Logging out is never faked: it still fails loudly.
      assert.equal((await app.request('/logout', user.cookie)).status, 503)
    },
  )
}

forBoth(
  'a silent server (accepts, never answers): the callback gets a typed error from the client timeout',
  async (fw) => {
    const silent = await startSilentServer()
    const client = createClient({ servers: silent.address, timeout: TIMEOUT })
    const store = new MemcachedStore({ client })
    const app = await makeApp(fw, store, { maxAge: 60_000 })
    cleanups.push(
      () => silent.close(),
      () => client.close(),
      () => app.close(),
    )
    const direct = await new Promise<Error | null>((resolve) =>
      store.get('some-session-id', (error) => resolve(error)),
    )
    assert.equal((direct as SessionError).code, 'ERR_MEMKIT_SESSION_UNAVAILABLE')
    assert.equal(((direct as Error).cause as { code?: string }).code, 'ERR_MEMKIT_TIMEOUT')
    assert.equal((direct as SessionError).statusCode, 503)
    await newVisitorCannotSave(fw, app)
  },
)

forBoth('memcached restarted empty: sessions are gone, the app carries on', async (fw) => {
  const { mc, app } = await setup(fw, {}, { deadTimeout: 100, failureLimit: 1 })
  const user = app.agent()
  await user.get('/write?key=a&value=1')
  await mc.restart()
  // The first request after the restart may still see the old connection fail.
  let reply = await user.get('/read')
  await waitFor(async () => {
    reply = await user.get('/read')
    return reply.status === 200
  }, 'a request answered')
  assert.deepEqual(reply.body.data, {})
  await user.get('/write?key=b&value=2')
  assert.deepEqual((await user.get('/read')).body.data, { b: '2' })
})

forBoth("emitDisconnect: 'disconnect' when every server is down, 'connect' when one is back", async (fw) => {
  const { mc, store, app } = await setup(fw, { emitDisconnect: true }, { failureLimit: 1, deadTimeout: 100 })
  const user = app.agent()
  await user.get('/write?key=a&value=1')
  const disconnected = once(store, 'disconnect')
  await mc.kill()
  // The client marks the server down on the connection reset or on the first failed command.
  const first = await user.get('/read')
  assert.ok([200, 503].includes(first.status))
  await disconnected
  const during = await user.get('/read')
  if (fw === 'express') {
    // express-session skips sessions while its store is disconnected.
    assert.equal(during.status, 200)
    assert.equal(during.body.data, null, 'no req.session')
  } else {
    // @fastify/session ignores the events: onUnavailable applies.
    assert.equal(during.status, 503)
  }
  const connected = once(store, 'connect')
  await mc.restart()
  await connected
  const back = await user.get('/write?key=c&value=3')
  assert.equal(back.status, 200)
  assert.deepEqual(back.body.data, { c: '3' }, 'sessions again (memcached came back empty)')
})

test('a server that fails mid-flight never hands one request a reply meant for another', async () => {
  // Two sessions read concurrently while the server is frozen and then resumed: each gets its own.
  const mc = await startMemcached()
  const client = createClient({ servers: mc.address, timeout: TIMEOUT })
  cleanups.push(
    () => mc.stop(),
    () => client.close(),
  )
  const store = new MemcachedStore({ client, prefix: uniquePrefix() })
  await store.set('alice', { cookie: { maxAge: 60_000 }, name: 'alice' })
  await store.set('bob', { cookie: { maxAge: 60_000 }, name: 'bob' })
  await mc.freeze()
  const frozen = await Promise.allSettled([store.get('alice'), store.get('bob')])
  assert.ok(frozen.every((r) => r.status === 'rejected'))
  mc.resume()
  await waitFor(
    async () => (await store.get('alice').catch(() => undefined)) !== undefined,
    'the server back',
  )
  const [a, b] = await Promise.all([store.get('alice'), store.get('bob')])
  assert.equal(a?.name, 'alice')
  assert.equal(b?.name, 'bob')
})
