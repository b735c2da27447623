// Loaded with --import into an app process that benchmarks/profile.ts starts under --cpu-prof.
// The benchmark apps answer every IPC message with their CPU time; profile.ts sends one right
// before and one right after the measured load, and this records when each arrived (monotonic
// clock in µs, the clock V8 stamps profile samples with), so the summary covers only the
// measured window and not start-up or warm-up. On SIGTERM (or when the parent goes away) it
// writes the marks and exits normally, which is what makes Node write the .cpuprofile.
// With each mark go the main thread's scheduler counters (Linux): time on a CPU and time spent
// runnable but waiting for one. The profiler samples wall-clock time, so a thread preempted by the
// other processes on a busy machine shows that wait in whatever frame it was preempted in (often
// a socket write, whose wake-up of the reader is a preemption point).
import { readFileSync, writeFileSync } from 'node:fs'

const file = process.env.MEMKIT_PROFILE_MARKS
/** One mark: when it arrived (µs, monotonic), process CPU (µs) and the main thread's counters. */
export interface Mark {
  at: number
  cpu: number
  user: number
  system: number
  sched?: { onCpu: number; waiting: number; slices: number }
  thread?: { user: number; system: number }
}

const marks: Mark[] = []

/** The main thread's own user and system time (µs; the kernel counts them in ticks of 10 ms). */
function thread() {
  try {
    const fields = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return { user: Number(fields[11]) * 10_000, system: Number(fields[12]) * 10_000 }
  } catch {
    return undefined
  }
}

function sched() {
  try {
    const [onCpu, waiting, slices] = readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8')
      .trim()
      .split(' ')
      .map(Number)
    return { onCpu: onCpu! / 1000, waiting: waiting! / 1000, slices: slices! }
  } catch {
    return undefined
  }
}

process.on('message', () => {
  const { user, system } = process.cpuUsage()
  const scheduler = sched()
  const own = thread()
  marks.push({
    at: Number(process.hrtime.bigint() / 1000n),
    cpu: user + system,
    user,
    system,
    ...(scheduler ? { sched: scheduler } : {}),
    ...(own ? { thread: own } : {}),
  })
})

function finish(): void {
  if (file) writeFileSync(file, JSON.stringify(marks))
  process.exit(0)
}

process.on('SIGTERM', finish)
process.on('disconnect', finish)
