// distribution: 'rendezvous' against Debian's python3-pymemcache: the same hash, the same node
// names, and the same server for every key, end to end through real memcached servers.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { rawCommand, useMemcached } from '@memkit/testing'
import { createClient, InvalidOptionError, murmur3 } from '../src/index.js'

const fixture = fileURLToPath(new URL('./fixtures/pymemcache-hashclient.py', import.meta.url))

/** Runs Debian's pymemcache (see the fixture for the requests it answers). */
function pymemcache<T>(request: Record<string, unknown>): T {
  const out = execFileSync('/usr/bin/python3', [fixture], {
    input: JSON.stringify(request),
    maxBuffer: 64 * 1024 * 1024,
  })
  return JSON.parse(out.toString()) as T
}

/** Keys as applications write them, plus non-ASCII ones (pymemcache hashes code points). */
function sampleKeys(count: number, tag: string): string[] {
  const keys: string[] = []
  for (let i = 0; i < count; i++) {
    if (i % 10 === 7) keys.push(`${tag}:ü${i}:日本`)
    else if (i % 10 === 9) keys.push(`${tag}:😀:${i}`)
    else keys.push(`${tag}:user:${i * 7919}`)
  }
  return keys
}

const { servers } = await useMemcached({ count: 4 })

describe("distribution: 'rendezvous' places keys as pymemcache's HashClient", () => {
  test("murmur3 equals pymemcache's murmur3_32 on ASCII, non-ASCII, astral and every tail length", () => {
    const texts = [
      '',
      'a',
      'ab',
      'abc',
      'abcd',
      'abcde',
      'héllo',
      'x😀y',
      '日本語のキー',
      '127.0.0.1:11211-foo',
    ]
    for (let i = 0; i < 300; i++) texts.push(`k${i}-${'é✓'.repeat(i % 5)}${'z'.repeat(i % 4)}`)
    assert.deepEqual(
      texts.map((text) => murmur3(text)),
      pymemcache<number[]>({ op: 'murmur', texts }),
    )
  })

  test('the same server for every key on four server sets of 3000 keys (hash level)', (t) => {
    const sets = [
      ['10.0.1.1:11211', '10.0.1.2:11211', '10.0.1.3:11211'],
      ['cache-a.internal:11211', 'cache-b.internal:11212', 'cache-c.internal:11213', 'cache-d.internal'],
      ['[::1]:11211', '[::1]:11212', '127.0.0.1:11213', 'localhost:11214', 'memcached'],
      Array.from({ length: 12 }, (_, i) => `10.2.0.${i + 1}:${11211 + (i % 3)}`),
    ]
    const keys = sampleKeys(3000, 'hash')
    for (const set of sets) {
      const names = pymemcache<string[]>({ op: 'nodes', servers: set, keys })
      const client = createClient({ servers: set, distribution: 'rendezvous' })
      // pymemcache names a server "host:port" (IPv6 without brackets); memkit labels it "[host]:port"
      const byName = new Map(client.config.servers.map((s) => [`${s.host}:${s.port}`, s.label]))
      let agree = 0
      for (const [i, key] of keys.entries()) if (client.serverFor(key) === byName.get(names[i]!)) agree++
      assert.equal(agree, keys.length, `agreement on ${set.length} servers`)
      assert.ok(new Set(names).size === set.length, 'every server holds keys')
      t.diagnostic(`${set.length} servers: ${agree}/${keys.length} keys on the same server as pymemcache`)
    }
  })

  test('Python writes, Node reads; Node writes, Python reads: every key, through real servers', async (t) => {
    const sets = [
      servers.map((s) => s.address),
      [servers[2]!, servers[0]!, servers[3]!].map((s) => s.address),
    ]
    for (const [n, set] of sets.entries()) {
      const client = createClient({ servers: set, distribution: 'rendezvous' })
      const ketama = createClient({ servers: set })
      try {
        // Python (HashClient, pickle_serde: str values travel with the text flag) writes ...
        const fromPython = sampleKeys(2000, `py${n}`)
        const written = pymemcache<{ failed: string[] }>({
          op: 'write',
          servers: set,
          items: Object.fromEntries(fromPython.map((k) => [k, `python:${k}`])),
        })
        assert.deepEqual(written.failed, [])
        // ... and memkit finds every key on the server it computes, in one getMany.
        const found = await client.getMany<string>(fromPython)
        let read = 0
        for (const key of fromPython) if (found.get(key) === `python:${key}`) read++
        assert.equal(read, fromPython.length, 'memkit read what pymemcache wrote')
        // On exactly that server, nowhere else (spot check: raw mg on every server).
        for (const key of fromPython.slice(0, 40).filter((k) => /^[\x21-\x7e]+$/.test(k))) {
          for (const address of set) {
            const reply = await rawCommand(address, `mg ${key} v\r\n`)
            assert.equal(reply.startsWith('VA '), client.serverFor(key) === address, `${key} on ${address}`)
          }
        }
        // memkit writes ...
        const fromNode = sampleKeys(2000, `node${n}`)
        await Promise.all(fromNode.map((key) => client.set(key, `node:${key}`)))
        // ... and pymemcache reads every one.
        const got = pymemcache<Record<string, string>>({ op: 'read', servers: set, keys: fromNode })
        let pyRead = 0
        for (const key of fromNode) if (got[key] === `node:${key}`) pyRead++
        assert.equal(pyRead, fromNode.length, 'pymemcache read what memkit wrote')
        // What ketama (the default) would have agreed on: the reason for this option.
        let sameAsKetama = 0
        for (const key of fromPython) if (ketama.serverFor(key) === client.serverFor(key)) sameAsKetama++
        t.diagnostic(
          `${set.length} servers: Python→Node ${read}/${fromPython.length}, Node→Python ${pyRead}/${fromNode.length}; ketama would place ${sameAsKetama}/${fromPython.length} (${((100 * sameAsKetama) / fromPython.length).toFixed(1)}%) on the same server`,
        )
      } finally {
        await client.close()
        await ketama.close()
      }
    }
  })

  test('keyPrefix: the key is hashed without it, as HashClient hashes before key_prefix is added', () => {
    const plain = createClient({ servers: ['a:1', 'b:1', 'c:1'], distribution: 'rendezvous' })
    const prefixed = createClient({
      servers: ['a:1', 'b:1', 'c:1'],
      distribution: 'rendezvous',
      keyPrefix: 'app:',
    })
    for (let i = 0; i < 200; i++) assert.equal(prefixed.serverFor(`k${i}`), plain.serverFor(`k${i}`))
  })

  test('a down server moves only its own keys (failover), as HashClient removing a dead node', async () => {
    const set = ['a.example:11211', 'b.example:11211', 'c.example:11211']
    const keys = sampleKeys(3000, 'fo')
    const full = pymemcache<string[]>({ op: 'nodes', servers: set, keys })
    const without = pymemcache<string[]>({ op: 'nodes', servers: [set[0], set[2]], keys })
    let moved = 0
    for (const [i] of keys.entries()) {
      if (full[i] !== 'b.example:11211') assert.equal(without[i], full[i], 'keys of live servers stay')
      else moved++
    }
    assert.ok(moved > 800 && moved < 1200, `b held ${moved} keys`)
    // memkit's placement over the live servers is the same function of the same names
    const survivors = createClient({ servers: [set[0]!, set[2]!], distribution: 'rendezvous' })
    for (const [i, key] of keys.entries()) assert.equal(survivors.serverFor(key), without[i])
  })

  test('weights are refused: pymemcache has none', () => {
    assert.throws(
      () =>
        createClient({
          servers: [{ host: 'a', weight: 2 }, 'b'],
          distribution: 'rendezvous',
        }),
      (error: unknown) =>
        error instanceof InvalidOptionError &&
        /no weights/.test(error.message) &&
        /a:11211/.test(error.message),
    )
    assert.throws(
      () => createClient({ distribution: 'maglev' as 'ketama' }),
      /`distribution` must be one of 'ketama', 'rendezvous'/,
    )
  })
})
