// The same routes on Express (express-session, through supertest) and Fastify (@fastify/session,
// through inject), so each behaviour is asserted by one test table on both frameworks.

import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { createServer, type Server } from 'node:http'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import { CHANNELS, type CommandEvent } from '@memkit/client'
import express, { type NextFunction, type Request, type Response } from 'express'
import expressSession from 'express-session'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import request from 'supertest'
import type { MemcachedStore } from '../src/index.js'

export type Framework = 'express' | 'fastify'
export const FRAMEWORKS: readonly Framework[] = ['express', 'fastify']

export interface Reply {
  status: number
  // biome-ignore lint/suspicious/noExplicitAny: JSON bodies of the test routes
  body: any
  /** `name=value` of the session cookie when the response set one. */
  cookie: string | undefined
  /** The `Expires` of that Set-Cookie (ms since the epoch), when it has one. */
  cookieExpires: number | undefined
}

export interface AppOptions {
  /** Cookie maxAge in ms (both frameworks); omitted = browser-session cookie. */
  maxAge?: number
  rolling?: boolean
  resave?: boolean
  saveUninitialized?: boolean
  genid?: () => string
}

export interface App {
  framework: Framework
  request(path: string, cookie?: string): Promise<Reply>
  /** A browser: keeps the session cookie between requests. */
  agent(): Agent
  /** The session id inside a (signed) session cookie. */
  sidOf(cookie: string): string
  /**
   * Express only: the next error that reached the error handler after the response was sent
   * (express-session saves at res.end, after writing the head). Fastify: resolves undefined.
   */
  nextLateError(timeoutMs?: number): Promise<Error | undefined>
  /**
   * A barrier the `/slow-read` and `/slow-write` routes stop at (`?gate=<name>`), after loading the
   * session and before answering: `reached` resolves when a request is there, `open()` lets it go.
   */
  gate(name: string): Gate
  close(): Promise<void>
}

export interface Gate {
  reached: Promise<void>
  open(): void
}

interface Deferred {
  promise: Promise<void>
  resolve(): void
}

// Promise.withResolvers needs Node 22.
function deferred(): Deferred {
  let resolve!: () => void
  const promise = new Promise<void>((done) => {
    resolve = done
  })
  return { promise, resolve }
}

/** The gates of one app: a route waits at `pass(name)` until the test opens that gate. */
class Gates {
  readonly #gates = new Map<string, { reached: Deferred; opened: Deferred }>()

  #get(name: string) {
    let gate = this.#gates.get(name)
    if (!gate) {
      gate = { reached: deferred(), opened: deferred() }
      this.#gates.set(name, gate)
    }
    return gate
  }

  gate(name: string): Gate {
    const gate = this.#get(name)
    return { reached: gate.reached.promise, open: () => gate.opened.resolve() }
  }

  pass(name: string): Promise<void> {
    const gate = this.#get(name)
    gate.reached.resolve()
    return gate.opened.promise
  }
}

export interface Agent {
  cookie: string | undefined
  get(path: string): Promise<Reply>
}

const FASTIFY_SECRET = 'a secret with minimum length of 32 characters!'

/** Session data as a route sees it, without the cookie. */
function view(session: object | null | undefined): Record<string, unknown> | null {
  if (!session) return null
  const { cookie: _cookie, ...data } = session as Record<string, unknown>
  return JSON.parse(JSON.stringify(data))
}

export async function makeApp(
  framework: Framework,
  store: MemcachedStore,
  options: AppOptions = {},
): Promise<App> {
  return framework === 'express' ? makeExpress(store, options) : makeFastify(store, options)
}

