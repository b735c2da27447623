import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { describe, test } from 'node:test'
import { isDeepStrictEqual } from 'node:util'
import { deflateSync } from 'node:zlib'
import { rawCommand, startMemcached, useMemcached } from '@memkit/testing'
import {
  createClient,
  DecodeError,
  Flags,
  InvalidOptionError,
  InvalidValueError,
  type Serializer,
} from '../src/index.js'

const { server, client } = await useMemcached({ createClient })

/** Stores raw bytes with chosen flags, bypassing the client (as another program would). */
async function storeRaw(key: string, flags: number, data: Buffer | string): Promise<void> {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data
  const reply = await rawCommand(
    server.address,
    Buffer.concat([Buffer.from(`set ${key} ${flags} 0 ${bytes.length}\r\n`), bytes, Buffer.from('\r\n')]),
  )
  assert.equal(reply, 'STORED\r\n')
}

/** The item as memcached holds it: client flags and the stored bytes. */
async function stored(key: string): Promise<{ flags: number; data: Buffer }> {
  const reply = await rawCommand(server.address, `mg ${key} v f\r\n`)
  const head = /^VA (\d+) f(\d+)\r\n/.exec(reply)
  assert.ok(head, `${key} is stored: ${JSON.stringify(reply.slice(0, 40))}`)
  const data = Buffer.from(reply.slice(head[0].length, head[0].length + Number(head[1])), 'latin1')
  return { flags: Number(head[2]), data }
}

/** Runs Python with Debian's pymemcache against the test server. */
function python(script: string, input: unknown): unknown {
  const prelude = `
import json, sys, zlib
from pymemcache.client.base import Client
from pymemcache import serde
host, port = sys.argv[1].split(':')
mc = Client((host, int(port)), serde=serde.pickle_serde)
raw = Client((host, int(port)))
data = json.load(sys.stdin)
`
  const out = execFileSync('/usr/bin/python3', ['-c', prelude + script, server.address], {
    input: JSON.stringify(input),
  })
  return JSON.parse(out.toString())
}

