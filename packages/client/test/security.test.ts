// TLS (memcached -Z), ASCII authentication (-Y) and SASL through the binary protocol (-S),
// against real servers with certificates, auth files and a sasldb made by the test.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { createServer as createTlsServer, type TLSSocket } from 'node:tls'
import {
  generateTlsMaterial,
  type MemcachedServer,
  startMemcached,
  startMemcachedCluster,
  stopAll,
  type TlsMaterial,
  waitUntil,
} from '@memkit/testing'
import { createClient, type MemkitError } from '../src/index.js'
import { describeConformance } from './conformance.js'

const users = [{ username: 'ann', password: 's3cret-pass' }]
let tls: TlsMaterial
let tlsServer: MemcachedServer
let authServer: MemcachedServer
let saslServers: MemcachedServer[]
before(async () => {
  tls = generateTlsMaterial()
  tlsServer = await startMemcached({ tls })
  authServer = await startMemcached({ asciiAuth: users })
  saslServers = await startMemcachedCluster(2, { sasl: [{ username: 'ann', password: 'hunter2' }] })
})
after(stopAll)

// "Fails fast" is the error itself (a refused handshake or credentials, not ERR_MEMKIT_TIMEOUT),
// and "within the timeout" is the runner's own `timeout`, ten times the client's: no latency
// figures in tests (they are in the benchmarks).

/** What `work` settled with: the error, or 'resolved'. */
async function settled(work: Promise<unknown>): Promise<unknown> {
  return work.then(
    () => 'resolved',
    (error: unknown) => error,
  )
}

/**
 * A TLS listener that hands every complete request line to `onLine` (for the nudge, which only
 * TLS connections get: memcached itself answers it too fast to hold a request back).
 */
async function startTlsScripted(onLine: (line: string, socket: TLSSocket) => void) {
  let connections = 0
  const open = new Set<TLSSocket>()
  const received: string[] = []
  const server = createTlsServer(
    { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) },
    (socket) => {
      connections++
      open.add(socket)
      let text = ''
      socket.on('error', () => {})
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1')
        let end = text.indexOf('\r\n')
        while (end !== -1) {
          const line = text.slice(0, end)
          text = text.slice(end + 2)
          received.push(line)
          onLine(line, socket)
          end = text.indexOf('\r\n')
        }
      })
    },
  )
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => connections,
    received: () => received,
    close: () => {
      server.close()
      for (const socket of open) socket.destroy()
    },
  }
}

