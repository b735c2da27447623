// @memkit/client/status: an opt-in status page for an application using memkit. One HTML page
// (no external assets) that polls its own JSON: the pool's servers, response-cache hit ratios
// per route, and rate-limit blocks per minute. Framework-free: `handle(req, res)` is a plain
// Node handler; Express mounts it as is, Fastify through reply.raw (see the README).
import { randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { MemkitClient } from './memkit-client.js'
import type { ServerStats } from './stats.js'

/** What @memkit/rate-limit's metrics() returns (only the fields the page shows). */
export interface RateLimitMetricsLike {
  name: string
  algorithm?: string
  windowMs?: number
  limit?: number | null
  totals: { allowed: number; blocked: number; storeErrors?: number }
  perMinute: Array<{ minute: number; allowed: number; blocked: number }>
}

/** What @memkit/response-cache's metrics() returns (only the fields the page shows). */
export interface ResponseCacheMetricsLike {
  routes: Record<string, { hit: number; miss: number; stale: number; bypass: number; hitRatio: number }>
}

type Source<T> = () => T | T[] | undefined

export interface StatusPageOptions {
  client: MemkitClient
  /** Page title. Default `'memkit'`. */
  title?: string
  /** Rate limiters to show: functions returning metrics() snapshots (one or many). */
  rateLimits?: Array<Source<RateLimitMetricsLike>>
  /** Response caches to show: functions returning metrics() snapshots. */
  responseCaches?: Array<Source<ResponseCacheMetricsLike>>
  /** How often the page refreshes, in ms. Default `2000`. */
  refreshMs?: number
}

export interface StatusSnapshot {
  title: string
  generatedAt: number
  servers: ServerStats[]
  caches: Array<{ route: string; hit: number; miss: number; stale: number; bypass: number; hitRatio: number }>
  rateLimits: Array<{
    name: string
    algorithm?: string
    windowMs?: number
    limit?: number | null
    allowed: number
    blocked: number
    perMinute: Array<{ minute: number; allowed: number; blocked: number }>
  }>
}

export interface StatusPage {
  /** The figures, as the page's JSON shows them. */
  snapshot(): Promise<StatusSnapshot>
  /** The HTML page; `nonce` is the CSP nonce of its inline script and style. */
  html(nonce?: string): string
  /** Serves the page, or the JSON with `?format=json`. Never cached; safe headers set. */
  handle(req: IncomingMessage, res: ServerResponse): void
}

function collect<T>(sources: Array<Source<T>> | undefined): T[] {
  const out: T[] = []
  for (const source of sources ?? []) {
    const value = source()
    if (Array.isArray(value)) out.push(...value)
    else if (value !== undefined) out.push(value)
  }
  return out
}

export function createStatusPage(options: StatusPageOptions): StatusPage {
  const title = options.title ?? 'memkit'
  const refreshMs = options.refreshMs ?? 2000

  async function snapshot(): Promise<StatusSnapshot> {
    const servers = (await options.client.stats()).map(({ raw: _raw, ...summary }) => summary)
    const caches = collect(options.responseCaches).flatMap((metrics) =>
      Object.entries(metrics.routes).map(([route, c]) => ({
        route,
        hit: c.hit,
        miss: c.miss,
        stale: c.stale,
        bypass: c.bypass,
        hitRatio: c.hitRatio,
      })),
    )
    const rateLimits = mergeByName(collect(options.rateLimits))
    return { title, generatedAt: Date.now(), servers, caches, rateLimits }
  }

  function html(nonce = ''): string {
    const n = nonce ? ` nonce="${nonce}"` : ''
    return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style${n}>${STYLE}</style></head>
<body>
<header><h1>${escapeHtml(title)}</h1><span id="updated" data-testid="updated">loading…</span></header>
<section><h2>Servers</h2><table data-testid="servers"><thead><tr><th>server</th><th>state</th><th>hit ratio</th><th>memory</th><th>items</th><th>evictions</th><th>connections</th><th>uptime</th></tr></thead><tbody></tbody></table></section>
<section><h2>Response cache</h2><table data-testid="caches"><thead><tr><th>route</th><th>hit ratio</th><th>hits</th><th>stale</th><th>misses</th><th>bypass</th></tr></thead><tbody></tbody></table></section>
<section><h2>Rate limits</h2><table data-testid="rate-limits"><thead><tr><th>limiter</th><th>limit</th><th>allowed</th><th>blocked</th><th>blocked per minute, last 15 minutes</th></tr></thead><tbody></tbody></table></section>
<script${n}>const REFRESH_MS = ${Number(refreshMs)};${SCRIPT}</script>
</body></html>
`
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://status.invalid')
    res.setHeader('cache-control', 'no-store')
    res.setHeader('x-content-type-options', 'nosniff')
    if (url.searchParams.get('format') === 'json') {
      snapshot().then(
        (data) => {
          res.setHeader('content-type', 'application/json; charset=utf-8')
          res.end(JSON.stringify(data))
        },
        (error: Error) => {
          res.statusCode = 500
          res.setHeader('content-type', 'application/json; charset=utf-8')
          res.end(JSON.stringify({ error: error.message }))
        },
      )
      return
    }
    const nonce = randomBytes(16).toString('base64')
    res.setHeader(
      'content-security-policy',
      `default-src 'none'; connect-src 'self'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; base-uri 'none'; frame-ancestors 'none'`,
    )
    res.setHeader('content-type', 'text/html; charset=utf-8')
    res.end(html(nonce))
  }

  return { snapshot, html, handle }
}

/**
 * Limiters with the same name share one counter (Fastify creates one per route, HEAD routes
 * included), so the page shows one row per name with their figures added up.
 */
function mergeByName(limiters: RateLimitMetricsLike[]): StatusSnapshot['rateLimits'] {
  const rows = new Map<string, StatusSnapshot['rateLimits'][number]>()
  for (const m of limiters) {
    const row = rows.get(m.name)
    if (!row) {
      rows.set(m.name, {
        name: m.name,
        algorithm: m.algorithm,
        windowMs: m.windowMs,
        limit: m.limit,
        allowed: m.totals.allowed,
        blocked: m.totals.blocked,
        perMinute: m.perMinute.map(({ minute, allowed, blocked }) => ({ minute, allowed, blocked })),
      })
      continue
    }
    row.allowed += m.totals.allowed
    row.blocked += m.totals.blocked
    for (const bucket of m.perMinute) {
      const same = row.perMinute.find((b) => b.minute === bucket.minute)
      if (same) {
        same.allowed += bucket.allowed
        same.blocked += bucket.blocked
      } else row.perMinute.push({ minute: bucket.minute, allowed: bucket.allowed, blocked: bucket.blocked })
    }
    row.perMinute.sort((a, b) => a.minute - b.minute)
  }
  return [...rows.values()]
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

const STYLE = `
body{font:14px/1.4 system-ui,Helvetica,Arial,sans-serif;margin:24px;color:#1d2330;background:#fafbfc}
header{display:flex;align-items:baseline;gap:16px}h1{margin:0;font-size:22px}#updated{color:#6a7180}
h2{font-size:16px;margin:28px 0 8px}table{border-collapse:collapse;background:#fff;min-width:640px}
th,td{border:1px solid #e1e4e8;padding:6px 10px;text-align:right}th:first-child,td:first-child{text-align:left}
th{background:#f1f3f6;font-weight:600}.up{color:#1a7f37;font-weight:600}.down{color:#cf222e;font-weight:600}
.bar{display:inline-block;width:120px;height:8px;background:#e1e4e8;margin-left:8px;vertical-align:middle}
.bar>i{display:block;height:100%;background:#2f6fdb}.spark{display:inline-flex;gap:2px;align-items:flex-end;height:24px}
.spark>i{display:block;width:6px;background:#cf222e;min-height:1px}.empty{color:#6a7180;font-style:italic}`

// The page's script builds every cell with textContent: figures and names never become markup.
const SCRIPT = `
const $ = (s) => document.querySelector(s)
function cell(row, text, field, value) {
  const td = document.createElement('td'); td.textContent = text
  if (field) { td.dataset.field = field; if (value !== undefined && value !== null) td.dataset.value = String(value) }
  row.appendChild(td); return td
}
function pct(x) { return x === undefined || x === null ? '–' : (x * 100).toFixed(1) + '%' }
function mib(x) { return (x / 1048576).toFixed(1) + ' MiB' }
function duration(s) { if (s === undefined) return '–'; const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60); return d ? d + 'd ' + h + 'h' : h ? h + 'h ' + m + 'm' : m + 'm ' + (s % 60) + 's' }
function fill(table, rows, empty) {
  const body = $(table + ' tbody'); body.replaceChildren()
  if (rows.length === 0) { const tr = body.insertRow(); const td = cell(tr, empty); td.colSpan = 8; td.className = 'empty' }
  return body
}
function render(data) {
  $('#updated').textContent = 'updated ' + new Date(data.generatedAt).toLocaleTimeString()
  const servers = fill('[data-testid=servers]', data.servers, 'no servers')
  for (const s of data.servers) {
    const tr = servers.insertRow(); tr.dataset.server = s.server
    cell(tr, s.server, 'server', s.server)
    const state = cell(tr, s.up ? 'up' : 'down', 'up', s.up); state.className = s.up ? 'up' : 'down'
    if (!s.up && s.error) state.title = s.error.code + ': ' + s.error.message
    cell(tr, pct(s.hitRatio), 'hitRatio', s.hitRatio)
    const mem = cell(tr, s.bytes === undefined ? '–' : mib(s.bytes) + ' / ' + mib(s.limitMaxbytes), 'bytes', s.bytes)
    if (s.limitMaxbytes !== undefined) { mem.dataset.limit = String(s.limitMaxbytes); const bar = document.createElement('span'); bar.className = 'bar'; const i = document.createElement('i'); i.style.width = Math.min(100, (s.memoryUsage || 0) * 100) + '%'; bar.appendChild(i); mem.appendChild(bar) }
    cell(tr, s.currItems === undefined ? '–' : String(s.currItems), 'currItems', s.currItems)
    cell(tr, s.evictions === undefined ? '–' : String(s.evictions), 'evictions', s.evictions)
    cell(tr, s.currConnections === undefined ? '–' : String(s.currConnections), 'currConnections', s.currConnections)
    cell(tr, duration(s.uptime), 'uptime', s.uptime)
  }
  const caches = fill('[data-testid=caches]', data.caches, 'no cached routes yet')
  for (const c of data.caches) {
    const tr = caches.insertRow(); tr.dataset.route = c.route
    cell(tr, c.route, 'route', c.route); cell(tr, pct(c.hitRatio), 'hitRatio', c.hitRatio)
    cell(tr, String(c.hit), 'hit', c.hit); cell(tr, String(c.stale), 'stale', c.stale)
    cell(tr, String(c.miss), 'miss', c.miss); cell(tr, String(c.bypass), 'bypass', c.bypass)
  }
  const limits = fill('[data-testid=rate-limits]', data.rateLimits, 'no rate limiters')
  for (const l of data.rateLimits) {
    const tr = limits.insertRow(); tr.dataset.limiter = l.name
    cell(tr, l.name, 'name', l.name)
    cell(tr, l.limit === null || l.limit === undefined ? 'dynamic' : l.limit + ' / ' + (l.windowMs / 1000) + ' s', 'limit', l.limit)
    cell(tr, String(l.allowed), 'allowed', l.allowed); cell(tr, String(l.blocked), 'blocked', l.blocked)
    const td = cell(tr, '', 'perMinute', l.perMinute.map((m) => m.blocked).join(','))
    const spark = document.createElement('span'); spark.className = 'spark'
    const max = Math.max(1, ...l.perMinute.map((m) => m.blocked))
    for (const m of l.perMinute) { const i = document.createElement('i'); i.style.height = (m.blocked / max * 24) + 'px'; i.title = new Date(m.minute).toLocaleTimeString() + ': ' + m.blocked + ' blocked'; spark.appendChild(i) }
    td.appendChild(spark)
  }
  document.body.dataset.ready = 'true'
}
async function refresh() {
  try { const response = await fetch(location.pathname + '?format=json', { cache: 'no-store' }); render(await response.json()) }
  catch (error) { $('#updated').textContent = 'cannot reach the server: ' + error.message }
}
refresh(); setInterval(refresh, REFRESH_MS)
`
