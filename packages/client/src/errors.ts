// Every error the client raises is a MemkitError with a stable `code`, so callers can branch
// on `error.code` (or `instanceof`) without parsing messages.
//
// `instanceof` works across copies of this package (two versions in one node_modules tree, or
// the ESM and CJS builds side by side): like undici's errors, each class has a brand registered
// with Symbol.for, and `instanceof` checks the brand, not the prototype chain.

const BRANDS = Symbol.for('memkit.error.brands')

type ErrorClass = abstract new (...args: never) => unknown

/** Brands of a class and its ancestors, most derived first. */
function brandsOf(type: ErrorClass): string[] {
  const brands: string[] = []
  for (let c: unknown = type; typeof c === 'function' && c !== Error; c = Object.getPrototypeOf(c)) {
    if (Object.hasOwn(c, 'brand')) brands.push((c as unknown as { brand: string }).brand)
  }
  return brands
}

/** `instanceof` for memkit errors: `this` is the class on the right of `instanceof`. */
function hasBrand(this: ErrorClass, instance: unknown): boolean {
  // A subclass without its own brand (e.g. one an application defines) is checked the usual way.
  if (!Object.hasOwn(this, 'brand')) return Function.prototype[Symbol.hasInstance].call(this, instance)
  if (typeof instance !== 'object' || instance === null) return false
  const brands = (instance as { [BRANDS]?: unknown })[BRANDS]
  return Array.isArray(brands) && brands.includes((this as unknown as { brand: string }).brand)
}

export class MemkitError extends Error {
  /** The stable identity `instanceof` checks, shared by every copy of @memkit/client. */
  static readonly brand: string = 'memkit.MemkitError'

  override name = 'MemkitError'
  code = 'ERR_MEMKIT'

  constructor(message?: string, options?: { cause?: unknown }) {
    super(message, options)
    Object.defineProperty(this, BRANDS, { value: brandsOf(new.target), enumerable: false })
  }
}

/**
 * Whether `error` is a memkit error (from any copy of the package), optionally with one of the
 * given codes. Middleware use this rather than `instanceof` of a class they imported.
 */
export function isMemkitError(error: unknown, ...codes: string[]): error is MemkitError {
  if (typeof error !== 'object' || error === null) return false
  const brands = (error as { [BRANDS]?: unknown })[BRANDS]
  if (!Array.isArray(brands)) return false
  return codes.length === 0 || codes.includes((error as MemkitError).code)
}

// Inherited by every subclass, so `x instanceof TimeoutError` checks TimeoutError's brand.
Object.defineProperty(MemkitError, Symbol.hasInstance, { value: hasBrand })

/** An option passed to `createClient` (or a middleware) is invalid. Thrown at construction. */
export class InvalidOptionError extends MemkitError {
  static override readonly brand: string = 'memkit.InvalidOptionError'
  override name = 'InvalidOptionError'
  override code = 'ERR_MEMKIT_INVALID_OPTION'
}

/** An argument of a call is invalid (a negative TTL, a non-integer delta...). */
export class InvalidArgumentError extends MemkitError {
  static override readonly brand: string = 'memkit.InvalidArgumentError'
  override name = 'InvalidArgumentError'
  override code = 'ERR_MEMKIT_INVALID_ARGUMENT'
}

/** A key memcached cannot store: empty, too long, or with whitespace or control characters. */
export class InvalidKeyError extends MemkitError {
  static override readonly brand: string = 'memkit.InvalidKeyError'
  override name = 'InvalidKeyError'
  override code = 'ERR_MEMKIT_KEY'
  constructor(
    message: string,
    readonly key: string,
  ) {
    super(message)
  }
}

/** A value the serializer cannot represent (undefined, a function, NaN, a cyclic object...). */
export class InvalidValueError extends MemkitError {
  static override readonly brand: string = 'memkit.InvalidValueError'
  override name = 'InvalidValueError'
  override code = 'ERR_MEMKIT_VALUE'
}

/** A value over the item size limit, refused before it was sent (or refused by the server). */
export class ValueTooLargeError extends MemkitError {
  static override readonly brand: string = 'memkit.ValueTooLargeError'
  override name = 'ValueTooLargeError'
  override code = 'ERR_MEMKIT_VALUE_TOO_LARGE'
  constructor(
    message: string,
    /** Bytes the item would take on the server (value + key + item header). */
    readonly size: number,
    /** The item size limit in bytes. */
    readonly limit: number,
  ) {
    super(message)
  }
}

