import { type ChildProcess, spawn } from 'node:child_process'

// Every process a test starts is registered here and killed when the test process exits,
// whatever the reason: the test file ends, a test fails, or an exception escapes.
const live = new Set<ChildProcess>()
let hooked = false

function killAll(): void {
  for (const child of live) {
    try {
      // SIGCONT first so a frozen (SIGSTOPped) server does not linger as a zombie-in-waiting.
      child.kill('SIGCONT')
      child.kill('SIGKILL')
    } catch {
      // already gone
    }
  }
  live.clear()
}

function hookExit(): void {
  if (hooked) return
  hooked = true
  process.once('exit', killAll)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAll()
      process.kill(process.pid, signal)
    })
  }
}

export interface SpawnedProcess {
  child: ChildProcess
  /** Resolves with the exit code (or signal name) when the process ends. */
  exited: Promise<number | string>
  /** Output collected so far (stdout and stderr), for error messages. */
  output(): string
}

/**
 * Spawns a server process that cannot outlive this test process: besides the exit hook,
 * a tiny `sh` watchdog holds a pipe to us and SIGKILLs the server when that pipe closes,
 * which also covers this process being SIGKILLed itself.
 */
export function spawnServer(
  command: string,
  args: string[],
  env: Record<string, string> = {},
): SpawnedProcess {
  hookExit()
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  let output = ''
  const collect = (chunk: Buffer) => {
    if (output.length < 64 * 1024) output += chunk.toString()
  }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  live.add(child)

  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child)
      resolve(code ?? signal ?? 'unknown')
    })
    child.once('error', (error) => {
      live.delete(child)
      output += String(error)
      resolve('spawn-error')
    })
  })

  if (child.pid !== undefined) {
    const watchdog = spawn(
      'sh',
      ['-c', `read _; kill -CONT ${child.pid} 2>/dev/null; kill -9 ${child.pid} 2>/dev/null`],
      {
        stdio: ['pipe', 'ignore', 'ignore'],
        detached: true,
      },
    )
    watchdog.unref()
    // Our end of the pipe must not keep the event loop alive.
    ;(watchdog.stdin as (NodeJS.WritableStream & { unref?: () => void }) | null)?.unref?.()
    void exited.then(() => {
      watchdog.stdin?.end()
    })
  }

  return { child, exited, output: () => output }
}

export function registeredCount(): number {
  return live.size
}
