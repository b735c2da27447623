// Named serializers against the real clients on the other side: Debian's python3-pymemcache
// (its tutorial JSON convention, and the README's reader for compressed values) and PHP's
// memcached extension (php-cli + php-memcached), both ways through a real memcached.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'
import { rawCommand, useMemcached } from '@memkit/testing'
import {
  createClient,
  DecodeError,
  Flags,
  InvalidOptionError,
  InvalidValueError,
  type MemcachedClient,
  type Serializer,
} from '../src/index.js'
import { phpSerializer } from '../src/php.js'

const { server } = await useMemcached()

function run(command: string, args: string[], input: unknown): unknown {
  const out = execFileSync(command, args, { input: JSON.stringify(input) })
  return JSON.parse(out.toString())
}

/** Python with Debian's pymemcache and the tutorial's JsonSerde (docs/getting_started.rst). */
function pythonJson(script: string, input: unknown = null): unknown {
  const prelude = `
import json, sys
from pymemcache.client.base import Client
class JsonSerde(object):
    def serialize(self, key, value):
        if isinstance(value, str):
            return value.encode('utf-8'), 1
        return json.dumps(value).encode('utf-8'), 2
    def deserialize(self, key, value, flags):
        if flags == 1:
            return value.decode('utf-8')
        if flags == 2:
            return json.loads(value.decode('utf-8'))
        raise Exception("Unknown serialization format")
host, port = sys.argv[1].split(':')
mc = Client((host, int(port)), serde=JsonSerde())
data = json.load(sys.stdin)
`
  return run('/usr/bin/python3', ['-c', prelude + script, server.address], input)
}

/** PHP with the memcached extension; `$data` is the JSON input, the script prints JSON. */
function php(script: string, input: unknown = null): unknown {
  const prelude = `
[$host, $port] = explode(':', $argv[1]);
$m = new Memcached();
$m->addServer($host, (int) $port);
$data = json_decode(stream_get_contents(STDIN), true);
`
  return run('/usr/bin/php', ['-r', prelude + script, server.address], input)
}

describe("serializer 'json': pymemcache's tutorial JsonSerde (text flag 1, JSON flag 2)", () => {
  let client: MemcachedClient
  before(() => {
    client = createClient({ servers: server.address, serializer: 'json' })
  })
  after(() => client.close())

  test('Python writes, memkit reads', async () => {
    pythonJson(`
mc.set('js:str', 'grüße')
mc.set('js:dict', {'a': 1, 'b': [True, None, 1.5]})
mc.set('js:list', [1, 'two'])
mc.set('js:int', 42)
print('null')
`)
    assert.equal(await client.get('js:str'), 'grüße')
    assert.deepEqual(await client.get('js:dict'), { a: 1, b: [true, null, 1.5] })
    assert.deepEqual(await client.get('js:list'), [1, 'two'])
    assert.equal(await client.get('js:int'), 42)
    assert.match(await rawCommand(server.address, 'mg js:str f\r\n'), /^HD f1\r\n/)
    assert.match(await rawCommand(server.address, 'mg js:dict f\r\n'), /^HD f2\r\n/)
  })

  test('memkit writes, Python reads', async () => {
    const values: Record<string, unknown> = {
      'jn:str': 'héllo ✓',
      'jn:obj': { nested: { ok: true }, list: [1, null] },
      'jn:num': 7,
      'jn:float': 0.25,
      'jn:bool': false,
      'jn:null': null,
    }
    for (const [key, value] of Object.entries(values)) await client.set(key, value)
    const read = pythonJson(
      `
out = {}
for k in data:
    out[k] = mc.get(k)
print(json.dumps(out))
`,
      Object.keys(values),
    )
    assert.deepEqual(read, values)
  })

  test('bytes and bigints have no flag in that convention: refused, nothing stored', async () => {
    await assert.rejects(client.set('jn:buf', Buffer.from('x')), InvalidValueError)
    await assert.rejects(client.set('jn:big', 2n ** 70n), InvalidValueError)
    assert.equal(await rawCommand(server.address, 'mg jn:buf v\r\n'), 'EN\r\n')
  })
})

