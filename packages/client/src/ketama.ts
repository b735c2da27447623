import { hash } from 'node:crypto'

/** Points per server in libmemcached's weighted ketama (MEMCACHED_POINTS_PER_SERVER_KETAMA). */
const POINTS_PER_SERVER = 160
const POINTS_PER_HASH = 4

export interface RingServer {
  readonly host: string
  readonly port: number
  readonly weight: number
}

/**
 * The continuum libmemcached builds with MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED: md5 points,
 * float32 arithmetic for the per-server point count, point names `host-N` on port 11211 and
 * `host:port-N` otherwise, keys placed at the first point >= the first four bytes of md5(key)
 * read little-endian, wrapping to the first point. With this, a pylibmc or PHP service sharing
 * the pool agrees with Node on where every key lives.
 */
export class Continuum {
  readonly #points: Uint32Array
  readonly #owners: Uint16Array
  readonly #single: boolean

  /** `servers` in the order they were configured; the result of `lookup` indexes into it. */
  constructor(servers: readonly RingServer[]) {
    if (servers.length === 0) throw new Error('a continuum needs at least one server')
    if (servers.length > 65535) throw new Error('too many servers')
    this.#single = servers.length === 1
    const f = Math.fround
    const totalWeight = f(servers.reduce((sum, s) => sum + s.weight, 0))
    const live = f(servers.length)
    const pairs: Array<[number, number]> = []
    servers.forEach((server, index) => {
      const pct = f(f(server.weight) / totalWeight)
      // (float)(pct * 160 / 4 * (float)live + 0.0000000001), floored: float32 steps, then the
      // epsilon added in double precision, as the C expression promotes it.
      const scaled = f(f(f(pct * POINTS_PER_SERVER) / POINTS_PER_HASH) * live)
      const perServer = Math.floor(f(scaled + 0.0000000001))
      const prefix = server.port === 11211 ? server.host : `${server.host}:${server.port}`
      for (let j = 0; j < perServer; j++) {
        const digest = hash('md5', `${prefix}-${j}`, 'buffer')
        for (let a = 0; a < POINTS_PER_HASH; a++) pairs.push([digest.readUInt32LE(a * 4), index])
      }
    })
    pairs.sort((x, y) => x[0] - y[0] || x[1] - y[1])
    this.#points = Uint32Array.from(pairs, (p) => p[0])
    this.#owners = Uint16Array.from(pairs, (p) => p[1])
  }

  /** Number of points on the ring (for tests and diagnostics). */
  get size(): number {
    return this.#points.length
  }

  /** Points owned by each server index. */
  pointCounts(): number[] {
    const counts: number[] = []
    for (const owner of this.#owners) counts[owner] = (counts[owner] ?? 0) + 1
    return counts
  }

  /** Index of the server that owns `key` (the stored key, prefix included). */
  lookup(key: string): number {
    if (this.#single) return 0
    return this.lookupHash(hashKey(key))
  }

  lookupHash(value: number): number {
    const points = this.#points
    let left = 0
    let right = points.length
    while (left < right) {
      const middle = (left + right) >>> 1
      if (points[middle]! < value) left = middle + 1
      else right = middle
    }
    return this.#owners[right === points.length ? 0 : right]!
  }
}

/** libhashkit's md5 key hash: the first four digest bytes as a little-endian uint32. */
export function hashKey(key: string): number {
  return hash('md5', key, 'buffer').readUInt32LE(0)
}
