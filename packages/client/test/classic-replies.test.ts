// The classic text protocol's replies, word by word, against scripted servers: what a proxy or
// an old memcached can send, including what memcached itself never does. Each malformed reply is
// a typed ERR_MEMKIT_PROTOCOL that resets the connection (the next request goes on a fresh one);
// each well-formed one is read as memcached's protocol.txt describes it.
import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { after, describe, test } from 'node:test'
import { type FakeServer, startScriptedServer, stopAll, waitUntil } from '@memkit/testing'
import { CHANNELS, type CommandEvent, createClient, type MemcachedClient } from '../src/index.js'

after(stopAll)

// Every test settles well within this (the runner's own bound): a reply the client misreads
// fails its test instead of hanging it.
const LIMIT = { timeout: 10_000 }

/** A scripted server answering each request line with `answer(line, connection)` (nothing for undefined). */
async function lineServer(answer: (line: string, connection: number) => string | undefined) {
  const server: FakeServer = await startScriptedServer((chunk) => {
    let out = ''
    for (const line of chunk.split('\r\n')) out += answer(line, server.connections()) ?? ''
    return out === '' ? undefined : out
  })
  return server
}

/** The request lines `server` received that start with `prefix`, across connections. */
function sent(server: FakeServer, prefix: string): string[] {
  return server
    .received()
    .split('\r\n')
    .filter((line) => line.startsWith(prefix))
}

function classic(server: FakeServer, options: Parameters<typeof createClient>[0] = {}): MemcachedClient {
  return createClient({ servers: server.address, protocol: 'classic', retries: 0, ...options })
}

describe('get and gets', () => {
  const malformed: Array<[string, 'get' | 'gets', string, RegExp]> = [
    [
      'a value for another key',
      'get',
      'VALUE other 0 1\r\nx\r\nEND\r\n',
      /a value for "other" where k was asked$/,
    ],
    ['a size that is not a number', 'get', 'VALUE k 0 x\r\n', /bad VALUE k 0 x$/],
    ['a negative size', 'get', 'VALUE k 0 -1\r\n', /bad VALUE k 0 -1$/],
    ['a fractional size', 'get', 'VALUE k 0 1.5\r\n', /bad VALUE k 0 1\.5$/],
    ['no size', 'get', 'VALUE k 0\r\n', /bad VALUE k 0$/],
    ['flags that are not a number', 'get', 'VALUE k z 1\r\nx\r\nEND\r\n', /bad VALUE k z 1$/],
    ['gets without a cas', 'gets', 'VALUE k 0 1\r\nx\r\nEND\r\n', /no cas in VALUE k 0 1$/],
    [
      'gets with a cas that is not a number',
      'gets',
      'VALUE k 0 1 12a\r\nx\r\nEND\r\n',
      /no cas in VALUE k 0 1 12a$/,
    ],
    ['gets with a cas after junk', 'gets', 'VALUE k 0 1 a12\r\nx\r\nEND\r\n', /no cas in VALUE k 0 1 a12$/],
    ['an unknown line', 'get', 'HELLO\r\n', /unexpected line "HELLO"$/],
  ]
  for (const [label, command, reply, message] of malformed) {
    test(
      `${command}, ${label}: ERR_MEMKIT_PROTOCOL, the next request on a fresh connection`,
      LIMIT,
      async () => {
        const server = await lineServer((line, connection) => {
          if (!line.startsWith(`${command} `)) return undefined
          return connection === 1 ? reply : 'END\r\n'
        })
        const client = classic(server)
        try {
          await assert.rejects(command === 'get' ? client.get('k') : client.gets('k'), {
            code: 'ERR_MEMKIT_PROTOCOL',
            message,
          })
          assert.equal(await (command === 'get' ? client.get('k') : client.gets('k')), undefined)
          assert.equal(server.connections(), 2)
        } finally {
          await client.close()
        }
      },
    )
  }

  test('an empty value is a hit, in get and in getMany', LIMIT, async () => {
    const server = await lineServer((line) =>
      line === 'get e' || line === 'get e f' ? 'VALUE e 16 0\r\n\r\nEND\r\n' : undefined,
    )
    const client = classic(server)
    try {
      assert.equal(await client.get('e'), '')
      assert.deepEqual(await client.getMany(['e', 'f']), new Map([['e', '']]))
      assert.equal(server.connections(), 1)
    } finally {
      await client.close()
    }
  })

  test('a hit, its flags and cas; a miss; both on one connection', LIMIT, async () => {
    const server = await lineServer((line) => {
      if (line === 'get k' || line === 'gets k') return 'VALUE k 16 2 42\r\nhi\r\nEND\r\n'
      if (line === 'get n' || line === 'gets n') return 'END\r\n'
      if (line === 'get raw') return 'VALUE raw 0 2\r\nhi\r\nEND\r\n'
      return undefined
    })
    const client = classic(server)
    try {
      assert.equal(await client.get('k'), 'hi')
      assert.deepEqual(await client.gets('k'), { value: 'hi', cas: '42' })
      assert.equal(await client.get('n'), undefined)
      assert.equal(await client.gets('n'), undefined)
      // flags 0: bytes, as the default serializer reads them
      assert.deepEqual(await client.get('raw'), Buffer.from('hi'))
      assert.deepEqual(sent(server, 'get'), ['get k', 'gets k', 'get n', 'gets n', 'get raw'])
      assert.equal(server.connections(), 1)
    } finally {
      await client.close()
    }
  })

  test(
    'a get cut off after its value is sent again and read from the start: a miss then is a miss',
    LIMIT,
    async () => {
      for (const command of ['get', 'gets'] as const) {
        const server: FakeServer = await startScriptedServer((chunk, _all, socket) => {
          if (!chunk.startsWith(`${command} `)) return undefined
          if (server.connections() === 1) {
            socket.write('VALUE k 16 2 9\r\nhi\r\n')
            setImmediate(() => socket.destroy())
            return undefined
          }
          return 'END\r\n'
        })
        const client = classic(server, { retries: 1, failureLimit: 5 })
        try {
          const read = command === 'get' ? client.get('k') : client.gets('k')
          assert.equal(await read, undefined, `${command}: not the value of the first, cut-off reply`)
          assert.equal(server.connections(), 2)
        } finally {
          await client.close()
        }
      }
    },
  )

  test(
    'getAndTouch is touch then gets in one round trip; an item that was not touched is a miss',
    LIMIT,
    async () => {
      const server = await lineServer((line) => {
        if (line.startsWith('touch there ')) return 'TOUCHED\r\n'
        if (line.startsWith('touch gone ')) return 'NOT_FOUND\r\n'
        if (line.startsWith('gets ')) return `VALUE ${line.slice(5)} 16 1 7\r\nv\r\nEND\r\n`
        return undefined
      })
      const client = classic(server)
      try {
        assert.deepEqual(await client.getsAndTouch('there', 60), { value: 'v', cas: '7' })
        assert.equal(await client.getAndTouch('gone', 60), undefined)
        assert.deepEqual(sent(server, 'touch'), ['touch there 60', 'touch gone 60'])
      } finally {
        await client.close()
      }
    },
  )
})

