import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { checkOptions, LOCK_OPTIONS } from './arguments.js'
import { toDuration } from './duration.js'
import { InvalidArgumentError, LockTimeoutError } from './errors.js'

export interface LockOptions {
  /** Seconds (or a string such as `'30s'`) the lock lives if it is never released (a crashed holder frees it). Default `30`. */
  ttl?: number | string
  /** Milliseconds (or a string such as `'5s'`) to keep trying to acquire before failing with ERR_MEMKIT_LOCK_TIMEOUT. Default `0` (one try). */
  wait?: number | string
  /** Milliseconds (or a string such as `'50ms'`) between attempts while waiting (jittered ±50%). Default `50`. */
  retryInterval?: number | string
}

/**
 * What a released lock holds on transports without an atomic conditional delete (classic):
 * release swaps the holder's token for this marker with CAS (and a 1 s TTL), and the next
 * `lock()` may take over a marker with CAS. Tokens are base64url, so they never equal it.
 */
export const RELEASED = 'memkit:lock:released'

/** The operations a lock needs; implemented by the client. */
export interface LockBackend {
  /** Whether deleteIfUnchanged is atomic on this transport. */
  readonly conditionalDelete: boolean
  add(key: string, value: string, options: { ttl: number }): Promise<boolean>
  gets(key: string): Promise<{ value: unknown; cas: string } | undefined>
  cas(key: string, value: string, cas: string, options: { ttl: number }): Promise<boolean>
  deleteIfUnchanged(key: string, cas: string): Promise<boolean>
}

/**
 * A held lock. `release` and `extend` act only while the lock still holds this holder's
 * random token, with compare-and-swap / compare-and-delete, so a holder whose lock expired
 * and was taken by someone else can never release or extend the new holder's lock.
 */
export class Lock {
  constructor(
    readonly key: string,
    readonly token: string,
    private readonly backend: LockBackend,
  ) {}

  /** Frees the lock; false when it was no longer ours (expired, or taken over). */
  async release(): Promise<boolean> {
    const item = await this.backend.gets(this.key)
    if (!item || item.value !== this.token) return false
    if (this.backend.conditionalDelete) return this.backend.deleteIfUnchanged(this.key, item.cas)
    return this.backend.cas(this.key, RELEASED, item.cas, { ttl: 1 })
  }

  /** Gives the lock a new TTL from now; false when it was no longer ours. */
  async extend(ttl: number): Promise<boolean> {
    const item = await this.backend.gets(this.key)
    if (!item || item.value !== this.token) return false
    return this.backend.cas(this.key, this.token, item.cas, { ttl })
  }
}

export async function acquireLock(
  backend: LockBackend,
  key: string,
  options: LockOptions = {},
): Promise<Lock> {
  checkOptions(options, LOCK_OPTIONS)
  const ttl = options.ttl === undefined ? 30 : toDuration(options.ttl, 'ttl', 's', 'argument')
  const wait = options.wait === undefined ? 0 : toDuration(options.wait, 'wait', 'ms', 'argument')
  const interval =
    options.retryInterval === undefined
      ? 50
      : toDuration(options.retryInterval, 'retryInterval', 'ms', 'argument')
  if (!(ttl > 0))
    throw new InvalidArgumentError(
      'lock(): ttl must be > 0 seconds (a lock without expiry outlives a crashed holder)',
    )
  if (!(interval > 0)) throw new InvalidArgumentError('lock(): retryInterval must be > 0 ms')
  const token = randomBytes(16).toString('base64url')
  const deadline = Date.now() + wait
  for (;;) {
    if (await backend.add(key, token, { ttl })) return new Lock(key, token, backend)
    if (!backend.conditionalDelete) {
      const item = await backend.gets(key)
      if (item?.value === RELEASED && (await backend.cas(key, token, item.cas, { ttl })))
        return new Lock(key, token, backend)
    }
    const left = deadline - Date.now()
    if (left <= 0)
      throw new LockTimeoutError(`lock ${key} is held by someone else${wait ? ` (waited ${wait} ms)` : ''}`)
    await sleep(Math.min(left, interval * (0.5 + Math.random())))
  }
}
