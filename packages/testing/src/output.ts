// A passing test run prints nothing but the reporter's lines. A test that provokes a process
// warning or a log line on purpose captures it here and asserts on it; anything it did not ask
// for still reaches stderr, where it gets noticed.

export interface CapturedWarning {
  /** The warning's `code` (e.g. 'MEMKIT_RATE_LIMIT_STORE_ERROR'), or its type when it has none. */
  code: string | undefined
  message: string
}

export interface Capture<T> {
  /** What was captured so far, in order; the array fills while the capture is active. */
  readonly items: T[]
  /** Stops capturing and puts the original function back. Idempotent. */
  restore(): void
  [Symbol.dispose](): void
}

type EmitWarning = typeof process.emitWarning

/**
 * Captures process warnings whose `code` (or, for warnings without a code, whose type such as
 * 'ExperimentalWarning') is one of `codes`, instead of letting Node print them. Other warnings
 * are emitted as usual.
 */
export function captureWarnings(codes: string | readonly string[]): Capture<CapturedWarning> {
  const wanted = new Set(typeof codes === 'string' ? [codes] : codes)
  const items: CapturedWarning[] = []
  const original: EmitWarning = process.emitWarning
  const patched = function emitWarning(this: unknown, warning: string | Error, ...rest: unknown[]): void {
    const { code, type } = warningIdentity(warning, rest)
    if (wanted.has(code ?? '') || (code === undefined && wanted.has(type ?? ''))) {
      items.push({ code: code ?? type, message: typeof warning === 'string' ? warning : warning.message })
      return
    }
    Reflect.apply(original, process, [warning, ...rest])
  } as EmitWarning
  process.emitWarning = patched
  return capture(items, () => {
    if (process.emitWarning === patched) process.emitWarning = original
  })
}

/** Captures `console.error` and `console.warn` calls (e.g. Express logging an error) instead of printing them. */
export function captureConsole(
  methods: readonly ('error' | 'warn' | 'log' | 'info')[] = ['error', 'warn'],
): Capture<{ method: string; args: unknown[] }> {
  const items: { method: string; args: unknown[] }[] = []
  const originals = methods.map((method) => [method, console[method]] as const)
  for (const [method] of originals) {
    console[method] = (...args: unknown[]) => {
      items.push({ method, args })
    }
  }
  return capture(items, () => {
    for (const [method, original] of originals) console[method] = original
  })
}

/**
 * Resolves once `condition()` is true (or resolves true), checking every `intervalMs`; rejects
 * after `timeoutMs` with `message`. For states that have no event to wait on: a line logged after
 * a response, a count in memcached, a connection closed on the server's side. The deadline is a
 * bound against hanging, not a measurement: keep it generous.
 */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  { timeoutMs = 10_000, intervalMs = 5, message = 'condition not met' } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`waitUntil: ${message} within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

function capture<T>(items: T[], undo: () => void): Capture<T> {
  let restored = false
  const restore = () => {
    if (restored) return
    restored = true
    undo()
  }
  return { items, restore, [Symbol.dispose]: restore }
}

// process.emitWarning(warning, options) | (warning, type, code, ctor); an Error carries its own.
function warningIdentity(warning: string | Error, rest: unknown[]): { code?: string; type?: string } {
  const [second, third] = rest
  if (second && typeof second === 'object') {
    const options = second as { code?: string; type?: string }
    return { code: options.code, type: options.type }
  }
  if (typeof second === 'string') return { type: second, code: typeof third === 'string' ? third : undefined }
  if (warning instanceof Error) {
    return { code: (warning as Error & { code?: string }).code, type: warning.name }
  }
  return { type: 'Warning' }
}