describe('phpSerializer(): PHP memcached extension flags', () => {
  let client: MemcachedClient
  before(() => {
    client = createClient({ servers: server.address, serializer: phpSerializer() })
  })
  after(() => client.close())

  test('PHP writes strings, integers, floats, booleans, null, arrays (serialize and JSON), compressed values; memkit reads them', async () => {
    php(`
$m->set('php:s', "héllo");
$m->set('php:i', 42);
$m->set('php:neg', -7);
$m->set('php:max', PHP_INT_MAX);
$m->set('php:f', 1.5);
$m->set('php:f01', 0.1);
$m->set('php:fe', 1e25);
$m->set('php:t', true);
$m->set('php:fa', false);
$m->set('php:n', null);
$m->set('php:list', [1, 2, 'x']);
$m->set('php:map', ['a' => 1, 'b' => [true, null, 2.5]]);
$m->set('php:fastlz', str_repeat('compress me with fastlz ', 200));
$m->set('php:bigarr', array_fill(0, 300, ['id' => 1, 'name' => 'row']));
$huge = ''; for ($i = 0; $i < 6000; $i++) { $huge .= "row $i of a value over 64 KiB; "; }
$m->set('php:fastlz2', $huge);
$m->setOption(Memcached::OPT_COMPRESSION_TYPE, Memcached::COMPRESSION_ZLIB);
$m->set('php:zlib', str_repeat('compress me with zlib ', 200));
$m->setOption(Memcached::OPT_SERIALIZER, Memcached::SERIALIZER_JSON_ARRAY);
$m->set('php:json', ['a' => 1, 'b' => [1, 2]]);
echo 'null';
`)
    assert.equal(await client.get('php:s'), 'héllo')
    assert.equal(await client.get('php:i'), 42)
    assert.equal(await client.get('php:neg'), -7)
    assert.equal(await client.get('php:max'), 2n ** 63n - 1n)
    assert.equal(await client.get('php:f'), 1.5)
    assert.equal(await client.get('php:f01'), 0.1)
    assert.equal(await client.get('php:fe'), 1e25)
    assert.equal(await client.get('php:t'), true)
    assert.equal(await client.get('php:fa'), false)
    assert.equal(await client.get('php:n'), null)
    assert.deepEqual(await client.get('php:list'), [1, 2, 'x'])
    assert.deepEqual(await client.get('php:map'), { a: 1, b: [true, null, 2.5] })
    assert.deepEqual(await client.get('php:json'), { a: 1, b: [1, 2] })
    // PHP's default compression is fastlz (flags 16|64), zlib on request (16|32)
    assert.match(await rawCommand(server.address, 'mg php:fastlz f\r\n'), /^HD f80\r\n/)
    assert.equal(await client.get('php:fastlz'), 'compress me with fastlz '.repeat(200))
    assert.match(await rawCommand(server.address, 'mg php:zlib f\r\n'), /^HD f48\r\n/)
    assert.equal(await client.get('php:zlib'), 'compress me with zlib '.repeat(200))
    // over 64 KiB PHP's fastlz switches to its level 2 format
    const huge = Array.from({ length: 6000 }, (_, i) => `row ${i} of a value over 64 KiB; `).join('')
    assert.match(await rawCommand(server.address, 'mg php:fastlz2 f\r\n'), /^HD f80\r\n/)
    assert.equal(await client.get('php:fastlz2'), huge)
    assert.deepEqual(
      await client.get('php:bigarr'),
      Array.from({ length: 300 }, () => ({ id: 1, name: 'row' })),
    )
  })

  test('memkit writes the same kinds; PHP reads each with its PHP type', async () => {
    const long = 'from node '.repeat(500)
    await client.set('pn:s', 'grüße')
    await client.set('pn:i', 42)
    await client.set('pn:big', 2n ** 62n)
    await client.set('pn:f', 2.5)
    await client.set('pn:t', true)
    await client.set('pn:fa', false)
    await client.set('pn:n', null)
    await client.set('pn:list', [1, 'two', null])
    await client.set('pn:map', { a: 1, nested: { b: [true] } })
    await client.set('pn:long', long)
    assert.match(
      await rawCommand(server.address, 'mg pn:long f\r\n'),
      /^HD f48\r\n/,
      'compressed for PHP: zlib',
    )
    const read = php(
      `
$out = [];
foreach ($data as $k) { $v = $m->get($k); $out[$k] = [gettype($v), $v]; }
echo json_encode($out);
`,
      ['pn:s', 'pn:i', 'pn:big', 'pn:f', 'pn:t', 'pn:fa', 'pn:n', 'pn:list', 'pn:map', 'pn:long'],
    )
    assert.deepEqual(read, {
      'pn:s': ['string', 'grüße'],
      'pn:i': ['integer', 42],
      'pn:big': ['integer', 2 ** 62],
      'pn:f': ['double', 2.5],
      'pn:t': ['boolean', true],
      'pn:fa': ['boolean', false],
      'pn:n': ['NULL', null],
      'pn:list': ['array', [1, 'two', null]],
      'pn:map': ['array', { a: 1, nested: { b: [true] } }],
      'pn:long': ['string', long],
    })
  })

  test("arrays: 'json' writes type 6, which PHP decodes", async () => {
    const json = createClient({ servers: server.address, serializer: phpSerializer({ arrays: 'json' }) })
    try {
      await json.set('pj:map', { a: [1, 2] })
      assert.match(await rawCommand(server.address, 'mg pj:map f\r\n'), /^HD f6\r\n/)
      const read = php(
        `$m->setOption(Memcached::OPT_SERIALIZER, Memcached::SERIALIZER_JSON_ARRAY); echo json_encode($m->get('pj:map'));`,
      )
      assert.deepEqual(read, { a: [1, 2] })
    } finally {
      await json.close()
    }
  })

  test('a corrupt fastlz body is a DecodeError, never a crash', async () => {
    const bad = Buffer.concat([Buffer.from([100, 0, 0, 0]), Buffer.from([0x1f, 1, 2, 3])])
    await rawCommand(
      server.address,
      Buffer.concat([Buffer.from(`set pbad 80 0 ${bad.length}\r\n`), bad, Buffer.from('\r\n')]),
    )
    await assert.rejects(client.get('pbad'), DecodeError)
  })

  test('it compresses itself: the compression option is refused beside it', () => {
    assert.throws(
      () => createClient({ servers: server.address, serializer: phpSerializer(), compression: true }),
      InvalidOptionError,
    )
  })
})