describe('undecodable values', () => {
  test(
    'fail their read with ERR_MEMKIT_DECODE (or read as a miss with decodeErrors: miss) and keep the connection in step',
    LIMIT,
    async () => {
      // f8 is pymemcache's zlib bit: 'x' is not zlib data
      const server = await lineServer((line) => {
        if (line === 'get bad' || line === 'gets bad') return 'VALUE bad 8 1 5\r\nx\r\nEND\r\n'
        if (line === 'get good') return 'VALUE good 16 1\r\ng\r\nEND\r\n'
        if (line === 'get bad good') return 'VALUE bad 8 1\r\nx\r\nVALUE good 16 1\r\ng\r\nEND\r\n'
        return undefined
      })
      const client = classic(server)
      const lenient = classic(server, { decodeErrors: 'miss' })
      lenient.on('error', () => {})
      try {
        await assert.rejects(client.get('bad'), { code: 'ERR_MEMKIT_DECODE' })
        await assert.rejects(client.gets('bad'), { code: 'ERR_MEMKIT_DECODE' })
        assert.equal(await client.get('good'), 'g')
        await assert.rejects(client.getMany(['bad', 'good']), { code: 'ERR_MEMKIT_DECODE' })
        assert.equal(await client.get('good'), 'g')
        assert.equal(await lenient.get('bad'), undefined)
        assert.deepEqual(await lenient.getMany(['bad', 'good']), new Map([['good', 'g']]))
        assert.equal(server.connections(), 2, 'one connection per client: nothing was reset')
      } finally {
        await client.close()
        await lenient.close()
      }
    },
  )
})

