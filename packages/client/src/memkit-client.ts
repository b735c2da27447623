import type { Generation } from './generation.js'
import type { Lock, LockOptions } from './lock.js'
import type { ClientConfig } from './options.js'
import type { ServerStats } from './stats.js'
import type {
  ClientEvents,
  CounterOptions,
  RememberOptions,
  SetManyEntries,
  SetOptions,
  UpdateOptions,
} from './types.js'

/**
 * What middleware needs from a client: implemented by `MemcachedClient` (createClient) and by
 * the migration client (createFallbackClient). Type middleware options with this.
 */
export interface MemkitClient {
  /** The validated options (for a fallback client: the new pool's). */
  readonly config: ClientConfig
  get<T = unknown>(key: string): Promise<T | undefined>
  getMany<T = unknown>(keys: Iterable<string>): Promise<Map<string, T>>
  gets<T = unknown>(key: string): Promise<{ value: T; cas: string } | undefined>
  getAndTouch<T = unknown>(key: string, ttl: number | string): Promise<T | undefined>
  getsAndTouch<T = unknown>(key: string, ttl: number | string): Promise<{ value: T; cas: string } | undefined>
  set(key: string, value: unknown, options?: SetOptions): Promise<boolean>
  add(key: string, value: unknown, options?: SetOptions): Promise<boolean>
  replace(key: string, value: unknown, options?: SetOptions): Promise<boolean>
  cas(key: string, value: unknown, cas: string, options?: SetOptions): Promise<boolean>
  append(key: string, value: string | Buffer): Promise<boolean>
  prepend(key: string, value: string | Buffer): Promise<boolean>
  delete(key: string): Promise<boolean>
  /** Stores many values, pipelined per server; PartialWriteError names the keys not written. */
  setMany(entries: SetManyEntries, options?: SetOptions): Promise<void>
  /** Deletes many keys, pipelined per server; resolves with how many existed. */
  deleteMany(keys: Iterable<string>): Promise<number>
  /** Marks a key stale (meta `md I`; deletes it on other transports). */
  invalidate(key: string): Promise<boolean>
  deleteIfUnchanged(key: string, cas: string): Promise<boolean>
  touch(key: string, ttl: number | string): Promise<boolean>
  incr(key: string, delta?: number | bigint, options?: CounterOptions): Promise<number | undefined>
  decr(key: string, delta?: number | bigint, options?: CounterOptions): Promise<number | undefined>
  incrBig(key: string, delta?: number | bigint, options?: CounterOptions): Promise<bigint | undefined>
  decrBig(key: string, delta?: number | bigint, options?: CounterOptions): Promise<bigint | undefined>
  incrWithTtl(
    key: string,
    delta?: number | bigint,
    options?: CounterOptions,
  ): Promise<{ value: number; ttl: number } | undefined>
  decrWithTtl(
    key: string,
    delta?: number | bigint,
    options?: CounterOptions,
  ): Promise<{ value: number; ttl: number } | undefined>
  update<T>(
    key: string,
    fn: (current: T | undefined) => T | undefined | Promise<T | undefined>,
    options?: UpdateOptions,
  ): Promise<T | undefined>
  lock(name: string, options?: LockOptions): Promise<Lock>
  remember<T>(
    key: string,
    ttl: number | string,
    loader: () => T | Promise<T>,
    options?: RememberOptions,
  ): Promise<T>
  /** The replicated generation counter under `key` (see `Generation`). */
  generation(key: string, options?: { replicas?: number }): Generation
  maxValueSize(key: string, flags?: number): number
  serverFor(key: string): string
  stats(): Promise<ServerStats[]>
  flush(): Promise<void>
  close(): Promise<void>
  /** True once close() was called. */
  readonly closed: boolean
  on<E extends keyof ClientEvents>(event: E, listener: (...args: ClientEvents[E]) => void): this
  off<E extends keyof ClientEvents>(event: E, listener: (...args: ClientEvents[E]) => void): this
}
