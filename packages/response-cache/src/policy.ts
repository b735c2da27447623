// RFC 9111 storage and freshness rules for a shared cache, plus RFC 5861's stale extensions:
// whether a response may be stored, how long it is fresh, how a stored one may be used when a
// request comes (fresh, stale while revalidating, stale on error) and how long memcached keeps it.
import { type Directives, deltaSeconds, MAX_DELTA_SECONDS, parseCacheControl } from './cache-control.js'
import type { Entry } from './entry.js'
import { acceptsContentCoding, headerGet, headerText, requestHeader, varyNames } from './headers.js'
import { parseHttpDate } from './http-date.js'
import { targetedDirectives } from './targeted.js'
import type { HeaderList, HeaderValue, RequestHeaders, RouteSettings } from './types.js'

/**
 * Statuses cacheable by default (RFC 9110 §15.1): the only ones (with `public` responses) a route
 * `ttl` or heuristic freshness applies to.
 */
const HEURISTIC_STATUSES = new Set([200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501])

/**
 * Statuses whose caching requirements this cache implements (RFC 9110's final status codes but
 * 206): `must-understand` lets it store them despite `no-store` (RFC 9111 §5.2.2.3).
 */
const UNDERSTOOD_STATUSES = new Set([
  200, 201, 202, 203, 204, 205, 300, 301, 302, 303, 305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407,
  408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 426, 500, 501, 502, 503, 504, 505,
])

/** How long a stored response stays fresh and how it may be used once stale. */
export interface Freshness {
  /** Freshness lifetime in seconds; null when the response gave none (always stale). */
  readonly lifetime: number | null
  /** corrected_initial_age (RFC 9111 §4.2.3) in seconds (Infinity only in entries stored by older versions). */
  readonly initialAge: number
  /** Seconds a stale response may be served while it is refreshed in the background. */
  readonly swr: number
  /** Seconds a stale response may be served when the handler fails. */
  readonly sie: number
  /** `no-cache`: every use needs revalidation. */
  readonly noCache: boolean
  /** must-revalidate / proxy-revalidate / s-maxage / no-cache: never serve stale without a directive that allows it. */
  readonly noStale: boolean
}

export type NotStoredReason =
  | 'request-no-store'
  | 'status'
  | 'no-store'
  | 'private'
  | 'set-cookie'
  | 'vary-star'
  | 'authorization'
  | 'no-freshness'
  | 'stale'
  | 'too-large'
  | 'incomplete'
  | 'must-understand'
  | 'content-coding'

/** The directives that govern a response for this cache, and where they came from. */
export interface ResponseControl {
  readonly cc: Directives
  /** From a targeted field (RFC 9213): Cache-Control and Expires are ignored. */
  readonly targeted: boolean
}

/**
 * The response's directives for this cache: the first valid targeted field of `targets` (e.g.
 * `CDN-Cache-Control`), else Cache-Control.
 */
export function controlOf(headers: HeaderList, targets: readonly string[] = []): ResponseControl {
  const targeted = targets.length > 0 ? targetedDirectives(headers, targets) : undefined
  if (targeted) return { cc: targeted, targeted: true }
  return { cc: parseCacheControl(headerGet(headers, 'cache-control')), targeted: false }
}

/**
 * Freshness of a response received at `responseTime` for a request sent at `requestTime`
 * (milliseconds). s-maxage beats max-age beats Expires (ignored under a targeted field); without
 * any of them, for statuses cacheable by default or `public` responses, the route `ttl` stands in,
 * else heuristic freshness from Last-Modified when the route enables it (RFC 9111 §4.2.2).
 */
