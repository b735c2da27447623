import { DecodeError } from '../errors.js'
import { UndecodableError, type ValueCodec } from '../serializer.js'

/** How commands turn stored bytes back into values; owned by the client. */
export interface ItemDecoder {
  /** Throws DecodeError when the bytes cannot be decoded. */
  decode(key: string, data: Buffer, flags: number): unknown
  /** With `decodeErrors: 'miss'`, an undecodable item reads as a miss (and is reported). */
  readonly missOnDecodeError: boolean
  reportDecodeError(error: DecodeError): void
}

/**
 * Decodes one item for a command: returns the value, or `failed` when the item is corrupt and
 * the error was either reported as a miss (returns undefined) or must reject the command.
 */
export function decodeItem(
  decoder: ItemDecoder,
  key: string,
  data: Buffer,
  flags: number,
): { ok: true; value: unknown } | { ok: false; error: DecodeError | undefined } {
  try {
    return { ok: true, value: decoder.decode(key, data, flags) }
  } catch (error) {
    const decodeError =
      error instanceof DecodeError
        ? error
        : new DecodeError(`cannot decode ${key}: ${String(error)}`, key, flags, { cause: error })
    if (decoder.missOnDecodeError) {
      decoder.reportDecodeError(decodeError)
      return { ok: false, error: undefined }
    }
    return { ok: false, error: decodeError }
  }
}

/** How stored bytes become values: the codec, with its failures as DecodeError. */
export function valueDecoder(
  codec: ValueCodec,
  missOnDecodeError: boolean,
  report: (error: DecodeError) => void,
): ItemDecoder {
  return {
    missOnDecodeError,
    decode(key, data, flags) {
      try {
        return codec.decode(data, flags)
      } catch (error) {
        const reason =
          error instanceof UndecodableError ? error.message : `serializer failed: ${String(error)}`
        throw new DecodeError(
          `stored value of ${JSON.stringify(key)} cannot be decoded: ${reason}`,
          key,
          flags,
          {
            cause: error,
          },
        )
      }
    },
    reportDecodeError: report,
  }
}
