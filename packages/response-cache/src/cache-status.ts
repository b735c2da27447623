// What the cache did with a request, as the response reports it: `X-Cache` and `Cache-Status`
// (RFC 9211), whose parameters the phases build up on the transaction.
import type { CacheConfig } from './options.js'
import type { Lookup } from './storage.js'
import type { Transaction } from './transaction.js'
import type { HeaderList } from './types.js'

export type XCache = 'HIT' | 'MISS' | 'STALE' | 'BYPASS'

/** `X-Cache` and `Cache-Status` for the transaction as it stands (none with `statusHeaders: false`). */
export function statusHeaders(config: CacheConfig, tx: Transaction): HeaderList {
  if (!config.statusHeaders) return []
  return [
    ['X-Cache', tx.xcache],
    ['Cache-Status', `${config.cacheStatusName}; ${tx.cacheStatus}`],
  ]
}

/** `fwd=` of a request that goes to the handler, from what the lookup found. */
export function missStatus(stale: boolean, lookup: Lookup): string {
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

/** `stored`, or the reason the write did not happen. */
export function storedParam(status: string, result: 'stored' | 'too-large' | 'failed'): string {
  if (result === 'stored') return appendParam(status, 'stored')
  return withDetail(status, result === 'failed' ? 'unavailable' : result)
}

/** Cache-Status carries one `detail`: the first reason given wins. */
export function withDetail(status: string, reason: string): string {
  return /(^|; )detail=/.test(status) ? status : appendParam(status, `detail=${reason}`)
}

function appendParam(status: string, param: string): string {
  return status ? `${status}; ${param}` : param
}
