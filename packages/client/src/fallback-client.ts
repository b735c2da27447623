import { EventEmitter } from 'node:events'
import type { MemcachedClient } from './client.js'
import { InvalidOptionError, ServerFailureError } from './errors.js'
import type { Generation } from './generation.js'
import type { Lock, LockOptions } from './lock.js'
import type { MemkitClient } from './memkit-client.js'
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

export interface FallbackOptions {
  /**
   * Treat failures of the old pools as misses (reported as 'error' events), so they can be
   * switched off before this client is replaced. Default `true`.
   */
  ignoreErrors?: boolean
}

/**
 * Moves an application to a new memcached pool without a cold cache (the pattern of
 * pymemcache's FallbackClient). Reads try the new pool first, then each old pool on a miss;
 * writes go to the new pool only. Deletes also reach the old pools, so a value deleted
 * during the migration cannot come back from an old pool on the next read. CAS tokens,
 * counters, locks and `update` work on the new pool only; `remember` stores what it finds in
 * an old pool into the new one.
 */
export class FallbackClient extends EventEmitter<ClientEvents> implements MemkitClient {
  readonly #primary: MemcachedClient
  readonly #fallbacks: readonly MemcachedClient[]
  readonly #ignoreErrors: boolean

  constructor(clients: readonly MemcachedClient[], options: FallbackOptions = {}) {
    super()
    if (clients.length < 2)
      throw new InvalidOptionError('createFallbackClient needs [newClient, ...oldClients]')
    this.#primary = clients[0]!
    this.#fallbacks = clients.slice(1)
    if (typeof options !== 'object' || options === null) {
      throw new InvalidOptionError(
        'createFallbackClient(clients, options): options must be an object such as { ignoreErrors: true }',
      )
    }
    for (const name in options) {
      if (name !== 'ignoreErrors')
        throw new InvalidOptionError(
          `createFallbackClient: unknown option \`${name}\`; it takes { ignoreErrors }`,
        )
    }
    if (options.ignoreErrors !== undefined && typeof options.ignoreErrors !== 'boolean')
      throw new InvalidOptionError('createFallbackClient: `ignoreErrors` must be true or false')
    this.#ignoreErrors = options.ignoreErrors ?? true
    this.#primary.on('server:down', (event) => this.emit('server:down', event))
    this.#primary.on('server:up', (event) => this.emit('server:up', event))
  }

  get config(): ClientConfig {
    return this.#primary.config
  }

