// The seam between the client and the wire: one object per server that performs memcached's
// operations. The socket transports (meta and classic, in protocol/meta.ts and
// protocol/classic.ts), the binary transport through memjs (protocol/binary.ts) and the embedded
// `memory://` backend (protocol/memory.ts) implement it; the client picks the server for a key and
// calls its transport. Where a transport cannot do an operation in one step it composes several,
// and the client README says so.
import type { Command } from './command.js'
import { type MemkitError, NotSupportedError } from './errors.js'
import type { EncodedKey } from './keys.js'
import type { ItemDecoder } from './protocol/item-decoder.js'

export type StoreMode = 'set' | 'add' | 'replace' | 'append' | 'prepend' | 'cas'

export interface ArithRequest {
  key: EncodedKey
  decrement: boolean
  delta: bigint
  /** When set, a missing counter is created with this value (delta is not applied). */
  initial: bigint | undefined
  /** exptime for a counter created from `initial`. */
  exptime: number
  /** Also return the remaining TTL. */
  withTtl: boolean
}

export interface ArithResult {
  /** The counter's value after the operation, as decimal text (exact for any uint64). */
  value: string
  /** Remaining TTL in seconds, -1 when the counter never expires; only with `withTtl`. */
  ttl: number
}

export interface StoredItem {
  value: unknown
  cas: string
}

/** One item of a batched write (setMany). */
export interface BatchItem {
  readonly key: EncodedKey
  readonly data: Buffer
  readonly flags: number
  readonly exptime: number
}

/** What a lease read (`mg ... N R v f c t`) found. */
export interface LeaseItem {
  /** Whether a real value came back (not a miss, not an empty placeholder another caller vivified). */
  readonly hit: boolean
  readonly value: unknown
  readonly cas: string
  /** W: this caller won the right to (re)load the value. */
  readonly win: boolean
}

/** What a kind of transport can do, the same for all its servers. */
export interface TransportKind {
  readonly name: 'meta' | 'classic' | 'binary' | 'memory'
  /** Keys with non-ASCII characters travel base64-encoded (meta `b` flag). */
  readonly base64Keys: boolean
  /** deleteIfUnchanged is atomic (locks fall back to a release marker otherwise). */
  readonly conditionalDelete: boolean
  /** Cross-process leases (`leaseGet`): meta only. */
  readonly leases: boolean
}

/** One server, reached through one wire protocol. */
export interface Transport {
  readonly kind: TransportKind
  /** `"host:port"` of the server (or `memory://name`). */
  readonly label: string
  get(key: EncodedKey, decoder: ItemDecoder): Promise<unknown>
  gets(key: EncodedKey, decoder: ItemDecoder): Promise<StoredItem | undefined>
  /** Reads the item with its CAS token and sets its exptime in one step. */
  getAndTouch(key: EncodedKey, exptime: number, decoder: ItemDecoder): Promise<StoredItem | undefined>
  /** Fetches keys that live on this server; hits are added to `into` under their caller-facing key. */
  getMany(keys: EncodedKey[], decoder: ItemDecoder, into: Map<string, unknown>): Promise<void>
  store(
    mode: StoreMode,
    key: EncodedKey,
    data: Buffer,
    flags: number,
    exptime: number,
    cas?: string,
  ): Promise<boolean>
  /** Stores items in one pipelined batch; resolves with the indexes the server did not store. */
  storeMany(items: readonly BatchItem[]): Promise<number[]>
  delete(key: EncodedKey): Promise<boolean>
  /** Deletes keys in one pipelined batch; resolves with the indexes that were missing. */
  deleteMany(keys: readonly EncodedKey[]): Promise<number[]>
  /** Deletes only while the item's CAS is still `cas` (compare-and-delete). */
  deleteIfUnchanged(key: EncodedKey, cas: string): Promise<boolean>
  touch(key: EncodedKey, exptime: number): Promise<boolean>
  arith(request: ArithRequest): Promise<ArithResult | undefined>
  /** A lease read (`kind.leases` only). */
  leaseGet(key: EncodedKey, decoder: ItemDecoder, vivify: number, recache: number): Promise<LeaseItem>
  /** Marks the item stale (meta `md I`); transports without stale items delete it. */
  invalidate(key: EncodedKey): Promise<boolean>
  version(): Promise<string>
  stats(group?: string): Promise<Record<string, string>>
  flush(): Promise<void>
  /** Used while the server is marked down: resolves when it answers, after emptying it when `flush`. */
  probe(flush: boolean): Promise<void>
  /** Closes once what is in flight is answered. */
  close(): void
}

/**
 * Sends a command on a server's connections and resolves with its result. `idempotent` commands
 * may be retried on a fresh connection (transport/dispatch.ts).
 */
export type Dispatch = <T>(command: Command<T>, idempotent: boolean) => Promise<T>

/**
 * Sends commands on a fresh connection to a server marked down and resolves when all are
 * answered (a ServerNode's probe connection): how the socket transports probe.
 */
export type ProbeConnection = (commands: Command[]) => Promise<void>

/** The health a transport reports to, and consults before sending (a ServerNode). */
export interface ServerHealth {
  readonly label: string
  /** Why commands must fail at once (the server is marked down, the client closed), if they must. */
  unavailable(): MemkitError | undefined
  reportSuccess(): void
  reportFailure(error: MemkitError): void
}

/**
 * What transports without quiet batches, leases or stale items (classic, binary, memory://)
 * build from their other operations: one command per item, all in flight at once (pipelined,
 * about one round trip), and `invalidate` as a delete.
 */
export abstract class PlainTransport {
  abstract store(
    mode: StoreMode,
    key: EncodedKey,
    data: Buffer,
    flags: number,
    exptime: number,
  ): Promise<boolean>
  abstract delete(key: EncodedKey): Promise<boolean>
  /** The transport's name in messages. */
  protected abstract readonly what: string

  storeMany(items: readonly BatchItem[]): Promise<number[]> {
    return oneByOne(items, (item) => this.store('set', item.key, item.data, item.flags, item.exptime))
  }

  deleteMany(keys: readonly EncodedKey[]): Promise<number[]> {
    return oneByOne(keys, (key) => this.delete(key))
  }

  leaseGet(): Promise<LeaseItem> {
    return Promise.reject(new NotSupportedError(`${this.what} has no leases (mg N/R); use protocol 'meta'`))
  }

  /** No stale items here: the key is deleted. */
  invalidate(key: EncodedKey): Promise<boolean> {
    return this.delete(key)
  }
}

/** Runs operations one by one (pipelined); resolves with the indexes answered false. */
async function oneByOne<T>(items: readonly T[], send: (item: T) => Promise<boolean>): Promise<number[]> {
  const results = await Promise.allSettled(items.map(send))
  const refused: number[] = []
  for (const [index, result] of results.entries()) {
    if (result.status === 'rejected') throw result.reason
    if (!result.value) refused.push(index)
  }
  return refused
}
