// The request phase: may this request use the cache at all (method, bypass rules), what the client
// asks of the cache (request directives, its own conditionals), and its key.
import { timingSafeEqual } from 'node:crypto'
import { parseCacheControl } from './cache-control.js'
import type { ClientConditions, CONDITIONAL_HEADERS } from './conditional.js'
import { requestHeader } from './headers.js'
import { originOf, rawUrlKey } from './key.js'
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
  tx.origin = originOf(req.scheme, req.host, config.ignorePort ? '' : req.port)
  const headers = req.headers
  const marker = headers[REFRESH_HEADER]
  if (marker !== undefined) {
    tx.marker = marker
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
  const requestCc = parseCacheControl(headers['cache-control'])
  tx.noStore = requestCc.has('no-store')
  tx.onlyIfCached = requestCc.has('only-if-cached')
  tx.authorization = headers.authorization !== undefined
  tx.conditions = clientConditions(headers)
  tx.rawKey = rawUrlKey(tx.origin, req.url)
  return tx
}

/** Why this request skips the cache (no read, no store), or undefined. */
function bypassReason(req: CacheRequest, config: CacheConfig): string | undefined {
  if (config.bypassHeader) {
    const value = req.headers[config.bypassHeader]
    if (typeof value === 'string' && safeEqual(value, config.bypassSecret!)) return 'bypass-header'
  }
  if (config.hosts && !hostAllowed(config.hosts, req.host, req.port)) return 'host'
  // A body on a GET has no defined meaning (RFC 9110 §9.3.1), yet a handler may read it: the
  // response may depend on something the key does not hold.
  if (hasBody(req.headers)) return 'request-body'
  if (targetDisagrees(req)) return 'target'
  if (req.headers.authorization !== undefined && !req.settings.shareAuthorization) return 'authorization'
  if (req.headers.cookie !== undefined && !req.settings.shareCookie) return 'cookie'
  return undefined
}

/** `hosts` entries: `name` (any port), `name:port`, or `*.suffix` (any port). */
function hostAllowed(hosts: readonly string[], host: string, port: string): boolean {
  for (const allowed of hosts) {
    const colon = allowed.lastIndexOf(':')
    const name = colon > allowed.lastIndexOf(']') ? allowed.slice(0, colon) : allowed
    if (name !== allowed && allowed.slice(colon + 1) !== port) continue
    if (name === host) return true
    if (name.startsWith('*.') && host.endsWith(name.slice(1)) && host.length > name.length - 1) return true
  }
  return false
}

function hasBody(headers: RequestHeaders): boolean {
  if (headers['transfer-encoding'] !== undefined) return true
  const length = headers['content-length']
  return length !== undefined && !/^\s*0*\s*$/.test(String(length))
}

/**
 * An absolute-form target (`GET http://other.test/page`) naming another scheme, host or port than
 * the framework hands the handler (which takes them from Host): the key and the handler could
 * disagree on which page this is, so the request bypasses the cache.
 */
function targetDisagrees(req: CacheRequest): boolean {
  if (req.url.startsWith('/')) return false
  let target: URL
  try {
    target = new URL(req.url)
  } catch {
    return true
  }
  return (
    originOf(target.protocol.slice(0, -1), target.hostname, target.port) !==
    originOf(req.scheme, req.host, req.port)
  )
}

/** Compares secrets in constant time. */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** Each conditional request field and where ClientConditions keeps it. */
export const CONDITION_FIELDS: ReadonlyArray<[(typeof CONDITIONAL_HEADERS)[number], keyof ClientConditions]> =
  [
    ['if-match', 'ifMatch'],
    ['if-none-match', 'ifNoneMatch'],
    ['if-modified-since', 'ifModifiedSince'],
    ['if-unmodified-since', 'ifUnmodifiedSince'],
    ['range', 'range'],
    ['if-range', 'ifRange'],
  ]

function clientConditions(headers: RequestHeaders): ClientConditions {
  const c: ClientConditions = {}
  for (const [name, field] of CONDITION_FIELDS) {
    const v = requestHeader(headers, name)
    if (v !== undefined) c[field] = v
  }
  return c
}

export function hasConditions(c: ClientConditions): boolean {
  for (const _ in c) return true
  return false
}