async function makeExpress(store: MemcachedStore, options: AppOptions): Promise<App> {
  const gates = new Gates()
  const app = express()
  app.use(
    expressSession({
      store,
      secret: 'express secret',
      resave: options.resave ?? false,
      saveUninitialized: options.saveUninitialized ?? false,
      rolling: options.rolling ?? false,
      cookie: options.maxAge === undefined ? {} : { maxAge: options.maxAge },
      ...(options.genid ? { genid: options.genid } : {}),
    }),
  )
  // biome-ignore lint/suspicious/noExplicitAny: session data is free-form in these routes
  const data = (req: Request) => req.session as any
  app.get('/read', (req, res) => {
    res.json({ data: view(req.session), sid: req.sessionID })
  })
  app.get('/write', (req, res) => {
    data(req)[String(req.query.key)] = req.query.value
    res.json({ data: view(req.session), sid: req.sessionID })
  })
  app.get('/cart/add', (req, res) => {
    data(req).cart = [...(data(req).cart ?? []), String(req.query.item)]
    res.json({ data: view(req.session) })
  })
  app.get('/slow-read', async (req, res) => {
    const snapshot = view(req.session)
    await gates.pass(String(req.query.gate))
    res.json({ data: snapshot })
  })
  app.get('/slow-write', async (req, res) => {
    await gates.pass(String(req.query.gate))
    data(req)[String(req.query.key)] = req.query.value
    res.json({ data: view(req.session) })
  })
  app.get('/remember', async (req, res) => {
    // "Remember me": only the cookie's lifetime changes.
    if (req.query.gate) await gates.pass(String(req.query.gate))
    req.session.cookie.maxAge = Number(req.query.ms)
    res.json({ data: view(req.session) })
  })
  app.get('/logout', (req, res, next) => {
    req.session.destroy((error) => (error ? next(error) : res.json({ ok: true })))
  })
  app.get('/login', (req, res, next) => {
    req.session.regenerate((error) => {
      if (error) return next(error)
      data(req).user = String(req.query.user)
      res.json({ data: view(req.session), sid: req.sessionID })
    })
  })
  app.get('/expire', (req, res) => {
    req.session.cookie.expires = new Date(Date.now() - 1000)
    data(req).touched = Date.now()
    res.json({ ok: true })
  })
  app.get('/big', (req, res) => {
    data(req).big = 'x'.repeat(Number(req.query.size))
    req.session.save((error) => {
      if (error) {
        // Keep the in-memory copy from being saved again at the end of the request.
        delete data(req).big
        res.status(500).json({ code: (error as { code?: string }).code, message: error.message })
        return
      }
      res.json({ ok: true })
    })
  })
  const late: Error[] = []
  const lateWaiters: Array<(error: Error) => void> = []
  app.use(
    (
      error: Error & { statusCode?: number; code?: string },
      _req: Request,
      res: Response,
      _next: NextFunction,
    ) => {
      if (res.headersSent) {
        const waiter = lateWaiters.shift()
        if (waiter) waiter(error)
        else late.push(error)
        return
      }
      res.status(error.statusCode ?? 500).json({ code: error.code, message: error.message })
    },
  )
  const server: Server = createServer(app)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const call = async (path: string, cookie?: string): Promise<Reply> => {
    const req = request(server).get(path)
    if (cookie) req.set('Cookie', cookie)
    const res = await req
    return { status: res.status, body: res.body, ...sessionCookie(res.headers['set-cookie'], 'connect.sid') }
  }
  return {
    framework: 'express',
    request: call,
    agent: () => makeAgent(call),
    sidOf(cookie) {
      const value = decodeURIComponent(cookie.slice(cookie.indexOf('=') + 1))
      return value.slice(2, value.lastIndexOf('.'))
    },
    nextLateError(timeoutMs = 2000) {
      const queued = late.shift()
      if (queued) return Promise.resolve(queued)
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(undefined), timeoutMs)
        lateWaiters.push((error) => {
          clearTimeout(timer)
          resolve(error)
        })
      })
    },
    gate: (name) => gates.gate(name),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

