// Compiled by `npm run typecheck` (never run): the store must type-check as the `store` of both
// frameworks, and misuse must not compile.
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import { createClient } from '@memkit/client'
import express from 'express'
import session from 'express-session'
import Fastify from 'fastify'
import {
  MemcachedStore,
  type SessionError,
  type SessionRecord,
  SessionUnavailableError,
} from '../src/index.js'

// Applications augment SessionData, often with required fields; the store must still fit.
declare module 'express-session' {
  interface SessionData {
    user: { name: string; role: 'customer' | 'admin' }
  }
}

const client = createClient({ servers: '127.0.0.1:11211' })
const store = new MemcachedStore({ client, ttl: 3600, touchAfter: 60, prefix: 'app:sess:' })

// express-session
const app = express()
app.use(session({ store, secret: 'keyboard cat', resave: false, saveUninitialized: false }))
const asExpressStore: session.Store = store
void asExpressStore

// @fastify/session
const fastify = Fastify()
fastify.register(fastifyCookie)
fastify.register(fastifySession, { store, secret: 'a secret with minimum length of 32 characters' })

// Promise forms for direct use; a miss is null.
async function direct(): Promise<void> {
  const found: SessionRecord | null = await store.get('sid')
  if (found) {
    const expires: Date | null | undefined = found.cookie.expires
    void expires
  }
  await store.set('sid', { cookie: { maxAge: 60_000 }, user: 'ann' })
  await store.touch('sid', { cookie: { maxAge: 60_000 } })
  await store.destroy('sid')
  await store.clear()
  // @ts-expect-error the Promise form of get resolves a record, not a string
  const wrong: string = await store.get('sid')
  void wrong
}
void direct

// Callback forms.
store.get('sid', (error, value) => {
  if (error) return
  void value?.cookie
})
store.set('sid', { cookie: { maxAge: 1000 } }, (error) => void error)

// Typed events.
store.on('error', (error: SessionError) => void error.code)
store.on('disconnect', () => {})
const unavailable = new SessionUnavailableError('x')
const status: number = unavailable.statusCode
void status

new MemcachedStore({ servers: ['10.0.0.1:11211', '10.0.0.2:11211'], clientOptions: { timeout: 250 } })
new MemcachedStore({ encryption: { keys: [{ id: '2025-01', key: Buffer.alloc(32) }] } })
new MemcachedStore({ ttl: (s) => (s.cookie?.maxAge ? 60 : 3600), onUnavailable: 'new-session' })

// @ts-expect-error onUnavailable is 'error' or 'new-session'
new MemcachedStore({ onUnavailable: 'ignore' })
// durations are seconds or strings with a unit
new MemcachedStore({ ttl: '1d', touchAfter: '5m', maxLifetime: '12h', tombstoneTtl: 300 })
// @ts-expect-error ttl is seconds, a string with a unit, or a function
new MemcachedStore({ ttl: true })
// @ts-expect-error encryption keys need an id
new MemcachedStore({ encryption: { keys: [{ key: Buffer.alloc(32) }] } })
// @ts-expect-error unknown options do not compile (and throw at runtime)
new MemcachedStore({ tll: 60 })
