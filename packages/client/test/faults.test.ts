// Servers that are down, frozen, silent, or that answer garbage: every operation settles with a
// typed error within its timeout, nothing crashes, and no reply ever reaches the wrong request.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { after, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import {
  freePort,
  startMemcached,
  startScriptedServer,
  startSilentServer,
  stopAll,
  waitUntil,
} from '@memkit/testing'
import { DONE } from '../src/command.js'
import { CHANNELS, type CommandEvent, createClient, type MemkitError } from '../src/index.js'
import { MetaStatusCommand } from '../src/protocol/meta-commands.js'

after(stopAll)

// No latency figures here (they are in the benchmarks): "within its timeout" is the typed error
// under the runner's own `timeout`, ten times the client's, and "at once" is what was (not) sent
// or what had not settled yet.

/** Resolves at the client's next `server:up` (events.once would also listen for 'error', which the client then emits). */
function nextUp(client: ReturnType<typeof createClient>): Promise<unknown> {
  return new Promise((resolve) => client.once('server:up', resolve))
}

/** The number of meta get requests `server` has received, across connections. */
function metaGets(server: { received(): string }): number {
  return server
    .received()
    .split('\r\n')
    .filter((line) => line.startsWith('mg ')).length
}

/** Answers each meta request the way memcached would, echoing its opaque, with a chosen body. */
function opaqueOf(line: string): string {
  return /\bO(\w+)/.exec(line)?.[1] ?? ''
}

describe('a server that accepts connections and never answers', () => {
  test('an operation fails with ERR_MEMKIT_TIMEOUT within its timeout', { timeout: 2000 }, async () => {
    const silent = await startSilentServer()
    const client = createClient({ servers: silent.address, timeout: 200 })
    try {
      const error = (await client.get('k').catch((e) => e)) as MemkitError & { server: string }
      assert.equal(error.code, 'ERR_MEMKIT_TIMEOUT')
      assert.equal(error.server, silent.address)
      assert.equal(metaGets(silent), 1, 'the request was sent, and sent once')
    } finally {
      await client.close()
    }
  })

  test('repeated timeouts mark it down; then operations fail fast without queueing', async () => {
    const silent = await startSilentServer()
    const client = createClient({
      servers: silent.address,
      timeout: 150,
      failureLimit: 2,
      deadTimeout: 60_000,
    })
    const down: string[] = []
    client.on('server:down', ({ server }) => down.push(server))
    try {
      await assert.rejects(client.get('a'), { code: 'ERR_MEMKIT_TIMEOUT' })
      await assert.rejects(client.get('b'), { code: 'ERR_MEMKIT_TIMEOUT' })
      assert.deepEqual(down, [silent.address])
      const sent = metaGets(silent)
      const connections = silent.connections()
      await assert.rejects(client.get('c'), { code: 'ERR_MEMKIT_SERVER_DOWN' })
      assert.equal(metaGets(silent), sent, 'nothing was sent to the server marked down')
      assert.equal(silent.connections(), connections, 'nor a connection opened')
      const stats = await client.stats()
      assert.equal(stats[0]!.up, false)
      assert.equal(stats[0]!.error?.code, 'ERR_MEMKIT_SERVER_DOWN')
    } finally {
      await client.close()
    }
  })
})

describe('a frozen server (SIGSTOP)', () => {
  test('replies that arrive after their request timed out never reach another request', async () => {
    const server = await startMemcached()
    const client = createClient({ servers: server.address, timeout: 250, failureLimit: 1000, retries: 0 })
    try {
      const keys = Array.from({ length: 2000 }, (_, i) => `own:${i}`)
      await Promise.all(keys.map((k) => client.set(k, k)))

      // Freeze while the pipeline is busy: a first batch is answered in part...
      const busy = keys.map((k) => client.get(k).then((v) => [k, v] as const))
      await busy[0]
      await server.freeze()
      // ...and a second batch is written to a server that will answer it only after it timed out.
      const late = keys.map((k) => client.get(k).then((v) => [k, v] as const))
      const results = await Promise.allSettled([...busy, ...late])
      const failed = results.filter((r) => r.status === 'rejected')
      assert.ok(failed.length >= late.length, 'requests sent to the frozen server timed out')
      for (const r of results) {
        if (r.status === 'fulfilled') assert.equal(r.value[1], r.value[0], 'a reply answered its own key')
        else assert.match((r.reason as MemkitError).code, /^ERR_MEMKIT_(TIMEOUT|CONNECTION)$/)
      }

      // Resume: the server now answers everything it had read, long after the deadline (a
      // request that succeeds is answered after all of them: one connection, in order).
      server.resume()
      await waitUntil(async () => (await client.set('resumed', 1).catch(() => false)) === true)

      // Every later reply must match its own key.
      let mismatches = 0
      for (let round = 0; round < 3; round++) {
        const replies = await Promise.all(keys.map((k) => client.get(k).then((v) => [k, v] as const)))
        for (const [k, v] of replies) if (v !== k) mismatches++
      }
      assert.equal(mismatches, 0)
    } finally {
      server.resume()
      await client.close()
    }
  })

  test('under steady load, a freeze costs timeouts, not wrong answers, and memory stays bounded', async (t) => {
    const server = await startMemcached()
    const client = createClient({
      servers: server.address,
      timeout: 200,
      failureLimit: 2,
      deadTimeout: 300,
      maxPending: 1000,
    })
    try {
      const keys = Array.from({ length: 200 }, (_, i) => `load:${i}`)
      await Promise.all(keys.map((k) => client.set(k, { k })))
      let ok = 0
      let wrong = 0
      const errors = new Map<string, number>()
      const count = (code: string) => errors.get(code) ?? 0
      let stop = false
      const worker = async (w: number) => {
        for (let i = w; !stop; i += 50) {
          const k = keys[i % keys.length]!
          try {
            const v = (await client.get<{ k: string }>(k))!
            if (v.k === k) ok++
            else wrong++
          } catch (error) {
            const code = (error as MemkitError).code
            errors.set(code, (errors.get(code) ?? 0) + 1)
            // a failing-fast client would otherwise spin without yielding to the timers
            await sleep(1)
          }
        }
      }
      const heapBefore = process.memoryUsage().heapUsed
      const workers = Array.from({ length: 50 }, (_, w) => worker(w))
      await waitUntil(() => ok >= 200, { message: 'traffic flowing before the freeze' })
      await server.freeze()
      await waitUntil(() => count('ERR_MEMKIT_TIMEOUT') > 0 && count('ERR_MEMKIT_SERVER_DOWN') > 0, {
        message: 'timeouts, then fail-fast while marked down',
      })
      const heapFrozen = process.memoryUsage().heapUsed
      const up = nextUp(client)
      server.resume()
      // after deadTimeout the probe finds it again and traffic flows
      await up
      const okAfterUp = ok
      await waitUntil(() => ok >= okAfterUp + 200, { message: 'traffic recovered after resume' })
      stop = true
      await Promise.all(workers)
      assert.equal(wrong, 0, 'no request ever got another key’s value')
      assert.ok(
        heapFrozen - heapBefore < 64 * 1024 * 1024,
        `heap grew ${(heapFrozen - heapBefore) >> 20} MiB while frozen`,
      )
      assert.deepEqual(
        [...errors.keys()].filter((code) => !/^ERR_MEMKIT_(TIMEOUT|SERVER_DOWN|CONNECTION)$/.test(code)),
        [],
        'every failure is a timeout, a fail-fast or a dropped connection',
      )
      t.diagnostic(
        `freeze under load (timeout 200 ms): ${ok} ok, failures ${JSON.stringify(Object.fromEntries(errors))}, heap change ${((heapFrozen - heapBefore) / 1048576).toFixed(1)} MiB, wrong answers ${wrong}`,
      )
    } finally {
      server.resume()
      await client.close()
    }
  })

  test('maxPending: past the limit, operations fail at once with ERR_MEMKIT_OVERLOADED', async () => {
    const server = await startMemcached()
    const client = createClient({ servers: server.address, timeout: 300, maxPending: 10 })
    try {
      await client.set('x', 1)
      await server.freeze()
      let settled = 0
      const held = Array.from({ length: 10 }, () =>
        client
          .get('x')
          .catch((e: MemkitError) => e.code)
          .finally(() => settled++),
      )
      await assert.rejects(client.get('x'), { code: 'ERR_MEMKIT_OVERLOADED' })
      assert.equal(settled, 0, 'refused without waiting for the pending operations')
      for (const code of await Promise.all(held))
        assert.match(String(code), /^ERR_MEMKIT_(TIMEOUT|CONNECTION)$/)
    } finally {
      server.resume()
      await client.close()
    }
  })
})

