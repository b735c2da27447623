// The key codec on its own: which keys are refused and why (whitespace and control characters
// that could end a command line, lone surrogates that have no UTF-8 form, lengths over
// memcached's limit), and the exact name and wire form of every key that is accepted. The
// conformance suites check the same keys against memcached on every transport.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, test } from 'node:test'
import { type EncodedKey, KeyCodec, MAX_KEY_LENGTH, MAX_NON_ASCII_KEY_LENGTH } from '../src/keys.js'

const meta = (options: Partial<{ prefix: string; hashLongKeys: boolean }> = {}) =>
  new KeyCodec({ prefix: '', hashLongKeys: false, base64NonAscii: true, ...options })
const classic = (options: Partial<{ prefix: string; hashLongKeys: boolean }> = {}) =>
  new KeyCodec({ prefix: '', hashLongKeys: false, base64NonAscii: false, ...options })
const sha = (key: string) => createHash('sha256').update(key).digest('base64url')

function refused(encode: () => unknown, message: RegExp, key?: string): void {
  assert.throws(encode, (error: unknown) => {
    assert.equal((error as { code: string }).code, 'ERR_MEMKIT_KEY')
    assert.match((error as Error).message, message)
    if (key !== undefined) assert.equal((error as { key: string }).key, key)
    return true
  })
}

describe('characters', () => {
  test('a key that is not a string, or empty, is refused', () => {
    refused(() => meta().encode(42 as never), /^key must be a string; got number$/, '42')
    refused(() => meta().encode(undefined as never), /^key must be a string; got undefined$/)
    refused(() => meta().encode(''), /^key must not be empty$/, '')
  })

  test('space, every control character and DEL are refused, naming the character and its position', () => {
    refused(
      () => meta().encode('a b'),
      /^key "a b" contains a space at position 1; memcached keys may not/,
      'a b',
    )
    for (let code = 0; code < 0x20; code++) {
      const key = `ab${String.fromCharCode(code)}`
      const hex = code.toString(16).padStart(2, '0')
      refused(() => meta().encode(key), new RegExp(`contains control character 0x${hex} at position 2;`), key)
    }
    refused(() => meta().encode('del\x7f'), /contains control character 0x7f at position 3;/)
    refused(() => meta().encode('é\u00a0\n'), /contains control character 0x0a at position 2;/, 'é\u00a0\n')
  })

  test('the printable ASCII range is accepted as it is, from ! to ~', () => {
    let printable = ''
    for (let code = 0x21; code <= 0x7e; code++) printable += String.fromCharCode(code)
    assert.deepEqual(meta().encode(printable), {
      key: printable,
      stored: printable,
      wire: printable,
      base64: false,
    })
  })

  test('a lone surrogate (no UTF-8 form: two keys would share one item) is refused wherever it is', () => {
    for (const key of [
      '\ud800',
      '\udfff',
      'a\ud83d',
      '\udd11b',
      'x\udd11\ud83dy',
      `${'k'.repeat(300)}\ud800`,
    ]) {
      refused(() => meta().encode(key), /is not well-formed Unicode \(lone surrogate\)$/, key)
      refused(() => classic({ hashLongKeys: true }).encode(key), /lone surrogate/, key)
    }
    // a pair is one character, and fine
    assert.equal(meta().encode('key-🔑').stored, 'key-🔑')
    refused(() => meta({ prefix: 'app\ud800:' }), /^keyPrefix "app\\ud800:" is not well-formed Unicode/)
  })

  test('the prefix is held to the same rules, at construction', () => {
    refused(() => meta({ prefix: 'my app:' }), /^keyPrefix "my app:" contains a space at position 2/)
    refused(() => meta({ prefix: 'app\t' }), /^keyPrefix "app\\t" contains control character 0x09/)
    assert.equal(meta({ prefix: 'ä:' }).encode('k').stored, 'ä:k')
  })

  test('a long key is shown shortened in the message', () => {
    const key = `${'x'.repeat(50)} y`
    refused(() => meta().encode(key), new RegExp(`^key "${'x'.repeat(40)}…" contains a space at position 50`))
    refused(() => meta().encode(`${'x'.repeat(39)} `), new RegExp(`^key "${'x'.repeat(39)} " contains`))
  })
})

