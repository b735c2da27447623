// RFC 9213 targeted cache-control fields: `CDN-Cache-Control` and fields like it, Structured Field
// Dictionaries whose directives mean what Cache-Control's do, aimed at one class of cache. The
// first field of the cache's target list with a valid, non-empty value replaces Cache-Control and
// Expires for this cache; the fields themselves pass through to the client.
import { parseDictionary, Token } from 'structured-headers'
import type { Directives } from './cache-control.js'
import { headerText } from './headers.js'
import type { HeaderList } from './types.js'

/** Directives whose value is delta-seconds: an Integer >= 0 in a targeted field. */
const DELTA_SECONDS = new Set(['max-age', 's-maxage', 'stale-while-revalidate', 'stale-if-error'])

/**
 * The directives of the first targeted field among `names` (lowercase, in priority order) that is
 * present, non-empty and a valid Dictionary; undefined when there is none (RFC 9213 §2.2: an
 * invalid field is ignored). Members of the wrong type are dropped (§2.1: "SHOULD NOT consume"),
 * parameters ignored.
 */
export function targetedDirectives(headers: HeaderList, names: readonly string[]): Directives | undefined {
  for (const name of names) {
    const text = headerText(headers, name)
    if (text === undefined || text.trim() === '') continue
    let dictionary: ReturnType<typeof parseDictionary>
    try {
      dictionary = parseDictionary(text)
    } catch {
      continue
    }
    if (dictionary.size === 0) continue
    const out = new Map<string, string | true>()
    for (const [key, [value]] of dictionary) {
      const directive = directiveValue(key, value)
      if (directive !== undefined) out.set(key, directive)
    }
    return out
  }
  return undefined
}

function directiveValue(key: string, value: unknown): string | true | undefined {
  if (DELTA_SECONDS.has(key)) {
    return typeof value === 'number' && Number.isInteger(value) && value >= 0 ? String(value) : undefined
  }
  if (value === true) return true
  if (typeof value === 'string') return value
  if (value instanceof Token) return value.toString()
  if (typeof value === 'number') return String(value)
  // false (`?0`: absent), inner lists, byte sequences, dates: no directive takes them.
  return undefined
}
