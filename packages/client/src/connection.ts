import { connect as netConnect, type Socket } from 'node:net'
import { type ConnectionOptions as TlsOptions, connect as tlsConnect } from 'node:tls'
import { type Command, DONE, FATAL, MORE, type OutPart } from './command.js'
import { Deque } from './deque.js'
import { ConnectionError, type MemkitError, ProtocolError, TimeoutError } from './errors.js'

/** Protocol text longer than this without a newline is not memcached talking. */
const MAX_LINE_LENGTH = 64 * 1024
/**
 * Values at least this large are handed to the socket as they are (one writev with the text
 * around them); smaller ones are copied once into a single buffer with the command text.
 */
const WRITEV_LIMIT = 1024

export interface ConnectionOptions {
  host: string
  port: number
  label: string
  connectTimeout: number
  keepAlive: number | false
  tls: TlsOptions | undefined
  /** Commands sent before anything else on a new connection (ASCII auth). */
  handshake?: () => Command[]
  /** A harmless command to send when a TLS connection stalls (see #onNudgeTimer). */
  nudge?: () => Command
  /** The largest data block a reply may announce (the item size limit); larger is a protocol error. */
  maxValueBytes: number
}

/** How long a TLS connection may stay silent with requests outstanding before it is nudged. */
const NUDGE_AFTER = 25

export interface ConnectionEvents {
  /** A reply arrived: the server is alive. */
  onReply(connection: Connection): void
  /** The connection is gone. `error` is set when it failed rather than being closed by us. */
  onClose(connection: Connection, error: MemkitError | undefined): void
}

/**
 * One socket to one server, pipelined: commands are written as soon as they are issued
 * (coalesced into one write per tick) and replies are matched to them in order.
 *
 * A request that misses its deadline resets the whole connection. That is deliberate: once a
 * reply is late, every reply behind it on this socket is suspect, and a reply that arrives
 * after its request gave up must never be read as the answer to a later request. Closing the
 * socket is the only way to guarantee that.
 */
export class Connection {
  readonly #options: ConnectionOptions
  readonly #events: ConnectionEvents
  readonly #socket: Socket
  readonly #queue = new Deque<Command>()

  // Outgoing bytes collected during this tick.
  #outText = ''
  #outChunks: OutPart[] = []
  /** Bytes of the Buffers in #outChunks, and whether one is large enough to be written uncopied. */
  #outBytes = 0
  #outLarge = false
  #flushScheduled = false

  // Reply parser state: -1 while reading lines, else the size of the data block awaited.
  #need = -1
  #rest: Buffer[] = []
  #restLength = 0

  /** Commands queued and not yet written (the tail of the queue). */
  #unwritten = 0
  /** Counts data events: whether anything arrived between two looks at the same request. */
  #received = 0

  #timer: NodeJS.Timeout | undefined
  #connectTimer: NodeJS.Timeout | undefined
  #nudgeTimer: NodeJS.Timeout | undefined
  #lastDataAt = 0
  #nudging = false
  #closing = false
  #closed = false
  #connected = false
  /** TCP is up (for TLS: the handshake may still fail). */
  #tcpConnected = false
  #referenced = true

