import { randomBytes, timingSafeEqual } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { createClient, type MemkitClient } from '@memkit/client'
import { type Directives, listedFields, parseCacheControl } from './cache-control.js'
import { compress, decompress, isCompressible } from './compression.js'
import {
  type ClientConditions,
  CONDITIONAL_HEADERS,
  evaluatePreconditions,
  evaluateRange,
} from './conditional.js'
import { CorruptEntryError, type Entry } from './entry.js'
import {
  acceptedCodings,
  CLIENT_SPECIFIC,
  endToEnd,
  headerGet,
  headerSet,
  headerText,
  requestHeader,
  varyNames,
} from './headers.js'
import { formatHttpDate, parseHttpDate } from './http-date.js'
import { KeySpace, pathAndQuery, rawUrlKey, resolveSameOrigin, varyValuesOf } from './key.js'
import { Metrics, type MetricsSnapshot, type Outcome } from './metrics.js'
import { type CacheConfig, parseOptions, type ResponseCacheOptions } from './options.js'
import {
  currentAge,
  type Freshness,
  freshnessOf,
  hasValidator,
  type NotStoredReason,
  notStorableReason,
  remainingFreshness,
} from './policy.js'
import { type Lease, type Lookup, Storage } from './storage.js'
import type { CacheRequest, CapturedResponse, HeaderList, OutgoingResponse, RequestHeaders } from './types.js'

/** Header that marks the cache's own background refresh requests (carries a per-process secret). */
export const REFRESH_HEADER = 'x-memkit-cache-refresh'

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'SEARCH', 'REPORT'])
/** Fields a 304 must repeat from the 200 it stands for (RFC 9110 §15.4.5). */
const NOT_MODIFIED_FIELDS = new Set([
  'cache-control',
  'content-location',
  'date',
  'etag',
  'expires',
  'vary',
  'last-modified',
])
/** Fields a 304 must not overwrite in the stored response. */
const KEEP_ON_304 = new Set([
  'content-encoding',
  'content-length',
  'content-md5',
  'content-range',
  'etag',
  'set-cookie',
])

export type XCache = 'HIT' | 'MISS' | 'STALE' | 'BYPASS'

export interface BeginOptions {
  /** Sends a GET for this URL with `headers` through the framework (a background refresh). */
  refresh?: (headers: RequestHeaders) => Promise<void>
}

/** What the adapter does next. */
export type Begin =
  /** Send this response; the handler does not run. */
  | { type: 'respond'; response: OutgoingResponse }
  /** Run the handler, capture its response, and send what `finish()` returns. */
  | { type: 'forward'; tx: Transaction }
  /** Run the handler and send its response unchanged, with `statusHeaders(tx)`, then call `afterPass()`. */
  | { type: 'pass'; tx: Transaction }

interface Flight {
  promise: Promise<Entry | undefined>
  resolve(entry: Entry | undefined): void
  settled: boolean
  timer: NodeJS.Timeout | undefined
}

/** One request's passage through the cache. Opaque to adapters. */
export class Transaction {
  readonly req: CacheRequest
  readonly requestTime = Date.now()
  rawKey = ''
  lookup: Lookup | undefined
  /** The stored response being revalidated (or kept for stale-if-error). */
  stale: Entry | undefined
  /** Validators from `stale` were put on the request. */
  revalidating = false
  /** The client's own conditional and range headers, taken off the request. */
  conditions: ClientConditions = {}
  refresh = false
  authorization = false
  noStore = false
  xcache: XCache = 'MISS'
  /** Cache-Status parameters after the cache name. */
  cacheStatus = ''
  flight: Flight | undefined
  flightKey: string | undefined
  lease: Lease | undefined
  settled = false

  constructor(req: CacheRequest) {
    this.req = req
  }
}

export interface InvalidateOptions {
  /** Host name the URL was requested with (no port). Default: the URL's own host, else every host of `hosts`, else ''. */
  host?: string
}

/**
 * The framework-free cache: RFC 9111 policy, memcached storage, stampede control and metrics.
 * Adapters (`@memkit/response-cache/express`, `/fastify`) translate requests into calls of
 * `begin()`, `finish()` and `afterPass()`.
 */
export class ResponseCache extends EventEmitter<{ error: [Error] }> {
  readonly config: CacheConfig
  readonly metrics = new Metrics()
  readonly client: MemkitClient
  readonly #ownsClient: boolean
  readonly #keys: KeySpace
  readonly #storage: Storage
  readonly #refreshToken = randomBytes(24).toString('base64url')
  readonly #flights = new Map<string, Flight>()
  readonly #lookups = new Map<string, Promise<Lookup>>()
  readonly #refreshing = new Set<string>()

  constructor(options: ResponseCacheOptions | CacheConfig, extraKeys: readonly string[] = []) {
    super()
    this.config = isConfig(options) ? options : parseOptions(options, extraKeys)
    this.#ownsClient = this.config.client === undefined
    this.client = this.config.client ?? createClient({ servers: this.config.servers })
    this.#keys = new KeySpace(this.config.keyPrefix)
    this.#storage = new Storage(this.client, this.#keys, this.metrics, (error) => this.reportError(error))
  }

