// How responses sit in memcached:
//   <prefix><sha256(url key)>          the entry itself, or a Vary index naming the Vary'd headers
//   <prefix>v:<sha256(index id, variant)> one entry per variant when the URL varies
//   <prefix>c:<id>:<n>                  chunks of a body larger than one item (entry is a manifest)
//   <prefix>t:<sha256(tag)>[#n]         tag generations, three copies (tag-generations.ts)
//   <prefix>l:<...>, <prefix>r:<...>    fill and refresh leases (stampede.ts)
import { createHash, randomBytes } from 'node:crypto'
import { type DecodeError, isMemkitError, type MemkitClient, type PartialReadError } from '@memkit/client'
import {
  CorruptEntryError,
  decodeStored,
  type Entry,
  encodeEntry,
  encodeIndex,
  envelopeSize,
  type VaryIndex,
} from './entry.js'
import { type KeySpace, rawVariantKey, varyValuesOf } from './key.js'
import type { Metrics } from './metrics.js'
import { type Generations, TagGenerations } from './tag-generations.js'
import type { RequestHeaders } from './types.js'

export type MissReason = 'uri-miss' | 'vary-miss' | 'invalidated' | 'corrupt' | 'unavailable'

export interface Lookup {
  /** A usable entry: key verified, tag generations current, chunks reassembled. */
  entry: Entry | undefined
  /** Why there is no entry. */
  miss: MissReason | undefined
  /** The URL's Vary index, when the URL varies. */
  index: VaryIndex | undefined
  /** memcached key of the URL. */
  urlKey: string
  /** Current generation of each route tag (undefined when the counter does not exist yet). */
  gens: Generations
  /** memcached failed: the request goes on uncached, without leases or stores. */
  failed: boolean
}

export interface Placement {
  /** memcached key the entry goes to. */
  key: string
  /** The entry's unhashed key (URL key, plus the variant's header values when it varies). */
  rawKey: string
  /** Index to (re)write at the URL key, when the response varies. */
  index: VaryIndex | undefined
}

const MAX_HINTS = 10_000

export class Storage {
  readonly #client: MemkitClient
  readonly #keys: KeySpace
  readonly #metrics: Metrics
  readonly #report: (error: unknown) => void
  // Last Vary index seen per URL, so a varying URL is usually read in one round trip.
  readonly #hints = new Map<string, VaryIndex>()
  readonly tags: TagGenerations

  constructor(client: MemkitClient, keys: KeySpace, metrics: Metrics, report: (error: unknown) => void) {
    this.#client = client
    this.#keys = keys
    this.#metrics = metrics
    this.#report = report
    this.tags = new TagGenerations(client, keys)
  }

