// Tag generations: the one place that reads and writes them. An entry records the generation of
// each of its tags when it is stored, and is served only while every one is still current;
// `invalidateTag()` bumps the generation. Today a generation is one memcached counter per tag
// (`<prefix>t:<sha256(tag)>`); a replicated design replaces this file and nothing else.
import type { MemkitClient } from '@memkit/client'
import type { KeySpace } from './key.js'

/** Current generation per tag; undefined when the counter does not exist (yet, or any more). */
export type Generations = Map<string, number | undefined>

export class TagGenerations {
  readonly #client: MemkitClient
  readonly #keys: KeySpace

  constructor(client: MemkitClient, keys: KeySpace) {
    this.#client = client
    this.#keys = keys
  }

  /** memcached keys to read, in the lookup's own round trip, for `tags`. */
  keysOf(tags: readonly string[]): string[] {
    return tags.map((tag) => this.#keys.tag(tag))
  }

  /** The generations of `tags` from what a read of `keysOf(tags)` returned. */
  fromRead(tags: readonly string[], found: ReadonlyMap<string, unknown>, into: Generations): void {
    for (const tag of tags) into.set(tag, counterValue(found.get(this.#keys.tag(tag))))
  }

  /**
   * Generations to record in a new entry: those `known` from the lookup, and for tags without a
   * counter a new one at a value no earlier counter had (so an evicted counter never comes back
   * equal to what old entries recorded). Rejects on memcached failure.
   */
  async forEntry(tags: readonly string[], known: Generations): Promise<Record<string, number>> {
    const out: Record<string, number> = {}
    await Promise.all(
      tags.map(async (tag) => {
        const gen = known.get(tag)
        if (gen !== undefined && Number.isSafeInteger(gen)) {
          out[tag] = gen
          return
        }
        const created = await this.#client.incr(this.#keys.tag(tag), 0, {
          initial: freshGeneration(),
          ttl: 0,
        })
        if (created === undefined) throw new Error(`tag counter for ${JSON.stringify(tag)} vanished`)
        out[tag] = created
      }),
    )
    return out
  }

  /** Moves a tag to a new generation: every entry recorded under the old one misses from now on. */
  async bump(tag: string): Promise<void> {
    await this.#client.incr(this.#keys.tag(tag), 1, { initial: freshGeneration(), ttl: 0 })
  }
}

/** A generation no earlier counter can have reached: microseconds since the epoch. */
function freshGeneration(): number {
  return Date.now() * 1000
}

function counterValue(value: unknown): number | undefined {
  if (value === undefined) return undefined
  if (typeof value === 'number') return value
  const text = Buffer.isBuffer(value) ? value.toString('latin1') : typeof value === 'string' ? value : ''
  const n = Number(text.trim())
  return Number.isSafeInteger(n) ? n : Number.NaN
}