/** A stored value could not be decoded (corrupt data, unknown flags, bad JSON). */
export class DecodeError extends MemkitError {
  static override readonly brand: string = 'memkit.DecodeError'
  override name = 'DecodeError'
  override code = 'ERR_MEMKIT_DECODE'
  constructor(
    message: string,
    readonly key: string,
    readonly flags: number,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

/** Base for failures that concern a particular server. */
export class ServerFailureError extends MemkitError {
  static override readonly brand: string = 'memkit.ServerFailureError'
  override name = 'ServerFailureError'
  override code = 'ERR_MEMKIT_SERVER_FAILURE'
  constructor(
    message: string,
    /** `"host:port"` of the server concerned. */
    readonly server: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

/**
 * `getMany()` could not read every key because some servers failed. `hits` holds the values found
 * on the servers that answered; `failed` maps each key that could not be read to the error of its
 * server (a key in `failed` is unknown, not missing). A ServerFailureError, so code that handles
 * server failures still catches it; `server` names the first server that failed.
 */
export class PartialReadError<T = unknown> extends ServerFailureError {
  static override readonly brand: string = 'memkit.PartialReadError'
  override name = 'PartialReadError'
  override code = 'ERR_MEMKIT_PARTIAL_READ'
  constructor(
    message: string,
    /** Values of the keys that were read and found. */
    readonly hits: Map<string, T>,
    /** Each key that could not be read, with the error of its server. */
    readonly failed: Map<string, MemkitError>,
  ) {
    super(message, ...firstFailure(failed))
  }
}

/** A partial result's `server` and `cause`: its first failure. */
function firstFailure(failed: Map<string, MemkitError>): [string, { cause: unknown }] {
  const first = failed.values().next().value
  return [first instanceof ServerFailureError ? first.server : '', { cause: first }]
}

/**
 * `setMany()` or `deleteMany()` could not write every key because some servers failed (or
 * refused an item). `failed` maps each such key to its error (for a key in `failed` the write may
 * or may not have happened); `succeeded` lists the keys that were written or deleted. A
 * ServerFailureError, like PartialReadError; `server` names the first server that failed.
 */
export class PartialWriteError extends ServerFailureError {
  static override readonly brand: string = 'memkit.PartialWriteError'
  override name = 'PartialWriteError'
  override code = 'ERR_MEMKIT_PARTIAL_WRITE'
  constructor(
    message: string,
    /** Each key that could not be written, with its error. */
    readonly failed: Map<string, MemkitError>,
    /** The keys that were written (setMany) or whose delete was answered (deleteMany). */
    readonly succeeded: string[],
  ) {
    super(message, ...firstFailure(failed))
  }
}

/** The operation did not complete within its timeout. */
export class TimeoutError extends ServerFailureError {
  static override readonly brand: string = 'memkit.TimeoutError'
  override name = 'TimeoutError'
  override code = 'ERR_MEMKIT_TIMEOUT'
}

/** The connection failed: refused, reset, closed mid-request, or TLS/connect failure. */
export class ConnectionError extends ServerFailureError {
  static override readonly brand: string = 'memkit.ConnectionError'
  override name = 'ConnectionError'
  override code = 'ERR_MEMKIT_CONNECTION'
  /** True when no connection was established (refused, unreachable, TLS handshake failed). */
  connecting = false
}

/** The server is marked down after repeated failures; operations fail fast until it is retried. */
export class ServerDownError extends ConnectionError {
  static override readonly brand: string = 'memkit.ServerDownError'
  override name = 'ServerDownError'
  override code = 'ERR_MEMKIT_SERVER_DOWN'
}

/** Too many operations are waiting for one server; refused instead of queued without bound. */
export class OverloadedError extends ServerFailureError {
  static override readonly brand: string = 'memkit.OverloadedError'
  override name = 'OverloadedError'
  override code = 'ERR_MEMKIT_OVERLOADED'
}

/** The server answered SERVER_ERROR (out of memory, ...). */
export class ServerError extends ServerFailureError {
  static override readonly brand: string = 'memkit.ServerError'
  override name = 'ServerError'
  override code = 'ERR_MEMKIT_SERVER'
}

/** The server's reply was malformed or did not match the request; the connection is reset. */
export class ProtocolError extends ServerFailureError {
  static override readonly brand: string = 'memkit.ProtocolError'
  override name = 'ProtocolError'
  override code = 'ERR_MEMKIT_PROTOCOL'
}

/** incr/decr on a value that is not an unsigned decimal number. */
export class NotNumericError extends ServerFailureError {
  static override readonly brand: string = 'memkit.NotNumericError'
  override name = 'NotNumericError'
  override code = 'ERR_MEMKIT_NOT_NUMERIC'
}

/** Authentication failed (wrong credentials, or the server requires authentication). */
export class AuthError extends ServerFailureError {
  static override readonly brand: string = 'memkit.AuthError'
  override name = 'AuthError'
  override code = 'ERR_MEMKIT_AUTH'
}

/** The client was closed; no further operations are accepted. */
export class ClientClosedError extends MemkitError {
  static override readonly brand: string = 'memkit.ClientClosedError'
  override name = 'ClientClosedError'
  override code = 'ERR_MEMKIT_CLOSED'
}

/** The operation is not available on this transport or server (e.g. `stats` through twemproxy). */
export class NotSupportedError extends MemkitError {
  static override readonly brand: string = 'memkit.NotSupportedError'
  override name = 'NotSupportedError'
  override code = 'ERR_MEMKIT_NOT_SUPPORTED'
}

/** `lock()` could not acquire the lock within `wait` milliseconds. */
export class LockTimeoutError extends MemkitError {
  static override readonly brand: string = 'memkit.LockTimeoutError'
  override name = 'LockTimeoutError'
  override code = 'ERR_MEMKIT_LOCK_TIMEOUT'
}

/**
 * `remember()` waited `loadTimeout` ms for a loader that did not settle. Every caller sharing
 * that load gets it; the next call loads again, and the late result is not cached.
 */
export class LoadTimeoutError extends MemkitError {
  static override readonly brand: string = 'memkit.LoadTimeoutError'
  override name = 'LoadTimeoutError'
  override code = 'ERR_MEMKIT_LOAD_TIMEOUT'
}

/** `update()` kept losing the compare-and-swap race and gave up after its retries. */
export class CasConflictError extends MemkitError {
  static override readonly brand: string = 'memkit.CasConflictError'
  override name = 'CasConflictError'
  override code = 'ERR_MEMKIT_CAS_CONFLICT'
}

/** A counter value above Number.MAX_SAFE_INTEGER was read without `{ bigint: true }`. */
export class UnsafeIntegerError extends MemkitError {
  static override readonly brand: string = 'memkit.UnsafeIntegerError'
  override name = 'UnsafeIntegerError'
  override code = 'ERR_MEMKIT_UNSAFE_INTEGER'
}
