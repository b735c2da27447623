import { splitList } from './cache-control.js'
import type { HeaderList, HeaderValue, RequestHeaders } from './types.js'

/**
 * Fields that describe one connection, not the response (RFC 9110 §7.6.1, RFC 9111 §3.1),
 * plus Node's own framing: none of them is stored or replayed.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authenticate',
  'proxy-authentication-info',
  'proxy-authorization',
])

/**
 * Fields that describe the client, not the resource: a rate limiter's quota for this caller.
 * A shared cache must never replay one client's quota to another, so they are not stored
 * (the response that carried them still sends them).
 */
export const CLIENT_SPECIFIC: ReadonlySet<string> = new Set([
  'x-ratelimit-limit',
  'x-ratelimit-remaining',
  'x-ratelimit-reset',
  'ratelimit',
  'ratelimit-limit',
  'ratelimit-remaining',
  'ratelimit-reset',
  'ratelimit-policy',
])

/** Fields the cache computes itself for every response it sends. */
const COMPUTED = new Set(['content-length', 'age', 'x-cache', 'cache-status'])

export function headerGet(headers: HeaderList, name: string): HeaderValue | undefined {
  for (const [n, v] of headers) if (n.toLowerCase() === name) return v
  return undefined
}

/** The field as one string (lines joined with ", "), or undefined. */
export function headerText(headers: HeaderList, name: string): string | undefined {
  const v = headerGet(headers, name)
  return v === undefined ? undefined : Array.isArray(v) ? v.join(', ') : v
}

export function headerSet(headers: HeaderList, name: string, value: HeaderValue): void {
  const lower = name.toLowerCase()
  const i = headers.findIndex(([n]) => n.toLowerCase() === lower)
  if (i === -1) headers.push([name, value])
  else headers[i] = [headers[i]![0], value]
}

export function headerDelete(headers: HeaderList, name: string): void {
  const lower = name.toLowerCase()
  for (let i = headers.length - 1; i >= 0; i--)
    if (headers[i]![0].toLowerCase() === lower) headers.splice(i, 1)
}

/**
 * The headers of a response the cache sends on: hop-by-hop fields, fields listed in
 * `Connection`, fields the cache computes itself and `extraDrop` removed.
 */
export function endToEnd(headers: HeaderList, extraDrop?: ReadonlySet<string>): HeaderList {
  const connection = headerText(headers, 'connection')
  const listed = connection ? new Set(splitList(connection).map((s) => s.toLowerCase())) : undefined
  const out: HeaderList = []
  for (const [name, value] of headers) {
    const lower = name.toLowerCase()
    if (HOP_BY_HOP.has(lower) || COMPUTED.has(lower)) continue
    if (listed?.has(lower) || extraDrop?.has(lower)) continue
    out.push([name, Array.isArray(value) ? [...value] : value])
  }
  return out
}

/** Lowercased names in a Vary field; `['*']` when any member is `*`. */
export function varyNames(value: HeaderValue | undefined): string[] {
  if (value === undefined) return []
  const text = Array.isArray(value) ? value.join(',') : value
  const names: string[] = []
  for (const member of text.split(',')) {
    const name = member.trim().toLowerCase()
    if (!name) continue
    if (name === '*') return ['*']
    if (!names.includes(name)) names.push(name)
  }
  return names
}

const KNOWN_CODINGS = ['br', 'deflate', 'gzip', 'zstd']

/**
 * Request fields whose grammar is a comma-separated list (RFC 9110 §5.6.1 `#` rule, and the
 * de-facto lists among common Vary targets): only these are normalised as lists for a Vary key.
 */
const LIST_FIELDS = new Set([
  'accept',
  'accept-charset',
  'accept-encoding',
  'accept-language',
  'cache-control',
  'forwarded',
  'if-match',
  'if-none-match',
  'pragma',
  'prefer',
  'te',
  'via',
  'x-forwarded-for',
])

/**
 * The value of a request header as the cache keys it (a Vary'd header). List fields: whitespace
 * around members and the split into several lines do not matter; Accept-Encoding becomes the
 * sorted set of content codings the client accepts, so browsers that spell it differently share
 * one variant while a client that lacks a coding never gets it; Accept-Language is compared
 * case-insensitively (its order is kept: negotiators use it). Every other field (User-Agent,
 * Cookie, Authorization, custom ones) is compared as sent, trimmed: two different values never
 * share a variant. A missing header is distinct from an empty one.
 */
export function normalizeRequestHeader(name: string, value: string | string[] | undefined): string {
  if (value === undefined) return '\u0000'
  const text = Array.isArray(value) ? value.join(', ') : value
  if (name === 'accept-encoding') return acceptedCodings(text).join(',')
  if (!LIST_FIELDS.has(name)) return text.trim()
  // Language tags are case-insensitive (RFC 5646 §2.1.1).
  const normalized = name === 'accept-language' ? text.toLowerCase() : text
  return splitList(normalized).join(',')
}

/** qvalue (RFC 9110 §12.4.2): "0" to "1" with at most three decimals. */
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/

/**
 * Content codings accepted, among those the cache knows, sorted (RFC 9110 §12.5.3): a coding is
 * accepted when listed (or covered by `*`) with a weight above 0. A weight that is not a valid
 * qvalue (`q=abc`, `q=-1`, `q=1.5`) makes its coding unacceptable, as Express's negotiator does
 * with those it cannot read as a positive number.
 */
export function acceptedCodings(text: string | undefined): string[] {
  if (!text) return []
  const accepted = new Set<string>()
  const refused = new Set<string>()
  let star = false
  for (const member of text.split(',')) {
    const [codingRaw, ...params] = member.split(';')
    const coding = codingRaw!.trim().toLowerCase()
    if (!coding) continue
    let q = 1
    for (const p of params) {
      const eq = p.indexOf('=')
      if (eq === -1 || p.slice(0, eq).trim().toLowerCase() !== 'q') continue
      const weight = p.slice(eq + 1).trim()
      q = QVALUE.test(weight) ? Number(weight) : 0
    }
    const name = coding === 'x-gzip' ? 'gzip' : coding
    if (name === '*') {
      star = q > 0
      continue
    }
    if (q > 0) accepted.add(name)
    else refused.add(name)
  }
  if (star) for (const c of KNOWN_CODINGS) if (!refused.has(c)) accepted.add(c)
  return KNOWN_CODINGS.filter((c) => accepted.has(c))
}

/**
 * Whether a client with this Accept-Encoding can take a response in `contentEncoding` (its
 * Content-Encoding). Only the codings the cache knows are judged; others (and identity) pass.
 */
export function acceptsContentCoding(
  acceptEncoding: string | undefined,
  contentEncoding: string | undefined,
): boolean {
  if (contentEncoding === undefined) return true
  const accepted = acceptedCodings(acceptEncoding)
  for (const raw of contentEncoding.split(',')) {
    const coding = raw.trim().toLowerCase()
    const name = coding === 'x-gzip' ? 'gzip' : coding
    if (KNOWN_CODINGS.includes(name) && !accepted.includes(name)) return false
  }
  return true
}

export function requestHeader(headers: RequestHeaders, name: string): string | undefined {
  const v = headers[name]
  return v === undefined ? undefined : Array.isArray(v) ? v.join(', ') : v
}