describe('flags shared with pymemcache', () => {
  test('memkit writes bytes, text and integers; pymemcache reads them with their types', async () => {
    await client.set('py:bytes', Buffer.from([0, 1, 2, 255]))
    await client.set('py:text', 'héllo ✓')
    await client.set('py:int', 1234567)
    await client.set('py:neg', -42)
    await client.set('py:bigint', 2n ** 80n)
    const result = python(
      `
out = {}
for k in data:
    v = mc.get(k)
    out[k] = [type(v).__name__, v.hex() if isinstance(v, bytes) else v]
print(json.dumps(out))
`,
      ['py:bytes', 'py:text', 'py:int', 'py:neg'],
    )
    assert.deepEqual(result, {
      'py:bytes': ['bytes', '000102ff'],
      'py:text': ['str', 'héllo ✓'],
      'py:int': ['int', 1234567],
      'py:neg': ['int', -42],
    })
    const big = python(`print(json.dumps(str(mc.get('py:bigint'))))`, null)
    assert.equal(big, String(2n ** 80n))
  })

  test('pymemcache writes bytes, str and int; memkit reads them with their types', async () => {
    python(
      `
mc.set('pyw:bytes', b'\\x00\\xffraw')
mc.set('pyw:str', 'grüße')
mc.set('pyw:int', 99)
mc.set('pyw:long', 10**30)
print('null')
`,
      null,
    )
    assert.deepEqual(await client.get('pyw:bytes'), Buffer.from([0, 0xff, 0x72, 0x61, 0x77]))
    assert.equal(await client.get('pyw:str'), 'grüße')
    assert.equal(await client.get('pyw:int'), 99)
    assert.equal(await client.get('pyw:long'), 10n ** 30n)
  })

  test('the compressed bit (8) is zlib both ways, as python-memcached / pymemcache compress it', async () => {
    const compressing = createClient({ servers: server.address, compression: { threshold: 100 } })
    try {
      const text = 'compress me '.repeat(200)
      await compressing.set('z:text', text)
      const stored = await rawCommand(server.address, 'mg z:text f s\r\n')
      const [, flags, size] = /f(\d+) s(\d+)/.exec(stored)!
      assert.equal(Number(flags), Flags.TEXT | Flags.COMPRESSED)
      assert.ok(Number(size) < text.length / 5, 'stored compressed')
      // Python decompresses memkit's item with plain zlib
      const fromPython = python(
        `
print(json.dumps(zlib.decompress(raw.get('z:text')).decode()))
`,
        null,
      )
      assert.equal(fromPython, text)
      // and memkit reads an item Python compressed with zlib under flags TEXT|COMPRESSED
      await storeRaw(
        'z:py',
        Flags.TEXT | Flags.COMPRESSED,
        deflateSync(Buffer.from('from python '.repeat(50))),
      )
      assert.equal(await client.get('z:py'), 'from python '.repeat(50))
      // small values are not compressed
      await compressing.set('z:small', 'tiny')
      assert.match(await rawCommand(server.address, 'mg z:small f\r\n'), /^HD f16/)
    } finally {
      await compressing.close()
    }
  })

  test('brotli compression round-trips and is marked with its own bit', async () => {
    const brotli = createClient({
      servers: server.address,
      compression: { algorithm: 'brotli', threshold: 10 },
    })
    try {
      const value = { rows: Array.from({ length: 200 }, (_, i) => ({ id: i, name: 'row' })) }
      await brotli.set('br:json', value)
      assert.match(
        await rawCommand(server.address, 'mg br:json f\r\n'),
        new RegExp(`^HD f${Flags.JSON | Flags.COMPRESSED | Flags.BROTLI}\\r\\n$`),
      )
      assert.deepEqual(await brotli.get('br:json'), value)
      assert.deepEqual(
        await client.get('br:json'),
        value,
        'any client decompresses, whatever its own setting',
      )
    } finally {
      await brotli.close()
    }
  })
})

describe('the default serializer: the flag and bytes stored for each type', () => {
  const cases: Array<[string, unknown, number, Buffer | string, unknown]> = [
    ['a Buffer', Buffer.from([0, 1, 255]), Flags.BYTES, Buffer.from([0, 1, 255]), Buffer.from([0, 1, 255])],
    [
      'a Uint8Array view (only its own bytes)',
      new Uint8Array([9, 1, 2, 3, 9]).subarray(1, 4),
      Flags.BYTES,
      Buffer.from([1, 2, 3]),
      Buffer.from([1, 2, 3]),
    ],
    ['text', 'grüße', Flags.TEXT, Buffer.from('grüße', 'utf8'), 'grüße'],
    ['a safe integer', -42, Flags.INTEGER, '-42', -42],
    [
      'the largest safe integer',
      Number.MAX_SAFE_INTEGER,
      Flags.INTEGER,
      '9007199254740991',
      Number.MAX_SAFE_INTEGER,
    ],
    ['an unsafe integer (as JSON)', 2 ** 53, Flags.JSON, '9007199254740992', 2 ** 53],
    ['negative zero (as JSON)', -0, Flags.JSON, '0', 0],
    ['a float', 1.5, Flags.JSON, '1.5', 1.5],
    ['a bigint', 2n ** 70n, Flags.INTEGER, String(2n ** 70n), 2n ** 70n],
    ['true', true, Flags.JSON, 'true', true],
    ['false', false, Flags.JSON, 'false', false],
    ['null', null, Flags.JSON, 'null', null],
    ['an object', { a: [1, 'b'] }, Flags.JSON, '{"a":[1,"b"]}', { a: [1, 'b'] }],
  ]
  for (const [label, value, flags, bytes, read] of cases) {
    test(`${label}: flags ${flags}, read back as ${typeof read}`, async () => {
      const key = `ser:${label.replace(/\W+/g, '-')}`
      await client.set(key, value)
      const item = await stored(key)
      assert.equal(item.flags, flags)
      assert.deepEqual(item.data, typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes)
      assert.deepEqual(await client.get(key), read)
    })
  }
})

