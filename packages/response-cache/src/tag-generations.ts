// Tag generations: the one place that reads and writes them. An entry records the generation of
// each of its tags when it is stored, and is served only while every one is still current;
// `invalidateTag()` bumps the generation. Each tag's generation is the client's replicated
// counter (`client.generation`, three copies on different servers: the first is
// `<prefix>t:<sha256(tag)>`, the key a single counter used before): read as the highest copy in
// the lookup's own round trip, never moved backwards, so one node's loss, an evicted copy or a
// node that comes back with an older copy neither invalidates every entry of the tag nor undoes
// an `invalidateTag()`.
import type { Generation, MemkitClient } from '@memkit/client'
import type { KeySpace } from './key.js'

/** Current generation per tag; undefined when it cannot be known (no copy exists or could be read). */
export type Generations = Map<string, number | undefined>

export class TagGenerations {
  readonly #client: MemkitClient
  readonly #keys: KeySpace

  constructor(client: MemkitClient, keys: KeySpace) {
    this.#client = client
    this.#keys = keys
  }

  #generation(tag: string): Generation {
    return this.#client.generation(this.#keys.tag(tag))
  }

  /** memcached keys to read, in the lookup's own round trip, for `tags`: every copy of each. */
  keysOf(tags: readonly string[]): string[] {
    return tags.flatMap((tag) => this.#generation(tag).copyKeys)
  }

  /**
   * The generations of `tags` from what a read of `keysOf(tags)` returned: the highest copy that
   * answered (`unreadable` names copies whose server failed). Missing or older copies are
   * repaired in the background.
   */
  fromRead(
    tags: readonly string[],
    found: ReadonlyMap<string, unknown>,
    into: Generations,
    unreadable?: ReadonlyMap<string, unknown>,
  ): void {
    for (const tag of tags) into.set(tag, this.#generation(tag).observe(found, unreadable))
  }

  /**
   * Generations to record in a new entry: those `known` from the lookup, else read (and created
   * when no copy exists, at a value above any a tag had before, so an entry can never match a
   * generation from before an eviction). Rejects on memcached failure.
   */
  async forEntry(tags: readonly string[], known: Generations): Promise<Record<string, number>> {
    const out: Record<string, number> = {}
    await Promise.all(
      tags.map(async (tag) => {
        out[tag] = known.get(tag) ?? (await this.#generation(tag).read())
      }),
    )
    return out
  }

  /** Moves a tag to a new generation: every entry recorded under the old one misses from now on. */
  async bump(tag: string): Promise<void> {
    await this.#generation(tag).bump()
  }
}
