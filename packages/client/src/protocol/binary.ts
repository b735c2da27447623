// The binary transport (memcached's binary protocol through memjs, for servers that require
// SASL): each operation is one binary request built here and sent on the server's memjs
// connection (memjs-connection.ts), so that CAS, exact 64-bit counters, conditional delete and
// get-and-touch work, which memjs's own Client does not offer.
import { NotSupportedError, ProtocolError } from '../errors.js'
import type { EncodedKey } from '../keys.js'
import {
  type ArithRequest,
  type ArithResult,
  PlainTransport,
  type StoredItem,
  type StoreMode,
  type Transport,
  type TransportKind,
} from '../transport.js'
import { decodeItem, type ItemDecoder } from './item-decoder.js'
import {
  MemjsConnection,
  type MemjsConnectionOptions,
  type MemjsResponse,
  Opcode,
  Status,
  statusError,
} from './memjs-connection.js'

const EMPTY = Buffer.alloc(0)
/** Sends of one create-or-increment that lost the creation race to another connection. */
const CREATE_RACE_ATTEMPTS = 4

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

export const BINARY: TransportKind = Object.freeze({
  name: 'binary',
  base64Keys: false,
  conditionalDelete: true,
  leases: false,
})

export class BinaryTransport extends PlainTransport implements Transport {
  protected readonly what = 'the binary protocol'
  readonly kind = BINARY
  readonly #connection: MemjsConnection

  constructor(options: MemjsConnectionOptions) {
    super()
    this.#connection = new MemjsConnection(options)
  }

  get label(): string {
    return this.#connection.label
  }

  async get(key: EncodedKey, decoder: ItemDecoder): Promise<unknown> {
    return (await this.#read('get', Opcode.GET, key, EMPTY, decoder))?.value
  }

  async gets(key: EncodedKey, decoder: ItemDecoder): Promise<StoredItem | undefined> {
    return this.#read('gets', Opcode.GET, key, EMPTY, decoder)
  }

  async getAndTouch(key: EncodedKey, exptime: number, decoder: ItemDecoder): Promise<StoredItem | undefined> {
    return this.#read('getAndTouch', Opcode.GAT, key, expiration(exptime), decoder)
  }

  /** memjs has no multi-get: one request per key, all in flight at once on the same socket. */
  async getMany(keys: EncodedKey[], decoder: ItemDecoder, into: Map<string, unknown>): Promise<void> {
    const items = await Promise.all(keys.map((key) => this.#read('getMany', Opcode.GET, key, EMPTY, decoder)))
    items.forEach((item, i) => {
      if (item !== undefined) into.set(keys[i]!.key, item.value)
    })
  }

  async #read(
    name: string,
    opcode: number,
    key: EncodedKey,
    extras: Buffer,
    decoder: ItemDecoder,
  ): Promise<StoredItem | undefined> {
    const [response] = await this.#connection.request(name, opcode, keyBytes(key), extras, EMPTY)
    if (response!.header.status === Status.NOT_FOUND) return undefined
    if (response!.header.status !== Status.OK) throw statusError(response!, name, this.#connection.label)
    const flags = response!.extras.length >= 4 ? response!.extras.readUInt32BE(0) : 0
    const decoded = decodeItem(decoder, key.key, Buffer.from(response!.val), flags)
    if (!decoded.ok) {
      if (decoded.error) throw decoded.error
      return undefined
    }
    return { value: decoded.value, cas: casOf(response!) }
  }

  async store(
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
    const [response] = await this.#connection.request(mode, opcode, keyBytes(key), extras, data, { cas })
    const status = response!.header.status
    if (status === Status.OK) return true
    if (status === Status.NOT_FOUND || status === Status.EXISTS || status === Status.NOT_STORED) return false
    throw statusError(response!, mode, this.#connection.label)
  }

  delete(key: EncodedKey): Promise<boolean> {
    return this.#deleteWith(key, undefined)
  }

  /** Binary DELETE honours the CAS in the request header: an atomic compare-and-delete. */
  deleteIfUnchanged(key: EncodedKey, cas: string): Promise<boolean> {
    return this.#deleteWith(key, cas)
  }

  async #deleteWith(key: EncodedKey, cas: string | undefined): Promise<boolean> {
    const [response] = await this.#connection.request('delete', Opcode.DELETE, keyBytes(key), EMPTY, EMPTY, {
      cas,
    })
    const status = response!.header.status
    if (status === Status.OK) return true
    if (status === Status.NOT_FOUND || status === Status.EXISTS) return false
    throw statusError(response!, 'delete', this.#connection.label)
  }

  async touch(key: EncodedKey, exptime: number): Promise<boolean> {
    const [response] = await this.#connection.request(
      'touch',
      Opcode.TOUCH,
      keyBytes(key),
      expiration(exptime),
      EMPTY,
    )
    if (response!.header.status === Status.OK) return true
    if (response!.header.status === Status.NOT_FOUND) return false
    throw statusError(response!, 'touch', this.#connection.label)
  }

  /** Exact unsigned 64-bit counters (memjs's own increment reads only the low 32 bits). */
  async arith(request: ArithRequest): Promise<ArithResult | undefined> {
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
    let [response] = await this.#connection.request(name, opcode, keyBytes(request.key), extras, EMPTY)
    // memcached's binary INCREMENT/DECREMENT creates a missing counter with a separate `add`,
    // outside the item lock: when another connection creates it between the miss and the add,
    // the answer is NOT_STORED and nothing was counted. The counter exists now, so the same
    // request counts on it (a few times at most: it would have to vanish again in between).
    for (
      let attempt = 1;
      response!.header.status === Status.NOT_STORED && attempt < CREATE_RACE_ATTEMPTS;
      attempt++
    ) {
      ;[response] = await this.#connection.request(name, opcode, keyBytes(request.key), extras, EMPTY)
    }
    if (response!.header.status === Status.NOT_FOUND) return undefined
    if (response!.header.status !== Status.OK) throw statusError(response!, name, this.#connection.label)
    if (response!.val.length !== 8) {
      throw new ProtocolError(
        `${this.#connection.label} answered ${name} with ${response!.val.length} bytes`,
        this.#connection.label,
      )
    }
    return { value: response!.val.readBigUInt64BE(0).toString(), ttl: Number.NaN }
  }

  async version(): Promise<string> {
    const [response] = await this.#connection.request('version', Opcode.VERSION, EMPTY, EMPTY, EMPTY)
    if (response!.header.status !== Status.OK) throw statusError(response!, 'version', this.#connection.label)
    return response!.val.toString()
  }

  async stats(group?: string): Promise<Record<string, string>> {
    const responses = await this.#connection.request(
      'stats',
      Opcode.STAT,
      Buffer.from(group ?? ''),
      EMPTY,
      EMPTY,
      {
        multi: true,
      },
    )
    const stats: Record<string, string> = {}
    for (const response of responses) {
      if (response.header.status !== Status.OK) throw statusError(response, 'stats', this.#connection.label)
      if (response.key.length > 0) stats[response.key.toString()] = response.val.toString()
    }
    return stats
  }

  async flush(): Promise<void> {
    const [response] = await this.#connection.request('flush', Opcode.FLUSH, EMPTY, EMPTY, EMPTY)
    if (response!.header.status !== Status.OK) throw statusError(response!, 'flush', this.#connection.label)
  }

  probe(flush: boolean): Promise<void> {
    return this.#connection.probe(flush)
  }

  close(): void {
    this.#connection.close()
  }
}
