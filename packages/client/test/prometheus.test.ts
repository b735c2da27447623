import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { startMemcached, startMemcachedCluster, stopAll, waitUntil } from '@memkit/testing'
import { Registry } from 'prom-client'
import { createClient, createFallbackClient } from '../src/index.js'
import { createPrometheusCollector } from '../src/prometheus.js'

after(stopAll)

function value(text: string, metric: string): number {
  const line = text.split('\n').find((l) => l.startsWith(metric))
  assert.ok(line, `no ${metric} in\n${text}`)
  return Number(line.split(' ').at(-1))
}

describe('@memkit/client/prometheus', () => {
  test('hits, misses, errors by code, latency by command, and per-server gauges from stats', async () => {
    const servers = await startMemcachedCluster(2)
    const client = createClient({ servers: servers.map((s) => s.address) })
    const other = createClient({ servers: servers.map((s) => s.address) })
    const registry = new Registry()
    const collector = createPrometheusCollector(client, { registry })
    try {
      await client.set('a', 1)
      await client.get('a')
      await client.get('a')
      await client.get('missing')
      await client.getMany(['a', 'x', 'y'])
      await client.set('text', 'abc')
      await client.incr('text', 1).catch(() => {})
      await other.get('a') // another client's traffic is not counted
      const text = await registry.metrics()
      assert.equal(value(text, 'memkit_cache_hits_total{command="get"}'), 2)
      assert.equal(value(text, 'memkit_cache_misses_total{command="get"}'), 1)
      assert.equal(value(text, 'memkit_cache_hits_total{command="getMany"}'), 1)
      assert.equal(value(text, 'memkit_cache_misses_total{command="getMany"}'), 2)
      assert.equal(value(text, 'memkit_errors_total{command="incr",code="ERR_MEMKIT_NOT_NUMERIC"}'), 1)
      assert.equal(value(text, 'memkit_command_duration_seconds_count{command="get"}'), 3)
      assert.equal(value(text, 'memkit_command_duration_seconds_count{command="set"}'), 2)
      for (const server of servers) {
        assert.equal(value(text, `memkit_server_up{server="${server.address}"}`), 1)
        assert.equal(value(text, `memkit_server_limit_bytes{server="${server.address}"}`), 64 * 1024 * 1024)
        assert.ok(value(text, `memkit_server_connections{server="${server.address}"}`) >= 1)
        assert.ok(value(text, `memkit_server_evictions{server="${server.address}"}`) >= 0)
        assert.ok(value(text, `memkit_server_bytes{server="${server.address}"}`) >= 0)
        assert.ok(value(text, `memkit_server_items{server="${server.address}"}`) >= 0)
      }
      // a down server shows as 0
      await servers[1]!.kill()
      // the next collection notices: wait for that state
      let later = ''
      await waitUntil(async () => {
        later = await registry.metrics()
        return value(later, `memkit_server_up{server="${servers[1]!.address}"}`) === 0
      })
      assert.equal(value(later, `memkit_server_up{server="${servers[1]!.address}"}`), 0)
      assert.equal(value(later, `memkit_server_up{server="${servers[0]!.address}"}`), 1)
    } finally {
      collector.stop()
      await client.close()
      await other.close()
    }
    assert.equal(await registry.metrics(), '\n', 'stop() removes every metric')
  })

  test('a fallback client is measured through its inner clients', async () => {
    const [a, b] = await Promise.all([startMemcached(), startMemcached()])
    const client = createFallbackClient([
      createClient({ servers: a!.address }),
      createClient({ servers: b!.address }),
    ])
    const registry = new Registry()
    const collector = createPrometheusCollector(client, { registry })
    try {
      await client.get('nothing')
      const text = await registry.metrics()
      assert.equal(value(text, 'memkit_cache_misses_total{command="get"}'), 2, 'new pool, then old pool')
    } finally {
      collector.stop()
      await client.close()
    }
  })
})
