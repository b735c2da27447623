// Key placement must agree with libmemcached's weighted ketama, so that Node, Python (pylibmc)
// and PHP services sharing a pool find every key on the same server.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { hash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { rawCommand, startMemcachedCluster, stopAll } from '@memkit/testing'
import { Continuum, createClient, hashKey } from '../src/index.js'

after(stopAll)

const fixtureDir = fileURLToPath(new URL('./fixtures/', import.meta.url))

interface FixtureCase {
  key: string
  keyHash: number
  point: number
  server: string
}
const fixture = JSON.parse(readFileSync(`${fixtureDir}ketama-test-cases.json`, 'utf8')) as {
  servers: Array<{ host: string; port: number; weight: number }>
  expectedPoints: number[]
  cases: FixtureCase[]
}

/** Asks the real libmemcached (libmemcached11, through ctypes) where each key goes. */
function libmemcachedPlacements(servers: Array<[string, number, number]>, keys: string[]): string[] {
  const output = execFileSync('/usr/bin/python3', [`${fixtureDir}libmemcached-ketama.py`], {
    input: JSON.stringify({ servers, keys }),
    maxBuffer: 64 * 1024 * 1024,
  })
  const result = JSON.parse(output.toString()) as { placements: string[]; hash: number; distribution: number }
  // md5 key hash and the weighted consistent distribution, as KETAMA_WEIGHTED promises
  assert.equal(result.hash, 1)
  assert.equal(result.distribution, 5)
  return result.placements
}

function sampleKeys(count: number): string[] {
  const keys: string[] = []
  for (let i = 0; i < count; i++) {
    const kind = i % 4
    if (kind === 0) keys.push(`user:${i}`)
    else if (kind === 1) keys.push(`sess:${((i * 2654435761) >>> 0).toString(36)}`)
    else if (kind === 2) keys.push(`product/${i}/variant/${i % 7}`)
    else keys.push(`ключ-${i}-✓`)
  }
  return keys
}

/** The ring points libmemcached names for one server: md5 of `host-j` (`host:port-j` off 11211), four per digest. */
function pointsOf(server: { host: string; port: number }, digests: number): number[] {
  const prefix = server.port === 11211 ? server.host : `${server.host}:${server.port}`
  const points: number[] = []
  for (let j = 0; j < digests; j++) {
    const digest = hash('md5', `${prefix}-${j}`, 'buffer')
    for (let a = 0; a < 4; a++) points.push(digest.readUInt32LE(a * 4))
  }
  return points
}

describe('the ring', () => {
  test('equal weights give every server 160 points (40 md5 digests); size counts them all', () => {
    const two = new Continuum([
      { host: '10.0.0.1', port: 11211, weight: 1 },
      { host: '10.0.0.2', port: 11211, weight: 1 },
    ])
    assert.deepEqual(two.pointCounts(), [160, 160])
    assert.equal(two.size, 320)
    const three = new Continuum([1, 2, 3].map((i) => ({ host: `10.0.0.${i}`, port: 11211, weight: 7 })))
    assert.deepEqual(three.pointCounts(), [160, 160, 160])
    assert.equal(three.size, 480)
    const weighted = new Continuum(fixture.servers)
    assert.equal(
      weighted.size,
      fixture.expectedPoints.reduce((sum, n) => sum + n, 0),
    )
  })

  test('a server list must have 1 to 65535 servers', () => {
    assert.throws(() => new Continuum([]), { message: 'a continuum needs at least one server' })
    // weight 0 everywhere gives a ring without points, so the large lists cost nothing to build
    const many = (count: number) =>
      Array.from({ length: count }, (_, i) => ({ host: `h${i}`, port: 11211, weight: 0 }))
    assert.equal(new Continuum(many(65535)).size, 0)
    assert.throws(() => new Continuum(many(65536)), { message: 'too many servers' })
  })

  test('one server takes every key without a lookup, whatever its weight', () => {
    const heavy = new Continuum([{ host: '10.0.0.1', port: 11211, weight: 5 }])
    const empty = new Continuum([{ host: '10.0.0.1', port: 11211, weight: 0 }])
    assert.equal(empty.size, 0)
    for (const key of sampleKeys(50)) {
      assert.equal(heavy.lookup(key), 0)
      assert.equal(empty.lookup(key), 0, 'even a ring without points')
    }
  })

  test("a hash equal to a point belongs to that point's server, not the next one", () => {
    const ring = new Continuum(fixture.servers)
    fixture.servers.forEach((server, index) => {
      for (const point of pointsOf(server, 3)) {
        assert.equal(ring.lookupHash(point), index, `point ${point} of ${server.host}`)
      }
    })
  })

  test('a point two servers share goes to the one configured first, as in libmemcached', () => {
    // md5("10.0.0.1-11") and md5("10.0.0.5:34138-2") share a 32-bit word (found by search)
    const a = { host: '10.0.0.1', port: 11211, weight: 1 }
    const b = { host: '10.0.0.5', port: 34138, weight: 1 }
    const shared = 2897011499
    assert.ok(pointsOf(a, 40).includes(shared) && pointsOf(b, 40).includes(shared), 'both own the point')
    // keys hashing just below the shared point (nearer to it than to any other point)
    const keys = ['tie:9094', 'tie:10958', 'tie:12299', 'tie:12441', 'tie:13619']
    const allPoints = [...pointsOf(a, 40), ...pointsOf(b, 40)]
    for (const key of keys) {
      const h = hashKey(key)
      assert.ok(
        h <= shared && !allPoints.some((p) => p >= h && p < shared),
        `${key} lands on the shared point`,
      )
    }
    for (const servers of [
      [a, b],
      [b, a],
    ]) {
      const ring = new Continuum(servers)
      assert.equal(ring.lookupHash(shared), 0)
      const expected = libmemcachedPlacements(
        servers.map((s) => [s.host, s.port, s.weight]),
        keys,
      )
      for (const [i, key] of keys.entries()) {
        const first = `${servers[0]!.host}:${servers[0]!.port}`
        assert.equal(expected[i], first, `libmemcached puts ${key} on the first server`)
        assert.equal(ring.lookup(key), 0, `memkit puts ${key} on the first server`)
      }
    }
  })
})

