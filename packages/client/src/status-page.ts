// @memkit/client/status: an opt-in status page for an application using memkit: the pool's
// servers, response-cache hit ratios per route, and rate-limit blocks per minute.
//
// The page is rendered on the server with its figures in it (first paint shows data, and works
// without JavaScript); a small inline script then re-fetches the same URL every `refreshMs` and
// swaps the tables in. Every name and figure is HTML-escaped here, the script never builds
// markup from data, and a strict CSP with a per-response nonce allows only that script and style.
// Framework-free: `handle(req, res)` is a plain Node handler (Express mounts it as is; Fastify
// through reply.raw, see the README).
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
  /** The client whose servers are shown (its `stats()`). Required. */
  client: MemkitClient
  /** Page title. Default `'memkit'`. */
  title?: string
  /** Rate limiters to show: functions returning `metrics()` snapshots (one or an array). Default none. */
  rateLimits?: Array<Source<RateLimitMetricsLike>>
  /** Response caches to show: functions returning `metrics()` snapshots. Default none. */
  responseCaches?: Array<Source<ResponseCacheMetricsLike>>
  /** How often an open page refreshes itself, in milliseconds; `0` never. Default `2000`. */
  refreshMs?: number
}

export interface StatusSnapshot {
  title: string
  /** Epoch milliseconds. */
  generatedAt: number
  servers: ServerStats[]
  /** Every route the caches report, idle ones included (the HTML page lists those apart). */
  caches: Array<{ route: string; hit: number; miss: number; stale: number; bypass: number; hitRatio: number }>
  /** One row per limiter name (limiters sharing a name share a counter), idle ones included. */
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
  /** The figures, as the JSON (`?format=json`) shows them. */
  snapshot(): Promise<StatusSnapshot>
  /** The HTML page for a snapshot; `nonce` is the CSP nonce of its inline script and style. */
  html(snapshot: StatusSnapshot, nonce?: string): string
  /** Serves the page, or the JSON with `?format=json`. Never cached; safe headers set. */
  handle(req: IncomingMessage, res: ServerResponse): void
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

  function html(data: StatusSnapshot, nonce = ''): string {
    const n = nonce ? ` nonce="${escapeHtml(nonce)}"` : ''
    const script =
      refreshMs > 0 ? `<script${n}>const REFRESH_MS = ${Math.round(refreshMs)};${SCRIPT}</script>\n` : ''
    return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(data.title)}</title>
<style${n}>${STYLE}</style></head>
<body data-ready="true">
<header><h1>${escapeHtml(data.title)}</h1><span id="updated" data-testid="updated">${updated(data.generatedAt)}</span></header>
<main id="figures">${renderFigures(data)}</main>
${script}</body></html>
`
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://status.invalid')
    res.setHeader('cache-control', 'no-store')
    res.setHeader('x-content-type-options', 'nosniff')
    const json = url.searchParams.get('format') === 'json'
    snapshot().then(
      (data) => {
        if (json) {
          res.setHeader('content-type', 'application/json; charset=utf-8')
          res.end(JSON.stringify(data))
          return
        }
        const nonce = randomBytes(16).toString('base64')
        res.setHeader(
          'content-security-policy',
          `default-src 'none'; connect-src 'self'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
        )
        res.setHeader('content-type', 'text/html; charset=utf-8')
        res.end(html(data, nonce))
      },
      (error: Error) => {
        res.statusCode = 500
        res.setHeader('content-type', json ? 'application/json; charset=utf-8' : 'text/plain; charset=utf-8')
        res.end(json ? JSON.stringify({ error: error.message }) : `status unavailable: ${error.message}`)
      },
    )
  }

  return { snapshot, html, handle }
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

// ---- rendering (server side; every dynamic text goes through escapeHtml) -------------------

interface Cell {
  /** Column name, shown before the value when the table is stacked on a narrow screen. */
  label: string
  text: string
  /** `data-field` / `data-value`: the raw figure, for scripts and tests reading the page. */
  field?: string
  value?: unknown
  className?: string
  title?: string
  /** Extra markup after the text (already escaped). */
  after?: string
  /** Further attributes of the cell. */
  attrs?: Record<string, string>
}

