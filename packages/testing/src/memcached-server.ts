import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { onCleanup } from './cleanup.js'
import { writeAuthFile, writeSaslConfig } from './credentials.js'
import { freePort } from './free-port.js'
import { type SpawnedProcess, spawnServer } from './process-registry.js'
import { waitForPort } from './wait-for-port.js'

export interface MemcachedOptions {
  /** Memory limit in MiB (`-m`). Default 64. */
  memoryMb?: number
  /** Item size limit (`-I`), e.g. `'2m'`. Default memcached's own (1m). */
  itemSize?: string
  /** Max simultaneous connections (`-c`). */
  maxConnections?: number
  /** Extra command-line arguments, e.g. `['-Z', '-o', 'ssl_chain_cert=...']` or `['-Y', authFile]`. */
  args?: string[]
  /** The binary to run. Default `memcached` from PATH. */
  binary?: string
  /** Serve TLS only (`-Z`) with this certificate and key (see generateTlsMaterial). */
  tls?: { certFile: string; keyFile: string }
  /** Require ASCII authentication (`-Y`) for these users. */
  asciiAuth?: Array<{ username: string; password: string }>
  /** Require SASL (`-S`, binary protocol only) for these users (PLAIN, via a sasldb). */
  sasl?: Array<{ username: string; password: string }>
}

/** A real memcached process on a loopback port, with the fault helpers tests need. */
export class MemcachedServer {
  readonly host = '127.0.0.1'
  #process: SpawnedProcess | undefined
  #frozen = false

  private constructor(
    readonly port: number,
    private readonly argv: string[],
    private readonly binary: string,
    private readonly env: Record<string, string>,
  ) {}

  /** `"127.0.0.1:<port>"`, the form `createClient({ servers })` takes. */
  get address(): string {
    return `${this.host}:${this.port}`
  }

  get pid(): number | undefined {
    return this.#process?.child.pid
  }

  get running(): boolean {
    return (
      this.#process !== undefined &&
      this.#process.child.exitCode === null &&
      this.#process.child.signalCode === null
    )
  }

  static async start(options: MemcachedOptions = {}): Promise<MemcachedServer> {
    let lastError: unknown
    // A free port can be taken by someone else between asking and binding; try a few.
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freePort()
      const env: Record<string, string> = {}
      const args = buildArgs(port, options)
      if (options.sasl) env.SASL_CONF_PATH = writeSaslConfig(options.sasl).confDir
      if (options.asciiAuth) args.push('-Y', writeAuthFile(options.asciiAuth))
      const server = new MemcachedServer(port, args, options.binary ?? 'memcached', env)
      try {
        await server.#launch()
        return server
      } catch (error) {
        lastError = error
      }
    }
    throw lastError
  }

  async #launch(): Promise<void> {
    const proc = spawnServer(this.binary, this.argv, this.env)
    this.#process = proc
    this.#frozen = false
    try {
      await waitForPort(
        this.host,
        this.port,
        5000,
        () => proc.child.exitCode === null && proc.child.signalCode === null,
      )
    } catch (error) {
      proc.child.kill('SIGKILL')
      throw new Error(
        `memcached ${this.argv.join(' ')} did not start: ${(error as Error).message}\n${proc.output()}`,
      )
    }
  }

  /** SIGKILL: the server vanishes, connections are reset. */
  async kill(): Promise<void> {
    const proc = this.#process
    if (!proc || !this.running) return
    proc.child.kill('SIGCONT')
    proc.child.kill('SIGKILL')
    await proc.exited
  }

  /**
   * SIGSTOP: the server keeps its sockets open (the kernel still accepts connections) but
   * never answers. Resolves once the process is really stopped: a signal is delivered
   * asynchronously, and a worker thread on another core can otherwise answer a request sent
   * just after the call.
   */
  async freeze(): Promise<void> {
    if (!this.running) throw new Error('memcached is not running')
    const pid = this.pid!
    this.#process?.child.kill('SIGSTOP')
    this.#frozen = true
    for (let i = 0; i < 200; i++) {
      if (processState(pid) === 'T') return
      await sleep(5)
    }
    throw new Error(`memcached ${pid} did not stop after SIGSTOP`)
  }

  /** SIGCONT: a frozen server carries on, answering everything it had received. */
  resume(): void {
    if (!this.#frozen) return
    this.#process?.child.kill('SIGCONT')
    this.#frozen = false
  }

  /** Starts the server again on the same port with the same arguments (empty, as after a crash). */
  async restart(): Promise<void> {
    await this.kill()
    let lastError: unknown
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        await this.#launch()
        return
      } catch (error) {
        lastError = error
        await sleep(100)
      }
    }
    throw lastError
  }

  /** Stops the server for good. */
  async stop(): Promise<void> {
    await this.kill()
  }

  /** Output the process printed so far, for diagnosing a failed start. */
  output(): string {
    return this.#process?.output() ?? ''
  }
}

/** The state letter in /proc/<pid>/stat (R, S, T for stopped...), or '' when unknown. */
function processState(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
  } catch {
    return ''
  }
}

function buildArgs(port: number, options: MemcachedOptions): string[] {
  const args = ['-l', '127.0.0.1', '-p', String(port), '-U', '0', '-m', String(options.memoryMb ?? 64)]
  if (options.itemSize) args.push('-I', options.itemSize)
  if (options.maxConnections) args.push('-c', String(options.maxConnections))
  if (options.tls)
    args.push('-Z', '-o', `ssl_chain_cert=${options.tls.certFile},ssl_key=${options.tls.keyFile}`)
  if (options.sasl) args.push('-S')
  // memcached refuses to run as root without -u.
  if (typeof process.getuid === 'function' && process.getuid() === 0) args.push('-u', 'root')
  args.push(...(options.args ?? []))
  return args
}

/** Starts one memcached process; `stopAll()` stops it, and it dies with the test process at the latest. */
export async function startMemcached(options?: MemcachedOptions): Promise<MemcachedServer> {
  const server = await MemcachedServer.start(options)
  onCleanup(() => server.stop())
  return server
}

/** Starts `count` memcached processes in parallel. */
export function startMemcachedCluster(count: number, options?: MemcachedOptions): Promise<MemcachedServer[]> {
  return Promise.all(Array.from({ length: count }, () => startMemcached(options)))
}
