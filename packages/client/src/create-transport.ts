// Which transport reaches a server, from the client's options: `memory://` servers, the binary
// protocol through memjs, or the socket transports (classic, meta) on the server's connections.
import { type DispatchOptions, socketDispatch } from './dispatch.js'
import type { ClientConfig } from './options.js'
import { BINARY, BinaryTransport } from './protocol/binary.js'
import { CLASSIC, ClassicTransport } from './protocol/classic.js'
import { MEMORY, MemoryTransport, memoryStore } from './protocol/memory.js'
import { META, MetaTransport } from './protocol/meta.js'
import type { ServerNode } from './server-node.js'
import type { Transport, TransportKind } from './transport.js'

/** What every server of a client is reached with. */
export function transportKind(config: ClientConfig): TransportKind {
  if (config.servers.some((server) => server.memory)) return MEMORY
  return config.protocol === 'classic' ? CLASSIC : config.protocol === 'binary' ? BINARY : META
}

export function createTransport(
  config: ClientConfig,
  node: ServerNode,
  dispatch: DispatchOptions,
): Transport {
  const server = node.config
  if (server.memory) {
    return new MemoryTransport(memoryStore(server.memory.name, server.memory.maxBytes, config.maxItemSize))
  }
  switch (config.protocol) {
    case 'binary':
      return new BinaryTransport({
        host: server.host,
        port: server.port,
        health: node,
        client: dispatch.client,
        timeout: config.timeout,
        connectTimeout: config.connectTimeout,
        keepAlive: config.keepAlive,
        auth: config.auth,
        maxItemSize: config.maxItemSize,
      })
    case 'classic':
      return new ClassicTransport(node.label, socketDispatch(node, dispatch), node.probeConnection)
    default:
      return new MetaTransport(node.label, socketDispatch(node, dispatch), node.probeConnection)
  }
}