describe('a server that is down or goes away', () => {
  test('nothing listening: typed connection error at once, then fail-fast while marked down', async () => {
    const port = await freePort()
    // the default timeout (1 s) never fires: the refusal itself fails the request
    const client = createClient({ servers: `127.0.0.1:${port}`, failureLimit: 2, deadTimeout: 60_000 })
    try {
      const first = (await client.get('k').catch((e) => e)) as MemkitError
      assert.equal(first.code, 'ERR_MEMKIT_CONNECTION')
      assert.match(first.message, /ECONNREFUSED/)
      await assert.rejects(client.set('k', 1), { code: 'ERR_MEMKIT_CONNECTION' })
      await assert.rejects(client.incr('k', 1), { code: 'ERR_MEMKIT_SERVER_DOWN' })
    } finally {
      await client.close()
    }
  })

  test('a client started while its server is down connects by itself when the server comes up', async () => {
    const server = await startMemcached()
    await server.kill()
    const client = createClient({ servers: server.address, failureLimit: 1, deadTimeout: 200 })
    const events: string[] = []
    client.on('server:down', () => events.push('down'))
    client.on('server:up', () => events.push('up'))
    try {
      await assert.rejects(client.get('k'), { code: 'ERR_MEMKIT_CONNECTION' })
      await assert.rejects(client.get('k'), { code: 'ERR_MEMKIT_SERVER_DOWN' })
      const up = nextUp(client)
      await server.restart()
      await up
      assert.deepEqual(events, ['down', 'up'])
      assert.equal(await client.set('k', 'back'), true)
      assert.equal(await client.get('k'), 'back')
    } finally {
      await client.close()
    }
  })

  test('killed mid-flight: in-flight operations fail with a connection error, none hang', async () => {
    const server = await startMemcached()
    const client = createClient({ servers: server.address, timeout: 1000 })
    try {
      await client.set('k', 'v')
      const pending = Array.from({ length: 200 }, (_, i) =>
        client.set(`k${i}`, 'x'.repeat(10_000)).catch((e) => e),
      )
      // kill once the pipeline is under way: the first reply is in, the rest in flight
      await Promise.race(pending)
      await server.kill()
      const results = await Promise.all(pending)
      for (const r of results)
        if (r !== true) assert.match((r as MemkitError).code, /^ERR_MEMKIT_(CONNECTION|SERVER_DOWN)$/)
    } finally {
      await client.close()
    }
  })
})

describe('malformed replies', () => {
  const cases: Array<[string, (line: string) => string, RegExp]> = [
    ['an unknown reply line', () => 'HELLO THERE\r\n', /unexpected line/],
    ['a value for another request (wrong opaque)', () => 'VA 1 f0 Ozzz\r\nx\r\n', /another request/],
    ['a data block without its CRLF', (l) => `VA 3 f16 O${opaqueOf(l)}\r\nabcXY`, /not terminated/],
    ['a negative size', (l) => `VA -5 f0 O${opaqueOf(l)}\r\n`, /bad size/],
    ['a non-numeric flags token', (l) => `VA 1 fzz O${opaqueOf(l)}\r\nx\r\n`, /bad flags/],
    ['an endless line', () => 'V'.repeat(100 * 1024), /too long/],
    ['a CLIENT_ERROR (stream position unknown)', () => 'CLIENT_ERROR bad data chunk\r\n', /CLIENT_ERROR/],
    ['a reply code with a third letter', () => 'VAX 1\r\n', /unexpected line "VAX 1"$/],
    ['a lowercase reply code', (l) => `va 1 f0 O${opaqueOf(l)}\r\nx\r\n`, /unexpected line "va 1 f0 O\w+"$/],
    ['a size with junk after it', (l) => `VA 1x f0 O${opaqueOf(l)}\r\nx\r\n`, /bad size in VA 1x f0 O\w+$/],
    ['no size', (l) => `VA f0 O${opaqueOf(l)}\r\n`, /bad size in VA f0 O\w+$/],
    [
      'a flags token with junk after it',
      (l) => `VA 1 f12x O${opaqueOf(l)}\r\nx\r\n`,
      /bad flags token f12x$/,
    ],
    ['a flags token without digits', (l) => `VA 1 f O${opaqueOf(l)}\r\nx\r\n`, /bad flags token f$/],
    [
      'a cas token that is not a number',
      (l) => `VA 1 f0 c12z O${opaqueOf(l)}\r\nx\r\n`,
      /bad cas token c12z$/,
    ],
    ['a cas token without digits', (l) => `VA 1 f0 c O${opaqueOf(l)}\r\nx\r\n`, /bad cas token c$/],
    ['a ttl token that is not a number', (l) => `VA 1 f0 t-x O${opaqueOf(l)}\r\nx\r\n`, /bad ttl token t-x$/],
    ['a ttl token with junk after it', (l) => `VA 1 f0 t5s O${opaqueOf(l)}\r\nx\r\n`, /bad ttl token t5s$/],
    ['a ttl token without digits', (l) => `VA 1 f0 t O${opaqueOf(l)}\r\nx\r\n`, /bad ttl token t$/],
    ['a ttl token of a sign alone', (l) => `VA 1 f0 t- O${opaqueOf(l)}\r\nx\r\n`, /bad ttl token t-$/],
    [
      "the request's opaque token with a character more",
      (l) => `EN O${opaqueOf(l)}z\r\n`,
      /reply "EN O\w+z" belongs to another request \(expected O\w+\)$/,
    ],
    [
      'a miss for another request',
      () => 'EN Ozz\r\n',
      /reply "EN Ozz" belongs to another request \(expected O\w+\)$/,
    ],
  ]
  for (const [label, reply, message] of cases) {
    test(`${label}: ERR_MEMKIT_PROTOCOL, connection reset, next request on a fresh connection`, async () => {
      const scripted = await startScriptedServer((chunk) => {
        if (!chunk.startsWith('mg ')) return undefined
        // the first connection gets the bad reply; a later one a well-formed miss
        return scripted.connections() === 1 ? reply(chunk) : `EN O${opaqueOf(chunk)}\r\n`
      })
      const client = createClient({ servers: scripted.address, timeout: 500, retries: 0 })
      try {
        const first = (await client.get('k').catch((e) => e)) as MemkitError
        assert.equal(first.code, 'ERR_MEMKIT_PROTOCOL', `got ${first.code}: ${first.message}`)
        assert.match(first.message, message)
        assert.equal(await client.get('k'), undefined, 'the next request works')
        assert.equal(scripted.connections(), 2, 'it was sent on a new connection')
      } finally {
        await client.close()
      }
    })
  }

  test('data nobody asked for resets the connection instead of answering the next request', async () => {
    let resets = 0
    const scripted = await startScriptedServer((chunk, _text, socket) => {
      if (!chunk.startsWith('mg ')) return undefined
      if (scripted.connections() === 1) socket.once('close', () => resets++)
      return `EN O${opaqueOf(chunk)}\r\nVA 4 f16 O999\r\nevil\r\n`
    })
    const client = createClient({ servers: scripted.address, retries: 0 })
    try {
      const first = await client.get('a')
      assert.equal(first, undefined)
      await waitUntil(() => resets === 1, { message: 'the client closed the connection' })
      const second = await client.get('b')
      assert.notEqual(second, 'evil')
      assert.equal(scripted.connections(), 2)
    } finally {
      await client.close()
    }
  })

  test('SERVER_ERROR is a typed error and keeps the connection', async () => {
    const scripted = await startScriptedServer((chunk) => {
      if (chunk.startsWith('ms ')) return 'SERVER_ERROR out of memory storing object\r\n'
      if (chunk.startsWith('mg ')) return `EN O${opaqueOf(chunk)}\r\n`
      return undefined
    })
    const client = createClient({ servers: scripted.address })
    try {
      await assert.rejects(client.set('k', 'v'), { code: 'ERR_MEMKIT_SERVER', message: /out of memory/ })
      assert.equal(await client.get('k'), undefined)
      assert.equal(scripted.connections(), 1)
    } finally {
      await client.close()
    }
  })

  test('a server that does not know meta commands (ERROR) is reported as not supported', async () => {
    const scripted = await startScriptedServer(() => 'ERROR\r\n')
    const client = createClient({ servers: scripted.address, retries: 0 })
    try {
      await assert.rejects(client.get('k'), {
        code: 'ERR_MEMKIT_NOT_SUPPORTED',
        message: /memcached >= 1\.6/,
      })
    } finally {
      await client.close()
    }
  })

  test('a reply dribbled one byte per TCP segment is still read correctly', async () => {
    const scripted = await startScriptedServer((chunk, _all, socket) => {
      if (!chunk.startsWith('mg ')) return undefined
      const reply = Buffer.from(`VA 11 f16 O${opaqueOf(chunk)}\r\nhello world\r\n`)
      let i = 0
      const timer = setInterval(() => {
        if (i >= reply.length || socket.destroyed) return clearInterval(timer)
        socket.write(reply.subarray(i, ++i))
      }, 1)
      return undefined
    })
    const client = createClient({ servers: scripted.address, timeout: 2000 })
    try {
      assert.equal(await client.get('k'), 'hello world')
    } finally {
      await client.close()
    }
  })

  test('a connection closed in the middle of a value fails the request with ERR_MEMKIT_CONNECTION', async () => {
    const scripted = await startScriptedServer((chunk, _all, socket) => {
      if (chunk.startsWith('mg ')) {
        socket.end(`VA 100 f0 O${opaqueOf(chunk)}\r\nonly part`)
      }
      return undefined
    })
    const client = createClient({ servers: scripted.address, retries: 0 })
    try {
      await assert.rejects(client.get('k'), { code: 'ERR_MEMKIT_CONNECTION' })
    } finally {
      await client.close()
    }
  })
})

