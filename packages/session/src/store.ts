import { createHmac } from 'node:crypto'
import { channel } from 'node:diagnostics_channel'
import { EventEmitter } from 'node:events'
import {
  createClient,
  DecodeError,
  type MemkitClient,
  NotNumericError,
  ServerFailureError,
  ValueTooLargeError,
} from '@memkit/client'
import { decodeStored, encodeSession, encodeTombstone, isTombstone, type StoredSession } from './envelope.js'
import {
  SessionArgumentError,
  SessionConflictError,
  SessionCorruptError,
  type SessionError,
  SessionNotSupportedError,
  SessionTooLargeError,
  SessionUnavailableError,
  SessionValueError,
} from './errors.js'
import {
  type ExpressRequestLike,
  type ExpressSession,
  expressClasses,
  type Generate,
  inflateExpressSession,
} from './express.js'
import { type MemcachedStoreOptions, parseStoreOptions, type StoreConfig } from './options.js'
import { type KeyState, RecentSessions } from './recent.js'
import { sessionTtl } from './ttl.js'
import type { Callback, SessionCookieData, SessionInput, SessionRecord } from './types.js'

/** Published for every error the store reports (also emitted as 'error' when someone listens). */
export const SESSION_ERROR_CHANNEL = 'memkit:session:error'
const errorChannel = channel(SESSION_ERROR_CHANNEL)

/** Attempts of the compare-and-swap save loop before ERR_MEMKIT_SESSION_CONFLICT. */
const WRITE_ATTEMPTS = 10
/** Hashed keys whose generation, creation time and last refresh this process remembers. */
const RECENT_LIMIT = 10_000

/** What a request loaded, attached to the very object it saves again (per request, not per key). */
interface LoadState {
  hash: string
  gen: number
  createdAt: number
  dataJson: string
  cookieJson: string
  cookieSig?: string
  /** CAS token of the entry as loaded: a save can compare-and-swap at once (one round trip). */
  cas?: string
}

/** What a save or touch knows about the entry it is about to replace. */
interface Known {
  gen: number
  createdAt: number
  cas?: string
}

type RefreshOutcome = 'touched' | 'skipped' | 'missing' | 'expired'

export interface StoreEvents {
  /** A stored value could not be read, or a failure was absorbed (`onUnavailable: 'new-session'`). */
  error: [SessionError]
  /** `emitDisconnect`: every memcached server is marked down. */
  disconnect: []
  /** `emitDisconnect`: a server is back after a 'disconnect'. */
  connect: []
}