async function makeFastify(store: MemcachedStore, options: AppOptions): Promise<App> {
  const gates = new Gates()
  const app: FastifyInstance = Fastify()
  await app.register(fastifyCookie)
  await app.register(fastifySession, {
    store,
    secret: FASTIFY_SECRET,
    rolling: options.rolling ?? true,
    saveUninitialized: options.saveUninitialized ?? false,
    cookie: { secure: false, ...(options.maxAge === undefined ? {} : { maxAge: options.maxAge }) },
    ...(options.genid ? { idGenerator: options.genid } : {}),
  })
  // biome-ignore lint/suspicious/noExplicitAny: session data is free-form in these routes
  const data = (req: FastifyRequest) => req.session as any
  // biome-ignore lint/suspicious/noExplicitAny: query strings of the test routes
  type Q = { Querystring: Record<string, any> }
  app.get('/read', async (req) => ({ data: view(req.session), sid: req.session.sessionId }))
  app.get<Q>('/write', async (req) => {
    data(req)[String(req.query.key)] = req.query.value
    return { data: view(req.session), sid: req.session.sessionId }
  })
  app.get<Q>('/cart/add', async (req) => {
    data(req).cart = [...(data(req).cart ?? []), String(req.query.item)]
    return { data: view(req.session) }
  })
  app.get<Q>('/slow-read', async (req) => {
    const snapshot = view(req.session)
    await gates.pass(String(req.query.gate))
    return { data: snapshot }
  })
  app.get<Q>('/slow-write', async (req) => {
    await gates.pass(String(req.query.gate))
    data(req)[String(req.query.key)] = req.query.value
    return { data: view(req.session) }
  })
  app.get<Q>('/remember', async (req) => {
    // "Remember me": only the cookie's lifetime changes.
    if (req.query.gate) await gates.pass(String(req.query.gate))
    req.session.cookie.maxAge = Number(req.query.ms)
    return { data: view(req.session) }
  })
  app.get('/logout', async (req) => {
    await req.session.destroy()
    return { ok: true }
  })
  app.get<Q>('/login', async (req) => {
    await req.session.regenerate()
    data(req).user = String(req.query.user)
    return { data: view(req.session), sid: req.session.sessionId }
  })
  app.get('/expire', async (req) => {
    req.session.cookie.expires = new Date(Date.now() - 1000)
    data(req).touched = Date.now()
    return { ok: true }
  })
  app.get<Q>('/big', async (req, reply) => {
    data(req).big = 'x'.repeat(Number(req.query.size))
    try {
      await req.session.save()
    } catch (error) {
      delete data(req).big
      return reply
        .status(500)
        .send({ code: (error as { code?: string }).code, message: (error as Error).message })
    }
    return { ok: true }
  })
  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, _req, reply) => {
    reply.status(error.statusCode ?? 500).send({ code: error.code, message: error.message })
  })
  await app.ready()
  const call = async (path: string, cookie?: string): Promise<Reply> => {
    const res = await app.inject({ method: 'GET', url: path, headers: cookie ? { cookie } : {} })
    let body: unknown
    try {
      body = res.json()
    } catch {
      body = res.body
    }
    return { status: res.statusCode, body, ...sessionCookie(res.headers['set-cookie'], 'sessionId') }
  }
  return {
    framework: 'fastify',
    request: call,
    agent: () => makeAgent(call),
    sidOf(cookie) {
      const value = decodeURIComponent(cookie.slice(cookie.indexOf('=') + 1))
      return value.slice(0, value.lastIndexOf('.'))
    },
    nextLateError: async () => undefined,
    gate: (name) => gates.gate(name),
    close: () => app.close(),
  }
}

function makeAgent(call: (path: string, cookie?: string) => Promise<Reply>): Agent {
  const agent: Agent = {
    cookie: undefined,
    async get(path) {
      const reply = await call(path, agent.cookie)
      if (reply.cookie) agent.cookie = reply.cookie
      return reply
    },
  }
  return agent
}

function sessionCookie(
  header: string | string[] | undefined,
  name: string,
): { cookie: string | undefined; cookieExpires: number | undefined } {
  const list = header === undefined ? [] : Array.isArray(header) ? header : [header]
  const line = list.find((c) => c.startsWith(`${name}=`))
  if (!line) return { cookie: undefined, cookieExpires: undefined }
  const [pair, ...attributes] = line.split(';')
  const expires = attributes.map((a) => a.trim()).find((a) => /^expires=/i.test(a))
  return {
    // A cleared cookie (empty value) is not a session.
    cookie: pair!.endsWith('=') ? undefined : pair,
    cookieExpires: expires ? Date.parse(expires.slice('expires='.length)) : undefined,
  }
}

/** Registers the test once per framework. */
export function forBoth(title: string, body: (framework: Framework) => Promise<void>): void {
  for (const framework of FRAMEWORKS) test(`${title} [${framework}]`, () => body(framework))
}

/** Counts memcached commands (from @memkit/client's diagnostics channel) while `body` runs. */
export async function countCommands<T>(
  server: string,
  body: () => Promise<T>,
): Promise<{ result: T; counts: Record<string, number> }> {
  const counts: Record<string, number> = {}
  const listener = (message: unknown) => {
    const event = message as CommandEvent
    if (event.server === server) counts[event.command] = (counts[event.command] ?? 0) + 1
  }
  subscribe(CHANNELS.command, listener)
  try {
    const result = await body()
    return { result, counts }
  } finally {
    unsubscribe(CHANNELS.command, listener)
  }
}

/** A prefix no other test uses, so tests on one memcached never see each other's sessions. */
export { uniquePrefix } from '@memkit/testing'

/** Polls `condition` until it holds (every 20 ms, at most `limitMs`); fails naming `what` otherwise. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  what = 'the condition',
  limitMs = 5000,
): Promise<void> {
  const start = performance.now()
  while (!(await condition())) {
    if (performance.now() - start > limitMs) throw new Error(`${what} did not hold within ${limitMs} ms`)
    await sleep(20)
  }
}
