// The public face of the store: the contract both frameworks call (callbacks or Promises),
// express-session's Store base re-implemented, failures turned into typed session errors, and
// the store's events. What each operation does with memcached is in sessions.ts (load, save,
// touch) and namespace.ts (keys, destroy, clear).
import { channel } from 'node:diagnostics_channel'
import { EventEmitter } from 'node:events'
import { isMemkitError, type MemkitClient, ServerFailureError } from '@memkit/client'
import { resolveClient } from '@memkit/client/internal'
import {
  SessionArgumentError,
  type SessionError,
  SessionNotSupportedError,
  SessionTooLargeError,
  SessionUnavailableError,
} from './errors.js'
import {
  type ExpressRequestLike,
  type ExpressSession,
  expressClasses,
  type Generate,
  inflateExpressSession,
} from './express.js'
import { Namespace } from './namespace.js'
import { type MemcachedStoreOptions, parseStoreOptions, type StoreConfig } from './options.js'
import { carryLoad, Sessions } from './sessions.js'
import type { Callback, SessionRecord } from './types.js'

/** Published for every error the store reports (also emitted as 'error' when someone listens). */
export const SESSION_ERROR_CHANNEL = 'memkit:session:error'
const errorChannel = channel(SESSION_ERROR_CHANNEL)

export interface StoreEvents {
  /** A stored value could not be read, or a failure was absorbed (`onUnavailable: 'new-session'`). */
  error: [SessionError]
  /** `emitDisconnect`: every memcached server is marked down. */
  disconnect: []
  /** `emitDisconnect`: a server is back after a 'disconnect'. */
  connect: []
}

const noop = () => {}

/**
 * A memcached session store for express-session and @fastify/session. Every method takes a
 * Node-style callback (what both frameworks pass) or, without one, returns a Promise.
 */
export class MemcachedStore extends EventEmitter<StoreEvents> {
  readonly client: MemkitClient
  readonly config: StoreConfig
  /** Assigned by the express-session middleware; creates a fresh session on a request. */
  generate?: Generate
  readonly #ownsClient: boolean
  readonly #namespace: Namespace
  readonly #sessions: Sessions
  #detach: (() => void) | undefined

  constructor(options: MemcachedStoreOptions = {}) {
    super()
    this.config = parseStoreOptions(options)
    const resolved = resolveClient(options, 'MemcachedStore')
    this.client = resolved.client
    this.#ownsClient = resolved.owned
    const report = (error: SessionError) => this.#report(error)
    this.#namespace = new Namespace(this.client, this.config, report)
    this.#sessions = new Sessions(this.client, this.config, this.#namespace, report)
    if (this.config.emitDisconnect) this.#watchServers()
  }

  // ---- the store contract ---------------------------------------------------------------

  /** The session saved under `sid`, or null. */
  get(sid: string): Promise<SessionRecord | null>
  get(sid: string, callback: Callback<SessionRecord | null>): void
  get(sid: string, callback?: Callback<SessionRecord | null>): Promise<SessionRecord | null> | undefined {
    return settle(
      this.#guard('read', this.#sessions.load(sid), () => null),
      callback,
    )
  }

