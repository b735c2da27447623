import type { CounterStore } from './counter-store.js'
import type { Algorithm } from './options.js'
import { type Decision, decideFixed, decideSliding, type Window } from './window.js'

export interface Counted {
  decision: Decision
  /** The key the request was counted under: an undo goes there and nowhere else. */
  storageKey: string
}

/**
 * Counts `cost` units in `window` and decides against `limit`. Fixed window: one
 * create-or-increment. Sliding window: the increment and a read of the previous window's
 * counter, issued together so they travel pipelined in one round trip.
 */
export function countRequest(
  store: CounterStore,
  algorithm: Algorithm,
  windowMs: number,
  base: string,
  window: Window,
  cost: number,
  limit: number,
  now: number,
): Promise<Counted> {
  const storageKey = `${base}:${window.index}`
  if (algorithm === 'fixed') {
    // The counter only has to outlive its window; the extra second covers clock rounding.
    const ttl = (window.end - now) / 1000 + 1
    return Promise.resolve(store.add(storageKey, cost, ttl)).then((count) => ({
      decision: decideFixed(count, cost, limit, window),
      storageKey,
    }))
  }
  // The current counter lives on through the next window, where it is the "previous" one.
  const ttl = (window.end + windowMs - now) / 1000 + 1
  return Promise.all([store.add(storageKey, cost, ttl), store.read(`${base}:${window.index - 1}`)]).then(
    ([current, previous]) => ({
      decision: decideSliding(current, previous, cost, limit, window, windowMs, now),
      storageKey,
    }),
  )
}