  /** [name, value] that marks a request as this cache's background refresh. */
  get refreshMarker(): [string, string] {
    return [REFRESH_HEADER, this.#refreshToken]
  }

  // ---- request start -------------------------------------------------------------------

  async begin(req: CacheRequest, options: BeginOptions = {}): Promise<Begin> {
    const tx = new Transaction(req)
    const headers = req.headers
    const marker = headers[REFRESH_HEADER]
    if (marker !== undefined) {
      delete headers[REFRESH_HEADER]
      tx.refresh = typeof marker === 'string' && safeEqual(marker, this.#refreshToken)
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      tx.xcache = 'BYPASS'
      tx.cacheStatus = 'fwd=method'
      return { type: 'pass', tx }
    }
    const bypass = this.#bypassReason(req)
    if (bypass !== undefined) {
      tx.xcache = 'BYPASS'
      tx.cacheStatus = `fwd=bypass; detail=${bypass}`
      return { type: 'pass', tx }
    }
    tx.authorization = headers.authorization !== undefined
    const requestCc = parseCacheControl(headers['cache-control'])
    tx.noStore = requestCc.has('no-store')
    tx.conditions = clientConditions(headers)
    tx.rawKey = rawUrlKey(req.host, req.url)
    const lookup = await this.#lookup(tx)
    tx.lookup = lookup
    const entry = lookup.entry
    const now = Date.now()

    if (tx.refresh) {
      tx.stale = entry
    } else if (entry) {
      const remaining = remainingFreshness(entry.freshness, entry.responseTime, now)
      if (remaining > 0) {
        tx.xcache = 'HIT'
        tx.cacheStatus = `hit; ttl=${Math.floor(remaining)}`
        const hit = await this.#respond(tx, entry, 'hit')
        if (hit) return hit
      } else if (options.refresh && entry.freshness.swr > 0 && -remaining <= entry.freshness.swr) {
        this.#refreshInBackground(tx, entry, options.refresh)
        tx.xcache = 'STALE'
        tx.cacheStatus = `hit; ttl=${Math.floor(remaining)}; detail=stale-while-revalidate`
        const stale = await this.#respond(tx, entry, 'stale')
        if (stale) return stale
      } else {
        tx.stale = entry
      }
      if (!tx.stale) lookup.miss = 'corrupt'
    }
    if (requestCc.has('only-if-cached') && !tx.refresh) {
      tx.xcache = 'MISS'
      tx.cacheStatus = 'fwd=request; detail=only-if-cached'
      this.#count(tx, 'miss')
      return { type: 'respond', response: this.#gatewayTimeout(tx) }
    }
    tx.cacheStatus = missStatus(tx.stale !== undefined, lookup)
    if (req.method === 'HEAD') {
      // HEAD is answered from the GET entry, never stored itself.
      tx.xcache = 'MISS'
      return { type: 'pass', tx }
    }
    if (lookup.failed) {
      // memcached is unavailable: straight to the handler, no lease, no store.
      this.#prepareRequest(tx)
      return { type: 'forward', tx }
    }
    if (!tx.refresh) {
      const collapsed = await this.#collapse(tx)
      if (collapsed) return collapsed
    }
    this.#prepareRequest(tx)
    return { type: 'forward', tx }
  }

  /**
   * In-process: concurrent misses of one key share the first request's handler call. Across
   * processes: the first takes a lease with memcached `add`; the others serve stale or wait.
   */
  async #collapse(tx: Transaction): Promise<Begin | undefined> {
    const key = this.#fillKey(tx)
    const flight = this.#flights.get(key)
    if (flight) {
      const shared = await waitFor(flight.promise, this.config.lockWait)
      // Collapsing shares one origin response; a no-cache response is never reused unvalidated.
      if (shared && !shared.freshness.noCache && this.#varyMatches(shared, tx.req.headers)) {
        return this.#respondCollapsed(tx, shared)
      }
      return undefined
    }
    const mine = newFlight()
    tx.flight = mine
    tx.flightKey = key
    this.#flights.set(key, mine)
    // A leader that never finishes must not hold its followers beyond the lease.
    mine.timer = setTimeout(() => this.#settleFlight(tx, undefined), this.config.lockTtl * 1000)
    mine.timer.unref()
    let lease: Lease | undefined
    try {
      lease = await this.#storage.acquireLease(this.#keys.lease(key), this.config.lockTtl)
    } catch (error) {
      this.reportError(error)
      return undefined
    }
    if (lease) {
      tx.lease = lease
      return undefined
    }
    // Another process is filling this key.
    if (tx.stale && !tx.stale.freshness.noStale && !tx.stale.freshness.noCache) {
      this.#settleFlight(tx, tx.stale)
      tx.xcache = 'STALE'
      const remaining = remainingFreshness(tx.stale.freshness, tx.stale.responseTime, Date.now())
      tx.cacheStatus = `hit; ttl=${Math.floor(remaining)}; detail=updating`
      return this.#respond(tx, tx.stale, 'stale')
    }
    const filled = await this.#waitForFill(tx, key)
    if (filled) {
      this.#settleFlight(tx, filled)
      return this.#respondCollapsed(tx, filled)
    }
    return undefined
  }

  async #waitForFill(tx: Transaction, key: string): Promise<Entry | undefined> {
    const deadline = Date.now() + this.config.lockWait
    const lease = this.#keys.lease(key)
    while (Date.now() < deadline) {
      const interval = this.config.lockPollInterval
      await sleep(Math.min(interval * (0.5 + Math.random()), Math.max(1, deadline - Date.now())))
      const again = await this.#storage.lookup(tx.rawKey, tx.req.headers, tx.req.tags)
      if (again.failed) return undefined
      const entry = again.entry
      if (entry && remainingFreshness(entry.freshness, entry.responseTime, Date.now()) > 0) {
        tx.lookup = again
        return entry
      }
      try {
        if (!(await this.#storage.leaseHeld(lease))) return undefined
      } catch (error) {
        this.reportError(error)
        return undefined
      }
    }
    return undefined
  }

  #respondCollapsed(tx: Transaction, entry: Entry): Promise<Begin | undefined> {
    const remaining = remainingFreshness(entry.freshness, entry.responseTime, Date.now())
    const fresh = remaining > 0
    tx.xcache = fresh ? 'HIT' : 'STALE'
    tx.cacheStatus = `hit; ttl=${Number.isFinite(remaining) ? Math.floor(remaining) : 0}; detail=collapsed`
    this.metrics.route(tx.req.route ?? entry.route).collapsed++
    return this.#respond(tx, entry, fresh ? 'hit' : 'stale')
  }

  /** The entry shaped for this request; undefined (counted as corrupt) when its body does not decode. */
  async #respond(tx: Transaction, entry: Entry, outcome: Outcome): Promise<Begin | undefined> {
    let response: OutgoingResponse
    try {
      response = await this.#fromEntry(tx, entry)
    } catch (error) {
      this.metrics.corrupt++
      this.reportError(new CorruptEntryError(`stored body does not decompress: ${(error as Error).message}`))
      return undefined
    }
    this.#count(tx, outcome, entry)
    return { type: 'respond', response }
  }

  // ---- request end ---------------------------------------------------------------------

  /**
   * Decides, once status and headers are known, whether the handler's response must be buffered
   * ('capture': it may be stored, or replaced by a stored one) or can stream through ('pass').
   * On 'pass' the adapter adds `statusHeaders(tx)` and calls nothing else.
   */
  precheck(tx: Transaction, status: number, headers: HeaderList): 'capture' | 'pass' {
    if (tx.settled) return 'pass'
    if (tx.revalidating && status === 304) return 'capture'
    if (status >= 500 && tx.stale && this.#staleIfErrorAllowed(tx.stale)) return 'capture'
    if (/^\s*text\/event-stream/i.test(headerText(headers, 'content-type') ?? '')) {
      this.abandon(tx, 'status')
      return 'pass'
    }
    const cc = parseCacheControl(headerGet(headers, 'cache-control'))
    const reason = this.#notStorable(tx, status, headers, cc, Date.now())
    if (reason !== undefined) {
      this.abandon(tx, reason)
      return 'pass'
    }
    return 'capture'
  }

  /** The handler's response is passing through unstored: release waiters and count why. */
  abandon(tx: Transaction, reason: NotStoredReason | 'aborted'): void {
    if (tx.settled) return
    tx.settled = true
    if (reason !== 'aborted') {
      tx.cacheStatus = withDetail(tx.cacheStatus, String(reason))
      this.metrics.notStored(tx.req.route, reason)
    }
    this.#count(tx, 'miss')
    this.#settleFlight(tx, undefined)
    this.#release(tx)
  }

  /** Turns the handler's (buffered) response into the response to send, storing it when allowed. */
  async finish(tx: Transaction, captured: CapturedResponse): Promise<OutgoingResponse> {
    tx.settled = true
    const now = Date.now()
    const label = tx.req.route
    let body = captured.body
    let incomplete = false
    const declared = headerText(captured.headers, 'content-length')
    if (declared !== undefined && /^\d+$/.test(declared.trim())) {
      // What the client would have read: a Content-Length shorter than the body frames it.
      const n = Number(declared)
      if (n < body.length) body = body.subarray(0, n)
      else if (n > body.length) incomplete = true
    }
    if (captured.status === 304 && tx.revalidating && tx.stale) {
      return this.#updateFrom304(tx, tx.stale, captured, now)
    }
    if (captured.status >= 500 && tx.stale && this.#staleIfErrorAllowed(tx.stale)) {
      this.#settleFlight(tx, undefined)
      this.#release(tx)
      tx.xcache = 'STALE'
      tx.cacheStatus = `fwd=stale; fwd-status=${captured.status}; detail=stale-if-error`
      this.#count(tx, 'stale', tx.stale)
      return this.#fromEntry(tx, tx.stale)
    }
    const cc = parseCacheControl(headerGet(captured.headers, 'cache-control'))
    let reason: NotStoredReason | 'unavailable' | undefined = incomplete
      ? 'incomplete'
      : this.#notStorable(tx, captured.status, captured.headers, cc, now)
    if (reason === undefined && body.length > this.config.maxBodySize) reason = 'too-large'
    if (reason === undefined && tx.lookup?.failed) reason = 'unavailable'
    let entry: Entry | undefined
    if (reason === undefined) {
      try {
        entry = await this.#buildEntry(tx, captured, body, cc, now)
      } catch (error) {
        this.reportError(error)
        reason = 'unavailable'
      }
    }
    if (!entry) {
      this.metrics.notStored(label, reason ?? 'unavailable')
      this.#count(tx, 'miss')
      this.#settleFlight(tx, undefined)
      this.#release(tx)
      tx.cacheStatus = withDetail(tx.cacheStatus, String(reason))
      return this.#passedThrough(tx, captured, body)
    }
    const placement = this.#storage.placement(tx.rawKey, tx.lookup!, entry.varyNames, entry.varyValues)
    const stored = { ...entry, rawKey: placement.rawKey }
    this.#settleFlight(tx, stored)
    // The write completes before the response goes out: the client's next request, on any
    // process, finds the entry and no lease.
    const result = await this.#persist(tx, placement, stored, now)
    tx.cacheStatus = storedParam(tx.cacheStatus, result)
    this.#count(tx, 'miss', stored)
    const out = await this.#fromEntry(tx, stored)
    // Fields kept out of the store (a qualified no-cache, a client's rate-limit quota) still
    // belong to this response.
    const unstored = new Set([...listedFields(cc, 'no-cache'), ...CLIENT_SPECIFIC])
    if (out.status !== 304) {
      for (const [name, value] of endToEnd(captured.headers)) {
        const lower = name.toLowerCase()
        if (unstored.has(lower) && headerGet(out.headers, lower) === undefined)
          out.headers.push([name, value])
      }
    }
    return out
  }

  /** Status headers to add to a response that passes through unchanged. */
  statusHeaders(tx: Transaction): HeaderList {
    if (!this.config.statusHeaders) return []
    return [
      ['X-Cache', tx.xcache],
      ['Cache-Status', `${this.config.cacheStatusName}; ${tx.cacheStatus}`],
    ]
  }

  /**
   * Called with the final status of a passed-through response: counts it and, after a
   * successful unsafe request, invalidates the URL and its Location / Content-Location.
   * Resolves once the invalidation was sent (it never rejects).
   */
  async afterPass(
    tx: Transaction,
    status: number,
    location?: string,
    contentLocation?: string,
  ): Promise<void> {
    if (!tx.settled) {
      tx.settled = true
      this.#count(tx, tx.xcache === 'BYPASS' ? 'bypass' : 'miss')
      this.#settleFlight(tx, undefined)
      this.#release(tx)
    }
    if (SAFE_METHODS.has(tx.req.method) || status < 200 || status >= 400) return
    const paths = new Set([pathAndQuery(tx.req.url)])
    for (const value of [location, contentLocation]) {
      if (!value) continue
      const path = resolveSameOrigin(value, tx.req.host, tx.req.url)
      if (path !== undefined) paths.add(path)
    }
    await Promise.all(
      [...paths].map((path) =>
        this.#storage.deleteUrl(rawUrlKey(tx.req.host, path)).catch((error) => this.reportError(error)),
      ),
    )
  }

  // ---- invalidation and introspection -----------------------------------------------------

  /** Every entry recorded under `tag` misses, on every process, from the next request on. */
  async invalidateTag(tag: string): Promise<void> {
    if (typeof tag !== 'string' || tag.length === 0) throw new TypeError('tag must be a non-empty string')
    await this.#storage.bumpTag(tag)
  }

  /**
   * Removes the stored response(s) of a URL: `invalidate('/products?page=2', { host: 'shop.example' })`
   * or `invalidate('https://shop.example/products')`. All variants go with it.
   */
  async invalidate(url: string, options: InvalidateOptions = {}): Promise<void> {
    if (typeof url !== 'string' || url.length === 0) throw new TypeError('url must be a non-empty string')
    let path = url
    let hosts: string[]
    if (!url.startsWith('/')) {
      const parsed = new URL(url)
      path = parsed.pathname + parsed.search
      hosts = [options.host ?? parsed.hostname]
    } else if (options.host !== undefined) {
      hosts = [options.host]
    } else {
      hosts = this.config.hosts?.filter((h) => !h.startsWith('*.')) ?? ['']
    }
    await Promise.all(hosts.map((host) => this.#storage.deleteUrl(rawUrlKey(host.toLowerCase(), path))))
  }

  metricsSnapshot(): MetricsSnapshot {
    return this.metrics.snapshot()
  }

  /** Closes the memcached client if the cache created it (from `servers`). */
  async close(): Promise<void> {
    if (this.#ownsClient) await this.client.close()
  }

  // ---- internals -------------------------------------------------------------------------

  #bypassReason(req: CacheRequest): string | undefined {
    const { config } = this
    if (config.bypassHeader) {
      const value = req.headers[config.bypassHeader]
      if (typeof value === 'string' && safeEqual(value, config.bypassSecret!)) return 'bypass-header'
    }
    if (config.hosts && !hostAllowed(config.hosts, req.host)) return 'host'
    if (req.headers.authorization !== undefined && !req.settings.shareAuthorization) return 'authorization'
    if (req.headers.cookie !== undefined && !req.settings.shareCookie) return 'cookie'
    return undefined
  }

  /** Concurrent lookups of one URL in this process share one memcached round trip. */
  #lookup(tx: Transaction): Promise<Lookup> {
    if (tx.refresh) return this.#storage.lookup(tx.rawKey, tx.req.headers, tx.req.tags)
    const key = `${tx.rawKey}\u0000${tx.req.tags.join('\u0000')}`
    const pending = this.#lookups.get(key)
    if (pending) {
      // A shared lookup is reused only when the URL does not vary (the common case).
      return pending.then((l) =>
        l.index ? this.#storage.lookup(tx.rawKey, tx.req.headers, tx.req.tags) : copyLookup(l),
      )
    }
    const p = this.#storage.lookup(tx.rawKey, tx.req.headers, tx.req.tags)
    this.#lookups.set(key, p)
    const clear = () => {
      this.#lookups.delete(key)
    }
    p.then(clear, clear)
    return p.then(copyLookup)
  }

  #fillKey(tx: Transaction): string {
    const lookup = tx.lookup!
    if (!lookup.index) return lookup.urlKey
    const placement = this.#storage.placement(
      tx.rawKey,
      lookup,
      lookup.index.varyNames,
      varyValuesOf(lookup.index.varyNames, tx.req.headers),
    )
    return placement.key
  }

  /** Takes the client's conditionals off the request and, when revalidating, puts the stored validators on. */
  #prepareRequest(tx: Transaction): void {
    const headers = tx.req.headers
    for (const name of CONDITIONAL_HEADERS) delete headers[name]
    const stale = tx.stale
    if (stale && hasValidator(stale.headers)) {
      const etag = headerText(stale.headers, 'etag')
      const lastModified = headerText(stale.headers, 'last-modified')
      if (etag !== undefined) headers['if-none-match'] = etag
      if (lastModified !== undefined) headers['if-modified-since'] = lastModified
      tx.revalidating = true
    }
  }

  #notStorable(
    tx: Transaction,
    status: number,
    headers: HeaderList,
    cc: Directives,
    now: number,
  ): NotStoredReason | undefined {
    const freshness = freshnessOf(status, headers, tx.requestTime, now, tx.req.settings, cc)
    return notStorableReason({
      status,
      headers,
      cc,
      freshness,
      authorization: tx.authorization,
      requestNoStore: tx.noStore,
      settings: tx.req.settings,
    })
  }

