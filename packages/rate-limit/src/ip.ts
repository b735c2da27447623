// The default rate-limit key: the client address, canonicalised so that every spelling of one
// address lands on one key, and anything that is not an address on a key of its own.

/** Prefix of the key of a client "address" that does not parse; no real address starts with it. */
export const INVALID_ADDRESS_PREFIX = 'invalid:'

/**
 * The rate-limit key for a client address.
 *
 * - **IPv4** in canonical dotted form. Zero-padded octets (`001.002.003.004`) are read as
 *   decimal padding, as a log formatter writes them, not as octal as `inet_aton` would.
 * - **IPv4 inside IPv6** becomes the IPv4 address: IPv4-mapped `::ffff:1.2.3.4` (or
 *   `::ffff:102:304`) and IPv4-compatible `::1.2.3.4` (or `::102:304`; RFC 4291 2.5.5), except
 *   `::` and `::1`, which are IPv6's own unspecified and loopback addresses.
 * - **Other IPv6** addresses are grouped by their `/subnet` network, since one customer usually
 *   holds a whole /56 or /64 and could otherwise rotate addresses to dodge the limit. Letter
 *   case, leading zeros, zero compression and zone ids (`%eth0`) make no difference; the text is
 *   RFC 5952's and matches express-rate-limit's `ipKeyGenerator` (`2001:db8:abcd:1200::/56`).
 *   `subnet: false` keeps each IPv6 address separate.
 * - Surrounding whitespace, brackets (`[2001:db8::1]`) and a port (`1.2.3.4:443`,
 *   `[2001:db8::1]:443`) are dropped.
 * - **Anything else** gets `invalid:<the text as given>`, a key no real address can have, so a
 *   malformed value never shares a key with a real client. An empty string stays `''` (no address).
 */
export function ipKey(ip: string, subnet: number | false): string {
  const address = parseAddress(ip)
  if (address === undefined) return ip.trim() === '' ? '' : `${INVALID_ADDRESS_PREFIX}${ip}`
  if (typeof address === 'string') return address
  if (subnet === false) return formatIPv6(address)
  const masked = address.map((group, index) => {
    // The bits of this group inside the subnet: 16 keeps the group, 0 clears it.
    const bits = Math.min(16, Math.max(0, subnet - index * 16))
    return group & (0xffff << (16 - bits)) & 0xffff
  })
  return `${formatIPv6(masked)}/${subnet}`
}

/**
 * `ipKey` for one limiter, remembering the last `cacheSize` addresses: a busy client's address
 * is parsed once, not on every request.
 */
export class IpKeys {
  readonly #subnet: number | false
  readonly #cacheSize: number
  readonly #compute: typeof ipKey
  readonly #cache = new Map<string, string>()

  /** `compute` is `ipKey` (tests count its calls). */
  constructor(subnet: number | false, cacheSize = 1024, compute: typeof ipKey = ipKey) {
    this.#subnet = subnet
    this.#cacheSize = cacheSize
    this.#compute = compute
  }

  key(ip: string): string {
    const cached = this.#cache.get(ip)
    if (cached !== undefined) return cached
    const key = this.#compute(ip, this.#subnet)
    // A long "address" is not worth remembering (and must not pin memory).
    if (ip.length <= 64) {
      if (this.#cache.size >= this.#cacheSize) this.#cache.delete(this.#cache.keys().next().value as string)
      this.#cache.set(ip, key)
    }
    return key
  }
}

/** An IPv4 address as canonical dotted text, eight IPv6 groups, or undefined when malformed. */
function parseAddress(text: string): string | number[] | undefined {
  let ip = text.trim()
  if (ip.startsWith('[')) {
    // [v6] or [v6]:port
    const close = ip.indexOf(']')
    if (close === -1 || !/^(?::\d{1,5})?$/.test(ip.slice(close + 1))) return undefined
    return parseIPv6(ip.slice(1, close))
  }
  if (!ip.includes(':')) return parseIPv4(ip)
  const port = /^([^:]+):\d{1,5}$/.exec(ip)
  if (port) return parseIPv4(port[1]!)
  const zone = ip.indexOf('%')
  if (zone !== -1) ip = ip.slice(0, zone)
  return parseIPv6(ip)
}

function parseIPv4(text: string): string | undefined {
  const octets = ipv4Octets(text)
  return octets === undefined ? undefined : octets.join('.')
}

/** Four decimal octets (leading zeros allowed), or undefined. */
function ipv4Octets(text: string): number[] | undefined {
  const parts = text.split('.')
  if (parts.length !== 4) return undefined
  const octets: number[] = []
  for (const part of parts) {
    if (!/^0*\d{1,3}$/.test(part)) return undefined
    const value = Number(part)
    if (value > 255) return undefined
    octets.push(value)
  }
  return octets
}

/** The address: IPv4 text when it is an IPv4 address carried in IPv6, else its eight groups. */
function parseIPv6(text: string): string | number[] | undefined {
  let ip = text
  const lastColon = ip.lastIndexOf(':')
  if (lastColon === -1) return undefined
  const last = ip.slice(lastColon + 1)
  if (last.includes('.')) {
    // The dotted IPv4 tail is the last two groups written differently.
    const octets = ipv4Octets(last)
    if (octets === undefined) return undefined
    const high = ((octets[0]! << 8) | octets[1]!).toString(16)
    const low = ((octets[2]! << 8) | octets[3]!).toString(16)
    ip = `${ip.slice(0, lastColon + 1)}${high}:${low}`
  }
  const halves = ip.split('::')
  if (halves.length > 2) return undefined
  const head = halves[0] ? halves[0].split(':') : []
  const rest = halves[1] ? halves[1].split(':') : []
  const hex = (part: string) => (/^[0-9a-f]{1,4}$/i.test(part) ? Number.parseInt(part, 16) : Number.NaN)
  let groups: number[]
  if (halves.length === 2) {
    const fill = 8 - head.length - rest.length
    if (fill < 1) return undefined
    groups = [...head.map(hex), ...new Array<number>(fill).fill(0), ...rest.map(hex)]
  } else {
    groups = head.map(hex)
  }
  if (groups.length !== 8 || groups.some(Number.isNaN)) return undefined
  const [a, b, c, d, e, f, g, h] = groups as [number, number, number, number, number, number, number, number]
  if (a === 0 && b === 0 && c === 0 && d === 0 && e === 0) {
    const embedded = `${g >> 8}.${g & 0xff}.${h >> 8}.${h & 0xff}`
    if (f === 0xffff) return embedded // IPv4-mapped
    if (f === 0 && !(g === 0 && (h === 0 || h === 1))) return embedded // IPv4-compatible
  }
  return groups
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
