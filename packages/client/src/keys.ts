import { createHash } from 'node:crypto'
import { InvalidKeyError } from './errors.js'

/** memcached's key limit, in bytes. */
export const MAX_KEY_LENGTH = 250

/** A key ready for the wire. */
export interface EncodedKey {
  /** The key the caller passed (without prefix), for error messages and result maps. */
  readonly key: string
  /** The key as stored on the server: prefix + key, or its hash when long-key hashing applies. */
  readonly stored: string
  /** The token written on the command line (`stored`, or its base64 form on the meta transport). */
  readonly wire: string
  /** True when `wire` is base64 (meta flag `b`). */
  readonly base64: boolean
}

export interface KeyCodecOptions {
  prefix: string
  hashLongKeys: boolean
  /** The meta protocol can carry any key as base64; the classic one must send it raw. */
  base64NonAscii: boolean
}

/**
 * Validates and encodes keys. A key may not be empty or contain ASCII whitespace or control
 * characters (so it can never end a command line and inject another), must be well-formed
 * UTF-8, and must fit memcached's 250-byte limit together with the prefix, unless
 * `hashLongKeys` is on, in which case an over-long key is replaced by a SHA-256 of itself.
 */
export class KeyCodec {
  readonly #prefix: string
  readonly #hashLongKeys: boolean
  readonly #base64NonAscii: boolean

  constructor(options: KeyCodecOptions) {
    this.#prefix = options.prefix
    this.#hashLongKeys = options.hashLongKeys
    this.#base64NonAscii = options.base64NonAscii
    if (options.prefix) checkCharacters(options.prefix, 'keyPrefix')
  }

  encode(key: string): EncodedKey {
    if (typeof key !== 'string') {
      throw new InvalidKeyError(`key must be a string; got ${typeof key}`, String(key))
    }
    if (key.length === 0) throw new InvalidKeyError('key must not be empty', key)
    const ascii = checkCharacters(key, 'key')
    const stored = this.#prefix + key
    if (ascii && stored.length <= MAX_KEY_LENGTH) {
      return { key, stored, wire: stored, base64: false }
    }
    const bytes = Buffer.byteLength(stored)
    if (ascii || !this.#base64NonAscii) {
      if (bytes > MAX_KEY_LENGTH) {
        return this.#hashed(key, `is ${bytes} bytes with the prefix; memcached's limit is ${MAX_KEY_LENGTH}`)
      }
      // Command lines are written as latin1 text, so a non-ASCII key travels as the latin1
      // reading of its UTF-8 bytes: on the wire, exactly its UTF-8 bytes.
      return { key, stored, wire: ascii ? stored : Buffer.from(stored).toString('latin1'), base64: false }
    }
    // Non-ASCII on the meta transport: sent base64 so the command line stays plain ASCII.
    // memcached checks the 250 limit on the encoded form, so the raw limit is 187 bytes.
    const wire = Buffer.from(stored).toString('base64')
    if (wire.length <= MAX_KEY_LENGTH) return { key, stored, wire, base64: true }
    return this.#hashed(
      key,
      `is ${bytes} bytes with the prefix; non-ASCII keys travel base64-encoded (${wire.length} characters) and memcached's limit is ${MAX_KEY_LENGTH}`,
    )
  }

  #hashed(key: string, reason: string): EncodedKey {
    if (!this.#hashLongKeys) {
      throw new InvalidKeyError(
        `key ${preview(key)} ${reason}; enable \`hashLongKeys\` to store long keys hashed`,
        key,
      )
    }
    const stored = `${this.#prefix}h:${createHash('sha256').update(key).digest('base64url')}`
    if (Buffer.byteLength(stored) > MAX_KEY_LENGTH) {
      throw new InvalidKeyError(`keyPrefix is too long to leave room for a hashed key`, key)
    }
    if (isAscii(stored)) return { key, stored, wire: stored, base64: false }
    const wire = Buffer.from(stored).toString(this.#base64NonAscii ? 'base64' : 'latin1')
    return { key, stored, wire, base64: this.#base64NonAscii }
  }
}

/** Throws on whitespace, control characters and lone surrogates; returns whether the text is ASCII. */
function checkCharacters(text: string, what: string): boolean {
  let ascii = true
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code <= 0x20 || code === 0x7f) {
      throw new InvalidKeyError(
        `${what} ${preview(text)} contains ${code === 0x20 ? 'a space' : `control character 0x${code.toString(16).padStart(2, '0')}`} at position ${i}; memcached keys may not contain whitespace or control characters`,
        text,
      )
    }
    if (code > 0x7e) ascii = false
  }
  if (!ascii && !text.isWellFormed()) {
    throw new InvalidKeyError(`${what} ${preview(text)} is not well-formed Unicode (lone surrogate)`, text)
  }
  return ascii
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7e) return false
  return true
}

function preview(key: string): string {
  return JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key)
}
