// Multi-key operations: the keys grouped by the server that holds them, one pipelined batch per
// server, in parallel; a server that fails makes the result partial (PartialReadError,
// PartialWriteError), never the whole call fail for keys that live on healthy servers.
import {
  type MemkitError,
  PartialReadError,
  PartialWriteError,
  ServerError,
  ServerFailureError,
} from './errors.js'
import type { EncodedKey } from './keys.js'
import type { ItemDecoder } from './protocol/item-decoder.js'
import type { BatchItem, Transport } from './transport.js'

/** Items grouped by the transport (server) that holds them. */
export type Groups<T> = Map<Transport, T[]>

export function addTo<T>(groups: Groups<T>, transport: Transport, item: T): void {
  const list = groups.get(transport)
  if (list) list.push(item)
  else groups.set(transport, [item])
}

/** Values of the keys that hit; rejects with PartialReadError when some servers fail. */
export async function readMany<T>(
  groups: Groups<EncodedKey>,
  count: number,
  decoder: ItemDecoder,
): Promise<Map<string, T>> {
  const into = new Map<string, unknown>()
  if (groups.size === 0) return into as Map<string, T>
  const batches = [...groups]
  const results = await Promise.allSettled(
    batches.map(([transport, keys]) => transport.getMany(keys, decoder, into)),
  )
  let failed: Map<string, MemkitError> | undefined
  for (let i = 0; i < results.length; i++) {
    const result = results[i]!
    if (result.status === 'fulfilled') continue
    // Only a server's failure is partial; anything else (a decode error, a closed client) is the caller's.
    if (!(result.reason instanceof ServerFailureError)) throw result.reason
    failed ??= new Map()
    for (const key of batches[i]![1]) {
      into.delete(key.key)
      failed.set(key.key, result.reason)
    }
  }
  if (failed) {
    throw new PartialReadError(
      `getMany could not read ${failed.size} of ${count} keys: ${messages(failed)}`,
      into as Map<string, T>,
      failed,
    )
  }
  return into as Map<string, T>
}

/**
 * Runs one write batch per server; resolves with the number of keys the servers answered "not
 * stored / not found" for. setMany counts those as failures (a `set` is only refused when the
 * server cannot store it), deleteMany as keys that were already missing.
 */
export async function writeMany<T extends BatchItem | EncodedKey>(
  groups: Groups<T>,
  method: 'setMany' | 'deleteMany',
): Promise<number> {
  if (groups.size === 0) return 0
  const batches = [...groups]
  const results = await Promise.allSettled(
    batches.map(([transport, items]) =>
      method === 'setMany'
        ? transport.storeMany(items as BatchItem[])
        : transport.deleteMany(items as EncodedKey[]),
    ),
  )
  let failed: Map<string, MemkitError> | undefined
  const succeeded: string[] = []
  let misses = 0
  let total = 0
  for (let i = 0; i < results.length; i++) {
    const result = results[i]!
    const [transport, items] = batches[i]!
    total += items.length
    if (result.status === 'rejected') {
      if (!(result.reason instanceof ServerFailureError)) throw result.reason
      failed ??= new Map()
      for (const item of items) failed.set(keyOf(item), result.reason)
      continue
    }
    const refused = new Set(result.value)
    misses += refused.size
    for (const [index, item] of items.entries()) {
      const key = keyOf(item)
      if (method === 'setMany' && refused.has(index)) {
        failed ??= new Map()
        failed.set(
          key,
          new ServerError(`${transport.label} did not store ${key} (NOT_STORED)`, transport.label),
        )
      } else succeeded.push(key)
    }
  }
  if (failed) {
    throw new PartialWriteError(
      `${method} could not write ${failed.size} of ${total} keys: ${messages(failed)}`,
      failed,
      succeeded,
    )
  }
  return misses
}

function messages(failed: Map<string, MemkitError>): string {
  return [...new Set([...failed.values()].map((e) => e.message))].join('; ')
}

/** The caller's key of a batch item (a value to store, or a key to delete). */
function keyOf(item: BatchItem | EncodedKey): string {
  return 'data' in item ? item.key.key : item.key
}
