// Load, save and touch: the request path of the store. A load remembers what it read (on the
// very object it returns, and per key in this process), so that the save at the end of the
// request can tell an unchanged session (a touch) from a changed one (a compare-and-swap with
// the token from the read).
import { isMemkitError, type MemkitClient } from '@memkit/client'
import { asSession, parseRecord, sameCookie, serialize } from './encoding.js'
import { decodeStored, encodeSession, isTombstone } from './envelope.js'
import { SessionConflictError, SessionCorruptError, type SessionError } from './errors.js'
import type { Namespace } from './namespace.js'
import type { StoreConfig } from './options.js'
import { type KeyState, RecentSessions } from './recent.js'
import { sessionExpiry, storageTtl } from './ttl.js'
import type { SessionInput, SessionRecord } from './types.js'

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
    let gen: number
    let item: { value: unknown; cas: string } | undefined
    try {
      ;({ gen, value: item } = await this.#namespace.withGen((g) =>
        this.#client.gets(this.#namespace.key(g, hash)),
      ))
    } catch (error) {
      if (!isMemkitError(error, 'ERR_MEMKIT_DECODE')) throw error
      const key = (error as { key?: string }).key ?? ''
      this.#report(
        new SessionCorruptError(`session ${key} cannot be decoded; starting a fresh session`, key, {
          cause: error,
        }),
      )
      return null
    }
    if (item === undefined) return null
    const key = this.#namespace.key(gen, hash)
    const decoded = decodeStored(item.value, key, this.#config.keyRing)
    if (decoded.kind === 'tombstone') return null
    if (decoded.kind === 'corrupt') {
      this.#report(new SessionCorruptError(`session ${key} ${decoded.reason}; starting a fresh session`, key))
      return null
    }
    const now = Date.now()
    const maxLifetime = this.#config.maxLifetimeMs
    if (maxLifetime !== undefined && now >= decoded.createdAt + maxLifetime) return null
    const parsed = parseRecord(decoded.dataJson, decoded.cookieJson, now)
    if ('corrupt' in parsed) {
      this.#report(
        new SessionCorruptError(`session ${key} ${parsed.corrupt}; starting a fresh session`, key, {
          cause: parsed.cause,
        }),
      )
      return null
    }
    const data = parsed.record
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

  async save(sid: string, session: object): Promise<void> {
    const hash = this.#namespace.hash(sid)
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

  async touch(sid: string, session: object): Promise<void> {
    const hash = this.#namespace.hash(sid)
    const input = asSession(session)
    let load = loads.get(input)
    if (load && load.hash !== hash) load = undefined
    // A touch of a session that is gone (expired, destroyed, cleared) does not bring it back.
    await this.#refresh(hash, input, load ?? this.#recent.get(hash), Date.now())
  }

  /** Seconds to store the session for, so that memcached keeps it as long as its cookie; 0 = expired. */
  #ttl(session: SessionInput, now: number, createdAt: number): number {
    const expiresAt = sessionExpiry(session, this.#config.ttl, now, createdAt, this.#config.maxLifetimeMs)
    return storageTtl(expiresAt, now)
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
      let value: unknown
      try {
        ;({ gen, value } = await this.#namespace.withGen((g) =>
          this.#client.get(this.#namespace.key(g, hash)),
        ))
      } catch (error) {
        if (isMemkitError(error, 'ERR_MEMKIT_DECODE')) return 'missing'
        throw error
      }
      if (value === undefined) return 'missing'
      const decoded = decodeStored(value, this.#namespace.key(gen, hash), this.#config.keyRing)
      if (decoded.kind === 'session') createdAt = decoded.createdAt
    }
    const key = this.#namespace.key(gen, hash)
    const ttl = this.#ttl(session, now, createdAt ?? now)
    if (ttl <= 0) {
      await this.#client.delete(key)
      this.#recent.delete(hash)
      return 'expired'
    }
    const state = this.#recent.get(hash)
    if (
      this.#config.touchAfterMs > 0 &&
      state &&
      state.gen === gen &&
      now - state.refreshedAt < this.#config.touchAfterMs
    ) {
      return 'skipped'
    }
    if (!(await this.#client.touch(key, ttl))) return 'missing'
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
    const ring = this.#config.keyRing
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
      const key = this.#namespace.key(known.gen, hash)
      const ttl = this.#ttl(session, now, known.createdAt)
      if (ttl > 0) {
        const value = encodeSession(ring, key, known.createdAt, now, cookieJson, dataJson)
        if (await this.#client.cas(key, value, cas, { ttl })) return saved(known.gen, known.createdAt)
      } else if (await this.#client.deleteIfUnchanged(key, cas)) {
        this.#recent.delete(hash)
        return
      }
    } else if (known === undefined) {
      // A new session: `add` never overwrites anything, so it is safe without a read.
      const ttl = this.#ttl(session, now, now)
      if (ttl > 0) {
        const { gen, value: added } = await this.#namespace.withGen((g) => {
          const key = this.#namespace.key(g, hash)
          return this.#client.add(key, encodeSession(ring, key, now, now, cookieJson, dataJson), { ttl })
        })
        if (added) return saved(gen, now)
      }
    }

    let missedAndRefused = false
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      let gen: number
      let item: { value: unknown; cas: string } | undefined
      try {
        ;({ gen, value: item } = await this.#namespace.withGen((g) =>
          this.#client.gets(this.#namespace.key(g, hash)),
        ))
      } catch (error) {
        if (!isMemkitError(error, 'ERR_MEMKIT_DECODE')) throw error
        // Undecodable for the client itself: nothing to compare-and-swap against, so remove it.
        await this.#client.delete(this.#namespace.key(await this.#namespace.current(), hash))
        continue
      }
      // Loaded before a clear(): saving it now would bring back a session clear() ended.
      if (known && known.gen !== gen) return
      const key = this.#namespace.key(gen, hash)
      // Destroyed while this request was in flight: an older request cannot bring it back.
      if (item && isTombstone(item.value)) return
      let createdAt = known?.createdAt
      if (createdAt === undefined && item) {
        const prior = decodeStored(item.value, key, ring)
        if (prior.kind === 'session') createdAt = prior.createdAt
      }
      createdAt ??= now
      const ttl = this.#ttl(session, now, createdAt)
      if (ttl <= 0) {
        // Already expired: deleted, not stored.
        if (item && !(await this.#client.deleteIfUnchanged(key, item.cas))) continue
        this.#recent.delete(hash)
        return
      }
      const value = encodeSession(ring, key, createdAt, now, cookieJson, dataJson)
      const stored = item
        ? await this.#client.cas(key, value, item.cas, { ttl })
        : await this.#client.add(key, value, { ttl })
      if (stored) return saved(gen, createdAt)
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
