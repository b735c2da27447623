// Structural types shared by express-session and @fastify/session, so the store type-checks as
// the `store` of both without importing either framework's types.

/** The cookie part of a session as both frameworks keep it. */
/** (Typed as both frameworks type it; at run time @fastify/session also stores nulls.) */
export interface SessionCookieData {
  originalMaxAge: number | null
  maxAge?: number
  expires?: Date | null
  path?: string
  domain?: string
  httpOnly?: boolean
  secure?: boolean | 'auto'
  sameSite?: boolean | 'lax' | 'strict' | 'none'
  partitioned?: boolean
  priority?: 'low' | 'medium' | 'high'
}

/** What `get` answers: the saved session data with its cookie (expires as a Date). */
export interface SessionRecord {
  cookie: SessionCookieData
  [key: string]: unknown
}

/** The cookie fields the store reads to derive a TTL. */
export interface CookieInput {
  expires?: Date | string | null
  maxAge?: number | null
  originalMaxAge?: number | null
}

/**
 * A session as `set`, `touch` and the `ttl` function see it: express-session's or
 * @fastify/session's session object, or a plain object for direct use.
 */
export interface SessionInput {
  cookie?: CookieInput | null
  [key: string]: unknown
}

/** A Node-style callback. */
export type Callback<T = void> = (error: Error | null, value?: T) => void
