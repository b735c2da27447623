// Everything a test starts (servers, fake listeners, proxies) registers how to stop it here,
// so one `after(stopAll)` per test file tears it all down.
const stoppers = new Set<() => Promise<void>>()

export function onCleanup(stop: () => Promise<void>): () => void {
  stoppers.add(stop)
  return () => stoppers.delete(stop)
}

/** Stops everything the harness started in this process. Safe to call more than once. */
export async function stopAll(): Promise<void> {
  const all = [...stoppers]
  stoppers.clear()
  await Promise.allSettled(all.map((stop) => stop()))
}