  /** Saves the session (or only refreshes its expiry when its data is what was loaded). */
  set(sid: string, session: object): Promise<void>
  set(sid: string, session: object, callback: Callback): void
  set(sid: string, session: object, callback?: Callback): Promise<void> | undefined {
    return settle(this.#guard('save', this.#sessions.save(sid, session), noop), callback)
  }

  /** Refreshes the session's expiry with memcached's touch command; never rewrites its data. */
  touch(sid: string, session: object): Promise<void>
  touch(sid: string, session: object, callback: Callback): void
  touch(sid: string, session: object, callback?: Callback): Promise<void> | undefined {
    return settle(this.#guard('touch', this.#sessions.touch(sid, session), noop), callback)
  }

  /** Deletes the session, leaving a short-lived tombstone so no in-flight request can save it back. */
  destroy(sid: string): Promise<void>
  destroy(sid: string, callback: Callback): void
  destroy(sid: string, callback?: Callback): Promise<void> | undefined {
    // Never absorbed by onUnavailable: a logout that did not happen must not look like one that did.
    return settle(this.#guard('destroy', this.#destroy(sid)), callback)
  }

  /** Ends every session of this prefix at once by moving to a new namespace generation. */
  clear(): Promise<void>
  clear(callback: Callback): void
  clear(callback?: Callback): Promise<void> | undefined {
    return settle(this.#guard('clear', this.#namespace.clear()), callback)
  }

  /** Not supported: memcached cannot list keys. Fails with ERR_MEMKIT_SESSION_NOT_SUPPORTED. */
  length(): Promise<number>
  length(callback: Callback<number>): void
  length(callback?: Callback<number>): Promise<number> | undefined {
    return settle(Promise.reject(notSupported('length')), callback)
  }

  /** Not supported: memcached cannot list keys. Fails with ERR_MEMKIT_SESSION_NOT_SUPPORTED. */
  all(): Promise<SessionRecord[]>
  all(callback: Callback<SessionRecord[]>): void
  all(callback?: Callback<SessionRecord[]>): Promise<SessionRecord[]> | undefined {
    return settle(Promise.reject(notSupported('all')), callback)
  }

  // ---- express-session's Store base ------------------------------------------------------

  /** Destroys the request's session and gives it a new one (express-session's Store#regenerate). */
  regenerate(req: ExpressRequestLike, callback: (error?: unknown) => void): void {
    this.destroy(req.sessionID as string, (error) => {
      if (typeof this.generate !== 'function') {
        callback(
          new SessionArgumentError('regenerate() needs the express-session middleware (store.generate)'),
        )
        return
      }
      this.generate(req)
      callback(error)
    })
  }

  /**
   * Loads a session as express-session's Session object (express-session's Store#load).
   * Generic so that it matches an application's own `SessionData` (augmented with required
   * fields, as express-session's documentation suggests).
   */
  load<S = ExpressSession | SessionRecord>(
    sid: string,
    callback: (error: unknown, session?: S) => void,
  ): void {
    this.get(sid, (error, data) => {
      if (error) {
        callback(error)
        return
      }
      if (!data) {
        callback(null)
        return
      }
      callback(null, this.createSession<S>({ sessionID: sid, sessionStore: this }, data))
    })
  }

  /**
   * Turns loaded data into express-session's Session on `req` (express-session's
   * Store#createSession). Generic for the same reason as `load`.
   */
  createSession<S = ExpressSession, D extends object = SessionRecord>(req: ExpressRequestLike, input: D): S {
    const data = input as unknown as SessionRecord
    if (typeof this.generate !== 'function') {
      // Not attached to express-session: plain data is all there is to give.
      req.session = data
      return data as S
    }
    const session = inflateExpressSession(expressClasses(this.generate, this, req), req, data)
    carryLoad(data, session)
    return session as S
  }

  /** Detaches from the client's events and closes the client if the store created it. */
  async close(): Promise<void> {
    this.#detach?.()
    this.#detach = undefined
    if (this.#ownsClient) await this.client.close()
  }

  // ---- operations ------------------------------------------------------------------------

  async #destroy(sid: string): Promise<void> {
    const hash = this.#namespace.hash(sid)
    this.#sessions.forget(hash)
    await this.#namespace.destroy(hash)
  }

  // ---- failures ---------------------------------------------------------------------------

  #guard<T>(operation: string, promise: Promise<T>, absorb?: () => T): Promise<T> {
    return promise.catch((error: unknown) => {
      // instanceof checks the client's Symbol.for brand, so errors from another copy of
      // @memkit/client (version skew, the ESM and CJS builds side by side) are recognised too.
      if (error instanceof ServerFailureError) {
        const unavailable = new SessionUnavailableError(
          `session ${operation} failed: memcached is unavailable (${error.code}: ${error.message})`,
          { cause: error },
        )
        if (absorb && this.config.onUnavailable === 'new-session') {
          this.#report(unavailable)
          return absorb()
        }
        throw unavailable
      }
      if (isMemkitError(error, 'ERR_MEMKIT_VALUE_TOO_LARGE')) {
        const { size, limit } = error as unknown as { size: number; limit: number }
        throw new SessionTooLargeError(
          `session ${operation} failed: the session needs a ${size}-byte memcached item, over the ${limit}-byte item size limit; the stored session is unchanged (store less in the session, or raise memcached -I and the client's maxItemSize)`,
          size,
          limit,
          { cause: error },
        )
      }
      throw error
    })
  }

  #report(error: SessionError): void {
    if (errorChannel.hasSubscribers) errorChannel.publish({ error })
    // An 'error' event without a listener throws; a bad stored value must never crash the app.
    if (this.listenerCount('error') > 0) this.emit('error', error)
  }

  #watchServers(): void {
    const total = this.client.config.servers.length
    const down = new Set<string>()
    let disconnected = false
    const onDown = ({ server }: { server: string }) => {
      down.add(server)
      if (!disconnected && down.size >= total) {
        disconnected = true
        this.emit('disconnect')
      }
    }
    const onUp = ({ server }: { server: string }) => {
      down.delete(server)
      if (disconnected) {
        disconnected = false
        this.emit('connect')
      }
    }
    this.client.on('server:down', onDown)
    this.client.on('server:up', onUp)
    this.#detach = () => {
      this.client.off('server:down', onDown)
      this.client.off('server:up', onUp)
    }
  }
}

// ---- helpers ---------------------------------------------------------------------------

/** Calls back outside the promise chain (a throwing callback is the caller's, never swallowed). */
function settle<T>(promise: Promise<T>, callback: Callback<T> | undefined): Promise<T> | undefined {
  if (typeof callback === 'function') {
    promise.then(
      (value) => process.nextTick(callback, null, value),
      (error: Error) => process.nextTick(callback, error),
    )
    return undefined
  }
  // An ignored promise (e.g. `req.session.destroy()` without a callback) must not become an
  // unhandled rejection; whoever awaits it still gets the error.
  promise.catch(noop)
  return promise
}

function notSupported(method: string): SessionNotSupportedError {
  return new SessionNotSupportedError(
    `${method}() is not supported: memcached cannot list or count keys, and a count from slab statistics would be wrong. Track sessions elsewhere if you need them.`,
  )
}
