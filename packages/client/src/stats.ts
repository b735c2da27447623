import type { MemkitError } from './errors.js'

/** One server's health and figures, as `client.stats()` reports them. */
export interface ServerStats {
  /** `"host:port"` */
  server: string
  /** Answered just now (and not marked down). */
  up: boolean
  /** Why the server is not up, when it is not. */
  error?: { code: string; message: string }
  version?: string
  /** Seconds since the server started. */
  uptime?: number
  /** Items stored now. */
  currItems?: number
  /** Bytes used by items now. */
  bytes?: number
  /** The memory limit (`-m`) in bytes. */
  limitMaxbytes?: number
  /** `bytes / limitMaxbytes`, 0..1. */
  memoryUsage?: number
  /** Items evicted to make room since start. */
  evictions?: number
  /** Open client connections on the server. */
  currConnections?: number
  getHits?: number
  getMisses?: number
  /** `get_hits / (get_hits + get_misses)`; undefined before any get. */
  hitRatio?: number
  /** Every `stats` figure, as the server sent it. */
  raw?: Record<string, string>
}

export function summarizeStats(server: string, raw: Record<string, string>): ServerStats {
  const num = (name: string) => (raw[name] === undefined ? undefined : Number(raw[name]))
  const hits = num('get_hits')
  const misses = num('get_misses')
  const bytes = num('bytes')
  const limit = num('limit_maxbytes')
  const lookups = (hits ?? 0) + (misses ?? 0)
  return {
    server,
    up: true,
    version: raw.version,
    uptime: num('uptime'),
    currItems: num('curr_items'),
    bytes,
    limitMaxbytes: limit,
    memoryUsage: bytes !== undefined && limit ? bytes / limit : undefined,
    evictions: num('evictions'),
    currConnections: num('curr_connections'),
    getHits: hits,
    getMisses: misses,
    hitRatio: lookups > 0 ? (hits ?? 0) / lookups : undefined,
    raw,
  }
}

export function downStats(server: string, error: MemkitError | Error): ServerStats {
  return {
    server,
    up: false,
    error: { code: (error as MemkitError).code ?? 'ERR_MEMKIT', message: error.message },
  }
}