describe('values that cannot be stored', () => {
  for (const [label, value, message] of [
    ['undefined', undefined, 'cannot store undefined (delete the key instead)'],
    ['a function', () => 1, 'cannot store a value of type function'],
    ['a symbol', Symbol('s'), 'cannot store a value of type symbol'],
    ['NaN', Number.NaN, 'cannot store NaN: not a finite number'],
    ['Infinity', Number.POSITIVE_INFINITY, 'cannot store Infinity: not a finite number'],
    ['-Infinity', Number.NEGATIVE_INFINITY, 'cannot store -Infinity: not a finite number'],
    [
      'an object whose toJSON gives nothing',
      { toJSON: () => undefined },
      'cannot store a value of type object as JSON',
    ],
  ] as Array<[string, unknown, string]>) {
    test(`${label} is refused with ERR_MEMKIT_VALUE, saying why`, async () => {
      await assert.rejects(client.set('bad:value', value), { code: 'ERR_MEMKIT_VALUE', message })
      assert.equal(await client.get('bad:value'), undefined)
    })
  }

  test('a cyclic object is refused with ERR_MEMKIT_VALUE, nothing is sent', async () => {
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    await assert.rejects(client.set('bad:cyclic', cyclic), {
      code: 'ERR_MEMKIT_VALUE',
      message: /^cannot store value as JSON: Converting circular structure to JSON/,
    })
    assert.equal(await client.get('bad:cyclic'), undefined)
  })

  test('append only takes bytes or text', async () => {
    await client.set('ap', 'a')
    await assert.rejects(client.append('ap', { x: 1 } as unknown as string), { code: 'ERR_MEMKIT_VALUE' })
  })

  test('the item limit follows maxItemSize: a 2 MiB server with maxItemSize 2m stores 1.5 MiB', async () => {
    const big = await startMemcached({ itemSize: '2m' })
    const small = createClient({ servers: big.address })
    const large = createClient({ servers: big.address, maxItemSize: 2 * 1024 * 1024 })
    try {
      const value = Buffer.alloc(1.5 * 1024 * 1024, 7)
      await assert.rejects(small.set('k', value), { code: 'ERR_MEMKIT_VALUE_TOO_LARGE' })
      assert.equal(await large.set('k', value), true)
      assert.deepEqual(await large.get('k'), value)
      assert.equal(large.maxValueSize('k'), 2 * 1024 * 1024 - 59 - 1)
    } finally {
      await small.close()
      await large.close()
    }
  })

  test('a server with a smaller -I than maxItemSize: its refusal is a typed error and the connection stays usable', async () => {
    const tiny = await startMemcached({ itemSize: '1m', args: ['-o', 'slab_chunk_max=16384'] })
    const optimistic = createClient({ servers: tiny.address, maxItemSize: 4 * 1024 * 1024 })
    try {
      const error = await optimistic.set('k', Buffer.alloc(2 * 1024 * 1024)).catch((e) => e)
      assert.equal(error.code, 'ERR_MEMKIT_VALUE_TOO_LARGE')
      assert.equal(await optimistic.set('k', 'small'), true)
      assert.equal(await optimistic.get('k'), 'small')
    } finally {
      await optimistic.close()
    }
  })
})

