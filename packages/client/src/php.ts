// `@memkit/client/php`: values shared with PHP's memcached extension (php-memcached 3.x), its
// flags exactly as php_memcached.c writes and reads them. PHP arrays travel in PHP's own
// serialize() format, through the php-serialize package (an optional peer dependency, loaded
// only by this entry point).
import { isUtf8 } from 'node:buffer'
import { deflateSync, inflateSync } from 'node:zlib'
import { serialize as phpSerialize, unserialize as phpUnserialize } from 'php-serialize'
import { InvalidOptionError, InvalidValueError } from './errors.js'
import { type Serializer, toJsonBytes, UndecodableError } from './serializer.js'
import { fastlzDecompress } from './serializers/fastlz.js'

/** php-memcached's value types (the low 4 bits of the flags, MEMC_VAL_IS_*). */
export const PhpType = Object.freeze({
  STRING: 0,
  LONG: 1,
  DOUBLE: 2,
  BOOL: 3,
  SERIALIZED: 4,
  IGBINARY: 5,
  JSON: 6,
  MSGPACK: 7,
})

/** php-memcached's internal flags (bits 4-15, MEMC_VAL_COMPRESS*). */
export const PhpFlags = Object.freeze({
  COMPRESSED: 1 << 4,
  ZLIB: 2 << 4,
  FASTLZ: 4 << 4,
  ZSTD: 8 << 4,
})

export interface PhpSerializerOptions {
  /**
   * How arrays and objects are written: `'php'` (PHP's serialize(), what the extension writes by
   * default, read back as PHP arrays) or `'json'` (type 6, as with `memcached.serializer=json`;
   * PHP reads objects as stdClass unless its serializer is `json_array`). Default `'php'`.
   */
  arrays?: 'php' | 'json'
  /**
   * Compress values of at least `threshold` bytes (default 2000, as `memcached.compression_threshold`)
   * when that makes them at least `factor` times smaller (default 1.3, as
   * `memcached.compression_factor`), with zlib: PHP reads zlib whatever its own
   * `compression_type`. `false` turns it off. Default `{ threshold: 2000, factor: 1.3 }`.
   */
  compression?: false | { threshold?: number; factor?: number }
}

const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n

/**
 * A serializer that reads and writes what PHP's memcached extension does: strings (type 0),
 * integers (1), floats (2), booleans (3), arrays through serialize() (4) or JSON (6), and its
 * compressed values (flag 16 with zlib 32 or fastlz 64, a 4-byte length before the data). PHP
 * strings are bytes: an item of type 0 reads as a string when it is valid UTF-8, else a Buffer.
 * PHP objects of other classes, igbinary and msgpack cannot be read (DecodeError).
 */
