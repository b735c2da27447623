// The framework-free cache: the orchestration of one request's phases. The phases live in their
// own files: request.ts (may it use the cache, its key), lookup.ts (the stored response),
// respond.ts (a response from an entry), forward.ts (the request the handler sees on a miss),
// store.ts (what is stored), revalidation.ts (a 304 for a stale entry), stampede.ts (one fill
// per key), invalidation.ts (what unsafe requests and invalidate() remove), with the rules in
// policy.ts and memcached in storage.ts.
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { MemkitClient } from '@memkit/client'
import { resolveClient } from '@memkit/client/internal'
import { listedFields } from './cache-control.js'
import { missStatus, statusHeaders, storedParam, withDetail } from './cache-status.js'
import { CorruptEntryError, type Entry } from './entry.js'
import { prepareForward, restoreRequest } from './forward.js'
import { CLIENT_SPECIFIC, endToEnd, headerGet, headerText } from './headers.js'
import { invalidateAfterUnsafe, invalidateUrl } from './invalidation.js'
import { KeySpace, varyValuesOf } from './key.js'
import { SharedLookups } from './lookup.js'
import { Metrics, type MetricsSnapshot, type Outcome } from './metrics.js'
import { type CacheConfig, parseOptions, type ResponseCacheOptions } from './options.js'
import {
  controlOf,
  mayAnswer,
  mayServeWhileUpdating,
  type NotStoredReason,
  remainingFreshness,
  reuseOf,
  staleIfErrorAllowed,
} from './policy.js'
import { openTransaction, REFRESH_HEADER, SAFE_METHODS } from './request.js'
import { fromEntry, gatewayTimeout, passedThrough } from './respond.js'
import { freshenFrom304 } from './revalidation.js'
import { Stampede } from './stampede.js'
import { Storage } from './storage.js'
import { buildEntry, persist, whyNotStored } from './store.js'
import type { Begin, BeginOptions, CacheContext, Transaction } from './transaction.js'
import type { CacheRequest, CapturedResponse, HeaderList, OutgoingResponse, RequestHeaders } from './types.js'

export { Transaction } from './transaction.js'
export type { Begin, BeginOptions }
export { REFRESH_HEADER }

export interface InvalidateOptions {
  /**
   * Host the URL was requested with, with its port when it was not the default
   * (`'shop.example:8080'`). Default: the URL's own host, else every host of `hosts`, else ''.
   */
  host?: string
}

/**
 * The framework-free cache: RFC 9111 policy, memcached storage, stampede control and metrics.
 * Adapters (`@memkit/response-cache/express`, `/fastify`) translate requests into calls of
 * `begin()`, `precheck()`, `finish()`, `abandon()` and `afterPass()`.
 */
export class ResponseCache extends EventEmitter<{ error: [Error] }> {
  readonly config: CacheConfig
  readonly metrics = new Metrics()
  readonly client: MemkitClient
  readonly #ownsClient: boolean
  readonly #storage: Storage
  readonly #stampede: Stampede
  readonly #lookups: SharedLookups
  readonly #ctx: CacheContext
  readonly #refreshToken = randomBytes(24).toString('base64url')