  /** The wrapped clients, new first (metrics collectors use it to attribute events). */
  get innerClients(): readonly MemcachedClient[] {
    return [this.#primary, ...this.#fallbacks]
  }

  async get<T = unknown>(key: string): Promise<T | undefined> {
    const value = await this.#primary.get<T>(key)
    if (value !== undefined) return value
    for (const old of this.#fallbacks) {
      const found = await this.#fromOld(() => old.get<T>(key))
      if (found !== undefined) return found
    }
    return undefined
  }

  async getMany<T = unknown>(keys: Iterable<string>): Promise<Map<string, T>> {
    const wanted = [...new Set(keys)]
    const found = await this.#primary.getMany<T>(wanted)
    for (const old of this.#fallbacks) {
      const missing = wanted.filter((key) => !found.has(key))
      if (missing.length === 0) break
      const more = await this.#fromOld(() => old.getMany<T>(missing))
      for (const [key, value] of more ?? []) found.set(key, value)
    }
    return found
  }

  /** CAS tokens are per server: only the new pool's items can take part in a CAS. */
  gets<T = unknown>(key: string): Promise<{ value: T; cas: string } | undefined> {
    return this.#primary.gets<T>(key)
  }

  /** CAS tokens are per server: only the new pool's items can take part in a CAS. */
  getsAndTouch<T = unknown>(
    key: string,
    ttl: number | string,
  ): Promise<{ value: T; cas: string } | undefined> {
    return this.#primary.getsAndTouch<T>(key, ttl)
  }

  async getAndTouch<T = unknown>(key: string, ttl: number | string): Promise<T | undefined> {
    const value = await this.#primary.getAndTouch<T>(key, ttl)
    if (value !== undefined) return value
    for (const old of this.#fallbacks) {
      const found = await this.#fromOld(() => old.getAndTouch<T>(key, ttl))
      if (found !== undefined) return found
    }
    return undefined
  }

  set(key: string, value: unknown, options?: SetOptions): Promise<boolean> {
    return this.#primary.set(key, value, options)
  }
  add(key: string, value: unknown, options?: SetOptions): Promise<boolean> {
    return this.#primary.add(key, value, options)
  }
  replace(key: string, value: unknown, options?: SetOptions): Promise<boolean> {
    return this.#primary.replace(key, value, options)
  }
  cas(key: string, value: unknown, cas: string, options?: SetOptions): Promise<boolean> {
    return this.#primary.cas(key, value, cas, options)
  }
  append(key: string, value: string | Buffer): Promise<boolean> {
    return this.#primary.append(key, value)
  }
  prepend(key: string, value: string | Buffer): Promise<boolean> {
    return this.#primary.prepend(key, value)
  }

  /** Deletes everywhere, so the old pools cannot serve the value again. */
  async delete(key: string): Promise<boolean> {
    const [deleted, ...old] = await Promise.all([
      this.#primary.delete(key),
      ...this.#fallbacks.map((client) => this.#fromOld(() => client.delete(key))),
    ])
    return deleted || old.some(Boolean)
  }

  setMany(entries: SetManyEntries, options?: SetOptions): Promise<void> {
    return this.#primary.setMany(entries, options)
  }

  /** Deletes everywhere, so the old pools cannot serve the values again; counts the new pool's. */
  async deleteMany(keys: Iterable<string>): Promise<number> {
    const list = [...keys]
    const [deleted] = await Promise.all([
      this.#primary.deleteMany(list),
      ...this.#fallbacks.map((client) => this.#fromOld(() => client.deleteMany(list))),
    ])
    return deleted
  }

  /** Marks the key stale in the new pool and deletes it from the old ones (which must not serve it). */
  async invalidate(key: string): Promise<boolean> {
    const [marked] = await Promise.all([
      this.#primary.invalidate(key),
      ...this.#fallbacks.map((client) => this.#fromOld(() => client.delete(key))),
    ])
    return marked
  }

  deleteIfUnchanged(key: string, cas: string): Promise<boolean> {
    return this.#primary.deleteIfUnchanged(key, cas)
  }

  async touch(key: string, ttl: number | string): Promise<boolean> {
    if (await this.#primary.touch(key, ttl)) return true
    for (const old of this.#fallbacks) if (await this.#fromOld(() => old.touch(key, ttl))) return true
    return false
  }

  incr(key: string, delta?: number | bigint, options?: CounterOptions): Promise<number | undefined> {
    return this.#primary.incr(key, delta, options)
  }
  decr(key: string, delta?: number | bigint, options?: CounterOptions): Promise<number | undefined> {
    return this.#primary.decr(key, delta, options)
  }
  incrBig(key: string, delta?: number | bigint, options?: CounterOptions): Promise<bigint | undefined> {
    return this.#primary.incrBig(key, delta, options)
  }
  decrBig(key: string, delta?: number | bigint, options?: CounterOptions): Promise<bigint | undefined> {
    return this.#primary.decrBig(key, delta, options)
  }
  incrWithTtl(key: string, delta?: number | bigint, options?: CounterOptions) {
    return this.#primary.incrWithTtl(key, delta, options)
  }
  decrWithTtl(key: string, delta?: number | bigint, options?: CounterOptions) {
    return this.#primary.decrWithTtl(key, delta, options)
  }
  update<T>(
    key: string,
    fn: (current: T | undefined) => T | undefined | Promise<T | undefined>,
    options?: UpdateOptions,
  ): Promise<T | undefined> {
    return this.#primary.update(key, fn, options)
  }
  lock(name: string, options?: LockOptions): Promise<Lock> {
    return this.#primary.lock(name, options)
  }

  /** Cache-aside on the new pool; a value found in an old pool is copied into the new one. */
  remember<T>(
    key: string,
    ttl: number | string,
    loader: () => T | Promise<T>,
    options?: RememberOptions,
  ): Promise<T> {
    return this.#primary.remember(
      key,
      ttl,
      async () => {
        for (const old of this.#fallbacks) {
          const found = await this.#fromOld(() => old.get<T>(key))
          if (found !== undefined) return found
        }
        return loader()
      },
      options,
    )
  }

  /** Generations live in the new pool only (the old one is being retired). */
  generation(key: string, options?: { replicas?: number }): Generation {
    return this.#primary.generation(key, options)
  }

  maxValueSize(key: string, flags?: number): number {
    return this.#primary.maxValueSize(key, flags)
  }
  serverFor(key: string): string {
    return this.#primary.serverFor(key)
  }
  /** The new pool's servers, then the old pools'. */
  async stats(): Promise<ServerStats[]> {
    const all = await Promise.all([this.#primary, ...this.#fallbacks].map((client) => client.stats()))
    return all.flat()
  }
  /** Flushes the new pool only (writes never go to the old ones). */
  flush(): Promise<void> {
    return this.#primary.flush()
  }
  async close(): Promise<void> {
    await Promise.all([this.#primary, ...this.#fallbacks].map((client) => client.close()))
  }
  get closed(): boolean {
    return this.#primary.closed
  }

  async #fromOld<R>(read: () => Promise<R>): Promise<R | undefined> {
    try {
      return await read()
    } catch (error) {
      if (!this.#ignoreErrors || !(error instanceof ServerFailureError)) throw error
      if (this.listenerCount('error') > 0) this.emit('error', error)
      return undefined
    }
  }
}

/** `createFallbackClient([newClient, oldClient], { ignoreErrors })`: see FallbackClient. */
export function createFallbackClient(
  clients: readonly MemcachedClient[],
  options?: FallbackOptions,
): FallbackClient {
  return new FallbackClient(clients, options)
}
