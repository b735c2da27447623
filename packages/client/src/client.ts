import { EventEmitter } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  ADD_OPTIONS,
  CAS_OPTIONS,
  COUNTER_OPTIONS,
  checkOptions,
  GENERATION_OPTIONS,
  LEASE_OPTIONS,
  type OptionsShape,
  REMEMBER_OPTIONS,
  REPLACE_OPTIONS,
  SET_MANY_OPTIONS,
  SET_OPTIONS,
  UPDATE_OPTIONS,
} from './arguments.js'
import { Cluster, type PlacedKey } from './cluster.js'
import type { Command, RetryTarget } from './command.js'
import { commandChannel, serverDownChannel, serverUpChannel } from './diagnostics.js'
import { describe, toDuration } from './duration.js'
import {
  CasConflictError,
  ClientClosedError,
  type ConnectionError,
  DecodeError,
  InvalidArgumentError,
  InvalidValueError,
  LoadTimeoutError,
  type MemkitError,
  NotSupportedError,
  PartialReadError,
  PartialWriteError,
  ServerError,
  ServerFailureError,
  UnsafeIntegerError,
  ValueTooLargeError,
} from './errors.js'
import { Generation, type GenerationBackend, toCopy } from './generation.js'
import { type EncodedKey, KeyCodec } from './keys.js'
import { acquireLock, type Lock, type LockBackend, type LockOptions } from './lock.js'
import type { MemkitClient } from './memkit-client.js'
import { type ClientConfig, type ClientOptions, parseClientOptions } from './options.js'
import { AsciiAuthCommand } from './protocol/ascii-auth.js'
import { BinaryProtocol, BinaryTarget } from './protocol/binary.js'
import { ClassicProtocol } from './protocol/classic.js'
import type { ItemDecoder } from './protocol/item-decoder.js'
import { MemoryProtocol, memoryStore } from './protocol/memory.js'
import {
  type BatchItem,
  deleteMany,
  invalidate,
  type LeaseItem,
  leaseGet,
  MetaProtocol,
  storeMany,
} from './protocol/meta.js'
import type { Dispatch, Protocol, StoreMode } from './protocol/protocol.js'
import { MetaNoopCommand, VersionCommand } from './protocol/text-commands.js'
import { UndecodableError, ValueCodec } from './serializer.js'
import { ServerNode } from './server-node.js'
import { SingleFlight } from './single-flight.js'
import { downStats, type ServerStats, summarizeStats } from './stats.js'
import { toExptime } from './ttl.js'

/** update(): attempts by default, and the backoff between them (ms). */
const UPDATE_ATTEMPTS = 32
const UPDATE_BACKOFF_BASE = 1
const UPDATE_BACKOFF_CAP = 100

/** memcached's per-item header: 59 bytes with a CAS id, plus 4 when the flags are non-zero. */
const ITEM_OVERHEAD = 59
const MAX_UINT64 = (1n << 64n) - 1n

export interface SetOptions {
  /**
   * Seconds, or a string with a unit (`'90s'`, `'5 minutes'`); 0 = no expiry; fractions round up;
   * over 30 days is sent as an absolute time. Default: the client's `defaultTtl`.
   */
  ttl?: number | string
}

/** What setMany takes: a Map, `[key, value]` pairs, or a plain object of keys and values. */
export type SetManyEntries =
  | ReadonlyMap<string, unknown>
  | Iterable<readonly [string, unknown]>
  | Readonly<Record<string, unknown>>

export interface CounterOptions {
  /** Create a missing counter with this value (the delta is not applied to it). Without it, a missing counter stays missing. */
  initial?: number | bigint
  /** TTL in seconds (or a string such as `'1m'`) for a counter created from `initial`. Default: the client's `defaultTtl`. */
  ttl?: number | string
}

export interface UpdateOptions extends SetOptions {
  /**
   * Attempts in all (reads of the current value and compare-and-swaps) before giving up with
   * CasConflictError (ERR_MEMKIT_CAS_CONFLICT). Between attempts `update` waits a random time up
   * to 1 ms × 2^attempt, capped at 100 ms (full jitter), so concurrent updaters of one key spread
   * out. Default `32`: enough for 40 concurrent updaters of one key (4 processes × 10) to all
   * succeed, tested; raise it for more contention, or shard a hot key.
   */
  retries?: number
}

export interface RememberOptions {
  /**
   * Milliseconds (or a string such as `'10s'`) to wait for the loader before every caller sharing
   * the load fails with LoadTimeoutError (ERR_MEMKIT_LOAD_TIMEOUT); the next call then loads
   * again, and the late result is not cached. `Infinity` waits for ever. Default `10000`.
   */
  loadTimeout?: number | string
  /**
   * Negative caching: seconds (or a string such as `'30s'`) for which a `null` result is cached,
   * so a lookup that found nothing is not repeated on every call. Default: `null` is not cached
   * (the next call loads again), like `undefined`, which is never cached.
   */
  nullTtl?: number | string | false
  /**
   * One load per key across every process (meta protocol, memcached >= 1.6.18), with memcached's
   * leases: on a miss the first caller anywhere loads while the others wait for its value; when
   * the value is within `refreshAhead` seconds of expiring, or was marked stale by `invalidate()`,
   * one caller reloads it in the background and everyone is served the current (stale) value
   * meanwhile; the load's write is refused when an `invalidate()` or a `set()` overtook it.
   * `refreshAhead` defaults to a tenth of the TTL (at least 1 s). Refused with NotSupportedError
   * on the classic and binary transports, which have no leases. Default `false`.
   */
  lease?: boolean | { refreshAhead?: number | string }
}

export interface ClientEvents {
  /** A server was marked down after `failureLimit` consecutive failures. */
  'server:down': [{ server: string; error: MemkitError }]
  /**
   * A server that was down answers again. `flushed`: it was emptied first (`failover: true` with
   * `rejoin: 'flush'`), after `'server:flushed'`.
   */
  'server:up': [{ server: string; flushed: boolean }]
  /** A server was emptied (`flush_all`) before taking its keys back after a failover. */
  'server:flushed': [{ server: string; reason: 'rejoin' }]
  error: [Error]
}

