import { createHistogram } from 'node:perf_hooks'

export interface Measurement {
  opsPerSec: number
  /** Latency percentiles in microseconds. */
  p50: number
  p99: number
  mean: number
  errors: number
}

/**
 * Runs `op` from `concurrency` loops for `durationMs` (after a warm-up) and reports throughput
 * and latency. Each loop awaits its own operation before starting the next, so `concurrency`
 * is the number of operations in flight.
 */
export async function measure(
  op: () => Promise<unknown>,
  { concurrency, durationMs, warmupMs = 300 }: { concurrency: number; durationMs: number; warmupMs?: number },
): Promise<Measurement> {
  await runFor(op, concurrency, warmupMs, undefined)
  const histogram = createHistogram()
  const result = await runFor(op, concurrency, durationMs, histogram)
  return {
    opsPerSec: result.ops / (result.elapsedMs / 1000),
    p50: histogram.percentile(50),
    p99: histogram.percentile(99),
    mean: histogram.mean,
    errors: result.errors,
  }
}

async function runFor(
  op: () => Promise<unknown>,
  concurrency: number,
  durationMs: number,
  histogram: ReturnType<typeof createHistogram> | undefined,
): Promise<{ ops: number; errors: number; elapsedMs: number }> {
  let ops = 0
  let errors = 0
  const start = performance.now()
  const end = start + durationMs
  const loop = async () => {
    while (performance.now() < end) {
      const t0 = performance.now()
      try {
        await op()
        ops++
      } catch {
        errors++
      }
      // performance.now() allocates nothing (hrtime.bigint() does): the harness's own cost per
      // operation is the same for every library, but smaller is fairer to the fast ones.
      histogram?.record(Math.max(1, Math.round((performance.now() - t0) * 1000)))
    }
  }
  await Promise.all(Array.from({ length: concurrency }, loop))
  return { ops, errors, elapsedMs: performance.now() - start }
}