describe('weighted ketama', () => {
  test("libmemcached's ketama_test_cases fixture: 99/99, with the same key hashes and ring points", () => {
    const ring = new Continuum(fixture.servers)
    assert.deepEqual(ring.pointCounts(), fixture.expectedPoints)
    for (const c of fixture.cases) {
      assert.equal(hashKey(c.key), c.keyHash, `md5 key hash of ${c.key}`)
      assert.equal(fixture.servers[ring.lookup(c.key)]!.host, c.server, c.key)
    }
  })

  test('a key hashing past the last point wraps to the first (libmemcached VDEAAAAA case)', () => {
    const ring = new Continuum(fixture.servers)
    assert.equal(hashKey('VDEAAAAA'), 0xfffcd1b5)
    // no point lies above this hash on the fixture ring: the key belongs to the first point
    assert.equal(ring.lookup('VDEAAAAA'), ring.lookupHash(0))
    assert.equal(ring.lookupHash(0xffffffff), ring.lookupHash(0))
  })

  const serverSets: Array<[string, Array<[string, number, number]>]> = [
    ['3 equal servers', [1, 2, 3].map((i) => [`10.0.1.${i}`, 11211, 1])],
    [
      '7 equal servers (doubles would differ here)',
      [1, 2, 3, 4, 5, 6, 7].map((i) => [`10.0.2.${i}`, 11211, 1]),
    ],
    [
      '25 equal servers (float32 gives 156 points)',
      Array.from({ length: 25 }, (_, i) => [`10.0.3.${i + 1}`, 11211, 1]),
    ],
    [
      'weighted, non-default ports (host:port-N point names)',
      [
        ['127.0.0.1', 21001, 1],
        ['127.0.0.1', 21002, 3],
        ['127.0.0.1', 21003, 2],
        ['cache.internal', 11211, 5],
      ],
    ],
    [
      'hostnames with mixed weights',
      [
        ['mc-a.example', 11211, 100],
        ['mc-b.example', 11311, 50],
        ['mc-c.example', 11211, 25],
      ],
    ],
  ]

  for (const [label, servers] of serverSets) {
    test(`agrees with libmemcached itself on 4000 keys: ${label}`, () => {
      const keys = sampleKeys(4000)
      const expected = libmemcachedPlacements(servers, keys)
      const ring = new Continuum(servers.map(([host, port, weight]) => ({ host, port, weight })))
      let disagreements = 0
      keys.forEach((key, i) => {
        const [host, port] = servers[ring.lookup(key)]!
        if (`${host}:${port}` !== expected[i]) disagreements++
      })
      assert.equal(disagreements, 0)
    })
  }
})

describe('placement on real servers, shared with pylibmc', () => {
  test('keys written by pylibmc (ketama_weighted) are found by memkit, and the reverse', async () => {
    const servers = await startMemcachedCluster(3)
    const weights = [1, 2, 1]
    const specs = servers.map((s, i) => ({ host: s.host, port: s.port, weight: weights[i]! }))
    const keys = Array.from({ length: 300 }, (_, i) => `shared:${i}`)
    // pylibmc writes from Python, placing keys with libmemcached
    const script = `
import json, sys, pylibmc
spec = json.load(sys.stdin)
# "host:port:weight" is pylibmc's way to give a server a weight
mc = pylibmc.Client(["%s:%d:%d" % (s["host"], s["port"], s["weight"]) for s in spec["servers"]],
                    behaviors={"ketama_weighted": True})
for k in spec["keys"]:
    mc.set(k, ("py-" + k).encode())
for k in spec["read"]:
    v = mc.get(k)
    assert v is not None and v.decode() == "node-" + k, (k, v)
print("ok")
`
    const client = createClient({ servers: specs })
    try {
      const nodeKeys = keys.map((k) => `${k}:node`)
      for (const k of nodeKeys) await client.set(k, Buffer.from(`node-${k}`))
      const out = execFileSync('/usr/bin/python3', ['-c', script], {
        input: JSON.stringify({ servers: specs, keys, read: nodeKeys }),
      }).toString()
      assert.equal(out.trim(), 'ok', 'pylibmc found every key memkit wrote')

      const perServer = new Map<string, number>()
      for (const key of keys) {
        const value = (await client.get<Buffer>(key))?.toString()
        assert.equal(value, `py-${key}`, `memkit found ${key} where pylibmc put it`)
        const label = client.serverFor(key)
        perServer.set(label, (perServer.get(label) ?? 0) + 1)
        // and it really is on that server, nowhere else
        const reply = await rawCommand(label, `mg ${key} v\r\n`)
        assert.match(reply, /^VA /, `${key} on ${label}`)
      }
      assert.equal(perServer.size, 3, 'keys are spread over all servers')
      assert.ok(
        (perServer.get(servers[1]!.address) ?? 0) > (perServer.get(servers[0]!.address) ?? 0),
        'weight 2 server holds more',
      )
    } finally {
      await client.close()
    }
  })
})