describe('getMany', () => {
  test('at most 100 keys per get line; every hit read into one map', LIMIT, async () => {
    const server = await lineServer((line) => {
      if (!line.startsWith('get ')) return undefined
      let out = ''
      for (const key of line.slice(4).split(' '))
        if (Number(key.slice(1)) % 50 === 0) out += `VALUE ${key} 16 1\r\nv\r\n`
      return `${out}END\r\n`
    })
    const client = classic(server)
    try {
      const keys = Array.from({ length: 250 }, (_, i) => `k${i}`)
      const found = await client.getMany(keys)
      assert.deepEqual([...found.keys()].sort(), ['k0', 'k100', 'k150', 'k200', 'k50'])
      const lines = sent(server, 'get ')
      assert.deepEqual(
        lines.map((line) => line.split(' ').length - 1),
        [100, 100, 50],
      )
      assert.equal(lines[1]!.split(' ')[1], 'k100')
      // a whole number of lines: no empty one after them
      assert.equal((await client.getMany(keys.slice(0, 200))).size, 4)
      assert.deepEqual(
        sent(server, 'get')
          .slice(3)
          .map((line) => line.split(' ').length - 1),
        [100, 100],
      )
    } finally {
      await client.close()
    }
  })

  test(
    'a getMany cut off mid-reply is sent again and its hits counted once (diagnostics)',
    LIMIT,
    async () => {
      const server: FakeServer = await startScriptedServer((chunk, _all, socket) => {
        if (!chunk.startsWith('get ')) return undefined
        if (server.connections() === 1) {
          socket.write('VALUE a 16 1\r\na\r\n')
          setImmediate(() => socket.destroy())
          return undefined
        }
        return 'VALUE a 16 1\r\na\r\nVALUE b 16 1\r\nb\r\nEND\r\n'
      })
      const client = classic(server, { retries: 1, failureLimit: 5 })
      const events: CommandEvent[] = []
      const listener = (message: unknown) => events.push(message as CommandEvent)
      subscribe(CHANNELS.command, listener)
      try {
        assert.deepEqual(
          await client.getMany(['a', 'b', 'c']),
          new Map([
            ['a', 'a'],
            ['b', 'b'],
          ]),
        )
        const batch = events.find((event) => event.command === 'getMany' && event.client === client)
        assert.equal(batch?.keys, 3)
        assert.equal(batch?.hits, 2)
        assert.equal(server.connections(), 2)
      } finally {
        unsubscribe(CHANNELS.command, listener)
        await client.close()
      }
    },
  )

  const malformed: Array<[string, string, RegExp]> = [
    ['a value for a key not asked', 'VALUE z 0 1\r\nx\r\nEND\r\n', /unexpected VALUE z 0 1$/],
    ['a bad size', 'VALUE a 0 x\r\n', /unexpected VALUE a 0 x$/],
    ['a negative size', 'VALUE a 0 -2\r\n', /unexpected VALUE a 0 -2$/],
    ['an unknown line', 'HELLO\r\n', /unexpected line "HELLO"$/],
  ]
  for (const [label, reply, message] of malformed) {
    test(`${label}: a partial read naming the reply, the connection reset`, LIMIT, async () => {
      const server = await lineServer((line, connection) => {
        if (!line.startsWith('get ')) return undefined
        return connection === 1 ? reply : 'VALUE b 16 1\r\nb\r\nEND\r\n'
      })
      const client = classic(server)
      try {
        await assert.rejects(client.getMany(['a', 'b']), { code: 'ERR_MEMKIT_PARTIAL_READ', message })
        assert.deepEqual(await client.getMany(['a', 'b']), new Map([['b', 'b']]))
        assert.equal(server.connections(), 2)
      } finally {
        await client.close()
      }
    })
  }
})

