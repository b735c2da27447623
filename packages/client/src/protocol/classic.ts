import { Command, DONE, MORE } from '../command.js'
import { NotSupportedError } from '../errors.js'
import type { EncodedKey } from '../keys.js'
import {
  type ArithRequest,
  type ArithResult,
  type Dispatch,
  PlainTransport,
  type ProbeConnection,
  type StoredItem,
  type StoreMode,
  type Transport,
  type TransportKind,
} from '../transport.js'
import { decodeItem, type ItemDecoder } from './item-decoder.js'
import { FlushCommand, StatsCommand, VersionCommand } from './text-commands.js'

// The classic text protocol: only the commands twemproxy and mcrouter forward (get, gets,
// set, add, replace, append, prepend, cas, delete, incr, decr, touch, version). Nothing here
// ever sends a meta or binary command, gat, or (behind a proxy) stats or flush_all: twemproxy
// closes the connection on any of them, failing every request in flight.

/** Largest number of keys in one classic multi-get line. */
const MULTI_GET_BATCH = 100

/** `get` / `gets` for one key: VALUE <key> <flags> <bytes> [<cas>], data, END. */
class ClassicGetCommand<T> extends Command<T> {
  readonly name: string
  #flags = 0
  #cas = ''
  #value: unknown
  #found = false

  constructor(
    private readonly key: EncodedKey,
    private readonly decoder: ItemDecoder,
    private readonly withCas: boolean,
  ) {
    super(`${withCas ? 'gets' : 'get'} ${key.wire}\r\n`)
    this.name = withCas ? 'gets' : 'get'
  }

  override reset(): void {
    this.#found = false
    this.#value = undefined
  }