const loads = new WeakMap<object, LoadState>()
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
  readonly #genKey: string
  readonly #recent = new RecentSessions(RECENT_LIMIT)
  /** HMACs of recent session ids: a request hashes its id on get and again on set/touch. */
  readonly #hashes = new Map<string, string>()
  #gen: number | undefined
  #keyStart = { gen: Number.NaN, text: '' }
  #detach: (() => void) | undefined

  constructor(options: MemcachedStoreOptions = {}) {
    super()
    this.config = parseStoreOptions(options)
    if (options.client) {
      this.client = options.client
      this.#ownsClient = false
    } else {
      this.client = createClient({ ...options.clientOptions, servers: options.servers })
      this.#ownsClient = true
    }
    this.#genKey = `${this.config.prefix}gen`
    if (this.config.emitDisconnect) this.#watchServers()
  }

  // ---- the store contract ---------------------------------------------------------------

  /** The session saved under `sid`, or null. */
  get(sid: string): Promise<SessionRecord | null>
  get(sid: string, callback: Callback<SessionRecord | null>): void
  get(sid: string, callback?: Callback<SessionRecord | null>): Promise<SessionRecord | null> | undefined {
    return settle(
      this.#guard('read', this.#get(sid), () => null),
      callback,
    )
  }

  /** Saves the session (or only refreshes its expiry when its data is what was loaded). */
  set(sid: string, session: object): Promise<void>
  set(sid: string, session: object, callback: Callback): void
  set(sid: string, session: object, callback?: Callback): Promise<void> | undefined {
    return settle(this.#guard('save', this.#set(sid, session), noop), callback)
  }

  /** Refreshes the session's expiry with memcached's touch command; never rewrites its data. */
  touch(sid: string, session: object): Promise<void>
  touch(sid: string, session: object, callback: Callback): void
  touch(sid: string, session: object, callback?: Callback): Promise<void> | undefined {
    return settle(this.#guard('touch', this.#touchSession(sid, session), noop), callback)
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
    return settle(this.#guard('clear', this.#clear()), callback)
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
    const load = loads.get(data)
    const session = inflateExpressSession(expressClasses(this.generate, this, req), req, data)
    if (load) loads.set(session, load)
    return session as S
  }

  /** Detaches from the client's events and closes the client if the store created it. */
  async close(): Promise<void> {
    this.#detach?.()
    this.#detach = undefined
    if (this.#ownsClient) await this.client.close()
  }

  // ---- operations ------------------------------------------------------------------------

  async #get(sid: string): Promise<SessionRecord | null> {
    const hash = this.#hash(sid)
    let gen: number
    let item: { value: unknown; cas: string } | undefined
    try {
      ;({ gen, value: item } = await this.#withGen((g) => this.client.gets(this.#key(g, hash))))
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error
      this.#report(
        new SessionCorruptError(
          `session ${error.key} cannot be decoded; starting a fresh session`,
          error.key,
          { cause: error },
        ),
      )
      return null
    }
    if (item === undefined) return null
    const key = this.#key(gen, hash)
    const decoded = decodeStored(item.value, key, this.config.keyRing)
    if (decoded.kind === 'tombstone') return null
    if (decoded.kind === 'corrupt') {
      this.#report(new SessionCorruptError(`session ${key} ${decoded.reason}; starting a fresh session`, key))
      return null
    }
    const now = Date.now()
    const maxLifetime = this.config.maxLifetimeMs
    if (maxLifetime !== undefined && now >= decoded.createdAt + maxLifetime) return null
    const data = this.#toRecord(decoded, key, now)
    if (!data) return null
    const cookieJson = decoded.cookieJson
    const previous = this.#recent.get(hash)
    const sameEntry = previous && previous.gen === gen && previous.createdAt === decoded.createdAt
    this.#recent.set(hash, {
      gen,
      createdAt: decoded.createdAt,
      cookieJson,
      refreshedAt: Math.max(decoded.writtenAt, sameEntry ? previous.refreshedAt : 0),
      cas: item.cas,
    })
    loads.set(data, {
      hash,
      gen,
      createdAt: decoded.createdAt,
      dataJson: decoded.dataJson,
      cookieJson,
      cas: item.cas,
    })
    return data
  }

  #toRecord(decoded: StoredSession, key: string, now: number): SessionRecord | undefined {
    let data: unknown
    let cookie: unknown
    try {
      data = JSON.parse(decoded.dataJson)
      cookie = JSON.parse(decoded.cookieJson)
    } catch (error) {
      this.#report(
        new SessionCorruptError(`session ${key} holds invalid JSON; starting a fresh session`, key, {
          cause: error,
        }),
      )
      return undefined
    }
    if (typeof data !== 'object' || data === null || Array.isArray(data)) {
      this.#report(
        new SessionCorruptError(`session ${key} holds no session object; starting a fresh session`, key),
      )
      return undefined
    }
    const record = data as SessionRecord
    record.cookie = reviveCookie(cookie, now)
    return record
  }

  async #set(sid: string, session: object): Promise<void> {
    const hash = this.#hash(sid)
    const input = asSession(session)
    const now = Date.now()
    const { cookieJson, dataJson } = serialize(input)
    let load = loads.get(input)
    if (load && load.hash !== hash) load = undefined
    const state = this.#recent.get(hash)
    if (this.#unchanged(input, load, state, dataJson, cookieJson)) {
      // Same data as loaded: refresh the expiry, do not rewrite (a concurrent write survives).
      const outcome = await this.#refresh(hash, input, load ?? state, now)
      if (outcome !== 'missing') return
    }
    await this.#write(hash, input, cookieJson, dataJson, load ?? state, now)
  }

  #unchanged(
    session: SessionInput,
    load: LoadState | undefined,
    state: KeyState | undefined,
    dataJson: string,
    cookieJson: string,
  ): boolean {
    if (load) return load.dataJson === dataJson && sameCookie(load, cookieJson)
    // @fastify/session makes its own session object from ours, but it knows whether it changed.
    const isModified = (session as { isModified?: unknown }).isModified
    if (state && typeof isModified === 'function') {
      return isModified.call(session) === false && sameCookie(state, cookieJson)
    }
    return false
  }

  async #touchSession(sid: string, session: object): Promise<void> {
    const hash = this.#hash(sid)
    const input = asSession(session)
    let load = loads.get(input)
    if (load && load.hash !== hash) load = undefined
    // A touch of a session that is gone (expired, destroyed, cleared) does not bring it back.
    await this.#refresh(hash, input, load ?? this.#recent.get(hash), Date.now())
  }

  async #refresh(
    hash: string,
    session: SessionInput,
    known: Known | undefined,
    now: number,
  ): Promise<RefreshOutcome> {
    let gen = known?.gen
    let createdAt = known?.createdAt
    if (gen === undefined && this.config.maxLifetimeMs === undefined) {
      gen = this.#gen ?? (await this.#readGen())
    } else if (gen === undefined) {
      // Not loaded by this process (direct use, or evicted from RECENT_LIMIT): maxLifetime needs
      // the creation time, so read it.
      let value: unknown
      try {
        ;({ gen, value } = await this.#withGen((g) => this.client.get(this.#key(g, hash))))
      } catch (error) {
        if (error instanceof DecodeError) return 'missing'
        throw error
      }
      if (value === undefined) return 'missing'
      const decoded = decodeStored(value, this.#key(gen, hash), this.config.keyRing)
      if (decoded.kind === 'session') createdAt = decoded.createdAt
    }
    const key = this.#key(gen, hash)
    const ttl = sessionTtl(session, this.config.ttl, now, createdAt ?? now, this.config.maxLifetimeMs)
    if (ttl <= 0) {
      await this.client.delete(key)
      this.#recent.delete(hash)
      return 'expired'
    }
    const state = this.#recent.get(hash)
    if (
      this.config.touchAfterMs > 0 &&
      state &&
      state.gen === gen &&
      now - state.refreshedAt < this.config.touchAfterMs
    ) {
      return 'skipped'
    }
    if (!(await this.client.touch(key, ttl))) return 'missing'
    if (state && state.gen === gen) state.refreshedAt = now
    return 'touched'
  }

  async #write(
    hash: string,
    session: SessionInput,
    cookieJson: string,
    dataJson: string,
    known: Known | undefined,
    now: number,
  ): Promise<void> {
    const ring = this.config.keyRing
    const maxLifetime = this.config.maxLifetimeMs
    const saved = (gen: number, createdAt: number) => {
      this.#recent.set(hash, { gen, createdAt, cookieJson, refreshedAt: now })
      loads.set(session, { hash, gen, createdAt, dataJson, cookieJson })
    }

    // Fast paths, one round trip each when nothing raced this request.
    if (known?.cas !== undefined) {
      // Compare-and-swap against the entry as loaded: fails if anything (a save, a destroy's
      // tombstone, an expiry) touched it since, and then the loop below sorts it out.
      const cas = known.cas
      known.cas = undefined
      const key = this.#key(known.gen, hash)
      const ttl = sessionTtl(session, this.config.ttl, now, known.createdAt, maxLifetime)
      if (ttl > 0) {
        const value = encodeSession(ring, key, known.createdAt, now, cookieJson, dataJson)
        if (await this.client.cas(key, value, cas, { ttl })) return saved(known.gen, known.createdAt)
      } else if (await this.client.deleteIfUnchanged(key, cas)) {
        this.#recent.delete(hash)
        return
      }
    } else if (known === undefined) {
      // A new session: `add` never overwrites anything, so it is safe without a read.
      const ttl = sessionTtl(session, this.config.ttl, now, now, maxLifetime)
      if (ttl > 0) {
        const { gen, value: added } = await this.#withGen((g) => {
          const key = this.#key(g, hash)
          return this.client.add(key, encodeSession(ring, key, now, now, cookieJson, dataJson), { ttl })
        })
        if (added) return saved(gen, now)
      }
    }

    let missedAndRefused = false
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      let gen: number
      let item: { value: unknown; cas: string } | undefined
      try {
        ;({ gen, value: item } = await this.#withGen((g) => this.client.gets(this.#key(g, hash))))
      } catch (error) {
        if (!(error instanceof DecodeError)) throw error
        // Undecodable for the client itself: nothing to compare-and-swap against, so remove it.
        await this.client.delete(this.#key(this.#gen as number, hash))
        continue
      }
      // Loaded before a clear(): saving it now would bring back a session clear() ended.
      if (known && known.gen !== gen) return
      const key = this.#key(gen, hash)
      // Destroyed while this request was in flight: an older request cannot bring it back.
      if (item && isTombstone(item.value)) return
      let createdAt = known?.createdAt
      if (createdAt === undefined && item) {
        const prior = decodeStored(item.value, key, ring)
        if (prior.kind === 'session') createdAt = prior.createdAt
      }
      createdAt ??= now
      const ttl = sessionTtl(session, this.config.ttl, now, createdAt, maxLifetime)
      if (ttl <= 0) {
        // Already expired: deleted, not stored.
        if (item && !(await this.client.deleteIfUnchanged(key, item.cas))) continue
        this.#recent.delete(hash)
        return
      }
      const value = encodeSession(ring, key, createdAt, now, cookieJson, dataJson)
      const stored = item
        ? await this.client.cas(key, value, item.cas, { ttl })
        : await this.client.add(key, value, { ttl })
      if (stored) return saved(gen, createdAt)
      if (!item) {
        // add refused but gets saw nothing twice: something the client reads as a miss sits there.
        if (missedAndRefused) await this.client.delete(key)
        missedAndRefused = true
      }
    }
    throw new SessionConflictError(
      `session save lost the compare-and-swap race ${WRITE_ATTEMPTS} times to concurrent writers`,
    )
  }

  async #destroy(sid: string): Promise<void> {
    const hash = this.#hash(sid)
    this.#recent.delete(hash)
    const ttl = this.config.tombstoneTtl
    await this.#withGen((g) =>
      ttl > 0
        ? this.client.set(this.#key(g, hash), encodeTombstone(Date.now()), { ttl })
        : this.client.delete(this.#key(g, hash)),
    )
  }

  async #clear(): Promise<void> {
    const gen = await this.client.incr(this.#genKey, 1, { initial: Date.now(), ttl: 0 })
    // #recent keeps the old generations: a request that loaded a session before the clear
    // finds its generation gone and cannot save the session back.
    this.#gen = gen
  }

  // ---- keys and the namespace generation --------------------------------------------------

  #hash(sid: string): string {
    if (typeof sid !== 'string' || sid.length === 0) {
      throw new SessionArgumentError(`session id must be a non-empty string; got ${typeof sid}`)
    }
    let hash = this.#hashes.get(sid)
    if (hash === undefined) {
      hash = createHmac('sha256', this.config.secret).update(sid, 'utf8').digest('base64url')
      if (this.#hashes.size >= RECENT_LIMIT) this.#hashes.delete(this.#hashes.keys().next().value as string)
      this.#hashes.set(sid, hash)
    }
    return hash
  }

  #key(gen: number, hash: string): string {
    if (this.#keyStart.gen !== gen)
      this.#keyStart = { gen, text: `${this.config.prefix}${gen.toString(36)}:` }
    return this.#keyStart.text + hash
  }

  /** Reads (creating it when missing) the generation in one command: `ma` with delta 0. */
  async #readGen(): Promise<number> {
    let gen: number | undefined
    try {
      gen = await this.client.incr(this.#genKey, 0, { initial: Date.now(), ttl: 0 })
    } catch (error) {
      if (!(error instanceof NotNumericError)) throw error
      // Overwritten by something else: start a new generation (every session ends, none leaks).
      this.#report(
        new SessionCorruptError(
          `the generation key ${this.#genKey} held a non-number; starting a new generation`,
          this.#genKey,
          { cause: error },
        ),
      )
      await this.client.delete(this.#genKey)
      gen = await this.client.incr(this.#genKey, 0, { initial: Date.now(), ttl: 0 })
    }
    this.#gen = gen as number
    return gen as number
  }

  /**
   * Runs `op` on the last known generation while reading the current one in parallel (one round
   * trip); when the generation moved (a clear() elsewhere), runs it again on the new one.
   */
  async #withGen<T>(op: (gen: number) => Promise<T>): Promise<{ gen: number; value: T }> {
    const known = this.#gen
    if (known === undefined) {
      const gen = await this.#readGen()
      return { gen, value: await op(gen) }
    }
    const [current, result] = await Promise.allSettled([this.#readGen(), op(known)])
    if (current.status === 'fulfilled' && current.value !== known) {
      return { gen: current.value, value: await op(current.value) }
    }
    if (result.status === 'rejected') throw result.reason
    // The generation's server failed but the session's answered: the last known generation stands.
    return { gen: known, value: result.value }
  }

  // ---- failures ---------------------------------------------------------------------------

  #guard<T>(operation: string, promise: Promise<T>, absorb?: () => T): Promise<T> {
    return promise.catch((error: unknown) => {
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
      if (error instanceof ValueTooLargeError) {
        throw new SessionTooLargeError(
          `session ${operation} failed: the session needs a ${error.size}-byte memcached item, over the ${error.limit}-byte item size limit; the stored session is unchanged (store less in the session, or raise memcached -I and the client's maxItemSize)`,
          error.size,
          error.limit,
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

function asSession(session: unknown): SessionInput {
  if (typeof session !== 'object' || session === null) {
    throw new SessionArgumentError(
      `session must be an object; got ${session === null ? 'null' : typeof session}`,
    )
  }
  return session as SessionInput
}

function serialize(session: SessionInput): { cookieJson: string; dataJson: string } {
  // Own enumerable properties: express-session's req/id and @fastify/session's symbols stay out.
  const { cookie, ...data } = session
  try {
    return { cookieJson: JSON.stringify(cookie ?? null), dataJson: JSON.stringify(data) }
  } catch (error) {
    throw new SessionValueError(`the session cannot be saved as JSON: ${(error as Error).message}`, {
      cause: error,
    })
  }
}

/**
 * Whether a cookie about to be saved is the stored one apart from its expiry (a refresh moves
 * `expires`; @fastify/session also `originalExpires`). Then a touch is enough.
 */
function sameCookie(stored: { cookieJson: string; cookieSig?: string }, cookieJson: string): boolean {
  if (stored.cookieJson === cookieJson) return true
  stored.cookieSig ??= cookieSignature(stored.cookieJson)
  return stored.cookieSig === cookieSignature(cookieJson)
}

function cookieSignature(cookieJson: string): string {
  let cookie: unknown
  try {
    cookie = JSON.parse(cookieJson)
  } catch {
    return cookieJson
  }
  if (typeof cookie !== 'object' || cookie === null) return 'null'
  const { expires: _expires, originalExpires: _originalExpires, ...rest } = cookie as Record<string, unknown>
  // express-session's Cookie recomputes originalMaxAge from two Date.now() calls, so it drifts by
  // a millisecond now and then: compare it in whole seconds.
  if (typeof rest.originalMaxAge === 'number') rest.originalMaxAge = Math.round(rest.originalMaxAge / 1000)
  return JSON.stringify(rest)
}

/**
 * The stored cookie, `expires` as a Date. An entry that still exists has not expired (memcached's
 * TTL is the authority), but touches extend it without rewriting the stored cookie: a rolling
 * cookie's stale `expires` is moved forward so @fastify/session does not take it for expired.
 */
function reviveCookie(stored: unknown, now: number): SessionCookieData {
  if (typeof stored !== 'object' || stored === null) return { originalMaxAge: null }
  const cookie = stored as SessionCookieData & { expires?: Date | string | null }
  if (typeof cookie.expires === 'string') {
    const time = Date.parse(cookie.expires)
    cookie.expires = Number.isFinite(time) ? new Date(time) : null
  }
  const maxAge = cookie.originalMaxAge
  if (
    cookie.expires instanceof Date &&
    cookie.expires.getTime() <= now &&
    typeof maxAge === 'number' &&
    maxAge > 0
  ) {
    cookie.expires = new Date(now + maxAge)
  }
  if (cookie.originalMaxAge === undefined) cookie.originalMaxAge = null
  return cookie
}
