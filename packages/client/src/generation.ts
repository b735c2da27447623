import { isMemkitError } from './errors.js'

// A generation is a number that only moves forward and that a whole pool agrees on: the session
// store's namespace (clear() moves it, ending every session at once) and the response cache's
// tags (invalidateTag() moves one). Kept in one memcached key, its loss, eviction or an older copy
// on a node that comes back would change what every other key means. So it is kept as a counter
// on several servers, read as the highest of the copies, and repaired upwards: losing or evicting
// copies loses nothing while one remains, and an older copy can never win.

/** One copy of a generation as read from its server. */
export interface GenerationCopy {
  /** The counter's value, or undefined when the copy is missing. */
  value: number | undefined
  /** CAS token of the copy (when it exists). */
  cas: string | undefined
  /** The copy holds something that is not a counter. */
  corrupt?: boolean
}

/** What a generation needs from the client: raw counter reads and writes that bypass the serializer. */
export interface GenerationBackend {
  readCopy(key: string): Promise<GenerationCopy>
  /** Creates the copy holding `value` unless it exists; resolves with the copy's value after. */
  createCopy(key: string, value: number): Promise<number | undefined>
  /** Replaces the copy with `value` only while its CAS is still `cas`. */
  replaceCopy(key: string, value: number, cas: string): Promise<boolean>
  deleteCopy(key: string): Promise<boolean>
  /** Reports a failure of a background repair (the client's 'error' event). */
  report(error: Error): void
}

export interface GenerationReadOptions {
  /** Milliseconds a value this process read before may be reused without a round trip. Default `0`. */
  maxAge?: number
}

/** Attempts to raise one copy before leaving it to the next repair. */
const RAISE_ATTEMPTS = 5

/**
 * A replicated, monotonic generation counter. Get one with `client.generation(key)`.
 *
 * - `read()` asks every copy in parallel (one round trip) and returns the highest value, never
 *   lower than one this process saw before. Copies that are missing (evicted, or on a server that
 *   came back empty) or lower (a server that missed a bump) are raised in the background.
 * - `bump()` moves the generation to `max(highest + 1, now in microseconds)` on every copy it can
 *   reach, with compare-and-swap, and succeeds when at least one copy took it.
 *
 * Cost: a read is one round trip to up to `replicas` servers in parallel; a bump is a read plus
 * one or two round trips (gets + cas per copy, in parallel). When every copy is gone at once
 * (all of them evicted), a process that knows the generation puts back the highest value it saw,
 * so an eviction ends nothing; until a process that saw a later bump reads again (its read raises
 * the copies), one that did not can put back the older value. A generation that no process knows
 * (a fresh pool) starts at the current time in microseconds, above any value it held before.
 */
export class Generation {
  readonly #backend: GenerationBackend
  #highest: number | undefined
  #readAt = Number.NEGATIVE_INFINITY
  #reading: Promise<number> | undefined

  constructor(
    /** The key as the caller named it. */
    readonly key: string,
    /** The keys of the copies, each on a different server where the pool has enough. */
    readonly copyKeys: readonly string[],
    backend: GenerationBackend,
  ) {
    this.#backend = backend
  }

  /** The highest value this process has seen (undefined before the first read). */
  get known(): number | undefined {
    return this.#highest
  }

