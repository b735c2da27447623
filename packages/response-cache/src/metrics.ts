/** What the cache did with one response, as counted per route. */
export type Outcome = 'hit' | 'miss' | 'stale' | 'bypass'

export interface RouteCounters {
  hit: number
  miss: number
  stale: number
  bypass: number
  /** (hit + stale) / (hit + stale + miss); 0 before any cacheable request. */
  hitRatio: number
  /** Responses written to memcached (including refreshes and 304 updates). */
  stored: number
  /** Responses the cache declined to store, by reason (no-store, private, set-cookie, too-large...). */
  notStored: Record<string, number>
  /** Stale entries revalidated through the handler (conditional request answered 304). */
  revalidated: number
  /** Requests answered from another request's handler call (in-process or across processes). */
  collapsed: number
  /** Background refreshes started (stale-while-revalidate). */
  refreshes: number
}

export interface MetricsSnapshot {
  /** Milliseconds since the epoch when counting started (or was last reset). */
  since: number
  routes: Record<string, RouteCounters>
  total: RouteCounters
  /** memcached failures absorbed (the request went on uncached). */
  errors: number
  /** Stored data that failed validation (corrupt, foreign, wrong key, missing chunk) and was treated as a miss. */
  corrupt: number
  /** Bodies split into chunks because they exceeded one memcached item. */
  chunked: number
}

/** Labels beyond this many share one bucket, so unbounded route names cannot grow memory. */
const MAX_ROUTES = 500
const OVERFLOW = '(other)'

function blank(): RouteCounters {
  return {
    hit: 0,
    miss: 0,
    stale: 0,
    bypass: 0,
    hitRatio: 0,
    stored: 0,
    notStored: {},
    revalidated: 0,
    collapsed: 0,
    refreshes: 0,
  }
}

export class Metrics {
  #routes = new Map<string, RouteCounters>()
  #since = Date.now()
  errors = 0
  corrupt = 0
  chunked = 0

  route(label: string | undefined): RouteCounters {
    const name = label ?? '(unknown)'
    let counters = this.#routes.get(name)
    if (counters) return counters
    if (this.#routes.size >= MAX_ROUTES) {
      counters = this.#routes.get(OVERFLOW)
      if (!counters) {
        counters = blank()
        this.#routes.set(OVERFLOW, counters)
      }
      return counters
    }
    counters = blank()
    this.#routes.set(name, counters)
    return counters
  }

  outcome(label: string | undefined, outcome: Outcome): void {
    this.route(label)[outcome]++
  }

  notStored(label: string | undefined, reason: string): void {
    const r = this.route(label).notStored
    r[reason] = (r[reason] ?? 0) + 1
  }

  snapshot(): MetricsSnapshot {
    const routes: Record<string, RouteCounters> = {}
    const total = blank()
    for (const [name, c] of this.#routes) {
      routes[name] = withRatio({ ...c, notStored: { ...c.notStored } })
      for (const k of [
        'hit',
        'miss',
        'stale',
        'bypass',
        'stored',
        'revalidated',
        'collapsed',
        'refreshes',
      ] as const) {
        total[k] += c[k]
      }
      for (const [reason, n] of Object.entries(c.notStored)) {
        total.notStored[reason] = (total.notStored[reason] ?? 0) + n
      }
    }
    return {
      since: this.#since,
      routes,
      total: withRatio(total),
      errors: this.errors,
      corrupt: this.corrupt,
      chunked: this.chunked,
    }
  }

  reset(): void {
    this.#routes.clear()
    this.#since = Date.now()
    this.errors = 0
    this.corrupt = 0
    this.chunked = 0
  }
}

function withRatio(c: RouteCounters): RouteCounters {
  const served = c.hit + c.stale + c.miss
  c.hitRatio = served === 0 ? 0 : (c.hit + c.stale) / served
  return c
}