describe('stored data that cannot be decoded', () => {
  const corrupt: Array<[string, number, string | Buffer, string]> = [
    ['bad JSON', Flags.JSON, '{"unterminated', 'JSON item does not parse: '],
    ['a non-number under the integer flag', Flags.INTEGER, '12abc', 'integer item holds "12abc"'],
    [
      'digits after a non-number under the integer flag',
      Flags.INTEGER,
      'abc12',
      'integer item holds "abc12"',
    ],
    ['a decimal under the long flag', Flags.LONG, '1.5', 'integer item holds "1.5"'],
    ['a lone minus under the integer flag', Flags.INTEGER, '-', 'integer item holds "-"'],
    ['nothing under the integer flag', Flags.INTEGER, '', 'integer item holds ""'],
    [
      '4097 digits under the integer flag (40 shown)',
      Flags.INTEGER,
      '7'.repeat(4097),
      `integer item holds "${'7'.repeat(40)}"`,
    ],
    [
      'invalid UTF-8 under the text flag',
      Flags.TEXT,
      Buffer.from([0xc3, 0x28, 0xff]),
      'text item is not valid UTF-8',
    ],
    [
      'garbage under the compressed bit',
      Flags.TEXT | Flags.COMPRESSED,
      'not zlib at all',
      'compressed item does not decompress: ',
    ],
    [
      'a Python pickle',
      Flags.PICKLE,
      Buffer.from([0x80, 0x04, 0x95]),
      'item was pickled by Python (flag 1); memkit cannot read pickles',
    ],
    ['unknown flags', 4096, 'whatever', 'unknown item flags 4096'],
  ]
  for (const [label, flags, data, reason] of corrupt) {
    test(`${label}: get rejects with ERR_MEMKIT_DECODE naming the key; the connection stays in step`, async () => {
      const key = `corrupt:${label.replace(/\W+/g, '-')}`
      await storeRaw(key, flags, data)
      const error = await client.get(key).catch((e) => e)
      assert.ok(error instanceof DecodeError)
      assert.equal(error.code, 'ERR_MEMKIT_DECODE')
      assert.equal(error.key, key)
      assert.equal(error.flags, flags)
      const prefix = `stored value of ${JSON.stringify(key)} cannot be decoded: ${reason}`
      assert.ok(error.message.startsWith(prefix), `${error.message} starts with ${prefix}`)
      assert.ok((error.cause as Error).message.startsWith(reason), 'the cause is the decoding failure')
      await client.set('after-corrupt', 'fine')
      assert.equal(await client.get('after-corrupt'), 'fine')
    })
  }

  test("decodeErrors: 'miss' reads corrupt items as misses and reports them as 'error' events", async () => {
    const lenient = createClient({ servers: server.address, decodeErrors: 'miss' })
    const reported: Error[] = []
    lenient.on('error', (e) => reported.push(e))
    try {
      await storeRaw('corrupt:lenient', Flags.JSON, '{{{')
      await lenient.set('fine', 1)
      assert.equal(await lenient.get('corrupt:lenient'), undefined)
      assert.deepEqual(await lenient.getMany(['corrupt:lenient', 'fine']), new Map([['fine', 1]]))
      assert.equal(reported.length, 2)
      for (const error of reported) {
        assert.ok(error instanceof DecodeError)
        assert.equal(error.code, 'ERR_MEMKIT_DECODE')
        assert.equal(error.key, 'corrupt:lenient')
        assert.match(
          error.message,
          /^stored value of "corrupt:lenient" cannot be decoded: JSON item does not parse/,
        )
      }
    } finally {
      await lenient.close()
    }
  })

  test("decodeErrors: 'miss' without an 'error' listener does not crash the process", async () => {
    const lenient = createClient({ servers: server.address, decodeErrors: 'miss' })
    try {
      await storeRaw('corrupt:nolistener', Flags.JSON, 'nope')
      assert.equal(await lenient.get('corrupt:nolistener'), undefined)
    } finally {
      await lenient.close()
    }
  })

  test('one corrupt item fails the getMany that contains it (default) but not the connection', async () => {
    await storeRaw('corrupt:batch', Flags.JSON, '[1,')
    await client.set('ok:batch', 'ok')
    await assert.rejects(client.getMany(['ok:batch', 'corrupt:batch']), { code: 'ERR_MEMKIT_DECODE' })
    assert.equal(await client.get('ok:batch'), 'ok')
  })
})

