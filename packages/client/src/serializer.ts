import { isUtf8 } from 'node:buffer'
import { brotliCompressSync, brotliDecompressSync, deflateSync, inflateSync } from 'node:zlib'
import { InvalidOptionError, InvalidValueError } from './errors.js'

/**
 * Item flags. Bytes, integers, text and the compressed bit are pymemcache's defaults, so a
 * Python service using pymemcache's default serde reads and writes the same items.
 * JSON and brotli are memkit's own bits (pymemcache uses 1 for pickle, which memkit refuses).
 */
export const Flags = Object.freeze({
  BYTES: 0,
  PICKLE: 1,
  INTEGER: 2,
  LONG: 4,
  COMPRESSED: 8,
  TEXT: 16,
  JSON: 32,
  BROTLI: 64,
})

/**
 * Turns values into bytes + flags and back. Flags are an unsigned 32-bit number; bits 8 and 64
 * are memkit's compression bits and a serializer must not return them, unless it compresses
 * itself (`handlesCompression`), in which case memkit's `compression` option is off for it.
 */
export interface Serializer {
  serialize(value: unknown): { data: Buffer; flags: number }
  /** Throws when the bytes cannot be decoded; the client reports that as a DecodeError. */
  deserialize(data: Buffer, flags: number): unknown
  /** True when the serializer does its own compression (and owns every flag bit), as PHP's preset. */
  readonly handlesCompression?: boolean
}

/** Flag bits memkit's compression owns: a serializer that returns them would be misread. */
export const RESERVED_FLAGS = Flags.COMPRESSED | Flags.BROTLI

/** Values tried on a custom serializer at construction, to find reserved flags before any write. */
const PROBES: readonly unknown[] = [
  '',
  'text',
  0,
  42,
  -1,
  1.5,
  2n ** 70n,
  true,
  false,
  null,
  [],
  [1, 'a'],
  {},
  { a: 1 },
  Buffer.from('bytes'),
  new Date(0),
]

/**
 * Checks a serializer once, at construction: it serializes a sample of every value type (types
 * it refuses are skipped) and must never return flags outside uint32 or, unless it compresses
 * itself, memkit's compression bits. Every write is checked again (one bitwise test).
 */
export function checkSerializer(serializer: Serializer, name: string): void {
  for (const probe of PROBES) {
    let out: { data: Buffer; flags: number }
    try {
      out = serializer.serialize(probe)
    } catch {
      continue
    }
    const problem = flagsProblem(out?.flags, serializer)
    if (problem) {
      throw new InvalidOptionError(
        `${name} returned flags ${String(out?.flags)} for ${describeProbe(probe)}: ${problem}`,
      )
    }
  }
}

function flagsProblem(flags: unknown, serializer: Serializer): string {
  if (typeof flags !== 'number' || !Number.isInteger(flags) || flags < 0 || flags > 0xffffffff) {
    return 'flags must be an unsigned 32-bit integer'
  }
  if (!serializer.handlesCompression && (flags & RESERVED_FLAGS) !== 0) {
    return `bits ${Flags.COMPRESSED} and ${Flags.BROTLI} are memkit's compression bits (a value with them would be decompressed on read); use other bits, or set handlesCompression: true if the serializer compresses itself`
  }
  return ''
}

function describeProbe(value: unknown): string {
  if (Buffer.isBuffer(value)) return 'a Buffer'
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (value instanceof Date) return 'a Date'
  return `a ${typeof value}`
}

/** A value as UTF-8 JSON; InvalidValueError for what JSON cannot hold (cycles, functions, undefined). */
export function toJsonBytes(value: unknown): Buffer {
  let json: string | undefined
  try {
    json = JSON.stringify(value)
  } catch (error) {
    throw new InvalidValueError(`cannot store value as JSON: ${(error as Error).message}`)
  }
  if (json === undefined) throw new InvalidValueError(`cannot store a value of type ${typeof value} as JSON`)
  return Buffer.from(json, 'utf8')
}

/** Raised inside deserialize; the client wraps it into a DecodeError naming the key. */
export class UndecodableError extends Error {}

