// Set-up mistakes that only show on live requests, checked the way express-rate-limit does:
// each check warns once per limiter (a process warning with a stable code), and each can be
// turned off by its code.
import { InvalidOptionError } from '@memkit/client'

export const VALIDATION_CODES = [
  'MEMKIT_RATE_LIMIT_PERMISSIVE_TRUST_PROXY',
  'MEMKIT_RATE_LIMIT_UNEXPECTED_X_FORWARDED_FOR',
  'MEMKIT_RATE_LIMIT_DOUBLE_COUNT',
] as const

export type ValidationCode = (typeof VALIDATION_CODES)[number]

/**
 * The `validate` option: `true` (default) runs every check, `false` none, and an object turns
 * single checks off by code, e.g. `{ MEMKIT_RATE_LIMIT_PERMISSIVE_TRUST_PROXY: false }`.
 */
export type ValidateOption = boolean | Partial<Record<ValidationCode, boolean>>

/** How an adapter sees the client address of a request. */
export interface AddressSource<Req> {
  /** The client address as the framework resolves it (its trust-proxy setting applied). */
  ip(req: Req): string | undefined
  /**
   * The framework's trust-proxy setting: `true` trusts every hop, `false` / `undefined` none,
   * anything else (a hop count, addresses, a function) some; `null` when it cannot be known.
   */
  trustProxy(req: Req): unknown
  /** Whether the request carries `X-Forwarded-For`. */
  forwardedFor(req: Req): boolean
}

export function parseValidate(value: unknown): ReadonlySet<ValidationCode> {
  if (value === undefined || value === true) return new Set(VALIDATION_CODES)
  if (value === false) return new Set()
  if (typeof value !== 'object' || value === null) {
    throw new InvalidOptionError(
      '`validate` must be true, false or an object of validation codes, e.g. { MEMKIT_RATE_LIMIT_PERMISSIVE_TRUST_PROXY: false }',
    )
  }
  const enabled = new Set<ValidationCode>(VALIDATION_CODES)
  for (const [code, on] of Object.entries(value)) {
    if (!VALIDATION_CODES.includes(code as ValidationCode)) {
      throw new InvalidOptionError(
        `unknown validation \`${code}\` in \`validate\`; the codes are ${VALIDATION_CODES.join(', ')}`,
      )
    }
    if (typeof on !== 'boolean') throw new InvalidOptionError(`\`validate.${code}\` must be true or false`)
    if (!on) enabled.delete(code as ValidationCode)
  }
  return enabled
}

const SETTINGS = "Express app.set('trust proxy', ...) / Fastify({ trustProxy })"

/** The checks of one limiter (one Fastify plugin registration shares them between its routes). */
export class Validations {
  /** Checks that have neither warned nor been turned off. */
  readonly #pending: Set<ValidationCode>

  constructor(enabled: ReadonlySet<ValidationCode>) {
    this.#pending = new Set(enabled)
  }

  /**
   * The limiter keys on the client address: it is only as good as the trust-proxy setting.
   * Costs nothing once both address checks have warned (or are off).
   */
  clientAddress<Req>(req: Req, source: AddressSource<Req>): void {
    const pending = this.#pending
    if (
      !pending.has('MEMKIT_RATE_LIMIT_PERMISSIVE_TRUST_PROXY') &&
      !pending.has('MEMKIT_RATE_LIMIT_UNEXPECTED_X_FORWARDED_FOR')
    ) {
      return
    }
    const trust = source.trustProxy(req)
    if (trust === true) {
      this.#warn(
        'MEMKIT_RATE_LIMIT_PERMISSIVE_TRUST_PROXY',
        `the rate limiter keys on the client address, and the app trusts every proxy hop (${SETTINGS} is true): any client can choose its own key by sending X-Forwarded-For. Trust only your own proxies, e.g. 1 behind one load balancer (see "Behind proxies" in the @memkit/rate-limit README)`,
      )
    } else if ((trust === false || trust === undefined) && source.forwardedFor(req)) {
      this.#warn(
        'MEMKIT_RATE_LIMIT_UNEXPECTED_X_FORWARDED_FOR',
        `a request carries X-Forwarded-For, but the app trusts no proxy (${SETTINGS} is off): if a proxy is in front, every client behind it shares the proxy's address as its rate-limit key. Trust your proxies, e.g. 1 behind one load balancer (see "Behind proxies" in the @memkit/rate-limit README)`,
      )
    }
  }

  /** One request counted twice by limiters of one name. */
  doubleCount(name: string): void {
    this.#warn(
      'MEMKIT_RATE_LIMIT_DOUBLE_COUNT',
      `the rate limiter '${name}' counted one request twice: it is mounted twice, or two limiters share a name (give each its own \`name\`)`,
    )
  }

  #warn(code: ValidationCode, message: string): void {
    if (!this.#pending.delete(code)) return
    process.emitWarning(`${message}. Turn this check off with validate: { ${code}: false }.`, { code })
  }
}
