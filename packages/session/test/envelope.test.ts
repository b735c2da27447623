// The bytes the store keeps under a session key, on their own: the session and tombstone forms,
// AES-256-GCM bound to the memcached key, the key ring and its rotation, and every way a stored
// value is refused (with the reason the store reports). frameworks.test.ts checks the same end
// to end, through express-session and @fastify/session against memcached.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import { decrypt, ENCRYPTED_MAGIC, encrypt, type KeyRing, parseKeyRing } from '../src/encryption.js'
import { decodeStored, encodeSession, encodeTombstone, isTombstone } from '../src/envelope.js'

const K1 = randomBytes(32)
const K2 = randomBytes(32)
// Built on first use, inside a test: a parseKeyRing that throws on a valid ring (a mutant, a
// regression) then fails the tests that use it instead of stopping the file from loading.
let built: KeyRing | undefined
const ring = (): KeyRing => {
  built ??= parseKeyRing({ keys: [{ id: 'k1', key: K1 }] })
  return built
}

describe('session and tombstone forms', () => {
  test('a session is s1, its two timestamps, the cookie and the data, one per line', () => {
    const bytes = encodeSession(undefined, 'sk', 1000, 2000, '{"maxAge":5}', '{"user":"ann"}')
    assert.equal(bytes.toString('utf8'), 's1\n1000\n2000\n{"maxAge":5}\n{"user":"ann"}')
    assert.deepEqual(decodeStored(bytes, 'sk', undefined), {
      kind: 'session',
      createdAt: 1000,
      writtenAt: 2000,
      cookieJson: '{"maxAge":5}',
      dataJson: '{"user":"ann"}',
    })
  })

  test('UTF-8 data and empty fields come back as they were', () => {
    const bytes = encodeSession(undefined, 'sk', 0, 1, '', '{"name":"Zoë ✓"}')
    assert.deepEqual(decodeStored(bytes, 'sk', undefined), {
      kind: 'session',
      createdAt: 0,
      writtenAt: 1,
      cookieJson: '',
      dataJson: '{"name":"Zoë ✓"}',
    })
  })

  test('a tombstone is t1 and the time; recognised by its three first bytes alone', () => {
    const tombstone = encodeTombstone(1234)
    assert.equal(tombstone.toString('latin1'), 't1\n1234')
    assert.equal(isTombstone(tombstone), true)
    assert.equal(isTombstone(Buffer.from('t1\n')), true)
    for (const other of ['t1', 't1 ', 'T1\n', 't2\n', 'x1\n', 's1\n1\n2\n{}\n{}', '']) {
      assert.equal(isTombstone(Buffer.from(other)), false, JSON.stringify(other))
    }
    assert.equal(isTombstone('t1\n'), false, 'a string is not what the store wrote')
    assert.equal(isTombstone([0x74, 0x31, 0x0a]), false, 'nor an array of the same numbers')
    assert.deepEqual(decodeStored(tombstone, 'sk', undefined), { kind: 'tombstone' })
    assert.deepEqual(
      decodeStored(tombstone, 'sk', ring()),
      { kind: 'tombstone' },
      'tombstones are never encrypted',
    )
  })
})

describe('what is refused, and why', () => {
  const corrupt = (value: unknown, reason: RegExp, withRing = false) => {
    const decoded = decodeStored(value, 'sk', withRing ? ring() : undefined)
    assert.equal(decoded.kind, 'corrupt', JSON.stringify(String(value)))
    assert.match((decoded as { reason: string }).reason, reason)
  }

  test('something that is not bytes (another client wrote a string, a number, JSON)', () => {
    corrupt('s1\n1\n2\n{}\n{}', /^holds a string written by something else, not a session$/)
    corrupt(42, /^holds a number written/)
    corrupt({ user: 'x' }, /^holds a object written/)
  })

  test('bytes in another format, or cut short before the data', () => {
    corrupt(Buffer.from('hello'), /^is not in the session format$/)
    corrupt(Buffer.from('s2\n1\n2\n{}\n{}'), /^is not in the session format$/)
    corrupt(Buffer.from('s1\n'), /^is truncated$/)
    corrupt(Buffer.from('s1\n1'), /^is truncated$/)
    corrupt(Buffer.from('s1\n1\n2'), /^is truncated$/)
    corrupt(Buffer.from('s1\n1\n2\n{}'), /^is truncated$/)
    // the last separator present: the data is empty, not missing
    assert.equal(
      (decodeStored(Buffer.from('s1\n1\n2\n{}\n'), 'sk', undefined) as { dataJson: string }).dataJson,
      '',
    )
  })

  test('timestamps that are not whole numbers', () => {
    for (const [created, written] of [
      ['x', '2'],
      ['1', 'x'],
      ['1.5', '2'],
      ['1', '2.5'],
      ['1e400', '2'],
      ['1', String(2 ** 60)],
    ]) {
      corrupt(Buffer.from(`s1\n${created}\n${written}\n{}\n{}`), /^has malformed timestamps$/)
    }
  })

  test('with encryption on, a plaintext value is refused: never a plaintext fallback', () => {
    corrupt(
      encodeSession(undefined, 'sk', 1, 2, '{}', '{}'),
      /^is not encrypted, and the store requires encryption$/,
      true,
    )
    corrupt(Buffer.from('e'), /^is not encrypted/, true)
    // e1 and nothing else is the encrypted form: e2 is not, with keys or without
    corrupt(Buffer.from('e2\u0002k1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'), /^is not encrypted/, true)
    corrupt(Buffer.from('e2\u0002k1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'), /^is not in the session format$/)
    // the bare magic is an encrypted value that lacks its key id
    corrupt(Buffer.from('e1'), /^encrypted value has no key id$/, true)
  })

  test('an encrypted value in a store without keys', () => {
    corrupt(
      encodeSession(ring(), 'sk', 1, 2, '{}', '{}'),
      /^is encrypted but the store has no encryption keys$/,
    )
  })
})