describe('storage, delete, touch and counters', () => {
  test('each command line as protocol.txt writes it, and each status word read', LIMIT, async () => {
    const replies = new Map([
      ['set', 'STORED'],
      ['add', 'NOT_STORED'],
      ['replace', 'STORED'],
      ['append', 'NOT_STORED'],
      ['prepend', 'STORED'],
      ['delete', 'DELETED'],
      ['touch', 'NOT_FOUND'],
    ])
    let notStored = false
    const server = await lineServer((line) => {
      const [command] = line.split(' ')
      if (notStored && /^(set|add|replace|append|prepend) /.test(line)) return 'NOT_STORED\r\n'
      if (command === 'cas') return line.startsWith('cas gone ') ? 'NOT_FOUND\r\n' : 'EXISTS\r\n'
      const reply = replies.get(command!)
      return reply && line.includes(' ') ? `${reply}\r\n` : undefined
    })
    const client = classic(server)
    try {
      assert.equal(await client.set('k', 'v', { ttl: 60 }), true)
      assert.equal(await client.add('k', 'v'), false)
      assert.equal(await client.replace('k', 'v'), true)
      assert.equal(await client.append('k', 'v'), false)
      assert.equal(await client.prepend('k', 'v'), true)
      assert.equal(await client.cas('k', 'v', '5'), false)
      assert.equal(await client.cas('gone', 'v', '5'), false)
      assert.equal(await client.delete('k'), true)
      assert.equal(await client.touch('k', 60), false)
      assert.deepEqual(
        server
          .received()
          .split('\r\n')
          .filter((line) => /^[a-z]+ /.test(line)),
        [
          'set k 16 60 1',
          'add k 16 0 1',
          'replace k 16 0 1',
          // append and prepend keep the item's flags: the request's are 0
          'append k 0 0 1',
          'prepend k 0 0 1',
          'cas k 16 0 1 5',
          'cas gone 16 0 1 5',
          'delete k',
          'touch k 60',
        ],
      )
      // NOT_STORED is false for every storage command
      notStored = true
      for (const store of [client.set, client.add, client.replace, client.append, client.prepend])
        assert.equal(await store.call(client, 'k', 'v'), false)
    } finally {
      await client.close()
    }
  })

  const unexpected: Array<[string, (c: MemcachedClient) => Promise<unknown>, string, string]> = [
    ['set answered EXISTS', (c) => c.set('k', 'v'), 'set', 'EXISTS'],
    ['cas answered NOT_STORED', (c) => c.cas('k', 'v', '5'), 'cas', 'NOT_STORED'],
    ['delete answered STORED', (c) => c.delete('k'), 'delete', 'STORED'],
    ['touch answered DELETED', (c) => c.touch('k', 1), 'touch', 'DELETED'],
    ['incr answered a signed number', (c) => c.incr('k', 1), 'incr', '-1'],
    ['incr answered a number and more', (c) => c.incr('k', 1), 'incr', '5 x'],
  ]
  for (const [label, call, command, reply] of unexpected) {
    test(`${label}: ERR_MEMKIT_PROTOCOL`, LIMIT, async () => {
      const server = await lineServer((line) => (line.startsWith(`${command} `) ? `${reply}\r\n` : undefined))
      const client = classic(server)
      try {
        await assert.rejects(call(client), {
          code: 'ERR_MEMKIT_PROTOCOL',
          message: new RegExp(`unexpected line "${reply}"$`),
        })
      } finally {
        await client.close()
      }
    })
  }

  test("incr and decr: the value as memcached's decimal text; NOT_FOUND is a miss", LIMIT, async () => {
    const server = await lineServer((line) => {
      if (line === 'incr big 1') return '18446744073709551615\r\n'
      if (line === 'decr n 2') return '3\r\n'
      if (line.startsWith('incr gone ')) return 'NOT_FOUND\r\n'
      return undefined
    })
    const client = classic(server)
    try {
      assert.equal(await client.incrBig('big', 1n), 2n ** 64n - 1n)
      assert.equal(await client.decr('n', 2), 3)
      assert.equal(await client.incr('gone', 1), undefined)
    } finally {
      await client.close()
    }
  })

  test(
    'a counter with an initial value: incr, add on a miss, incr again when another client added first',
    LIMIT,
    async () => {
      let adds = 0
      const server = await lineServer((line) => {
        if (line.startsWith('incr ')) return line === 'incr raced 1' && adds > 0 ? '8\r\n' : 'NOT_FOUND\r\n'
        if (line.startsWith('add fresh ')) return 'STORED\r\n'
        if (line.startsWith('add raced ') || line.startsWith('add vanishing ')) {
          adds++
          return 'NOT_STORED\r\n'
        }
        return undefined
      })
      const client = classic(server)
      try {
        assert.equal(await client.incr('fresh', 1, { initial: 5, ttl: 60 }), 5)
        assert.deepEqual(sent(server, 'add fresh'), ['add fresh 0 60 1'])
        assert.equal(await client.incr('raced', 1, { initial: 5, ttl: 60 }), 8)
        assert.deepEqual(sent(server, 'incr raced'), ['incr raced 1', 'incr raced 1'])
        // created and deleted under it every time: a miss after three rounds, not a loop
        assert.equal(await client.incr('vanishing', 1, { initial: 5, ttl: 60 }), undefined)
        assert.equal(sent(server, 'incr vanishing').length, 3)
        assert.equal(sent(server, 'add vanishing').length, 3)
        assert.equal(await client.incr('gone-no-initial', 1), undefined)
      } finally {
        await client.close()
      }
    },
  )

  test('a malformed reply names the operation it answered', LIMIT, async () => {
    const operations: Array<[string, (c: MemcachedClient) => Promise<unknown>]> = [
      ['get', (c) => c.get('k')],
      ['gets', (c) => c.gets('k')],
      ['getMany', (c) => c.getMany(['k'])],
      ['set', (c) => c.set('k', 'v')],
      ['delete', (c) => c.delete('k')],
      ['touch', (c) => c.touch('k', 60)],
      ['incr', (c) => c.incr('k', 1)],
      ['decr', (c) => c.decr('k', 1)],
    ]
    const server = await lineServer((line) => (/^[a-z]+ k\b/.test(line) ? 'HELLO\r\n' : undefined))
    const client = classic(server, { failureLimit: 100 })
    try {
      for (const [name, call] of operations)
        await assert.rejects(call(client), {
          code: /^ERR_MEMKIT_(PROTOCOL|PARTIAL_READ)$/,
          message: new RegExp(`to ${name}: unexpected line "HELLO"$`),
        })
    } finally {
      await client.close()
    }
  })

  test(
    'a counter created with add: the add named in its error, and not sent again after a reset',
    LIMIT,
    async () => {
      let adds = 0
      const server: FakeServer = await startScriptedServer((chunk, _all, socket) => {
        if (chunk.startsWith('incr ')) return 'NOT_FOUND\r\n'
        if (!chunk.startsWith('add ')) return undefined
        adds++
        if (chunk.startsWith('add reset ')) {
          socket.destroy()
          return undefined
        }
        return 'HELLO\r\n'
      })
      const client = classic(server, { retries: 3, failureLimit: 100 })
      try {
        await assert.rejects(client.incr('odd', 1, { initial: 1 }), {
          code: 'ERR_MEMKIT_PROTOCOL',
          message: /to add: unexpected line "HELLO"$/,
        })
        adds = 0
        await assert.rejects(client.incr('reset', 1, { initial: 1 }), { code: 'ERR_MEMKIT_CONNECTION' })
        assert.equal(adds, 1, 'the add was sent once')
      } finally {
        await client.close()
      }
    },
  )

  test('what the classic protocol cannot do is refused by name, and nothing is sent', LIMIT, async () => {
    const server = await lineServer(() => undefined)
    const client = classic(server)
    try {
      await assert.rejects(client.incrWithTtl('k', 1), {
        code: 'ERR_MEMKIT_NOT_SUPPORTED',
        message: /cannot report a counter's remaining TTL; use protocol 'meta'/,
      })
      await assert.rejects(client.deleteIfUnchanged('k', '5'), {
        code: 'ERR_MEMKIT_NOT_SUPPORTED',
        message: /the classic protocol has no conditional delete/,
      })
      await assert.rejects(
        client.remember('k', 60, () => 1, { lease: true }),
        /lease needs the meta protocol .*protocol 'classic' has no leases/,
      )
      assert.equal(server.received(), '')
    } finally {
      await client.close()
    }
  })
})

