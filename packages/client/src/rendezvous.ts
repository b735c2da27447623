// Rendezvous (highest random weight) placement exactly as pymemcache's HashClient does it by
// default (pymemcache/client/rendezvous.py with its murmur3_32, unchanged from 3.x to 4.x), so a
// Node service and a Python service sharing one pool look for every key on the same server.

/** A server as pymemcache names it: `"host:port"`, the host as configured (IPv6 without brackets). */
export interface RendezvousServer {
  readonly host: string
  readonly port: number
}

/**
 * murmur3 (x86, 32-bit) state after some input, so the `"<node>-"` part of every hash input is
 * hashed once per server, not once per key.
 */
interface MurmurState {
  h1: number
  /** Bytes fed so far. */
  length: number
  /** Bytes of an unfinished 4-byte block, little-endian. */
  tail: number
  tailLength: number
}

const C1 = 0xcc9e2d51
const C2 = 0x1b873593

/**
 * Feeds `text` into murmur3 the way pymemcache's pure-Python murmur3_32 reads a `str`: one byte
 * per character (code point), its low 8 bits (`ord(c) & 0xff`), so a key with non-ASCII
 * characters hashes by code points, not by its UTF-8 bytes. A surrogate pair is one code point,
 * whose low 8 bits are those of the low surrogate.
 */
function feed(state: MurmurState, text: string): void {
  let { h1, length, tail, tailLength } = state
  for (let i = 0; i < text.length; i++) {
    let code = text.charCodeAt(i)
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1)
      if (low >= 0xdc00 && low <= 0xdfff) {
        code = low
        i++
      }
    }
    tail |= (code & 0xff) << (tailLength * 8)
    length++
    if (++tailLength === 4) {
      let k1 = Math.imul(tail, C1)
      k1 = (k1 << 15) | (k1 >>> 17)
      k1 = Math.imul(k1, C2)
      h1 ^= k1
      h1 = (h1 << 13) | (h1 >>> 19)
      h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0
      tail = 0
      tailLength = 0
    }
  }
  state.h1 = h1
  state.length = length
  state.tail = tail
  state.tailLength = tailLength
}

function finish(state: MurmurState): number {
  let h1 = state.h1
  if (state.tailLength > 0) {
    let k1 = Math.imul(state.tail, C1)
    k1 = (k1 << 15) | (k1 >>> 17)
    k1 = Math.imul(k1, C2)
    h1 ^= k1
  }
  h1 ^= state.length
  h1 ^= h1 >>> 16
  h1 = Math.imul(h1, 0x85ebca6b)
  h1 ^= h1 >>> 13
  h1 = Math.imul(h1, 0xc2b2ae35)
  h1 ^= h1 >>> 16
  return h1 >>> 0
}

/** pymemcache's `murmur3_32(data, seed=0)` of a `str`, as an unsigned 32-bit number. */
export function murmur3(text: string, seed = 0): number {
  const state: MurmurState = { h1: seed | 0, length: 0, tail: 0, tailLength: 0 }
  feed(state, text)
  return finish(state)
}

/** How pymemcache's HashClient names a `(host, port)` server: `"%s:%s" % server`. */
export function pymemcacheNodeName(server: RendezvousServer): string {
  return `${server.host}:${server.port}`
}

/**
 * Places a key on the server whose `murmur3("<host>:<port>-<key>")` is highest (ties go to the
 * greater node name), as pymemcache's `RendezvousHash.get_node`. The key hashed is the key the
 * application passed, without `keyPrefix`: pymemcache's HashClient hashes the key before its
 * per-server clients add `key_prefix`. Removing a server moves only that server's keys.
 */
export class Rendezvous {
  readonly #names: string[]
  readonly #states: MurmurState[]
  readonly #scratch: MurmurState = { h1: 0, length: 0, tail: 0, tailLength: 0 }

  /** `servers` in configured order; `lookup` returns an index into it. */
  constructor(servers: readonly RendezvousServer[]) {
    if (servers.length === 0) throw new Error('rendezvous placement needs at least one server')
    this.#names = servers.map(pymemcacheNodeName)
    this.#states = this.#names.map((name) => {
      const state: MurmurState = { h1: 0, length: 0, tail: 0, tailLength: 0 }
      feed(state, `${name}-`)
      return state
    })
  }

  /** Index of the server that owns `key` (the application's key, without prefix). */
  lookup(key: string): number {
    const states = this.#states
    if (states.length === 1) return 0
    const scratch = this.#scratch
    let best = -1
    let winner = 0
    for (let i = 0; i < states.length; i++) {
      const start = states[i]!
      scratch.h1 = start.h1
      scratch.length = start.length
      scratch.tail = start.tail
      scratch.tailLength = start.tailLength
      feed(scratch, key)
      const score = finish(scratch)
      if (score > best) {
        best = score
        winner = i
      } else if (score === best && this.#names[i]! > this.#names[winner]!) {
        winner = i
      }
    }
    return winner
  }
}
