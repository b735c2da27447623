// A session as the store keeps it: JSON text for the cookie and for the data, apart, so that a
// save can compare each with what was loaded (unchanged data => a touch, not a rewrite), and
// back from that text to the record both frameworks expect. The bytes around it (format,
// timestamps, encryption) are envelope.ts.
import { SessionArgumentError, SessionValueError } from './errors.js'
import type { SessionCookieData, SessionInput, SessionRecord } from './types.js'

export function asSession(session: unknown): SessionInput {
  if (typeof session !== 'object' || session === null) {
    throw new SessionArgumentError(
      `session must be an object; got ${session === null ? 'null' : typeof session}`,
    )
  }
  return session as SessionInput
}

export function serialize(session: SessionInput): { cookieJson: string; dataJson: string } {
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

/** The record `get` answers, or why the stored text is not one. */
export type Parsed = { record: SessionRecord } | { corrupt: string; cause?: unknown }

export function parseRecord(dataJson: string, cookieJson: string, now: number): Parsed {
  let data: unknown
  let cookie: unknown
  try {
    data = JSON.parse(dataJson)
    cookie = JSON.parse(cookieJson)
  } catch (error) {
    return { corrupt: 'holds invalid JSON', cause: error }
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return { corrupt: 'holds no session object' }
  }
  const record = data as SessionRecord
  record.cookie = reviveCookie(cookie, now)
  return { record }
}

/**
 * Whether a cookie about to be saved is the stored one apart from its expiry (a refresh moves
 * `expires`; @fastify/session also `originalExpires`). Then a touch is enough; otherwise (e.g. a
 * new `maxAge`) the cookie is saved.
 */
export function sameCookie(stored: { cookieJson: string; cookieSig?: string }, cookie: unknown): boolean {
  stored.cookieSig ??= storedSignature(stored.cookieJson)
  return stored.cookieSig === cookieSignature(cookie)
}

function storedSignature(cookieJson: string): string {
  try {
    return cookieSignature(JSON.parse(cookieJson))
  } catch {
    return cookieJson
  }
}

/** The cookie as JSON without its expiry fields: what must match for a touch to be enough. */
function cookieSignature(cookie: unknown): string {
  if (typeof cookie !== 'object' || cookie === null) return 'null'
  // express-session's and @fastify/session's Cookie classes serialize through toJSON.
  const toJSON = (cookie as { toJSON?: unknown }).toJSON
  const plain = typeof toJSON === 'function' ? toJSON.call(cookie) : cookie
  if (typeof plain !== 'object' || plain === null) return JSON.stringify(plain) ?? 'null'
  const { expires: _expires, originalExpires: _originalExpires, ...rest } = plain as Record<string, unknown>
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