  async #buildEntry(
    tx: Transaction,
    captured: CapturedResponse,
    body: Buffer,
    cc: Directives,
    now: number,
  ): Promise<Entry> {
    const settings = tx.req.settings
    const freshness = freshnessOf(captured.status, captured.headers, tx.requestTime, now, settings, cc)
    const drop = new Set([...listedFields(cc, 'no-cache'), ...CLIENT_SPECIFIC])
    const headers = endToEnd(captured.headers, drop)
    this.#dropPreset(tx, headers)
    if (headerGet(headers, 'date') === undefined) headers.push(['Date', formatHttpDate(now)])
    const names = varyNames(headerGet(captured.headers, 'vary'))
    const values = varyValuesOf(names, tx.req.headers)
    let stored = body
    let encoding: 'gzip' | 'br' | undefined
    const compression = this.config.compression
    if (
      compression &&
      captured.status === 200 &&
      body.length >= compression.threshold &&
      headerGet(headers, 'content-encoding') === undefined &&
      isCompressible(headerText(headers, 'content-type'))
    ) {
      const packed = await compress(compression.algorithm, body)
      if (packed.length < body.length) {
        stored = packed
        encoding = compression.algorithm
        // What the client gets now depends on its Accept-Encoding.
        const vary = headerText(headers, 'vary')
        if (!vary || !varyNames(vary).includes('accept-encoding')) {
          headerSet(headers, 'Vary', vary ? `${vary}, Accept-Encoding` : 'Accept-Encoding')
        }
      }
    }
    const tags = tx.req.tags.length
      ? await this.#storage.generations(tx.req.tags, tx.lookup?.gens ?? new Map())
      : {}
    return {
      kind: 'entry',
      rawKey: tx.rawKey,
      status: captured.status,
      reason: captured.reason,
      headers,
      requestTime: tx.requestTime,
      responseTime: now,
      freshness,
      varyNames: names,
      varyValues: values,
      tags,
      route: tx.req.route,
      encoding,
      body: stored,
      size: stored.length,
      chunks: undefined,
    }
  }

  /** Stores an entry (never rejects) and releases the lease; resolves with what happened. */
  async #persist(
    tx: Transaction,
    placement: ReturnType<Storage['placement']>,
    entry: Entry,
    now: number,
  ): Promise<'stored' | 'too-large' | 'failed'> {
    const ttl = this.#storageTtl(entry, now)
    const label = tx.req.route
    let result: 'stored' | 'too-large' | 'failed'
    try {
      result = await this.#storage.write(
        placement,
        tx.lookup!.urlKey,
        entry,
        ttl,
        this.config.largeBodies === 'chunk',
      )
    } catch (error) {
      this.reportError(error)
      result = 'failed'
    }
    if (result === 'stored') this.metrics.route(label).stored++
    else this.metrics.notStored(label, result === 'too-large' ? 'too-large' : 'unavailable')
    this.#release(tx)
    return result
  }

  /** memcached TTL: the freshness left, plus how long a stale entry may still serve. */
  #storageTtl(entry: Entry, now: number): number {
    const f = entry.freshness
    const fresh = Math.max(0, remainingFreshness(f, entry.responseTime, now))
    const keep = Math.max(f.swr, f.sie, hasValidator(entry.headers) ? this.config.keepStale : 0)
    return Math.max(1, Math.min(Math.ceil(fresh + keep), this.config.maxTtl))
  }

  /** A 304 from the handler freshens the stored response with its headers (RFC 9111 §4.3.4). */
  async #updateFrom304(
    tx: Transaction,
    stale: Entry,
    captured: CapturedResponse,
    now: number,
  ): Promise<OutgoingResponse> {
    const headers: HeaderList = stale.headers.map(([n, v]) => [n, Array.isArray(v) ? [...v] : v])
    const update = endToEnd(captured.headers)
    this.#dropPreset(tx, update)
    for (const [name, value] of update) {
      if (KEEP_ON_304.has(name.toLowerCase()) || CLIENT_SPECIFIC.has(name.toLowerCase())) continue
      headerSet(headers, name, value)
    }
    if (headerGet(update, 'date') === undefined) headerSet(headers, 'Date', formatHttpDate(now))
    // Age of the 304 (if any) is what counts now; the stored Age was consumed at store time.
    const forFreshness: HeaderList = [...headers]
    const age304 = headerGet(captured.headers, 'age')
    if (age304 !== undefined) forFreshness.push(['Age', age304])
    const cc = parseCacheControl(headerGet(headers, 'cache-control'))
    const freshness: Freshness = freshnessOf(
      stale.status,
      forFreshness,
      tx.requestTime,
      now,
      tx.req.settings,
      cc,
    )
    const updated: Entry = { ...stale, headers, requestTime: tx.requestTime, responseTime: now, freshness }
    this.metrics.route(tx.req.route ?? stale.route).revalidated++
    const blocked =
      headerGet(captured.headers, 'set-cookie') !== undefined ||
      notStorableReason({
        status: stale.status,
        headers,
        cc,
        freshness,
        authorization: tx.authorization,
        requestNoStore: tx.noStore,
        settings: tx.req.settings,
      })
    tx.xcache = 'MISS'
    tx.cacheStatus = 'fwd=stale; fwd-status=304'
    if (blocked) {
      this.#settleFlight(tx, undefined)
      this.#release(tx)
      this.metrics.notStored(tx.req.route, typeof blocked === 'string' ? blocked : 'set-cookie')
      this.#count(tx, 'miss', stale)
      const out = await this.#fromEntry(tx, updated)
      // The 304's Set-Cookie goes to this client only.
      const cookie = headerGet(captured.headers, 'set-cookie')
      if (cookie !== undefined) out.headers.push(['Set-Cookie', cookie])
      return out
    }
    const placement = this.#storage.placement(tx.rawKey, tx.lookup!, stale.varyNames, stale.varyValues)
    this.#settleFlight(tx, updated)
    const result = await this.#persist(tx, placement, updated, now)
    tx.cacheStatus = storedParam(tx.cacheStatus, result)
    this.#count(tx, 'miss', updated)
    return this.#fromEntry(tx, updated)
  }

  #staleIfErrorAllowed(entry: Entry): boolean {
    const f = entry.freshness
    if (f.sie <= 0) return false
    const remaining = remainingFreshness(f, entry.responseTime, Date.now())
    // A never-fresh entry (no-cache or no lifetime) has no staleness to measure: sie forbids nothing then.
    return Number.isFinite(remaining) ? -remaining <= f.sie : false
  }

  /** A stored response shaped for this request: conditionals, ranges, HEAD, stored compression. */
  async #fromEntry(tx: Transaction, entry: Entry): Promise<OutgoingResponse> {
    const req = tx.req
    const now = Date.now()
    const headers: HeaderList = entry.headers.map(([n, v]) => [n, Array.isArray(v) ? [...v] : v])
    let body = entry.body
    let encoded = false
    if (entry.encoding) {
      const accepts = acceptedCodings(requestHeader(req.headers, 'accept-encoding')).includes(
        entry.encoding === 'br' ? 'br' : 'gzip',
      )
      if (accepts) {
        encoded = true
        headerSet(headers, 'Content-Encoding', entry.encoding)
        const etag = headerText(headers, 'etag')
        // The encoded bytes are a different representation: its strong validator would lie.
        if (etag?.startsWith('"')) headerSet(headers, 'ETag', `W/${etag}`)
      } else {
        body = await decompress(entry.encoding, body)
      }
    }
    const age = currentAge(entry.freshness, entry.responseTime, now)
    const status = entry.status
    const extra: HeaderList = Number.isFinite(age)
      ? [['Age', String(Math.floor(Math.min(age, 2147483648)))]]
      : []
    extra.push(...this.statusHeaders(tx))
    this.#addPreset(tx, headers)
    const conditions = tx.conditions
    if (status >= 200 && status < 300 && hasConditions(conditions)) {
      const etag = headerText(headers, 'etag')
      const lastModifiedText = headerText(headers, 'last-modified')
      const lastModified = parseHttpDate(lastModifiedText) ?? parseHttpDate(headerText(headers, 'date'))
      const precondition = evaluatePreconditions(conditions, etag, lastModified)
      if (precondition === 304) {
        const kept = headers.filter(([n]) => NOT_MODIFIED_FIELDS.has(n.toLowerCase()))
        return { status: 304, headers: [...kept, ...extra], body: undefined }
      }
      if (precondition === 412) {
        return { status: 412, headers: [['Content-Length', '0'], ...extra], body: Buffer.alloc(0) }
      }
      if (status === 200 && !encoded && req.method === 'GET') {
        const range = evaluateRange(conditions, body.length, etag, lastModifiedText)
        if (range.kind === 'partial') {
          headerSet(headers, 'Content-Range', `bytes ${range.start}-${range.end}/${body.length}`)
          const part = body.subarray(range.start, range.end + 1)
          headerSet(headers, 'Content-Length', String(part.length))
          return { status: 206, headers: [...headers, ...extra], body: part }
        }
        if (range.kind === 'unsatisfiable') {
          return {
            status: 416,
            headers: [['Content-Range', `bytes */${body.length}`], ['Content-Length', '0'], ...extra],
            body: Buffer.alloc(0),
          }
        }
      }
    }
    const bodiless = status === 204 || status === 304 || status < 200
    if (!bodiless) headerSet(headers, 'Content-Length', String(body.length))
    // HEAD keeps the body: Node and Fastify drop it on the wire and frame the response by it.
    return {
      status,
      reason: entry.reason,
      headers: [...headers, ...extra],
      body: bodiless ? undefined : body,
    }
  }

  /** The handler's response, not stored: end-to-end headers, corrected framing, status headers. */
  #passedThrough(tx: Transaction, captured: CapturedResponse, body: Buffer): OutgoingResponse {
    const headers = endToEnd(captured.headers)
    const bodiless = captured.status === 204 || captured.status === 304 || captured.status < 200
    if (!bodiless) headers.push(['Content-Length', String(body.length)])
    const age = headerGet(captured.headers, 'age')
    if (age !== undefined) headers.push(['Age', age])
    headers.push(...this.statusHeaders(tx))
    return { status: captured.status, reason: captured.reason, headers, body: bodiless ? undefined : body }
  }

  #gatewayTimeout(tx: Transaction): OutgoingResponse {
    return {
      status: 504,
      headers: [['Content-Length', '0'], ...this.statusHeaders(tx)],
      body: Buffer.alloc(0),
    }
  }

  /** Headers earlier middleware set for this request are theirs to set again, not the entry's. */
  #dropPreset(tx: Transaction, headers: HeaderList): void {
    const preset = tx.req.preset
    if (!preset || preset.size === 0) return
    for (let i = headers.length - 1; i >= 0; i--) {
      const [name, value] = headers[i]!
      if (preset.get(name.toLowerCase()) === (Array.isArray(value) ? value.join(', ') : value)) {
        headers.splice(i, 1)
      }
    }
  }

  #addPreset(tx: Transaction, headers: HeaderList): void {
    const preset = tx.req.preset
    if (!preset) return
    for (const [name, value] of preset)
      if (headerGet(headers, name) === undefined) headers.push([name, value])
  }

  #varyMatches(entry: Entry, headers: RequestHeaders): boolean {
    if (entry.varyNames.length === 0) return true
    const values = varyValuesOf(entry.varyNames, headers)
    return values.every((v, i) => v === entry.varyValues[i])
  }

  #refreshInBackground(
    tx: Transaction,
    entry: Entry,
    refresh: (headers: RequestHeaders) => Promise<void>,
  ): void {
    const key = this.#fillKey(tx)
    if (this.#refreshing.has(key)) return
    this.#refreshing.add(key)
    const headers: RequestHeaders = {}
    for (const [name, value] of Object.entries(tx.req.headers)) {
      if ((CONDITIONAL_HEADERS as readonly string[]).includes(name)) continue
      if (name === this.config.bypassHeader || name === 'content-length' || name === 'transfer-encoding')
        continue
      headers[name] = value
    }
    headers[REFRESH_HEADER] = this.#refreshToken
    const label = tx.req.route ?? entry.route
    void (async () => {
      let lease: Lease | undefined
      try {
        lease = await this.#storage.acquireLease(this.#keys.refreshLease(key), this.config.lockTtl)
      } catch (error) {
        this.reportError(error)
        return
      }
      if (!lease) return
      this.metrics.route(label).refreshes++
      try {
        await refresh(headers)
      } catch (error) {
        this.reportError(error instanceof Error ? error : new Error(String(error)))
      } finally {
        await this.#storage.releaseLease(lease).catch((error) => this.reportError(error))
      }
    })().finally(() => {
      this.#refreshing.delete(key)
    })
  }

  #settleFlight(tx: Transaction, entry: Entry | undefined): void {
    const flight = tx.flight
    if (!flight || flight.settled) return
    flight.resolve(entry)
    if (tx.flightKey !== undefined && this.#flights.get(tx.flightKey) === flight)
      this.#flights.delete(tx.flightKey)
  }

  #release(tx: Transaction): void {
    const lease = tx.lease
    if (!lease) return
    tx.lease = undefined
    this.#storage.releaseLease(lease).catch((error) => this.reportError(error))
  }

  #count(tx: Transaction, outcome: Outcome, entry?: Entry): void {
    this.metrics.outcome(tx.req.route ?? entry?.route, outcome)
  }

  /** Counts an absorbed failure and hands it to `onError` and 'error' listeners (never throws). */
  reportError(error: unknown): void {
    const err = error instanceof Error ? error : new Error(String(error))
    if (err.name !== 'CorruptEntryError') this.metrics.errors++
    try {
      this.config.onError?.(err)
    } catch {
      // a throwing onError must not break the request
    }
    if (this.listenerCount('error') > 0) this.emit('error', err)
  }
}