export function phpSerializer(options: PhpSerializerOptions = {}): Serializer {
  const arrays = options.arrays ?? 'php'
  if (arrays !== 'php' && arrays !== 'json')
    throw new InvalidOptionError("phpSerializer arrays must be 'php' or 'json'")
  const compression =
    options.compression === false ? undefined : { threshold: 2000, factor: 1.3, ...options.compression }
  if (compression && (!(compression.threshold >= 0) || !(compression.factor >= 1))) {
    throw new InvalidOptionError('phpSerializer compression needs threshold >= 0 (bytes) and factor >= 1')
  }

  function typed(value: unknown): { data: Buffer; flags: number } {
    if (typeof value === 'string') return { data: Buffer.from(value, 'utf8'), flags: PhpType.STRING }
    if (Buffer.isBuffer(value)) return { data: value, flags: PhpType.STRING }
    if (value instanceof Uint8Array) return { data: Buffer.from(value), flags: PhpType.STRING }
    if (typeof value === 'number') {
      if (Number.isSafeInteger(value) && !Object.is(value, -0)) {
        return { data: Buffer.from(String(value), 'latin1'), flags: PhpType.LONG }
      }
      return { data: Buffer.from(doubleText(value), 'latin1'), flags: PhpType.DOUBLE }
    }
    if (typeof value === 'bigint') {
      if (value < INT64_MIN || value > INT64_MAX)
        throw new InvalidValueError('a PHP integer is 64-bit: this bigint does not fit; store it as a string')
      return { data: Buffer.from(value.toString(), 'latin1'), flags: PhpType.LONG }
    }
    if (typeof value === 'boolean')
      return { data: Buffer.from(value ? '1' : '', 'latin1'), flags: PhpType.BOOL }
    if (value !== null && typeof value !== 'object')
      throw new InvalidValueError(`cannot store a value of type ${typeof value} for PHP`)
    if (arrays === 'json' && value !== null) {
      return { data: toJsonBytes(value), flags: PhpType.JSON }
    }
    let text: string
    try {
      // JSON round trip first: the same values JSON keeps (toJSON, no functions), as PHP arrays.
      text = phpSerialize(value === null ? null : JSON.parse(JSON.stringify(value)))
    } catch (error) {
      throw new InvalidValueError(`cannot store value for PHP: ${(error as Error).message}`)
    }
    return { data: Buffer.from(text, 'utf8'), flags: PhpType.SERIALIZED }
  }

  return Object.freeze({
    handlesCompression: true,

    serialize(value: unknown) {
      const out = typed(value)
      if (!compression || out.data.length < compression.threshold || out.data.length === 0) return out
      const packed = deflateSync(out.data)
      // php-memcached keeps the compressed form only when it is `factor` times smaller.
      if (out.data.length <= packed.length * compression.factor) return out
      const header = Buffer.alloc(4)
      header.writeUInt32LE(out.data.length)
      return { data: Buffer.concat([header, packed]), flags: out.flags | PhpFlags.COMPRESSED | PhpFlags.ZLIB }
    },

    deserialize(data: Buffer, flags: number) {
      let payload = data
      if (flags & PhpFlags.COMPRESSED) payload = decompress(data, flags)
      switch (flags & 0xf) {
        case PhpType.STRING:
          return isUtf8(payload) ? payload.toString('utf8') : payload
        case PhpType.LONG: {
          const text = payload.toString('latin1').trim()
          if (!/^-?\d+$/.test(text))
            throw new UndecodableError(`PHP integer item holds ${JSON.stringify(text.slice(0, 40))}`)
          const n = Number(text)
          return Number.isSafeInteger(n) ? n : BigInt(text)
        }
        case PhpType.DOUBLE: {
          const text = payload.toString('latin1')
          if (text === 'Infinity') return Number.POSITIVE_INFINITY
          if (text === '-Infinity') return Number.NEGATIVE_INFINITY
          if (text === 'NaN') return Number.NaN
          const n = Number(text)
          if (text.trim() === '' || Number.isNaN(n))
            throw new UndecodableError(`PHP float item holds ${JSON.stringify(text.slice(0, 40))}`)
          return n
        }
        case PhpType.BOOL:
          return payload.length > 0 && payload[0] === 0x31
        case PhpType.SERIALIZED:
          try {
            return phpUnserialize(payload.toString('utf8'))
          } catch (error) {
            throw new UndecodableError(`PHP serialize() item cannot be read: ${(error as Error).message}`)
          }
        case PhpType.JSON:
          try {
            return JSON.parse(payload.toString('utf8'))
          } catch (error) {
            throw new UndecodableError(`PHP JSON item does not parse: ${(error as Error).message}`)
          }
        case PhpType.IGBINARY:
        case PhpType.MSGPACK:
          throw new UndecodableError(
            `PHP item serialized with ${(flags & 0xf) === PhpType.IGBINARY ? 'igbinary' : 'msgpack'}: memkit reads PHP's serializers 'php' and 'json' (memcached.serializer)`,
          )
        default:
          throw new UndecodableError(`unknown PHP value type ${flags & 0xf} (flags ${flags})`)
      }
    },
  })
}

/** The data after php-memcached's 4-byte original length (host order, little-endian on x86/arm). */
function decompress(data: Buffer, flags: number): Buffer {
  if (data.length < 4) throw new UndecodableError('compressed PHP item is shorter than its length header')
  const length = data.readUInt32LE(0)
  const body = data.subarray(4)
  try {
    if (flags & PhpFlags.FASTLZ) return fastlzDecompress(body, length)
    if (flags & PhpFlags.ZLIB) return inflateSync(body)
  } catch (error) {
    throw new UndecodableError(`compressed PHP item does not decompress: ${(error as Error).message}`)
  }
  if (flags & PhpFlags.ZSTD)
    throw new UndecodableError(
      'PHP item compressed with zstd: set memcached.compression_type to fastlz or zlib',
    )
  throw new UndecodableError(`compressed PHP item without a known compression (flags ${flags})`)
}

/** A float as PHP writes it (serialize_precision -1: the shortest round-trip form). */
function doubleText(value: number): string {
  if (Number.isNaN(value)) return 'NaN'
  if (value === Number.POSITIVE_INFINITY) return 'Infinity'
  if (value === Number.NEGATIVE_INFINITY) return '-Infinity'
  return Object.is(value, -0) ? '-0' : String(value)
}