describe('through a proxy', () => {
  test(
    'stats asks only for the version (sent again after a reset); flush is refused unsent',
    LIMIT,
    async () => {
      const server: FakeServer = await startScriptedServer((chunk, _all, socket) => {
        if (server.connections() === 1) {
          socket.destroy()
          return undefined
        }
        return chunk === 'version\r\n' ? 'VERSION 0.5.0\r\n' : undefined
      })
      const client = classic(server, { proxy: true, retries: 1, failureLimit: 5 })
      try {
        assert.deepEqual(await client.stats(), [{ server: server.address, up: true, version: '0.5.0' }])
        assert.equal(sent(server, 'version').length, 2)
        await assert.rejects(client.flush(), {
          code: 'ERR_MEMKIT_NOT_SUPPORTED',
          message: /flush is not available through a proxy/,
        })
        assert.deepEqual(sent(server, 'stats'), [])
        assert.deepEqual(sent(server, 'flush'), [])
      } finally {
        await client.close()
      }
    },
  )
})

describe('probes', () => {
  for (const failover of [false, true]) {
    test(
      `a server marked down is probed with version${failover ? ' and flush_all (failover rejoins by flushing)' : ''}; garbage keeps it down, VERSION brings it back`,
      LIMIT,
      async () => {
        let answer = 'HELLO'
        const server: FakeServer = await startScriptedServer((chunk, _all, socket) => {
          let out = ''
          for (const line of chunk.split('\r\n')) {
            if (line === 'version') out += `${answer}\r\n`
            else if (line === 'flush_all') out += 'OK\r\n'
            else if (line.startsWith('get ')) {
              if (server.connections() === 1) {
                socket.destroy()
                return undefined
              }
              out += 'END\r\n'
            }
          }
          return out === '' ? undefined : out
        })
        const client = classic(server, { failureLimit: 1, deadTimeout: 100, failover })
        const events: string[] = []
        client.on('server:down', () => events.push('down'))
        client.on('server:up', () => events.push('up'))
        try {
          await assert.rejects(client.get('k'), { code: 'ERR_MEMKIT_CONNECTION' })
          await waitUntil(() => sent(server, 'version').length >= 2, { message: 'probed twice' })
          assert.deepEqual(events, ['down'], 'a probe answered with garbage does not bring it back')
          answer = 'VERSION 1.6.21'
          await waitUntil(() => events.includes('up'), { message: 'back up' })
          assert.equal(sent(server, 'flush_all').length > 0, failover)
          assert.equal(await client.get('k'), undefined)
        } finally {
          await client.close()
        }
      },
    )
  }
})

