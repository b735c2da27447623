// Load, save and touch: the request path of the store. A load remembers what it read (on the
// very object it returns, and per key in this process), so that the save or touch at the end of
// the request can tell an unchanged session (nothing to write) from a changed one (a
// compare-and-swap with the token from the read), and a changed cookie from a moved expiry.
//
// A read of a session this process has seen before also sets its expiry (`mg` with `T`: value,
// CAS and new TTL in one command), a second beyond what its cookie asks for; the framework's
// touch at the end of the request then finds the expiry already set and sends nothing. A
// read-only request costs one memcached command, with exact rolling expiry.
import { isMemkitError, type MemkitClient } from '@memkit/client'
import { asSession, parseRecord, sameCookie, serialize } from './encoding.js'
import { decodeStored, encodeSession, isTombstone } from './envelope.js'
import { SessionConflictError, SessionCorruptError, type SessionError } from './errors.js'
import type { Namespace } from './namespace.js'
import type { StoreConfig } from './options.js'
import { type KeyState, RecentSessions } from './recent.js'
import { keptUntil, sessionExpiry, storageTtl } from './ttl.js'
import type { CookieInput, SessionInput, SessionRecord } from './types.js'

/** Attempts of the compare-and-swap save loop before ERR_MEMKIT_SESSION_CONFLICT. */
const WRITE_ATTEMPTS = 10
/** Hashed keys whose generation, creation time and expiry this process remembers. */
const RECENT_LIMIT = 10_000
/**
 * How far past its cookie's expiry a read keeps a rolling session (ms): the framework's touch at
 * the end of a request shorter than this finds the expiry already set.
 */
const READ_AHEAD_MS = 1000

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
type Known = Pick<LoadState, 'gen' | 'createdAt' | 'cookieJson' | 'cookieSig' | 'cas'>

/**
 * How a write treats the stored entry. `keepStoredData`: the request changed only the cookie,
 * so a concurrent writer's data is kept and only the cookie replaced. `create`: a save may create
 * the entry; a touch never brings back a session that is gone.
 */
interface WriteMode {
  keepStoredData: boolean
  create: boolean
}

type Item = { value: unknown; cas: string }
type Fetched = { gen: number; item: Item | undefined } | { undecodable: Error & { key?: string } }
type RefreshOutcome = 'touched' | 'skipped' | 'missing' | 'expired'

const loads = new WeakMap<object, LoadState>()

/** Hands what was loaded into `from` on to `to` (express-session's Session made from our record). */
export function carryLoad(from: object, to: object): void {
  const load = loads.get(from)
  if (load) loads.set(to, load)
}

export class Sessions {
  readonly #client: MemkitClient
  readonly #config: StoreConfig
  readonly #namespace: Namespace
  readonly #report: (error: SessionError) => void
  readonly #recent = new RecentSessions(RECENT_LIMIT)

  constructor(
    client: MemkitClient,
    config: StoreConfig,
    namespace: Namespace,
    report: (error: SessionError) => void,
  ) {
    this.#client = client
    this.#config = config
    this.#namespace = namespace
    this.#report = report
  }

  /** Forgets what this process knows of a session (it was destroyed). */
  forget(hash: string): void {
    this.#recent.delete(hash)
  }