describe('lease replies (remember with lease: true), flag by flag', () => {
  /** A server answering each key's lease reads with the next of its replies (the last repeats). */
  async function leaseServer(replies: Record<string, Array<(o: string) => string>>) {
    const reads = new Map<string, number>()
    return startLineServer((line) => {
      const o = opaqueOf(line)
      if (line.startsWith('ms ') || line.startsWith('md ')) return `HD O${o}\r\n`
      const key = /^mg (\S+)/.exec(line)?.[1]
      if (key === undefined) return undefined
      const list = replies[key]!
      const n = reads.get(key) ?? 0
      reads.set(key, n + 1)
      return list[Math.min(n, list.length - 1)]!(o)
    })
  }
  const written = (server: { received(): string }, key: string) =>
    server
      .received()
      .split('\r\n')
      .filter((line) => line.startsWith(`ms ${key} `))

  test('the request: N (the placeholder lease, seconds) and R (refresh ahead) only when there is one', async () => {
    const scripted = await leaseServer({ a: [(o) => `VA 1 f16 c5 t60 O${o}\r\nv\r\n`] })
    const client = createClient({ servers: scripted.address, retries: 0 })
    try {
      assert.equal(await client.remember('a', 60, () => 'new', { lease: true }), 'v')
      assert.equal(await client.remember('a', 60, () => 'new', { lease: { refreshAhead: 0 } }), 'v')
      const requests = scripted
        .received()
        .split('\r\n')
        .filter((line) => line.startsWith('mg '))
        .map((line) => line.replace(/ O\w+$/, ''))
      assert.deepEqual(requests, ['mg a N10 R6 v f c t', 'mg a N10 v f c t'])
    } finally {
      await client.close()
    }
  })

  test('hits, with and without W; empty values; the placeholder under W or Z; a miss without N', async () => {
    const scripted = await leaseServer({
      hit: [(o) => `VA 1 f16 c5 t60 O${o}\r\nv\r\n`],
      refresh: [(o) => `VA 3 f16 c6 t3 W O${o}\r\nold\r\n`],
      bytes: [(o) => `VA 2 f0 c7 t3 W O${o}\r\nhi\r\n`],
      emptyString: [(o) => `VA 0 f16 c8 t3 W O${o}\r\n\r\n`],
      emptyBytes: [(o) => `VA 0 f0 c9 t60 O${o}\r\n\r\n`],
      cold: [(o) => `VA 0 f0 c10 t10 W O${o}\r\n\r\n`],
      held: [(o) => `VA 0 f0 c11 t10 Z O${o}\r\n\r\n`, (o) => `VA 1 f16 c12 t60 O${o}\r\nw\r\n`],
      noN: [(o) => `EN O${o}\r\n`, (o) => `VA 1 f16 c13 t60 O${o}\r\nx\r\n`],
    })
    const client = createClient({ servers: scripted.address, retries: 0 })
    const loads: string[] = []
    const remember = (key: string) =>
      client.remember(
        key,
        60,
        () => {
          loads.push(key)
          return `loaded ${key}`
        },
        { lease: true },
      )
    try {
      assert.equal(await remember('hit'), 'v')
      // W on a hit: served at once, reloaded in the background and written with the lease's CAS
      assert.equal(await remember('refresh'), 'old')
      assert.deepEqual(await remember('bytes'), Buffer.from('hi'))
      assert.equal(await remember('emptyString'), '')
      await waitUntil(() => written(scripted, 'emptyString').length === 1, {
        message: 'the reload was written',
      })
      assert.match(written(scripted, 'refresh')[0] ?? '', / C6 /)
      assert.match(written(scripted, 'bytes')[0] ?? '', / C7 /)
      // an empty flagless item nobody holds is a stored empty value, not a placeholder
      assert.deepEqual(await remember('emptyBytes'), Buffer.alloc(0))
      // the placeholder: W loads and writes with its CAS; Z waits for the value
      assert.equal(await remember('cold'), 'loaded cold')
      assert.match(written(scripted, 'cold')[0] ?? '', / C10 /)
      assert.equal(await remember('held'), 'w')
      assert.equal(await remember('noN'), 'x')
      assert.deepEqual(loads.sort(), ['bytes', 'cold', 'emptyString', 'refresh'])
    } finally {
      await client.close()
    }
  })

  test('an undecodable item read as a miss (decodeErrors: miss) is reloaded and replaced with its CAS, unless another caller holds the lease', async () => {
    const scripted = await leaseServer({
      // f8 is pymemcache's zlib bit: 'x' is not zlib data
      corrupt: [(o) => `VA 1 f8 c21 t60 O${o}\r\nx\r\n`],
      corruptHeld: [(o) => `VA 1 f8 c22 t60 Z O${o}\r\nx\r\n`, (o) => `VA 5 f16 c23 t60 O${o}\r\nfresh\r\n`],
    })
    const client = createClient({ servers: scripted.address, retries: 0, decodeErrors: 'miss' })
    const errors: Error[] = []
    client.on('error', (error: Error) => errors.push(error))
    let loads = 0
    try {
      assert.equal(
        await client.remember('corrupt', 60, () => `loaded ${++loads}`, { lease: true }),
        'loaded 1',
      )
      assert.match(written(scripted, 'corrupt')[0] ?? '', / C21 /)
      assert.equal(
        await client.remember('corruptHeld', 60, () => `loaded ${++loads}`, { lease: true }),
        'fresh',
      )
      assert.equal(loads, 1)
      assert.ok(
        errors.some((error) => error.name === 'DecodeError'),
        'the decode failure is reported',
      )
    } finally {
      await client.close()
    }
  })

  test('a lease read cut off by a reset is not sent again (a second N could find its own placeholder and wait on it)', async () => {
    let reads = 0
    const scripted = await startScriptedServer((chunk, _all, socket) => {
      if (chunk.startsWith('mg ')) {
        reads++
        socket.destroy()
      }
      return undefined
    })
    const client = createClient({ servers: scripted.address, retries: 3, failureLimit: 5 })
    client.on('error', () => {})
    try {
      assert.equal(await client.remember('k', 60, () => 'loaded', { lease: true }), 'loaded')
      assert.equal(reads, 1)
    } finally {
      await client.close()
    }
  })

  test('a malformed lease reply is reported and the loader serves the caller; an undecodable one too', async () => {
    const scripted = await leaseServer({
      badSize: [(o) => `VA x f0 c5 O${o}\r\n`],
      unknown: [() => 'HELLO caf\u00e9\r\n'],
      corrupt: [(o) => `VA 1 f8 c5 t60 O${o}\r\nx\r\n`],
      // any token but the request's own (tokens cycle through all 1296)
      otherMiss: [(o) => `EN O${o === 'zz' ? 'zy' : 'zz'}\r\n`],
    })
    const client = createClient({ servers: scripted.address, retries: 0, failureLimit: 10 })
    const errors: Error[] = []
    client.on('error', (error: Error) => errors.push(error))
    try {
      for (const key of ['badSize', 'unknown', 'corrupt', 'otherMiss'])
        assert.equal(await client.remember(key, 60, () => `loaded ${key}`, { lease: true }), `loaded ${key}`)
      assert.equal(errors.length, 4)
      assert.match(errors[0]!.message, /to leaseGet: bad size in VA x f0 c5 O\w+$/)
      // é went out as UTF-8 (two bytes); a reply line is read byte for byte, as Latin-1
      assert.match(errors[1]!.message, /to leaseGet: unexpected line "HELLO caf\u00c3\u00a9"$/)
      assert.equal(errors[2]!.name, 'DecodeError')
      assert.match(errors[3]!.message, /to leaseGet: reply "EN Oz[zy]" belongs to another request/)
    } finally {
      await client.close()
    }
  })
})