describe('integers other programs stored', () => {
  const cases: Array<[string, number, string, unknown]> = [
    ['with the padding memcached leaves after a shrunk counter', Flags.INTEGER, ' 42  ', 42],
    ['under the long flag (4)', Flags.LONG, '-12', -12],
    ['the largest safe integer', Flags.INTEGER, '9007199254740991', Number.MAX_SAFE_INTEGER],
    ['one past it, as a bigint', Flags.INTEGER, '9007199254740992', 2n ** 53n],
    ['4096 digits, as a bigint', Flags.INTEGER, '9'.repeat(4096), BigInt('9'.repeat(4096))],
  ]
  for (const [label, flags, text, value] of cases) {
    test(`${label}: ${typeof value}`, async () => {
      const key = `int:${label.replace(/\W+/g, '-').slice(0, 40)}`
      await storeRaw(key, flags, text)
      assert.deepEqual(await client.get(key), value)
    })
  }
})

describe('the compression option', () => {
  const config = (compression: unknown) => {
    const made = createClient({ servers: server.address, compression } as Parameters<typeof createClient>[0])
    void made.close()
    return made.config.codec.compression
  }

  test('each accepted form, with its defaults (zlib, 1024 bytes)', () => {
    assert.equal(config(undefined), undefined)
    assert.equal(config(false), undefined)
    assert.deepEqual(config(true), { algorithm: 'zlib', threshold: 1024 })
    assert.deepEqual(config('zlib'), { algorithm: 'zlib', threshold: 1024 })
    assert.deepEqual(config('brotli'), { algorithm: 'brotli', threshold: 1024 })
    assert.deepEqual(config({}), { algorithm: 'zlib', threshold: 1024 })
    assert.deepEqual(config({ algorithm: 'brotli' }), { algorithm: 'brotli', threshold: 1024 })
    assert.deepEqual(config({ threshold: 0 }), { algorithm: 'zlib', threshold: 0 })
  })

  test('each refused form, with its message', () => {
    const refused: Array<[unknown, string]> = [
      [{ algorithm: 'lz4' }, "compression.algorithm must be 'zlib' or 'brotli'; got lz4"],
      [{ threshold: -1 }, 'compression.threshold must be a non-negative integer (bytes)'],
      [{ threshold: 1.5 }, 'compression.threshold must be a non-negative integer (bytes)'],
      ['lz4', "compression must be false, true, 'zlib', 'brotli' or { algorithm, threshold }"],
      [null, "compression must be false, true, 'zlib', 'brotli' or { algorithm, threshold }"],
      [1, "compression must be false, true, 'zlib', 'brotli' or { algorithm, threshold }"],
    ]
    for (const [input, message] of refused) {
      assert.throws(
        () => config(input),
        (error: unknown) => error instanceof InvalidOptionError && error.message === message,
        JSON.stringify(input),
      )
    }
  })

  test('a value of exactly the threshold is compressed, one byte less is not', async () => {
    const compressing = createClient({ servers: server.address, compression: { threshold: 100 } })
    try {
      await compressing.set('th:100', 'a'.repeat(100))
      await compressing.set('th:99', 'a'.repeat(99))
      assert.equal((await stored('th:100')).flags, Flags.TEXT | Flags.COMPRESSED)
      assert.deepEqual(await stored('th:99'), { flags: Flags.TEXT, data: Buffer.from('a'.repeat(99)) })
      assert.equal(await client.get('th:100'), 'a'.repeat(100))
    } finally {
      await compressing.close()
    }
  })

  test('bytes that do not get smaller are stored as they are', async () => {
    // 64 distinct bytes: deflate and brotli both add more than they save
    const noise = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 97 + 13) % 256))
    for (const algorithm of ['zlib', 'brotli'] as const) {
      const compressing = createClient({ servers: server.address, compression: { algorithm, threshold: 1 } })
      try {
        await compressing.set(`noise:${algorithm}`, noise)
        assert.deepEqual(await stored(`noise:${algorithm}`), { flags: Flags.BYTES, data: noise })
        // and text whose compressed form is exactly as long (11 a's deflate to 11 bytes, 10 to 10 with brotli)
        const even = 'a'.repeat(algorithm === 'zlib' ? 11 : 10)
        await compressing.set(`even:${algorithm}`, even)
        assert.deepEqual(await stored(`even:${algorithm}`), { flags: Flags.TEXT, data: Buffer.from(even) })
      } finally {
        await compressing.close()
      }
    }
  })
})