/**
 * A pipelined memcached client. Create it with `createClient(options)`; share one instance
 * per process between all middleware.
 */
export class MemcachedClient extends EventEmitter<ClientEvents> implements LockBackend, MemkitClient {
  readonly config: ClientConfig
  readonly #protocol: Protocol<unknown>
  readonly #keys: KeyCodec
  readonly #codec: ValueCodec
  readonly #cluster: Cluster
  readonly #decoder: ItemDecoder
  readonly #loads = new SingleFlight<unknown>()
  readonly #generations = new Map<string, Generation>()
  /** How each server is reached: a Dispatch (text protocols) or a BinaryTarget. */
  readonly #targets = new Map<ServerNode, unknown>()
  #closed = false
  /** Number of interchangeable proxies (0 when keys are placed client-side). */
  readonly #proxyCount: number

  constructor(options: ClientOptions = {}) {
    super()
    this.config = parseClientOptions(options)
    const config = this.config
    this.#protocol = createProtocol(config)
    this.#keys = new KeyCodec({
      prefix: config.keyPrefix,
      hashLongKeys: config.hashLongKeys,
      base64NonAscii: this.#protocol.base64Keys,
    })
    this.#codec = new ValueCodec(config.codec)
    const codec = this.#codec
    this.#decoder = {
      missOnDecodeError: config.decodeErrors === 'miss',
      decode(key, data, flags) {
        try {
          return codec.decode(data, flags)
        } catch (error) {
          const reason =
            error instanceof UndecodableError ? error.message : `serializer failed: ${String(error)}`
          throw new DecodeError(
            `stored value of ${JSON.stringify(key)} cannot be decoded: ${reason}`,
            key,
            flags,
            {
              cause: error,
            },
          )
        }
      },
      reportDecodeError: (error) => this.#emitError(error),
    }
    const auth = config.auth
    const handshake =
      auth && config.protocol !== 'binary'
        ? () => {
            const command = new AsciiAuthCommand(auth.username, auth.password)
            command.deadline = Date.now() + config.connectTimeout + config.timeout
            return [command]
          }
        : undefined
    const nodes: ServerNode[] = []
    for (const server of config.servers) {
      const node: ServerNode = new ServerNode(
        server,
        {
          connections: config.connections,
          connectTimeout: config.connectTimeout,
          keepAlive: config.keepAlive,
          tls: config.tls,
          handshake,
          nudge: config.protocol === 'classic' ? () => new VersionCommand() : () => new MetaNoopCommand(),
          failureLimit: config.failureLimit,
          deadTimeout: config.deadTimeout,
          maxPending: config.maxPending,
          maxItemSize: config.maxItemSize,
          // The binary transport's own connection answers the probe; the text ones use `version`.
          flushOnRejoin: config.failover && config.rejoin === 'flush' && !config.proxy && !server.memory,
          probe:
            config.protocol === 'binary'
              ? (flush) => (this.#targets.get(node) as BinaryTarget).probe(flush)
              : undefined,
        },
        {
          onDown: (down, error) => {
            this.#cluster.rebuild()
            if (serverDownChannel.hasSubscribers) serverDownChannel.publish({ server: down.label, error })
            this.emit('server:down', { server: down.label, error })
          },
          onUp: (up, flushed) => {
            if (flushed) this.emit('server:flushed', { server: up.label, reason: 'rejoin' })
            this.#cluster.rebuild()
            if (serverUpChannel.hasSubscribers) serverUpChannel.publish({ server: up.label, flushed })
            this.emit('server:up', { server: up.label, flushed })
          },
        },
      )
      nodes.push(node)
      this.#targets.set(
        node,
        server.memory
          ? memoryStore(server.memory.name, server.memory.maxBytes, config.maxItemSize)
          : config.protocol === 'binary'
            ? new BinaryTarget(node, {
                client: this,
                timeout: config.timeout,
                connectTimeout: config.connectTimeout,
                keepAlive: config.keepAlive,
                auth: config.auth,
                maxItemSize: config.maxItemSize,
              })
            : this.#makeDispatch(node),
      )
    }
    this.#cluster = new Cluster(nodes, config.failover, config.proxy, config.distribution)
    this.#proxyCount = config.proxy ? nodes.length : 0
  }

  // ---- reading -------------------------------------------------------------------------

  /** The value stored under `key`, or undefined on a miss. */
  get<T = unknown>(key: string): Promise<T | undefined> {
    try {
      const encoded = this.#keys.encode(key)
      return this.#protocol.get(this.#dispatchFor(encoded), encoded, this.#decoder) as Promise<T | undefined>
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /**
   * Values of the keys that hit, fetched with one pipelined batch per server, in parallel. When
   * some servers fail, rejects with PartialReadError (ERR_MEMKIT_PARTIAL_READ), which carries the
   * hits from the servers that answered (`hits`) and the keys that could not be read (`failed`).
   */
  async getMany<T = unknown>(keys: Iterable<string>): Promise<Map<string, T>> {
    this.#assertOpen()
    const { perNode, count } = this.#groupByServer(keys)
    const into = new Map<string, unknown>()
    if (perNode.size === 0) return into as Map<string, T>
    const batches = [...perNode]
    const results = await Promise.allSettled(
      batches.map(([node, list]) =>
        this.#protocol.getMany(this.#targets.get(node)!, list, this.#decoder, into),
      ),
    )
    let failed: Map<string, MemkitError> | undefined
    for (let i = 0; i < results.length; i++) {
      const result = results[i]!
      if (result.status === 'fulfilled') continue
      // Only a server's failure is partial; anything else (a decode error, a closed client) is the caller's.
      if (!(result.reason instanceof ServerFailureError)) throw result.reason
      failed ??= new Map()
      for (const key of batches[i]![1]) {
        into.delete(key.key)
        failed.set(key.key, result.reason)
      }
    }
    if (failed) {
      throw new PartialReadError(
        `getMany could not read ${failed.size} of ${count} keys: ${[...new Set([...failed.values()].map((e) => e.message))].join('; ')}`,
        into as Map<string, T>,
        failed,
      )
    }
    return into as Map<string, T>
  }

  /**
   * Stores many values, one pipelined batch per server, in parallel (meta: `ms ... q` per key,
   * then `mn`; classic and binary: one pipelined command per key). `entries` is a Map, an
   * iterable of `[key, value]` pairs or a plain object. Every key and value is checked before
   * anything is sent, so bad input writes nothing. When some servers fail, rejects with
   * PartialWriteError (ERR_MEMKIT_PARTIAL_WRITE), whose `failed` maps each key not written to its
   * error and `succeeded` lists the keys written; pymemcache's `set_many` returns the failed keys.
   */
  async setMany(entries: SetManyEntries, options?: SetOptions): Promise<void> {
    this.#assertOpen()
    checkOptions(options, SET_MANY_OPTIONS)
    const ttl = options?.ttl ?? this.config.defaultTtl
    const perNode = new Map<ServerNode, BatchItem[]>()
    for (const [key, value] of entriesOf(entries)) {
      const encoded = this.#keys.encode(key)
      const { data, flags } = this.#codec.encode(value)
      this.#checkSize(encoded.stored, data.length, flags)
      const item: BatchItem = { key: encoded, data, flags, exptime: this.#exptimeFor(encoded, ttl) }
      const node = this.#cluster.nodeFor(encoded)
      const list = perNode.get(node)
      if (list) list.push(item)
      else perNode.set(node, [item])
    }
    await this.#batch(perNode, 'setMany', (target, items) => {
      if (this.#protocol.name === 'meta') return storeMany(target as Dispatch, items)
      return this.#oneByOne(items, (item) =>
        this.#protocol.store(target, 'set', item.key, item.data, item.flags, item.exptime),
      )
    })
  }

  /**
   * Deletes many keys, one pipelined batch per server, in parallel (meta: `md ... q` per key,
   * then `mn`). Resolves with the number of keys that existed. When some servers fail, rejects
   * with PartialWriteError: `failed` maps each key whose delete is unknown to its error,
   * `succeeded` lists the keys whose delete was answered.
   */
  async deleteMany(keys: Iterable<string>): Promise<number> {
    this.#assertOpen()
    const { perNode, count } = this.#groupByServer(keys)
    const missing = await this.#batch(perNode, 'deleteMany', (target, list) => {
      if (this.#protocol.name === 'meta') return deleteMany(target as Dispatch, list)
      return this.#oneByOne(list, (key) => this.#protocol.delete(target, key))
    })
    return count - missing
  }

  /** Distinct keys, encoded and grouped by the server that holds them. */
  #groupByServer(keys: Iterable<string>): { perNode: Map<ServerNode, EncodedKey[]>; count: number } {
    const perNode = new Map<ServerNode, EncodedKey[]>()
    const seen = new Set<string>()
    for (const key of keys) {
      if (seen.has(key)) continue
      seen.add(key)
      const encoded = this.#keys.encode(key)
      const node = this.#cluster.nodeFor(encoded)
      const list = perNode.get(node)
      if (list) list.push(encoded)
      else perNode.set(node, [encoded])
    }
    return { perNode, count: seen.size }
  }

  /**
   * Runs one batch per server; resolves with the number of keys the servers answered "not
   * stored / not found" for. setMany counts those as failures (a `set` is only refused when the
   * server cannot store it), deleteMany as keys that were already missing.
   */
  async #batch<T extends BatchItem | EncodedKey>(
    perNode: Map<ServerNode, T[]>,
    method: 'setMany' | 'deleteMany',
    run: (target: unknown, items: T[]) => Promise<number[]>,
  ): Promise<number> {
    if (perNode.size === 0) return 0
    const batches = [...perNode]
    const results = await Promise.allSettled(
      batches.map(([node, items]) => run(this.#targets.get(node)!, items)),
    )
    let failed: Map<string, MemkitError> | undefined
    const succeeded: string[] = []
    let misses = 0
    let total = 0
    for (let i = 0; i < results.length; i++) {
      const result = results[i]!
      const [node, items] = batches[i]!
      total += items.length
      if (result.status === 'rejected') {
        if (!(result.reason instanceof ServerFailureError)) throw result.reason
        failed ??= new Map()
        for (const item of items) failed.set(keyOf(item), result.reason)
        continue
      }
      const refused = new Set(result.value)
      misses += refused.size
      for (const [index, item] of items.entries()) {
        const key = keyOf(item)
        if (method === 'setMany' && refused.has(index)) {
          failed ??= new Map()
          failed.set(key, new ServerError(`${node.label} did not store ${key} (NOT_STORED)`, node.label))
        } else succeeded.push(key)
      }
    }
    if (failed) {
      throw new PartialWriteError(
        `${method} could not write ${failed.size} of ${total} keys: ${[...new Set([...failed.values()].map((e) => e.message))].join('; ')}`,
        failed,
        succeeded,
      )
    }
    return misses
  }

  /**
   * The classic and binary transports: one command per key, written back to back on the
   * connection (pipelined), so a batch still costs about one round trip. Resolves with the
   * indexes answered false; rejects with the first server failure.
   */
  async #oneByOne<T>(items: T[], send: (item: T) => Promise<boolean>): Promise<number[]> {
    const results = await Promise.allSettled(items.map(send))
    const refused: number[] = []
    for (const [index, result] of results.entries()) {
      if (result.status === 'rejected') throw result.reason
      if (!result.value) refused.push(index)
    }
    return refused
  }

  /** The value and its CAS token (for `cas()`), or undefined on a miss. */
  gets<T = unknown>(key: string): Promise<{ value: T; cas: string } | undefined> {
    try {
      const encoded = this.#keys.encode(key)
      return this.#protocol.gets(this.#dispatchFor(encoded), encoded, this.#decoder) as Promise<
        { value: T; cas: string } | undefined
      >
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** Reads the value and gives it a new TTL (seconds) in one step. */
  async getAndTouch<T = unknown>(key: string, ttl: number | string): Promise<T | undefined> {
    return (await this.getsAndTouch<T>(key, ttl))?.value
  }

  /**
   * Reads the value with its CAS token (for `cas()`) and gives it a new TTL (seconds), in one
   * command on meta (`mg <key> v f c T<ttl>`) and binary (GAT); on classic, `touch` and `gets`
   * pipelined in one round trip (not atomic).
   */
  getsAndTouch<T = unknown>(
    key: string,
    ttl: number | string,
  ): Promise<{ value: T; cas: string } | undefined> {
    try {
      const encoded = this.#keys.encode(key)
      return this.#protocol.getAndTouch(
        this.#dispatchFor(encoded),
        encoded,
        this.#exptimeFor(encoded, ttl),
        this.#decoder,
      ) as Promise<{ value: T; cas: string } | undefined>
    } catch (error) {
      return Promise.reject(error)
    }
  }

  // ---- writing -------------------------------------------------------------------------

  /** Stores a value. Resolves true. */
  set(key: string, value: unknown, options?: SetOptions): Promise<boolean> {
    return this.#store('set', key, value, options, SET_OPTIONS)
  }

  /** Stores only if the key is missing; false when it exists. */
  add(key: string, value: unknown, options?: SetOptions): Promise<boolean> {
    return this.#store('add', key, value, options, ADD_OPTIONS)
  }

  /** Stores only if the key exists; false when it is missing. */
  replace(key: string, value: unknown, options?: SetOptions): Promise<boolean> {
    return this.#store('replace', key, value, options, REPLACE_OPTIONS)
  }

  /** Stores only if the item is unchanged since `gets` returned `cas`; false on conflict or when missing. */
  cas(key: string, value: unknown, cas: string, options?: SetOptions): Promise<boolean> {
    if (typeof cas !== 'string' || !/^\d+$/.test(cas)) {
      return Promise.reject(new InvalidArgumentError('cas must be the token string from gets()'))
    }
    return this.#store('cas', key, value, options, CAS_OPTIONS, cas)
  }

  /** Appends bytes or text to an existing item (its flags and TTL stay); false when missing. */
  append(key: string, value: string | Buffer): Promise<boolean> {
    return this.#concat('append', key, value)
  }

  /** Prepends bytes or text to an existing item; false when missing. */
  prepend(key: string, value: string | Buffer): Promise<boolean> {
    return this.#concat('prepend', key, value)
  }

  /** Removes a key; false when it was missing. */
  delete(key: string): Promise<boolean> {
    try {
      const encoded = this.#keys.encode(key)
      return this.#protocol.delete(this.#dispatchFor(encoded), encoded)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** Removes a key only while its CAS is still `cas` (compare-and-delete); false otherwise. */
  deleteIfUnchanged(key: string, cas: string): Promise<boolean> {
    try {
      if (typeof cas !== 'string' || !/^\d+$/.test(cas))
        throw new InvalidArgumentError('cas must be the token string from gets()')
      const encoded = this.#keys.encode(key)
      return this.#protocol.deleteIfUnchanged(this.#dispatchFor(encoded), encoded, cas)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** Gives an item a new TTL (seconds) without rewriting it; false when missing. */
  touch(key: string, ttl: number | string): Promise<boolean> {
    try {
      const encoded = this.#keys.encode(key)
      return this.#protocol.touch(this.#dispatchFor(encoded), encoded, this.#exptimeFor(encoded, ttl))
    } catch (error) {
      return Promise.reject(error)
    }
  }

  // ---- counters ------------------------------------------------------------------------

  /**
   * Adds `delta` to a counter and returns the new value, in one round trip. With `initial`, a
   * missing counter is created holding `initial` (and `ttl`); without it a miss returns undefined.
   * Counters are unsigned 64-bit; values above Number.MAX_SAFE_INTEGER need `incrBig`.
   */
  incr(key: string, delta: number | bigint = 1, options?: CounterOptions): Promise<number | undefined> {
    return this.#arith(key, false, delta, options, false, 'incr').then(toSafeNumber)
  }

  /** Subtracts `delta` (memcached stops at 0). */
  decr(key: string, delta: number | bigint = 1, options?: CounterOptions): Promise<number | undefined> {
    return this.#arith(key, true, delta, options, false, 'decr').then(toSafeNumber)
  }

  /** `incr` with exact 64-bit results as bigint. */
  incrBig(key: string, delta: number | bigint = 1n, options?: CounterOptions): Promise<bigint | undefined> {
    return this.#arith(key, false, delta, options, false, 'incrBig').then((r) =>
      r === undefined ? undefined : BigInt(r.value),
    )
  }

  /** `decr` with exact 64-bit results as bigint. */
  decrBig(key: string, delta: number | bigint = 1n, options?: CounterOptions): Promise<bigint | undefined> {
    return this.#arith(key, true, delta, options, false, 'decrBig').then((r) =>
      r === undefined ? undefined : BigInt(r.value),
    )
  }

  /**
   * `incr` that also returns the counter's remaining TTL in seconds (-1 = never expires), still
   * in one round trip: what a fixed-window rate limiter needs to report its reset time.
   */
  incrWithTtl(
    key: string,
    delta: number | bigint = 1,
    options?: CounterOptions,
  ): Promise<{ value: number; ttl: number } | undefined> {
    return this.#arith(key, false, delta, options, true, 'incrWithTtl').then((r) =>
      r === undefined ? undefined : { value: toSafeNumber(r)!, ttl: r.ttl },
    )
  }

  /** `decr` that also returns the remaining TTL (seconds, -1 = never). */
  decrWithTtl(
    key: string,
    delta: number | bigint = 1,
    options?: CounterOptions,
  ): Promise<{ value: number; ttl: number } | undefined> {
    return this.#arith(key, true, delta, options, true, 'decrWithTtl').then((r) =>
      r === undefined ? undefined : { value: toSafeNumber(r)!, ttl: r.ttl },
    )
  }

  // ---- compound operations ------------------------------------------------------------

  /**
   * Read-modify-write with compare-and-swap: `fn` gets the current value (undefined when
   * missing) and returns the next one; if another writer got there first, it runs again on the
   * fresh value. Returning undefined leaves the item as it is. Resolves with what was stored.
   */
  async update<T>(
    key: string,
    fn: (current: T | undefined) => T | undefined | Promise<T | undefined>,
    options?: UpdateOptions,
  ): Promise<T | undefined> {
    checkOptions(options, UPDATE_OPTIONS)
    const attempts = options?.retries ?? UPDATE_ATTEMPTS
    if (!Number.isInteger(attempts) || attempts < 1)
      throw new InvalidArgumentError(
        `update(): retries must be an integer >= 1 (attempts in all); got ${describe(attempts)}`,
      )
    if (options?.ttl !== undefined) toExptime(options.ttl)
    for (let attempt = 0; attempt < attempts; attempt++) {
      // Full jitter (random in [0, min(cap, base * 2^n)]): losers of a round spread out instead
      // of colliding again, so many concurrent updaters of one key all get through.
      if (attempt > 0)
        await sleep(Math.random() * Math.min(UPDATE_BACKOFF_CAP, UPDATE_BACKOFF_BASE * 2 ** attempt))
      const item = await this.gets<T>(key)
      const next = await fn(item?.value)
      if (next === undefined) return item?.value
      const stored = item
        ? await this.cas(key, next, item.cas, { ttl: options?.ttl })
        : await this.add(key, next, { ttl: options?.ttl })
      if (stored) return next
    }
    throw new CasConflictError(
      `update of ${JSON.stringify(key)} lost the compare-and-swap race ${attempts} times`,
    )
  }

  /** Acquires a distributed lock named `name` (stored under `lock:<name>`). See `Lock`. */
  lock(name: string, options?: LockOptions): Promise<Lock> {
    return acquireLock(this, `lock:${name}`, options)
  }

  /**
   * Cache-aside: the cached value, or `loader()`'s result stored for `ttl` seconds (a number, or a
   * string such as `'5m'`). Concurrent callers for one key in this process share one load. If
   * memcached fails, the loader still runs (the failure is emitted as 'error'); a loader error is
   * passed to every caller and nothing is cached. What is cached: any value but `undefined`
   * (never cached) and `null`, which is cached only with `nullTtl` (negative caching, for its own
   * TTL). A loader that does not settle within `loadTimeout` ms (default 10000) fails every
   * waiting caller with LoadTimeoutError, and the next call loads again. With `lease: true`
   * (meta protocol, memcached >= 1.6.18) one caller per key loads across every process; see
   * RememberOptions.
   */
  remember<T>(
    key: string,
    ttl: number | string,
    loader: () => T | Promise<T>,
    options?: RememberOptions,
  ): Promise<T> {
    let plan: RememberPlan
    try {
      plan = this.#rememberPlan(key, ttl, loader, options)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.#loads.run(key, () => {
      const load = { abandoned: false }
      const work = plan.lease ? this.#leaseLoad(plan, load) : this.#load(plan, load)
      return withLoadTimeout(work, plan, load)
    }) as Promise<T>
  }

  #rememberPlan(
    key: string,
    ttl: number | string,
    loader: () => unknown,
    options: RememberOptions | undefined,
  ): RememberPlan {
    checkOptions(options, REMEMBER_OPTIONS)
    const seconds = toDuration(ttl, 'ttl', 's', 'argument')
    if (typeof loader !== 'function') {
      throw new InvalidArgumentError(
        `remember(key, ttl, loader): loader must be a function returning the value; got ${describe(loader)}`,
      )
    }
    const rawTimeout = options?.loadTimeout
    const loadTimeout =
      rawTimeout === undefined
        ? 10_000
        : rawTimeout === Number.POSITIVE_INFINITY
          ? rawTimeout
          : toDuration(rawTimeout, 'loadTimeout', 'ms', 'argument')
    if (!(loadTimeout > 0)) {
      throw new InvalidArgumentError(
        `remember(): loadTimeout must be more than 0 ms (or Infinity); got ${String(rawTimeout)}`,
      )
    }
    const nullTtl =
      options?.nullTtl === undefined || options.nullTtl === false
        ? undefined
        : toDuration(options.nullTtl, 'nullTtl', 's', 'argument')
    const lease = options?.lease
    // By default one reader refreshes the value in its last tenth (at least its last second).
    let refreshAhead = seconds > 0 ? Math.max(1, Math.ceil(seconds / 10)) : 0
    if (lease !== undefined && lease !== false && lease !== true) {
      checkOptions(lease, LEASE_OPTIONS)
      if (lease.refreshAhead !== undefined)
        refreshAhead = toDuration(lease.refreshAhead, 'lease.refreshAhead', 's', 'argument')
    }
    const leased = lease !== undefined && lease !== false
    if (leased && (this.#protocol.name === 'classic' || this.#protocol.name === 'binary')) {
      throw new NotSupportedError(
        `remember(): lease needs the meta protocol (memcached >= 1.6.18: mg N/R with the W/X/Z flags); protocol '${this.#protocol.name}' has no leases. Drop \`lease\` (concurrent callers in one process still share one load)`,
      )
    }
    return {
      key,
      ttl: seconds,
      loader,
      loadTimeout,
      nullTtl,
      // memory:// lives in this process, where the in-process single flight already is global.
      lease: leased && this.#protocol.name === 'meta',
      refreshAhead: Math.ceil(refreshAhead),
      vivify: Number.isFinite(loadTimeout) ? Math.max(1, Math.ceil(loadTimeout / 1000)) : 60,
    }
  }

  /** The TTL a loaded value is cached for, or undefined when it is not cached. */
  #ttlOf(value: unknown, plan: RememberPlan): number | undefined {
    if (value === undefined) return undefined
    if (value === null) return plan.nullTtl
    return plan.ttl
  }

  async #load(plan: RememberPlan, load: { abandoned: boolean }): Promise<unknown> {
    let cached: unknown
    try {
      cached = await this.get(plan.key)
    } catch (error) {
      if (!(error instanceof ServerFailureError || error instanceof DecodeError)) throw error
      this.#emitError(error)
    }
    if (cached !== undefined && (cached !== null || plan.nullTtl !== undefined)) return cached
    const value = await plan.loader()
    const ttl = this.#ttlOf(value, plan)
    // Given up on: a newer load may have stored a fresher value already.
    if (ttl !== undefined && !load.abandoned) {
      try {
        await this.set(plan.key, value, { ttl })
      } catch (error) {
        if (!(error instanceof ServerFailureError || error instanceof ValueTooLargeError)) throw error
        this.#emitError(error)
      }
    }
    return value
  }

  /**
   * remember() across processes, with memcached's leases (mg N R, the W/Z/X flags): the caller
   * who gets W loads; others wait for the value (cold key) or are served the current or stale
   * value at once (expiring or invalidated key) while the winner reloads in the background. The
   * winner writes with the CAS its lease came with, so a write from a load that an invalidate()
   * or a newer set() overtook is refused and the newer data stays.
   */
  async #leaseLoad(plan: RememberPlan, load: { abandoned: boolean }): Promise<unknown> {
    const encoded = this.#keys.encode(plan.key)
    let delay = LEASE_POLL_FIRST
    for (;;) {
      let item: LeaseItem
      try {
        item = await leaseGet(
          this.#dispatchFor(encoded) as Dispatch,
          encoded,
          this.#decoder,
          plan.vivify,
          plan.refreshAhead,
        )
      } catch (error) {
        if (!(error instanceof ServerFailureError || error instanceof DecodeError)) throw error
        this.#emitError(error)
        return plan.loader()
      }
      if (item.hit) {
        if (item.win) this.#refreshInBackground(plan, item.cas)
        return item.value
      }
      if (item.win) return this.#loadUnderLease(plan, load, item.cas, true)
      // Another process holds the lease on an empty placeholder: look again shortly.
      if (load.abandoned) return undefined
      await sleep(delay * (0.5 + Math.random()))
      delay = Math.min(delay * 2, LEASE_POLL_MAX)
    }
  }

  async #loadUnderLease(
    plan: RememberPlan,
    load: { abandoned: boolean },
    cas: string,
    placeholder: boolean,
  ): Promise<unknown> {
    let value: unknown
    try {
      value = await plan.loader()
    } catch (error) {
      if (placeholder) this.#releaseLease(plan.key, cas)
      throw error
    }
    if (load.abandoned) return value
    const ttl = this.#ttlOf(value, plan)
    if (ttl === undefined) {
      if (placeholder) this.#releaseLease(plan.key, cas)
      return value
    }
    try {
      // false: invalidated or overwritten since the lease was granted; the newer state stays.
      await this.cas(plan.key, value, cas, { ttl })
    } catch (error) {
      if (!(error instanceof ServerFailureError || error instanceof ValueTooLargeError)) throw error
      if (placeholder) this.#releaseLease(plan.key, cas)
      this.#emitError(error)
    }
    return value
  }

  /** Frees an unused placeholder lease (only while it is still ours), so a waiter can load at once. */
  #releaseLease(key: string, cas: string): void {
    this.deleteIfUnchanged(key, cas).catch((error: Error) => this.#emitError(error))
  }

  #refreshInBackground(plan: RememberPlan, cas: string): void {
    const load = { abandoned: false }
    withLoadTimeout(this.#loadUnderLease(plan, load, cas, false), plan, load).catch((error: Error) =>
      this.#emitError(error),
    )
  }

  /**
   * Marks `key` stale (meta `md <key> I`): it stays readable, `remember(..., { lease: true })`
   * serves it to every caller but one, who reloads it, and a lease granted before this call can
   * no longer write (its CAS changed). Resolves false when the key is missing. On the classic and
   * binary transports, which have no stale items, it deletes the key.
   */
  invalidate(key: string): Promise<boolean> {
    try {
      const encoded = this.#keys.encode(key)
      const target = this.#dispatchFor(encoded)
      if (this.#protocol.name !== 'meta') return this.#protocol.delete(target, encoded)
      return invalidate(target as Dispatch, encoded, undefined)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /**
   * The replicated generation counter stored under `key` (one object per key and client). Used
   * for state that other keys depend on (a namespace, a tag), so that no single server's loss,
   * eviction or older copy can move it backwards; see `Generation`. `replicas` (default 3, at
   * most the number of servers) copies are kept, each on a different server. The first copy is
   * `key` itself, the others `key#<n>`.
   */
  generation(key: string, options?: { replicas?: number }): Generation {
    checkOptions(options, GENERATION_OPTIONS)
    let generation = this.#generations.get(key)
    if (generation) return generation
    const replicas = options?.replicas ?? 3
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > 16) {
      throw new InvalidArgumentError(
        `generation replicas must be an integer from 1 to 16; got ${String(replicas)}`,
      )
    }
    generation = new Generation(key, this.#spread(key, replicas), this.#generationBackend)
    this.#generations.set(key, generation)
    return generation
  }

  /** `key` and `key#<n>` variants whose homes are `count` different servers (as far as there are servers). */
  #spread(key: string, count: number): string[] {
    const wanted = Math.min(count, this.#cluster.nodes.length)
    const keys = [key]
    const homes = new Set([this.#cluster.homeOf(this.#keys.encode(key))])
    // Behind proxies placement is unknown: numbered variants are all that can be done.
    for (let n = 1; keys.length < wanted && n < 64 * count; n++) {
      const candidate = `${key}#${n}`
      const home = this.#cluster.homeOf(this.#keys.encode(candidate))
      if (home !== undefined && homes.has(home)) continue
      homes.add(home)
      keys.push(candidate)
    }
    return keys
  }

  readonly #generationBackend: GenerationBackend = {
    readCopy: async (key) => {
      const encoded = this.#keys.encode(key)
      const item = (await this.#protocol.gets(this.#dispatchFor(encoded), encoded, RAW_DECODER)) as
        | { value: Buffer; cas: string }
        | undefined
      if (item === undefined) return { value: undefined, cas: undefined }
      return { ...toCopy(item.value), cas: item.cas }
    },
    createCopy: (key, value) => this.incr(key, 0, { initial: value, ttl: 0 }),
    replaceCopy: (key, value, cas) => {
      const encoded = this.#keys.encode(key)
      const data = Buffer.from(String(value), 'latin1')
      return this.#protocol.store(this.#dispatchFor(encoded), 'cas', encoded, data, 0, 0, cas)
    },
    deleteCopy: (key) => this.delete(key),
    report: (error) => this.#emitError(error),
  }

  // ---- cluster -------------------------------------------------------------------------

  /**
   * The largest value, in bytes after serialization and compression, that fits in one item
   * under `key` on servers with this client's `maxItemSize` (memcached counts the key and a
   * 59-byte header, 63 with non-zero flags, against the limit).
   */
  maxValueSize(key: string, flags = 0): number {
    const stored = this.#keys.encode(key).stored
    return this.config.maxItemSize - Buffer.byteLength(stored) - ITEM_OVERHEAD - (flags === 0 ? 0 : 4)
  }

  /** `"host:port"` of the server that holds `key` right now. */
  serverFor(key: string): string {
    return this.#cluster.nodeFor(this.#keys.encode(key)).label
  }

  /** Removes every item on every server. */
  async flush(): Promise<void> {
    this.#assertOpen()
    await Promise.all(this.#cluster.nodes.map((node) => this.#protocol.flush(this.#targets.get(node)!)))
  }

  /** Health and figures of every server, in configured order. Never rejects for a down server. */
  async stats(): Promise<ServerStats[]> {
    this.#assertOpen()
    return Promise.all(
      this.#cluster.nodes.map(async (node) => {
        try {
          // A proxy forwards no stats: report what can be known, reachability and version.
          if (this.config.proxy) {
            const version = await this.#protocol.version(this.#targets.get(node)!)
            return { server: node.label, up: true, version }
          }
          const raw = await this.#protocol.stats(this.#targets.get(node)!)
          const stats = summarizeStats(node.label, raw)
          return stats
        } catch (error) {
          return downStats(node.label, error as Error)
        }
      }),
    )
  }

  /** Closes every connection once its in-flight operations are answered; later calls fail with ERR_MEMKIT_CLOSED. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const node of this.#cluster.nodes) {
      node.close()
      const target = this.#targets.get(node)
      if (target instanceof BinaryTarget) target.close()
    }
  }

  /** Whether deleteIfUnchanged is atomic on this transport (false for classic). */
  get conditionalDelete(): boolean {
    return this.#protocol.conditionalDelete
  }

  get closed(): boolean {
    return this.#closed
  }

  // ---- internals -----------------------------------------------------------------------

  #store(
    mode: StoreMode,
    key: string,
    value: unknown,
    options: SetOptions | undefined,
    shape: OptionsShape,
    cas?: string,
  ): Promise<boolean> {
    try {
      if (options !== undefined) checkOptions(options, shape)
      const encoded = this.#keys.encode(key)
      const exptime = this.#exptimeFor(encoded, options?.ttl ?? this.config.defaultTtl)
      const { data, flags } = this.#codec.encode(value)
      this.#checkSize(encoded.stored, data.length, flags)
      return this.#protocol.store(this.#dispatchFor(encoded), mode, encoded, data, flags, exptime, cas)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  #concat(mode: 'append' | 'prepend', key: string, value: string | Buffer): Promise<boolean> {
    try {
      if (typeof value !== 'string' && !Buffer.isBuffer(value)) {
        throw new InvalidValueError(`${mode} takes a string or a Buffer (it joins raw bytes)`)
      }
      const encoded = this.#keys.encode(key)
      const data = typeof value === 'string' ? Buffer.from(value) : value
      this.#checkSize(encoded.stored, data.length, 0)
      return this.#protocol.store(this.#dispatchFor(encoded), mode, encoded, data, 0, 0)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  #checkSize(stored: string, valueLength: number, flags: number): void {
    const size = valueLength + Buffer.byteLength(stored) + ITEM_OVERHEAD + (flags === 0 ? 0 : 4)
    if (size > this.config.maxItemSize) {
      throw new ValueTooLargeError(
        `value of ${valueLength} bytes for ${JSON.stringify(stored.slice(0, 60))} needs a ${size}-byte item, over the item size limit of ${this.config.maxItemSize} bytes (maxItemSize, memcached -I)`,
        size,
        this.config.maxItemSize,
      )
    }
  }

  #arith(
    key: string,
    decrement: boolean,
    delta: number | bigint,
    options: CounterOptions | undefined,
    withTtl: boolean,
    method: string,
  ) {
    try {
      if (options !== undefined) checkOptions(options, COUNTER_OPTIONS[method]!)
      const encoded = this.#keys.encode(key)
      const initial = options?.initial === undefined ? undefined : toUint64(options.initial, 'initial')
      if (options?.ttl !== undefined && initial === undefined) {
        throw new InvalidArgumentError(
          'a counter ttl applies when the counter is created: pass `initial` with it',
        )
      }
      return this.#protocol.arith(this.#dispatchFor(encoded), {
        key: encoded,
        decrement,
        delta: toUint64(delta, 'delta'),
        initial,
        exptime:
          initial === undefined ? 0 : this.#exptimeFor(encoded, options?.ttl ?? this.config.defaultTtl),
        withTtl,
      })
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /**
   * memcached's exptime for a TTL in seconds. While `stored`'s home server is down and failover
   * sends it to a stand-in, the TTL is capped at `failoverTtl`: the stand-in's copy is a
   * short-lived gutter entry, so once the home server is back (emptied) an older copy cannot
   * linger on the stand-in and resurface at the next failover.
   */
  #exptimeFor(key: PlacedKey, ttl: number | string): number {
    const exptime = toExptime(ttl)
    if (!this.#cluster.degraded || this.#cluster.homeOf(key)?.up !== false) return exptime
    const cap = this.config.failoverTtl
    const seconds = typeof ttl === 'number' ? ttl : toDuration(ttl, 'ttl', 's', 'argument')
    return toExptime(seconds === 0 ? cap : Math.min(seconds, cap))
  }

  #dispatchFor(key: PlacedKey): unknown {
    if (this.#closed) throw new ClientClosedError('the client is closed')
    return this.#targets.get(this.#cluster.nodeFor(key))!
  }

  #makeDispatch(node: ServerNode): Dispatch {
    return <T>(command: Command<T>, idempotent: boolean): Promise<T> => {
      if (this.#closed) return Promise.reject(new ClientClosedError('the client is closed'))
      // The clock starts when the connection writes it (one clock read per write, not per command).
      command.timeout = this.config.timeout
      command.route = node
      if (idempotent && this.config.retries > 0) {
        command.retriesLeft = this.config.retries
        command.onFailure = this.#retry
      }
      if (this.#proxyCount > 1) {
        command.reroutesLeft = this.#proxyCount - 1
        command.onFailure = this.#retry
      }
      node.send(command)
      if (commandChannel.hasSubscribers) observe(this, command, node.label)
      return command.promise
    }
  }

  // A command whose established connection broke (not one that timed out, could not connect,
  // or found its server down) is sent again on a fresh connection while its deadline allows.
  // Only idempotent commands get here.
  readonly #retry = (command: RetryTarget, error: MemkitError): boolean => {
    if (this.#closed || Date.now() >= command.deadline) return false
    // Behind proxies any proxy serves any key, and a command that never left the client (the
    // proxy is down or refused the connection) is safe to send elsewhere, idempotent or not.
    const neverSent =
      error.code === 'ERR_MEMKIT_SERVER_DOWN' || (error as ConnectionError).connecting === true
    if (neverSent && command.reroutesLeft > 0) {
      command.reroutesLeft--
      const next = this.#cluster.anyNode()
      command.route = next
      next.send(command as Command)
      return true
    }
    if (command.retriesLeft <= 0 || error.code !== 'ERR_MEMKIT_CONNECTION') return false
    if ((error as ConnectionError).connecting) return false
    command.retriesLeft--
    ;(command.route as ServerNode).send(command as Command)
    return true
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClientClosedError('the client is closed')
  }

  #emitError(error: Error): void {
    // 'error' without a listener would throw; background failures must never crash the process.
    if (this.listenerCount('error') > 0) this.emit('error', error)
  }
}

/** Hands stored bytes back as they are (generation copies are counters, not serialized values). */
const RAW_DECODER: ItemDecoder = {
  decode: (_key, data) => Buffer.from(data),
  missOnDecodeError: false,
  reportDecodeError: () => {},
}

function observe(client: object, command: Command, server: string): void {
  const start = performance.now()
  command.promise.then(
    (result) => {
      const event: Record<string, unknown> = {
        client,
        command: command.name,
        server,
        duration: performance.now() - start,
      }
      if (command.name === 'get' || command.name === 'gets' || command.name === 'getAndTouch')
        event.hit = result !== undefined
      else if (command.keyCount > 0) {
        event.keys = command.keyCount
        event.hits = command.hitCount
        event.hit = command.hitCount > 0
      }
      commandChannel.publish(event)
    },
    (error) =>
      commandChannel.publish({
        client,
        command: command.name,
        server,
        duration: performance.now() - start,
        error,
      }),
  )
}

/** remember()'s call, validated once. */
interface RememberPlan {
  readonly key: string
  /** Seconds. */
  readonly ttl: number
  readonly loader: () => unknown
  /** Milliseconds (or Infinity). */
  readonly loadTimeout: number
  /** Seconds a null result is cached, or undefined: not cached. */
  readonly nullTtl: number | undefined
  readonly lease: boolean
  /** Lease mode: seconds of remaining TTL under which one reader reloads (mg R); 0 = off. */
  readonly refreshAhead: number
  /** Lease mode: seconds a placeholder lease lives (mg N), so a crashed loader frees it. */
  readonly vivify: number
}

/** Lease mode: first and longest wait (ms) between looks at a key another process is loading. */
const LEASE_POLL_FIRST = 5
const LEASE_POLL_MAX = 100

/** Rejects with LoadTimeoutError after `plan.loadTimeout` ms, and marks the load abandoned. */
function withLoadTimeout(
  work: Promise<unknown>,
  plan: RememberPlan,
  load: { abandoned: boolean },
): Promise<unknown> {
  if (plan.loadTimeout === Number.POSITIVE_INFINITY) return work
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      load.abandoned = true
      reject(
        new LoadTimeoutError(
          `remember(${JSON.stringify(plan.key)}): the loader did not settle within ${plan.loadTimeout} ms (loadTimeout); the next call loads again`,
        ),
      )
    }, plan.loadTimeout)
    work.then(
      (value) => {
        clearTimeout(timer)
        resolve(value)
      },
      (error: unknown) => {
        clearTimeout(timer)
        reject(error)
      },
    )
  })
}