export const defaultSerializer: Serializer = {
  serialize(value) {
    if (Buffer.isBuffer(value)) return { data: value, flags: Flags.BYTES }
    if (value instanceof Uint8Array) {
      return { data: Buffer.from(value.buffer, value.byteOffset, value.byteLength), flags: Flags.BYTES }
    }
    switch (typeof value) {
      case 'string':
        return { data: Buffer.from(value, 'utf8'), flags: Flags.TEXT }
      case 'number':
        if (Number.isSafeInteger(value) && !Object.is(value, -0)) {
          return { data: Buffer.from(String(value), 'latin1'), flags: Flags.INTEGER }
        }
        if (!Number.isFinite(value)) throw new InvalidValueError(`cannot store ${value}: not a finite number`)
        return { data: Buffer.from(JSON.stringify(value), 'latin1'), flags: Flags.JSON }
      case 'bigint':
        return { data: Buffer.from(value.toString(), 'latin1'), flags: Flags.INTEGER }
      case 'boolean':
        return { data: Buffer.from(value ? 'true' : 'false', 'latin1'), flags: Flags.JSON }
      case 'object':
        return { data: toJsonBytes(value), flags: Flags.JSON }
      default:
        throw new InvalidValueError(`cannot store a value of type ${typeof value}`)
    }
  },

  deserialize(data, flags) {
    switch (flags) {
      case Flags.BYTES:
        return data
      case Flags.TEXT:
        if (!isUtf8(data)) throw new UndecodableError('text item is not valid UTF-8')
        return data.toString('utf8')
      case Flags.INTEGER:
      case Flags.LONG: {
        // Python ints (and bigints) have no size limit; a few thousand digits is plenty.
        const text = data.toString('latin1').trim()
        if (text.length > 4096 || !/^-?\d+$/.test(text)) {
          throw new UndecodableError(`integer item holds ${JSON.stringify(text.slice(0, 40))}`)
        }
        const n = Number(text)
        return Number.isSafeInteger(n) ? n : BigInt(text)
      }
      case Flags.JSON:
        try {
          return JSON.parse(data.toString('utf8'))
        } catch (error) {
          throw new UndecodableError(`JSON item does not parse: ${(error as Error).message}`)
        }
      case Flags.PICKLE:
        throw new UndecodableError('item was pickled by Python (flag 1); memkit cannot read pickles')
      default:
        throw new UndecodableError(`unknown item flags ${flags}`)
    }
  },
}

export type CompressionAlgorithm = 'zlib' | 'brotli'

export interface CompressionOptions {
  algorithm?: CompressionAlgorithm
  /** Values of at least this many bytes are compressed (when that makes them smaller). Default 1024. */
  threshold?: number
}

export interface ValueCodecConfig {
  serializer: Serializer
  compression: { algorithm: CompressionAlgorithm; threshold: number } | undefined
}

export function parseCompression(
  input: boolean | CompressionAlgorithm | CompressionOptions | undefined,
): ValueCodecConfig['compression'] {
  if (input === undefined || input === false) return undefined
  if (input === true) return { algorithm: 'zlib', threshold: 1024 }
  if (input === 'zlib' || input === 'brotli') return { algorithm: input, threshold: 1024 }
  if (typeof input === 'object' && input !== null) {
    const algorithm = input.algorithm ?? 'zlib'
    const threshold = input.threshold ?? 1024
    if (algorithm !== 'zlib' && algorithm !== 'brotli') {
      throw new InvalidOptionError(
        `compression.algorithm must be 'zlib' or 'brotli'; got ${String(algorithm)}`,
      )
    }
    if (!Number.isInteger(threshold) || threshold < 0) {
      throw new InvalidOptionError('compression.threshold must be a non-negative integer (bytes)')
    }
    return { algorithm, threshold }
  }
  throw new InvalidOptionError(
    "compression must be false, true, 'zlib', 'brotli' or { algorithm, threshold }",
  )
}

/** Serializer + optional compression: what actually produces and reads the stored bytes. */
export class ValueCodec {
  readonly #ownCompression: boolean
  readonly #reserved: number

  constructor(readonly config: ValueCodecConfig) {
    this.#ownCompression = config.serializer.handlesCompression === true
    this.#reserved = this.#ownCompression ? 0 : RESERVED_FLAGS
  }

  encode(value: unknown): { data: Buffer; flags: number } {
    if (value === undefined) throw new InvalidValueError('cannot store undefined (delete the key instead)')
    const out = this.config.serializer.serialize(value)
    if ((out.flags & this.#reserved) !== 0 || out.flags >>> 0 !== out.flags) {
      throw new InvalidValueError(
        `the serializer returned flags ${String(out.flags)}: ${flagsProblem(out.flags, this.config.serializer)}`,
      )
    }
    const compression = this.config.compression
    if (compression && out.data.length >= compression.threshold && out.data.length > 0) {
      const packed = compression.algorithm === 'brotli' ? brotliCompressSync(out.data) : deflateSync(out.data)
      if (packed.length < out.data.length) {
        const flags = out.flags | Flags.COMPRESSED | (compression.algorithm === 'brotli' ? Flags.BROTLI : 0)
        return { data: packed, flags }
      }
    }
    return out
  }

  /** Throws UndecodableError (or whatever a custom serializer throws) on bad data. */
  decode(data: Buffer, flags: number): unknown {
    if (flags & Flags.COMPRESSED && !this.#ownCompression) {
      let plain: Buffer
      try {
        plain = flags & Flags.BROTLI ? brotliDecompressSync(data) : inflateSync(data)
      } catch (error) {
        throw new UndecodableError(`compressed item does not decompress: ${(error as Error).message}`)
      }
      return this.config.serializer.deserialize(plain, flags & ~(Flags.COMPRESSED | Flags.BROTLI))
    }
    return this.config.serializer.deserialize(data, flags)
  }
}
