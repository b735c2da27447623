// Preconditions (RFC 9110 §13) and byte ranges (§14) evaluated against a stored response.
import { splitList } from './cache-control.js'
import { parseHttpDate } from './http-date.js'

/** The client's own conditional/range headers, taken off the request before the handler runs. */
export interface ClientConditions {
  ifMatch?: string
  ifNoneMatch?: string
  ifModifiedSince?: string
  ifUnmodifiedSince?: string
  range?: string
  ifRange?: string
}

export const CONDITIONAL_HEADERS = [
  'if-match',
  'if-none-match',
  'if-modified-since',
  'if-unmodified-since',
  'range',
  'if-range',
] as const

/** Entity-tags of a list field; `['*']` for the wildcard. Invalid members are skipped. */
export function parseEntityTags(text: string): string[] {
  return splitList(text).filter((m) => m === '*' || /^(?:W\/)?"[^"]*"$/.test(m))
}

function opaque(tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag
}

export function weakMatch(a: string, b: string): boolean {
  return opaque(a) === opaque(b)
}

export function strongMatch(a: string, b: string): boolean {
  return !a.startsWith('W/') && !b.startsWith('W/') && a === b
}

/**
 * 304, 412 or undefined (serve the representation), per RFC 9110 §13.2.2 for GET/HEAD.
 * `etag` and `lastModified` describe the stored response.
 */
export function evaluatePreconditions(
  c: ClientConditions,
  etag: string | undefined,
  lastModified: number | undefined,
): 304 | 412 | undefined {
  if (c.ifMatch !== undefined) {
    const tags = parseEntityTags(c.ifMatch)
    const ok = tags.includes('*') || (etag !== undefined && tags.some((t) => strongMatch(t, etag)))
    if (!ok) return 412
  } else if (c.ifUnmodifiedSince !== undefined && lastModified !== undefined) {
    const since = parseHttpDate(c.ifUnmodifiedSince)
    if (since !== undefined && lastModified > since) return 412
  }
  if (c.ifNoneMatch !== undefined) {
    const tags = parseEntityTags(c.ifNoneMatch)
    if (tags.includes('*') || (etag !== undefined && tags.some((t) => weakMatch(t, etag)))) return 304
    return undefined
  }
  if (c.ifModifiedSince !== undefined && lastModified !== undefined) {
    const since = parseHttpDate(c.ifModifiedSince)
    if (since !== undefined && lastModified <= since) return 304
  }
  return undefined
}

export type RangeResult =
  | { kind: 'full' }
  | { kind: 'partial'; start: number; end: number }
  | { kind: 'unsatisfiable' }

/**
 * One `bytes=` range against a body of `size` bytes. Several ranges, other units, or a failed
 * If-Range yield the full representation (a server may always ignore Range).
 */
export function evaluateRange(
  c: ClientConditions,
  size: number,
  etag: string | undefined,
  lastModified: string | undefined,
): RangeResult {
  if (c.range === undefined) return { kind: 'full' }
  if (c.ifRange !== undefined) {
    const v = c.ifRange.trim()
    const matches =
      v.startsWith('"') || v.startsWith('W/')
        ? etag !== undefined && strongMatch(v, etag)
        : v === lastModified
    if (!matches) return { kind: 'full' }
  }
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(c.range)
  if (!m || (m[1] === '' && m[2] === '')) return { kind: 'full' }
  let start: number
  let end: number
  if (m[1] === '') {
    const suffix = Number(m[2])
    if (suffix === 0) return { kind: 'unsatisfiable' }
    start = Math.max(0, size - suffix)
    end = size - 1
  } else {
    start = Number(m[1])
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)
    if (m[2] !== '' && Number(m[2]) < start) return { kind: 'full' }
  }
  if (start >= size || size === 0) return { kind: 'unsatisfiable' }
  return { kind: 'partial', start, end }
}