  /** The newest value of the copies; see the class description. */
  read(options?: GenerationReadOptions): Promise<number> {
    const maxAge = options?.maxAge ?? 0
    if (this.#highest !== undefined && performance.now() - this.#readAt < maxAge) {
      return Promise.resolve(this.#highest)
    }
    // Concurrent readers share one round trip.
    this.#reading ??= this.#read().finally(() => {
      this.#reading = undefined
    })
    return this.#reading
  }

  /**
   * Folds copies read elsewhere (e.g. in the same multi-get as the data they guard) into the
   * highest value, and repairs missing or lower copies in the background. `found` holds the raw
   * values read for `copyKeys` (a key absent from it is a miss); `unreadable` names copies whose
   * server failed. Returns undefined when no copy exists and nothing is known: `read()` then
   * creates them.
   */
  observe(
    found: ReadonlyMap<string, unknown>,
    unreadable?: ReadonlySet<string> | ReadonlyMap<string, unknown>,
  ): number | undefined {
    const copies = this.copyKeys.map((key) => (unreadable?.has(key) ? undefined : toCopy(found.get(key))))
    const highest = this.#merge(copies)
    if (highest !== undefined) {
      this.#readAt = performance.now()
      this.#repair(copies, highest)
    }
    return highest
  }

  /** Moves the generation forward on every copy it can reach; resolves with the new value. */
  async bump(): Promise<number> {
    const current = await this.read()
    const target = Math.max(current + 1, nowMicros())
    const results = await Promise.allSettled(this.copyKeys.map((key) => this.#raise(key, target)))
    const reached = results.filter((r) => r.status === 'fulfilled' && r.value >= target)
    if (reached.length === 0) {
      const failure = results.find((r) => r.status === 'rejected')
      throw failure
        ? (failure as PromiseRejectedResult).reason
        : new Error(`generation ${this.key} not moved`)
    }
    this.#highest = Math.max(
      this.#highest ?? 0,
      ...reached.map((r) => (r as PromiseFulfilledResult<number>).value),
    )
    this.#readAt = performance.now()
    return this.#highest
  }

  async #read(): Promise<number> {
    const results = await Promise.allSettled(this.copyKeys.map((key) => this.#backend.readCopy(key)))
    const copies: Array<GenerationCopy | undefined> = results.map((r) =>
      r.status === 'fulfilled' ? r.value : undefined,
    )
    if (copies.every((copy) => copy === undefined)) {
      // No copy could be read: the servers failed. What this process knows is the best answer.
      if (this.#highest !== undefined) return this.#highest
      throw (results[0] as PromiseRejectedResult).reason
    }
    let highest = this.#merge(copies)
    if (highest === undefined) {
      // Every copy is gone and nothing is known: start above anything that existed before, with
      // one value for every copy (a reader of any single copy then sees the highest at once).
      const start = nowMicros()
      const created = await Promise.allSettled(
        this.copyKeys.map((key) => this.#backend.createCopy(key, start)),
      )
      const values = created.flatMap((r) =>
        r.status === 'fulfilled' && r.value !== undefined ? [r.value] : [],
      )
      if (values.length === 0)
        throw (created.find((r) => r.status === 'rejected') as PromiseRejectedResult)?.reason
      highest = Math.max(...values)
      this.#highest = Math.max(this.#highest ?? 0, highest)
      // Concurrent creators may have left different values: the highest wins everywhere.
      this.#repair(
        created.map((r) => ({ value: r.status === 'fulfilled' ? r.value : undefined, cas: undefined })),
        highest,
      )
    } else {
      this.#repair(copies, highest)
    }
    this.#readAt = performance.now()
    return this.#highest as number
  }

  /** Highest of the copies and what this process knew; undefined when neither exists. */
  #merge(copies: ReadonlyArray<GenerationCopy | undefined>): number | undefined {
    let highest = this.#highest
    for (const copy of copies) {
      if (copy?.value !== undefined && (highest === undefined || copy.value > highest)) highest = copy.value
    }
    this.#highest = highest
    return highest
  }

  /** Raises missing, corrupt and lower copies to `highest`, without waiting. */
  #repair(copies: ReadonlyArray<GenerationCopy | undefined>, highest: number): void {
    copies.forEach((copy, i) => {
      // undefined: the copy's server failed; it is repaired on a later read.
      if (copy === undefined) return
      if (copy.value !== undefined && copy.value >= highest && !copy.corrupt) return
      this.#raise(this.copyKeys[i]!, highest, copy).catch((error: unknown) => {
        if (!isMemkitError(error)) this.#backend.report(error as Error)
      })
    })
  }

  /** Brings one copy to at least `target` (never lowers it); resolves with the copy's value. */
  async #raise(key: string, target: number, known?: GenerationCopy): Promise<number> {
    let copy = known ?? (await this.#backend.readCopy(key))
    for (let attempt = 0; attempt < RAISE_ATTEMPTS; attempt++) {
      if (copy.corrupt) {
        await this.#backend.deleteCopy(key)
        copy = { value: undefined, cas: undefined }
      }
      if (copy.value === undefined) {
        const value = await this.#backend.createCopy(key, target)
        if (value !== undefined && value >= target) return value
      } else if (copy.value >= target) {
        return copy.value
      } else if (copy.cas !== undefined && (await this.#backend.replaceCopy(key, target, copy.cas))) {
        return target
      }
      copy = await this.#backend.readCopy(key)
    }
    // Kept changing under us (other writers): whatever it holds now; the next read repairs it.
    return copy.value ?? -1
  }
}

/** The current time in microseconds: a start value above anything an earlier generation reached. */
function nowMicros(): number {
  return Date.now() * 1000
}

/** A copy from a raw value: a number, a decimal string or Buffer (memcached pads shrunk counters with spaces). */
export function toCopy(value: unknown): GenerationCopy {
  if (value === undefined || value === null) return { value: undefined, cas: undefined }
  const text = Buffer.isBuffer(value)
    ? value.toString('latin1')
    : typeof value === 'number'
      ? String(value)
      : value
  if (typeof text === 'string' && /^\d+ *$/.test(text)) {
    const number = Number.parseInt(text, 10)
    if (Number.isSafeInteger(number)) return { value: number, cas: undefined }
  }
  return { value: undefined, cas: undefined, corrupt: true }
}