  async load(sid: string): Promise<SessionRecord | null> {
    const hash = this.#namespace.hash(sid)
    const now = Date.now()
    const previous = this.#recent.get(hash)
    const ttl = this.#readTtl(previous, now)
    const fetched = await this.#fetch(hash, ttl)
    if ('undecodable' in fetched) {
      const key = fetched.undecodable.key ?? ''
      this.#corrupt(key, 'cannot be decoded', fetched.undecodable)
      return null
    }
    const { gen, item } = fetched
    if (item === undefined) {
      this.#recent.delete(hash)
      return null
    }
    const key = this.#namespace.key(gen, hash)
    const decoded = decodeStored(item.value, key, this.#config.keyRing)
    if (decoded.kind === 'tombstone') {
      this.#recent.delete(hash)
      // The read gave the tombstone a session's TTL: give it back its own.
      if (ttl !== undefined && this.#config.tombstoneTtl > 0) {
        await this.#client.touch(key, this.#config.tombstoneTtl)
      }
      return null
    }
    if (decoded.kind === 'corrupt') {
      this.#corrupt(key, decoded.reason)
      return null
    }
    const maxLifetime = this.#config.maxLifetimeMs
    if (maxLifetime !== undefined && now >= decoded.createdAt + maxLifetime) return null
    const parsed = parseRecord(decoded.dataJson, decoded.cookieJson, now)
    if ('corrupt' in parsed) {
      this.#corrupt(key, parsed.corrupt, parsed.cause)
      return null
    }
    const data = parsed.record
    const sameEntry = previous && previous.gen === gen && previous.createdAt === decoded.createdAt
    // The cookie's signature (for telling a changed cookie from a refresh) is computed once per cookie.
    const cookieSig = previous?.cookieJson === decoded.cookieJson ? previous.cookieSig : undefined
    const state: KeyState = {
      gen,
      createdAt: decoded.createdAt,
      cookieJson: decoded.cookieJson,
      cookieSig,
      cas: item.cas,
      refreshedAt:
        ttl !== undefined ? now : Math.max(decoded.writtenAt, sameEntry ? previous.refreshedAt : 0),
      keptUntil: ttl !== undefined ? keptUntil(ttl, now) : sameEntry ? previous.keptUntil : 0,
      rollingMs: this.#rollingMs(data.cookie, data),
    }
    this.#recent.set(hash, state)
    if (ttl !== undefined) {
      // The TTL came from what this process remembered; the stored cookie may ask for longer
      // (another process made the session longer-lived): then it is set right away.
      const wanted = this.#readExpiry(state, now)
      if (wanted !== undefined && wanted > state.keptUntil) {
        const longer = storageTtl(wanted, now)
        if (await this.#client.touch(key, longer)) state.keptUntil = keptUntil(longer, now)
      }
    }
    loads.set(data, {
      hash,
      gen,
      createdAt: decoded.createdAt,
      dataJson: decoded.dataJson,
      cookieJson: decoded.cookieJson,
      cas: item.cas,
    })
    return data
  }

  async save(sid: string, session: object): Promise<void> {
    const hash = this.#namespace.hash(sid)
    const input = asSession(session)
    const now = Date.now()
    let load = loads.get(input)
    if (load && load.hash !== hash) load = undefined
    const known: Known | undefined = load ?? this.#recent.get(hash)
    let serialized: { cookieJson: string; dataJson: string } | undefined
    let dataSame: boolean
    if (load) {
      serialized = serialize(input)
      dataSame = load.dataJson === serialized.dataJson
    } else {
      // @fastify/session makes its own session object from ours, but it knows whether it changed.
      const isModified = (input as { isModified?: unknown }).isModified
      dataSame = known !== undefined && typeof isModified === 'function' && isModified.call(input) === false
    }
    if (dataSame && known !== undefined && this.#sameCookie(hash, known, input.cookie)) {
      // Same data and cookie as loaded: refresh the expiry, do not rewrite (a concurrent write survives).
      const outcome = await this.#refresh(hash, input, known, now)
      if (outcome !== 'missing') return
    }
    serialized ??= serialize(input)
    // When only the cookie changed (e.g. a new maxAge), a concurrent writer's data is kept.
    await this.#write(hash, input, serialized.cookieJson, serialized.dataJson, known, now, {
      keepStoredData: dataSame,
      create: true,
    })
  }