function renderFigures(data: StatusSnapshot): string {
  // A limiter nobody has reached yet (a `global: false` plugin's own limiter, a route not yet
  // requested) and a route with no cache outcome yet are listed by name under their table,
  // not as rows of zeros.
  const limits = data.rateLimits.filter((l) => l.allowed + l.blocked > 0)
  const idleLimits = data.rateLimits.filter((l) => l.allowed + l.blocked === 0).map((l) => l.name)
  const caches = data.caches.filter((c) => c.hit + c.miss + c.stale + c.bypass > 0)
  const idleRoutes = data.caches.filter((c) => c.hit + c.miss + c.stale + c.bypass === 0).map((c) => c.route)

  const servers = table(
    'servers',
    'Servers',
    data.servers.map((s) => ({
      attrs: { 'data-server': s.server },
      cells: [
        { label: 'server', text: s.server, field: 'server', value: s.server },
        {
          label: 'state',
          text: s.up ? 'up' : 'down',
          field: 'up',
          value: s.up,
          className: s.up ? 'up' : 'down',
          title: !s.up && s.error ? `${s.error.code}: ${s.error.message}` : undefined,
        },
        { label: 'hit ratio', text: percent(s.hitRatio), field: 'hitRatio', value: s.hitRatio },
        {
          label: 'memory',
          text: s.bytes === undefined ? '–' : `${mib(s.bytes)} / ${mib(s.limitMaxbytes ?? 0)}`,
          field: 'bytes',
          value: s.bytes,
          attrs: s.limitMaxbytes === undefined ? undefined : { 'data-limit': String(s.limitMaxbytes) },
          after:
            s.limitMaxbytes === undefined
              ? ''
              : `<span class="bar"><i class="w${step(s.memoryUsage ?? 0, 10)}"></i></span>`,
        },
        { label: 'items', text: count(s.currItems), field: 'currItems', value: s.currItems },
        { label: 'evictions', text: count(s.evictions), field: 'evictions', value: s.evictions },
        {
          label: 'connections',
          text: count(s.currConnections),
          field: 'currConnections',
          value: s.currConnections,
        },
        { label: 'uptime', text: duration(s.uptime), field: 'uptime', value: s.uptime },
      ],
    })),
    'no servers',
  )
  const cacheTable = table(
    'caches',
    'Response cache',
    caches.map((c) => ({
      attrs: { 'data-route': c.route },
      cells: [
        { label: 'route', text: c.route, field: 'route', value: c.route },
        { label: 'hit ratio', text: percent(c.hitRatio), field: 'hitRatio', value: c.hitRatio },
        { label: 'hits', text: String(c.hit), field: 'hit', value: c.hit },
        { label: 'stale', text: String(c.stale), field: 'stale', value: c.stale },
        { label: 'misses', text: String(c.miss), field: 'miss', value: c.miss },
        { label: 'bypass', text: String(c.bypass), field: 'bypass', value: c.bypass },
      ],
    })),
    data.caches.length === 0 ? 'no response cache' : 'no cached route requested yet',
    idle('idle-routes', 'Routes not requested yet', idleRoutes),
  )
  const limitTable = table(
    'rate-limits',
    'Rate limits',
    limits.map((l) => {
      const max = Math.max(1, ...l.perMinute.map((m) => m.blocked))
      const bars = l.perMinute
        .map(
          (m) =>
            `<i class="h${step(m.blocked / max, 8)}" title="${minuteLabel(m.minute)}: ${m.blocked} blocked"></i>`,
        )
        .join('')
      return {
        attrs: { 'data-limiter': l.name },
        cells: [
          { label: 'limiter', text: l.name, field: 'name', value: l.name },
          {
            label: 'limit',
            text:
              l.limit === null || l.limit === undefined
                ? 'dynamic'
                : `${l.limit}${l.windowMs === undefined ? '' : ` / ${l.windowMs / 1000} s`}`,
            field: 'limit',
            value: l.limit,
          },
          { label: 'allowed', text: String(l.allowed), field: 'allowed', value: l.allowed },
          { label: 'blocked', text: String(l.blocked), field: 'blocked', value: l.blocked },
          {
            label: 'blocked per minute',
            text: '',
            field: 'perMinute',
            value: l.perMinute.map((m) => m.blocked).join(','),
            after: `<span class="spark">${bars}</span>`,
          },
        ],
      }
    }),
    data.rateLimits.length === 0 ? 'no rate limiters' : 'no request has reached a rate limiter yet',
    idle('idle-limiters', 'Limiters without requests yet', idleLimits),
  )
  return servers + cacheTable + limitTable
}

function table(
  id: string,
  heading: string,
  rows: Array<{ attrs: Record<string, string>; cells: Cell[] }>,
  empty: string,
  footer = '',
): string {
  const head = rows[0]?.cells.map((c) => `<th>${escapeHtml(c.label)}</th>`).join('') ?? ''
  const body =
    rows.length === 0
      ? `<tr><td class="empty">${escapeHtml(empty)}</td></tr>`
      : rows
          .map(({ attrs, cells }) => {
            const attributes = Object.entries(attrs)
              .map(([name, value]) => ` ${name}="${escapeHtml(value)}"`)
              .join('')
            return `<tr${attributes}>${cells.map(renderCell).join('')}</tr>`
          })
          .join('')
  return `<section><h2>${escapeHtml(heading)}</h2><table data-testid="${id}"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>${footer}</section>`
}

