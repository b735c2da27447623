// The meta transport (memcached >= 1.6, doc/protocol.txt): each operation is one meta command
// (mg, ms, md, ma, mn) sent on the server's pipelined connections; the command classes, which
// build the request and parse the reply, are in meta-commands.ts.
import type { EncodedKey } from '../keys.js'
import type {
  ArithRequest,
  ArithResult,
  BatchItem,
  Dispatch,
  LeaseItem,
  ProbeConnection,
  StoredItem,
  StoreMode,
  Transport,
  TransportKind,
} from '../transport.js'
import type { ItemDecoder } from './item-decoder.js'
import {
  keyToken,
  MetaArithCommand,
  MetaGetCommand,
  MetaLeaseGetCommand,
  MetaMultiGetCommand,
  MetaQuietBatchCommand,
  MetaStatusCommand,
  nextOpaque,
  STORE_MODE_FLAG,
} from './meta-commands.js'
import { FlushCommand, StatsCommand, VersionCommand } from './text-commands.js'

export const META: TransportKind = Object.freeze({
  name: 'meta',
  base64Keys: true,
  conditionalDelete: true,
  leases: true,
})

export class MetaTransport implements Transport {
  readonly kind = META

  constructor(
    readonly label: string,
    private readonly send: Dispatch,
    private readonly probeConnection: ProbeConnection,
  ) {}

  get(key: EncodedKey, decoder: ItemDecoder): Promise<unknown> {
    return this.send(new MetaGetCommand<unknown>('get', key, decoder, 'value', ''), true)
  }

  gets(key: EncodedKey, decoder: ItemDecoder): Promise<StoredItem | undefined> {
    return this.send(new MetaGetCommand<StoredItem | undefined>('gets', key, decoder, 'item', ' c'), true)
  }

  getAndTouch(key: EncodedKey, exptime: number, decoder: ItemDecoder): Promise<StoredItem | undefined> {
    return this.send(
      new MetaGetCommand<StoredItem | undefined>('getAndTouch', key, decoder, 'item', ` c T${exptime}`),
      true,
    )
  }

  getMany(keys: EncodedKey[], decoder: ItemDecoder, into: Map<string, unknown>): Promise<void> {
    return this.send(new MetaMultiGetCommand(keys, decoder, into), true)
  }

  store(
    mode: StoreMode,
    key: EncodedKey,
    data: Buffer,
    flags: number,
    exptime: number,
    cas?: string,
  ): Promise<boolean> {
    const opaque = nextOpaque()
    // ms takes the data length right after the key; the base64 flag goes among the flags.
    let header = key.base64 ? `ms ${key.wire} ${data.length} b` : `ms ${key.wire} ${data.length}`
    if (mode !== 'append' && mode !== 'prepend') header += ` T${exptime} F${flags}`
    header += STORE_MODE_FLAG[mode]
    if (cas !== undefined) header += ` C${cas}`
    header += ` O${opaque}\r\n`
    // set and replace are safe to repeat; add, append, prepend and cas are not.
    return this.send(
      new MetaStatusCommand(mode, [header, data, '\r\n'], opaque),
      mode === 'set' || mode === 'replace',
    )
  }

  /** `ms ... q O<i>` per item, then `mn`: only the exceptions answer. */
  storeMany(items: readonly BatchItem[]): Promise<number[]> {
    const out: Array<string | Buffer> = []
    for (let i = 0; i < items.length; i++) {
      const { key, data, flags, exptime } = items[i]!
      const base64 = key.base64 ? ' b' : ''
      out.push(`ms ${key.wire} ${data.length}${base64} T${exptime} F${flags} q O${i}\r\n`, data, '\r\n')
    }
    return this.send(new MetaQuietBatchCommand('setMany', out, items.length), true)
  }

  delete(key: EncodedKey): Promise<boolean> {
    const opaque = nextOpaque()
    return this.send(new MetaStatusCommand('delete', `md ${keyToken(key)} O${opaque}\r\n`, opaque), true)
  }

  /** `md ... q O<i>` per key, then `mn`. */
  deleteMany(keys: readonly EncodedKey[]): Promise<number[]> {
    let text = ''
    for (let i = 0; i < keys.length; i++) text += `md ${keyToken(keys[i]!)} q O${i}\r\n`
    return this.send(new MetaQuietBatchCommand('deleteMany', [text], keys.length), true)
  }

  deleteIfUnchanged(key: EncodedKey, cas: string): Promise<boolean> {
    const opaque = nextOpaque()
    return this.send(
      new MetaStatusCommand('delete', `md ${keyToken(key)} C${cas} O${opaque}\r\n`, opaque),
      false,
    )
  }

  touch(key: EncodedKey, exptime: number): Promise<boolean> {
    const opaque = nextOpaque()
    return this.send(
      new MetaStatusCommand('touch', `mg ${keyToken(key)} T${exptime} O${opaque}\r\n`, opaque),
      true,
    )
  }

  arith(request: ArithRequest): Promise<ArithResult | undefined> {
    return this.send(new MetaArithCommand(request), false)
  }

  leaseGet(key: EncodedKey, decoder: ItemDecoder, vivify: number, recache: number): Promise<LeaseItem> {
    // Not retried: a second N on a fresh connection could find the placeholder it created and
    // report Z to the caller who won it.
    return this.send(new MetaLeaseGetCommand(key, decoder, vivify, recache), false)
  }

  /** `md <key> I`: marks the item stale and changes its CAS; false when missing. */
  invalidate(key: EncodedKey): Promise<boolean> {
    const opaque = nextOpaque()
    return this.send(
      new MetaStatusCommand('invalidate', `md ${keyToken(key)} I O${opaque}\r\n`, opaque),
      true,
    )
  }

  version(): Promise<string> {
    return this.send(new VersionCommand(), true)
  }

  stats(group?: string): Promise<Record<string, string>> {
    return this.send(new StatsCommand(group), true)
  }

  flush(): Promise<void> {
    return this.send(new FlushCommand(), true)
  }

  probe(flush: boolean): Promise<void> {
    return this.probeConnection(flush ? [new VersionCommand(), new FlushCommand()] : [new VersionCommand()])
  }

  /** The node closes its connections; nothing of the transport's own to close. */
  close(): void {}
}