function isConfig(value: unknown): value is CacheConfig {
  return typeof value === 'object' && value !== null && 'route' in value && Object.isFrozen(value)
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

function copyLookup(l: Lookup): Lookup {
  return { ...l, gens: new Map(l.gens) }
}

function hostAllowed(hosts: readonly string[], host: string): boolean {
  for (const allowed of hosts) {
    if (allowed === host) return true
    if (allowed.startsWith('*.') && host.endsWith(allowed.slice(1)) && host.length > allowed.length - 1)
      return true
  }
  return false
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

function storedParam(status: string, result: 'stored' | 'too-large' | 'failed'): string {
  if (result === 'stored') return appendParam(status, 'stored')
  return withDetail(status, result === 'failed' ? 'unavailable' : result)
}

/** Cache-Status carries one `detail`: the first reason given wins. */
function withDetail(status: string, reason: string): string {
  return /(^|; )detail=/.test(status) ? status : appendParam(status, `detail=${reason}`)
}

function appendParam(status: string, param: string): string {
  return status ? `${status}; ${param}` : param
}

const CONDITION_FIELDS: Record<(typeof CONDITIONAL_HEADERS)[number], keyof ClientConditions> = {
  'if-match': 'ifMatch',
  'if-none-match': 'ifNoneMatch',
  'if-modified-since': 'ifModifiedSince',
  'if-unmodified-since': 'ifUnmodifiedSince',
  range: 'range',
  'if-range': 'ifRange',
}

function hasConditions(c: ClientConditions): boolean {
  for (const _ in c) return true
  return false
}

function clientConditions(headers: RequestHeaders): ClientConditions {
  const c: ClientConditions = {}
  for (const name of CONDITIONAL_HEADERS) {
    const v = requestHeader(headers, name)
    if (v !== undefined) c[CONDITION_FIELDS[name]] = v
  }
  return c
}

function missStatus(stale: boolean, lookup: Lookup): string {
  if (stale) return 'fwd=stale'
  switch (lookup.miss) {
    case 'vary-miss':
      return 'fwd=vary-miss'
    case 'corrupt':
    case 'invalidated':
    case 'unavailable':
      return `fwd=uri-miss; detail=${lookup.miss}`
    default:
      return 'fwd=uri-miss'
  }
}
