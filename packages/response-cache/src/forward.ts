// The forward phase: the request as the handler sees it on a miss. The client's own conditional
// and range headers come off (the handler must produce the full response to store; the cache
// answers the client's conditions from it), and a stale entry's validators go on, so the handler
// can answer 304 (RFC 9111 §4.3.1).
import { CONDITIONAL_HEADERS } from './conditional.js'
import { headerText } from './headers.js'
import { hasValidator } from './policy.js'
import type { Transaction } from './transaction.js'

export function prepareForward(tx: Transaction): void {
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
