// @memkit/client/prometheus: Prometheus metrics for a client, with prom-client (an optional
// peer dependency: only this entry point imports it).
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { Counter, Gauge, register as globalRegistry, Histogram, type Registry } from 'prom-client'
import { CHANNELS, type CommandEvent } from './diagnostics.js'
import type { MemkitClient } from './memkit-client.js'
import type { ServerStats } from './stats.js'

export interface PrometheusCollectorOptions {
  /** Registry to register the metrics in. Default: prom-client's global registry. */
  registry?: Registry
  /** Metric name prefix. Default `'memkit_'`. */
  prefix?: string
  /** Latency histogram buckets, in seconds. */
  buckets?: number[]
  /** Server figures are read with `stats()` at most this often (ms) however often Prometheus scrapes. Default `1000`. */
  statsMaxAge?: number
}

export interface PrometheusCollector {
  /** Stops listening and removes the metrics from the registry. */
  stop(): void
}

const DEFAULT_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]

/**
 * Registers memkit's metrics for `client`: hits and misses, errors by code, command latency,
 * and per-server gauges (up, bytes, memory limit, items, evictions, connections, hit ratio)
 * read from `client.stats()` when Prometheus scrapes.
 */
export function createPrometheusCollector(
  client: MemkitClient,
  options: PrometheusCollectorOptions = {},
): PrometheusCollector {
  const registry = options.registry ?? globalRegistry
  const prefix = options.prefix ?? 'memkit_'
  const registers = [registry]

  const hits = new Counter({
    name: `${prefix}cache_hits_total`,
    help: 'Reads that found their key (multi-gets count each key)',
    labelNames: ['command'],
    registers,
  })
  const misses = new Counter({
    name: `${prefix}cache_misses_total`,
    help: 'Reads that did not find their key (multi-gets count each key)',
    labelNames: ['command'],
    registers,
  })
  const errors = new Counter({
    name: `${prefix}errors_total`,
    help: 'Failed commands by error code',
    labelNames: ['command', 'code'],
    registers,
  })
  const duration = new Histogram({
    name: `${prefix}command_duration_seconds`,
    help: 'Time from sending a command to its reply or failure',
    labelNames: ['command'],
    buckets: options.buckets ?? DEFAULT_BUCKETS,
    registers,
  })

  const onCommand = (message: unknown) => {
    const event = message as CommandEvent
    if (event.client !== client && !isFallbackOf(client, event.client)) return
    duration.observe({ command: event.command }, event.duration / 1000)
    if (event.error) {
      errors.inc({ command: event.command, code: event.error.code ?? 'ERR_MEMKIT' })
      return
    }
    if (event.keys !== undefined) {
      if (event.hits) hits.inc({ command: event.command }, event.hits)
      if (event.keys - (event.hits ?? 0) > 0)
        misses.inc({ command: event.command }, event.keys - (event.hits ?? 0))
    } else if (event.hit === true) hits.inc({ command: event.command })
    else if (event.hit === false) misses.inc({ command: event.command })
  }
  subscribe(CHANNELS.command, onCommand)

  // One stats() per scrape window, shared by every gauge's collect().
  const maxAge = options.statsMaxAge ?? 1000
  let cached: { at: number; stats: Promise<ServerStats[]> } | undefined
  const readStats = () => {
    const now = Date.now()
    if (!cached || now - cached.at > maxAge) cached = { at: now, stats: client.stats().catch(() => []) }
    return cached.stats
  }
  const gauge = (name: string, help: string, pick: (s: ServerStats) => number | undefined) =>
    new Gauge({
      name: `${prefix}${name}`,
      help,
      labelNames: ['server'],
      registers,
      async collect() {
        this.reset()
        for (const s of await readStats()) {
          const value = pick(s)
          if (value !== undefined && Number.isFinite(value)) this.set({ server: s.server }, value)
        }
      },
    })
  const gauges: Gauge<'server'>[] = [
    gauge('server_up', '1 when the server answered stats, 0 when it is down', (s) => (s.up ? 1 : 0)),
    gauge('server_bytes', 'Bytes used by items on the server', (s) => s.bytes),
    gauge('server_limit_bytes', 'The server memory limit (-m) in bytes', (s) => s.limitMaxbytes),
    gauge('server_items', 'Items stored on the server', (s) => s.currItems),
    gauge('server_evictions', 'Items evicted by the server since it started', (s) => s.evictions),
    gauge('server_connections', 'Open connections on the server', (s) => s.currConnections),
    gauge(
      'server_hit_ratio',
      'get_hits / (get_hits + get_misses) since the server started',
      (s) => s.hitRatio,
    ),
  ]

  return {
    stop() {
      unsubscribe(CHANNELS.command, onCommand)
      const names = ['cache_hits_total', 'cache_misses_total', 'errors_total', 'command_duration_seconds']
      for (const name of names) registry.removeSingleMetric(`${prefix}${name}`)
      for (const metric of gauges) registry.removeSingleMetric((metric as unknown as { name: string }).name)
    },
  }
}

/** A fallback client's events come from its inner clients. */
function isFallbackOf(client: MemkitClient, source: object): boolean {
  const inner = (client as { innerClients?: readonly object[] }).innerClients
  return inner?.includes(source) === true
}