describe('custom serializers: reserved flags are refused at construction', () => {
  const base: Serializer = {
    serialize: (value) => ({ data: Buffer.from(JSON.stringify(value)), flags: 0 }),
    deserialize: (data) => JSON.parse(data.toString()),
  }

  test('a serializer that uses the compression bit (8) is refused before any write', () => {
    for (const bit of [Flags.COMPRESSED, Flags.BROTLI]) {
      assert.throws(
        () =>
          createClient({
            servers: server.address,
            serializer: { ...base, serialize: (value) => ({ ...base.serialize(value), flags: bit }) },
          }),
        (error: unknown) =>
          error instanceof InvalidOptionError && /compression bits/.test((error as Error).message),
      )
    }
  })

  test('one that uses it only for some types (a Date here) is found by probing every type', () => {
    assert.throws(
      () =>
        createClient({
          servers: server.address,
          serializer: {
            ...base,
            serialize: (value) => ({ ...base.serialize(value), flags: value instanceof Date ? 72 : 4096 }),
          },
        }),
      /returned flags 72 for a Date/,
    )
  })

  test('flags outside uint32 are refused; a value the probes missed is refused at write', async () => {
    assert.throws(
      () =>
        createClient({
          servers: server.address,
          serializer: { ...base, serialize: () => ({ data: Buffer.alloc(0), flags: -1 }) },
        }),
      /unsigned 32-bit/,
    )
    const sneaky = createClient({
      servers: server.address,
      serializer: {
        ...base,
        serialize: (value) => ({ ...base.serialize(value), flags: value === 'secret' ? 8 : 0 }),
      },
    })
    try {
      await assert.rejects(sneaky.set('sneaky', 'secret'), InvalidValueError)
      assert.equal(await rawCommand(server.address, 'mg sneaky v\r\n'), 'EN\r\n')
    } finally {
      await sneaky.close()
    }
  })

  test("serializer: 'pymemcache' is the default serde", async () => {
    const named = createClient({ servers: server.address, serializer: 'pymemcache' })
    try {
      await named.set('named:text', 'x')
      await named.set('named:int', 5)
      assert.match(await rawCommand(server.address, 'mg named:text f\r\n'), /^HD f16\r\n/)
      assert.match(await rawCommand(server.address, 'mg named:int f\r\n'), /^HD f2\r\n/)
    } finally {
      await named.close()
    }
    assert.throws(
      () => createClient({ serializer: 'pickle' as 'json' }),
      /`serializer` must be 'pymemcache', 'json'/,
    )
  })
})

describe('the README reader for memkit values in Python (pymemcache without CompressedSerde)', () => {
  test("the README's Python snippet reads memkit's compressed text, JSON and integers with Debian's pymemcache", async () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    const block = /```python\n([\s\S]*?class MemkitSerde[\s\S]*?)```/.exec(readme)
    assert.ok(block, 'README has the python block with MemkitSerde')
    const compressing = createClient({ servers: server.address, compression: { threshold: 100 } })
    try {
      const text = 'shared with python '.repeat(100)
      const object = { rows: Array.from({ length: 50 }, (_, i) => ({ i })) }
      await compressing.set('mk:text', text)
      await compressing.set('mk:obj', object)
      await compressing.set('mk:int', 12345)
      await compressing.set('mk:small', 'tiny')
      assert.match(await rawCommand(server.address, 'mg mk:text f\r\n'), /^HD f24\r\n/, 'text + compressed')
      assert.match(await rawCommand(server.address, 'mg mk:obj f\r\n'), /^HD f40\r\n/, 'JSON + compressed')
      const script = `${block[1]}
import json, sys
host, port = sys.argv[1].split(':')
mc = Client((host, int(port)), serde=MemkitSerde())
print(json.dumps({k: mc.get(k) for k in ['mk:text', 'mk:obj', 'mk:int', 'mk:small']}))
`
      const read = run('/usr/bin/python3', ['-c', script, server.address], null)
      assert.deepEqual(read, { 'mk:text': text, 'mk:obj': object, 'mk:int': 12345, 'mk:small': 'tiny' })
    } finally {
      await compressing.close()
    }
  })
})
