import { isIPv6 } from 'node:net'

/**
 * The rate-limit key for a client address. IPv4 addresses are used as they are; IPv4 carried
 * in IPv6 (`::ffff:1.2.3.4`, or the old `::1.2.3.4` notation) becomes the IPv4 address; other
 * IPv6 addresses are grouped by their `/subnet` network, since one customer usually holds a
 * whole /56 or /64 and could otherwise rotate addresses to dodge the limit. The text is
 * exactly what express-rate-limit's `ipKeyGenerator` produces (`2001:db8:abcd:1200::/56`).
 * `subnet: false` keeps each IPv6 address separate (in canonical RFC 5952 form).
 */
export function ipKey(ip: string, subnet: number | false): string {
  if (!isIPv6(ip)) return ip
  const parsed = parseIPv6(ip)
  if (!parsed) return ip
  const { groups, dotted } = parsed
  const zeros80 = groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0
  if (zeros80 && (groups[5] === 0xffff || (groups[5] === 0 && dotted))) {
    return `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`
  }
  if (subnet === false) return formatIPv6(groups)
  const masked = groups.map((group, index) => {
    const bits = Math.min(16, Math.max(0, subnet - index * 16))
    return bits === 16 ? group : bits === 0 ? 0 : group & (0xffff << (16 - bits)) & 0xffff
  })
  return `${formatIPv6(masked)}/${subnet}`
}

/** Eight 16-bit groups, and whether the text ended in a dotted IPv4 part. Undefined if malformed. */
function parseIPv6(text: string): { groups: number[]; dotted: boolean } | undefined {
  let ip = text
  const zone = ip.indexOf('%')
  if (zone !== -1) ip = ip.slice(0, zone)
  let dotted = false
  const lastColon = ip.lastIndexOf(':')
  const last = ip.slice(lastColon + 1)
  if (last.includes('.')) {
    const parts = last.split('.').map(Number)
    if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return undefined
    // The dotted IPv4 tail is the last two groups written differently.
    const high = ((parts[0]! << 8) | parts[1]!).toString(16)
    const low = ((parts[2]! << 8) | parts[3]!).toString(16)
    ip = `${ip.slice(0, lastColon + 1)}${high}:${low}`
    dotted = true
  }
  const halves = ip.split('::')
  if (halves.length > 2) return undefined
  const head = halves[0] ? halves[0].split(':') : []
  const rest = halves.length === 2 && halves[1] ? halves[1].split(':') : []
  const hex = (part: string) => (/^[0-9a-f]{1,4}$/i.test(part) ? Number.parseInt(part, 16) : Number.NaN)
  let groups: number[]
  if (halves.length === 2) {
    const fill = 8 - head.length - rest.length
    if (fill < 0) return undefined
    groups = [...head.map(hex), ...new Array<number>(fill).fill(0), ...rest.map(hex)]
  } else {
    groups = head.map(hex)
  }
  if (groups.length !== 8 || groups.some(Number.isNaN)) return undefined
  return { groups, dotted }
}

/** RFC 5952: lowercase, no leading zeros, the longest run of two or more zero groups as `::`. */
function formatIPv6(groups: number[]): string {
  let bestStart = -1
  let bestLength = 0
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLength) {
      bestStart = i
      bestLength = j - i
    }
    i = j
  }
  const hex = groups.map((g) => g.toString(16))
  if (bestLength < 2) return hex.join(':')
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`
}
