import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { describe, test } from 'node:test'
import { deflateSync } from 'node:zlib'
import { rawCommand, startMemcached, useMemcached } from '@memkit/testing'
import { createClient, DecodeError, Flags, type Serializer } from '../src/index.js'

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

describe('values that cannot be stored', () => {
  for (const [label, value] of [
    ['undefined', undefined],
    ['a function', () => 1],
    ['a symbol', Symbol('s')],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
  ] as Array<[string, unknown]>) {
    test(`${label} is refused with ERR_MEMKIT_VALUE`, async () => {
      await assert.rejects(client.set('bad:value', value), { code: 'ERR_MEMKIT_VALUE' })
    })
  }

  test('a cyclic object is refused with ERR_MEMKIT_VALUE, nothing is sent', async () => {
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    await assert.rejects(client.set('bad:cyclic', cyclic), { code: 'ERR_MEMKIT_VALUE' })
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
  const corrupt: Array<[string, number, string | Buffer]> = [
    ['bad JSON', Flags.JSON, '{"unterminated'],
    ['a non-number under the integer flag', Flags.INTEGER, '12abc'],
    ['invalid UTF-8 under the text flag', Flags.TEXT, Buffer.from([0xc3, 0x28, 0xff])],
    ['garbage under the compressed bit', Flags.TEXT | Flags.COMPRESSED, 'not zlib at all'],
    ['a Python pickle', Flags.PICKLE, Buffer.from([0x80, 0x04, 0x95])],
    ['unknown flags', 4096, 'whatever'],
  ]
  for (const [label, flags, data] of corrupt) {
    test(`${label}: get rejects with ERR_MEMKIT_DECODE naming the key; the connection stays in step`, async () => {
      const key = `corrupt:${flags}`
      await storeRaw(key, flags, data)
      const error = await client.get(key).catch((e) => e)
      assert.ok(error instanceof DecodeError)
      assert.equal(error.code, 'ERR_MEMKIT_DECODE')
      assert.equal(error.key, key)
      assert.equal(error.flags, flags)
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
      assert.equal((reported[0] as DecodeError).code, 'ERR_MEMKIT_DECODE')
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
      await assert.rejects(custom.get('not-custom'), { code: 'ERR_MEMKIT_DECODE' })
    } finally {
      await custom.close()
    }
  })
})
