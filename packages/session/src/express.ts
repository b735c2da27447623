// What express-session's Store base class gives a store, re-implemented without importing
// express-session (Fastify users need not install it). createSession must build
// express-session's own Session and Cookie objects; their classes are taken from a session made
// by `store.generate`, which the express-session middleware assigns to every store it uses.
import type { SessionCookieData, SessionRecord } from './types.js'

/** The request fields createSession and regenerate use. */
export interface ExpressRequestLike {
  sessionID?: string
  session?: unknown
  sessionStore?: unknown
}

/** express-session's Session, as createSession returns it. */
export interface ExpressSession extends SessionRecord {
  readonly id: string
  regenerate(callback: (error: unknown) => void): this
  destroy(callback: (error: unknown) => void): this
  reload(callback: (error: unknown) => void): this
  resetMaxAge(): this
  save(callback?: (error: unknown) => void): this
  touch(): this
}

export type Generate = (req: ExpressRequestLike) => void

interface ExpressClasses {
  Session: new (req: ExpressRequestLike, data: object) => ExpressSession
  /** express-session replaces Cookie.prototype with an object literal, so there is no usable constructor. */
  cookiePrototype: object
}

const classesByGenerate = new WeakMap<Generate, ExpressClasses>()

/** express-session's Session and Cookie, found once per middleware by generating a throwaway session. */
export function expressClasses(generate: Generate, store: unknown, req: ExpressRequestLike): ExpressClasses {
  let classes = classesByGenerate.get(generate)
  if (!classes) {
    // Reads fall through to the real request (genid and cookie options may look at it);
    // the writes (sessionID, session) land on the probe and are thrown away.
    const probe = Object.create(req) as ExpressRequestLike
    generate.call(store, probe)
    const session = probe.session as { constructor: ExpressClasses['Session']; cookie: object }
    classes = {
      Session: session.constructor,
      cookiePrototype: Object.getPrototypeOf(session.cookie) as object,
    }
    classesByGenerate.set(generate, classes)
  }
  return classes
}

/** express-session's Store.prototype.createSession, step for step. */
export function inflateExpressSession(
  classes: ExpressClasses,
  req: ExpressRequestLike,
  data: SessionRecord,
): ExpressSession {
  const stored = (data.cookie ?? {}) as SessionCookieData & { expires?: Date | string | null }
  const expires = stored.expires
  const originalMaxAge = stored.originalMaxAge
  const cookie = makeCookie(classes.cookiePrototype, stored)
  if (typeof expires === 'string') cookie.expires = new Date(expires)
  cookie.originalMaxAge = originalMaxAge
  data.cookie = cookie
  const session = new classes.Session(req, data)
  req.session = session
  return session
}

// express-session's Cookie constructor (session/cookie.js), run on its prototype.
function makeCookie(prototype: object, options: object): SessionCookieData & Record<string, unknown> {
  const cookie = Object.create(prototype) as Record<string, unknown>
  cookie.path = '/'
  cookie.maxAge = null
  cookie.httpOnly = true
  for (const key in options) {
    if (key !== 'data') cookie[key] = (options as Record<string, unknown>)[key]
  }
  if (cookie.originalMaxAge === undefined || cookie.originalMaxAge === null)
    cookie.originalMaxAge = cookie.maxAge
  return cookie as SessionCookieData & Record<string, unknown>
}
