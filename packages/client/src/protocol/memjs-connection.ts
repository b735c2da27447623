import { commandChannel } from '../diagnostics.js'
import {
  AuthError,
  ConnectionError,
  InvalidOptionError,
  type MemkitError,
  NotNumericError,
  NotSupportedError,
  ProtocolError,
  ServerError,
  TimeoutError,
  ValueTooLargeError,
} from '../errors.js'
import type { ServerHealth } from '../transport.js'

// The binary protocol through memjs (an optional peer dependency, loaded on first use), for
// servers that require SASL (`memcached -S` forces the binary protocol). memjs brings the
// socket, SASL PLAIN and its request timeouts; memkit builds the requests itself on memjs's
// Server, so that CAS, exact 64-bit counters, conditional delete and get-and-touch work,
// which memjs's own Client does not offer, and places keys with its own ketama.

export const Opcode = {
  GET: 0x00,
  SET: 0x01,
  ADD: 0x02,
  REPLACE: 0x03,
  DELETE: 0x04,
  INCREMENT: 0x05,
  DECREMENT: 0x06,
  FLUSH: 0x08,
  VERSION: 0x0b,
  APPEND: 0x0e,
  PREPEND: 0x0f,
  STAT: 0x10,
  TOUCH: 0x1c,
  GAT: 0x1d,
} as const

export const Status = {
  OK: 0x0000,
  NOT_FOUND: 0x0001,
  EXISTS: 0x0002,
  TOO_LARGE: 0x0003,
  INVALID_ARGUMENTS: 0x0004,
  NOT_STORED: 0x0005,
  NON_NUMERIC: 0x0006,
  AUTH_ERROR: 0x0020,
  UNKNOWN_COMMAND: 0x0081,
  OUT_OF_MEMORY: 0x0082,
} as const

export interface MemjsResponse {
  header: { opcode: number; status: number; cas: Buffer; opaque: number; totalBodyLength: number }
  key: Buffer
  extras: Buffer
  val: Buffer
}

interface MemjsServer {
  onResponse(seq: number, fn: ((response: MemjsResponse) => void) & { quiet?: boolean }): void
  onError(seq: number, fn: (error: unknown) => void): void
  write(buffer: Buffer): void
  close(): void
  responseCallbacks: Record<number, unknown>
  errorCallbacks: Record<number, unknown>
}

interface MemjsModule {
  Server: new (
    host: string,
    port: number,
    username: string | undefined,
    password: string | undefined,
    options: Record<string, unknown>,
  ) => MemjsServer
}

let memjsModule: Promise<MemjsModule> | undefined

function loadMemjs(): Promise<MemjsModule> {
  memjsModule ??= import('memjs').then(
    (mod) => ((mod as { default?: MemjsModule }).default ?? mod) as MemjsModule,
    () => {
      memjsModule = undefined
      throw new InvalidOptionError("protocol 'binary' needs the memjs package: npm install memjs")
    },
  )
  return memjsModule
}

let sequence = 0
function nextSequence(): number {
  sequence = (sequence + 1) >>> 0
  return sequence
}

export interface MemjsConnectionOptions {
  host: string
  port: number
  /** The server's health (its ServerNode): consulted before sending, fed with every outcome. */
  health: ServerHealth
  /** The owning client, named in diagnostics events. */
  client: object
  timeout: number
  connectTimeout: number
  keepAlive: number | false
  auth: { username: string; password: string } | undefined
  /** The item size limit: a response announcing a larger body is a protocol error. */
  maxItemSize: number
}

/** A request waiting for this turn's write: its bytes, and what to do once they are written or not. */
interface Queued {
  buffer: Buffer
  /** Starts the request's clock: it runs from the moment its bytes are written. */
  written(): void
  /** The connection was closed before the write: the request fails at once. */
  dropped(): void
}

/** One server reached through a memjs Server; feeds the server's health like a connection does. */
export class MemjsConnection {
  #server: MemjsServer | undefined
  /**
   * Requests of one event-loop turn, written together in the check phase (as the text
   * transports do): memjs leaves Nagle's algorithm on, so two separate writes in one turn made
   * the second wait for the first one's reply (two round trips for one pipelined pair).
   */
  #queue: Queued[] = []
  #queuedFor: MemjsServer | undefined

  constructor(private readonly options: MemjsConnectionOptions) {}