describe('TLS', () => {
  describeConformance('meta protocol over TLS (memcached -Z)', {
    client: (options) => createClient({ servers: tlsServer.address, tls: { ca: tls.ca }, ...options }),
  })

  test('pipelined bursts over TLS never stall (memcached 1.6 TLS buffering is nudged)', async () => {
    // Without the nudge, about 1 burst in 15 left its last requests waiting until timeout.
    for (let round = 0; round < 20; round++) {
      const client = createClient({ servers: tlsServer.address, tls: { ca: tls.ca }, timeout: 2000 })
      try {
        await client.set('warm', 1)
        const results = await Promise.allSettled(
          Array.from({ length: 500 }, (_, i) => client.set(`burst:${i}`, `value-${i}`)),
        )
        assert.equal(results.filter((r) => r.status === 'rejected').length, 0, `round ${round}`)
      } finally {
        await client.close()
      }
    }
  })

  test('a TLS server silent with a request outstanding is nudged with mn; its MN keeps the connection', async () => {
    let nudged = false
    const held: string[] = []
    const scripted = await startTlsScripted((line, socket) => {
      const opaque = /\bO(\w+)/.exec(line)?.[1]
      if (line.startsWith('mg ')) {
        if (nudged) socket.write(`EN O${opaque}\r\n`)
        else held.push(`EN O${opaque}\r\n`)
      } else if (line === 'mn') {
        nudged = true
        socket.write(`${held.join('')}MN\r\n`)
      }
    })
    const client = createClient({ servers: scripted.address, tls: { ca: tls.ca }, retries: 0, timeout: 5000 })
    try {
      assert.equal(await client.get('held'), undefined, 'answered once nudged')
      assert.ok(scripted.received().includes('mn'), 'the nudge is a meta no-op')
      assert.equal(await client.get('next'), undefined)
      assert.equal(scripted.connections(), 1, 'the MN answer was read as the reply to the nudge')
    } finally {
      await client.close()
      scripted.close()
    }
  })

  test('a nudge answered with garbage resets the connection; requests behind it fail with that reply', async () => {
    let first = ''
    const scripted = await startTlsScripted((line, socket) => {
      if (!line.startsWith('mg ')) return
      const opaque = /\bO(\w+)/.exec(line)?.[1] ?? ''
      if (first === '') first = opaque
      // the request sent after the nudge: answer the first one, then garbage for the nudge
      else socket.write(`EN O${first}\r\nHELLO\r\n`)
    })
    const client = createClient({ servers: scripted.address, tls: { ca: tls.ca }, retries: 0, timeout: 5000 })
    try {
      const held = client.get('held')
      await waitUntil(() => scripted.received().includes('mn'), { message: 'the nudge was sent' })
      const behind = settled(client.get('behind'))
      assert.equal(await held, undefined)
      const error = (await behind) as MemkitError
      assert.equal(error.code, 'ERR_MEMKIT_PROTOCOL', String(error))
      assert.equal(error.message, `malformed reply from ${scripted.address} to noop: unexpected line "HELLO"`)
    } finally {
      await client.close()
      scripted.close()
    }
  })

  test('the classic protocol works over TLS too', async () => {
    const client = createClient({ servers: tlsServer.address, protocol: 'classic', tls: { ca: tls.ca } })
    try {
      await client.set('tls:classic', { ok: true })
      assert.deepEqual(await client.get('tls:classic'), { ok: true })
    } finally {
      await client.close()
    }
  })

  test('a certificate from another CA fails fast with a clear, typed error', {
    timeout: 20_000,
  }, async () => {
    const client = createClient({ servers: tlsServer.address, tls: { ca: tls.otherCa }, timeout: 2000 })
    try {
      const error = await settled(client.get('k'))
      assert.equal((error as MemkitError).code, 'ERR_MEMKIT_CONNECTION')
      assert.match(
        (error as Error).message,
        /TLS handshake with 127\.0\.0\.1:\d+ failed: .*(certificate|self.signed)/i,
      )
    } finally {
      await client.close()
    }
  })

  test('tls: true trusts only the system CAs, so a private CA is refused', async () => {
    const client = createClient({ servers: tlsServer.address, tls: true })
    try {
      await assert.rejects(client.get('k'), { code: 'ERR_MEMKIT_CONNECTION', message: /TLS handshake/ })
    } finally {
      await client.close()
    }
  })

  test('plain text to a TLS-only server times out or fails, typed, within the timeout', {
    timeout: 3000,
  }, async () => {
    const client = createClient({ servers: tlsServer.address, timeout: 300 })
    try {
      const error = await settled(client.get('k'))
      assert.match((error as MemkitError).code, /^ERR_MEMKIT_(TIMEOUT|CONNECTION|PROTOCOL)$/)
    } finally {
      await client.close()
    }
  })
})

