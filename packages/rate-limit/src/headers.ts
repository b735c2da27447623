// Everything about rate-limit response headers: the formats, their options and validation, the
// fields each format sends, and how both adapters write them. A new header format is a change
// to this file alone.
import { InvalidOptionError } from '@memkit/client'
import { describeWindow } from './duration.js'
import type { RateLimitInfo } from './info.js'
import { partitionKey } from './key.js'
import type { RateLimitResult } from './limiter.js'
import { boolean, oneOf } from './options.js'

export type HeaderFormat = 'legacy' | 'draft-6' | 'draft-7' | 'draft-8'
export const HEADER_FORMATS: readonly HeaderFormat[] = ['legacy', 'draft-6', 'draft-7', 'draft-8']

/** The header options both adapters take. `Req` is the framework's request. */
export interface HeaderOptions<Req> {
  /**
   * Header format(s): `'legacy'` (`X-RateLimit-*`), `'draft-6'`, `'draft-7'`, `'draft-8'` (the
   * IETF RateLimit header drafts), an array of those, or `'none'` / `false`. Default `'legacy'`.
   */
  headers?: HeaderFormat | 'none' | boolean | readonly HeaderFormat[]
  /** `X-RateLimit-Reset` as Unix epoch seconds (`'epoch'`) or seconds until the reset (`'delta'`). Default `'epoch'`. */
  resetFormat?: 'epoch' | 'delta'
  /** Send `Retry-After` (seconds, at least 1) on blocked responses, whatever `headers` says. Default `true`. */
  retryAfterHeader?: boolean
  /** Policy name in draft-8 headers. Default `"<limit>-in-<window>"` (e.g. `"100-in-1min"`), as express-rate-limit. */
  policyName?: string | ((req: Req, info: RateLimitInfo) => string)
}

export const HEADER_OPTION_NAMES: readonly string[] = [
  'headers',
  'resetFormat',
  'retryAfterHeader',
  'policyName',
]

/** What `rateLimitHeaders` needs: the formats and their settings. */
export interface HeaderFormatConfig {
  readonly formats: readonly HeaderFormat[]
  readonly resetFormat: 'epoch' | 'delta'
  readonly retryAfterHeader: boolean
  /** Window length in milliseconds (`w=` in the policies). */
  readonly windowMs: number
}

/** The validated header options of one limiter. */
export interface HeaderConfig<Req> extends HeaderFormatConfig {
  readonly policyName: HeaderOptions<Req>['policyName']
}

/** A header to set, or (`append`) to add to a value an earlier limiter already set. */
export interface HeaderField {
  readonly name: string
  readonly value: string
  readonly append: boolean
}

/** Validates the header options once, at construction. */
export function parseHeaderOptions<Req>(options: HeaderOptions<Req>, windowMs: number): HeaderConfig<Req> {
  const policyName = options.policyName
  if (policyName !== undefined && typeof policyName !== 'string' && typeof policyName !== 'function') {
    throw new InvalidOptionError('`policyName` must be a string or a function')
  }
  return Object.freeze({
    formats: parseFormats(options.headers),
    resetFormat: oneOf(options.resetFormat, 'resetFormat', ['epoch', 'delta'] as const, 'epoch'),
    retryAfterHeader: boolean(options.retryAfterHeader, 'retryAfterHeader', true),
    windowMs,
    policyName,
  })
}

function parseFormats(value: unknown): readonly HeaderFormat[] {
  if (value === undefined || value === true) return Object.freeze(['legacy'] as HeaderFormat[])
  if (value === false || value === 'none') return Object.freeze([])
  const list = Array.isArray(value) ? value : [value]
  for (const format of list) {
    if (!HEADER_FORMATS.includes(format as HeaderFormat)) {
      throw new InvalidOptionError(
        `\`headers\` must be ${HEADER_FORMATS.map((f) => `'${f}'`).join(', ')}, an array of those, or 'none'; got ${JSON.stringify(format)}`,
      )
    }
  }
  if (new Set(list).size !== list.length) throw new InvalidOptionError('`headers` lists a format twice')
  const drafts = list.filter((format) => format === 'draft-6' || format === 'draft-7')
  if (drafts.length > 1) {
    throw new InvalidOptionError(
      '`headers` may hold only one of draft-6 and draft-7 (both set RateLimit-Policy)',
    )
  }
  return Object.freeze([...list] as HeaderFormat[])
}

/**
 * The header fields for one decided request. A request let through because memcached failed
 * gets none (the state is unknown); one refused because memcached failed gets only
 * `Retry-After`; every other decision gets its formats.
 */
export function headerFields<Req>(
  config: HeaderConfig<Req>,
  result: RateLimitResult,
  req: Req,
  info: RateLimitInfo,
  now: number,
): HeaderField[] {
  if (result.source === 'fail-open') return []
  if (result.source === 'fail-closed') {
    return config.retryAfterHeader ? [retryAfter(result)] : []
  }
  const name = config.formats.includes('draft-8') ? policyNameOf(config, result, req, info) : ''
  return rateLimitHeaders(config, result, now, name)
}

