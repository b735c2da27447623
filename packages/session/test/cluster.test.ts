// Three real memcached nodes: one node's loss, pause or memory pressure touches only the
// sessions on it. No single key (the namespace generation behind clear() included) decides
// whether every user stays logged in, and a node that returns never brings back an older
// generation.
import assert from 'node:assert/strict'
import { after, afterEach, test } from 'node:test'
import { createClient, type MemcachedClient } from '@memkit/client'
import { type MemcachedServer, rawCommand, startMemcachedCluster, stopAll } from '@memkit/testing'
import { MemcachedStore, type MemcachedStoreOptions } from '../src/index.js'
import { type Framework, forBoth, makeApp, uniquePrefix, waitFor } from './harness.js'
import { storageKey } from './raw.js'

const SECRET = 'cluster secret'
// The client timeout where a test freezes a node: short, so the frozen node is found out fast.
const FREEZE_TIMEOUT = 300
// Everywhere else no request waits on a timeout (a killed node refuses at once), so it is long:
// on a loaded machine a healthy node answering late must not be marked down (or, with
// failover, have its keys written to a stand-in), which the tests would read as a fault.
const TIMEOUT = 5000

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})
after(stopAll)

function clientFor(servers: MemcachedServer[], failover: boolean, timeout = TIMEOUT): MemcachedClient {
  const client = createClient({
    servers: servers.map((s) => s.address),
    timeout,
    failureLimit: 1,
    // Long enough that a dead node is not probed back during a test, short enough for a resume.
    deadTimeout: 300,
    failover,
  })
  cleanups.push(() => client.close())
  return client
}

/** A store on its own prefix; generationRefresh 0 makes every operation read the generation. */
function storeFor(
  client: MemcachedClient,
  prefix: string,
  options: MemcachedStoreOptions = {},
): MemcachedStore {
  return new MemcachedStore({ client, prefix, secret: SECRET, generationRefresh: 0, ...options })
}

/** The value of a generation copy on the node that holds it (undefined when missing). */
async function copyOn(server: MemcachedServer, key: string): Promise<string | undefined> {
  const reply = await rawCommand(server.address, `mg ${key} v\r\n`)
  return reply.startsWith('VA ') ? reply.split('\r\n')[1]!.trim() : undefined
}

function nodeOf(
  servers: MemcachedServer[],
  client: { serverFor(key: string): string },
  key: string,
): MemcachedServer {
  return servers.find((s) => s.address === client.serverFor(key))!
}

for (const failover of [false, true]) {
  forBoth(
    `killing any one of 3 nodes keeps every session on the other two (failover: ${failover})`,
    async (fw: Framework) => {
      for (let victim = 0; victim < 3; victim++) {
        const servers = await startMemcachedCluster(3)
        cleanups.push(...servers.map((s) => () => s.stop()))
        const client = clientFor(servers, failover)
        const prefix = uniquePrefix()
        const app = await makeApp(fw, storeFor(client, prefix), { maxAge: 60_000 })
        cleanups.push(() => app.close())
        const genNode = nodeOf(servers, client, `${prefix}gen`)
        const users = []
        for (let i = 0; i < 24; i++) {
          const user = app.agent()
          await user.get(`/write?key=n&value=${i}`)
          const key = await storageKey(genNode.address, prefix, app.sidOf(user.cookie!), SECRET)
          users.push({ user, i, home: client.serverFor(key) })
        }
        // Each node in turn, starting with the one that holds `<prefix>gen`, the generation's first copy.
        const dead = nodeOf(servers, client, client.generation(`${prefix}gen`).copyKeys[victim]!)
        const onSurvivors = users.filter((u) => u.home !== dead.address)
        assert.ok(onSurvivors.length > 0 && onSurvivors.length < users.length, 'sessions on every node')
        await dead.kill()

        for (const { user, i, home } of users) {
          const reply = await user.get('/read')
          if (home !== dead.address) {
            assert.equal(reply.status, 200, `user ${i} lives on a survivor: ${JSON.stringify(reply.body)}`)
            assert.deepEqual(reply.body.data, { n: String(i) }, `user ${i} is still logged in`)
          } else if (!failover) {
            assert.equal(
              reply.status,
              503,
              `user ${i} lived on the dead node: unavailable, got ${JSON.stringify(reply.body)}`,
            )
          } else if (reply.status === 200) {
            // Moved to a stand-in node: a fresh session, never someone else's.
            assert.ok(
              [null, undefined].includes(reply.body.data?.n),
              `user ${i}: a fresh session, got ${JSON.stringify(reply.body)}`,
            )
          }
        }

        // A process started after the loss (its own client, knowing no generation) agrees.
        const late = clientFor(servers, failover)
        const lateApp = await makeApp(fw, storeFor(late, prefix), { maxAge: 60_000 })
        cleanups.push(() => lateApp.close())
        for (const { user, i } of onSurvivors) {
          const reply = await lateApp.request('/read', user.cookie)
          assert.deepEqual(reply.body.data, { n: String(i) }, `user ${i} seen by a new process`)
        }
        while (cleanups.length) await cleanups.pop()!()
      }
    },
  )

  test(`a node paused while clear() runs and then resumed does not bring the old generation back (failover: ${failover})`, async () => {
    for (let victim = 0; victim < 3; victim++) {
      const servers = await startMemcachedCluster(3)
      cleanups.push(...servers.map((s) => () => s.stop()))
      const prefix = uniquePrefix()
      const here = storeFor(clientFor(servers, failover, FREEZE_TIMEOUT), prefix)
      // Another process that read the old generation before the pause.
      const there = storeFor(clientFor(servers, failover, FREEZE_TIMEOUT), prefix)
      const sids = Array.from({ length: 12 }, (_, i) => `user-${victim}-${i}`)
      for (const sid of sids) await here.set(sid, { cookie: { maxAge: 60_000 }, sid })
      for (const sid of sids) assert.equal((await there.get(sid))?.sid, sid)

      // Each node in turn, starting with the one that holds `<prefix>gen`, the generation's first copy.
      const generation = here.client.generation(`${prefix}gen`)
      const frozenCopy = generation.copyKeys[victim]!
      const frozen = nodeOf(servers, here.client, frozenCopy)
      const before = await copyOn(frozen, frozenCopy)
      assert.ok(before, 'the paused node holds a copy of the generation')
      await frozen.freeze()
      cleanups.push(() => frozen.resume())
      await here.clear()
      const cleared = String(generation.known)
      assert.ok(Number(cleared) > Number(before))
      frozen.resume()
      // With failover the client empties the node when it rejoins; without, it keeps the old copy.
      if (!failover)
        assert.equal(await copyOn(frozen, frozenCopy), before, 'the resumed node holds the old copy')

      // A process started after the heal, knowing nothing, and both that knew the old generation.
      const fresh = storeFor(clientFor(servers, failover, FREEZE_TIMEOUT), prefix)
      for (const [name, store] of [
        ['here', here],
        ['there', there],
        ['fresh', fresh],
      ] as const) {
        for (const sid of sids) {
          // Sessions on the resumed node fail until the client takes the node back.
          let session: unknown
          await waitFor(async () => {
            try {
              session = await store.get(sid)
              return true
            } catch {
              return false
            }
          }, `${name} reading ${sid}`)
          assert.equal(session, null, `${sid} stays cleared for ${name}`)
        }
      }
      // The old copy is raised to the new generation, never the other way round.
      await waitFor(async () => {
        await fresh.get('anyone')
        return (await copyOn(frozen, frozenCopy)) === cleared
      }, 'the old copy being repaired')
      // Once this process's client has taken the node back (both clients place keys alike).
      await waitFor(async () => (await here.client.stats()).every((s) => s.up), 'the node rejoining')
      await here.set('after-clear', { cookie: { maxAge: 60_000 }, ok: true })
      assert.equal((await fresh.get('after-clear'))?.ok, true, 'new sessions work everywhere')
      while (cleanups.length) await cleanups.pop()!()
    }
  })
}

