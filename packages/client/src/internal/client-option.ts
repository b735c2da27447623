// "Take the given client, or build one from `servers`": what every middleware accepts.
import { createClient, type MemcachedClient } from '../client.js'
import { describe } from '../duration.js'
import { InvalidOptionError } from '../errors.js'
import type { MemkitClient } from '../memkit-client.js'
import type { ClientOptions } from '../options.js'
import type { ServerSpec } from '../servers.js'

export interface ClientChoice {
  client?: unknown
  servers?: ServerSpec | readonly ServerSpec[]
  clientOptions?: ClientOptions
}

/**
 * Checks the `client` / `servers` / `clientOptions` options of a middleware (what: its name, for
 * messages): a client made by createClient() (or createFallbackClient()), or servers to build one
 * from, not both. Recognises a client by its shape, so a client from another installed copy of
 * @memkit/client is accepted.
 */
export function checkClientOption(options: ClientChoice, what: string): MemkitClient | undefined {
  if (options.client === undefined) return undefined
  const client = options.client as Partial<MemkitClient> | null
  if (
    typeof client !== 'object' ||
    client === null ||
    typeof client.gets !== 'function' ||
    typeof client.generation !== 'function'
  ) {
    throw new InvalidOptionError(
      `${what}: \`client\` must be a client made by createClient() from @memkit/client; got ${describe(options.client)}`,
    )
  }
  if (options.servers !== undefined || options.clientOptions !== undefined) {
    throw new InvalidOptionError(`${what}: pass either \`client\` or \`servers\`/\`clientOptions\`, not both`)
  }
  return client as MemkitClient
}

/** The client to use: the one given, or a new one from `servers` and `clientOptions` (owned: close it with the middleware). */
export function resolveClient(options: ClientChoice, what: string): { client: MemkitClient; owned: boolean } {
  const given = checkClientOption(options, what)
  if (given) return { client: given, owned: false }
  const client: MemcachedClient = createClient({ ...options.clientOptions, servers: options.servers })
  return { client, owned: true }
}
