import type { HeaderValue } from './types.js'

/** RFC 9111 §1.2.2: delta-seconds beyond what a cache can represent count as 2^31. */
export const MAX_DELTA_SECONDS = 2147483648

/**
 * Cache-Control directives, lowercased names. A directive without an argument maps to `true`;
 * with one, to its (unquoted) text. When a directive repeats, the first occurrence wins
 * (RFC 9111 §4.2.1 allows that or treating the response as stale).
 */
export type Directives = ReadonlyMap<string, string | true>

const EMPTY: Directives = new Map()

/**
 * Splits on commas that are not inside quoted strings, so `ext="max-age=1", max-age=5` yields
 * `max-age=5` and an extension whose value merely looks like a directive.
 */
export function parseCacheControl(value: HeaderValue | undefined): Directives {
  if (value === undefined) return EMPTY
  const text = Array.isArray(value) ? value.join(',') : value
  if (text.length === 0) return EMPTY
  const out = new Map<string, string | true>()
  for (const member of splitList(text)) {
    const eq = member.indexOf('=')
    const name = (eq === -1 ? member : member.slice(0, eq)).toLowerCase()
    if (!isToken(name)) continue
    if (out.has(name)) continue
    if (eq === -1) {
      out.set(name, true)
      continue
    }
    const raw = member.slice(eq + 1)
    out.set(name, raw.startsWith('"') ? unquote(raw) : raw)
  }
  return out
}

/**
 * delta-seconds (RFC 9111 §1.2.2): digits only. Returns undefined when absent, NaN when present
 * but invalid (a negative, fractional, single-quoted or empty value), which callers treat as stale.
 */
export function deltaSeconds(directives: Directives, name: string): number | undefined {
  const value = directives.get(name)
  if (value === undefined) return undefined
  if (value === true || !/^\d+$/.test(value)) return Number.NaN
  const n = Number(value)
  return Math.min(n, MAX_DELTA_SECONDS)
}

/** Field names listed in a qualified directive such as `no-cache="set-cookie, x-a"`; lowercased. */
export function listedFields(directives: Directives, name: string): string[] {
  const value = directives.get(name)
  if (typeof value !== 'string') return []
  return value
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean)
}

/** Comma-separated list members, trimmed, ignoring commas inside quoted strings; empty members dropped. */
export function splitList(text: string): string[] {
  const out: string[] = []
  let start = 0
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (quoted) {
      if (c === 0x5c)
        i++ // backslash escapes the next character
      else if (c === 0x22) quoted = false
    } else if (c === 0x22) {
      quoted = true
    } else if (c === 0x2c) {
      const member = text.slice(start, i).trim()
      if (member) out.push(member)
      start = i + 1
    }
  }
  const last = text.slice(start).trim()
  if (last) out.push(last)
  return out
}

function unquote(raw: string): string {
  let out = ''
  for (let i = 1; i < raw.length; i++) {
    const c = raw[i]!
    if (c === '\\') {
      i++
      out += raw[i] ?? ''
    } else if (c === '"') {
      return out
    } else {
      out += c
    }
  }
  return out
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/

export function isToken(text: string): boolean {
  return TOKEN.test(text)
}