  get label(): string {
    return this.options.health.label
  }

  async #connection(): Promise<MemjsServer> {
    if (this.#server) return this.#server
    const memjs = await loadMemjs()
    this.#server ??= new memjs.Server(
      this.options.host,
      this.options.port,
      this.options.auth?.username,
      this.options.auth?.password,
      {
        // memjs's own timeout fires from its socket's idle timer, which after a blocked event loop
        // runs before the reply waiting in the socket is read. memkit times requests itself (see
        // request()), so memjs's is only a backstop that drops a dead socket.
        timeout: Math.max(this.options.timeout * 20, 30_000) / 1000,
        conntimeout: this.options.connectTimeout / 1000,
        keepAlive: this.options.keepAlive !== false,
        keepAliveDelay: (this.options.keepAlive || 30_000) / 1000,
      },
    )
    this.#bound(this.#server)
    return this.#server
  }

  /**
   * memjs collects a response until its announced body length has arrived, however large that
   * is. Before each chunk is added, the response at the head of its buffer is checked: one that
   * announces more than the item size limit (plus the header and extras) closes the connection
   * with a ProtocolError instead of being buffered.
   */
  #bound(server: MemjsServer & { responseBuffer?: Buffer; responseHandler?: (chunk: Buffer) => void }): void {
    const original = server.responseHandler
    if (typeof original !== 'function' || (original as { bounded?: boolean }).bounded) return
    const limit = this.options.maxItemSize + 1024
    const label = this.options.health.label
    const bounded = function (this: typeof server, chunk: Buffer): void {
      const pending = this.responseBuffer ?? Buffer.alloc(0)
      const head = pending.length >= 12 ? pending : Buffer.concat([pending, chunk.subarray(0, 12)])
      if (head.length >= 12 && head.readUInt32BE(8) > limit) {
        const size = head.readUInt32BE(8)
        ;(this as unknown as { error(error: unknown): void }).error(
          new ProtocolError(
            `malformed reply from ${label}: announces a body of ${size} bytes, over the item size limit of ${limit - 1024} (maxItemSize)`,
            label,
          ),
        )
        return
      }
      original.call(this, chunk)
    }
    server.responseHandler = Object.assign(bounded, { bounded: true })
  }

  /**
   * Sends one request and resolves with its response(s). `multi` collects responses until one
   * with an empty body (STAT). Settles within the timeout even if memjs would not.
   */
  async request(
    name: string,
    opcode: number,
    key: Buffer,
    extras: Buffer,
    value: Buffer,
    options: { cas?: string; multi?: boolean; probe?: boolean } = {},
  ): Promise<MemjsResponse[]> {
    const unavailable = options.probe ? undefined : this.options.health.unavailable()
    if (unavailable) throw unavailable
    const server = await this.#connection()
    const seq = nextSequence()
    const label = this.options.health.label
    const buffer = Buffer.alloc(24 + extras.length + key.length + value.length)
    buffer.writeUInt8(0x80, 0)
    buffer.writeUInt8(opcode, 1)
    buffer.writeUInt16BE(key.length, 2)
    buffer.writeUInt8(extras.length, 4)
    buffer.writeUInt32BE(extras.length + key.length + value.length, 8)
    buffer.writeUInt32BE(seq, 12)
    if (options.cas !== undefined) buffer.writeBigUInt64BE(BigInt(options.cas), 16)
    extras.copy(buffer, 24)
    key.copy(buffer, 24 + extras.length)
    value.copy(buffer, 24 + extras.length + key.length)

    const started = commandChannel.hasSubscribers ? performance.now() : 0
    return new Promise<MemjsResponse[]>((resolve, reject) => {
      const responses: MemjsResponse[] = []
      let settled = false
      const finish = (error: MemkitError | undefined) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        if (started && !options.probe) {
          const event: Record<string, unknown> = {
            client: this.options.client,
            command: name,
            server: label,
            duration: performance.now() - started,
          }
          if (error) event.error = error
          else if (opcode === Opcode.GET || opcode === Opcode.GAT)
            event.hit = responses[0]?.header.status === Status.OK
          commandChannel.publish(event)
        }
        delete server.responseCallbacks[seq]
        delete server.errorCallbacks[seq]
        if (error) {
          if (!(error instanceof AuthError) || !options.probe) this.options.health.reportFailure(error)
          reject(error)
        } else {
          this.options.health.reportSuccess()
          resolve(responses)
        }
      }
      // Timers run before sockets are read: after a blocked event loop, the reply may be waiting
      // unread. Judge after the poll phase (setImmediate), when memjs has delivered it.
      let timer: NodeJS.Timeout | undefined
      const onResponse = Object.assign(
        (response: MemjsResponse) => {
          if (response.header.status === Status.AUTH_ERROR) {
            finish(new AuthError(`${label} refused the SASL credentials`, label))
            return
          }
          if (options.multi && response.header.totalBodyLength !== 0) {
            responses.push(response)
            return
          }
          responses.push(response)
          finish(undefined)
        },
        { quiet: options.multi === true },
      )
      server.onResponse(seq, onResponse)
      server.onError(seq, (cause) => finish(mapMemjsError(cause, label, name)))
      this.#enqueue(server, {
        buffer,
        written: () => {
          if (settled) return
          timer = setTimeout(
            () =>
              setImmediate(() =>
                finish(new TimeoutError(`${name} on ${label} timed out (binary protocol)`, label)),
              ),
            this.options.timeout,
          )
        },
        dropped: () =>
          finish(new ConnectionError(`connection to ${label} was closed before ${name} was sent`, label)),
      })
    })
  }

  #enqueue(server: MemjsServer, request: Queued): void {
    if (this.#queuedFor !== server) this.#flush()
    this.#queuedFor = server
    this.#queue.push(request)
    if (this.#queue.length === 1) setImmediate(this.#flush)
  }

  readonly #flush = (): void => {
    const queue = this.#queue
    const server = this.#queuedFor
    if (queue.length === 0 || server === undefined) return
    this.#queue = []
    this.#queuedFor = undefined
    if (server !== this.#server) {
      // close() came first: writing now would open a new socket for a closed client.
      for (const request of queue) request.dropped()
      return
    }
    server.write(queue.length === 1 ? queue[0]!.buffer : Buffer.concat(queue.map((r) => r.buffer)))
    for (const request of queue) request.written()
  }

  /** Used while the server is marked down, to see whether it is back (and to empty it on rejoin). */
  async probe(flush: boolean): Promise<void> {
    const empty = Buffer.alloc(0)
    await this.request('version', Opcode.VERSION, empty, empty, empty, { probe: true })
    if (!flush) return
    const [response] = await this.request('flush', Opcode.FLUSH, empty, empty, empty, { probe: true })
    if (response!.header.status !== Status.OK)
      throw statusError(response!, 'flush', this.options.health.label)
  }

  close(): void {
    this.#server?.close()
    this.#server = undefined
    this.#flush()
  }
}