  async lookup(rawKey: string, headers: RequestHeaders, tags: readonly string[]): Promise<Lookup> {
    const urlKey = this.#keys.url(rawKey)
    const gens: Generations = new Map()
    const result: Lookup = {
      entry: undefined,
      miss: 'uri-miss',
      index: undefined,
      urlKey,
      gens,
      failed: false,
    }
    const batch = [urlKey, ...this.tags.keysOf(tags)]
    const hint = this.#hints.get(urlKey)
    let hintedKey: string | undefined
    if (hint) {
      hintedKey = this.#keys.variant(hint.id, rawVariantKey(rawKey, varyValuesOf(hint.varyNames, headers)))
      batch.push(hintedKey)
    }
    let found: Map<string, unknown>
    let unreadable: ReadonlyMap<string, unknown> | undefined
    try {
      found = await this.#read(batch)
    } catch (error) {
      // A server that holds only some tag copies leaves the others to decide; one that holds the
      // entry itself makes the lookup unavailable.
      const partial = partialRead(error)
      if (!partial || partial.failed.has(urlKey)) {
        this.#report(error)
        result.failed = true
        result.miss = 'unavailable'
        return result
      }
      found = partial.hits
      unreadable = partial.failed
      if (hintedKey !== undefined && unreadable.has(hintedKey)) hintedKey = undefined
    }
    this.tags.fromRead(tags, found, gens, unreadable)
    const record = this.#decode(found.get(urlKey), urlKey)
    if (record === undefined) {
      if (found.has(urlKey)) result.miss = 'corrupt'
      return result
    }
    let entry: Entry | undefined
    if (record.kind === 'index') {
      if (record.rawKey !== rawKey) return this.#corrupt(result)
      result.index = record
      this.#remember(urlKey, record)
      const rawVariant = rawVariantKey(rawKey, varyValuesOf(record.varyNames, headers))
      const variantKey = this.#keys.variant(record.id, rawVariant)
      let stored: unknown
      if (variantKey === hintedKey) {
        stored = found.get(variantKey)
      } else {
        try {
          stored = (await this.#read([variantKey])).get(variantKey)
        } catch (error) {
          this.#report(error)
          result.failed = true
          result.miss = 'unavailable'
          return result
        }
      }
      if (stored === undefined) {
        result.miss = 'vary-miss'
        return result
      }
      const variant = this.#decode(stored, variantKey)
      if (variant === undefined) {
        result.miss = 'corrupt'
        return result
      }
      if (variant.kind !== 'entry' || variant.rawKey !== rawVariant) return this.#corrupt(result)
      entry = variant
    } else {
      if (record.rawKey !== rawKey) return this.#corrupt(result)
      if (hint) this.#hints.delete(urlKey)
      entry = record
    }
    // Tag generations: an entry recorded under an older generation is invalidated.
    const extra = Object.keys(entry.tags).filter((t) => !gens.has(t))
    if (extra.length > 0) {
      try {
        this.tags.fromRead(extra, await this.#read(this.tags.keysOf(extra)), gens)
      } catch (error) {
        const partial = partialRead(error)
        if (!partial) {
          this.#report(error)
          result.failed = true
          result.miss = 'unavailable'
          return result
        }
        this.tags.fromRead(extra, partial.hits, gens, partial.failed)
      }
    }
    for (const [tag, gen] of Object.entries(entry.tags)) {
      if (gens.get(tag) !== gen) {
        result.miss = 'invalidated'
        return result
      }
    }
    if (entry.chunks) {
      const body = await this.#assemble(entry)
      if (body === undefined) return this.#corrupt(result)
      if (body === null) {
        result.failed = true
        result.miss = 'unavailable'
        return result
      }
      entry = { ...entry, body }
    }
    result.entry = entry
    result.miss = undefined
    return result
  }

  /** Where an entry for this request goes, given the handler's Vary names. */
  placement(
    rawKey: string,
    lookup: Lookup,
    varyNames: readonly string[],
    varyValues: readonly string[],
  ): Placement {
    if (varyNames.length === 0) return { key: lookup.urlKey, rawKey, index: undefined }
    const current = lookup.index
    const index =
      current && sameNames(current.varyNames, varyNames)
        ? current
        : {
            kind: 'index' as const,
            rawKey,
            id: randomBytes(9).toString('base64url'),
            varyNames: [...varyNames],
          }
    const rawVariant = rawVariantKey(rawKey, varyValues)
    return { key: this.#keys.variant(index.id, rawVariant), rawKey: rawVariant, index }
  }

  /**
   * Writes an entry (chunked when it exceeds one item and `chunk` is allowed). Resolves
   * 'stored', or 'too-large' when it does not fit and chunking is off. Rejects on memcached failure.
   */
  async write(
    placement: Placement,
    urlKey: string,
    entry: Entry,
    ttl: number,
    chunk: boolean,
  ): Promise<'stored' | 'too-large'> {
    const limit = this.#client.maxValueSize(placement.key)
    if (envelopeSize(entry) <= limit) {
      await this.#client.set(placement.key, encodeEntry(entry), { ttl })
    } else {
      if (!chunk) return 'too-large'
      await this.#writeChunked(placement.key, entry, ttl)
      this.#metrics.chunked++
    }
    if (placement.index) {
      // The index outlives no variant it points to by much; a lost index only orphans variants.
      await this.#client.set(urlKey, encodeIndex(placement.index), { ttl })
      this.#remember(urlKey, placement.index)
    }
    return 'stored'
  }

  async #writeChunked(key: string, entry: Entry, ttl: number): Promise<void> {
    const id = randomBytes(9).toString('base64url')
    const body = entry.body
    // Sized for the longest chunk key (five-digit index), so every chunk fits whatever its number.
    const size = this.#client.maxValueSize(this.#keys.chunk(id, 99_999))
    const count = Math.ceil(body.length / size)
    if (count > 100_000) throw new RangeError('body too large to chunk')
    const sha256 = createHash('sha256').update(body).digest('base64url')
    const writes: Promise<boolean>[] = []
    for (let i = 0; i < count; i++) {
      writes.push(this.#client.set(this.#keys.chunk(id, i), body.subarray(i * size, (i + 1) * size), { ttl }))
    }
    await Promise.all(writes)
    // The manifest goes last: it never points at chunks that were not written.
    const manifest: Entry = { ...entry, body: Buffer.alloc(0), chunks: { id, count, sha256 } }
    await this.#client.set(key, encodeEntry(manifest), { ttl })
  }

  /** The reassembled body; undefined when a chunk is missing or the hash differs; null on memcached failure. */
  async #assemble(entry: Entry): Promise<Buffer | undefined | null> {
    const { id, count, sha256 } = entry.chunks!
    if (count < 1 || count > 100_000) return undefined
    const keys = Array.from({ length: count }, (_, i) => this.#keys.chunk(id, i))
    let found: Map<string, unknown>
    try {
      found = await this.#read(keys)
    } catch (error) {
      this.#report(error)
      return null
    }
    const parts: Buffer[] = []
    for (const key of keys) {
      const part = found.get(key)
      if (!Buffer.isBuffer(part)) return undefined
      parts.push(part)
    }
    const body = Buffer.concat(parts)
    if (body.length !== entry.size) return undefined
    if (createHash('sha256').update(body).digest('base64url') !== sha256) return undefined
    return body
  }

  /** Removes the URL's entry (or Vary index, orphaning every variant). */
  async deleteUrl(rawKey: string): Promise<void> {
    const urlKey = this.#keys.url(rawKey)
    this.#hints.delete(urlKey)
    await this.#client.delete(urlKey)
  }

  /**
   * getMany that survives an item the client cannot decode (foreign flags, a pickle...): the item
   * is counted as corrupt, deleted so the next store repairs it, and the read is retried once.
   */
  async #read(keys: string[]): Promise<Map<string, unknown>> {
    for (let attempt = 0; ; attempt++) {
      try {
        if (keys.length === 1) {
          // One key (the common hit: no tags, no Vary) is a single mg, cheaper than a batch.
          const value = await this.#client.get(keys[0]!)
          return value === undefined ? new Map() : new Map([[keys[0]!, value]])
        }
        return await this.#client.getMany(keys)
      } catch (error) {
        // By its stable code: another installed copy of @memkit/client throws its own class.
        if (!isMemkitError(error, 'ERR_MEMKIT_DECODE') || attempt > 0) throw error
        this.#metrics.corrupt++
        this.#report(error)
        await this.#client.delete((error as DecodeError).key).catch(() => false)
      }
    }
  }

  #decode(value: unknown, key: string): Entry | VaryIndex | undefined {
    if (value === undefined) return undefined
    try {
      return decodeStored(value)
    } catch (error) {
      if (!(error instanceof CorruptEntryError)) throw error
      this.#metrics.corrupt++
      this.#report(new CorruptEntryError(`${key}: ${error.message}`))
      return undefined
    }
  }

  #corrupt(result: Lookup): Lookup {
    this.#metrics.corrupt++
    result.miss = 'corrupt'
    result.entry = undefined
    return result
  }

  #remember(urlKey: string, index: VaryIndex): void {
    if (this.#hints.size >= MAX_HINTS) this.#hints.delete(this.#hints.keys().next().value!)
    this.#hints.set(urlKey, index)
  }
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i])
}

/** The hits and failed keys of a multi-get that some servers could not answer (by its stable code). */
function partialRead(
  error: unknown,
): { hits: Map<string, unknown>; failed: ReadonlyMap<string, unknown> } | undefined {
  return isMemkitError(error, 'ERR_MEMKIT_PARTIAL_READ') ? (error as PartialReadError) : undefined
}