function renderCell(cell: Cell): string {
  let attributes = ` data-label="${escapeHtml(cell.label)}"`
  if (cell.field) attributes += ` data-field="${cell.field}"`
  if (cell.field && cell.value !== undefined && cell.value !== null) {
    attributes += ` data-value="${escapeHtml(String(cell.value))}"`
  }
  if (cell.className) attributes += ` class="${cell.className}"`
  if (cell.title) attributes += ` title="${escapeHtml(cell.title)}"`
  for (const [name, value] of Object.entries(cell.attrs ?? {}))
    attributes += ` ${name}="${escapeHtml(value)}"`
  return `<td${attributes}>${escapeHtml(cell.text)}${cell.after ?? ''}</td>`
}

function idle(id: string, label: string, names: string[]): string {
  if (names.length === 0) return ''
  return `<p class="idle" data-testid="${id}">${escapeHtml(label)}: ${names.map(escapeHtml).join(', ')}</p>`
}

/** 0..1 to one of `steps + 1` CSS classes (inline style attributes are barred by the CSP). */
function step(fraction: number, steps: number): number {
  return Math.max(0, Math.min(steps, Math.round(fraction * steps)))
}

function percent(x: number | undefined): string {
  return x === undefined ? '–' : `${(x * 100).toFixed(1)}%`
}

function count(x: number | undefined): string {
  return x === undefined ? '–' : String(x)
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`
}

function duration(seconds: number | undefined): string {
  if (seconds === undefined) return '–'
  const d = Math.floor(seconds / 86400)
  const h = Math.floor((seconds % 86400) / 3600)
  const m = Math.floor((seconds % 3600) / 60)
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : `${m}m ${seconds % 60}s`
}

function minuteLabel(epochMs: number): string {
  return `${new Date(epochMs).toISOString().slice(11, 16)} UTC`
}

function updated(epochMs: number): string {
  return `updated ${new Date(epochMs).toISOString().slice(11, 19)} UTC`
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

// Steps of the memory bar (w0..w10) and of the sparkline (h0..h8) as classes: the CSP allows
// this stylesheet but no inline style attribute.
const STEP_CLASSES = [
  ...Array.from({ length: 11 }, (_, i) => `.bar>i.w${i}{width:${i * 10}%}`),
  ...Array.from({ length: 9 }, (_, i) => `.spark>i.h${i}{height:${Math.max(1, i * 3)}px}`),
].join('')

const STYLE = `
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,Helvetica,Arial,sans-serif;margin:24px;color:#1d2330;background:#fafbfc}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:4px 16px}h1{margin:0;font-size:22px}#updated{color:#6a7180}
h2{font-size:16px;margin:28px 0 8px}table{border-collapse:collapse;background:#fff}
th,td{border:1px solid #e1e4e8;padding:6px 10px;text-align:right}th:first-child,td:first-child{text-align:left}
td:first-child{overflow-wrap:anywhere}
th{background:#f1f3f6;font-weight:600}.up{color:#1a7f37;font-weight:600}.down{color:#cf222e;font-weight:600}
.bar{display:inline-block;width:80px;height:8px;background:#e1e4e8;margin-left:8px;vertical-align:middle}
.bar>i{display:block;height:100%;background:#2f6fdb}.spark{display:inline-flex;gap:2px;align-items:flex-end;height:24px}
.spark>i{display:block;width:6px;background:#cf222e}.empty{color:#6a7180;font-style:italic;text-align:left}
.idle{color:#6a7180;margin:6px 0 0;overflow-wrap:anywhere}
${STEP_CLASSES}
@media (max-width:640px){
body{margin:12px}
table,tbody,tr,td{display:block;width:100%}thead{display:none}
tr{margin-bottom:10px;border:1px solid #e1e4e8}td{border:0;border-top:1px solid #f1f3f6;text-align:right}
td:first-child{border-top:0;font-weight:600;text-align:left}
td[data-label]:not(:first-child)::before{content:attr(data-label);float:left;color:#6a7180}
}`

// Refresh: fetch this same URL (server-rendered HTML) and swap the figures in. Parsing with
// DOMParser runs no script and builds nothing from data by hand.
const SCRIPT = `
async function refresh() {
  try {
    const response = await fetch(location.href, { cache: 'no-store', headers: { accept: 'text/html' } })
    if (!response.ok) throw new Error('HTTP ' + response.status)
    const next = new DOMParser().parseFromString(await response.text(), 'text/html')
    document.getElementById('figures').replaceWith(document.adoptNode(next.getElementById('figures')))
    document.getElementById('updated').textContent = next.getElementById('updated').textContent
  } catch (error) {
    document.getElementById('updated').textContent = 'cannot reach the server: ' + error.message
  }
}
setInterval(refresh, REFRESH_MS)
`
