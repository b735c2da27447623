// The store phase: whether the handler's response may be stored (the rules are policy.ts's),
// the entry built from it (the headers kept, its Vary variant, stored compression, its tags'
// generations) and its write to memcached.
import { listedFields } from './cache-control.js'
import { compress, isCompressible } from './compression.js'
import type { Entry } from './entry.js'
import { CLIENT_SPECIFIC, endToEnd, headerGet, headerSet, headerText, varyNames } from './headers.js'
import { formatHttpDate } from './http-date.js'
import { varyValuesOf } from './key.js'
import {
  codingAcceptable,
  type Freshness,
  freshnessOf,
  type NotStoredReason,
  notStorableReason,
  type ResponseControl,
  storageTtl,
} from './policy.js'
import { dropPreset } from './respond.js'
import type { Placement } from './storage.js'
import type { CacheContext, Transaction } from './transaction.js'
import type { CapturedResponse, HeaderList } from './types.js'

export type WriteResult = 'stored' | 'too-large' | 'failed'

/** Why the handler's response to `tx` may not be stored, or undefined. */
export function whyNotStored(
  tx: Transaction,
  status: number,
  headers: HeaderList,
  control: ResponseControl,
  now: number,
): NotStoredReason | undefined {
  const freshness = freshnessOf(status, headers, tx.requestTime, now, tx.req.settings, control)
  return whyNotStoredWith(tx, status, headers, control, freshness)
}

/** The same, with the response's freshness already computed. */
export function whyNotStoredWith(
  tx: Transaction,
  status: number,
  headers: HeaderList,
  control: ResponseControl,
  freshness: Freshness,
): NotStoredReason | undefined {
  if (!codingAcceptable(headers, tx.req.headers)) return 'content-coding'
  return notStorableReason({
    status,
    headers,
    cc: control.cc,
    freshness,
    authorization: tx.authorization,
    requestNoStore: tx.noStore,
    settings: tx.req.settings,
  })
}

/** The entry to store for the handler's response. Rejects when tag generations cannot be read. */
export async function buildEntry(
  ctx: CacheContext,
  tx: Transaction,
  captured: CapturedResponse,
  body: Buffer,
  control: ResponseControl,
  now: number,
): Promise<Entry> {
  const settings = tx.req.settings
  const freshness = freshnessOf(captured.status, captured.headers, tx.requestTime, now, settings, control)
  const drop = new Set([...listedFields(control.cc, 'no-cache'), ...CLIENT_SPECIFIC])
  const headers = endToEnd(captured.headers, drop)
  dropPreset(tx, headers)
  if (headerGet(headers, 'date') === undefined) headers.push(['Date', formatHttpDate(now)])
  const names = varyNames(headerGet(captured.headers, 'vary'))
  const values = varyValuesOf(names, tx.req.headers)
  let stored = body
  let encoding: 'gzip' | 'br' | undefined
  const compression = ctx.config.compression
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
    ? await ctx.storage.tags.forEntry(tx.req.tags, tx.lookup?.gens ?? new Map())
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
    shared: { authorization: settings.shareAuthorization, cookie: settings.shareCookie },
  }
}

/** Stores an entry (never rejects), counts it and releases the lease; resolves with what happened. */
export async function persist(
  ctx: CacheContext,
  tx: Transaction,
  placement: Placement,
  entry: Entry,
  now: number,
): Promise<WriteResult> {
  const { config, metrics } = ctx
  const ttl = storageTtl(entry, now, config.keepStale, config.maxTtl)
  const label = tx.req.route
  let result: WriteResult
  try {
    result = await ctx.storage.write(placement, tx.lookup!.urlKey, entry, ttl, config.largeBodies === 'chunk')
  } catch (error) {
    ctx.report(error)
    result = 'failed'
  }
  if (result === 'stored') metrics.route(label).stored++
  else metrics.notStored(label, result === 'too-large' ? 'too-large' : 'unavailable')
  void ctx.stampede.release(tx)
  return result
}
