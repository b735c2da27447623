import { NotNumericError, ValueTooLargeError } from '../errors.js'
import type { EncodedKey } from '../keys.js'
import {
  type ArithRequest,
  type ArithResult,
  PlainTransport,
  type StoredItem,
  type StoreMode,
  type Transport,
  type TransportKind,
} from '../transport.js'
import { MAX_RELATIVE_TTL } from '../ttl.js'
import { decodeItem, type ItemDecoder } from './item-decoder.js'

// The embedded backend behind `servers: 'memory://'`: memcached's semantics in this process,
// for development, demos and tests, not production (nothing is shared between processes).
// It passes the same conformance suite as real memcached.

const ITEM_OVERHEAD = 59
const MAX_UINT64 = (1n << 64n) - 1n

interface Item {
  data: Buffer
  flags: number
  /** ms since the epoch; 0 = never */
  expiresAt: number
  cas: bigint
  size: number
}

export interface MemoryStoreOptions {
  /** Memory limit in bytes; least recently used items are evicted beyond it. */
  maxBytes: number
  /** Largest item (value + key + header) in bytes. */
  maxItemSize: number
}

/** One in-process "server": a Map kept in LRU order (a read moves an item to the end). */
export class MemoryStore {
  readonly #items = new Map<string, Item>()
  readonly #startedAt = Date.now()
  #bytes = 0
  #cas = 0n
  readonly stats = { getHits: 0, getMisses: 0, evictions: 0, totalItems: 0, cmdGet: 0, cmdSet: 0 }

  constructor(
    readonly label: string,
    readonly options: MemoryStoreOptions,
  ) {}

  /** A live item, bumped to most recently used; expired items are removed on the way. */
  read(key: string, countAsGet = true): Item | undefined {
    const item = this.#items.get(key)
    if (countAsGet) this.stats.cmdGet++
    if (item === undefined || (item.expiresAt !== 0 && item.expiresAt <= Date.now())) {
      if (item) this.#remove(key, item)
      if (countAsGet) this.stats.getMisses++
      return undefined
    }
    this.#items.delete(key)
    this.#items.set(key, item)
    if (countAsGet) this.stats.getHits++
    return item
  }

