import {
  AuthError,
  type MemkitError,
  NotNumericError,
  NotSupportedError,
  ProtocolError,
  ServerError,
  ValueTooLargeError,
} from './errors.js'

/** What a command's reply handler tells the connection after each line or data block. */
export const DONE = -1
/** The reply continues with another line. */
export const MORE = -2
/** The reply is malformed: the connection must be reset (its stream position is unknowable). */
export const FATAL = -3
// Any value >= 0 means: a data block of that many bytes (plus CRLF) follows.

/** What a failure hook may look at and change to send a command again. */
export interface RetryTarget {
  retriesLeft: number
  reroutesLeft: number
  readonly deadline: number
  route: unknown
  reset(): void
}

/** Bytes to write for a command: protocol text (latin1) and, for large values, Buffers. */
export type OutPart = string | Buffer

/**
 * One request on the wire and the parser of its reply. Replies arrive in request order, so
 * the connection hands each line to the oldest command until it reports DONE.
 */
export abstract class Command<T = unknown> {
  /** Command name for errors and metrics (`get`, `set`, `incr`...). */
  abstract readonly name: string
  /** Absolute time (ms) by which the reply must have arrived; 0 until its clock starts. */
  deadline = 0
  /**
   * The operation's timeout in ms, when it has one: its clock starts when its bytes are first
   * written (the deadline becomes `timeout` from then, and this is cleared), so a request that
   * waited for a blocked event loop before it left the process is not charged for that wait.
   */
  timeout = 0
  /** `"host:port"` of the server it was sent to. */
  server = ''
  /** Retries left; only idempotent commands get any. */
  retriesLeft = 0
  /** Behind proxies: how many other proxies a command that was never sent may try. */
  reroutesLeft = 0
  /** Set when a handler returns FATAL: the error for this command. */
  fatalError: MemkitError | undefined
  /** Where the dispatcher sent it (a server node), so a retry can go back there. */
  route: unknown
  /** Lets the dispatcher retry or reroute a failed command instead of rejecting it. */
  onFailure: ((command: RetryTarget, error: MemkitError) => boolean) | undefined
  settled = false
  /** For multi-key reads: keys asked and found (reported to diagnostics subscribers). */
  keyCount = 0
  hitCount = 0
  readonly promise: Promise<T>
  // Typed loosely so a Command<string> can travel as a Command<unknown>; `resolve(value: T)` keeps callers honest.
  #resolve!: (value: unknown) => void
  #reject!: (error: unknown) => void

  constructor(
    /** The request bytes. */
    readonly out: OutPart | OutPart[],
  ) {
    this.promise = new Promise<T>((resolve, reject) => {
      this.#resolve = resolve as (value: unknown) => void
      this.#reject = reject
    })
  }

  abstract onLine(line: string): number

  /**
   * The same, given the line as bytes of the socket's buffer (`line[start, end)`, without CRLF).
   * Commands that parse bytes themselves define it, and the connection then never turns their
   * reply lines into strings.
   */
  onLineBytes?(line: Buffer, start: number, end: number): number

  onData(_data: Buffer): number {
    return this.protocolError('a data block where none was expected')
  }

  /** Clears partial reply state before the command is sent again. */
  reset(): void {}

  resolve(value: T): void {
    if (this.settled) return
    this.settled = true
    this.#resolve(value)
  }

  /** Fails the command, unless `onFailure` takes it (e.g. to retry it elsewhere). */
  fail(error: MemkitError): void {
    if (this.settled) return
    if (this.onFailure?.(this, error)) return
    this.settled = true
    this.#reject(error)
  }

  /** Marks the reply as malformed; the connection resets after this. */
  protocolError(detail: string): number {
    this.fatalError = new ProtocolError(
      `malformed reply from ${this.server} to ${this.name}: ${detail}`,
      this.server,
    )
    return FATAL
  }

  /**
   * Handles the error replies every command can get. SERVER_ERROR keeps the stream in step;
   * a CLIENT_ERROR or ERROR may be followed by further replies to bytes the server misread,
   * so apart from the known in-step cases it resets the connection.
   */
  errorLine(line: string): number {
    if (line.startsWith('SERVER_ERROR')) {
      const message = line.slice(13)
      if (/too large/i.test(message)) {
        this.fail(new ValueTooLargeError(`${this.server} refused the value: ${message}`, -1, -1))
      } else {
        this.fail(
          new ServerError(`${this.server} answered ${this.name} with SERVER_ERROR ${message}`, this.server),
        )
      }
      return DONE
    }
    if (line.startsWith('CLIENT_ERROR')) {
      const message = line.slice(13)
      if (message.startsWith('unauthenticated')) {
        this.fatalError = new AuthError(
          `${this.server} requires authentication (memcached -Y); pass auth: { username, password }`,
          this.server,
        )
        return FATAL
      }
      if (/non-numeric/.test(message)) {
        this.fail(
          new NotNumericError(`cannot ${this.name} a value that is not a decimal number`, this.server),
        )
        return DONE
      }
      this.fatalError = new ProtocolError(
        `${this.server} answered ${this.name} with CLIENT_ERROR ${message}`,
        this.server,
      )
      return FATAL
    }
    if (line === 'ERROR') {
      this.fatalError = new NotSupportedError(
        `${this.server} does not understand ${this.name} (ERROR); memkit's default transport needs memcached >= 1.6 (meta commands)`,
      )
      return FATAL
    }
    return this.protocolError(`unexpected line ${JSON.stringify(line.slice(0, 80))}`)
  }
}
