import { InvalidOptionError } from './errors.js'

/** A server as a user writes it: `"host"`, `"host:port"`, `"[::1]:11211"`, or an object with a weight. */
export type ServerSpec = string | { host: string; port?: number; weight?: number }

export interface ServerConfig {
  readonly host: string
  readonly port: number
  readonly weight: number
  /** `"host:port"` (IPv6 hosts in brackets): how the server is named in errors, stats and `serverFor`. */
  readonly label: string
  /** For `memory://` servers: the in-process store's name and memory limit. */
  readonly memory?: { readonly name: string; readonly maxBytes: number }
}

export const DEFAULT_PORT = 11211

/**
 * Parses the `servers` option. Accepts one spec, an array, or a comma-separated string
 * (the form `MEMCACHED_SERVERS` takes). Falls back to `MEMCACHED_SERVERS`, then localhost.
 */
export function parseServers(
  input: ServerSpec | readonly ServerSpec[] | undefined,
  env: string | undefined = process.env.MEMCACHED_SERVERS,
): ServerConfig[] {
  let specs: ServerSpec[]
  if (input === undefined) {
    specs = env?.trim() ? splitList(env) : ['127.0.0.1:11211']
  } else if (typeof input === 'string') {
    specs = splitList(input)
  } else if (Array.isArray(input)) {
    specs = input.flatMap((spec) => (typeof spec === 'string' ? splitList(spec) : [spec]))
  } else {
    specs = [input as ServerSpec]
  }
  if (specs.length === 0) throw new InvalidOptionError('`servers` must name at least one server')
  const servers = specs.map(parseOne)
  const seen = new Set<string>()
  for (const server of servers) {
    if (seen.has(server.label))
      throw new InvalidOptionError(`server ${server.label} is listed twice in \`servers\``)
    seen.add(server.label)
  }
  return servers
}

function splitList(text: string): string[] {
  return text
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
}

function parseOne(spec: ServerSpec): ServerConfig {
  if (typeof spec === 'string') return fromString(spec)
  if (!spec || typeof spec !== 'object' || typeof spec.host !== 'string' || spec.host === '') {
    throw new InvalidOptionError(
      `invalid server ${JSON.stringify(spec)}: expected "host:port" or { host, port, weight }`,
    )
  }
  return make(spec.host, spec.port ?? DEFAULT_PORT, spec.weight ?? 1, JSON.stringify(spec))
}

function fromString(text: string): ServerConfig {
  if (text.startsWith('memory://')) return memoryServer(text)
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text)
  if (bracketed) return make(bracketed[1]!, bracketed[2] ? Number(bracketed[2]) : DEFAULT_PORT, 1, text)
  const parts = text.split(':')
  if (parts.length === 1) return make(text, DEFAULT_PORT, 1, text)
  if (parts.length === 2 && /^\d+$/.test(parts[1]!)) return make(parts[0]!, Number(parts[1]), 1, text)
  throw new InvalidOptionError(`invalid server "${text}": expected "host", "host:port" or "[ipv6]:port"`)
}

/** `memory://[name][?mb=<MiB>]`: the embedded in-process backend (default name 'default', 64 MiB). */
function memoryServer(text: string): ServerConfig {
  const match = /^memory:\/\/([\w.-]*)(?:\?mb=(\d+))?$/.exec(text)
  if (!match)
    throw new InvalidOptionError(
      `invalid server "${text}": expected "memory://" or "memory://<name>?mb=<MiB>"`,
    )
  const name = match[1] || 'default'
  const megabytes = match[2] ? Number(match[2]) : 64
  if (megabytes < 1) throw new InvalidOptionError(`invalid server "${text}": mb must be at least 1`)
  return Object.freeze({
    host: name,
    port: 0,
    weight: 1,
    label: `memory://${name}`,
    memory: Object.freeze({ name, maxBytes: megabytes * 1024 * 1024 }),
  })
}

function make(host: string, port: number, weight: number, original: string): ServerConfig {
  if (!host || /\s/.test(host)) throw new InvalidOptionError(`invalid server host in ${original}`)
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidOptionError(`invalid server port in ${original}: ${port}`)
  }
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) {
    throw new InvalidOptionError(`invalid server weight in ${original}: must be a positive number`)
  }
  const label = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
  return Object.freeze({ host, port, weight, label })
}
