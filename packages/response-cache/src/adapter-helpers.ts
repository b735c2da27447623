// What the Express middleware and the Fastify plugin share: turning framework values into the
// cache's request and header shapes. Framework-free (both adapters pass plain values in).
import type { HeaderList, RouteSettings } from './types.js'

export { SAFE_METHODS } from './request.js'

/** The route's tags for this request (a tags function is called with the framework's request). */
export function resolveTags<Req>(settings: RouteSettings, request: Req): readonly string[] {
  const tags = settings.tags
  if (tags === undefined) return []
  if (typeof tags !== 'function') return tags
  const out = (tags as (r: Req) => readonly string[])(request)
  if (!Array.isArray(out) || out.some((t) => typeof t !== 'string' || t.length === 0)) {
    throw new TypeError('the tags function must return an array of non-empty strings')
  }
  return out
}

/** Headers already on the response when the cache first sees it (set by earlier middleware). */
export function presetFrom(headers: Record<string, unknown>): Map<string, string> | undefined {
  const names = Object.keys(headers)
  if (names.length === 0) return undefined
  const preset = new Map<string, string>()
  for (const name of names) {
    const value = headers[name]
    if (value !== undefined) preset.set(name, Array.isArray(value) ? value.join(', ') : String(value))
  }
  return preset
}

/** A header record as a list (values as strings). */
export function headerListFrom(headers: Record<string, unknown>): HeaderList {
  const out: HeaderList = []
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue
    out.push([name, Array.isArray(value) ? value.map(String) : String(value)])
  }
  return out
}

/** The first value of a response header, as a string. */
export function headerString(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined
  return Array.isArray(value) ? String(value[0]) : String(value)
}

/** The port of an authority (`host:port`, `[v6]:port`); '' when it names none. */
export function portOf(authority: string | undefined): string {
  if (!authority) return ''
  const m = /:(\d*)$/.exec(authority)
  return m && !authority.endsWith(']') ? (m[1] ?? '') : ''
}
