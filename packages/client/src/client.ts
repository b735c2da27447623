import { EventEmitter } from 'node:events'
import { Cluster, type PlacedKey } from './cluster.js'
import type { Command, RetryTarget } from './command.js'
import { commandChannel, serverDownChannel, serverUpChannel } from './diagnostics.js'
import {
  CasConflictError,
  ClientClosedError,
  type ConnectionError,
  DecodeError,
  InvalidArgumentError,
  InvalidValueError,
  LoadTimeoutError,
  type MemkitError,
  PartialReadError,
  ServerFailureError,
  UnsafeIntegerError,
  ValueTooLargeError,
} from './errors.js'
import { Generation, type GenerationBackend, toCopy } from './generation.js'
import { KeyCodec } from './keys.js'
import { acquireLock, type Lock, type LockBackend, type LockOptions } from './lock.js'
import type { MemkitClient } from './memkit-client.js'
import { type ClientConfig, type ClientOptions, parseClientOptions } from './options.js'
import { AsciiAuthCommand } from './protocol/ascii-auth.js'
import { BinaryProtocol, BinaryTarget } from './protocol/binary.js'
import { ClassicProtocol } from './protocol/classic.js'
import type { ItemDecoder } from './protocol/item-decoder.js'
import { MemoryProtocol, memoryStore } from './protocol/memory.js'
import { MetaProtocol } from './protocol/meta.js'
import type { Dispatch, Protocol, StoreMode } from './protocol/protocol.js'
import { MetaNoopCommand, VersionCommand } from './protocol/text-commands.js'
import { UndecodableError, ValueCodec } from './serializer.js'
import { ServerNode } from './server-node.js'
import { SingleFlight } from './single-flight.js'
import { downStats, type ServerStats, summarizeStats } from './stats.js'
import { toExptime } from './ttl.js'

/** memcached's per-item header: 59 bytes with a CAS id, plus 4 when the flags are non-zero. */
const ITEM_OVERHEAD = 59
const MAX_UINT64 = (1n << 64n) - 1n

export interface SetOptions {
  /** Seconds; 0 = no expiry; fractions round up; over 30 days is sent as an absolute time. Default: the client's `defaultTtl`. */
  ttl?: number
}

export interface CounterOptions {
  /** Create a missing counter with this value (the delta is not applied to it). Without it, a missing counter stays missing. */
  initial?: number | bigint
  /** TTL in seconds for a counter created from `initial`. Default: the client's `defaultTtl`. */
  ttl?: number
}

export interface UpdateOptions extends SetOptions {
  /** Attempts before giving up with ERR_MEMKIT_CAS_CONFLICT. Default `10`. */
  retries?: number
}

