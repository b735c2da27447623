import { Continuum } from './ketama.js'
import { Rendezvous } from './rendezvous.js'
import type { ServerNode } from './server-node.js'

/** How keys are placed on servers: libmemcached's weighted ketama, or pymemcache's rendezvous hashing. */
export type Distribution = 'ketama' | 'rendezvous'

/** A key as placement sees it: the application's key and the item's name on the server. */
export interface PlacedKey {
  /** The key the application passed (rendezvous hashes this, as pymemcache's HashClient does). */
  readonly key: string
  /** The item's name, prefix included (ketama hashes this, as libmemcached does). */
  readonly stored: string
}

interface Placement {
  lookup(key: string): number
}

/**
 * Places keys on servers. Without failover the placement always holds every server, so a down
 * server's keys fail fast and come back to it when it recovers. With failover it is rebuilt
 * from the servers that are up (as libmemcached does with auto-eject, and pymemcache's
 * HashClient when it removes a dead server), so a down server's keys move to other servers and
 * the others stay put (ketama: mostly; rendezvous: all).
 */
export class Cluster {
  readonly nodes: readonly ServerNode[]
  readonly #failover: boolean
  readonly #proxy: boolean
  readonly #byAppKey: boolean
  readonly #build: (nodes: readonly ServerNode[]) => Placement
  #next = 0
  readonly #full: Placement
  #live: Placement | undefined
  #liveNodes: readonly ServerNode[]
  #degraded = false

  /**
   * `proxy`: the servers are interchangeable proxies that place keys themselves; requests
   * are spread over the live ones round-robin and no key is hashed here.
   */
  constructor(
    nodes: readonly ServerNode[],
    failover: boolean,
    proxy = false,
    distribution: Distribution = 'ketama',
  ) {
    this.nodes = nodes
    this.#failover = failover || proxy
    this.#proxy = proxy
    this.#byAppKey = distribution === 'rendezvous'
    this.#build =
      distribution === 'rendezvous'
        ? (list) => new Rendezvous(list.map((n) => n.config))
        : (list) => new Continuum(list.map((n) => n.config))
    this.#full = this.#build(nodes)
    this.#live = this.#full
    this.#liveNodes = nodes
  }

  /** The server that owns a key right now. */
  nodeFor(key: PlacedKey): ServerNode {
    const nodes = this.#liveNodes
    if (nodes.length === 1) return nodes[0]!
    if (this.#proxy) return nodes[this.#next++ % nodes.length]!
    const hashed = this.#byAppKey ? key.key : key.stored
    const live = this.#live
    // Every server down (with failover): use the original owner, which fails fast.
    if (live === undefined) return this.nodes[this.#full.lookup(hashed)]!
    return nodes[live.lookup(hashed)]!
  }

  /** Any live server, round-robin (behind proxies, where any proxy serves any key). */
  anyNode(): ServerNode {
    const nodes = this.#liveNodes
    return nodes[this.#next++ % nodes.length]!
  }

  /**
   * The server a key belongs to when every server is up, or undefined behind proxies, where
   * the proxies place keys.
   */
  homeOf(key: PlacedKey): ServerNode | undefined {
    if (this.#proxy) return undefined
    return this.nodes[this.#full.lookup(this.#byAppKey ? key.key : key.stored)]
  }

  /**
   * True while failover moves keys: some server is down and its keys go to stand-ins. (Behind
   * proxies nothing is placed here, so nothing is ever standing in.)
   */
  get degraded(): boolean {
    return this.#degraded
  }

  /** Call when a server goes down or comes back. */
  rebuild(): void {
    if (!this.#failover) return
    const live = this.nodes.filter((node) => node.up)
    this.#degraded = !this.#proxy && live.length < this.nodes.length
    this.#liveNodes = live.length === 0 ? this.nodes : live
    this.#live =
      live.length === 0 ? undefined : live.length === this.nodes.length ? this.#full : this.#build(live)
  }
}
