// Invalidation: a successful unsafe request removes the entries of its URL and of the same-origin
// URLs in its Location and Content-Location (RFC 9111 §4.4); invalidate() removes one URL on
// request. Both act over http and https, so an entry kept apart by scheme (a redirect to https,
// say) never outlives its resource. Tag invalidation is tag-generations.ts'.
import { originOf, pathAndQuery, rawUrlKey, resolveSameOrigin } from './key.js'
import type { CacheConfig } from './options.js'
import type { Storage } from './storage.js'
import type { Transaction } from './transaction.js'

/** After a successful unsafe request: its URL and same-origin `locations`. Failures go to `report`. */
export async function invalidateAfterUnsafe(
  storage: Storage,
  tx: Transaction,
  locations: ReadonlyArray<string | undefined>,
  report: (error: unknown) => void,
): Promise<void> {
  const paths = new Set([pathAndQuery(tx.req.url)])
  for (const value of locations) {
    if (!value) continue
    const path = resolveSameOrigin(value, tx.origin, tx.req.url)
    if (path !== undefined) paths.add(path)
  }
  await deleteUrls(storage, bothSchemes(tx.origin), [...paths], report)
}

/**
 * One URL: a path with `authority` (`host[:port]`, default: every host of `hosts` that is not a
 * wildcard, else none), or an absolute URL. Rejects when memcached fails.
 */
export async function invalidateUrl(
  storage: Storage,
  config: CacheConfig,
  url: string,
  authority: string | undefined,
): Promise<void> {
  let path = url
  let authorities: string[]
  if (!url.startsWith('/')) {
    const parsed = new URL(url)
    path = parsed.pathname + parsed.search
    authorities = [authority ?? parsed.host]
  } else if (authority !== undefined) {
    authorities = [authority]
  } else {
    authorities = config.hosts?.filter((h) => !h.startsWith('*.')) ?? ['']
  }
  const origins = authorities.flatMap((a) => {
    const { hostname, port } = a ? new URL(`http://${a}`) : { hostname: '', port: '' }
    return bothSchemes(originOf('http', hostname, config.ignorePort ? '' : port))
  })
  await deleteUrls(storage, origins, [path], (error) => {
    throw error
  })
}

/** An origin and the same one over the other scheme. */
function bothSchemes(origin: string): string[] {
  const [scheme, rest] = origin.split('://') as [string, string]
  const other = scheme === 'https' ? 'http' : 'https'
  const [host, port] = rest.includes(':') && !rest.endsWith(']') ? rest.split(/:(?=[^:]*$)/) : [rest, '']
  return [origin, originOf(other, host!, port ?? '')]
}

/** Deletes the entries of `paths` under each origin; `onError` decides what a failure does. */
async function deleteUrls(
  storage: Storage,
  origins: string[],
  paths: string[],
  onError: (error: unknown) => void,
): Promise<void> {
  await Promise.all(
    origins.flatMap((origin) =>
      paths.map((path) => storage.deleteUrl(rawUrlKey(origin, path)).catch(onError)),
    ),
  )
}