export function freshnessOf(
  status: number,
  headers: HeaderList,
  requestTime: number,
  responseTime: number,
  settings: RouteSettings,
  control: ResponseControl = controlOf(headers),
): Freshness {
  const cc = control.cc
  const dateValue = parseHttpDate(headerText(headers, 'date')) ?? responseTime
  let lifetime: number | null = null
  const sMaxAge = deltaSeconds(cc, 's-maxage')
  const maxAge = deltaSeconds(cc, 'max-age')
  const expires = control.targeted ? undefined : headerGet(headers, 'expires')
  if (sMaxAge !== undefined) {
    lifetime = Number.isNaN(sMaxAge) ? 0 : sMaxAge
  } else if (maxAge !== undefined) {
    lifetime = Number.isNaN(maxAge) ? 0 : maxAge
  } else if (expires !== undefined) {
    // Several Expires lines, or an unparsable one (e.g. "0"), mean "already expired".
    const at = Array.isArray(expires) && expires.length !== 1 ? undefined : parseHttpDate(String(expires))
    lifetime = at === undefined ? 0 : Math.max(0, (at - dateValue) / 1000)
  } else if (HEURISTIC_STATUSES.has(status) || cc.has('public')) {
    if (settings.ttl !== undefined) lifetime = settings.ttl
    else if (settings.heuristic) lifetime = heuristicLifetime(headers, dateValue, settings.heuristic)
  }
  const ageValue = parseAge(headerGet(headers, 'age'))
  const apparentAge = Math.max(0, (responseTime - dateValue) / 1000)
  const correctedAge = ageValue + Math.max(0, responseTime - requestTime) / 1000
  const noCache = cc.get('no-cache') === true
  const mustRevalidate = cc.has('must-revalidate') || cc.has('proxy-revalidate')
  const noStale = mustRevalidate || noCache || sMaxAge !== undefined
  // Explicit stale-* directives from the response are the origin's own permission and win over
  // s-maxage's implied proxy-revalidate; must-revalidate and no-cache still forbid them. The route
  // defaults apply only when nothing in the response forbids serving stale.
  const swrDirective = validDelta(cc, 'stale-while-revalidate')
  const sieDirective = validDelta(cc, 'stale-if-error')
  const swr = mustRevalidate || noCache ? 0 : (swrDirective ?? (noStale ? 0 : settings.staleWhileRevalidate))
  const sie = mustRevalidate || noCache ? 0 : (sieDirective ?? (noStale ? 0 : settings.staleIfError))
  return {
    lifetime: lifetime === null ? null : Math.min(lifetime, MAX_DELTA_SECONDS),
    initialAge: Math.max(apparentAge, correctedAge),
    swr,
    sie,
    noCache,
    noStale,
  }
}

/** A fraction of the time since Last-Modified, at most `max` seconds; null without Last-Modified. */
function heuristicLifetime(
  headers: HeaderList,
  dateValue: number,
  heuristic: { fraction: number; max: number },
): number | null {
  const lastModified = parseHttpDate(headerText(headers, 'last-modified'))
  if (lastModified === undefined || lastModified > dateValue) return null
  return Math.min(((dateValue - lastModified) / 1000) * heuristic.fraction, heuristic.max)
}

/** current_age (RFC 9111 §4.2.3) in seconds at `now`. */
export function currentAge(f: Freshness, responseTime: number, now: number): number {
  return f.initialAge + Math.max(0, now - responseTime) / 1000
}

/** Seconds of freshness left at `now` (negative: stale by that much). -Infinity when never fresh. */
export function remainingFreshness(f: Freshness, responseTime: number, now: number): number {
  if (f.lifetime === null || f.noCache) return Number.NEGATIVE_INFINITY
  return f.lifetime - currentAge(f, responseTime, now)
}

export function isFresh(entry: Entry, now: number): boolean {
  return remainingFreshness(entry.freshness, entry.responseTime, now) > 0
}

/** How a stored response may answer a request that arrives at `now`. */
export type Reuse =
  /** Fresh: serve it. `remaining` seconds of freshness left. */
  | { kind: 'fresh'; remaining: number }
  /** Stale within stale-while-revalidate: serve it and refresh in the background. */
  | { kind: 'stale-while-revalidate'; remaining: number }
  /** Stale: revalidate it through the handler (or keep it for stale-if-error). */
  | { kind: 'stale' }

/** `canRefresh`: the adapter can run a background refresh. */
export function reuseOf(entry: Entry, now: number, canRefresh: boolean): Reuse {
  const f = entry.freshness
  const remaining = remainingFreshness(f, entry.responseTime, now)
  if (remaining > 0) return { kind: 'fresh', remaining }
  if (canRefresh && f.swr > 0 && -remaining <= f.swr) return { kind: 'stale-while-revalidate', remaining }
  return { kind: 'stale' }
}

/**
 * A response in a content coding the request does not accept (gzip for a client without gzip in
 * its Accept-Encoding) is neither stored for nor served to that request, whatever the handler's
 * Vary says: a client that cannot take gzip never receives gzip from the cache.
 */
export function codingAcceptable(headers: HeaderList, request: RequestHeaders): boolean {
  return acceptsContentCoding(
    requestHeader(request, 'accept-encoding'),
    headerText(headers, 'content-encoding'),
  )
}

