// One request's passage through the cache, and what the adapter does next (`Begin`). The phases
// (request.ts → key.ts → lookup.ts → respond.ts / forward.ts → store.ts) read and fill it in.

import type { XCache } from './cache-status.js'
import type { ClientConditions } from './conditional.js'
import type { Entry } from './entry.js'
import type { Metrics } from './metrics.js'
import type { CacheConfig } from './options.js'
import type { Lease, Stampede } from './stampede.js'
import type { Lookup, Storage } from './storage.js'
import type { CacheRequest, OutgoingResponse, RequestHeaders } from './types.js'

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

/** An in-process fill that concurrent misses of the same key wait for. */
export interface Flight {
  promise: Promise<Entry | undefined>
  resolve(entry: Entry | undefined): void
  settled: boolean
  timer: NodeJS.Timeout | undefined
}

/** One request's passage through the cache. Opaque to adapters. */
export class Transaction {
  readonly req: CacheRequest
  readonly requestTime = Date.now()
  /** `scheme://host[:port]` of the request, as its key holds it. */
  origin = ''
  rawKey = ''
  lookup: Lookup | undefined
  /** The stored response being revalidated (or kept for stale-if-error). */
  stale: Entry | undefined
  /** Validators from `stale` were put on the request. */
  revalidating = false
  /** The request was prepared for the handler (prepareForward): its conditionals changed. */
  forwarded = false
  /** The client's own conditional and range headers, taken off the request. */
  conditions: ClientConditions = {}
  /** This is the cache's own background refresh (the marker carried this process's secret). */
  refresh = false
  /** The refresh marker as it arrived (taken off the request), to put back on withdraw(). */
  marker: string | string[] | undefined
  authorization = false
  /** Request `Cache-Control: no-store`. */
  noStore = false
  /** Request `Cache-Control: only-if-cached`. */
  onlyIfCached = false
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

/** What the phases share: the frozen config and the cache's parts. */
export interface CacheContext {
  readonly config: CacheConfig
  readonly storage: Storage
  readonly stampede: Stampede
  readonly metrics: Metrics
  /** Counts an absorbed failure and hands it to `onError` (never throws). */
  report(error: unknown): void
}