/** memjs reports failures as Errors or as bare strings; give them memkit's types. */
function mapMemjsError(cause: unknown, label: string, name: string): MemkitError {
  if (cause instanceof ProtocolError) return cause
  const message = typeof cause === 'string' ? cause : cause instanceof Error ? cause.message : String(cause)
  const code = (cause as NodeJS.ErrnoException | undefined)?.code
  if (/authentication failed/i.test(message)) {
    return new AuthError(`${label} refused the SASL credentials (${message})`, label)
  }
  if (/timed out waiting/i.test(message))
    return new TimeoutError(`${name} on ${label} timed out (binary protocol)`, label)
  const error = new ConnectionError(`connection to ${label} failed: ${code ?? message}`, label, { cause })
  error.connecting = code === 'ECONNREFUSED' || /connecting/i.test(message)
  return error
}

/** A memcached binary-protocol status as memkit's typed error. */
export function statusError(response: MemjsResponse, name: string, label: string): MemkitError {
  switch (response.header.status) {
    case Status.TOO_LARGE:
      return new ValueTooLargeError(`${label} refused the value: too large`, -1, -1)
    case Status.NON_NUMERIC:
      return new NotNumericError(`cannot ${name} a value that is not a decimal number`, label)
    case Status.OUT_OF_MEMORY:
      return new ServerError(`${label} is out of memory`, label)
    case Status.UNKNOWN_COMMAND:
      return new NotSupportedError(`${label} does not support binary ${name}`)
    case Status.AUTH_ERROR:
      return new AuthError(`${label} refused the SASL credentials`, label)
    default:
      return new ProtocolError(
        `${label} answered ${name} with status 0x${response.header.status.toString(16)}`,
        label,
      )
  }
}
