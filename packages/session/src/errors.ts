import { MemkitError } from '@memkit/client'

// Every error the store hands to a callback or emits has a stable `code`; the ones a request
// can fail with also carry the HTTP `statusCode` both frameworks' error handlers use.

/** Base class of the session store's own errors. */
export class SessionError extends MemkitError {
  override name = 'SessionError'
  override code = 'ERR_MEMKIT_SESSION'
  /** The HTTP status Express and Fastify answer with when this error reaches their error handler. */
  statusCode = 500
}

/** memcached is down, frozen or refusing: the operation failed within the client's timeout. */
export class SessionUnavailableError extends SessionError {
  override name = 'SessionUnavailableError'
  override code = 'ERR_MEMKIT_SESSION_UNAVAILABLE'
  override statusCode = 503
}

/** The serialized session does not fit in one memcached item; the stored version is unchanged. */
export class SessionTooLargeError extends SessionError {
  override name = 'SessionTooLargeError'
  override code = 'ERR_MEMKIT_SESSION_TOO_LARGE'
  constructor(
    message: string,
    /** Bytes the item would take on the server. */
    readonly size: number,
    /** The item size limit in bytes. */
    readonly limit: number,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

/** The session cannot be serialized (a cycle, a BigInt, a throwing toJSON...). */
export class SessionValueError extends SessionError {
  override name = 'SessionValueError'
  override code = 'ERR_MEMKIT_SESSION_VALUE'
}

/**
 * A stored value could not be read: corrupt bytes, a foreign format, a failed decryption or
 * authentication, or plaintext where encryption is required. Never thrown at a request: the
 * session reads as missing and this error is emitted as the store's 'error' event.
 */
export class SessionCorruptError extends SessionError {
  override name = 'SessionCorruptError'
  override code = 'ERR_MEMKIT_SESSION_CORRUPT'
  constructor(
    message: string,
    /** The memcached key (it holds a hash, never the session id). */
    readonly key: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

/** Concurrent writers of one session kept winning the compare-and-swap race; the save gave up. */
export class SessionConflictError extends SessionError {
  override name = 'SessionConflictError'
  override code = 'ERR_MEMKIT_SESSION_CONFLICT'
  override statusCode = 409
}

/** `all()` and `length()`: memcached cannot list keys, so the store refuses instead of guessing. */
export class SessionNotSupportedError extends SessionError {
  override name = 'SessionNotSupportedError'
  override code = 'ERR_MEMKIT_SESSION_NOT_SUPPORTED'
}

/** A session id that is not a non-empty string, or a method used outside its framework. */
export class SessionArgumentError extends SessionError {
  override name = 'SessionArgumentError'
  override code = 'ERR_MEMKIT_SESSION_ARGUMENT'
}
