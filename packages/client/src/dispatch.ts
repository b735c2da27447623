// How a socket transport (meta, classic) sends a command: on its server's pipelined
// connections, with the timeout, and with the retry rules. A command whose established
// connection broke (not one that timed out, could not connect, or found its server down) is sent
// again on a fresh connection while its deadline allows, if it is idempotent. Behind
// interchangeable proxies, a command that never left the client goes to another proxy.
import type { Command, RetryTarget } from './command.js'
import { commandChannel } from './diagnostics.js'
import { ClientClosedError, type ConnectionError, type MemkitError } from './errors.js'
import type { ServerNode } from './server-node.js'
import type { Dispatch } from './transport.js'

export interface DispatchOptions {
  /** Milliseconds each command may take from when it is written. */
  readonly timeout: number
  /** Retries of idempotent commands whose connection broke. */
  readonly retries: number
  /** Number of interchangeable proxies (0 when keys are placed client-side). */
  readonly proxies: number
  /** Behind proxies: the proxy a command that never left the client goes to next. */
  readonly anyNode: () => ServerNode
  readonly closed: () => boolean
  /** The owning client, named in diagnostics events. */
  readonly client: object
}

/** The Dispatch of one server (its ServerNode), as the socket transports use it. */
export function socketDispatch(node: ServerNode, options: DispatchOptions): Dispatch {
  const retry = (command: RetryTarget, error: MemkitError): boolean => {
    if (options.closed() || Date.now() >= command.deadline) return false
    // Behind proxies any proxy serves any key, and a command that never left the client (the
    // proxy is down or refused the connection) is safe to send elsewhere, idempotent or not.
    const neverSent =
      error.code === 'ERR_MEMKIT_SERVER_DOWN' || (error as ConnectionError).connecting === true
    if (neverSent && command.reroutesLeft > 0) {
      command.reroutesLeft--
      const next = options.anyNode()
      command.route = next
      next.send(command as Command)
      return true
    }
    if (command.retriesLeft <= 0 || error.code !== 'ERR_MEMKIT_CONNECTION') return false
    if ((error as ConnectionError).connecting) return false
    command.retriesLeft--
    ;(command.route as ServerNode).send(command as Command)
    return true
  }
  return <T>(command: Command<T>, idempotent: boolean): Promise<T> => {
    if (options.closed()) return Promise.reject(new ClientClosedError('the client is closed'))
    // The clock starts when the connection writes it (one clock read per write, not per command).
    command.timeout = options.timeout
    command.route = node
    if (idempotent && options.retries > 0) {
      command.retriesLeft = options.retries
      command.onFailure = retry
    }
    if (options.proxies > 1) {
      command.reroutesLeft = options.proxies - 1
      command.onFailure = retry
    }
    node.send(command)
    if (commandChannel.hasSubscribers) observe(options.client, command, node.label)
    return command.promise
  }
}

/** Publishes a command's outcome on the diagnostics channel (only while someone subscribes). */
function observe(client: object, command: Command, server: string): void {
  const start = performance.now()
  command.promise.then(
    (result) => {
      const event: Record<string, unknown> = {
        client,
        command: command.name,
        server,
        duration: performance.now() - start,
      }
      if (command.name === 'get' || command.name === 'gets' || command.name === 'getAndTouch')
        event.hit = result !== undefined
      else if (command.keyCount > 0) {
        event.keys = command.keyCount
        event.hits = command.hitCount
        event.hit = command.hitCount > 0
      }
      commandChannel.publish(event)
    },
    (error) =>
      commandChannel.publish({
        client,
        command: command.name,
        server,
        duration: performance.now() - start,
        error,
      }),
  )
}
