/** Concurrent calls with the same key share one execution of `work`. */
export class SingleFlight<T> {
  readonly #inflight = new Map<string, Promise<T>>()

  run(key: string, work: () => Promise<T>): Promise<T> {
    const existing = this.#inflight.get(key)
    if (existing) return existing
    const promise = work().finally(() => this.#inflight.delete(key))
    this.#inflight.set(key, promise)
    return promise
  }

  get size(): number {
    return this.#inflight.size
  }
}
