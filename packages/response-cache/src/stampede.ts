// Stampede control: one handler call per key. In a process, concurrent misses of a key share the
// first request's fill (a `Flight`); across processes, the filler holds a lease taken with
// memcached `add`, and the others serve stale or wait for the entry to appear. A stale entry is
// refreshed in the background by one request at a time, under a refresh lease.
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { MemkitClient } from '@memkit/client'
import { CONDITIONAL_HEADERS } from './conditional.js'
import type { Entry } from './entry.js'
import { type KeySpace, varyValuesOf } from './key.js'
import type { Metrics } from './metrics.js'
import type { CacheConfig } from './options.js'
import { isFresh } from './policy.js'
import { REFRESH_HEADER } from './request.js'
import type { Storage } from './storage.js'
import type { Flight, Transaction } from './transaction.js'
import type { RequestHeaders } from './types.js'

/** A fill or refresh lease held by this process. */
export interface Lease {
  readonly key: string
  readonly token: string
  readonly acquiredAt: number
  /** Seconds. */
  readonly ttl: number
}

export class Stampede {
  readonly #client: MemkitClient
  readonly #keys: KeySpace
  readonly #storage: Storage
  readonly #config: CacheConfig
  readonly #metrics: Metrics
  readonly #report: (error: unknown) => void
  readonly #flights = new Map<string, Flight>()
  readonly #refreshing = new Set<string>()

  constructor(
    client: MemkitClient,
    keys: KeySpace,
    storage: Storage,
    config: CacheConfig,
    metrics: Metrics,
    report: (error: unknown) => void,
  ) {
    this.#client = client
    this.#keys = keys
    this.#storage = storage
    this.#config = config
    this.#metrics = metrics
    this.#report = report
  }

  /** The memcached key a fill of this request writes: the URL's, or its variant's. */
  fillKey(tx: Transaction): string {
    const lookup = tx.lookup!
    if (!lookup.index) return lookup.urlKey
    const names = lookup.index.varyNames
    return this.#storage.placement(tx.rawKey, lookup, names, varyValuesOf(names, tx.req.headers)).key
  }

  /** The fill of `key` another request of this process is running, if any. */
  flightOf(key: string): Flight | undefined {
    return this.#flights.get(key)
  }

