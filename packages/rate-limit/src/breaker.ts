export type BreakerState = 'closed' | 'open' | 'half-open'

export interface BreakerOptions {
  /** Consecutive store failures that open the circuit. Default `5`. */
  threshold?: number
  /** Milliseconds the circuit stays open before one request probes memcached again. Default `5000`. */
  cooldownMs?: number
}

export interface BreakerSnapshot {
  state: BreakerState
  consecutiveFailures: number
  /** Epoch ms until which memcached is not tried (while open). */
  openUntil: number | undefined
  /** Times the circuit has opened since start. */
  opened: number
}

/**
 * Stops sending to memcached for `cooldownMs` after `threshold` consecutive failures, so an
 * outage costs each request nothing instead of a full timeout. After the cooldown one request
 * probes (half-open): success closes the circuit, failure opens it again.
 */
export class CircuitBreaker {
  readonly threshold: number
  readonly cooldownMs: number
  #state: BreakerState = 'closed'
  #failures = 0
  #openUntil = 0
  #probing = false
  #opened = 0

  constructor(threshold: number, cooldownMs: number) {
    this.threshold = threshold
    this.cooldownMs = cooldownMs
  }

  get state(): BreakerState {
    return this.#state
  }

  get openUntil(): number {
    return this.#openUntil
  }

  /** Whether this request may go to memcached. */
  allow(now: number): boolean {
    if (this.#state === 'closed') return true
    if (this.#state === 'open') {
      if (now < this.#openUntil) return false
      this.#state = 'half-open'
      this.#probing = false
    }
    if (this.#probing) return false
    this.#probing = true
    return true
  }

  success(): void {
    this.#failures = 0
    this.#probing = false
    this.#state = 'closed'
  }

  /**
   * A request that was let through ended without telling whether memcached is healthy (the
   * client refused it before sending: overload): the next request may probe instead.
   */
  release(): void {
    this.#probing = false
  }

  /** Records a failure; true when this failure opened the circuit. */
  failure(now: number): boolean {
    this.#probing = false
    this.#failures++
    if (this.#state === 'half-open' || (this.#state === 'closed' && this.#failures >= this.threshold)) {
      this.#state = 'open'
      this.#openUntil = now + this.cooldownMs
      this.#opened++
      return true
    }
    return false
  }

  snapshot(): BreakerSnapshot {
    return {
      state: this.#state,
      consecutiveFailures: this.#failures,
      openUntil: this.#state === 'open' ? this.#openUntil : undefined,
      opened: this.#opened,
    }
  }
}