/**
 * Whether a stored response may answer this request at all (fresh or not): its content coding is
 * one the request accepts, and a request carrying Authorization or Cookie is answered only from
 * an entry stored by a route that declared those shareable.
 */
export function mayAnswer(entry: Entry, request: RequestHeaders): boolean {
  if (!codingAcceptable(entry.headers, request)) return false
  if (request.authorization !== undefined && !entry.shared.authorization) return false
  if (request.cookie !== undefined && !entry.shared.cookie) return false
  return true
}

/** A stale entry may be served while another process fills its key (nothing forbids stale use). */
export function mayServeWhileUpdating(entry: Entry): boolean {
  return !entry.freshness.noStale && !entry.freshness.noCache
}

/** A stale entry may stand in for a failed handler (5xx or thrown) at `now` (RFC 5861 §4). */
export function staleIfErrorAllowed(entry: Entry, now: number): boolean {
  const f = entry.freshness
  if (f.sie <= 0) return false
  const remaining = remainingFreshness(f, entry.responseTime, now)
  // A never-fresh entry (no-cache or no lifetime) has no staleness to measure: sie forbids nothing then.
  return Number.isFinite(remaining) ? -remaining <= f.sie : false
}

/**
 * memcached TTL of an entry, seconds: the freshness left, plus how long a stale entry may still
 * serve (stale-while-revalidate, stale-if-error, or `keepStale` for revalidation when it has a
 * validator), at least 1, at most `maxTtl`.
 */
export function storageTtl(entry: Entry, now: number, keepStale: number, maxTtl: number): number {
  const f = entry.freshness
  const fresh = Math.max(0, remainingFreshness(f, entry.responseTime, now))
  const keep = Math.max(f.swr, f.sie, hasValidator(entry.headers) ? keepStale : 0)
  return Math.max(1, Math.min(Math.ceil(fresh + keep), maxTtl))
}

/**
 * Why a response must not be stored, or undefined when it may be. `status`, `headers` are the
 * handler's; `authorization` says whether the request carried credentials the route shares.
 */
export function notStorableReason(input: {
  status: number
  headers: HeaderList
  cc: Directives
  freshness: Freshness
  authorization: boolean
  requestNoStore: boolean
  settings: RouteSettings
}): NotStoredReason | undefined {
  const { status, headers, cc, freshness, settings } = input
  if (input.requestNoStore) return 'request-no-store'
  if (status < 200 || status === 206 || status === 304 || status > 599) return 'status'
  if (status >= 500 && !settings.cacheServerErrors) return 'status'
  if (cc.has('must-understand') && !UNDERSTOOD_STATUSES.has(status)) return 'must-understand'
  if (cc.has('no-store') && !cc.has('must-understand')) return 'no-store'
  if (cc.has('private')) return 'private'
  if (headerGet(headers, 'set-cookie') !== undefined) return 'set-cookie'
  if (varyNames(headerGet(headers, 'vary'))[0] === '*') return 'vary-star'
  if (input.authorization && !(cc.has('public') || cc.has('s-maxage') || cc.has('must-revalidate'))) {
    return 'authorization'
  }
  if (freshness.lifetime === null && !freshness.noCache) return 'no-freshness'
  const fresh = !freshness.noCache && freshness.lifetime !== null && freshness.lifetime > freshness.initialAge
  if (!fresh && !hasValidator(headers) && freshness.swr <= 0 && freshness.sie <= 0) return 'stale'
  return undefined
}

export function hasValidator(headers: HeaderList): boolean {
  return headerGet(headers, 'etag') !== undefined || headerGet(headers, 'last-modified') !== undefined
}

/**
 * The Age of a response, seconds (RFC 9111 §5.1): the first value when the field has several
 * (lines or list members), capped at 2^31; 0 when absent or when that value is not a
 * delta-seconds (negative, fractional, not a number): an invalid Age is ignored.
 */
export function parseAge(value: HeaderValue | undefined): number {
  if (value === undefined) return 0
  const line = Array.isArray(value) ? (value[0] ?? '') : String(value)
  const first = line.split(',', 1)[0]!.trim()
  if (!/^\d+$/.test(first)) return 0
  return Math.min(Number(first), MAX_DELTA_SECONDS)
}

function validDelta(cc: Directives, name: string): number | undefined {
  const v = deltaSeconds(cc, name)
  return v === undefined || Number.isNaN(v) ? undefined : v
}