  constructor(options: ConnectionOptions, events: ConnectionEvents) {
    this.#options = options
    this.#events = events
    const socket = options.tls
      ? tlsConnect({
          ...options.tls,
          host: options.host,
          port: options.port,
          servername: options.tls.servername ?? hostnameForSni(options.host),
        })
      : netConnect({ host: options.host, port: options.port })
    this.#socket = socket
    socket.setNoDelay(true)
    if (options.keepAlive !== false) socket.setKeepAlive(true, options.keepAlive)
    socket.on(options.tls ? 'secureConnect' : 'connect', this.#onConnect)
    socket.once('connect', () => {
      this.#tcpConnected = true
    })
    socket.on('data', this.#onData)
    socket.on('error', this.#onError)
    socket.on('close', this.#onSocketClose)
    this.#connectTimer = setTimeout(this.#onConnectTimeout, options.connectTimeout)
    this.#connectTimer.unref()
    this.#unref()
    for (const command of options.handshake?.() ?? []) {
      // Nobody awaits a handshake: its failure reaches callers through the commands queued
      // behind it (the connection fails them all), so its own rejection must not go unhandled.
      command.promise.catch(() => {})
      this.send(command)
    }
  }

  get label(): string {
    return this.#options.label
  }

  /** Commands sent and not yet answered. */
  get pending(): number {
    return this.#queue.length
  }

  /** False once the connection failed or was closed; a new one must be made. */
  get usable(): boolean {
    return !this.#closed && !this.#closing
  }

  get connected(): boolean {
    return this.#connected
  }

  send(command: Command): void {
    if (this.#closed) {
      command.fail(new ConnectionError(`connection to ${this.label} is closed`, this.label))
      return
    }
    command.server = this.#options.label
    this.#queue.push(command)
    this.#unwritten++
    this.#append(command.out)
    if (this.#queue.length === 1) {
      this.#ref()
      if (this.#timer === undefined) this.#armTimer(command.deadline || Date.now() + command.timeout)
      if (this.#options.tls && this.#options.nudge && this.#nudgeTimer === undefined) {
        this.#lastDataAt = Date.now()
        this.#armNudge()
      }
    }
    if (!this.#flushScheduled) {
      this.#flushScheduled = true
      // Written once the event loop has run everything it had ready (the check phase, after the
      // poll phase that delivered the HTTP requests): the commands of all requests that arrived
      // together leave in one write, at no cost in latency for a lone request.
      setImmediate(this.#onImmediate)
    }
  }

  /** Stops accepting commands and closes once the ones in flight are answered. */
  close(): void {
    if (this.#closed || this.#closing) return
    this.#closing = true
    if (this.#queue.length === 0) this.#socket.end()
  }

  /** Closes at once; every command in flight fails with `error` (or a connection error). */
  destroy(error?: MemkitError): void {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#timer)
    clearTimeout(this.#connectTimer)
    clearTimeout(this.#nudgeTimer)
    this.#socket.destroy()
    // The server's health is updated before the commands fail, so a retry they trigger sees
    // a server that has just been marked down and fails fast instead of trying it again.
    this.#events.onClose(this, error)
    this.#failAll(error)
  }

  #append(out: OutPart | OutPart[]): void {
    if (typeof out === 'string') {
      this.#outText += out
      return
    }
    if (Array.isArray(out)) {
      for (const part of out) this.#append(part)
      return
    }
    if (this.#outText) {
      this.#outChunks.push(this.#outText)
      this.#outText = ''
    }
    this.#outChunks.push(out)
    this.#outBytes += out.length
    if (out.length >= WRITEV_LIMIT) this.#outLarge = true
  }

  readonly #onImmediate = (): void => {
    this.#flushScheduled = false
    this.#flush()
  }

  readonly #flush = (): void => {
    if (this.#closed) return
    this.#startClocks()
    const socket = this.#socket
    const chunks = this.#outChunks
    if (chunks.length === 0) {
      if (this.#outText) socket.write(this.#outText, 'latin1')
    } else if (!this.#outLarge) {
      // Command text (latin1, a byte per character) and values, copied once into one write.
      let total = this.#outBytes + this.#outText.length
      for (const chunk of chunks) if (typeof chunk === 'string') total += chunk.length
      const joined = Buffer.allocUnsafe(total)
      let offset = 0
      for (const chunk of chunks) {
        if (typeof chunk === 'string') offset += joined.write(chunk, offset, 'latin1')
        else {
          joined.set(chunk, offset)
          offset += chunk.length
        }
      }
      if (this.#outText) joined.write(this.#outText, offset, 'latin1')
      socket.write(joined)
    } else {
      // Large values are not copied: the socket writes them from where they are (writev).
      socket.cork()
      for (const chunk of chunks) {
        if (typeof chunk === 'string') socket.write(chunk, 'latin1')
        else socket.write(chunk)
      }
      if (this.#outText) socket.write(this.#outText, 'latin1')
      socket.uncork()
    }
    if (chunks.length > 0) {
      this.#outChunks = []
      this.#outBytes = 0
      this.#outLarge = false
    }
    this.#outText = ''
  }

  // A request's timeout runs from when its bytes are written, not from when it was issued: if
  // the event loop was blocked in between (a long synchronous task right after the call), the
  // wait was the application's, not memcached's.
  #startClocks(): void {
    const queue = this.#queue
    const unwritten = this.#unwritten
    this.#unwritten = 0
    let now = 0
    for (let i = queue.length - unwritten; i < queue.length; i++) {
      const command = queue.at(i)!
      if (command.timeout === 0) continue
      now ||= Date.now()
      if (now + command.timeout > command.deadline) command.deadline = now + command.timeout
      // Once only: a retry on a fresh connection stays within the first deadline.
      command.timeout = 0
    }
  }

  // One timer per connection, armed for the oldest command's deadline. Replies come back in
  // order, so the oldest unanswered command is always the first to expire.
  #armTimer(deadline: number): void {
    this.#timer = setTimeout(this.#onTimer, Math.max(0, deadline - Date.now()))
    this.#timer.unref()
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined
    const head = this.#queue.peek()
    if (!head || this.#closed) return
    if (head.deadline > Date.now()) {
      this.#armTimer(head.deadline)
      return
    }
    // Timers run before the event loop reads sockets. After the loop was blocked (a long
    // synchronous task, a GC pause), the reply may be sitting unread in the socket: look again
    // once the poll phase has delivered what arrived, and only then call it a timeout.
    this.#confirmTimeout(head, this.#received)
  }

  #confirmTimeout(head: Command, received: number): void {
    setImmediate(() => {
      if (this.#closed || this.#timer !== undefined) return
      const current = this.#queue.peek()
      if (current === undefined) return
      const now = Date.now()
      if (current.deadline > now) {
        this.#armTimer(current.deadline)
        return
      }
      // Replies are still arriving: read on before judging (a stalled server sends nothing).
      if (current !== head || this.#received !== received) {
        this.#confirmTimeout(current, this.#received)
        return
      }
      const waited = now - current.deadline
      this.destroy(
        new TimeoutError(
          `${current.name} on ${this.label} timed out${this.#connected ? '' : ' while connecting'} (no reply within its timeout${waited > 50 ? `, ${waited} ms late` : ''})`,
          this.label,
        ),
      )
    })
  }

  // memcached 1.6's TLS can leave part of a large pipelined burst decrypted in its TLS buffer
  // without a socket event to make it read on: the server then waits for more bytes and the
  // requests time out. Observed here in about 1 of 15 bursts of 500 small requests. Any further
  // bytes wake it, so when a TLS connection has requests outstanding and has been silent for
  // NUDGE_AFTER ms, one harmless command is sent.
  #armNudge(): void {
    this.#nudgeTimer = setTimeout(this.#onNudgeTimer, NUDGE_AFTER)
    this.#nudgeTimer.unref()
  }

  readonly #onNudgeTimer = (): void => {
    this.#nudgeTimer = undefined
    if (this.#closed || this.#queue.length === 0) return
    if (this.#connected && !this.#nudging && Date.now() - this.#lastDataAt >= NUDGE_AFTER) {
      const nudge = this.#options.nudge!()
      nudge.deadline = Date.now() + NUDGE_AFTER * 40
      nudge.promise.then(
        () => {
          this.#nudging = false
        },
        () => {},
      )
      this.#nudging = true
      this.send(nudge)
    }
    this.#armNudge()
  }

  readonly #onConnect = (): void => {
    this.#connected = true
    clearTimeout(this.#connectTimer)
    this.#connectTimer = undefined
  }

  readonly #onConnectTimeout = (): void => {
    this.#connectTimer = undefined
    if (this.#connected || this.#closed) return
    // As for replies: after a blocked event loop, the connection may be up and not yet reported.
    setImmediate(this.#confirmConnectTimeout)
  }

  readonly #confirmConnectTimeout = (): void => {
    if (this.#connected || this.#closed) return
    const error = new ConnectionError(
      `could not connect to ${this.label} within ${this.#options.connectTimeout} ms`,
      this.label,
    )
    error.connecting = true
    this.destroy(error)
  }

  readonly #onError = (cause: Error): void => {
    if (this.#closed) return
    const code = (cause as NodeJS.ErrnoException).code ?? cause.message
    const error = this.#connected
      ? new ConnectionError(`connection to ${this.label} failed: ${code}`, this.label, { cause })
      : this.#options.tls && this.#tcpConnected
        ? new ConnectionError(
            `TLS handshake with ${this.label} failed: ${cause.message} (${code}); check tls.ca`,
            this.label,
            {
              cause,
            },
          )
        : new ConnectionError(`could not connect to ${this.label}: ${code}`, this.label, { cause })
    error.connecting = !this.#connected
    this.destroy(error)
  }

  readonly #onSocketClose = (): void => {
    if (this.#closed) return
    if (this.#closing && this.#queue.length === 0) {
      this.#closed = true
      clearTimeout(this.#timer)
      clearTimeout(this.#connectTimer)
      clearTimeout(this.#nudgeTimer)
      this.#events.onClose(this, undefined)
      return
    }
    this.destroy(new ConnectionError(`${this.label} closed the connection`, this.label))
  }

  #failAll(error: MemkitError | undefined): void {
    const commands = this.#queue.drain()
    const now = Date.now()
    for (let i = 0; i < commands.length; i++) {
      const command = commands[i]!
      let reason: MemkitError
      if (i === 0 && command.fatalError) reason = command.fatalError
      else if (error instanceof TimeoutError && command.deadline > now) {
        // Not its own timeout: it was queued behind one. Say so, and let it be retried.
        reason = new ConnectionError(
          `connection to ${this.label} was reset after an earlier request timed out`,
          this.label,
          { cause: error },
        )
      } else reason = error ?? new ConnectionError(`connection to ${this.label} closed`, this.label)
      command.reset()
      // Goes through the command's onFailure hook, which may retry it on another connection.
      command.fail(reason)
    }
  }

  #ref(): void {
    if (!this.#referenced) {
      this.#referenced = true
      this.#socket.ref()
    }
  }

  // An idle connection must not keep the process alive; one with requests in flight must.
  #unref(): void {
    if (this.#referenced) {
      this.#referenced = false
      this.#socket.unref()
    }
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#received++
    if (this.#nudgeTimer !== undefined) this.#lastDataAt = Date.now()
    let buffer: Buffer
    if (this.#restLength > 0) {
      // Waiting for a large data block: collect chunks until it is complete, then join once.
      if (this.#need >= 0 && this.#restLength + chunk.length < this.#need + 2) {
        this.#rest.push(chunk)
        this.#restLength += chunk.length
        return
      }
      this.#rest.push(chunk)
      buffer = Buffer.concat(this.#rest, this.#restLength + chunk.length)
      this.#rest = []
      this.#restLength = 0
    } else {
      buffer = chunk
    }

    const length = buffer.length
    let position = 0
    while (position < length) {
      const head = this.#queue.peek()
      if (head === undefined) {
        this.destroy(new ProtocolError(`${this.label} sent data nobody asked for`, this.label))
        return
      }
      let next: number
      if (this.#need >= 0) {
        const end = position + this.#need
        if (end + 2 > length) break
        if (buffer[end] !== 13 || buffer[end + 1] !== 10) {
          head.protocolError('data block not terminated by CRLF')
          this.destroy(head.fatalError)
          return
        }
        const data = buffer.subarray(position, end)
        position = end + 2
        this.#need = -1
        next = head.onData(data)
      } else {
        const newline = buffer.indexOf(10, position)
        if (newline === -1) {
          if (length - position > MAX_LINE_LENGTH) {
            head.protocolError('reply line too long')
            this.destroy(head.fatalError)
            return
          }
          break
        }
        const end = newline > position && buffer[newline - 1] === 13 ? newline - 1 : newline
        const start = position
        position = newline + 1
        next =
          head.onLineBytes !== undefined
            ? head.onLineBytes(buffer, start, end)
            : head.onLine(buffer.toString('latin1', start, end))
      }

      if (next === DONE) {
        this.#queue.shift()
        this.#events.onReply(this)
        if (this.#queue.length === 0) {
          this.#unref()
          if (this.#closing) this.#socket.end()
        }
      } else if (next >= 0) {
        // A hostile or broken server (or a man in the middle on plain TCP) must not make the
        // client buffer hundreds of MiB: no item can be larger than the item size limit.
        if (next > this.#options.maxValueBytes) {
          head.protocolError(
            `announces a value of ${next} bytes, over the item size limit of ${this.#options.maxValueBytes} (maxItemSize)`,
          )
          this.destroy(head.fatalError)
          return
        }
        this.#need = next
      } else if (next === FATAL) {
        this.destroy(head.fatalError)
        return
      } else if (next !== MORE) {
        this.destroy(new ProtocolError(`internal: bad parser state ${next}`, this.label))
        return
      }
    }
    if (position < length) {
      this.#rest.push(position === 0 ? buffer : buffer.subarray(position))
      this.#restLength = length - position
    }
  }
}

/** SNI must be a hostname, never an IP address. */
function hostnameForSni(host: string): string | undefined {
  return /^[\d.]+$/.test(host) || host.includes(':') ? undefined : host
}