describe('retries', () => {
  test('an idempotent read is retried once on a fresh connection after a reset', async () => {
    const scripted = await startScriptedServer((chunk, _all, socket) => {
      if (!chunk.startsWith('mg ')) return undefined
      if (scripted.connections() === 1) {
        socket.destroy()
        return undefined
      }
      return `VA 2 f16 O${opaqueOf(chunk)}\r\nok\r\n`
    })
    const client = createClient({ servers: scripted.address, retries: 1, failureLimit: 5 })
    try {
      assert.equal(await client.get('k'), 'ok')
      assert.equal(scripted.connections(), 2)
    } finally {
      await client.close()
    }
  })

  // Each operation on a server that drops the first connection when the request arrives: what is
  // safe to repeat is sent again on a fresh connection, what is not fails with the reset.
  const repeatable: Array<
    [string, string, boolean, (c: ReturnType<typeof createClient>) => Promise<unknown>]
  > = [
    ['get', 'mg ', true, (c) => c.get('k')],
    ['gets', 'mg ', true, (c) => c.gets('k')],
    ['getAndTouch', 'mg ', true, (c) => c.getAndTouch('k', 60)],
    ['getMany', 'mg ', true, (c) => c.getMany(['a', 'b'])],
    ['set', 'ms ', true, (c) => c.set('k', 'v')],
    ['replace', 'ms ', true, (c) => c.replace('k', 'v')],
    ['setMany', 'ms ', true, (c) => c.setMany([['a', 'v']])],
    ['delete', 'md ', true, (c) => c.delete('k')],
    ['deleteMany', 'md ', true, (c) => c.deleteMany(['a', 'b'])],
    ['touch', 'mg ', true, (c) => c.touch('k', 60)],
    ['invalidate', 'md ', true, (c) => c.invalidate('k')],
    ['flush', 'flush_all', true, (c) => c.flush()],
    ['add', 'ms ', false, (c) => c.add('k', 'v')],
    ['append', 'ms ', false, (c) => c.append('k', 'v')],
    ['prepend', 'ms ', false, (c) => c.prepend('k', 'v')],
    ['cas', 'ms ', false, (c) => c.cas('k', 'v', '5')],
    ['deleteIfUnchanged', 'md ', false, (c) => c.deleteIfUnchanged('k', '5')],
    ['incr', 'ma ', false, (c) => c.incr('k', 1)],
    ['decr', 'ma ', false, (c) => c.decr('k', 1)],
  ]
  for (const [name, prefix, again, call] of repeatable) {
    test(`${name} after a reset: ${again ? 'sent again on a fresh connection' : 'not repeated, the caller gets the reset'}`, async () => {
      const scripted = await startScriptedServer((chunk, _all, socket) => {
        if (scripted.connections() === 1) {
          socket.destroy()
          return undefined
        }
        let out = ''
        for (const line of chunk.split('\r\n')) {
          const o = opaqueOf(line)
          if (line === 'mn') out += 'MN\r\n'
          else if (line === 'flush_all') out += 'OK\r\n'
          else if (/ q( |$)/.test(line)) continue
          else if (line.startsWith('mg '))
            out += line.includes(' T') && !line.includes(' v') ? `HD O${o}\r\n` : `EN O${o}\r\n`
          else if (line.startsWith('ms ') || line.startsWith('md ')) out += `HD O${o}\r\n`
          else if (line.startsWith('ma ')) out += `NF O${o}\r\n`
        }
        return out === '' ? undefined : out
      })
      const client = createClient({ servers: scripted.address, retries: 1, failureLimit: 5 })
      try {
        const sent = () =>
          scripted
            .received()
            .split('\r\n')
            .filter((line) => line.startsWith(prefix)).length
        const perAttempt = name === 'getMany' || name === 'deleteMany' ? 2 : 1
        if (again) {
          await call(client)
          assert.equal(sent(), 2 * perAttempt, 'sent twice')
          assert.equal(scripted.connections(), 2)
        } else {
          await assert.rejects(call(client), { code: 'ERR_MEMKIT_CONNECTION' })
          assert.equal(sent(), perAttempt, 'sent once')
        }
      } finally {
        await client.close()
      }
    })
  }

  test('incr is never retried: one attempt reached the server, the caller gets the error', async () => {
    let attempts = 0
    const scripted = await startScriptedServer((chunk, _all, socket) => {
      if (chunk.startsWith('ma ') || chunk.startsWith('ms ')) {
        attempts++
        socket.destroy()
      }
      return undefined
    })
    const client = createClient({ servers: scripted.address, retries: 3, failureLimit: 5 })
    try {
      await assert.rejects(client.incr('k', 1), { code: 'ERR_MEMKIT_CONNECTION' })
      await assert.rejects(client.append('k', 'x'), { code: 'ERR_MEMKIT_CONNECTION' })
      assert.equal(attempts, 2, 'one attempt each')
    } finally {
      await client.close()
    }
  })
})