describe('ASCII authentication (memcached -Y)', () => {
  describeConformance('meta protocol with ASCII auth', {
    client: (options) => createClient({ servers: authServer.address, auth: users[0], ...options }),
  })

  test('the classic protocol authenticates the same way', async () => {
    const client = createClient({ servers: authServer.address, protocol: 'classic', auth: users[0] })
    try {
      assert.equal(await client.set('auth:classic', 'in'), true)
      assert.equal(await client.get('auth:classic'), 'in')
    } finally {
      await client.close()
    }
  })

  test('wrong credentials fail at once with ERR_MEMKIT_AUTH, not a hang', { timeout: 10_000 }, async () => {
    const client = createClient({ servers: authServer.address, auth: { username: 'ann', password: 'wrong' } })
    try {
      const error = await settled(client.get('k'))
      assert.equal((error as MemkitError).code, 'ERR_MEMKIT_AUTH')
      assert.match((error as Error).message, /refused the credentials/)
      // and the server, marked down, keeps saying why
      await client.get('k').catch(() => {})
      const error2 = (await client.get('k').catch((e) => e)) as MemkitError
      assert.match(error2.message, /refused the credentials|authentication/)
    } finally {
      await client.close()
    }
  })

  test('a password with whitespace is refused at construction: -Y cannot carry it', () => {
    assert.throws(() => createClient({ auth: { username: 'ann', password: 'two words' } }), {
      code: 'ERR_MEMKIT_INVALID_OPTION',
      message: /whitespace/,
    })
  })

  test('no credentials against an authenticating server: ERR_MEMKIT_AUTH saying so', async () => {
    const client = createClient({ servers: authServer.address })
    try {
      await assert.rejects(client.get('k'), { code: 'ERR_MEMKIT_AUTH', message: /requires authentication/ })
    } finally {
      await client.close()
    }
  })
})

describe('binary protocol through memjs, with SASL PLAIN (memcached -S)', () => {
  describeConformance('binary protocol, SASL, two servers', {
    client: (options) =>
      createClient({
        servers: saslServers.map((s) => s.address),
        protocol: 'binary',
        auth: { username: 'ann', password: 'hunter2' },
        ...options,
      }),
    lacks: ['remainingTtl'],
  })

  test('keys are placed by memkit’s ketama, the same as with the other transports', async () => {
    const binary = createClient({
      servers: saslServers.map((s) => s.address),
      protocol: 'binary',
      auth: { username: 'ann', password: 'hunter2' },
    })
    const meta = createClient({ servers: saslServers.map((s) => s.address) })
    try {
      for (let i = 0; i < 50; i++) assert.equal(binary.serverFor(`k${i}`), meta.serverFor(`k${i}`))
      // and each key really is on that server: ask each server alone
      await binary.set('placed', 'here')
      const owner = binary.serverFor('placed')
      for (const server of saslServers) {
        const single = createClient({
          servers: server.address,
          protocol: 'binary',
          auth: { username: 'ann', password: 'hunter2' },
        })
        assert.equal(await single.get('placed'), server.address === owner ? 'here' : undefined)
        await single.close()
      }
    } finally {
      await binary.close()
      await meta.close()
    }
  })

  test('stats and flush work over the binary protocol', async () => {
    const client = createClient({
      servers: saslServers[0]!.address,
      protocol: 'binary',
      auth: { username: 'ann', password: 'hunter2' },
    })
    try {
      await client.set('s', 1)
      const [stats] = await client.stats()
      assert.equal(stats!.up, true)
      assert.match(stats!.version!, /^1\.6\./)
      assert.ok(stats!.currItems! >= 1)
      await client.flush()
      assert.equal(await client.get('s'), undefined)
    } finally {
      await client.close()
    }
  })

  test('wrong SASL credentials fail with ERR_MEMKIT_AUTH within the timeout', {
    timeout: 10_000,
  }, async () => {
    const client = createClient({
      servers: saslServers[0]!.address,
      protocol: 'binary',
      auth: { username: 'ann', password: 'nope' },
      timeout: 1000,
    })
    try {
      const error = await settled(client.get('k'))
      assert.equal((error as MemkitError).code, 'ERR_MEMKIT_AUTH')
    } finally {
      await client.close()
    }
  })

  test('tls with the binary protocol is refused at construction', () => {
    assert.throws(() => createClient({ protocol: 'binary', tls: true }), {
      code: 'ERR_MEMKIT_INVALID_OPTION',
    })
  })
})