/** The caller's key of a batch item (a value to store, or a key to delete). */
function keyOf(item: BatchItem | EncodedKey): string {
  return 'data' in item ? item.key.key : item.key
}

function entriesOf(entries: SetManyEntries): Iterable<readonly [string, unknown]> {
  if (entries instanceof Map) return entries
  if (typeof entries === 'object' && entries !== null) {
    if (Symbol.iterator in entries) return entries as Iterable<readonly [string, unknown]>
    return Object.entries(entries)
  }
  throw new InvalidArgumentError(
    `setMany(entries): entries must be a Map, [key, value] pairs or an object; got ${describe(entries)}`,
  )
}

function toUint64(value: number | bigint, name: string): bigint {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new InvalidArgumentError(`${name} must be a non-negative integer; got ${value}`)
    }
    return BigInt(value)
  }
  if (typeof value !== 'bigint' || value < 0n || value > MAX_UINT64) {
    throw new InvalidArgumentError(`${name} must be an unsigned 64-bit integer; got ${String(value)}`)
  }
  return value
}

function toSafeNumber(result: { value: string } | undefined): number | undefined {
  if (result === undefined) return undefined
  const value = Number(result.value)
  if (!Number.isSafeInteger(value)) {
    throw new UnsafeIntegerError(
      `counter value ${result.value} is above Number.MAX_SAFE_INTEGER; use incrBig/decrBig`,
    )
  }
  return value
}

function createProtocol(config: ClientConfig): Protocol<unknown> {
  if (config.servers.some((server) => server.memory)) return new MemoryProtocol() as Protocol<unknown>
  switch (config.protocol) {
    case 'classic':
      return new ClassicProtocol({ proxy: config.proxy }) as Protocol<unknown>
    case 'binary':
      return new BinaryProtocol() as Protocol<unknown>
    default:
      return new MetaProtocol() as Protocol<unknown>
  }
}

/** Creates a client. Connections open on first use, so this never fails for a server that is down. */
export function createClient(options?: ClientOptions): MemcachedClient {
  return new MemcachedClient(options)
}