/** A scripted server that answers each request line with `answer(line)` (nothing for undefined). */
function startLineServer(answer: (line: string) => string | undefined) {
  return startScriptedServer((chunk) => {
    let out = ''
    for (const line of chunk.split('\r\n')) out += answer(line) ?? ''
    return out === '' ? undefined : out
  })
}

describe('meta replies, token by token', () => {
  test('flags in any order, unknown ones, t-1 and a miss without an opaque (before 1.6.18) are all read', async () => {
    const scripted = await startLineServer((line) => {
      const o = opaqueOf(line)
      if (line.startsWith('mg old')) return 'EN\r\n'
      if (line.startsWith('mg ')) return `VA 2 s2 O${o} k t-1 c987 f16 b\r\nhi\r\n`
      return undefined
    })
    const client = createClient({ servers: scripted.address, retries: 0 })
    try {
      assert.deepEqual(await client.gets('any'), { value: 'hi', cas: '987' })
      assert.equal(await client.get('old'), undefined)
      assert.equal(await client.get('any'), 'hi')
      assert.equal(scripted.connections(), 1, 'nothing was taken for a malformed reply')
    } finally {
      await client.close()
    }
  })

  test('the least a well-formed reply can carry is read: a value with no flags, c0, t0', async () => {
    const scripted = await startLineServer((line) => {
      const o = opaqueOf(line)
      if (line.startsWith('mg bare ')) return 'VA 2\r\nhi\r\n'
      if (line.startsWith('mg zero ')) return `VA 1 f16 c0 t0 O${o}\r\nz\r\n`
      if (line.startsWith('ma n ')) return `VA 1 t0 O${o}\r\n5\r\n`
      return undefined
    })
    const client = createClient({ servers: scripted.address, retries: 0 })
    try {
      // No f: client flags 0, which the default serializer reads as bytes.
      assert.deepEqual(await client.get('bare'), Buffer.from('hi'))
      assert.deepEqual(await client.gets('zero'), { value: 'z', cas: '0' })
      assert.deepEqual(await client.incrWithTtl('n', 1), { value: 5, ttl: 0 })
      assert.equal(scripted.connections(), 1, 'nothing was taken for a malformed reply')
    } finally {
      await client.close()
    }
  })

  test('a gets reply without its cas token is malformed; no token is carried over from the reply before', async () => {
    const scripted = await startLineServer((line) => {
      const o = opaqueOf(line)
      if (line.startsWith('mg first ')) return `VA 1 f16 c77 O${o}\r\nx\r\n`
      if (line.startsWith('mg second ')) return `VA 1 f16 O${o}\r\ny\r\n`
      return undefined
    })
    const client = createClient({ servers: scripted.address, retries: 0 })
    try {
      assert.deepEqual(await client.gets('first'), { value: 'x', cas: '77' })
      // Not an item whose cas() would be refused later, nor one with the last reply's token.
      await assert.rejects(client.gets('second'), {
        code: 'ERR_MEMKIT_PROTOCOL',
        message: /to gets: no cas token in VA 1 f16 O\w+$/,
      })
      // A plain get asks for no token and reads the same reply.
      assert.equal(await client.get('second'), 'y')
      assert.equal(scripted.connections(), 2, 'the malformed reply reset the connection')
    } finally {
      await client.close()
    }
  })

  test('a reply line given as text (onLine) is read as the same bytes, Latin-1', async () => {
    const hit = new MetaStatusCommand('delete', 'md k Oab\r\n', 'ab')
    // f5 ends the line: its digits are read up to the line's end and no further
    assert.equal(hit.onLine('HD Oab f5'), DONE)
    assert.equal(await hit.promise, true)
    const refused = new MetaStatusCommand('delete', 'md k Oac\r\n', 'ac')
    assert.equal(refused.onLine('SERVER_ERROR caf\u00e9 full'), DONE)
    await assert.rejects(refused.promise, {
      code: 'ERR_MEMKIT_SERVER',
      message: /SERVER_ERROR caf\u00e9 full$/,
    })
  })

  test('a pipelined request behind a batch that met an error line fails with the reason, not with the batch MN', async () => {
    // The batch resets the connection at the error line, so its MN is never read as the next
    // request's reply; the request behind it (incr, never retried) fails with the batch's reason.
    const cases: Array<[string, (c: ReturnType<typeof createClient>) => Promise<unknown>, string, RegExp]> = [
      [
        'getMany',
        (c) => c.getMany(['a', 'b']),
        'SERVER_ERROR busy\r\nMN\r\n',
        /to getMany: error reply inside a multi-get: SERVER_ERROR busy$/,
      ],
      [
        'setMany',
        (c) => c.setMany([['a', 'v']]),
        'CLIENT_ERROR cannot increment or decrement non-numeric value\r\nMN\r\n',
        /to setMany: error reply inside a setMany batch: CLIENT_ERROR cannot increment or decrement non-numeric value$/,
      ],
    ]
    for (const [name, batch, reply, message] of cases) {
      const scripted = await startScriptedServer((chunk) => (chunk.includes('mn\r\n') ? reply : undefined))
      const client = createClient({ servers: scripted.address, retries: 0, failureLimit: 5 })
      try {
        const [first, behind] = await Promise.allSettled([batch(client), client.incr('n', 1)])
        assert.equal(first.status, 'rejected', name)
        assert.equal(behind.status, 'rejected', name)
        const reason = (behind as PromiseRejectedResult).reason as MemkitError
        assert.equal(reason.code, 'ERR_MEMKIT_PROTOCOL', `${name}: ${reason.message}`)
        assert.match(reason.message, message)
      } finally {
        await client.close()
      }
    }
  })

  test('getMany: an empty value is a hit; a two-letter line other than MN is not its end', async () => {
    let batches = 0
    const scripted = await startLineServer((line) => {
      if (line !== 'mn') return undefined
      return ++batches === 1 ? 'VA 0 f16 O0\r\n\r\nMN\r\n' : 'EN\r\nMN\r\n'
    })
    const client = createClient({ servers: scripted.address, retries: 0 })
    try {
      assert.deepEqual(await client.getMany(['a', 'b']), new Map([['a', '']]))
      await assert.rejects(client.getMany(['a', 'b']), {
        code: 'ERR_MEMKIT_PARTIAL_READ',
        message: /unexpected line "EN"$/,
      })
    } finally {
      await client.close()
    }
  })

  const counterReplies: Array<[string, 'incr' | 'decr', (o: string) => string, RegExp]> = [
    [
      'a counter with junk after its digits',
      'incr',
      (o) => `VA 2 O${o}\r\n5x\r\n`,
      /to incr: counter value "5x" is not a number$/,
    ],
    [
      'a miss for another request',
      'incr',
      // any token but the request's own (tokens cycle through all 1296)
      (o) => `NF O${o === 'zz' ? 'zy' : 'zz'}\r\n`,
      /to incr: reply "NF Oz[zy]" belongs to another request/,
    ],
    ['a bad counter size', 'decr', (o) => `VA 0 O${o}\r\n\r\n`, /to decr: bad counter size in VA 0 O\w+$/],
  ]
  for (const [label, command, reply, message] of counterReplies) {
    test(`${command}, ${label}: ERR_MEMKIT_PROTOCOL naming the command`, async () => {
      const scripted = await startLineServer((line) =>
        line.startsWith('ma ') ? reply(opaqueOf(line)) : undefined,
      )
      const client = createClient({ servers: scripted.address, retries: 0 })
      try {
        await assert.rejects(command === 'incr' ? client.incr('n', 1) : client.decr('n', 1), {
          code: 'ERR_MEMKIT_PROTOCOL',
          message,
        })
      } finally {
        await client.close()
      }
    })
  }

  test('each storage mode as a meta line: T and F only where they apply, the mode flag, C for cas', async () => {
    const scripted = await startLineServer((line) =>
      line.startsWith('ms ') ? `HD O${opaqueOf(line)}\r\n` : undefined,
    )
    const client = createClient({ servers: scripted.address, retries: 0 })
    try {
      await client.set('k', 'v', { ttl: 60 })
      await client.add('k', 'v')
      await client.replace('k', 'v')
      await client.append('k', 'v')
      await client.prepend('k', 'v')
      await client.cas('k', 'v', '5')
      // a key with non-ASCII characters travels base64 with the b flag
      await client.set('ключ', 'v')
      assert.deepEqual(
        scripted
          .received()
          .split('\r\n')
          .filter((line) => line.startsWith('ms '))
          .map((line) => line.replace(/ O\w+$/, '')),
        [
          'ms k 1 T60 F16',
          'ms k 1 T0 F16 ME',
          'ms k 1 T0 F16 MR',
          // append and prepend keep the item's TTL and flags: none are sent
          'ms k 1 MA',
          'ms k 1 MP',
          'ms k 1 T0 F16 C5',
          `ms ${Buffer.from('ключ').toString('base64')} 1 b T0 F16`,
        ],
      )
    } finally {
      await client.close()
    }
  })

  test('a malformed reply names the operation it answered', async () => {
    const operations: Array<[string, (c: ReturnType<typeof createClient>) => Promise<unknown>]> = [
      ['get', (c) => c.get('k')],
      ['gets', (c) => c.gets('k')],
      ['getAndTouch', (c) => c.getAndTouch('k', 60)],
      ['set', (c) => c.set('k', 'v')],
      ['append', (c) => c.append('k', 'v')],
      ['delete', (c) => c.delete('k')],
      ['delete', (c) => c.deleteIfUnchanged('k', '5')],
      ['touch', (c) => c.touch('k', 60)],
      ['invalidate', (c) => c.invalidate('k')],
    ]
    const scripted = await startLineServer((line) => (/^m[gsd] /.test(line) ? 'HELLO\r\n' : undefined))
    const client = createClient({ servers: scripted.address, retries: 0, failureLimit: 100 })
    try {
      for (const [name, call] of operations)
        await assert.rejects(call(client), {
          code: 'ERR_MEMKIT_PROTOCOL',
          message: new RegExp(`to ${name}: unexpected line "HELLO"$`),
        })
    } finally {
      await client.close()
    }
  })

  test('through a proxy: stats asks only for the version (sent again after a reset); flush is refused unsent', async () => {
    const scripted = await startScriptedServer((chunk, _all, socket) => {
      if (scripted.connections() === 1) {
        socket.destroy()
        return undefined
      }
      return chunk === 'version\r\n' ? 'VERSION 1.6.21\r\n' : undefined
    })
    const client = createClient({ servers: scripted.address, proxy: true, retries: 1, failureLimit: 5 })
    try {
      assert.deepEqual(await client.stats(), [{ server: scripted.address, up: true, version: '1.6.21' }])
      assert.equal(scripted.received().split('version\r\n').length - 1, 2, 'version sent twice')
      await assert.rejects(client.flush(), {
        code: 'ERR_MEMKIT_NOT_SUPPORTED',
        message: /flush is not available through a proxy/,
      })
      assert.doesNotMatch(scripted.received(), /stats|flush_all/)
    } finally {
      await client.close()
    }
  })

  test('a server that comes back answering garbage to the probe stays down', async () => {
    let versions = 0
    const scripted = await startScriptedServer((chunk, _all, socket) => {
      if (chunk.startsWith('version')) {
        versions++
        return 'HELLO\r\n'
      }
      socket.destroy()
      return undefined
    })
    const client = createClient({ servers: scripted.address, retries: 0, failureLimit: 1, deadTimeout: 100 })
    const events: string[] = []
    client.on('server:down', () => events.push('down'))
    client.on('server:up', () => events.push('up'))
    try {
      await assert.rejects(client.get('k'), { code: 'ERR_MEMKIT_CONNECTION' })
      // the probe went out twice (a version request each) and was refused each time
      await waitUntil(() => versions >= 2, { message: 'probed twice' })
      assert.deepEqual(events, ['down'])
      await assert.rejects(client.get('k'), { code: 'ERR_MEMKIT_SERVER_DOWN' })
    } finally {
      await client.close()
    }
  })

  test('opaque tokens are two base-36 characters, and all 1296 are used before one comes back', async () => {
    const scripted = await startLineServer((line) =>
      line.startsWith('mg ') ? `EN O${opaqueOf(line)}\r\n` : undefined,
    )
    const client = createClient({ servers: scripted.address, retries: 0 })
    try {
      for (let round = 0; round < 13; round++) {
        const gets = Array.from({ length: 100 }, (_, i) => client.get(`k${round * 100 + i}`))
        assert.deepEqual(new Set(await Promise.all(gets)), new Set([undefined]))
      }
      const tokens = scripted
        .received()
        .split('\r\n')
        .filter((line) => line.startsWith('mg '))
        .map(opaqueOf)
      assert.equal(tokens.length, 1300)
      for (const token of tokens) assert.match(token, /^[0-9a-z]{2}$/)
      assert.equal(new Set(tokens.slice(0, 1296)).size, 1296)
      assert.deepEqual(tokens.slice(1296), tokens.slice(0, 4))
    } finally {
      await client.close()
    }
  })

  test('a status reply for another request is refused, not taken as the answer', async () => {
    // Any token but the request's own (tokens cycle through all 1296, so a fixed one would
    // sometimes be the request's).
    let other = ''
    const scripted = await startLineServer((line) => {
      if (!line.startsWith('ms ')) return undefined
      other = opaqueOf(line) === 'zz' ? 'zy' : 'zz'
      return `HD O${other}\r\n`
    })
    const client = createClient({ servers: scripted.address, retries: 0 })
    try {
      const error = await client.set('k', 'v').then(
        () => undefined,
        (reason: unknown) => reason as Error & { code?: string },
      )
      assert.equal(error?.code, 'ERR_MEMKIT_PROTOCOL', String(error))
      assert.match(String(error?.message), new RegExp(`reply "HD O${other}" belongs to another request`))
    } finally {
      await client.close()
    }
  })

  const multiGet: Array<[string, string, RegExp]> = [
    ['an index past the last key', 'VA 1 f0 O3\r\nx\r\nMN\r\n', /to getMany: unexpected VA 1 f0 O3$/],
    ['an index answered twice', 'VA 1 f0 O1\r\nx\r\nVA 1 f0 O1\r\nx\r\nMN\r\n', /unexpected VA 1 f0 O1$/],
    ['indexes out of order', 'VA 1 f0 O2\r\nx\r\nVA 1 f0 O1\r\nx\r\nMN\r\n', /unexpected VA 1 f0 O1$/],
    ['no index', 'VA 1 f0\r\nx\r\nMN\r\n', /unexpected VA 1 f0$/],
    ['an index that is not a number', 'VA 1 f0 O1x\r\nx\r\nMN\r\n', /unexpected VA 1 f0 O1x$/],
    ['a bad size', 'VA x f0 O0\r\nMN\r\n', /bad size in VA x f0 O0$/],
    ['a bad flags token', 'VA 1 fz O0\r\nx\r\nMN\r\n', /bad flags token fz$/],
    [
      'an error reply inside',
      'SERVER_ERROR out of memory\r\nMN\r\n',
      /answered getMany with SERVER_ERROR out of memory$/,
    ],
    ['an MN with more on its line', 'MN now\r\n', /unexpected line "MN now"$/],
  ]
  for (const [label, reply, message] of multiGet) {
    test(`getMany, ${label}: a partial read naming the malformed reply, the connection reset`, async () => {
      const scripted = await startLineServer((line) => {
        if (line === 'mn') return scripted.connections() === 1 ? reply : 'VA 1 f16 O2\r\nc\r\nMN\r\n'
        return undefined
      })
      const client = createClient({ servers: scripted.address, retries: 0 })
      try {
        await assert.rejects(client.getMany(['a', 'b', 'c']), { code: 'ERR_MEMKIT_PARTIAL_READ', message })
        assert.deepEqual(await client.getMany(['a', 'b', 'c']), new Map([['c', 'c']]))
        assert.equal(scripted.connections(), 2)
      } finally {
        await client.close()
      }
    })
  }

  test('getMany skips the keys nobody answered and keeps the order it asked in', async () => {
    const scripted = await startLineServer((line) =>
      line === 'mn' ? 'VA 1 f16 O0\r\na\r\nVA 2 f2 O2\r\n42\r\nMN\r\n' : undefined,
    )
    const client = createClient({ servers: scripted.address, retries: 0 })
    try {
      assert.deepEqual(
        await client.getMany(['a', 'b', 'c']),
        new Map<string, unknown>([
          ['a', 'a'],
          ['c', 42],
        ]),
      )
    } finally {
      await client.close()
    }
  })

  const counters: Array<[string, (o: string) => string, RegExp]> = [
    ['an empty counter', (o) => `VA 0 O${o}\r\n\r\n`, /bad counter size in VA 0 O\w+$/],
    [
      'a counter of 21 digits',
      (o) => `VA 21 O${o}\r\n${'1'.repeat(21)}\r\n`,
      /bad counter size in VA 21 O\w+$/,
    ],
    ['a counter that is not a number', (o) => `VA 2 O${o}\r\nab\r\n`, /counter value "ab" is not a number$/],
    ['a counter with a sign', (o) => `VA 2 O${o}\r\n-1\r\n`, /counter value "-1" is not a number$/],
    ['a counter with a bad ttl token', (o) => `VA 1 tz O${o}\r\n1\r\n`, /bad ttl token tz$/],
  ]
  for (const [label, reply, message] of counters) {
    test(`incr, ${label}: ERR_MEMKIT_PROTOCOL`, async () => {
      const scripted = await startLineServer((line) =>
        line.startsWith('ma ') ? reply(opaqueOf(line)) : undefined,
      )
      const client = createClient({ servers: scripted.address, retries: 0 })
      try {
        await assert.rejects(client.incr('n', 1), { code: 'ERR_MEMKIT_PROTOCOL', message })
      } finally {
        await client.close()
      }
    })
  }

  test('counters of 1 and 20 digits are read; NF, NS and EX are a miss', async () => {
    const replies = new Map([
      ['one', (o: string) => `VA 1 O${o}\r\n7\r\n`],
      ['twenty', (o: string) => `VA 20 t-1 O${o}\r\n18446744073709551615\r\n`],
      ['nf', (o: string) => `NF O${o}\r\n`],
      ['ns', (o: string) => `NS O${o}\r\n`],
      ['ex', (o: string) => `EX O${o}\r\n`],
    ])
    const scripted = await startLineServer((line) => {
      const key = /^ma (\S+)/.exec(line)?.[1]
      return key === undefined ? undefined : replies.get(key)?.(opaqueOf(line))
    })
    const client = createClient({ servers: scripted.address, retries: 0 })
    try {
      assert.equal(await client.incr('one', 1), 7)
      assert.equal(await client.incrBig('twenty', 1n), 2n ** 64n - 1n)
      for (const key of ['nf', 'ns', 'ex']) assert.equal(await client.incr(key, 1), undefined, key)
      assert.equal(scripted.connections(), 1)
    } finally {
      await client.close()
    }
  })

  const batches: Array<[string, string, RegExp]> = [
    ['a miss for an index past the last key', 'NF O3\r\nMN\r\n', /to deleteMany: unexpected NF O3$/],
    ['a miss answered twice', 'NF O1\r\nNF O1\r\nMN\r\n', /unexpected NF O1$/],
    ['misses out of order', 'NF O2\r\nNF O1\r\nMN\r\n', /unexpected NF O1$/],
    ['a miss without an index', 'NF\r\nMN\r\n', /unexpected NF$/],
    ['a miss with a bad flags token', 'NF O1 fz\r\nMN\r\n', /unexpected NF O1 fz$/],
    ['a CLIENT_ERROR inside', 'CLIENT_ERROR bad command line\r\nMN\r\n', /CLIENT_ERROR bad command line$/],
    ['an unknown line inside', 'HELLO\r\nMN\r\n', /unexpected line "HELLO"$/],
    ['an MN with more on its line', 'MN now\r\n', /unexpected line "MN now"$/],
  ]
  for (const [label, reply, message] of batches) {
    test(`deleteMany, ${label}: a partial write naming the malformed reply, the connection reset`, async () => {
      const scripted = await startLineServer((line) => {
        if (line === 'mn') return scripted.connections() === 1 ? reply : 'NF O0\r\nEX O2\r\nMN\r\n'
        return undefined
      })
      const client = createClient({ servers: scripted.address, retries: 0 })
      try {
        await assert.rejects(client.deleteMany(['a', 'b', 'c']), {
          code: 'ERR_MEMKIT_PARTIAL_WRITE',
          message,
        })
        assert.equal(await client.deleteMany(['a', 'b', 'c']), 1, 'two of three were missing')
        assert.equal(scripted.connections(), 2)
      } finally {
        await client.close()
      }
    })
  }

  test('getMany retried after a reset mid-batch reads the retry from its start, and counts its hits once', async () => {
    const scripted = await startScriptedServer((chunk, _all, socket) => {
      if (!chunk.includes('mn\r\n')) return undefined
      if (scripted.connections() === 1) {
        socket.end('VA 5 f16 O0\r\nfirst\r\nVA 5 f16 O2\r\nfirst\r\n')
        return undefined
      }
      return 'VA 6 f16 O0\r\nsecond\r\nMN\r\n'
    })
    const client = createClient({ servers: scripted.address, retries: 1, failureLimit: 5 })
    const events: CommandEvent[] = []
    const listener = (message: unknown) => events.push(message as CommandEvent)
    subscribe(CHANNELS.command, listener)
    try {
      const read = await client.getMany(['a', 'b', 'c'])
      assert.equal(read.get('a'), 'second')
      assert.equal(scripted.connections(), 2)
      const event = events.find((e) => e.command === 'getMany')!
      assert.deepEqual([event.keys, event.hits, event.hit], [3, 1, true])
    } finally {
      unsubscribe(CHANNELS.command, listener)
      await client.close()
    }
  })

  test('deleteMany retried after a reset mid-batch counts only the retry’s misses', async () => {
    const scripted = await startScriptedServer((chunk, _all, socket) => {
      if (!chunk.includes('mn\r\n')) return undefined
      if (scripted.connections() === 1) {
        socket.end('NF O1\r\nNF O2\r\n')
        return undefined
      }
      return 'NF O1\r\nMN\r\n'
    })
    const client = createClient({ servers: scripted.address, retries: 1, failureLimit: 5 })
    try {
      assert.equal(await client.deleteMany(['a', 'b', 'c']), 2, 'only b was missing')
      assert.equal(scripted.connections(), 2)
    } finally {
      await client.close()
    }
  })

  test('a SERVER_ERROR inside a batch fails it after its MN; the connection stays in step', async () => {
    let batches = 0
    const scripted = await startLineServer((line) => {
      if (line !== 'mn') return undefined
      batches++
      return batches === 1
        ? 'NS O0\r\nSERVER_ERROR out of memory storing object\r\nSERVER_ERROR again\r\nMN\r\n'
        : 'NS O1\r\nMN\r\n'
    })
    const client = createClient({ servers: scripted.address, retries: 0 })
    try {
      const error = (await client.setMany({ a: 1, b: 2, c: 3 }).catch((e) => e)) as MemkitError
      assert.equal(error.code, 'ERR_MEMKIT_PARTIAL_WRITE', `${error.code}: ${error.message}`)
      const failed = (error as unknown as { failed: Map<string, MemkitError> }).failed
      const message = `${scripted.address} answered setMany with SERVER_ERROR out of memory storing object`
      assert.deepEqual(
        [...failed].map(([key, e]) => [key, e.code, e.message]),
        ['a', 'b', 'c'].map((key) => [key, 'ERR_MEMKIT_SERVER', message]),
        'the whole batch fails with the first SERVER_ERROR',
      )
      // the next batch reads its own replies: only b was not stored
      const next = (await client.setMany({ a: 1, b: 2, c: 3 }).catch((e) => e)) as MemkitError
      assert.deepEqual([...(next as unknown as { failed: Map<string, MemkitError> }).failed.keys()], ['b'])
      assert.equal(scripted.connections(), 1)
    } finally {
      await client.close()
    }
  })
})

