// The counting itself: which store commands an attempt sends. What the counts mean is the
// window module's business.
import type { CounterStore } from './counter-store.js'
import type { Attempt, Decision, WindowGrid } from './window.js'

export interface Counted {
  decision: Decision
  /** The key the request was counted under: an undo goes there and nowhere else. */
  storageKey: string
}

/**
 * Counts the attempt's cost in its window and decides. Fixed window: one create-or-increment.
 * Sliding window: the increment and a read of the previous window's counter, issued together
 * so they travel pipelined in one round trip.
 */
export function countRequest(store: CounterStore, grid: WindowGrid, attempt: Attempt): Promise<Counted> {
  const storageKey = grid.counterKey(attempt)
  const previousKey = grid.previousKey(attempt)
  const added = store.add(storageKey, attempt.cost, grid.counterTtl(attempt))
  if (previousKey === undefined) {
    return Promise.resolve(added).then((count) => ({
      decision: grid.decide(attempt, count, 0),
      storageKey,
    }))
  }
  return Promise.all([added, store.read(previousKey)]).then(([current, previous]) => ({
    decision: grid.decide(attempt, current, previous),
    storageKey,
  }))
}

/** The attempt's state without counting anything (its cost is not added). */
export function readCounts(store: CounterStore, grid: WindowGrid, attempt: Attempt): Promise<Decision> {
  const previousKey = grid.previousKey(attempt)
  return Promise.all([
    store.read(grid.counterKey(attempt)),
    previousKey === undefined ? 0 : store.read(previousKey),
  ]).then(([current, previous]) => grid.decide(attempt, current, previous))
}
