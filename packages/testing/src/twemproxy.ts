import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { onCleanup } from './cleanup.js'
import { freePort } from './free-port.js'
import { type SpawnedProcess, spawnServer } from './process-registry.js'
import { waitForPort } from './wait-for-port.js'

export interface TwemproxyOptions {
  /** Key hash (twemproxy's default is fnv1a_64; md5 + ketama matches libmemcached). Default 'md5'. */
  hash?: string
  /** Default 'ketama'. */
  distribution?: string
  /** Server timeout in ms (twemproxy waits forever by default). Default 2000. */
  timeout?: number
  /** Eject failing servers from the ring. Default false. */
  autoEjectHosts?: boolean
}

/** A twemproxy (nutcracker) process in front of memcached servers, on a loopback port. */
export class TwemproxyServer {
  readonly host = '127.0.0.1'
  #process: SpawnedProcess | undefined

  private constructor(
    readonly port: number,
    readonly statsPort: number,
    readonly configFile: string,
  ) {}

  get address(): string {
    return `${this.host}:${this.port}`
  }

  static async start(
    backends: Array<string | { address: string; weight?: number }>,
    options: TwemproxyOptions = {},
  ) {
    const port = await freePort()
    const statsPort = await freePort()
    const dir = mkdtempSync(join(tmpdir(), 'memkit-twemproxy-'))
    const configFile = join(dir, 'nutcracker.yml')
    const servers = backends
      .map((b) => (typeof b === 'string' ? { address: b, weight: 1 } : { weight: 1, ...b }))
      .map((b) => `    - ${b.address}:${b.weight}`)
      .join('\n')
    writeFileSync(
      configFile,
      `memkit:
  listen: 127.0.0.1:${port}
  hash: ${options.hash ?? 'md5'}
  distribution: ${options.distribution ?? 'ketama'}
  timeout: ${options.timeout ?? 2000}
  auto_eject_hosts: ${options.autoEjectHosts ?? false}
  server_retry_timeout: 1000
  server_failure_limit: 2
  servers:
${servers}
`,
    )
    const proxy = new TwemproxyServer(port, statsPort, configFile)
    const binary = ['/usr/sbin/nutcracker', '/usr/bin/nutcracker'].find((p) => existsSync(p)) ?? 'nutcracker'
    const proc = spawnServer(binary, [
      '-c',
      configFile,
      '-s',
      String(statsPort),
      '-a',
      '127.0.0.1',
      '-v',
      '3',
    ])
    proxy.#process = proc
    try {
      await waitForPort('127.0.0.1', port, 5000, () => proc.child.exitCode === null)
    } catch (error) {
      proc.child.kill('SIGKILL')
      throw new Error(`twemproxy did not start: ${(error as Error).message}\n${proc.output()}`)
    }
    onCleanup(() => proxy.stop())
    return proxy
  }

  async stop(): Promise<void> {
    const proc = this.#process
    if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) return
    proc.child.kill('SIGKILL')
    await proc.exited
  }

  output(): string {
    return this.#process?.output() ?? ''
  }
}

export function startTwemproxy(
  backends: Array<string | { address: string; weight?: number }>,
  options?: TwemproxyOptions,
): Promise<TwemproxyServer> {
  return TwemproxyServer.start(backends, options)
}