describe('stats and version from a server that is not quite memcached', () => {
  test('stats retried on a fresh connection starts over; a STAT without a value is empty, one with spaces kept whole', async () => {
    const scripted = await startScriptedServer((chunk, _all, socket) => {
      if (!chunk.startsWith('stats')) return undefined
      if (scripted.connections() === 1) {
        // half a reply, then the connection drops: the retry must not keep this line
        socket.write('STAT stale 1\r\n')
        socket.destroy()
        return undefined
      }
      return 'STAT pid 7\r\nSTAT lonely\r\nSTAT version 1.6.99 (custom build)\r\nEND\r\n'
    })
    const client = createClient({ servers: scripted.address, retries: 1, failureLimit: 5 })
    try {
      const [stats] = await client.stats()
      assert.equal(stats!.up, true, JSON.stringify(stats!.error))
      assert.deepEqual(stats!.raw, { pid: '7', lonely: '', version: '1.6.99 (custom build)' })
      assert.equal(stats!.version, '1.6.99 (custom build)')
      assert.equal(scripted.connections(), 2)
    } finally {
      await client.close()
    }
  })

  test('a stats request the server refuses: the server is reported not up, with the refusal', async () => {
    const refusing = await startScriptedServer((chunk) =>
      chunk.startsWith('stats') ? 'SERVER_ERROR stats disabled\r\n' : undefined,
    )
    const client = createClient({ servers: refusing.address, retries: 0 })
    try {
      const [stats] = await client.stats()
      assert.equal(stats!.up, false)
      assert.deepEqual(stats!.error, {
        code: 'ERR_MEMKIT_SERVER',
        message: `${refusing.address} answered stats with SERVER_ERROR stats disabled`,
      })
    } finally {
      await client.close()
    }
  })

  test('behind a proxy, stats is the version line; any other answer marks the server not up', async () => {
    const versioned = await startScriptedServer((chunk) =>
      chunk.startsWith('version') ? 'VERSION 1.6.99 custom\r\n' : undefined,
    )
    const busy = await startScriptedServer((chunk) =>
      chunk.startsWith('version') ? 'SERVER_ERROR busy\r\n' : undefined,
    )
    const client = createClient({
      servers: [versioned.address, busy.address],
      proxy: true,
      protocol: 'classic',
      retries: 0,
    })
    try {
      const [good, bad] = await client.stats()
      assert.deepEqual(good, { server: versioned.address, up: true, version: '1.6.99 custom' })
      assert.equal(bad!.up, false)
      assert.equal(bad!.version, undefined)
      assert.deepEqual(bad!.error, {
        code: 'ERR_MEMKIT_SERVER',
        message: `${busy.address} answered version with SERVER_ERROR busy`,
      })
    } finally {
      await client.close()
    }
  })
})

