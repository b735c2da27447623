// The client: one method per memcached operation, each documented for callers, and little else.
// This file is over 450 lines on purpose: it is the public API surface (about forty methods and
// their docstrings). What the operations need lives elsewhere, one concern per file: keys
// (keys.ts), values (serializer.ts), placement (cluster.ts), the wire (transport.ts and the
// transports in protocol/), multi-key batches (batch.ts), cache-aside and leases (remember.ts),
// generations (generation.ts), locks (lock.ts).
import { EventEmitter } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  ADD_OPTIONS,
  CAS_OPTIONS,
  COUNTER_OPTIONS,
  checkOptions,
  GENERATION_OPTIONS,
  type OptionsShape,
  REPLACE_OPTIONS,
  SET_MANY_OPTIONS,
  SET_OPTIONS,
  UPDATE_OPTIONS,
} from './arguments.js'
import { addTo, type Groups, readMany, writeMany } from './batch.js'
import { Cluster, type PlacedKey } from './cluster.js'
import { toSafeNumber, toUint64 } from './counters.js'
import { createTransport, transportKind } from './create-transport.js'
import { serverDownChannel, serverUpChannel } from './diagnostics.js'
import { describe, toDuration } from './duration.js'
import {
  CasConflictError,
  ClientClosedError,
  InvalidArgumentError,
  InvalidValueError,
  NotSupportedError,
  ValueTooLargeError,
} from './errors.js'
import { Generation, type GenerationBackend, toCopy } from './generation.js'
import { type EncodedKey, KeyCodec } from './keys.js'
import { acquireLock, type Lock, type LockBackend, type LockOptions } from './lock.js'
import type { MemkitClient } from './memkit-client.js'
import { type ClientConfig, type ClientOptions, parseClientOptions } from './options.js'
import { AsciiAuthCommand } from './protocol/ascii-auth.js'
import { type ItemDecoder, valueDecoder } from './protocol/item-decoder.js'
import { MetaNoopCommand, VersionCommand } from './protocol/text-commands.js'
import { CacheAside } from './remember.js'
import { ValueCodec } from './serializer.js'
import { ServerNode } from './server-node.js'
import { downStats, type ServerStats, summarizeStats } from './stats.js'
import type { BatchItem, StoreMode, Transport, TransportKind } from './transport.js'
import { toExptime } from './ttl.js'
import type {
  ClientEvents,
  CounterOptions,
  RememberOptions,
  SetManyEntries,
  SetOptions,
  UpdateOptions,
} from './types.js'

/** update(): attempts by default, and the backoff between them (ms). */
const UPDATE_ATTEMPTS = 32
const UPDATE_BACKOFF_BASE = 1
const UPDATE_BACKOFF_CAP = 100

/** memcached's per-item header: 59 bytes with a CAS id, plus 4 when the flags are non-zero. */
const ITEM_OVERHEAD = 59

/**
 * A pipelined memcached client. Create it with `createClient(options)`; share one instance
 * per process between all middleware.
 */
export class MemcachedClient extends EventEmitter<ClientEvents> implements LockBackend, MemkitClient {
  readonly config: ClientConfig
  readonly #kind: TransportKind
  readonly #keys: KeyCodec
  readonly #codec: ValueCodec
  readonly #cluster: Cluster
  readonly #decoder: ItemDecoder
  /** The transport of each server. */
  readonly #transports = new Map<ServerNode, Transport>()
  readonly #cacheAside: CacheAside
  readonly #generations = new Map<string, Generation>()
  #closed = false

