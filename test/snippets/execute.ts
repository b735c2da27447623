// Runs a `run` snippet as its own Node process against real memcached servers.
//
// A README shows the addresses a reader would write (`'10.0.0.1:11211'`, `'127.0.0.1:11211'`,
// `{ host: '10.0.0.2', port: 11211 }`). Before running, each distinct `host:11211` is replaced by
// the address of a memcached started for this block (the first address by the first server, and
// so on); nothing else in the block changes. `createClient()` without servers reads
// MEMCACHED_SERVERS, which names the first server.
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { startMemcached } from '@memkit/testing'

const RUNNER = fileURLToPath(new URL('run-snippet.mjs', import.meta.url))
const HOST_PORT =
  /(?<![\w.-])((?:\d{1,3}(?:\.\d{1,3}){3})|localhost|\[[0-9a-fA-F:]+\]|[a-zA-Z][\w-]*(?:\.[\w-]+)*):11211\b/g
const HOST_OBJECT = /host:\s*(['"])([^'"]+)\1,\s*port:\s*11211\b/g

/** Environment of every run: the secrets the READMEs read from process.env. */
export const RUN_ENV = {
  COOKIE_SECRET: 'a-cookie-secret-of-at-least-32-characters',
  SESSION_STORE_SECRET: 'a-session-store-secret',
}

export interface RunResult {
  ok: boolean
  exitCode: number | null
  stdout: string
  stderr: string
  servers: string[]
}

export async function runSnippet(modulePath: string, source: string, timeoutMs = 30_000): Promise<RunResult> {
  const hosts = new Map<string, number>()
  for (const match of source.matchAll(HOST_PORT)) if (!hosts.has(match[1]!)) hosts.set(match[1]!, hosts.size)
  for (const match of source.matchAll(HOST_OBJECT))
    if (!hosts.has(match[2]!)) hosts.set(match[2]!, hosts.size)
  const servers = await Promise.all(Array.from({ length: Math.max(1, hosts.size) }, () => startMemcached()))
  try {
    const address = (host: string) => servers[hosts.get(host)!]!
    const runnable = source
      .replace(HOST_PORT, (_, host: string) => address(host).address)
      .replace(HOST_OBJECT, (_, quote: string, host: string) => {
        const server = address(host)
        return `host: ${quote}${server.host}${quote}, port: ${server.port}`
      })
    const runPath = modulePath.replace(/\.(mts|mjs)$/, '.run.$1')
    writeFileSync(runPath, runnable)
    const result = await new Promise<RunResult>((resolve) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', RUNNER, runPath],
        {
          env: { ...process.env, ...RUN_ENV, MEMCACHED_SERVERS: servers[0]!.address, NODE_OPTIONS: '' },
          timeout: timeoutMs,
          killSignal: 'SIGKILL',
        },
        (error, stdout, stderr) => {
          const exitCode = error ? ((error as { code?: number }).code ?? null) : 0
          resolve({
            ok: !error && stderr === '',
            exitCode: typeof exitCode === 'number' ? exitCode : null,
            stdout,
            stderr,
            servers: servers.map((s) => s.address),
          })
        },
      )
    })
    return result
  } finally {
    await Promise.all(servers.map((server) => server.stop()))
  }
}
