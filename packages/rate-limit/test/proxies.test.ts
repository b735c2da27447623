// Trust-proxy checks: a limiter that keys on the client address warns once, with a stable code,
// when the app trusts every proxy hop (any client can then pick its own key) or when requests
// carry X-Forwarded-For while nothing is trusted (every client behind the proxy shares a key).
// Each check can be turned off by its code. Both frameworks, real requests.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { createClient } from '@memkit/client'
import { captureWarnings, useMemcached } from '@memkit/testing'
import express from 'express'
import Fastify from 'fastify'
import request from 'supertest'
import { rateLimit } from '../src/express.js'
import fastifyRateLimit from '../src/fastify.js'
import { VALIDATION_CODES } from '../src/validations.js'
import { uniquePrefix } from './helpers.js'

const memcached = await useMemcached({ createClient })

const PERMISSIVE = 'MEMKIT_RATE_LIMIT_PERMISSIVE_TRUST_PROXY'
const UNEXPECTED = 'MEMKIT_RATE_LIMIT_UNEXPECTED_X_FORWARDED_FOR'

/** Sends three requests through an app with this trust setting and limiter options; returns the warnings. */
type Run = (
  trust: unknown,
  options: Record<string, unknown>,
  forwardedFor: string | undefined,
) => Promise<Array<{ code: string | undefined; message: string }>>

const frameworks: Array<{ name: string; run: Run }> = [
  {
    name: 'express',
    async run(trust, options, forwardedFor) {
      const app = express()
      if (trust !== undefined) app.set('trust proxy', trust)
      app.use(rateLimit({ client: memcached.client, prefix: uniquePrefix('px'), ...options }))
      app.get('/', (_req, res) => {
        res.send('ok')
      })
      const warnings = captureWarnings([...VALIDATION_CODES])
      try {
        for (let i = 0; i < 3; i++) {
          const req = request(app).get('/')
          assert.equal((await (forwardedFor ? req.set('X-Forwarded-For', forwardedFor) : req)).status, 200)
        }
      } finally {
        warnings.restore()
      }
      return warnings.items
    },
  },
  {
    name: 'fastify',
    async run(trust, options, forwardedFor) {
      const app = Fastify(trust === undefined ? {} : { trustProxy: trust as boolean })
      await app.register(fastifyRateLimit, {
        client: memcached.client,
        prefix: uniquePrefix('px'),
        ...options,
      })
      // Two routes with limiters of their own: the plugin's checks are shared, still one warning.
      app.get('/', { config: { rateLimit: { limit: 100 } } }, async () => 'ok')
      app.get('/other', { config: { rateLimit: { limit: 50 } } }, async () => 'ok')
      const warnings = captureWarnings([...VALIDATION_CODES])
      try {
        for (const url of ['/', '/other', '/']) {
          const headers = forwardedFor ? { 'x-forwarded-for': forwardedFor } : {}
          assert.equal((await app.inject({ url, headers })).statusCode, 200)
        }
      } finally {
        warnings.restore()
        await app.close()
      }
      return warnings.items
    },
  },
]

const XFF = '198.51.100.7'

for (const { name, run } of frameworks) {
  describe(`${name}: trust-proxy checks`, () => {
    test('trusting every hop while keying on the client address: one warning, with its code', async () => {
      const warnings = await run(true, {}, XFF)
      assert.deepEqual(
        warnings.map((w) => w.code),
        [PERMISSIVE],
      )
      assert.match(warnings[0]!.message, /any client can choose its own key by sending X-Forwarded-For/)
      assert.match(warnings[0]!.message, /validate: \{ MEMKIT_RATE_LIMIT_PERMISSIVE_TRUST_PROXY: false \}/)
    })

    test('X-Forwarded-For while no proxy is trusted: one warning, with its code', async () => {
      for (const trust of [undefined, false]) {
        const warnings = await run(trust, {}, XFF)
        assert.deepEqual(
          warnings.map((w) => w.code),
          [UNEXPECTED],
          String(trust),
        )
        assert.match(warnings[0]!.message, /every client behind it shares the proxy's address/)
      }
    })

    test('no warning for a sound setting', async () => {
      const oneHop = name === 'express' ? 1 : (_address: string, hop: number) => hop === 0
      assert.deepEqual(await run(oneHop, {}, XFF), [], 'one trusted hop')
      assert.deepEqual(await run('loopback', {}, XFF), [], 'trusted addresses')
      assert.deepEqual(await run(undefined, {}, undefined), [], 'direct, no X-Forwarded-For')
    })

    test('each check is turned off by its code, or all with validate: false', async () => {
      assert.deepEqual(await run(true, { validate: { [PERMISSIVE]: false } }, XFF), [])
      assert.deepEqual(await run(undefined, { validate: { [UNEXPECTED]: false } }, XFF), [])
      assert.deepEqual(await run(true, { validate: false }, XFF), [])
      // Turning one check off leaves the other on.
      assert.deepEqual(
        (await run(undefined, { validate: { [PERMISSIVE]: false } }, XFF)).map((w) => w.code),
        [UNEXPECTED],
      )
    })

    test('a limiter with its own keyGenerator is not checked (it does not key on the address)', async () => {
      assert.deepEqual(await run(true, { keyGenerator: () => 'user-1' }, XFF), [])
    })
  })
}

test('fastify: a hop count trusts nothing in Fastify 5, so X-Forwarded-For is reported', async () => {
  const warnings = await frameworks[1]!.run(1, {}, XFF)
  assert.deepEqual(
    warnings.map((w) => w.code),
    [UNEXPECTED],
  )
})

test('validate is checked at construction', () => {
  for (const validate of ['yes', 1, { MEMKIT_RATE_LIMIT_TRUST: false }, { [PERMISSIVE]: 'no' }]) {
    assert.throws(
      () => rateLimit({ client: memcached.client, validate: validate as never }),
      { code: 'ERR_MEMKIT_INVALID_OPTION', message: /validat/ },
      JSON.stringify(validate),
    )
  }
})