  constructor(options: ClientOptions = {}) {
    super()
    this.config = parseClientOptions(options)
    const config = this.config
    this.#kind = transportKind(config)
    this.#keys = new KeyCodec({
      prefix: config.keyPrefix,
      hashLongKeys: config.hashLongKeys,
      base64NonAscii: this.#kind.base64Keys,
    })
    this.#codec = new ValueCodec(config.codec)
    this.#decoder = valueDecoder(this.#codec, config.decodeErrors === 'miss', (error) =>
      this.#emitError(error),
    )
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
    const dispatch = {
      timeout: config.timeout,
      retries: config.retries,
      proxies: config.proxy ? config.servers.length : 0,
      anyNode: () => this.#cluster.anyNode(),
      closed: () => this.#closed,
      client: this,
    }
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
          flushOnRejoin: config.failover && config.rejoin === 'flush' && !config.proxy && !server.memory,
          probe: (flush) => this.#transports.get(node)!.probe(flush),
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
      this.#transports.set(node, createTransport(config, node, dispatch))
    }
    this.#cluster = new Cluster(nodes, config.failover, config.proxy, config.distribution)
    this.#cacheAside = new CacheAside({
      kind: this.#kind,
      get: (key) => this.get(key),
      set: (key, value, options) => this.set(key, value, options),
      cas: (key, value, cas, options) => this.cas(key, value, cas, options),
      deleteIfUnchanged: (key, cas) => this.deleteIfUnchanged(key, cas),
      leaseGet: (key, vivify, recache) => {
        const encoded = this.#keys.encode(key)
        return this.#transportFor(encoded).leaseGet(encoded, this.#decoder, vivify, recache)
      },
      report: (error) => this.#emitError(error),
    })
  }

  // ---- reading -------------------------------------------------------------------------

  /** The value stored under `key`, or undefined on a miss. */
  get<T = unknown>(key: string): Promise<T | undefined> {
    try {
      const encoded = this.#keys.encode(key)
      return this.#transportFor(encoded).get(encoded, this.#decoder) as Promise<T | undefined>
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
    const { groups, count } = this.#groupByServer(keys)
    return readMany<T>(groups, count, this.#decoder)
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
    const groups: Groups<BatchItem> = new Map()
    for (const [key, value] of entriesOf(entries)) {
      const encoded = this.#keys.encode(key)
      const { data, flags } = this.#codec.encode(value)
      this.#checkSize(encoded.stored, data.length, flags)
      addTo(groups, this.#transportFor(encoded), {
        key: encoded,
        data,
        flags,
        exptime: this.#exptimeFor(encoded, ttl),
      })
    }
    await writeMany(groups, 'setMany')
  }

  /**
   * Deletes many keys, one pipelined batch per server, in parallel (meta: `md ... q` per key,
   * then `mn`). Resolves with the number of keys that existed. When some servers fail, rejects
   * with PartialWriteError: `failed` maps each key whose delete is unknown to its error,
   * `succeeded` lists the keys whose delete was answered.
   */
  async deleteMany(keys: Iterable<string>): Promise<number> {
    this.#assertOpen()
    const { groups, count } = this.#groupByServer(keys)
    return count - (await writeMany(groups, 'deleteMany'))
  }

  /** Distinct keys, encoded and grouped by the server that holds them. */
  #groupByServer(keys: Iterable<string>): { groups: Groups<EncodedKey>; count: number } {
    const groups: Groups<EncodedKey> = new Map()
    const seen = new Set<string>()
    for (const key of keys) {
      if (seen.has(key)) continue
      seen.add(key)
      const encoded = this.#keys.encode(key)
      addTo(groups, this.#transportFor(encoded), encoded)
    }
    return { groups, count: seen.size }
  }

  /** The value and its CAS token (for `cas()`), or undefined on a miss. */
  gets<T = unknown>(key: string): Promise<{ value: T; cas: string } | undefined> {
    try {
      const encoded = this.#keys.encode(key)
      return this.#transportFor(encoded).gets(encoded, this.#decoder) as Promise<
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
      return this.#transportFor(encoded).getAndTouch(
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
      return this.#transportFor(encoded).delete(encoded)
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
      return this.#transportFor(encoded).deleteIfUnchanged(encoded, cas)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** Gives an item a new TTL (seconds) without rewriting it; false when missing. */
  touch(key: string, ttl: number | string): Promise<boolean> {
    try {
      const encoded = this.#keys.encode(key)
      return this.#transportFor(encoded).touch(encoded, this.#exptimeFor(encoded, ttl))
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
    return this.#cacheAside.remember(key, ttl, loader, options)
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
      return this.#transportFor(encoded).invalidate(encoded)
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

  /** Generation copies are counters: raw bytes, not serialized values. */
  readonly #generationBackend: GenerationBackend = {
    readCopy: async (key) => {
      const encoded = this.#keys.encode(key)
      const item = (await this.#transportFor(encoded).gets(encoded, RAW_DECODER)) as
        | { value: Buffer; cas: string }
        | undefined
      if (item === undefined) return { value: undefined, cas: undefined }
      return { ...toCopy(item.value), cas: item.cas }
    },
    createCopy: (key, value) => this.incr(key, 0, { initial: value, ttl: 0 }),
    replaceCopy: (key, value, cas) => {
      const encoded = this.#keys.encode(key)
      return this.#transportFor(encoded).store(
        'cas',
        encoded,
        Buffer.from(String(value), 'latin1'),
        0,
        0,
        cas,
      )
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

  /**
   * Removes every item on every server. With `proxy: true` it rejects with NotSupportedError
   * (`ERR_MEMKIT_NOT_SUPPORTED`) and sends nothing: twemproxy closes the connection on
   * flush_all, failing every request in flight; flush the servers behind the proxy instead.
   */
  async flush(): Promise<void> {
    this.#assertOpen()
    if (this.config.proxy)
      throw new NotSupportedError(
        'flush is not available through a proxy (twemproxy closes the connection on flush_all); flush the servers behind it',
      )
    await Promise.all([...this.#transports.values()].map((transport) => transport.flush()))
  }

  /** Health and figures of every server, in configured order. Never rejects for a down server. */
  async stats(): Promise<ServerStats[]> {
    this.#assertOpen()
    return Promise.all(
      this.#cluster.nodes.map(async (node) => {
        const transport = this.#transports.get(node)!
        try {
          // A proxy forwards no stats: report what can be known, reachability and version.
          if (this.config.proxy) return { server: node.label, up: true, version: await transport.version() }
          return summarizeStats(node.label, await transport.stats())
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
      this.#transports.get(node)!.close()
    }
  }

  /** Whether deleteIfUnchanged is atomic on this transport (false for classic). */
  get conditionalDelete(): boolean {
    return this.#kind.conditionalDelete
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
      return this.#transportFor(encoded).store(mode, encoded, data, flags, exptime, cas)
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
      return this.#transportFor(encoded).store(mode, encoded, data, 0, 0)
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
      return this.#transportFor(encoded).arith({
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

  /** The transport of the server that holds `key` now. */
  #transportFor(key: PlacedKey): Transport {
    if (this.#closed) throw new ClientClosedError('the client is closed')
    return this.#transports.get(this.#cluster.nodeFor(key))!
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

/** Creates a client. Connections open on first use, so this never fails for a server that is down. */
export function createClient(options?: ClientOptions): MemcachedClient {
  return new MemcachedClient(options)
}