export interface RememberOptions {
  /**
   * Milliseconds to wait for the loader before every caller sharing the load fails with
   * LoadTimeoutError (ERR_MEMKIT_LOAD_TIMEOUT); the next call then loads again, and the late
   * result is not cached. `Infinity` waits for ever. Default `10000`.
   */
  loadTimeout?: number
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
    const perNode = new Map<ServerNode, ReturnType<KeyCodec['encode']>[]>()
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
        `getMany could not read ${failed.size} of ${seen.size} keys: ${[...new Set([...failed.values()].map((e) => e.message))].join('; ')}`,
        into as Map<string, T>,
        failed,
      )
    }
    return into as Map<string, T>
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
  async getAndTouch<T = unknown>(key: string, ttl: number): Promise<T | undefined> {
    return (await this.getsAndTouch<T>(key, ttl))?.value
  }

  /**
   * Reads the value with its CAS token (for `cas()`) and gives it a new TTL (seconds), in one
   * command on meta (`mg <key> v f c T<ttl>`) and binary (GAT); on classic, `touch` and `gets`
   * pipelined in one round trip (not atomic).
   */
  getsAndTouch<T = unknown>(key: string, ttl: number): Promise<{ value: T; cas: string } | undefined> {
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
    return this.#store('set', key, value, options?.ttl)
  }

  /** Stores only if the key is missing; false when it exists. */
  add(key: string, value: unknown, options?: SetOptions): Promise<boolean> {
    return this.#store('add', key, value, options?.ttl)
  }

  /** Stores only if the key exists; false when it is missing. */
  replace(key: string, value: unknown, options?: SetOptions): Promise<boolean> {
    return this.#store('replace', key, value, options?.ttl)
  }

  /** Stores only if the item is unchanged since `gets` returned `cas`; false on conflict or when missing. */
  cas(key: string, value: unknown, cas: string, options?: SetOptions): Promise<boolean> {
    if (typeof cas !== 'string' || !/^\d+$/.test(cas)) {
      return Promise.reject(new InvalidArgumentError('cas must be the token string from gets()'))
    }
    return this.#store('cas', key, value, options?.ttl, cas)
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
  touch(key: string, ttl: number): Promise<boolean> {
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
    return this.#arith(key, false, delta, options, false).then(toSafeNumber)
  }

  /** Subtracts `delta` (memcached stops at 0). */
  decr(key: string, delta: number | bigint = 1, options?: CounterOptions): Promise<number | undefined> {
    return this.#arith(key, true, delta, options, false).then(toSafeNumber)
  }

  /** `incr` with exact 64-bit results as bigint. */
  incrBig(key: string, delta: number | bigint = 1n, options?: CounterOptions): Promise<bigint | undefined> {
    return this.#arith(key, false, delta, options, false).then((r) =>
      r === undefined ? undefined : BigInt(r.value),
    )
  }

  /** `decr` with exact 64-bit results as bigint. */
  decrBig(key: string, delta: number | bigint = 1n, options?: CounterOptions): Promise<bigint | undefined> {
    return this.#arith(key, true, delta, options, false).then((r) =>
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
    return this.#arith(key, false, delta, options, true).then((r) =>
      r === undefined ? undefined : { value: toSafeNumber(r)!, ttl: r.ttl },
    )
  }

  /** `decr` that also returns the remaining TTL (seconds, -1 = never). */
  decrWithTtl(
    key: string,
    delta: number | bigint = 1,
    options?: CounterOptions,
  ): Promise<{ value: number; ttl: number } | undefined> {
    return this.#arith(key, true, delta, options, true).then((r) =>
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
    const attempts = options?.retries ?? 10
    if (!Number.isInteger(attempts) || attempts < 1)
      throw new InvalidArgumentError('update retries must be an integer >= 1')
    for (let attempt = 0; attempt < attempts; attempt++) {
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
   * Cache-aside: the cached value, or `loader()`'s result stored for `ttl` seconds. Concurrent
   * callers for one key in this process share one load. If memcached fails, the loader still
   * runs (the failure is emitted as 'error'); a loader error is passed to every caller and
   * nothing is cached. An undefined result is returned but not cached. A loader that does not
   * settle within `loadTimeout` ms (default 10000) fails every waiting caller with
   * LoadTimeoutError, and the next call loads again.
   */
  remember<T>(key: string, ttl: number, loader: () => T | Promise<T>, options?: RememberOptions): Promise<T> {
    const loadTimeout = options?.loadTimeout ?? 10_000
    if (typeof loadTimeout !== 'number' || !(loadTimeout > 0)) {
      return Promise.reject(
        new InvalidArgumentError(
          `remember loadTimeout must be a positive number of milliseconds (or Infinity); got ${String(loadTimeout)}`,
        ),
      )
    }
    return this.#loads.run(key, () => {
      const load = { abandoned: false }
      const work = this.#load(key, ttl, loader, load)
      if (loadTimeout === Number.POSITIVE_INFINITY) return work
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          load.abandoned = true
          reject(
            new LoadTimeoutError(
              `remember(${JSON.stringify(key)}): the loader did not settle within ${loadTimeout} ms (loadTimeout); the next call loads again`,
            ),
          )
        }, loadTimeout)
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
    }) as Promise<T>
  }

  async #load<T>(
    key: string,
    ttl: number,
    loader: () => T | Promise<T>,
    load: { abandoned: boolean },
  ): Promise<unknown> {
    let cached: unknown
    try {
      cached = await this.get(key)
    } catch (error) {
      if (!(error instanceof ServerFailureError || error instanceof DecodeError)) throw error
      this.#emitError(error)
    }
    if (cached !== undefined) return cached
    const value = await loader()
    // Given up on: a newer load may have stored a fresher value already.
    if (value !== undefined && !load.abandoned) {
      try {
        await this.set(key, value, { ttl })
      } catch (error) {
        if (!(error instanceof ServerFailureError || error instanceof ValueTooLargeError)) throw error
        this.#emitError(error)
      }
    }
    return value
  }

  /**
   * The replicated generation counter stored under `key` (one object per key and client). Used
   * for state that other keys depend on (a namespace, a tag), so that no single server's loss,
   * eviction or older copy can move it backwards; see `Generation`. `replicas` (default 3, at
   * most the number of servers) copies are kept, each on a different server. The first copy is
   * `key` itself, the others `key#<n>`.
   */
  generation(key: string, options?: { replicas?: number }): Generation {
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
    ttl: number | undefined,
    cas?: string,
  ): Promise<boolean> {
    try {
      const encoded = this.#keys.encode(key)
      const exptime = this.#exptimeFor(encoded, ttl ?? this.config.defaultTtl)
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
  ) {
    try {
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
  #exptimeFor(key: PlacedKey, ttl: number): number {
    const exptime = toExptime(ttl)
    if (!this.#cluster.degraded || this.#cluster.homeOf(key)?.up !== false) return exptime
    const cap = this.config.failoverTtl
    return toExptime(ttl === 0 ? cap : Math.min(ttl, cap))
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
