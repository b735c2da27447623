import { createHash } from 'node:crypto'
import { normalizeRequestHeader } from './headers.js'
import type { RequestHeaders } from './types.js'

// Every memcached key is the prefix plus a SHA-256 (base64url, 43 characters), so any URL fits
// memcached's 250-byte limit and client-controlled text never reaches the key line. The unhashed
// key travels inside the entry and is compared on every read.

export function hashKey(text: string): string {
  return createHash('sha256').update(text).digest('base64url')
}

const DEFAULT_PORTS: Record<string, string> = { http: '80', https: '443' }

/**
 * The origin as keys hold it (RFC 6454): `scheme://host`, plus `:port` unless the request gave
 * none or the scheme's default. `host` lowercased, as the framework resolved it.
 */
export function originOf(scheme: string, host: string, port: string): string {
  const s = scheme.toLowerCase()
  const p = port && port !== DEFAULT_PORTS[s] ? `:${port}` : ''
  return `${s}://${host.toLowerCase()}${p}`
}

/**
 * The unhashed key of a URL: method class (GET and HEAD share entries), the origin (scheme, host,
 * port) and the path and query exactly as the router received them.
 */
export function rawUrlKey(origin: string, url: string): string {
  return `G\n${origin}\n${pathAndQuery(url)}`
}

/** The variant's unhashed key: the URL key plus the normalized values of the Vary'd request headers. */
export function rawVariantKey(rawKey: string, varyValues: readonly string[]): string {
  return `${rawKey}\n${varyValues.join('\n')}`
}

export function varyValuesOf(names: readonly string[], headers: RequestHeaders): string[] {
  return names.map((name) => normalizeRequestHeader(name, headers[name]))
}

/** Absolute-form request targets ("GET http://host/x") are reduced to their path and query. */
export function pathAndQuery(url: string): string {
  if (url.startsWith('/')) return url
  try {
    const parsed = new URL(url)
    return parsed.pathname + parsed.search
  } catch {
    return url
  }
}

/**
 * The path and query of `location` (a Location or Content-Location value) resolved against the
 * request, or undefined when it points to another host or port (RFC 9111 §4.4: only same-origin
 * URIs are invalidated; both schemes are invalidated, see cache.ts).
 */
export function resolveSameOrigin(location: string, origin: string, requestUrl: string): string | undefined {
  const value = location.trim()
  if (!value) return undefined
  try {
    const base = new URL(
      `${origin.endsWith('://') ? `${origin}localhost` : origin}${pathAndQuery(requestUrl)}`,
    )
    const target = new URL(value, base)
    if (target.host !== base.host) return undefined
    // A relative reference that is already a path keeps its spelling, as the router will see it.
    if (value.startsWith('/') && !value.startsWith('//')) return value.split('#')[0]
    return target.pathname + target.search
  } catch {
    return undefined
  }
}

export class KeySpace {
  constructor(readonly prefix: string) {}

  url(rawKey: string): string {
    return `${this.prefix}${hashKey(rawKey)}`
  }

  variant(indexId: string, rawVariant: string): string {
    return `${this.prefix}v:${hashKey(`${indexId}\n${rawVariant}`)}`
  }

  chunk(id: string, i: number): string {
    return `${this.prefix}c:${id}:${i}`
  }

  tag(tag: string): string {
    return `${this.prefix}t:${hashKey(tag)}`
  }

  /** Key of the lease taken while one request fills this entry. */
  lease(storeKey: string): string {
    return `${this.prefix}l:${storeKey.slice(this.prefix.length)}`
  }

  /** Key of the lease taken while one background refresh runs. */
  refreshLease(storeKey: string): string {
    return `${this.prefix}r:${storeKey.slice(this.prefix.length)}`
  }
}