  /** What that fill produced, or undefined when it stored nothing or took longer than `lockWait`. */
  follow(flight: Flight): Promise<Entry | undefined> {
    return waitFor(flight.promise, this.#config.lockWait)
  }

  /**
   * Makes `tx` the filler of `key` in this process, then takes the cross-process lease:
   * 'leader' when this request fills, 'held' when another process holds the lease, 'failed' when
   * memcached failed (the request fills without a lease).
   */
  async lead(tx: Transaction, key: string): Promise<'leader' | 'held' | 'failed'> {
    const mine = newFlight()
    tx.flight = mine
    tx.flightKey = key
    this.#flights.set(key, mine)
    // A leader that never finishes must not hold its followers beyond the lease.
    mine.timer = setTimeout(() => this.settle(tx, undefined), this.#config.lockTtl * 1000)
    mine.timer.unref()
    let lease: Lease | undefined
    try {
      lease = await this.#acquire(this.#keys.lease(key))
    } catch (error) {
      this.#report(error)
      return 'failed'
    }
    if (!lease) return 'held'
    tx.lease = lease
    return 'leader'
  }

  /**
   * Polls (jittered, every `lockPollInterval` ms, for at most `lockWait` ms) until another
   * process's fill of `key` is stored and fresh; undefined when the lease goes away first.
   */
  async waitForFill(tx: Transaction, key: string): Promise<Entry | undefined> {
    const deadline = Date.now() + this.#config.lockWait
    const lease = this.#keys.lease(key)
    while (Date.now() < deadline) {
      const interval = this.#config.lockPollInterval
      await sleep(Math.min(interval * (0.5 + Math.random()), Math.max(1, deadline - Date.now())))
      const again = await this.#storage.lookup(tx.rawKey, tx.req.headers, tx.req.tags)
      if (again.failed) return undefined
      const entry = again.entry
      if (entry && isFresh(entry, Date.now())) {
        tx.lookup = again
        return entry
      }
      try {
        if ((await this.#client.get(lease)) === undefined) return undefined
      } catch (error) {
        this.#report(error)
        return undefined
      }
    }
    return undefined
  }

  /** Ends this request's in-process fill: its followers get `entry` (undefined: fill yourselves). */
  settle(tx: Transaction, entry: Entry | undefined): void {
    const flight = tx.flight
    if (!flight || flight.settled) return
    flight.resolve(entry)
    if (tx.flightKey !== undefined && this.#flights.get(tx.flightKey) === flight)
      this.#flights.delete(tx.flightKey)
  }

  /** Frees this request's cross-process lease; resolves once freed (failures are reported, never thrown). */
  release(tx: Transaction): Promise<void> {
    const lease = tx.lease
    if (!lease) return Promise.resolve()
    tx.lease = undefined
    return this.#free(lease).then(
      () => undefined,
      (error) => this.#report(error),
    )
  }

  /**
   * Starts one background refresh of a stale entry: a GET through the application (`refresh`)
   * with the request's headers and the refresh marker, unless one is already running for the
   * key, in this process or (lease) another.
   */
  refreshInBackground(
    tx: Transaction,
    entry: Entry,
    refresh: (headers: RequestHeaders) => Promise<void>,
    refreshToken: string,
  ): void {
    const key = this.fillKey(tx)
    if (this.#refreshing.has(key)) return
    this.#refreshing.add(key)
    const headers: RequestHeaders = {}
    for (const [name, value] of Object.entries(tx.req.headers)) {
      if ((CONDITIONAL_HEADERS as readonly string[]).includes(name)) continue
      if (name === this.#config.bypassHeader || name === 'content-length' || name === 'transfer-encoding')
        continue
      headers[name] = value
    }
    headers[REFRESH_HEADER] = refreshToken
    const label = tx.req.route ?? entry.route
    void (async () => {
      let lease: Lease | undefined
      try {
        lease = await this.#acquire(this.#keys.refreshLease(key))
      } catch (error) {
        this.#report(error)
        return
      }
      if (!lease) return
      this.#metrics.route(label).refreshes++
      try {
        await refresh(headers)
      } catch (error) {
        this.#report(error instanceof Error ? error : new Error(String(error)))
      } finally {
        await this.#free(lease).catch(this.#report)
      }
    })().finally(() => {
      this.#refreshing.delete(key)
    })
  }

  /** Takes a short lease with memcached `add`; undefined when someone else holds it. */
  async #acquire(key: string): Promise<Lease | undefined> {
    const token = randomBytes(12).toString('base64url')
    const acquiredAt = Date.now()
    const ttl = this.#config.lockTtl
    return (await this.#client.add(key, token, { ttl })) ? { key, token, acquiredAt, ttl } : undefined
  }

  /**
   * Frees a lease. Well inside its TTL nobody else can hold it, so a plain delete (one pipelined
   * command) is safe; near or past expiry it is removed only if it still carries our token.
   */
  #free(lease: Lease): Promise<unknown> {
    if (Date.now() - lease.acquiredAt < lease.ttl * 1000 - 1000) return this.#client.delete(lease.key)
    return this.#client
      .gets(lease.key)
      .then((item) =>
        item && Buffer.isBuffer(item.value) === false && String(item.value) === lease.token
          ? this.#client.deleteIfUnchanged(lease.key, item.cas)
          : false,
      )
  }
}

function newFlight(): Flight {
  let resolve!: (entry: Entry | undefined) => void
  const promise = new Promise<Entry | undefined>((r) => {
    resolve = r
  })
  const flight: Flight = {
    promise,
    settled: false,
    timer: undefined,
    resolve(entry) {
      if (flight.settled) return
      flight.settled = true
      if (flight.timer) clearTimeout(flight.timer)
      resolve(entry)
    },
  }
  return flight
}

async function waitFor<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
