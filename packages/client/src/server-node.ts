import type { Command } from './command.js'
import { Connection, type ConnectionOptions } from './connection.js'
import { ClientClosedError, type MemkitError, OverloadedError, ServerDownError } from './errors.js'
import type { ServerConfig } from './servers.js'

export interface NodeOptions {
  connections: number
  connectTimeout: number
  keepAlive: number | false
  tls: ConnectionOptions['tls']
  handshake: ConnectionOptions['handshake']
  nudge: ConnectionOptions['nudge']
  /** Consecutive failures after which the server is marked down. */
  failureLimit: number
  /** How long (ms) a down server is left alone before it is probed again. */
  deadTimeout: number
  /** Most commands in flight per connection before new ones are refused. */
  maxPending: number
  /** The item size limit in bytes: no reply may announce a larger value. */
  maxItemSize: number
  /**
   * Empty a server that comes back (`flush_all`) before it serves again: while it was down its
   * keys were written elsewhere, so what it still holds may be older than the truth.
   */
  flushOnRejoin: boolean
  /**
   * Checks whether a down server is back, and empties it when `flush` is true: the transport's
   * `probe` (the socket transports send `version`, then `flush_all`, on a fresh connection).
   */
  probe: (flush: boolean) => Promise<unknown>
}

export interface NodeEvents {
  onDown(node: ServerNode, error: MemkitError): void
  /** The server answers again; `flushed` when it was emptied first. */
  onUp(node: ServerNode, flushed: boolean): void
}

/**
 * One memcached server: its connections (opened lazily, reopened after failures) and its
 * health. After `failureLimit` consecutive failures it is marked down: commands for it fail
 * fast (or are rerouted by the cluster, with failover) instead of queueing, and a background
 * probe retries it every `deadTimeout` until it answers again.
 */
export class ServerNode {
  readonly #options: NodeOptions
  readonly #events: NodeEvents
  readonly #connections: Array<Connection | undefined>
  #next = 0
  #failures = 0
  #down = false
  #lastError: MemkitError | undefined
  #downSince = 0
  #probeTimer: NodeJS.Timeout | undefined
  #closed = false

  constructor(
    readonly config: ServerConfig,
    options: NodeOptions,
    events: NodeEvents,
  ) {
    this.#options = options
    this.#events = events
    this.#connections = new Array(options.connections).fill(undefined)
  }

  get label(): string {
    return this.config.label
  }

  get up(): boolean {
    return !this.#down
  }

  get lastError(): MemkitError | undefined {
    return this.#lastError
  }

  /** Open connections (for stats). */
  get openConnections(): number {
    return this.#connections.filter((c) => c?.usable).length
  }

  /** Why commands for this server must fail at once, if they must. */
  unavailable(): MemkitError | undefined {
    if (this.#closed) return new ClientClosedError('the client is closed')
    if (!this.#down) return undefined
    return new ServerDownError(
      `${this.label} is marked down after repeated failures (${this.#lastError?.message ?? 'unknown'}); retrying it in the background`,
      this.label,
      { cause: this.#lastError },
    )
  }

  /** A reply arrived (for transports that manage their own connections). */
  reportSuccess(): void {
    if (this.#failures !== 0) this.#failures = 0
  }

  /** A connection failure or timeout (for transports that manage their own connections). */
  reportFailure(error: MemkitError): void {
    if (this.#closed) return
    this.#lastError = error
    this.#failures++
    if (!this.#down && this.#failures >= this.#options.failureLimit) this.#markDown(error)
  }

  send(command: Command): void {
    const unavailable = this.unavailable()
    if (unavailable) {
      command.fail(unavailable)
      return
    }
    const connection = this.#pick()
    if (connection.pending >= this.#options.maxPending) {
      command.fail(
        new OverloadedError(
          `${connection.pending} requests already waiting for ${this.label}; refusing more (maxPending)`,
          this.label,
        ),
      )
      return
    }
    connection.send(command)
  }

  #pick(): Connection {
    const slots = this.#connections
    const index = slots.length === 1 ? 0 : this.#next++ % slots.length
    let connection = slots[index]
    if (connection === undefined || !connection.usable) {
      connection = this.#open()
      slots[index] = connection
    }
    return connection
  }

  #open(): Connection {
    return new Connection(this.#connectionOptions(), { onReply: this.#onReply, onClose: this.#onClose })
  }

  #connectionOptions(): ConnectionOptions {
    return {
      host: this.config.host,
      port: this.config.port,
      label: this.config.label,
      connectTimeout: this.#options.connectTimeout,
      keepAlive: this.#options.keepAlive,
      tls: this.#options.tls,
      handshake: this.#options.handshake,
      nudge: this.#options.nudge,
      maxValueBytes: this.#options.maxItemSize,
    }
  }

  readonly #onReply = (): void => {
    if (this.#failures !== 0) this.#failures = 0
  }

  readonly #onClose = (connection: Connection, error: MemkitError | undefined): void => {
    const slot = this.#connections.indexOf(connection)
    if (slot !== -1) this.#connections[slot] = undefined
    if (error !== undefined) this.reportFailure(error)
  }

  #markDown(error: MemkitError): void {
    this.#down = true
    this.#downSince = Date.now()
    for (const connection of this.#connections) connection?.destroy(error)
    this.#connections.fill(undefined)
    this.#events.onDown(this, error)
    this.#scheduleProbe()
  }

  #scheduleProbe(): void {
    clearTimeout(this.#probeTimer)
    this.#probeTimer = setTimeout(() => void this.#probe(), this.#options.deadTimeout)
    this.#probeTimer.unref()
  }

  async #probe(): Promise<void> {
    if (this.#closed || !this.#down) return
    const flush = this.#options.flushOnRejoin
    try {
      await this.#options.probe(flush)
    } catch (error) {
      // Not back, or it could not be emptied (e.g. memcached -F forbids flush_all): it stays down
      // rather than serve what may be stale.
      this.#lastError = error as MemkitError
      if (!this.#closed) this.#scheduleProbe()
      return
    }
    if (this.#closed) return
    this.#down = false
    this.#failures = 0
    this.#events.onUp(this, flush)
  }

  /** Sends `commands` on a fresh connection (not one of the pool's) and waits for every answer. */
  readonly probeConnection = async (commands: Command[]): Promise<void> => {
    const connection = new Connection(this.#connectionOptions(), { onReply: () => {}, onClose: () => {} })
    const deadline = Date.now() + this.#options.connectTimeout
    for (const command of commands) {
      command.deadline = deadline
      connection.send(command)
    }
    try {
      await Promise.all(commands.map((command) => command.promise))
    } finally {
      connection.close()
    }
  }

  /** How long the server has been down, in ms (0 when up). */
  downFor(now = Date.now()): number {
    return this.#down ? now - this.#downSince : 0
  }

  /** Closes connections once their in-flight commands are answered (or time out). */
  close(): void {
    this.#closed = true
    clearTimeout(this.#probeTimer)
    for (const connection of this.#connections) connection?.close()
  }

  /** Closes at once, failing whatever is in flight. */
  destroy(error: MemkitError): void {
    this.#closed = true
    clearTimeout(this.#probeTimer)
    for (const connection of this.#connections) connection?.destroy(error)
  }
}
