import type { Command } from '../command.js'
import type { EncodedKey } from '../keys.js'
import type { ItemDecoder } from './item-decoder.js'

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

/**
 * Sends a command to the server that owns the key (or to the given server) and resolves
 * with its result. `idempotent` commands may be retried on a fresh connection.
 */
export type Dispatch = <T>(command: Command<T>, idempotent: boolean) => Promise<T>

/**
 * A wire protocol. Every transport offers the same operations; where its commands cannot do
 * one in a single step, it composes several (and the README says so). `Target` is how it
 * reaches one server: a Dispatch for the text protocols, a memjs-backed target for binary.
 */
export interface Protocol<Target = Dispatch> {
  readonly name: 'meta' | 'classic' | 'binary' | 'memory'
  /** Whether keys with non-ASCII characters travel base64-encoded (meta `b` flag). */
  readonly base64Keys: boolean
  /** Whether deleteIfUnchanged is atomic on this transport (locks fall back to a release marker). */
  readonly conditionalDelete: boolean
  /** Whether a counter's remaining TTL can be read (incrWithTtl). */
  readonly remainingTtl: boolean
  get(send: Target, key: EncodedKey, decoder: ItemDecoder): Promise<unknown>
  gets(send: Target, key: EncodedKey, decoder: ItemDecoder): Promise<StoredItem | undefined>
  /** Reads the item and sets its exptime in one step; with its CAS token. */
  getAndTouch(
    send: Target,
    key: EncodedKey,
    exptime: number,
    decoder: ItemDecoder,
  ): Promise<StoredItem | undefined>
  /** Fetches keys that live on one server; hits are added to `into` under their caller-facing key. */
  getMany(send: Target, keys: EncodedKey[], decoder: ItemDecoder, into: Map<string, unknown>): Promise<void>
  store(
    send: Target,
    mode: StoreMode,
    key: EncodedKey,
    data: Buffer,
    flags: number,
    exptime: number,
    cas?: string,
  ): Promise<boolean>
  delete(send: Target, key: EncodedKey): Promise<boolean>
  /** Deletes only while the item's CAS is still `cas` (compare-and-delete). */
  deleteIfUnchanged(send: Target, key: EncodedKey, cas: string): Promise<boolean>
  touch(send: Target, key: EncodedKey, exptime: number): Promise<boolean>
  arith(send: Target, request: ArithRequest): Promise<ArithResult | undefined>
  version(send: Target): Promise<string>
  stats(send: Target, group?: string): Promise<Record<string, string>>
  flush(send: Target): Promise<void>
}
