// Runs test/fixtures/contender.ts in several processes that start together (see there).
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const worker = fileURLToPath(new URL('./fixtures/contender.ts', import.meta.url))

export interface ContenderResult {
  loads: number
  results: unknown[]
  errors: string[]
}

export interface Contenders {
  /** Resolves when some process's loader has started. */
  loading: Promise<void>
  /** Every process's results, once all have finished. */
  done: Promise<ContenderResult[]>
}

/** Starts `count` processes with `task`, waits until all are ready, then lets them go at once. */
export async function runContenders(count: number, task: Record<string, unknown>): Promise<Contenders> {
  const children: ChildProcessWithoutNullStreams[] = []
  const ready: Promise<void>[] = []
  const outputs: Promise<ContenderResult>[] = []
  let markLoading!: () => void
  const loading = new Promise<void>((resolve) => {
    markLoading = resolve
  })
  for (let i = 0; i < count; i++) {
    const child = spawn(process.execPath, ['--import', 'tsx', worker, JSON.stringify(task)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    children.push(child)
    let stderr = ''
    child.stderr.on('data', (chunk) => {
      stderr += chunk
    })
    const lines = createInterface({ input: child.stdout })
    let signalReady!: () => void
    let failReady!: (error: Error) => void
    ready.push(
      new Promise<void>((resolve, reject) => {
        signalReady = resolve
        failReady = reject
      }),
    )
    outputs.push(
      new Promise<ContenderResult>((resolve, reject) => {
        lines.on('line', (line) => {
          if (line === 'ready') signalReady()
          else if (line === 'loading') markLoading()
          else if (line.startsWith('{')) resolve(JSON.parse(line) as ContenderResult)
        })
        child.on('exit', (code) => {
          const error = new Error(`contender exited with ${code}: ${stderr}`)
          failReady(error)
          reject(error)
        })
      }),
    )
  }
  const timer = setTimeout(() => {
    for (const child of children) child.kill('SIGKILL')
  }, 60_000)
  try {
    await Promise.all(ready)
  } catch (error) {
    clearTimeout(timer)
    for (const child of children) child.kill('SIGKILL')
    throw error
  }
  for (const child of children) child.stdin.write('go\n')
  const done = Promise.all(outputs).finally(async () => {
    clearTimeout(timer)
    await Promise.all(children.map((child) => (child.exitCode === null ? once(child, 'exit') : undefined)))
  })
  return { loading, done }
}
