// The lookup phase: read the stored response for a request (concurrent lookups of one URL in a
// process share one memcached round trip) and decide how it may be used (policy.ts has the rules).
import type { Lookup, Storage } from './storage.js'
import type { Transaction } from './transaction.js'

export class SharedLookups {
  readonly #storage: Storage
  readonly #pending = new Map<string, Promise<Lookup>>()

  constructor(storage: Storage) {
    this.#storage = storage
  }

  /** The entry for `tx` (key verified, tag generations current, chunks reassembled) or why there is none. */
  find(tx: Transaction): Promise<Lookup> {
    const storage = this.#storage
    if (tx.refresh) return storage.lookup(tx.rawKey, tx.req.headers, tx.req.tags)
    const key = `${tx.rawKey}\u0000${tx.req.tags.join('\u0000')}`
    const pending = this.#pending.get(key)
    if (pending) {
      // A shared lookup is reused only when the URL does not vary (the common case).
      return pending.then((l) =>
        l.index ? storage.lookup(tx.rawKey, tx.req.headers, tx.req.tags) : copyLookup(l),
      )
    }
    const p = storage.lookup(tx.rawKey, tx.req.headers, tx.req.tags)
    this.#pending.set(key, p)
    const clear = () => {
      this.#pending.delete(key)
    }
    p.then(clear, clear)
    return p.then(copyLookup)
  }
}

/** Each request gets its own copy: the generations map is filled in later. */
function copyLookup(l: Lookup): Lookup {
  return { ...l, gens: new Map(l.gens) }
}