describe('encryption', () => {
  test('e1, the key id (length, then bytes), a 12-byte IV, a 16-byte tag, then the ciphertext', () => {
    const plain = Buffer.from('s1\n1\n2\n{}\n{"secret":"swordfish"}')
    const sealed = encrypt(ring(), 'sk', plain)
    assert.deepEqual(ENCRYPTED_MAGIC, Buffer.from('e1'))
    assert.deepEqual(sealed.subarray(0, 5), Buffer.from('e1\u0002k1', 'latin1'))
    assert.equal(sealed.length, 5 + 12 + 16 + plain.length)
    assert.equal(sealed.includes('swordfish'), false, 'nothing readable at rest')
    assert.notDeepEqual(
      encrypt(ring(), 'sk', plain).subarray(5, 17),
      sealed.subarray(5, 17),
      'a fresh IV each time',
    )
    assert.deepEqual(decrypt(ring(), 'sk', sealed), plain)
    const stored = decodeStored(encodeSession(ring(), 'sk', 7, 8, '{"c":1}', '{"d":2}'), 'sk', ring())
    assert.deepEqual(stored, {
      kind: 'session',
      createdAt: 7,
      writtenAt: 8,
      cookieJson: '{"c":1}',
      dataJson: '{"d":2}',
    })
  })

  test('an empty plaintext: the shortest valid value', () => {
    const sealed = encrypt(ring(), 'sk', Buffer.alloc(0))
    assert.equal(sealed.length, 5 + 12 + 16)
    assert.deepEqual(decrypt(ring(), 'sk', sealed), Buffer.alloc(0))
    assert.match(
      String(decrypt(ring(), 'sk', sealed.subarray(0, -1))),
      /^Error: encrypted value is truncated$/,
    )
  })

  test('bound to its memcached key: moved under another key, it does not open', () => {
    const sealed = encrypt(ring(), 'session:a', Buffer.from('s1\n1\n2\n{}\n{}'))
    const moved = decodeStored(sealed, 'session:b', ring())
    assert.deepEqual(moved, {
      kind: 'corrupt',
      reason:
        'authentication failed under key id "k1": the value was altered, moved from another key, or written with a different key',
    })
  })

  test('any byte altered (header, IV, tag or ciphertext) and it does not open', () => {
    const sealed = encrypt(ring(), 'sk', Buffer.from('s1\n1\n2\n{}\n{"admin":false}'))
    for (const at of [0, 1, 5, 16, 17, 32, 33, sealed.length - 1]) {
      const altered = Buffer.from(sealed)
      altered[at]! ^= 0x01
      const opened = decrypt(ring(), 'sk', altered)
      assert.ok(opened instanceof Error, `byte ${at}`)
    }
  })

  test('refusals name what is wrong: no key id, cut short, a key the ring does not have', () => {
    assert.equal(String(decrypt(ring(), 'sk', Buffer.from('e1'))), 'Error: encrypted value has no key id')
    assert.equal(
      String(decrypt(ring(), 'sk', Buffer.from('e1\u0000xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'))),
      'Error: encrypted value has no key id',
    )
    assert.equal(
      String(decrypt(ring(), 'sk', Buffer.from('e1\u0002k1short'))),
      'Error: encrypted value is truncated',
    )
    const other = parseKeyRing({ keys: [{ id: 'k9', key: K2 }] })
    assert.equal(
      String(decrypt(ring(), 'sk', encrypt(other, 'sk', Buffer.from('x')))),
      'Error: encrypted with key id "k9", which is not in the key ring',
    )
    // the same id with another key: the tag does not match
    const impostor = parseKeyRing({ keys: [{ id: 'k1', key: K2 }] })
    assert.match(
      String(decrypt(ring(), 'sk', encrypt(impostor, 'sk', Buffer.from('x')))),
      /authentication failed under key id "k1"/,
    )
  })

  test('rotation: the first key encrypts, every key of the ring decrypts', () => {
    const rotated = parseKeyRing({
      keys: [
        { id: 'k2', key: K2 },
        { id: 'k1', key: K1 },
      ],
    })
    assert.deepEqual(rotated.currentId, Buffer.from('k2'))
    assert.deepEqual(rotated.currentKey, K2)
    const old = encrypt(ring(), 'sk', Buffer.from('old'))
    assert.deepEqual(decrypt(rotated, 'sk', old), Buffer.from('old'))
    const fresh = encrypt(rotated, 'sk', Buffer.from('new'))
    assert.deepEqual(fresh.subarray(0, 5), Buffer.from('e1\u0002k2', 'latin1'))
    assert.ok(decrypt(ring(), 'sk', fresh) instanceof Error, 'a ring without k2 cannot read it')
  })

  test('key ids of 1 to 255 UTF-8 bytes, written as they are', () => {
    const long = parseKeyRing({ keys: [{ id: `${'é'.repeat(127)}x`, key: K1 }] })
    const sealed = encrypt(long, 'sk', Buffer.from('x'))
    assert.equal(sealed[2], 255)
    assert.deepEqual(decrypt(long, 'sk', sealed), Buffer.from('x'))
  })
})

