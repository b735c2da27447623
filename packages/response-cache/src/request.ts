// The request phase: may this request use the cache at all (method, bypass rules), what the client
// asks of the cache (request directives, its own conditionals), and its key.
import { timingSafeEqual } from 'node:crypto'
import { parseCacheControl } from './cache-control.js'
import { type ClientConditions, CONDITIONAL_HEADERS } from './conditional.js'
import { requestHeader } from './headers.js'
import { rawUrlKey } from './key.js'
import type { CacheConfig } from './options.js'
import { Transaction } from './transaction.js'
import type { CacheRequest, RequestHeaders } from './types.js'

/** Header that marks the cache's own background refresh requests (carries a per-process secret). */
export const REFRESH_HEADER = 'x-memkit-cache-refresh'

/** Methods that change nothing (RFC 9110 §9.2.1): their responses never invalidate. */
export const SAFE_METHODS: ReadonlySet<string> = new Set([
  'GET',
  'HEAD',
  'OPTIONS',
  'TRACE',
  'PROPFIND',
  'SEARCH',
  'REPORT',
])

/**
 * Opens the transaction of a request. When the request may not use the cache it comes back with
 * `xcache: 'BYPASS'` and the reason in `cacheStatus`; otherwise with its key, its directives and
 * the client's conditionals.
 */
export function openTransaction(req: CacheRequest, config: CacheConfig, refreshToken: string): Transaction {
  const tx = new Transaction(req)
  const headers = req.headers
  const marker = headers[REFRESH_HEADER]
  if (marker !== undefined) {
    delete headers[REFRESH_HEADER]
    tx.refresh = typeof marker === 'string' && safeEqual(marker, refreshToken)
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    tx.xcache = 'BYPASS'
    tx.cacheStatus = 'fwd=method'
    return tx
  }
  const bypass = bypassReason(req, config)
  if (bypass !== undefined) {
    tx.xcache = 'BYPASS'
    tx.cacheStatus = `fwd=bypass; detail=${bypass}`
    return tx
  }
  tx.authorization = headers.authorization !== undefined
  const requestCc = parseCacheControl(headers['cache-control'])
  tx.noStore = requestCc.has('no-store')
  tx.onlyIfCached = requestCc.has('only-if-cached')
  tx.conditions = clientConditions(headers)
  tx.rawKey = rawUrlKey(req.host, req.url)
  return tx
}

/** Why this request skips the cache (no read, no store), or undefined. */
function bypassReason(req: CacheRequest, config: CacheConfig): string | undefined {
  if (config.bypassHeader) {
    const value = req.headers[config.bypassHeader]
    if (typeof value === 'string' && safeEqual(value, config.bypassSecret!)) return 'bypass-header'
  }
  if (config.hosts && !hostAllowed(config.hosts, req.host)) return 'host'
  if (req.headers.authorization !== undefined && !req.settings.shareAuthorization) return 'authorization'
  if (req.headers.cookie !== undefined && !req.settings.shareCookie) return 'cookie'
  return undefined
}

function hostAllowed(hosts: readonly string[], host: string): boolean {
  for (const allowed of hosts) {
    if (allowed === host) return true
    if (allowed.startsWith('*.') && host.endsWith(allowed.slice(1)) && host.length > allowed.length - 1)
      return true
  }
  return false
}

/** Compares secrets in constant time. */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

const CONDITION_FIELDS: Record<(typeof CONDITIONAL_HEADERS)[number], keyof ClientConditions> = {
  'if-match': 'ifMatch',
  'if-none-match': 'ifNoneMatch',
  'if-modified-since': 'ifModifiedSince',
  'if-unmodified-since': 'ifUnmodifiedSince',
  range: 'range',
  'if-range': 'ifRange',
}

function clientConditions(headers: RequestHeaders): ClientConditions {
  const c: ClientConditions = {}
  for (const name of CONDITIONAL_HEADERS) {
    const v = requestHeader(headers, name)
    if (v !== undefined) c[CONDITION_FIELDS[name]] = v
  }
  return c
}

export function hasConditions(c: ClientConditions): boolean {
  for (const _ in c) return true
  return false
}
