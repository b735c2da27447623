// The suite's own origin server (vendor/cache-tests/test-engine/server/server.mjs, unmodified),
// started as a child process on a free loopback port.
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const SERVER = fileURLToPath(new URL('./vendor/cache-tests/test-engine/server/server.mjs', import.meta.url))

export interface Origin {
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  stop(): Promise<void>
}

export async function startOrigin(): Promise<Origin> {
  const dir = mkdtempSync(join(tmpdir(), 'memkit-cache-tests-'))
  // The server reads its settings from npm's config variables, as `npm run server` would set them.
  const child: ChildProcess = spawn(process.execPath, [SERVER], {
    cwd: dir,
    env: {
      ...process.env,
      npm_config_protocol: 'http',
      npm_config_port: '0',
      npm_config_pidfile: join(dir, 'server.pid'),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const port = await new Promise<number>((resolve, reject) => {
    let seen = ''
    const onData = (chunk: Buffer) => {
      seen += chunk.toString()
      const m = /Listening on http:\/\/[^\s]*:(\d+)\//.exec(seen)
      if (m) {
        child.stdout!.off('data', onData)
        // The origin logs a warning for every request it cannot match; keep reading so it never blocks.
        child.stdout!.resume()
        resolve(Number(m[1]))
      }
    }
    child.stdout!.on('data', onData)
    child.once('exit', (code) =>
      reject(new Error(`origin server exited (${code}) before listening: ${seen}`)),
    )
  })
  return {
    url: `http://127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill('SIGTERM')
        await exited
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