  constructor(options: ResponseCacheOptions | CacheConfig, extraKeys: readonly string[] = []) {
    super()
    this.config = isConfig(options) ? options : parseOptions(options, extraKeys)
    const resolved = resolveClient(
      { client: this.config.client, servers: this.config.servers },
      'response cache',
    )
    this.#ownsClient = resolved.owned
    this.client = resolved.client
    const keys = new KeySpace(this.config.keyPrefix)
    const report = (error: unknown) => this.reportError(error)
    this.#storage = new Storage(this.client, keys, this.metrics, report)
    this.#stampede = new Stampede(this.client, keys, this.#storage, this.config, this.metrics, report)
    this.#lookups = new SharedLookups(this.#storage)
    this.#ctx = {
      config: this.config,
      storage: this.#storage,
      stampede: this.#stampede,
      metrics: this.metrics,
      report,
    }
  }

  /** [name, value] that marks a request as this cache's background refresh. */
  get refreshMarker(): [string, string] {
    return [REFRESH_HEADER, this.#refreshToken]
  }

  // ---- request start: request → key → lookup → respond from the entry, or forward --------

  async begin(req: CacheRequest, options: BeginOptions = {}): Promise<Begin> {
    const tx = openTransaction(req, this.config, this.#refreshToken)
    if (tx.xcache === 'BYPASS') return { type: 'pass', tx }
    const lookup = await this.#lookups.find(tx)
    tx.lookup = lookup
    if (lookup.entry && !mayAnswer(lookup.entry, req.headers)) {
      lookup.entry = undefined
      lookup.miss = 'vary-miss'
    }
    const entry = lookup.entry

    if (tx.refresh) {
      tx.stale = entry
    } else if (entry) {
      const reuse = reuseOf(entry, Date.now(), options.refresh !== undefined)
      if (reuse.kind === 'fresh') {
        tx.xcache = 'HIT'
        tx.cacheStatus = `hit; ttl=${Math.floor(reuse.remaining)}`
        const hit = await this.#respond(tx, entry, 'hit')
        if (hit) return hit
      } else if (reuse.kind === 'stale-while-revalidate') {
        this.#stampede.refreshInBackground(tx, entry, options.refresh!, this.#refreshToken)
        tx.xcache = 'STALE'
        tx.cacheStatus = `hit; ttl=${Math.floor(reuse.remaining)}; detail=stale-while-revalidate`
        const stale = await this.#respond(tx, entry, 'stale')
        if (stale) return stale
      } else {
        tx.stale = entry
      }
      if (!tx.stale) lookup.miss = 'corrupt'
    }
    if (tx.onlyIfCached && !tx.refresh) {
      tx.xcache = 'MISS'
      tx.cacheStatus = 'fwd=request; detail=only-if-cached'
      this.#count(tx, 'miss')
      return { type: 'respond', response: gatewayTimeout(this.config, tx) }
    }
    tx.cacheStatus = missStatus(tx.stale !== undefined, lookup)
    if (req.method === 'HEAD') {
      // HEAD is answered from the GET entry, never stored itself.
      tx.xcache = 'MISS'
      return { type: 'pass', tx }
    }
    // With memcached unavailable the request goes straight to the handler: no lease, no store.
    if (!lookup.failed && !tx.refresh) {
      const collapsed = await this.#collapse(tx)
      if (collapsed) return collapsed
    }
    prepareForward(tx)
    return { type: 'forward', tx }
  }

  /**
   * In-process: concurrent misses of one key share the first request's handler call. Across
   * processes: the first takes a lease; the others serve stale or wait for the fill.
   */
  async #collapse(tx: Transaction): Promise<Begin | undefined> {
    const stampede = this.#stampede
    const key = stampede.fillKey(tx)
    const flight = stampede.flightOf(key)
    if (flight) {
      const shared = await stampede.follow(flight)
      // Collapsing shares one origin response; a no-cache response is never reused unvalidated.
      if (shared && !shared.freshness.noCache && answers(shared, tx.req.headers)) {
        return this.#respondCollapsed(tx, shared)
      }
      return undefined
    }
    if ((await stampede.lead(tx, key)) !== 'held') return undefined
    // Another process is filling this key.
    if (tx.stale && mayServeWhileUpdating(tx.stale)) {
      stampede.settle(tx, tx.stale)
      tx.xcache = 'STALE'
      const remaining = remainingFreshness(tx.stale.freshness, tx.stale.responseTime, Date.now())
      tx.cacheStatus = `hit; ttl=${Math.floor(remaining)}; detail=updating`
      return this.#respond(tx, tx.stale, 'stale')
    }
    const filled = await stampede.waitForFill(tx, key)
    if (!filled || !answers(filled, tx.req.headers)) return undefined
    stampede.settle(tx, filled)
    return this.#respondCollapsed(tx, filled)
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
      response = await fromEntry(this.config, tx, entry)
    } catch (error) {
      this.metrics.corrupt++
      this.reportError(new CorruptEntryError(`stored body does not decompress: ${(error as Error).message}`))
      return undefined
    }
    this.#count(tx, outcome, entry)
    return { type: 'respond', response }
  }

  // ---- request end: store, or pass through ---------------------------------------------------

  /**
   * Decides, once status and headers are known, whether the handler's response must be buffered
   * ('capture': it may be stored, or replaced by a stored one) or can stream through ('pass').
   * On 'pass' the adapter adds `statusHeaders(tx)` and calls nothing else.
   */
  precheck(tx: Transaction, status: number, headers: HeaderList): 'capture' | 'pass' {
    if (tx.settled) return 'pass'
    if (tx.revalidating && status === 304) return 'capture'
    if (status >= 500 && tx.stale && staleIfErrorAllowed(tx.stale, Date.now())) return 'capture'
    if (/^\s*text\/event-stream/i.test(headerText(headers, 'content-type') ?? '')) {
      this.abandon(tx, 'status')
      return 'pass'
    }
    const control = controlOf(headers, this.config.targetedCacheControl)
    const reason = whyNotStored(tx, status, headers, control, Date.now())
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
    this.#stampede.settle(tx, undefined)
    void this.#stampede.release(tx)
  }

  /**
   * Takes the transaction back before the handler ran (another cache layer takes the request
   * over): the request is put back as it arrived, waiters and lease are released, nothing is
   * counted.
   */
  async withdraw(tx: Transaction): Promise<void> {
    restoreRequest(tx)
    if (tx.settled) return
    tx.settled = true
    this.#stampede.settle(tx, undefined)
    // Resolves once the lease is gone, so the layer taking over can take it itself.
    await this.#stampede.release(tx)
  }

  /** Turns the handler's (buffered) response into the response to send, storing it when allowed. */
  async finish(tx: Transaction, captured: CapturedResponse): Promise<OutgoingResponse> {
    if (tx.settled) {
      // The fill was abandoned (the client went away): nothing is stored, nothing counted twice.
      return passedThrough(this.config, tx, captured, captured.body)
    }
    tx.settled = true
    const now = Date.now()
    const label = tx.req.route
    let body = captured.body
    let incomplete: number | undefined
    const declared = headerText(captured.headers, 'content-length')
    if (declared !== undefined && /^\d+$/.test(declared.trim())) {
      // What the client would have read: a Content-Length shorter than the body frames it; a
      // longer one leaves the response cut short (not stored, and still cut short for the client).
      const n = Number(declared)
      if (n < body.length) body = body.subarray(0, n)
      else if (n > body.length) incomplete = n
    }
    if (captured.status === 304 && tx.revalidating && tx.stale) {
      return this.#updateFrom304(tx, tx.stale, captured, now)
    }
    if (captured.status >= 500 && tx.stale && staleIfErrorAllowed(tx.stale, now)) {
      this.#stampede.settle(tx, undefined)
      void this.#stampede.release(tx)
      tx.xcache = 'STALE'
      tx.cacheStatus = `fwd=stale; fwd-status=${captured.status}; detail=stale-if-error`
      this.#count(tx, 'stale', tx.stale)
      return fromEntry(this.config, tx, tx.stale)
    }
    const control = controlOf(captured.headers, this.config.targetedCacheControl)
    let reason: NotStoredReason | 'unavailable' | undefined =
      incomplete !== undefined
        ? 'incomplete'
        : whyNotStored(tx, captured.status, captured.headers, control, now)
    if (reason === undefined && body.length > this.config.maxBodySize) reason = 'too-large'
    if (reason === undefined && tx.lookup?.failed) reason = 'unavailable'
    let entry: Entry | undefined
    if (reason === undefined) {
      try {
        entry = await buildEntry(this.#ctx, tx, captured, body, control, now)
      } catch (error) {
        this.reportError(error)
        reason = 'unavailable'
      }
    }
    if (!entry) {
      this.metrics.notStored(label, reason ?? 'unavailable')
      this.#count(tx, 'miss')
      this.#stampede.settle(tx, undefined)
      void this.#stampede.release(tx)
      tx.cacheStatus = withDetail(tx.cacheStatus, String(reason))
      return passedThrough(this.config, tx, captured, body, incomplete)
    }
    const placement = this.#storage.placement(tx.rawKey, tx.lookup!, entry.varyNames, entry.varyValues)
    const stored = { ...entry, rawKey: placement.rawKey }
    this.#stampede.settle(tx, stored)
    // The write completes before the response goes out: the client's next request, on any
    // process, finds the entry and no lease.
    const result = await persist(this.#ctx, tx, placement, stored, now)
    tx.cacheStatus = storedParam(tx.cacheStatus, result)
    this.#count(tx, 'miss', stored)
    const out = await fromEntry(this.config, tx, stored)
    // Fields kept out of the store (a qualified no-cache, a client's rate-limit quota) still
    // belong to this response.
    const unstored = new Set([...listedFields(control.cc, 'no-cache'), ...CLIENT_SPECIFIC])
    if (out.status !== 304) {
      for (const [name, value] of endToEnd(captured.headers)) {
        const lower = name.toLowerCase()
        if (unstored.has(lower) && headerGet(out.headers, lower) === undefined)
          out.headers.push([name, value])
      }
    }
    return out
  }

  /** A 304 from the handler freshens the stored response (RFC 9111 §4.3.4). */
  async #updateFrom304(
    tx: Transaction,
    stale: Entry,
    captured: CapturedResponse,
    now: number,
  ): Promise<OutgoingResponse> {
    const { updated, blocked } = freshenFrom304(tx, stale, captured, now, this.config.targetedCacheControl)
    this.metrics.route(tx.req.route ?? stale.route).revalidated++
    tx.xcache = 'MISS'
    tx.cacheStatus = 'fwd=stale; fwd-status=304'
    if (blocked) {
      this.#stampede.settle(tx, undefined)
      void this.#stampede.release(tx)
      this.metrics.notStored(tx.req.route, blocked)
      this.#count(tx, 'miss', stale)
      const out = await fromEntry(this.config, tx, updated)
      // The 304's Set-Cookie goes to this client only.
      const cookie = headerGet(captured.headers, 'set-cookie')
      if (cookie !== undefined) out.headers.push(['Set-Cookie', cookie])
      return out
    }
    const placement = this.#storage.placement(tx.rawKey, tx.lookup!, stale.varyNames, stale.varyValues)
    this.#stampede.settle(tx, updated)
    const result = await persist(this.#ctx, tx, placement, updated, now)
    tx.cacheStatus = storedParam(tx.cacheStatus, result)
    this.#count(tx, 'miss', updated)
    return fromEntry(this.config, tx, updated)
  }

  /** Status headers to add to a response that passes through unchanged. */
  statusHeaders(tx: Transaction): HeaderList {
    return statusHeaders(this.config, tx)
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
      this.#stampede.settle(tx, undefined)
      void this.#stampede.release(tx)
    }
    if (SAFE_METHODS.has(tx.req.method) || status < 200 || status >= 400) return
    await invalidateAfterUnsafe(this.#storage, tx, [location, contentLocation], (error) =>
      this.reportError(error),
    )
  }

  // ---- invalidation and introspection -----------------------------------------------------

  /** Every entry recorded under `tag` misses, on every process, from the next request on. */
  async invalidateTag(tag: string): Promise<void> {
    if (typeof tag !== 'string' || tag.length === 0) throw new TypeError('tag must be a non-empty string')
    await this.#storage.tags.bump(tag)
  }

  /**
   * Removes the stored response(s) of a URL, with all variants, over http and https:
   * `invalidate('/products?page=2', { host: 'shop.example' })` (`host` may carry a port:
   * `'shop.example:8080'`) or `invalidate('https://shop.example/products')`. Without a host, every
   * host of `hosts` that is not a wildcard (or the request-less origin ''). Rejects when memcached
   * fails, so the caller knows the invalidation did not happen.
   */
  async invalidate(url: string, options: InvalidateOptions = {}): Promise<void> {
    if (typeof url !== 'string' || url.length === 0) throw new TypeError('url must be a non-empty string')
    await invalidateUrl(this.#storage, this.config, url, options.host)
  }

  metricsSnapshot(): MetricsSnapshot {
    return this.metrics.snapshot()
  }

  /** Closes the memcached client if the cache created it (from `servers`). */
  async close(): Promise<void> {
    if (this.#ownsClient) await this.client.close()
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

/**
 * A response shared between concurrent requests must have been produced for the same variant,
 * in a content coding this request accepts.
 */
function answers(entry: Entry, headers: RequestHeaders): boolean {
  if (!mayAnswer(entry, headers)) return false
  if (entry.varyNames.length === 0) return true
  const values = varyValuesOf(entry.varyNames, headers)
  return values.every((v, i) => v === entry.varyValues[i])
}
