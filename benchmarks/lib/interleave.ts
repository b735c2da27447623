// Interleaved measurement for contenders that run in this process: every round runs each
// contender once (A, B, C, A, B, C, ...), so a burst of load from elsewhere on a shared machine
// spreads over all of them, and each figure is the median round. CPU time per operation is this
// process's user + system time during the contender's run, divided by its operations: it drifts
// far less than throughput on a shared machine.
import { loadavg } from 'node:os'
import { createHistogram } from 'node:perf_hooks'

export interface Contender {
  name: string
  /** One operation; `loops` of them are kept in flight. */
  op?: () => Promise<unknown>
  /**
   * Or a self-driven run (e.g. a raw socket loop): runs for `durationMs` and resolves with the
   * number of operations it completed.
   */
  run?: (durationMs: number) => Promise<number>
}

export interface Figures {
  name: string
  /** Median operations per second over the rounds. */
  opsPerSec: number
  /** Median CPU microseconds (user + system) per operation. */
  cpuMicros: number
  /** Median latency percentiles in microseconds (only for `op` contenders). */
  p50: number
  p99: number
  errors: number
  rounds: number[]
}

export interface InterleaveOptions {
  /** Operations in flight per contender. */
  concurrency: number
  /**
   * Record each operation's latency (two clock reads and a histogram entry per operation, about
   * 0.15 µs of CPU here). Off when comparing CPU per operation with a loop that has no such
   * bookkeeping. Default `true`.
   */
  latency?: boolean
  durationMs: number
  rounds: number
  warmupMs?: number
}

export async function interleave(contenders: Contender[], options: InterleaveOptions): Promise<Figures[]> {
  const samples = contenders.map(() => ({
    ops: [] as number[],
    cpu: [] as number[],
    p50: [] as number[],
    p99: [] as number[],
    errors: 0,
  }))
  for (const contender of contenders)
    await runOnce(contender, options.concurrency, options.warmupMs ?? 300, false)
  for (let round = 0; round < options.rounds; round++) {
    for (const [i, contender] of contenders.entries()) {
      const result = await runOnce(
        contender,
        options.concurrency,
        options.durationMs,
        options.latency ?? true,
      )
      samples[i]!.ops.push(result.opsPerSec)
      samples[i]!.cpu.push(result.cpuMicros)
      samples[i]!.p50.push(result.p50)
      samples[i]!.p99.push(result.p99)
      samples[i]!.errors += result.errors
    }
  }
  return contenders.map((contender, i) => ({
    name: contender.name,
    opsPerSec: median(samples[i]!.ops),
    cpuMicros: median(samples[i]!.cpu),
    p50: median(samples[i]!.p50),
    p99: median(samples[i]!.p99),
    errors: samples[i]!.errors,
    rounds: samples[i]!.ops,
  }))
}

async function runOnce(contender: Contender, concurrency: number, durationMs: number, latency: boolean) {
  const cpu0 = process.cpuUsage()
  const start = performance.now()
  let ops = 0
  let errors = 0
  const histogram = createHistogram()
  if (contender.run) {
    ops = await contender.run(durationMs)
  } else {
    const op = contender.op!
    const end = start + durationMs
    let stop = false
    const lean = async () => {
      while (!stop) {
        try {
          await op()
          ops++
        } catch {
          errors++
        }
      }
    }
    const loop = async () => {
      while (performance.now() < end) {
        const t0 = performance.now()
        try {
          await op()
          ops++
        } catch {
          errors++
        }
        histogram.record(Math.max(1, Math.round((performance.now() - t0) * 1000)))
      }
    }
    if (latency) {
      await Promise.all(Array.from({ length: concurrency }, loop))
    } else {
      const timer = setTimeout(() => {
        stop = true
      }, durationMs)
      await Promise.all(Array.from({ length: concurrency }, lean))
      clearTimeout(timer)
    }
  }
  const elapsed = performance.now() - start
  const cpu = process.cpuUsage(cpu0)
  return {
    opsPerSec: ops / (elapsed / 1000),
    cpuMicros: ops > 0 ? (cpu.user + cpu.system) / ops : 0,
    p50: contender.run || !latency ? 0 : histogram.percentile(50),
    p99: contender.run || !latency ? 0 : histogram.percentile(99),
    errors,
  }
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** The 1-minute load average, to print beside figures taken on a shared machine. */
export function loadAverage(): string {
  return loadavg()
    .map((n) => n.toFixed(2))
    .join(' ')
}