describe('names and wire forms', () => {
  test('ASCII: prefix + key, sent as it is, up to 250 bytes with the prefix', () => {
    assert.equal(MAX_KEY_LENGTH, 250)
    const atLimit = 'a'.repeat(246)
    assert.deepEqual(meta({ prefix: 'app:' }).encode(atLimit), {
      key: atLimit,
      stored: `app:${atLimit}`,
      wire: `app:${atLimit}`,
      base64: false,
    })
    refused(
      () => meta({ prefix: 'app:' }).encode(`${atLimit}b`),
      /is 251 bytes with the prefix; memcached's limit is 250; enable `hashLongKeys` to store long keys hashed$/,
    )
  })

  test('non-ASCII: UTF-8 bytes, base64 on meta, the bytes themselves elsewhere; at most 186 bytes', () => {
    assert.equal(MAX_NON_ASCII_KEY_LENGTH, 186)
    const key = 'é'.repeat(92) // 184 bytes, 186 with the prefix
    const stored = `p:${key}`
    const utf8 = Buffer.from(stored)
    assert.deepEqual(meta({ prefix: 'p:' }).encode(key), {
      key,
      stored,
      wire: utf8.toString('base64'),
      base64: true,
    })
    assert.deepEqual(classic({ prefix: 'p:' }).encode(key), {
      key,
      stored,
      wire: utf8.toString('latin1'),
      base64: false,
    })
    refused(
      () => meta({ prefix: 'p:' }).encode(`${key}a`),
      /is 187 bytes with the prefix; keys with non-ASCII characters may be at most 186 bytes \(memcached's 250 applies to their base64 form\)/,
    )
    // measured in bytes, not characters: 100 characters of 2 bytes
    refused(() => meta().encode('é'.repeat(100)), /is 200 bytes/)
  })

  test('hashLongKeys: an over-long key is stored as prefix + h: + its SHA-256, on every transport', () => {
    const long = `report:${'q'.repeat(300)}`
    const hashed: EncodedKey = {
      key: long,
      stored: `app:h:${sha(long)}`,
      wire: `app:h:${sha(long)}`,
      base64: false,
    }
    assert.deepEqual(meta({ prefix: 'app:', hashLongKeys: true }).encode(long), hashed)
    assert.deepEqual(classic({ prefix: 'app:', hashLongKeys: true }).encode(long), hashed)
    const nonAscii = 'é'.repeat(94)
    assert.deepEqual(meta({ hashLongKeys: true }).encode(nonAscii), {
      key: nonAscii,
      stored: `h:${sha(nonAscii)}`,
      wire: `h:${sha(nonAscii)}`,
      base64: false,
    })
    // keys within the limit are not hashed
    assert.equal(meta({ hashLongKeys: true }).encode('a'.repeat(250)).stored, 'a'.repeat(250))
    assert.equal(meta({ hashLongKeys: true }).encode('é'.repeat(93)).stored, 'é'.repeat(93))
  })

  test('hashLongKeys: a key that starts with h: is always hashed, so that no key names a hashed item', () => {
    const name = `h:${sha('x'.repeat(300))}`
    assert.equal(meta({ hashLongKeys: true }).encode(name).stored, `h:${sha(name)}`)
    assert.equal(meta({ hashLongKeys: true }).encode('h:').stored, `h:${sha('h:')}`)
    assert.equal(meta({ hashLongKeys: true }).encode('xh:').stored, 'xh:')
    // without hashLongKeys there are no hashed names: h: keys are ordinary
    assert.equal(meta().encode(name).stored, name)
  })

  test('hashLongKeys with a non-ASCII prefix: the hashed name travels like any non-ASCII key', () => {
    const long = 'q'.repeat(300)
    const stored = `ä:h:${sha(long)}`
    assert.deepEqual(meta({ prefix: 'ä:', hashLongKeys: true }).encode(long), {
      key: long,
      stored,
      wire: Buffer.from(stored).toString('base64'),
      base64: true,
    })
    // ~ (0x7e) is the last ASCII character: a prefix with it stays on the plain path
    assert.deepEqual(meta({ prefix: '~:', hashLongKeys: true }).encode(long), {
      key: long,
      stored: `~:h:${sha(long)}`,
      wire: `~:h:${sha(long)}`,
      base64: false,
    })
    assert.equal(
      classic({ prefix: 'ä:', hashLongKeys: true }).encode(long).wire,
      Buffer.from(stored).toString('latin1'),
    )
  })

  test('a prefix too long to leave room for a hashed name is an error, not a name over the limit', () => {
    const long = 'q'.repeat(300)
    // "h:" + 43 characters of SHA-256: an ASCII prefix may take the other 205 bytes
    assert.equal(meta({ prefix: 'p'.repeat(205), hashLongKeys: true }).encode(long).stored.length, 250)
    refused(
      () => meta({ prefix: 'p'.repeat(206), hashLongKeys: true }).encode(long),
      /^keyPrefix is too long to leave room for a hashed key$/,
      long,
    )
    // a non-ASCII one the 186-byte limit: 141 bytes
    const fits = `é${'p'.repeat(139)}`
    assert.equal(Buffer.byteLength(meta({ prefix: fits, hashLongKeys: true }).encode(long).stored), 186)
    refused(
      () => meta({ prefix: `${fits}p`, hashLongKeys: true }).encode(long),
      /^keyPrefix is too long to leave room for a hashed key$/,
    )
  })
})