  onLine(line: string): number {
    if (line === 'END') {
      if (!this.#found) this.resolve(undefined as T)
      else if (this.withCas) this.resolve({ value: this.#value, cas: this.#cas } as T)
      else this.resolve(this.#value as T)
      return DONE
    }
    if (line.startsWith('VALUE ')) {
      const parts = line.split(' ')
      if (parts[1] !== this.key.wire)
        return this.protocolError(`a value for ${JSON.stringify(parts[1])} where ${this.key.key} was asked`)
      const size = Number(parts[3])
      this.#flags = Number(parts[2])
      if (!Number.isInteger(size) || size < 0 || !Number.isInteger(this.#flags))
        return this.protocolError(`bad ${line}`)
      if (this.withCas) {
        if (!/^\d+$/.test(parts[4] ?? '')) return this.protocolError(`no cas in ${line}`)
        this.#cas = parts[4]!
      }
      return size
    }
    return this.errorLine(line)
  }

  override onData(data: Buffer): number {
    const decoded = decodeItem(this.decoder, this.key.key, data, this.#flags)
    if (decoded.ok) {
      this.#found = true
      this.#value = decoded.value
    } else if (decoded.error) {
      this.fail(decoded.error)
    }
    return MORE
  }
}

/** `get k1 k2 ...`: every hit as a VALUE block, then END. */
class ClassicMultiGetCommand extends Command<void> {
  readonly name = 'getMany'
  #current: EncodedKey | undefined
  #flags = 0
  readonly #byWire: Map<string, EncodedKey>

  constructor(
    keys: EncodedKey[],
    private readonly decoder: ItemDecoder,
    private readonly into: Map<string, unknown>,
  ) {
    super(`get ${keys.map((k) => k.wire).join(' ')}\r\n`)
    this.#byWire = new Map(keys.map((k) => [k.wire, k]))
    this.keyCount = keys.length
  }

  override reset(): void {
    this.hitCount = 0
  }

  onLine(line: string): number {
    if (line === 'END') {
      this.resolve()
      return DONE
    }
    if (line.startsWith('VALUE ')) {
      const parts = line.split(' ')
      const key = this.#byWire.get(parts[1]!)
      const size = Number(parts[3])
      if (!key || !Number.isInteger(size) || size < 0) return this.protocolError(`unexpected ${line}`)
      this.#current = key
      this.#flags = Number(parts[2])
      return size
    }
    return this.errorLine(line)
  }

  override onData(data: Buffer): number {
    const key = this.#current!
    const decoded = decodeItem(this.decoder, key.key, data, this.#flags)
    if (decoded.ok) {
      this.into.set(key.key, decoded.value)
      this.hitCount++
    } else if (decoded.error) this.fail(decoded.error)
    return MORE
  }
}

/** Commands answered by one status word. */
class ClassicStatusCommand extends Command<boolean> {
  constructor(
    readonly name: string,
    out: string | Array<string | Buffer>,
    private readonly success: string,
    private readonly failures: readonly string[],
  ) {
    super(out)
  }

  onLine(line: string): number {
    if (line === this.success) {
      this.resolve(true)
      return DONE
    }
    if (this.failures.includes(line)) {
      this.resolve(false)
      return DONE
    }
    return this.errorLine(line)
  }
}

/** incr / decr: the new value as decimal text, or NOT_FOUND. */
class ClassicArithCommand extends Command<string | undefined> {
  constructor(
    readonly name: string,
    key: EncodedKey,
    delta: bigint,
  ) {
    super(`${name} ${key.wire} ${delta}\r\n`)
  }

  onLine(line: string): number {
    if (line === 'NOT_FOUND') {
      this.resolve(undefined)
      return DONE
    }
    if (/^\d+$/.test(line)) {
      this.resolve(line)
      return DONE
    }
    return this.errorLine(line)
  }
}

const STORE_REPLIES: Record<StoreMode, readonly string[]> = {
  set: ['NOT_STORED'],
  add: ['NOT_STORED'],
  replace: ['NOT_STORED'],
  append: ['NOT_STORED'],
  prepend: ['NOT_STORED'],
  cas: ['EXISTS', 'NOT_FOUND'],
}

export const CLASSIC: TransportKind = Object.freeze({
  name: 'classic',
  base64Keys: false,
  conditionalDelete: false,
  leases: false,
})

export class ClassicTransport extends PlainTransport implements Transport {
  protected readonly what = 'the classic protocol'
  readonly kind = CLASSIC

  constructor(
    readonly label: string,
    private readonly send: Dispatch,
    private readonly probeConnection: ProbeConnection,
  ) {
    super()
  }

  get(key: EncodedKey, decoder: ItemDecoder): Promise<unknown> {
    return this.send(new ClassicGetCommand<unknown>(key, decoder, false), true)
  }

  gets(key: EncodedKey, decoder: ItemDecoder): Promise<StoredItem | undefined> {
    return this.send(new ClassicGetCommand<StoredItem | undefined>(key, decoder, true), true)
  }

  /** No `gat` through proxies: `touch` then `gets`, pipelined in one round trip (not atomic). */
  async getAndTouch(key: EncodedKey, exptime: number, decoder: ItemDecoder): Promise<StoredItem | undefined> {
    const [touched, item] = await Promise.all([this.touch(key, exptime), this.gets(key, decoder)])
    return touched ? item : undefined
  }

  async getMany(keys: EncodedKey[], decoder: ItemDecoder, into: Map<string, unknown>): Promise<void> {
    const batches: Array<Promise<void>> = []
    for (let i = 0; i < keys.length; i += MULTI_GET_BATCH) {
      batches.push(
        this.send(new ClassicMultiGetCommand(keys.slice(i, i + MULTI_GET_BATCH), decoder, into), true),
      )
    }
    await Promise.all(batches)
  }

  store(
    mode: StoreMode,
    key: EncodedKey,
    data: Buffer,
    flags: number,
    exptime: number,
    cas?: string,
  ): Promise<boolean> {
    const header =
      mode === 'cas'
        ? `cas ${key.wire} ${flags} ${exptime} ${data.length} ${cas}\r\n`
        : `${mode} ${key.wire} ${flags} ${exptime} ${data.length}\r\n`
    return this.send(
      new ClassicStatusCommand(mode, [header, data, '\r\n'], 'STORED', STORE_REPLIES[mode]),
      mode === 'set' || mode === 'replace',
    )
  }

  delete(key: EncodedKey): Promise<boolean> {
    return this.send(
      new ClassicStatusCommand('delete', `delete ${key.wire}\r\n`, 'DELETED', ['NOT_FOUND']),
      true,
    )
  }

  deleteIfUnchanged(): Promise<boolean> {
    return Promise.reject(
      new NotSupportedError(
        "the classic protocol has no conditional delete (and twemproxy rejects the negative-exptime cas that could emulate it); use protocol 'meta' or 'binary'",
      ),
    )
  }

  touch(key: EncodedKey, exptime: number): Promise<boolean> {
    return this.send(
      new ClassicStatusCommand('touch', `touch ${key.wire} ${exptime}\r\n`, 'TOUCHED', ['NOT_FOUND']),
      true,
    )
  }

  /**
   * Counter with an initial value, emulated: `incr`; on a miss `add` the initial value; if
   * another client created it first (NOT_STORED), `incr` again. Every step is atomic on the
   * server, so concurrent callers still count exactly; it costs two or three round trips on
   * the first hit instead of one.
   */
  async arith(request: ArithRequest): Promise<ArithResult | undefined> {
    if (request.withTtl) {
      throw new NotSupportedError(
        "the classic protocol cannot report a counter's remaining TTL; use protocol 'meta' (or track the window yourself)",
      )
    }
    const name = request.decrement ? 'decr' : 'incr'
    for (let attempt = 0; attempt < 3; attempt++) {
      const value = await this.send(new ClassicArithCommand(name, request.key, request.delta), false)
      if (value !== undefined) return { value, ttl: Number.NaN }
      if (request.initial === undefined) return undefined
      const initial = Buffer.from(request.initial.toString(), 'latin1')
      const header = `add ${request.key.wire} 0 ${request.exptime} ${initial.length}\r\n`
      const added = await this.send(
        new ClassicStatusCommand('add', [header, initial, '\r\n'], 'STORED', ['NOT_STORED']),
        false,
      )
      if (added) return { value: request.initial.toString(), ttl: Number.NaN }
    }
    // Created and then deleted twice under us: report it like a miss rather than loop.
    return undefined
  }

  version(): Promise<string> {
    return this.send(new VersionCommand(), true)
  }

  /** Never sent to a proxy (twemproxy closes the connection on it): client.stats() asks a proxy for its version instead. */
  stats(group?: string): Promise<Record<string, string>> {
    return this.send(new StatsCommand(group), true)
  }

  /** Never sent to a proxy either: client.flush() refuses with `proxy: true`. */
  flush(): Promise<void> {
    return this.send(new FlushCommand(), true)
  }

  probe(flush: boolean): Promise<void> {
    return this.probeConnection(flush ? [new VersionCommand(), new FlushCommand()] : [new VersionCommand()])
  }

  /** The node closes its connections; nothing of the transport's own to close. */
  close(): void {}
}
