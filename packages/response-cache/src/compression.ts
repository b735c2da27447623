import { promisify } from 'node:util'
import { brotliCompress, brotliDecompress, constants, gunzip, gzip } from 'node:zlib'
import type { CompressionAlgorithm } from './options.js'

const gzipAsync = promisify(gzip)
const gunzipAsync = promisify(gunzip)
const brotliAsync = promisify(brotliCompress)
const unbrotliAsync = promisify(brotliDecompress)

// Types worth compressing; images, video and archives are compressed already.
const COMPRESSIBLE =
  /^(?:text\/|application\/(?:json|javascript|ecmascript|xml|xhtml\+xml|rss\+xml|atom\+xml|ld\+json|manifest\+json|graphql-response\+json|x-www-form-urlencoded)|image\/svg\+xml|[^;]*\+(?:json|xml)\b)/i

export function isCompressible(contentType: string | undefined): boolean {
  return contentType !== undefined && COMPRESSIBLE.test(contentType.trim())
}

export function compress(algorithm: CompressionAlgorithm, body: Buffer): Promise<Buffer> {
  return algorithm === 'gzip'
    ? gzipAsync(body)
    : brotliAsync(body, {
        params: {
          // Quality 5: a fraction of the CPU of the default 11 for most of its gain.
          [constants.BROTLI_PARAM_QUALITY]: 5,
          [constants.BROTLI_PARAM_SIZE_HINT]: body.length,
        },
      })
}

export function decompress(algorithm: CompressionAlgorithm, body: Buffer): Promise<Buffer> {
  return algorithm === 'gzip' ? gunzipAsync(body) : unbrotliAsync(body)
}
