// The JSON-with-flags convention of pymemcache's own tutorial (docs/getting_started.rst,
// "Serialization"): a str travels as UTF-8 under flag 1, everything else as JSON under flag 2.
import { isUtf8 } from 'node:buffer'
import { InvalidValueError } from '../errors.js'
import { type Serializer, toJsonBytes, UndecodableError } from '../serializer.js'

/** Flags of the tutorial's `JsonSerde`. */
export const JsonFlags = Object.freeze({ TEXT: 1, JSON: 2 })

/**
 * `serializer: 'json'`: strings under flag 1 (UTF-8), every other value as JSON under flag 2,
 * as pymemcache's tutorial `JsonSerde` writes them, so a Python service using it reads memkit's
 * values and the other way round. Buffers and bigints have no place in that convention and are
 * refused. Items with flags 0 (counters made by `incr`, raw bytes another client wrote) read as
 * Buffer.
 */
export const jsonSerializer: Serializer = Object.freeze({
  serialize(value: unknown) {
    if (typeof value === 'string') return { data: Buffer.from(value, 'utf8'), flags: JsonFlags.TEXT }
    if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
      throw new InvalidValueError(
        "serializer 'json' has no flag for bytes (the JSON convention stores text and JSON only); use serializer 'pymemcache' or store base64 text",
      )
    }
    if (typeof value === 'bigint')
      throw new InvalidValueError(
        "serializer 'json' cannot store a bigint (JSON has none); store it as a string",
      )
    if (typeof value === 'number' && !Number.isFinite(value))
      throw new InvalidValueError(`cannot store ${value}: not a finite number`)
    return { data: toJsonBytes(value), flags: JsonFlags.JSON }
  },

  deserialize(data: Buffer, flags: number) {
    switch (flags) {
      case JsonFlags.TEXT:
        if (!isUtf8(data)) throw new UndecodableError('text item (flag 1) is not valid UTF-8')
        return data.toString('utf8')
      case JsonFlags.JSON:
        try {
          return JSON.parse(data.toString('utf8'))
        } catch (error) {
          throw new UndecodableError(`JSON item (flag 2) does not parse: ${(error as Error).message}`)
        }
      case 0:
        return data
      default:
        throw new UndecodableError(`unknown item flags ${flags} for serializer 'json' (1 = text, 2 = JSON)`)
    }
  },
})