describe('closing', () => {
  test('close() lets in-flight operations finish, then refuses new ones with ERR_MEMKIT_CLOSED', async () => {
    const server = await startMemcached()
    const client = createClient({ servers: server.address })
    await client.set('k', 'v')
    const inFlight = client.get('k')
    await client.close()
    assert.equal(await inFlight, 'v')
    await assert.rejects(client.get('k'), { code: 'ERR_MEMKIT_CLOSED' })
    await assert.rejects(client.getMany(['k']), { code: 'ERR_MEMKIT_CLOSED' })
  })

  test('an idle client does not keep the process alive (a script can end without close())', async () => {
    const server = await startMemcached()
    const script = `
      import { createClient } from ${JSON.stringify(fileURLToPath(new URL('../src/index.ts', import.meta.url)))}
      const client = createClient({ servers: ${JSON.stringify(server.address)} })
      await client.set('k', 'v')
      console.log(await client.get('k'))
    `
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      timeout: 10_000,
      encoding: 'utf8',
    })
    assert.equal(result.signal, null, 'the process exited on its own')
    assert.equal(result.stdout.trim(), 'v')
  })
})

describe('a reply that announces a huge value (a broken or hostile server)', () => {
  const cases = [
    [
      'meta',
      (c: string) => c.startsWith('mg '),
      (chunk: string) => `VA 400000000 f0 O${opaqueOf(chunk)}\r\n`,
    ],
    [
      'classic',
      (c: string) => c.startsWith('get '),
      (chunk: string) => `VALUE ${chunk.split(' ')[1]!.trim()} 0 400000000\r\n`,
    ],
    // A binary GET request: magic 0x80, opcode 0x00.
    ['binary', (c: string) => c.charCodeAt(0) === 0x80 && c.charCodeAt(1) === 0, binaryHeader],
  ] as const
  for (const [protocol, request, header] of cases) {
    test(`${protocol}: ERR_MEMKIT_PROTOCOL at once, the connection is reset, nothing is buffered`, async () => {
      let closed = false
      const garbage = Buffer.alloc(1024 * 1024, 0x61)
      const scripted = await startScriptedServer((chunk, _text, socket) => {
        if (!request(chunk)) return undefined
        socket.once('close', () => {
          closed = true
        })
        socket.write(header(chunk))
        // Keeps sending: a client that believed the header would buffer all of it.
        const pump = () => {
          if (!socket.destroyed && socket.write(garbage)) setImmediate(pump)
        }
        setImmediate(pump)
        return undefined
      })
      const client = createClient({ servers: scripted.address, protocol, timeout: 5000, retries: 0 })
      const heapBefore = process.memoryUsage().arrayBuffers
      try {
        const error = (await client.get('big').catch((e) => e)) as MemkitError
        assert.equal(error.code, 'ERR_MEMKIT_PROTOCOL', `${error.code}: ${error.message}`)
        assert.match(error.message, /\b400000\d+ bytes, over the item size limit of 1048576/)
        await waitUntil(() => closed)
        const grown = process.memoryUsage().arrayBuffers - heapBefore
        assert.ok(grown < 64 * 1024 * 1024, `buffers grew by ${grown} bytes`)
      } finally {
        await client.close()
        await scripted.close()
      }
    })
  }
})

/** A binary-protocol GET response header (24 bytes) announcing a 400 MB body, echoing the request's opaque. */
function binaryHeader(chunk: string): Buffer {
  const requestHeader = Buffer.from(chunk, 'latin1')
  const header = Buffer.alloc(24)
  header.writeUInt8(0x81, 0)
  header.writeUInt8(0x00, 1)
  header.writeUInt8(4, 4)
  header.writeUInt32BE(400_000_004, 8)
  requestHeader.copy(header, 12, 12, 16)
  return header
}