  write(key: string, data: Buffer, flags: number, expiresAt: number): Item {
    const size = Buffer.byteLength(key) + data.length + ITEM_OVERHEAD + (flags === 0 ? 0 : 4)
    if (size > this.options.maxItemSize) {
      throw new ValueTooLargeError(
        `${this.label} refused the value: object too large for cache`,
        size,
        this.options.maxItemSize,
      )
    }
    const old = this.#items.get(key)
    if (old) this.#remove(key, old)
    const item: Item = { data: Buffer.from(data), flags, expiresAt, cas: ++this.#cas, size }
    this.#items.set(key, item)
    this.#bytes += size
    this.stats.totalItems++
    this.stats.cmdSet++
    // Evict least recently used items (the Map's first entries) until the new one fits.
    for (const [oldest, victim] of this.#items) {
      if (this.#bytes <= this.options.maxBytes || oldest === key) break
      this.#remove(oldest, victim)
      this.stats.evictions++
    }
    return item
  }

  remove(key: string): boolean {
    const item = this.read(key, false)
    if (!item) return false
    this.#remove(key, item)
    return true
  }

  touch(item: Item, expiresAt: number): void {
    item.expiresAt = expiresAt
  }

  flush(): void {
    this.#items.clear()
    this.#bytes = 0
  }

  raw(): Record<string, string> {
    return {
      pid: String(process.pid),
      version: 'memkit-memory',
      uptime: String(Math.floor((Date.now() - this.#startedAt) / 1000)),
      curr_items: String(this.#items.size),
      total_items: String(this.stats.totalItems),
      bytes: String(this.#bytes),
      limit_maxbytes: String(this.options.maxBytes),
      evictions: String(this.stats.evictions),
      get_hits: String(this.stats.getHits),
      get_misses: String(this.stats.getMisses),
      cmd_get: String(this.stats.cmdGet),
      cmd_set: String(this.stats.cmdSet),
      curr_connections: '1',
      item_size_max: String(this.options.maxItemSize),
    }
  }

  #remove(key: string, item: Item): void {
    this.#items.delete(key)
    this.#bytes -= item.size
  }
}

const stores = new Map<string, MemoryStore>()

/**
 * The store for a `memory://[name][?mb=<MiB>]` server: every client in the process that names
 * the same store shares it, as clients of one memcached would.
 */
export function memoryStore(name: string, maxBytes: number, maxItemSize: number): MemoryStore {
  let store = stores.get(name)
  if (!store) {
    store = new MemoryStore(`memory://${name}`, { maxBytes, maxItemSize })
    stores.set(name, store)
  }
  return store
}

/** memcached's reading of an exptime: 0 never, up to 30 days relative, beyond that a Unix time. */
function expiresAt(exptime: number): number {
  if (exptime === 0) return 0
  if (exptime < 0) return 1
  return exptime > MAX_RELATIVE_TTL ? exptime * 1000 : Date.now() + exptime * 1000
}

function remaining(item: Item): number {
  return item.expiresAt === 0 ? -1 : Math.max(0, Math.ceil((item.expiresAt - Date.now()) / 1000))
}

export const MEMORY: TransportKind = Object.freeze({
  name: 'memory',
  base64Keys: false,
  conditionalDelete: true,
  // One process: the in-process single flight of remember() already is global.
  leases: false,
})

/** The embedded backend as a transport: operations on one MemoryStore. */
export class MemoryTransport extends PlainTransport implements Transport {
  protected readonly what = 'memory://'
  readonly kind = MEMORY

  constructor(private readonly memory: MemoryStore) {
    super()
  }

  get label(): string {
    return this.memory.label
  }

  async get(key: EncodedKey, decoder: ItemDecoder): Promise<unknown> {
    return (await this.gets(key, decoder))?.value
  }

  async gets(key: EncodedKey, decoder: ItemDecoder): Promise<StoredItem | undefined> {
    const item = this.memory.read(key.stored)
    return item ? decode(decoder, key, item) : undefined
  }

  async getAndTouch(key: EncodedKey, exptime: number, decoder: ItemDecoder): Promise<StoredItem | undefined> {
    const item = this.memory.read(key.stored)
    if (!item) return undefined
    this.memory.touch(item, expiresAt(exptime))
    return decode(decoder, key, item)
  }

  async getMany(keys: EncodedKey[], decoder: ItemDecoder, into: Map<string, unknown>): Promise<void> {
    for (const key of keys) {
      const item = this.memory.read(key.stored)
      if (!item) continue
      const decoded = decode(decoder, key, item)
      if (decoded) into.set(key.key, decoded.value)
    }
  }

  async store(
    mode: StoreMode,
    key: EncodedKey,
    data: Buffer,
    flags: number,
    exptime: number,
    cas?: string,
  ): Promise<boolean> {
    const current = this.memory.read(key.stored, false)
    switch (mode) {
      case 'add':
        if (current) return false
        break
      case 'replace':
        if (!current) return false
        break
      case 'cas':
        if (!current || current.cas !== BigInt(cas!)) return false
        break
      case 'append':
      case 'prepend':
        if (!current) return false
        this.memory.write(
          key.stored,
          mode === 'append' ? Buffer.concat([current.data, data]) : Buffer.concat([data, current.data]),
          current.flags,
          current.expiresAt,
        )
        return true
    }
    this.memory.write(key.stored, data, flags, expiresAt(exptime))
    return true
  }

  async delete(key: EncodedKey): Promise<boolean> {
    return this.memory.remove(key.stored)
  }

  async deleteIfUnchanged(key: EncodedKey, cas: string): Promise<boolean> {
    const current = this.memory.read(key.stored, false)
    if (!current || current.cas !== BigInt(cas)) return false
    return this.memory.remove(key.stored)
  }

  async touch(key: EncodedKey, exptime: number): Promise<boolean> {
    const item = this.memory.read(key.stored, false)
    if (!item) return false
    this.memory.touch(item, expiresAt(exptime))
    return true
  }

  /** memcached's arithmetic: decimal text, wraps at 2^64 on incr, stops at 0 on decr. */
  async arith(request: ArithRequest): Promise<ArithResult | undefined> {
    const current = this.memory.read(request.key.stored, false)
    if (!current) {
      if (request.initial === undefined) return undefined
      const created = this.memory.write(
        request.key.stored,
        Buffer.from(request.initial.toString()),
        0,
        expiresAt(request.exptime),
      )
      return { value: request.initial.toString(), ttl: remaining(created) }
    }
    const stored = current.data.toString('latin1')
    // memcached reads the digits and ignores the spaces it pads a shrunk counter with.
    const text = stored.trimEnd()
    if (!/^\d{1,20}$/.test(text) || BigInt(text) > MAX_UINT64) {
      throw new NotNumericError(
        `cannot ${request.decrement ? 'decr' : 'incr'} a value that is not a decimal number`,
        this.memory.label,
      )
    }
    const before = BigInt(text)
    const after = request.decrement
      ? before > request.delta
        ? before - request.delta
        : 0n
      : (before + request.delta) & MAX_UINT64
    // As memcached does (do_add_delta): a result no longer than the stored text is written in
    // place, padded with spaces to the old length; a longer one becomes a new, exact item.
    const updated = this.memory.write(
      request.key.stored,
      Buffer.from(after.toString().padEnd(stored.length, ' ')),
      current.flags,
      current.expiresAt,
    )
    return { value: after.toString(), ttl: remaining(updated) }
  }

  async version(): Promise<string> {
    return 'memkit-memory'
  }

  async stats(): Promise<Record<string, string>> {
    return this.memory.raw()
  }

  async flush(): Promise<void> {
    this.memory.flush()
  }

  /** Always there. */
  async probe(): Promise<void> {}

  close(): void {}
}

function decode(decoder: ItemDecoder, key: EncodedKey, item: Item): StoredItem | undefined {
  // A copy: a caller mutating a returned Buffer must not change the stored item.
  const decoded = decodeItem(decoder, key.key, Buffer.from(item.data), item.flags)
  if (!decoded.ok) {
    if (decoded.error) throw decoded.error
    return undefined
  }
  return { value: decoded.value, cas: item.cas.toString() }
}
