// The forward phase: the request as the handler sees it on a miss. The client's own conditional
// and range headers come off (the handler must produce the full response to store; the cache
// answers the client's conditions from it), and a stale entry's validators go on, so the handler
// can answer 304 (RFC 9111 §4.3.1).
import { CONDITIONAL_HEADERS } from './conditional.js'
import { headerText } from './headers.js'
import { hasValidator } from './policy.js'
import { CONDITION_FIELDS, REFRESH_HEADER } from './request.js'
import type { Transaction } from './transaction.js'

export function prepareForward(tx: Transaction): void {
  tx.forwarded = true
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

/** Puts the request back as it arrived: the client's conditionals on, the stale validators off. */
export function restoreRequest(tx: Transaction): void {
  const headers = tx.req.headers
  if (tx.marker !== undefined) headers[REFRESH_HEADER] = tx.marker
  if (!tx.forwarded) return
  for (const name of CONDITIONAL_HEADERS) delete headers[name]
  for (const [name, field] of CONDITION_FIELDS) {
    const value = tx.conditions[field]
    if (value !== undefined) headers[name] = value
  }
  tx.forwarded = false
  tx.revalidating = false
}
