// The example shops (Express and Fastify) on a real listener, and simulated users with their
// own cookie jar and client address, for the cluster fault suite.
import type { AddressInfo } from 'node:net'
import type { MemkitClient } from '@memkit/client'
import type { Request, Response } from 'express'
import { buildApp as buildExpressShop } from '../../examples/express-app/src/app.js'
import { buildApp as buildFastifyShop } from '../../examples/fastify-app/src/app.js'

export type Framework = 'express' | 'fastify'

export interface Shop {
  readonly framework: Framework
  readonly url: string
  /** Reads of the simulated database (the cache's misses). */
  readonly catalogReads: () => number
  close(): Promise<void>
}

const COOKIE_SECRET = 'a-cluster-fault-cookie-secret-32+chars'

/**
 * Starts one example shop on a loopback port. Two routes are added for the suite: `POST /note`
 * stores a per-session note, `GET /note` returns it with the user, so that a session read back
 * can be told apart from every other session (a response reaching the wrong user would show).
 */
export async function startShop(framework: Framework, client: MemkitClient): Promise<Shop> {
  if (framework === 'express') {
    const shop = buildExpressShop({
      client,
      cookieSecret: COOKIE_SECRET,
      storeSecret: 'faults',
      catalogDelayMs: 1,
    })
    const session = (req: Request) => req.session as unknown as { note?: string; user?: { name: string } }
    shop.app.post('/note', (req: Request, res: Response) => {
      if (!session(req).user) {
        res.status(401).json({ error: 'not logged in' })
        return
      }
      session(req).note = String(req.body?.note)
      res.json({ ok: true })
    })
    shop.app.get('/note', (req: Request, res: Response) => {
      const s = session(req)
      if (!s.user) res.status(401).json({ error: 'not logged in' })
      else res.json({ user: s.user.name, note: s.note })
    })
    const server = shop.app.listen(0, '127.0.0.1')
    await new Promise<void>((resolve) => server.once('listening', () => resolve()))
    return {
      framework,
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      catalogReads: () => shop.catalog.reads,
      close: async () => {
        shop.close()
        server.closeAllConnections()
        await new Promise<void>((resolve) => server.close(() => resolve()))
      },
    }
  }
  const shop = await buildFastifyShop({
    client,
    cookieSecret: COOKIE_SECRET,
    storeSecret: 'faults',
    catalogDelayMs: 1,
  })
  const session = (request: { session: unknown }) =>
    request.session as { note?: string; user?: { name: string }; get(key: string): unknown }
  shop.app.post('/note', async (request, reply) => {
    const s = session(request)
    if (!s.user) return reply.code(401).send({ error: 'not logged in' })
    s.note = String((request.body as { note?: unknown } | undefined)?.note)
    return { ok: true }
  })
  shop.app.get('/note', async (request, reply) => {
    const s = session(request)
    if (!s.user) return reply.code(401).send({ error: 'not logged in' })
    return { user: s.user.name, note: s.note }
  })
  await shop.app.listen({ port: 0, host: '127.0.0.1' })
  return {
    framework,
    url: `http://127.0.0.1:${(shop.app.server.address() as AddressInfo).port}`,
    catalogReads: () => shop.catalog.reads,
    close: () => shop.app.close(),
  }
}

export interface Reply {
  status: number
  body: Record<string, unknown>
}

/** A browser: its own cookie and client address (the shops trust loopback's X-Forwarded-For). */
export class User {
  #cookie = ''

  constructor(
    readonly shop: Shop,
    readonly address: string,
  ) {}

  /** The session id in this user's cookie (both frameworks sign it as `<id>.<signature>`). */
  get sessionId(): string | undefined {
    if (!this.#cookie) return undefined
    const value = decodeURIComponent(this.#cookie.slice(this.#cookie.indexOf('=') + 1)).replace(/^s:/, '')
    return value.slice(0, value.lastIndexOf('.'))
  }

  async request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Reply> {
    const headers: Record<string, string> = { 'x-forwarded-for': this.address }
    if (this.#cookie) headers.cookie = this.#cookie
    if (body !== undefined) headers['content-type'] = 'application/json'
    const response = await fetch(`${this.shop.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const setCookie = response.headers.get('set-cookie')
    if (setCookie) this.#cookie = setCookie.split(';')[0]!
    const text = await response.text()
    let parsed: Record<string, unknown> = {}
    try {
      parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {}
    } catch {
      parsed = { text }
    }
    return { status: response.status, body: parsed }
  }

  async login(username: string, password: string): Promise<Reply> {
    return this.request('POST', '/login', { username, password })
  }
}
