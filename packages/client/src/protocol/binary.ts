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
import type { EncodedKey } from '../keys.js'
import type { ServerNode } from '../server-node.js'
import { decodeItem, type ItemDecoder } from './item-decoder.js'
import type { ArithRequest, ArithResult, Protocol, StoredItem, StoreMode } from './protocol.js'

// The binary protocol through memjs (an optional peer dependency, loaded on first use), for
// servers that require SASL (`memcached -S` forces the binary protocol). memjs brings the
// socket, SASL PLAIN and its request timeouts; memkit builds the requests itself on memjs's
// Server, so that CAS, exact 64-bit counters, conditional delete and get-and-touch work,
// which memjs's own Client does not offer, and places keys with its own ketama.

const Opcode = {
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

const Status = {
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

interface MemjsResponse {
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

export interface BinaryTargetOptions {
  /** The owning client, named in diagnostics events. */
  client: object
  timeout: number
  connectTimeout: number
  keepAlive: number | false
  auth: { username: string; password: string } | undefined
  /** The item size limit: a response announcing a larger body is a protocol error. */
  maxItemSize: number
}

/** One server reached through a memjs Server; feeds the node's health like a connection does. */
export class BinaryTarget {
  #server: MemjsServer | undefined

  constructor(
    readonly node: ServerNode,
    private readonly options: BinaryTargetOptions,
  ) {}

  async #connection(): Promise<MemjsServer> {
    if (this.#server) return this.#server
    const memjs = await loadMemjs()
    this.#server ??= new memjs.Server(
      this.node.config.host,
      this.node.config.port,
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
    const label = this.node.label
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
    const unavailable = options.probe ? undefined : this.node.unavailable()
    if (unavailable) throw unavailable
    const server = await this.#connection()
    const seq = nextSequence()
    const label = this.node.label
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
          if (!(error instanceof AuthError) || !options.probe) this.node.reportFailure(error)
          reject(error)
        } else {
          this.node.reportSuccess()
          resolve(responses)
        }
      }
      // Timers run before sockets are read: after a blocked event loop, the reply may be waiting
      // unread. Judge after the poll phase (setImmediate), when memjs has delivered it.
      const timer = setTimeout(
        () =>
          setImmediate(() =>
            finish(new TimeoutError(`${name} on ${label} timed out (binary protocol)`, label)),
          ),
        this.options.timeout,
      )
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
      server.write(buffer)
    })
  }

  /** Used while the server is marked down, to see whether it is back (and to empty it on rejoin). */
  async probe(flush: boolean): Promise<void> {
    const empty = Buffer.alloc(0)
    await this.request('version', Opcode.VERSION, empty, empty, empty, { probe: true })
    if (!flush) return
    const [response] = await this.request('flush', Opcode.FLUSH, empty, empty, empty, { probe: true })
    if (response!.header.status !== Status.OK) throw statusError(response!, 'flush', this.node.label)
  }

  close(): void {
    this.#server?.close()
    this.#server = undefined
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

function statusError(response: MemjsResponse, name: string, label: string): MemkitError {
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

const EMPTY = Buffer.alloc(0)

function keyBytes(key: EncodedKey): Buffer {
  return Buffer.from(key.wire, 'latin1')
}

function expiration(exptime: number): Buffer {
  const buffer = Buffer.alloc(4)
  buffer.writeUInt32BE(exptime >>> 0, 0)
  return buffer
}

function casOf(response: MemjsResponse): string {
  return response.header.cas.readBigUInt64BE(0).toString()
}

export class BinaryProtocol implements Protocol<BinaryTarget> {
  readonly name = 'binary' as const
  readonly base64Keys = false
  readonly conditionalDelete = true
  readonly remainingTtl = false

  async get(target: BinaryTarget, key: EncodedKey, decoder: ItemDecoder): Promise<unknown> {
    return (await this.#read(target, 'get', Opcode.GET, key, EMPTY, decoder))?.value
  }

  async gets(target: BinaryTarget, key: EncodedKey, decoder: ItemDecoder): Promise<StoredItem | undefined> {
    return this.#read(target, 'gets', Opcode.GET, key, EMPTY, decoder)
  }

  async getAndTouch(
    target: BinaryTarget,
    key: EncodedKey,
    exptime: number,
    decoder: ItemDecoder,
  ): Promise<StoredItem | undefined> {
    return this.#read(target, 'getAndTouch', Opcode.GAT, key, expiration(exptime), decoder)
  }

  /** memjs has no multi-get: one request per key, all in flight at once on the same socket. */
  async getMany(
    target: BinaryTarget,
    keys: EncodedKey[],
    decoder: ItemDecoder,
    into: Map<string, unknown>,
  ): Promise<void> {
    const items = await Promise.all(
      keys.map((key) => this.#read(target, 'getMany', Opcode.GET, key, EMPTY, decoder)),
    )
    items.forEach((item, i) => {
      if (item !== undefined) into.set(keys[i]!.key, item.value)
    })
  }

  async #read(
    target: BinaryTarget,
    name: string,
    opcode: number,
    key: EncodedKey,
    extras: Buffer,
    decoder: ItemDecoder,
  ): Promise<StoredItem | undefined> {
    const [response] = await target.request(name, opcode, keyBytes(key), extras, EMPTY)
    if (response!.header.status === Status.NOT_FOUND) return undefined
    if (response!.header.status !== Status.OK) throw statusError(response!, name, target.node.label)
    const flags = response!.extras.length >= 4 ? response!.extras.readUInt32BE(0) : 0
    const decoded = decodeItem(decoder, key.key, Buffer.from(response!.val), flags)
    if (!decoded.ok) {
      if (decoded.error) throw decoded.error
      return undefined
    }
    return { value: decoded.value, cas: casOf(response!) }
  }

  async store(
    target: BinaryTarget,
    mode: StoreMode,
    key: EncodedKey,
    data: Buffer,
    flags: number,
    exptime: number,
    cas?: string,
  ): Promise<boolean> {
    const opcode = {
      set: Opcode.SET,
      cas: Opcode.SET,
      add: Opcode.ADD,
      replace: Opcode.REPLACE,
      append: Opcode.APPEND,
      prepend: Opcode.PREPEND,
    }[mode]
    let extras = EMPTY
    if (mode !== 'append' && mode !== 'prepend') {
      extras = Buffer.alloc(8)
      extras.writeUInt32BE(flags >>> 0, 0)
      extras.writeUInt32BE(exptime >>> 0, 4)
    }
    const [response] = await target.request(mode, opcode, keyBytes(key), extras, data, { cas })
    const status = response!.header.status
    if (status === Status.OK) return true
    if (status === Status.NOT_FOUND || status === Status.EXISTS || status === Status.NOT_STORED) return false
    throw statusError(response!, mode, target.node.label)
  }

  delete(target: BinaryTarget, key: EncodedKey): Promise<boolean> {
    return this.#deleteWith(target, key, undefined)
  }

  /** Binary DELETE honours the CAS in the request header: an atomic compare-and-delete. */
  deleteIfUnchanged(target: BinaryTarget, key: EncodedKey, cas: string): Promise<boolean> {
    return this.#deleteWith(target, key, cas)
  }

  async #deleteWith(target: BinaryTarget, key: EncodedKey, cas: string | undefined): Promise<boolean> {
    const [response] = await target.request('delete', Opcode.DELETE, keyBytes(key), EMPTY, EMPTY, { cas })
    const status = response!.header.status
    if (status === Status.OK) return true
    if (status === Status.NOT_FOUND || status === Status.EXISTS) return false
    throw statusError(response!, 'delete', target.node.label)
  }

  async touch(target: BinaryTarget, key: EncodedKey, exptime: number): Promise<boolean> {
    const [response] = await target.request('touch', Opcode.TOUCH, keyBytes(key), expiration(exptime), EMPTY)
    if (response!.header.status === Status.OK) return true
    if (response!.header.status === Status.NOT_FOUND) return false
    throw statusError(response!, 'touch', target.node.label)
  }

  /** Exact unsigned 64-bit counters (memjs's own increment reads only the low 32 bits). */
  async arith(target: BinaryTarget, request: ArithRequest): Promise<ArithResult | undefined> {
    if (request.withTtl) {
      throw new NotSupportedError(
        "the binary protocol cannot report a counter's remaining TTL; use protocol 'meta' (or track the window yourself)",
      )
    }
    const extras = Buffer.alloc(20)
    extras.writeBigUInt64BE(request.delta, 0)
    extras.writeBigUInt64BE(request.initial ?? 0n, 8)
    // 0xffffffff: fail with NOT_FOUND instead of creating the counter
    extras.writeUInt32BE(request.initial === undefined ? 0xffffffff : request.exptime >>> 0, 16)
    const name = request.decrement ? 'decr' : 'incr'
    const opcode = request.decrement ? Opcode.DECREMENT : Opcode.INCREMENT
    const [response] = await target.request(name, opcode, keyBytes(request.key), extras, EMPTY)
    if (response!.header.status === Status.NOT_FOUND) return undefined
    if (response!.header.status !== Status.OK) throw statusError(response!, name, target.node.label)
    if (response!.val.length !== 8) {
      throw new ProtocolError(
        `${target.node.label} answered ${name} with ${response!.val.length} bytes`,
        target.node.label,
      )
    }
    return { value: response!.val.readBigUInt64BE(0).toString(), ttl: Number.NaN }
  }

  async version(target: BinaryTarget): Promise<string> {
    const [response] = await target.request('version', Opcode.VERSION, EMPTY, EMPTY, EMPTY)
    if (response!.header.status !== Status.OK) throw statusError(response!, 'version', target.node.label)
    return response!.val.toString()
  }

  async stats(target: BinaryTarget, group?: string): Promise<Record<string, string>> {
    const responses = await target.request('stats', Opcode.STAT, Buffer.from(group ?? ''), EMPTY, EMPTY, {
      multi: true,
    })
    const stats: Record<string, string> = {}
    for (const response of responses) {
      if (response.header.status !== Status.OK) throw statusError(response, 'stats', target.node.label)
      if (response.key.length > 0) stats[response.key.toString()] = response.val.toString()
    }
    return stats
  }

  async flush(target: BinaryTarget): Promise<void> {
    const [response] = await target.request('flush', Opcode.FLUSH, EMPTY, EMPTY, EMPTY)
    if (response!.header.status !== Status.OK) throw statusError(response!, 'flush', target.node.label)
  }
}