describe('after a reset', () => {
  // Each operation on a server that drops the first connection when the request arrives: what is
  // safe to repeat is sent again on a fresh connection, what is not fails with the reset.
  const operations: Array<[string, string, boolean, (c: MemcachedClient) => Promise<unknown>]> = [
    ['get', 'get ', true, (c) => c.get('k')],
    ['gets', 'gets ', true, (c) => c.gets('k')],
    ['getMany', 'get ', true, (c) => c.getMany(['a', 'b'])],
    ['set', 'set ', true, (c) => c.set('k', 'v')],
    ['replace', 'replace ', true, (c) => c.replace('k', 'v')],
    ['delete', 'delete ', true, (c) => c.delete('k')],
    ['touch', 'touch ', true, (c) => c.touch('k', 60)],
    ['flush', 'flush_all', true, (c) => c.flush()],
    ['stats', 'stats', true, (c) => c.stats()],
    ['add', 'add ', false, (c) => c.add('k', 'v')],
    ['append', 'append ', false, (c) => c.append('k', 'v')],
    ['prepend', 'prepend ', false, (c) => c.prepend('k', 'v')],
    ['cas', 'cas ', false, (c) => c.cas('k', 'v', '5')],
    ['incr', 'incr ', false, (c) => c.incr('k', 1)],
    ['incr with an initial value', 'incr ', false, (c) => c.incr('k', 1, { initial: 1 })],
  ]
  for (const [name, prefix, again, call] of operations) {
    test(
      `${name}: ${again ? 'sent again on a fresh connection' : 'not repeated, the caller gets the reset'}`,
      LIMIT,
      async () => {
        const server: FakeServer = await startScriptedServer((chunk, _all, socket) => {
          if (server.connections() === 1) {
            socket.destroy()
            return undefined
          }
          const [command] = chunk.split(' ')
          const word = {
            get: 'END',
            gets: 'END',
            set: 'STORED',
            replace: 'STORED',
            delete: 'DELETED',
            touch: 'TOUCHED',
            'flush_all\r\n': 'OK',
            'stats\r\n': 'STAT pid 1\r\nEND',
          }[command!]
          return word === undefined ? undefined : `${word}\r\n`
        })
        const client = classic(server, { retries: 1, failureLimit: 5 })
        try {
          if (again) {
            await call(client)
            assert.equal(sent(server, prefix).length, 2, 'sent twice')
            assert.equal(server.connections(), 2)
          } else {
            await assert.rejects(call(client), { code: 'ERR_MEMKIT_CONNECTION' })
            assert.equal(sent(server, prefix).length, 1, 'sent once')
          }
        } finally {
          await client.close()
        }
      },
    )
  }
})