describe('the key ring option', () => {
  const refused = (input: unknown, message: RegExp) =>
    assert.throws(
      () => parseKeyRing(input),
      (error: unknown) => {
        assert.equal((error as { code: string }).code, 'ERR_MEMKIT_INVALID_OPTION')
        assert.match((error as Error).message, message)
        return true
      },
    )

  test('keys in every accepted form: Buffer, Uint8Array, hex (either case), base64, base64url', () => {
    const forms = [
      K1,
      new Uint8Array(K1),
      K1.toString('hex'),
      K1.toString('hex').toUpperCase(),
      K1.toString('base64'),
      K1.toString('base64').replace(/=$/, ''),
      K1.toString('base64url'),
    ]
    for (const key of forms)
      assert.deepEqual(parseKeyRing({ keys: [{ id: 'a', key }] }).currentKey, K1, String(key))
  })

  test('anything else is refused at construction with ERR_MEMKIT_INVALID_OPTION', () => {
    const keysMessage = /^`encryption` must be \{ keys: \[\{ id, key \}, \.\.\.\] \} with at least one key$/
    for (const input of [undefined, null, 'key', { keys: 'x' }, { keys: [] }, {}]) refused(input, keysMessage)
    refused({ keys: [{ id: 'a', key: K1 }], key: K1 }, /^unknown encryption option `key`$/)
    const idMessage = /^every encryption key needs an `id`: a string of 1 to 255 bytes$/
    for (const id of [undefined, 1, '', 'é'.repeat(128)]) refused({ keys: [{ id, key: K1 }] }, idMessage)
    refused({ keys: [null] }, idMessage)
    refused(
      {
        keys: [
          { id: 'a', key: K1 },
          { id: 'a', key: K2 },
        ],
      },
      /^encryption key id "a" appears twice$/,
    )
    const keyMessage = /^encryption key "a" must be 32 bytes \(a Buffer, 64 hex characters or base64\)/
    for (const key of [
      randomBytes(31),
      randomBytes(33),
      K1.toString('hex').slice(1),
      `${K1.toString('hex')}0`,
      `x${K1.toString('hex').slice(1)}`,
      K1.toString('base64').slice(1),
      `${K1.toString('base64url')}AA`,
      'not a key',
      // Base64 that Buffer.from would still decode to 32 bytes: the whole string must be the key.
      ` ${K1.toString('base64')}`,
      `${K1.toString('base64')}!`,
      `${K1.toString('base64url').slice(0, 43)}.`,
      32,
      undefined,
    ]) {
      refused({ keys: [{ id: 'a', key }] }, keyMessage)
    }
  })
})