function policyNameOf<Req>(
  config: HeaderConfig<Req>,
  result: RateLimitResult,
  req: Req,
  info: RateLimitInfo,
): string {
  const { policyName } = config
  if (policyName === undefined) return defaultPolicyName(result.limit, config.windowMs)
  return typeof policyName === 'string' ? policyName : policyName(req, info)
}

/** Seconds until the reset, rounded up, never negative (express-rate-limit's `getResetSeconds`). */
function resetSeconds(result: RateLimitResult, now: number): number {
  return Math.max(0, Math.ceil((result.resetTime - now) / 1000))
}

function retryAfter(result: RateLimitResult): HeaderField {
  return { name: 'Retry-After', value: String(result.retryAfter), append: false }
}

/**
 * The rate-limit header fields for a result, in the exact text express-rate-limit 8 sends for
 * the same state, so clients written against it read memkit's headers unchanged:
 *
 * - `legacy`: `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (Unix epoch
 *   seconds, rounded up; `resetFormat: 'delta'` sends seconds until the reset instead).
 * - `draft-6`: `RateLimit-Policy: 100;w=60`, `RateLimit-Limit`, `RateLimit-Remaining`,
 *   `RateLimit-Reset` (seconds until the reset).
 * - `draft-7`: `RateLimit-Policy: 100;w=60` and `RateLimit: limit=100, remaining=99, reset=60`.
 * - `draft-8`: `RateLimit: "100-in-1min"; r=99; t=60` and
 *   `RateLimit-Policy: "100-in-1min"; q=100; w=60; pk=:<partition key>:`, appended to what an
 *   earlier limiter set (structured-field lists combine).
 *
 * Plus `Retry-After` (whole seconds, at least 1) on blocked responses.
 */
export function rateLimitHeaders(
  config: HeaderFormatConfig,
  result: RateLimitResult,
  now: number,
  policyName: string,
): HeaderField[] {
  const fields: HeaderField[] = []
  const { limit, remaining } = result
  const windowSeconds = Math.ceil(config.windowMs / 1000)
  for (const format of config.formats) {
    switch (format) {
      case 'legacy': {
        const reset =
          config.resetFormat === 'epoch' ? Math.ceil(result.resetTime / 1000) : resetSeconds(result, now)
        fields.push(
          { name: 'X-RateLimit-Limit', value: String(limit), append: false },
          { name: 'X-RateLimit-Remaining', value: String(remaining), append: false },
          { name: 'X-RateLimit-Reset', value: String(reset), append: false },
        )
        break
      }
      case 'draft-6':
        fields.push(
          { name: 'RateLimit-Policy', value: `${limit};w=${windowSeconds}`, append: false },
          { name: 'RateLimit-Limit', value: String(limit), append: false },
          { name: 'RateLimit-Remaining', value: String(remaining), append: false },
          { name: 'RateLimit-Reset', value: String(resetSeconds(result, now)), append: false },
        )
        break
      case 'draft-7':
        fields.push(
          { name: 'RateLimit-Policy', value: `${limit};w=${windowSeconds}`, append: false },
          {
            name: 'RateLimit',
            value: `limit=${limit}, remaining=${remaining}, reset=${resetSeconds(result, now)}`,
            append: false,
          },
        )
        break
      case 'draft-8':
        fields.push(
          {
            name: 'RateLimit',
            value: `"${policyName}"; r=${remaining}; t=${resetSeconds(result, now)}`,
            append: true,
          },
          {
            name: 'RateLimit-Policy',
            value: `"${policyName}"; q=${limit}; w=${windowSeconds}; pk=:${partitionKey(result.key)}:`,
            append: true,
          },
        )
        break
    }
  }
  if (!result.allowed && config.retryAfterHeader) fields.push(retryAfter(result))
  return fields
}

/** express-rate-limit's default draft-8 policy name: `"<limit>-in-<window>"`, e.g. `"100-in-1min"`. */
export function defaultPolicyName(limit: number, windowMs: number): string {
  return `${limit}-in-${describeWindow(windowMs)}`
}

/** Where an adapter's response headers are read and written (Express's `res`, a view of Fastify's `reply`). */
export interface HeaderTarget {
  getHeader(name: string): unknown
  setHeader(name: string, value: string): unknown
}

/** Writes the fields: set, or (`append`) joined to a value an earlier limiter already set. */
export function writeHeaders(target: HeaderTarget, fields: readonly HeaderField[]): void {
  for (const { name, value, append } of fields) {
    const existing = append ? target.getHeader(name) : undefined
    target.setHeader(
      name,
      existing === undefined
        ? value
        : `${Array.isArray(existing) ? existing.join(', ') : String(existing)}, ${value}`,
    )
  }
}