describe('custom serializer', () => {
  test('is used for every value; a throwing deserialize becomes a DecodeError', async () => {
    const upper: Serializer = {
      serialize: (value) => ({ data: Buffer.from(String(value).toUpperCase()), flags: 512 }),
      deserialize: (data, flags) => {
        if (flags !== 512) throw new Error(`not mine: ${flags}`)
        return data.toString().toLowerCase()
      },
    }
    const custom = createClient({ servers: server.address, serializer: upper })
    try {
      await custom.set('custom', 'Hello')
      assert.match(await rawCommand(server.address, 'mg custom v f\r\n'), /^VA 5 f512\r\nHELLO\r\n$/)
      assert.equal(await custom.get('custom'), 'hello')
      await client.set('not-custom', 'x')
      const error = (await custom.get('not-custom').catch((e) => e)) as DecodeError
      assert.ok(error instanceof DecodeError)
      assert.equal(
        error.message,
        'stored value of "not-custom" cannot be decoded: serializer failed: Error: not mine: 16',
      )
      assert.equal((error.cause as Error).message, 'not mine: 16', 'the cause is what deserialize threw')
      assert.equal(error.key, 'not-custom')
      assert.equal(error.flags, 16)
    } finally {
      await custom.close()
    }
  })
})

describe('custom serializer: the flags it may return', () => {
  const RESERVED =
    "bits 8 and 64 are memkit's compression bits (a value with them would be decompressed on read); use other bits, or set handlesCompression: true if the serializer compresses itself"
  const UINT32 = 'flags must be an unsigned 32-bit integer'
  const json = (value: unknown) =>
    Buffer.from(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? `${v}` : v)) ?? '')
  /** A serializer that returns `flags` for values equal to `odd`, and flags 512 for the rest. */
  const oddOne = (odd: unknown, flags: unknown, extra: Partial<Serializer> = {}): Serializer => ({
    serialize: (value) => ({
      data: json(value),
      flags: (isDeepStrictEqual(value, odd) ? flags : 512) as number,
    }),
    deserialize: (data) => data.toString(),
    ...extra,
  })
  const refusal = (message: string) => (error: unknown) =>
    error instanceof InvalidOptionError && error.message === message

  test('construction tries every kind of value and names the one that got reserved flags', () => {
    const probes: Array<[unknown, string]> = [
      ['', 'a string'],
      ['text', 'a string'],
      [0, 'a number'],
      [42, 'a number'],
      [-1, 'a number'],
      [1.5, 'a number'],
      [2n ** 70n, 'a bigint'],
      [true, 'a boolean'],
      [false, 'a boolean'],
      [null, 'null'],
      [[], 'an array'],
      [[1, 'a'], 'an array'],
      [{}, 'a object'],
      [{ a: 1 }, 'a object'],
      [Buffer.from('bytes'), 'a Buffer'],
      [new Date(0), 'a Date'],
    ]
    for (const [probe, described] of probes) {
      for (const flags of [Flags.COMPRESSED, Flags.BROTLI | 1]) {
        assert.throws(
          () => createClient({ servers: server.address, serializer: oddOne(probe, flags) }),
          refusal(`the serializer returned flags ${flags} for ${described}: ${RESERVED}`),
          `flags ${flags} for ${String(probe)}`,
        )
      }
    }
  })

  test('values it refuses to serialize are skipped, the later kinds still tried', () => {
    const picky: Serializer = {
      serialize: (value) => {
        if (typeof value !== 'number') throw new Error('numbers only')
        return { data: json(value), flags: value === 42 ? Flags.COMPRESSED : 0 }
      },
      deserialize: (data) => Number(data.toString()),
    }
    assert.throws(
      () => createClient({ servers: server.address, serializer: picky }),
      refusal(`the serializer returned flags 8 for a number: ${RESERVED}`),
    )
    const refusesAll: Serializer = {
      serialize: () => {
        throw new Error('nothing')
      },
      deserialize: (data) => data,
    }
    void createClient({ servers: server.address, serializer: refusesAll }).close()
  })

  test('flags that are not an unsigned 32-bit integer are refused at construction, whoever compresses', () => {
    for (const handlesCompression of [false, true]) {
      for (const flags of [-1, 2 ** 32, 1.5, Number.NaN, '2', undefined]) {
        assert.throws(
          () =>
            createClient({
              servers: server.address,
              serializer: oddOne('text', flags, { handlesCompression }),
            }),
          refusal(`the serializer returned flags ${String(flags)} for a string: ${UINT32}`),
          `flags ${String(flags)}`,
        )
      }
    }
    // a serialize that returns nothing at all is refused the same way, not with a TypeError
    const nothing: Serializer = {
      serialize: (value) =>
        typeof value === 'string'
          ? (undefined as unknown as { data: Buffer; flags: number })
          : { data: json(value), flags: 0 },
      deserialize: (data) => data,
    }
    assert.throws(
      () => createClient({ servers: server.address, serializer: nothing }),
      refusal(`the serializer returned flags undefined for a string: ${UINT32}`),
    )
    // the largest uint32 is fine for a serializer that compresses itself (it owns every bit)
    const all = createClient({
      servers: server.address,
      serializer: oddOne('text', 0xffffffff, { handlesCompression: true }),
    })
    void all.close()
  })

  test('a value the probes missed is refused at write, saying why; nothing is stored', async () => {
    const cases: Array<[unknown, string]> = [
      [Flags.COMPRESSED, RESERVED],
      [Flags.BROTLI, RESERVED],
      [2 ** 32, UINT32],
      [-1, UINT32],
      [1.5, UINT32],
    ]
    for (const [flags, problem] of cases) {
      const sneaky = createClient({ servers: server.address, serializer: oddOne('secret', flags) })
      try {
        await assert.rejects(sneaky.set('sneaky', 'secret'), (error: unknown) => {
          assert.ok(error instanceof InvalidValueError)
          assert.equal(error.message, `the serializer returned flags ${String(flags)}: ${problem}`)
          return true
        })
        assert.equal(await rawCommand(server.address, 'mg sneaky v\r\n'), 'EN\r\n')
      } finally {
        await sneaky.close()
      }
    }
  })

  test('a serializer that compresses itself owns bits 8 and 64: stored and read back as it gave them', async () => {
    const own: Serializer = {
      handlesCompression: true,
      serialize: (value) => ({
        data: Buffer.from(String(value)),
        flags: value === 'secret' ? 2 ** 32 : Flags.COMPRESSED | Flags.BROTLI,
      }),
      deserialize: (data, flags) => `${data.toString()}/${flags}`,
    }
    const mine = createClient({ servers: server.address, serializer: own, compression: false })
    try {
      await mine.set('own', 'plain')
      assert.deepEqual(await stored('own'), { flags: 72, data: Buffer.from('plain') })
      assert.equal(await mine.get('own'), 'plain/72', 'not decompressed on read')
      await assert.rejects(mine.set('own', 'secret'), InvalidValueError)
      assert.equal(await mine.get('own'), 'plain/72')
    } finally {
      await mine.close()
    }
  })
})
