// FastLZ decompression (levels 1 and 2), for values PHP's memcached extension compressed with
// its default `memcached.compression_type=fastlz`. Written from the format FastLZ 0.1 defines
// (fastlz.c, MIT, by Ariya Hidayat): a stream of literal runs and back-references.

const MAX_L2_DISTANCE = 8191

/**
 * Decompresses a FastLZ block into exactly `length` bytes. Throws on a malformed block (a
 * reference before the start, output past `length`, input cut short).
 */
export function fastlzDecompress(input: Buffer, length: number): Buffer {
  if (input.length === 0) return Buffer.alloc(0)
  const level = (input[0]! >> 5) + 1
  if (level !== 1 && level !== 2) throw new Error(`unknown FastLZ level ${level}`)
  const out = Buffer.alloc(length)
  let ip = 0
  let op = 0
  let ctrl = input[ip++]! & 31
  const next = (): number => {
    if (ip >= input.length) throw new Error('FastLZ block is cut short')
    return input[ip++]!
  }
  for (;;) {
    if (ctrl >= 32) {
      let len = (ctrl >> 5) - 1
      let distance = (ctrl & 31) << 8
      if (len === 6) {
        if (level === 1) len += next()
        else {
          let code: number
          do {
            code = next()
            len += code
          } while (code === 255)
        }
      }
      const low = next()
      distance += low
      if (level === 2 && low === 255 && (ctrl & 31) === 31) {
        distance = (next() << 8) + next() + MAX_L2_DISTANCE
      }
      let ref = op - distance - 1
      const end = op + len + 3
      if (ref < 0 || end > length) throw new Error('FastLZ reference outside the output')
      while (op < end) out[op++] = out[ref++]!
    } else {
      const end = op + ctrl + 1
      if (end > length || ip + ctrl + 1 > input.length)
        throw new Error('FastLZ literal run outside the block')
      input.copy(out, op, ip, ip + ctrl + 1)
      ip += ctrl + 1
      op = end
    }
    if (ip >= input.length) break
    ctrl = input[ip++]!
  }
  if (op !== length) throw new Error(`FastLZ block holds ${op} bytes, not the ${length} announced`)
  return out
}