test('evicting every generation copy under memory pressure does not log anyone out', async () => {
  // 2 MiB per node: a flood of small items evicts the generation copies (their slab class);
  // the sessions are larger items in another class and mostly survive. memcached's default
  // segmented LRU shelters items read more than once (the copies are, by every process, every
  // second) from a flood of items written once; without the LRU maintainer it is a plain LRU,
  // the harder case, where the copies really go.
  const servers = await startMemcachedCluster(3, { memoryMb: 2, args: ['-o', 'no_lru_maintainer'] })
  cleanups.push(...servers.map((s) => () => s.stop()))
  const prefix = uniquePrefix()
  const client = clientFor(servers, false)
  const store = storeFor(client, prefix, { generationRefresh: 1 })
  const sids = Array.from({ length: 30 }, (_, i) => `evict-${i}`)
  for (const sid of sids) await store.set(sid, { cookie: { maxAge: 600_000 }, sid, pad: 'p'.repeat(200) })
  const generation = client.generation(`${prefix}gen`)
  const value = String(generation.known)
  const genNode = nodeOf(servers, client, `${prefix}gen`).address
  const keys = new Map<string, string>()
  for (const sid of sids) keys.set(sid, await storageKey(genNode, prefix, sid, SECRET))

  const flood = 'f'.repeat(20)
  for (const server of servers) {
    for (let batch = 0; batch < 100; batch++) {
      let text = ''
      for (let i = 0; i < 2000; i++) text += `ms fl:${batch}:${i} ${flood.length} T0 q\r\n${flood}\r\n`
      await rawCommand(server.address, `${text}mn\r\n`, (reply) => reply.endsWith('MN\r\n'), 10_000)
    }
  }
  for (const key of generation.copyKeys) {
    assert.equal(await copyOn(nodeOf(servers, client, key), key), undefined, `copy ${key} was evicted`)
  }
  const survivors: string[] = []
  for (const [sid, key] of keys) {
    if ((await rawCommand(nodeOf(servers, client, key).address, `mg ${key}\r\n`)).startsWith('HD')) {
      survivors.push(sid)
    }
  }
  assert.ok(survivors.length > 0, 'sessions survived the flood')

  // The running process knows the generation: every surviving session is still read, and the
  // copies are put back.
  for (const sid of survivors) assert.equal((await store.get(sid))?.sid, sid, `${sid} still logged in`)
  for (const key of generation.copyKeys) {
    await waitFor(async () => {
      await store.get(survivors[0]!)
      return (await copyOn(nodeOf(servers, client, key), key)) === value
    }, `copy ${key} put back`)
  }
  // A process started afterwards reads the same generation and the same sessions.
  const fresh = storeFor(clientFor(servers, false), prefix)
  for (const sid of survivors) assert.equal((await fresh.get(sid))?.sid, sid, `${sid} seen by a new process`)
})
