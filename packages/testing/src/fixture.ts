// The set-up a test file needs around real memcached, in one call: start the servers, hand out
// clients, close everything (clients, apps, the servers) after the file's tests.
import { after } from 'node:test'
import { stopAll } from './cleanup.js'
import { type MemcachedOptions, type MemcachedServer, startMemcached } from './memcached-server.js'

/** Anything a test opens and must close: a client, an app, a listener. */
export interface Closable {
  close(): unknown
}

export interface MemcachedFixtureOptions {
  /** How many memcached processes to start. Default 1. */
  count?: number
  /** Options of every process (memory, item size, TLS...). */
  memcached?: MemcachedOptions
}

export interface ClientFixtureOptions<O, C extends Closable> extends MemcachedFixtureOptions {
  /**
   * Builds a client from `{ servers, ...options }`: `createClient` from `@memkit/client` (or from
   * the client's own sources in its tests). `servers` is the one address, or the list of them.
   */
  createClient: (options: O) => C
  /** Options of the file's client, `fixture.client`. */
  client?: Partial<NonNullable<O>>
}

export interface MemcachedFixture {
  /** The processes, in start order. */
  readonly servers: readonly MemcachedServer[]
  /** The first process. */
  readonly server: MemcachedServer
  /** Closes `thing` after the file's tests, before the servers stop (last registered, first closed). */
  closeAfter<T extends Closable>(thing: T): T
}

export interface ClientFixture<O, C extends Closable> extends MemcachedFixture {
  /** The file's client on every server, built on first use; closed after the file's tests. */
  readonly client: C
  /** Another client on every server, with these options; closed after the file's tests. */
  connect(options?: Partial<NonNullable<O>>): C
}

/**
 * Starts memcached for a test file and registers one `after` hook that closes what the file
 * opened through the fixture, then stops every server the file started (`stopAll`). Call it
 * at the top of the file, with top-level `await`, so the members are plain values the tests
 * read directly:
 *
 *     const { server, client } = await useMemcached({ createClient })
 *     const { servers } = await useMemcached({ count: 3, memcached: { memoryMb: 128 } })
 */
export function useMemcached(options?: MemcachedFixtureOptions): Promise<MemcachedFixture>
export function useMemcached<O, C extends Closable>(
  options: ClientFixtureOptions<O, C>,
): Promise<ClientFixture<O, C>>
export async function useMemcached<O, C extends Closable>(
  options: MemcachedFixtureOptions & Partial<ClientFixtureOptions<O, C>> = {},
): Promise<MemcachedFixture | ClientFixture<O, C>> {
  const opened: Closable[] = []
  after(async () => {
    for (const thing of opened.splice(0).reverse()) await thing.close()
    await stopAll()
  })
  const count = options.count ?? 1
  const servers = await Promise.all(Array.from({ length: count }, () => startMemcached(options.memcached)))
  const addresses = servers.map((s) => s.address)
  const closeAfter = <T extends Closable>(thing: T): T => {
    opened.push(thing)
    return thing
  }
  const base: MemcachedFixture = { servers, server: servers[0]!, closeAfter }
  const { createClient } = options
  if (createClient === undefined) return base

  const connect = (clientOptions?: Partial<NonNullable<O>>): C =>
    closeAfter(createClient({ servers: count === 1 ? addresses[0] : addresses, ...clientOptions } as O))
  let client: C | undefined
  return {
    ...base,
    get client(): C {
      client ??= connect(options.client)
      return client
    },
    connect,
  }
}

/** Runs `fn` with what `open` gives (an app, a client...) and closes it however `fn` ends. */
export async function withApp<T extends Closable, R>(
  open: T | Promise<T>,
  fn: (app: T) => R | Promise<R>,
): Promise<R> {
  const app = await open
  try {
    return await fn(app)
  } finally {
    await app.close()
  }
}

let unique = 0
/** A key prefix no other call in any test process returns: `<tag><pid>x<n>:`. */
export function uniquePrefix(tag = 't'): string {
  return `${tag}${process.pid}x${++unique}:`
}
