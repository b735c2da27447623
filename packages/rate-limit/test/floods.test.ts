// A client far over its limit, through both frameworks: refused from memory at no memcached
// cost with the headers memcached's answer had, and released everywhere when any instance
// resets its key.
import assert from 'node:assert/strict'
import { afterEach, mock, test } from 'node:test'
import { createClient } from '@memkit/client'
import { useMemcached, waitUntil } from '@memkit/testing'
import express from 'express'
import Fastify from 'fastify'
import request from 'supertest'
import { rateLimit } from '../src/express.js'
import fastifyRateLimit from '../src/fastify.js'
import { countCommands, harnesses, rateHeaders, uniquePrefix } from './helpers.js'

const memcached = await useMemcached({ createClient })
afterEach(() => mock.timers.reset())

for (const { framework, make } of harnesses) {
  test(`${framework}: 200 refused requests cost no memcached command and carry the same headers`, async () => {
    // A frozen clock: the refusals below all fall within one re-check period.
    mock.timers.enable({ apis: ['Date'], now: Math.floor(Date.now() / 60_000) * 60_000 + 17_000 })
    const harness = await make({
      client: memcached.client,
      prefix: uniquePrefix('flood'),
      limit: 3,
      windowMs: '1 hour',
      headers: ['legacy', 'draft-7'],
    })
    try {
      const counted = []
      for (let i = 0; i < 4; i++) counted.push(await harness.request('/'))
      assert.deepEqual(
        counted.map((r) => r.status),
        [200, 200, 200, 429],
      )
      // memcached's own refusal: what every refusal from memory must repeat.
      const first = rateHeaders(counted[3]!)
      const commands = countCommands()
      const replies = []
      for (let i = 0; i < 200; i++) replies.push(await harness.request('/'))
      commands.stop()
      assert.equal(commands.count(), 0)
      for (const reply of replies) {
        assert.equal(reply.status, 429)
        assert.deepEqual(rateHeaders(reply), first)
      }
      assert.ok(Number(first['retry-after']) >= 1, 'Retry-After, as memcached’s own refusal had')
      assert.equal(harness.metrics()[0]!.totals.preBlocked, 200)
    } finally {
      await harness.close()
    }
  })
}

test('a reset from a Fastify instance releases a client blocked on an Express instance', async () => {
  const shared = {
    client: memcached.client,
    prefix: uniquePrefix('both'),
    name: 'api',
    limit: 2,
    windowMs: '1 hour',
  }
  const byUser = (req: { headers: Record<string, unknown> }) => String(req.headers['x-user'])
  const expressApp = express()
  expressApp.use(rateLimit({ ...shared, keyGenerator: byUser }))
  expressApp.get('/', (_req, res) => {
    res.send('ok')
  })
  const fastifyApp = Fastify()
  await fastifyApp.register(fastifyRateLimit, { ...shared, keyGenerator: byUser })
  fastifyApp.get('/', async () => 'ok')
  await fastifyApp.ready()
  try {
    const send = async () => (await request(expressApp).get('/').set('x-user', 'ann')).status
    const statuses = []
    for (let i = 0; i < 5; i++) statuses.push(await send())
    assert.deepEqual(statuses, [200, 200, 429, 429, 429])

    await fastifyApp.rateLimitResetKey('ann')
    // Poll the real condition: the Express instance asks memcached again within
    // preBlockRecheckMs (1 s by default) and then lets the client through.
    await waitUntil(async () => (await send()) === 200, {
      intervalMs: 100,
      message: 'the reset made through Fastify lets the client through Express',
    })
  } finally {
    await fastifyApp.close()
  }
})
