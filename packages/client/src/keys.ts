import { createHash } from 'node:crypto'
import { InvalidKeyError } from './errors.js'

/** memcached's key limit, in bytes. */
export const MAX_KEY_LENGTH = 250

/**
 * The limit for keys with non-ASCII characters, in UTF-8 bytes. The meta protocol carries them
 * base64-encoded and memcached applies its 250 limit to the encoded form (186 bytes encode to
 * 248 characters, 187 to 252). The same limit holds on every transport, so that a key names the
 * same item whichever transport wrote it.
 */
export const MAX_NON_ASCII_KEY_LENGTH = 186

/** What a hashed key starts with after the prefix: `prefix + "h:" + base64url(sha256(key))`. */
const HASHED_MARK = 'h:'

/** A key ready for the wire. */
export interface EncodedKey {
  /** The key the caller passed (without prefix), for error messages and result maps. */
  readonly key: string
  /**
   * The item's name on the server, the same on every transport: prefix + key as UTF-8, or
   * prefix + "h:" + sha256 of the key when long-key hashing applies. What ketama hashes.
   */
  readonly stored: string
  /** The token written on the command line: `stored`, its base64 form (meta, non-ASCII), or its UTF-8 bytes read as latin1. */
  readonly wire: string
  /** True when `wire` is base64 (meta flag `b`). */
  readonly base64: boolean
}

export interface KeyCodecOptions {
  prefix: string
  hashLongKeys: boolean
  /** The meta protocol carries non-ASCII keys base64-encoded (flag `b`); the others send their UTF-8 bytes. */
  base64NonAscii: boolean
}

/**
 * Validates and encodes keys. A key may not be empty or contain ASCII whitespace or control
 * characters (so it can never end a command line and inject another), must be well-formed
 * UTF-8, and must fit memcached's limit together with the prefix: 250 bytes for ASCII keys, 186
 * for keys with non-ASCII characters, on every transport. With `hashLongKeys`, a longer key is
 * stored as prefix + "h:" + its SHA-256; so that no short key can name that item, a key that
 * itself starts with "h:" is always stored hashed too.
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
    if (this.#hashLongKeys && key.startsWith(HASHED_MARK)) return this.#hash(key)
    const stored = this.#prefix + key
    if (ascii && stored.length <= MAX_KEY_LENGTH) return { key, stored, wire: stored, base64: false }
    const bytes = Buffer.byteLength(stored)
    if (ascii) {
      return this.#hashed(key, `is ${bytes} bytes with the prefix; memcached's limit is ${MAX_KEY_LENGTH}`)
    }
    if (bytes > MAX_NON_ASCII_KEY_LENGTH) {
      return this.#hashed(
        key,
        `is ${bytes} bytes with the prefix; keys with non-ASCII characters may be at most ${MAX_NON_ASCII_KEY_LENGTH} bytes (memcached's ${MAX_KEY_LENGTH} applies to their base64 form)`,
      )
    }
    return this.#nonAscii(key, stored)
  }

  #hashed(key: string, reason: string): EncodedKey {
    if (!this.#hashLongKeys) {
      throw new InvalidKeyError(
        `key ${preview(key)} ${reason}; enable \`hashLongKeys\` to store long keys hashed`,
        key,
      )
    }
    return this.#hash(key)
  }

  #hash(key: string): EncodedKey {
    const stored = `${this.#prefix}${HASHED_MARK}${createHash('sha256').update(key).digest('base64url')}`
    if (isAscii(stored)) {
      if (stored.length > MAX_KEY_LENGTH)
        throw new InvalidKeyError('keyPrefix is too long to leave room for a hashed key', key)
      return { key, stored, wire: stored, base64: false }
    }
    if (Buffer.byteLength(stored) > MAX_NON_ASCII_KEY_LENGTH) {
      throw new InvalidKeyError('keyPrefix is too long to leave room for a hashed key', key)
    }
    return this.#nonAscii(key, stored)
  }

  /** The same bytes on every transport: base64 on meta, the UTF-8 bytes themselves elsewhere. */
  #nonAscii(key: string, stored: string): EncodedKey {
    const utf8 = Buffer.from(stored)
    return this.#base64NonAscii
      ? { key, stored, wire: utf8.toString('base64'), base64: true }
      : { key, stored, wire: utf8.toString('latin1'), base64: false }
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
