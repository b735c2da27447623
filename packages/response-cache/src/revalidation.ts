// Revalidation: a 304 from the handler for a stale entry freshens the stored response with the
// 304's headers (RFC 9111 §4.3.4) and the stored body is served.
import type { Entry } from './entry.js'
import { CLIENT_SPECIFIC, endToEnd, headerGet, headerSet } from './headers.js'
import { formatHttpDate } from './http-date.js'
import { controlOf, type Freshness, freshnessOf, type NotStoredReason } from './policy.js'
import { dropPreset } from './respond.js'
import { whyNotStoredWith } from './store.js'
import type { Transaction } from './transaction.js'
import type { CapturedResponse, HeaderList } from './types.js'

/** Fields a 304 must not overwrite in the stored response. */
const KEEP_ON_304 = new Set([
  'content-encoding',
  'content-length',
  'content-md5',
  'content-range',
  'etag',
  'set-cookie',
])

export interface Freshened {
  /** The stored response with the 304's headers and new freshness. */
  updated: Entry
  /** Why the updated entry may not be stored (a 304 carrying Set-Cookie updates nothing). */
  blocked: NotStoredReason | undefined
}

export function freshenFrom304(
  tx: Transaction,
  stale: Entry,
  captured: CapturedResponse,
  now: number,
  targets: readonly string[],
): Freshened {
  const headers: HeaderList = stale.headers.map(([n, v]) => [n, Array.isArray(v) ? [...v] : v])
  const update = endToEnd(captured.headers)
  dropPreset(tx, update)
  for (const [name, value] of update) {
    if (KEEP_ON_304.has(name.toLowerCase()) || CLIENT_SPECIFIC.has(name.toLowerCase())) continue
    headerSet(headers, name, value)
  }
  if (headerGet(update, 'date') === undefined) headerSet(headers, 'Date', formatHttpDate(now))
  // Age of the 304 (if any) is what counts now; the stored Age was consumed at store time.
  const forFreshness: HeaderList = [...headers]
  const age304 = headerGet(captured.headers, 'age')
  if (age304 !== undefined) forFreshness.push(['Age', age304])
  const control = controlOf(headers, targets)
  const freshness: Freshness = freshnessOf(
    stale.status,
    forFreshness,
    tx.requestTime,
    now,
    tx.req.settings,
    control,
  )
  const updated: Entry = { ...stale, headers, requestTime: tx.requestTime, responseTime: now, freshness }
  const blocked =
    headerGet(captured.headers, 'set-cookie') !== undefined
      ? 'set-cookie'
      : whyNotStoredWith(tx, stale.status, headers, control, freshness)
  return { updated, blocked }
}
