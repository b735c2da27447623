// Every error the client raises is a MemkitError with a stable `code`, so callers can branch
// on `error.code` (or `instanceof`) without parsing messages.

export class MemkitError extends Error {
  override name = 'MemkitError'
  code = 'ERR_MEMKIT'
}

/** An option passed to `createClient` (or a middleware) is invalid. Thrown at construction. */
export class InvalidOptionError extends MemkitError {
  override name = 'InvalidOptionError'
  override code = 'ERR_MEMKIT_INVALID_OPTION'
}

/** An argument of a call is invalid (a negative TTL, a non-integer delta...). */
export class InvalidArgumentError extends MemkitError {
  override name = 'InvalidArgumentError'
  override code = 'ERR_MEMKIT_INVALID_ARGUMENT'
}

/** A key memcached cannot store: empty, too long, or with whitespace or control characters. */
export class InvalidKeyError extends MemkitError {
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
  override name = 'InvalidValueError'
  override code = 'ERR_MEMKIT_VALUE'
}

/** A value over the item size limit, refused before it was sent (or refused by the server). */
export class ValueTooLargeError extends MemkitError {
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

/** The operation did not complete within its timeout. */
export class TimeoutError extends ServerFailureError {
  override name = 'TimeoutError'
  override code = 'ERR_MEMKIT_TIMEOUT'
}

/** The connection failed: refused, reset, closed mid-request, or TLS/connect failure. */
export class ConnectionError extends ServerFailureError {
  override name = 'ConnectionError'
  override code = 'ERR_MEMKIT_CONNECTION'
  /** True when no connection was established (refused, unreachable, TLS handshake failed). */
  connecting = false
}

/** The server is marked down after repeated failures; operations fail fast until it is retried. */
export class ServerDownError extends ConnectionError {
  override name = 'ServerDownError'
  override code = 'ERR_MEMKIT_SERVER_DOWN'
}

/** Too many operations are waiting for one server; refused instead of queued without bound. */
export class OverloadedError extends ServerFailureError {
  override name = 'OverloadedError'
  override code = 'ERR_MEMKIT_OVERLOADED'
}

/** The server answered SERVER_ERROR (out of memory, ...). */
export class ServerError extends ServerFailureError {
  override name = 'ServerError'
  override code = 'ERR_MEMKIT_SERVER'
}

/** The server's reply was malformed or did not match the request; the connection is reset. */
export class ProtocolError extends ServerFailureError {
  override name = 'ProtocolError'
  override code = 'ERR_MEMKIT_PROTOCOL'
}

/** incr/decr on a value that is not an unsigned decimal number. */
export class NotNumericError extends ServerFailureError {
  override name = 'NotNumericError'
  override code = 'ERR_MEMKIT_NOT_NUMERIC'
}

/** Authentication failed (wrong credentials, or the server requires authentication). */
export class AuthError extends ServerFailureError {
  override name = 'AuthError'
  override code = 'ERR_MEMKIT_AUTH'
}

/** The client was closed; no further operations are accepted. */
export class ClientClosedError extends MemkitError {
  override name = 'ClientClosedError'
  override code = 'ERR_MEMKIT_CLOSED'
}

/** The operation is not available on this transport or server (e.g. `stats` through twemproxy). */
export class NotSupportedError extends MemkitError {
  override name = 'NotSupportedError'
  override code = 'ERR_MEMKIT_NOT_SUPPORTED'
}

/** `lock()` could not acquire the lock within `wait` milliseconds. */
export class LockTimeoutError extends MemkitError {
  override name = 'LockTimeoutError'
  override code = 'ERR_MEMKIT_LOCK_TIMEOUT'
}

/** `update()` kept losing the compare-and-swap race and gave up after its retries. */
export class CasConflictError extends MemkitError {
  override name = 'CasConflictError'
  override code = 'ERR_MEMKIT_CAS_CONFLICT'
}

/** A counter value above Number.MAX_SAFE_INTEGER was read without `{ bigint: true }`. */
export class UnsafeIntegerError extends MemkitError {
  override name = 'UnsafeIntegerError'
  override code = 'ERR_MEMKIT_UNSAFE_INTEGER'
}