  async touch(sid: string, session: object): Promise<void> {
    const hash = this.#namespace.hash(sid)
    const input = asSession(session)
    const now = Date.now()
    let load = loads.get(input)
    if (load && load.hash !== hash) load = undefined
    const known: Known | undefined = load ?? this.#recent.get(hash)
    if (known !== undefined && !this.#sameCookie(hash, known, input.cookie)) {
      // A touch that carries a changed cookie (express-session touches when only the cookie
      // changed, e.g. "remember me"): the cookie is saved, the stored data kept.
      const { cookieJson, dataJson } = serialize(input)
      await this.#write(hash, input, cookieJson, dataJson, known, now, {
        keepStoredData: true,
        create: false,
      })
      return
    }
    // A touch of a session that is gone (expired, destroyed, cleared) does not bring it back.
    await this.#refresh(hash, input, known, now)
  }

  /**
   * sameCookie, with the signature of the stored cookie computed once per cookie and kept with
   * what this process remembers of the key (a request's load state is new every request).
   */
  #sameCookie(hash: string, known: Known, cookie: unknown): boolean {
    const state = this.#recent.peek(hash)
    return sameCookie(state?.cookieJson === known.cookieJson ? state : known, cookie)
  }

  /** The TTL a read sets (seconds), or undefined for a plain read. */
  #readTtl(state: KeyState | undefined, now: number): number | undefined {
    if (state === undefined) return undefined
    const touchAfter = this.#config.touchAfterMs
    if (touchAfter > 0 && now - state.refreshedAt < touchAfter) return undefined
    const expiresAt = this.#readExpiry(state, now)
    if (expiresAt === undefined || expiresAt <= now) return undefined
    return storageTtl(expiresAt, now)
  }

  /**
   * Until when a read at `now` keeps the session: `READ_AHEAD_MS` past the expiry its rolling
   * cookie would get now, capped by `maxLifetime`; undefined when reads do not extend it.
   */
  #readExpiry(state: KeyState, now: number): number | undefined {
    if (state.rollingMs === undefined) return undefined
    const expiresAt = now + state.rollingMs + READ_AHEAD_MS
    const maxLifetime = this.#config.maxLifetimeMs
    return maxLifetime === undefined ? expiresAt : Math.min(expiresAt, state.createdAt + maxLifetime)
  }

  /**
   * How long (ms) each request extends the session, as its cookie says: `originalMaxAge` (both
   * frameworks move `expires` by it on every request), else `maxAge`; a cookie with a fixed
   * `expires` only: not extended (undefined); a browser-session cookie: the `ttl` option.
   */
  #rollingMs(cookie: CookieInput | null | undefined, session: SessionInput): number | undefined {
    const maxAge = cookie?.originalMaxAge ?? cookie?.maxAge
    if (typeof maxAge === 'number') return maxAge > 0 && Number.isFinite(maxAge) ? maxAge : undefined
    if (cookie?.expires !== undefined && cookie.expires !== null) return undefined
    let ttl: unknown = this.#config.ttl
    if (typeof ttl === 'function') {
      try {
        ttl = ttl(session)
      } catch {
        // The save reports a throwing ttl function; a read just does not extend the session.
        return undefined
      }
    }
    return typeof ttl === 'number' && ttl > 0 && Number.isFinite(ttl) ? ttl * 1000 : undefined
  }

  /** Seconds to store the session for, so that memcached keeps it as long as its cookie; 0 = expired. */
  #ttl(session: SessionInput, now: number, createdAt: number): number {
    const expiresAt = sessionExpiry(session, this.#config.ttl, now, createdAt, this.#config.maxLifetimeMs)
    return storageTtl(expiresAt, now)
  }

  /** The entry under the current generation, its TTL set to `ttl` when given. */
  async #fetch(hash: string, ttl?: number): Promise<Fetched> {
    try {
      const { gen, value: item } = await this.#namespace.withGen((g) => {
        const key = this.#namespace.key(g, hash)
        return ttl === undefined ? this.#client.gets(key) : this.#client.getsAndTouch(key, ttl)
      })
      return { gen, item }
    } catch (error) {
      if (!isMemkitError(error, 'ERR_MEMKIT_DECODE')) throw error
      return { undecodable: error }
    }
  }

  #corrupt(key: string, reason: string, cause?: unknown): void {
    this.#report(
      new SessionCorruptError(`session ${key} ${reason}; starting a fresh session`, key, { cause }),
    )
  }

  async #refresh(
    hash: string,
    session: SessionInput,
    known: Known | undefined,
    now: number,
  ): Promise<RefreshOutcome> {
    let gen = known?.gen
    let createdAt = known?.createdAt
    if (gen === undefined && this.#config.maxLifetimeMs === undefined) {
      gen = await this.#namespace.current()
    } else if (gen === undefined) {
      // Not loaded by this process (direct use, or evicted from RECENT_LIMIT): maxLifetime needs
      // the creation time, so read it.
      const fetched = await this.#fetch(hash)
      if ('undecodable' in fetched || fetched.item === undefined) return 'missing'
      gen = fetched.gen
      const decoded = decodeStored(fetched.item.value, this.#namespace.key(gen, hash), this.#config.keyRing)
      if (decoded.kind === 'session') createdAt = decoded.createdAt
    }
    const key = this.#namespace.key(gen, hash)
    const expiresAt = sessionExpiry(
      session,
      this.#config.ttl,
      now,
      createdAt ?? now,
      this.#config.maxLifetimeMs,
    )
    if (expiresAt <= now) {
      await this.#client.delete(key)
      this.#recent.delete(hash)
      return 'expired'
    }
    const state = this.#recent.get(hash)
    const current = state !== undefined && state.gen === gen ? state : undefined
    if (current !== undefined) {
      // Already kept that long: the read set the expiry (or an earlier write or touch did).
      if (current.keptUntil >= expiresAt) return 'skipped'
      const touchAfter = this.#config.touchAfterMs
      if (touchAfter > 0 && now - current.refreshedAt < touchAfter) return 'skipped'
    }
    const ttl = storageTtl(expiresAt, now)
    if (!(await this.#client.touch(key, ttl))) return 'missing'
    if (current !== undefined) {
      current.refreshedAt = now
      current.keptUntil = keptUntil(ttl, now)
    }
    return 'touched'
  }

  async #write(
    hash: string,
    session: SessionInput,
    cookieJson: string,
    dataJson: string,
    known: Known | undefined,
    now: number,
    mode: WriteMode,
  ): Promise<void> {
    const ring = this.#config.keyRing
    const saved = (gen: number, createdAt: number, ttl: number) => {
      this.#recent.set(hash, {
        gen,
        createdAt,
        cookieJson,
        refreshedAt: now,
        keptUntil: keptUntil(ttl, now),
        rollingMs: this.#rollingMs(session.cookie, session),
      })
      // What this request's session holds is now stored (or, keeping a concurrent writer's data,
      // superseded): a later save in the same request compares with it.
      loads.set(session, { hash, gen, createdAt, dataJson, cookieJson })
    }

    // Fast paths, one round trip each when nothing raced this request.
    if (known?.cas !== undefined) {
      // Compare-and-swap against the entry as loaded: fails if anything (a save, a destroy's
      // tombstone, an expiry) touched it since, and then the loop below sorts it out.
      const cas = known.cas
      known.cas = undefined
      const key = this.#namespace.key(known.gen, hash)
      const ttl = this.#ttl(session, now, known.createdAt)
      if (ttl > 0) {
        const value = encodeSession(ring, key, known.createdAt, now, cookieJson, dataJson)
        if (await this.#client.cas(key, value, cas, { ttl })) return saved(known.gen, known.createdAt, ttl)
      } else if (await this.#client.deleteIfUnchanged(key, cas)) {
        this.#recent.delete(hash)
        return
      }
    } else if (known === undefined && mode.create) {
      // A new session: `add` never overwrites anything, so it is safe without a read.
      const ttl = this.#ttl(session, now, now)
      if (ttl > 0) {
        const { gen, value: added } = await this.#namespace.withGen((g) => {
          const key = this.#namespace.key(g, hash)
          return this.#client.add(key, encodeSession(ring, key, now, now, cookieJson, dataJson), { ttl })
        })
        if (added) return saved(gen, now, ttl)
      }
    }

    let missedAndRefused = false
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      const fetched = await this.#fetch(hash)
      if ('undecodable' in fetched) {
        // Undecodable for the client itself: nothing to compare-and-swap against, so remove it.
        await this.#client.delete(this.#namespace.key(await this.#namespace.current(), hash))
        continue
      }
      const { gen, item } = fetched
      // Loaded before a clear(): saving it now would bring back a session clear() ended.
      if (known && known.gen !== gen) return
      // Destroyed while this request was in flight: an older request cannot bring it back.
      if (item && isTombstone(item.value)) return
      // Gone (expired, evicted): a touch does not bring it back.
      if (!item && !mode.create) return
      const key = this.#namespace.key(gen, hash)
      let createdAt = known?.createdAt
      let data = dataJson
      if (item && (createdAt === undefined || mode.keepStoredData)) {
        const prior = decodeStored(item.value, key, ring)
        if (prior.kind === 'session') {
          createdAt ??= prior.createdAt
          if (mode.keepStoredData) data = prior.dataJson
        }
      }
      createdAt ??= now
      const ttl = this.#ttl(session, now, createdAt)
      if (ttl <= 0) {
        // Already expired: deleted, not stored.
        if (item && !(await this.#client.deleteIfUnchanged(key, item.cas))) continue
        this.#recent.delete(hash)
        return
      }
      const value = encodeSession(ring, key, createdAt, now, cookieJson, data)
      const stored = item
        ? await this.#client.cas(key, value, item.cas, { ttl })
        : await this.#client.add(key, value, { ttl })
      if (stored) return saved(gen, createdAt, ttl)
      if (!item) {
        // add refused but gets saw nothing twice: something the client reads as a miss sits there.
        if (missedAndRefused) await this.#client.delete(key)
        missedAndRefused = true
      }
    }
    throw new SessionConflictError(
      `session save lost the compare-and-swap race ${WRITE_ATTEMPTS} times to concurrent writers`,
    )
  }
}
