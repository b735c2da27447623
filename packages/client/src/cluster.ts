import { Continuum } from './ketama.js'
import type { ServerNode } from './server-node.js'

/**
 * Places keys on servers. Without failover the ring always holds every server, so a down
 * server's keys fail fast and come back to it when it recovers. With failover the ring is
 * rebuilt from the servers that are up (as libmemcached does with auto-eject), so a down
 * server's keys move to its neighbours on the ring and the others mostly stay put.
 */
export class Cluster {
  readonly nodes: readonly ServerNode[]
  readonly #failover: boolean
  readonly #proxy: boolean
  #next = 0
  readonly #fullRing: Continuum
  #ring: Continuum | undefined
  #ringNodes: readonly ServerNode[]
  #degraded = false

  /**
   * `proxy`: the servers are interchangeable proxies that place keys themselves; requests
   * are spread over the live ones round-robin and no key is hashed here.
   */
  constructor(nodes: readonly ServerNode[], failover: boolean, proxy = false) {
    this.nodes = nodes
    this.#failover = failover || proxy
    this.#proxy = proxy
    this.#fullRing = new Continuum(nodes.map((n) => n.config))
    this.#ring = this.#fullRing
    this.#ringNodes = nodes
  }

  /** The server that owns a stored key right now. */
  nodeFor(stored: string): ServerNode {
    const nodes = this.#ringNodes
    if (nodes.length === 1) return nodes[0]!
    if (this.#proxy) return nodes[this.#next++ % nodes.length]!
    const ring = this.#ring
    // Every server down (with failover): use the original owner, which fails fast.
    if (ring === undefined) return this.nodes[this.#fullRing.lookup(stored)]!
    return nodes[ring.lookup(stored)]!
  }

  /**
   * The server a stored key belongs to when every server is up (its home on the full ring), or
   * undefined behind proxies, where the proxies place keys.
   */
  homeOf(stored: string): ServerNode | undefined {
    if (this.#proxy) return undefined
    return this.nodes[this.#fullRing.lookup(stored)]
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
    this.#ringNodes = live.length === 0 ? this.nodes : live
    this.#ring =
      live.length === 0
        ? undefined
        : live.length === this.nodes.length
          ? this.#fullRing
          : new Continuum(live.map((n) => n.config))
  }
}
