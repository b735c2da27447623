// Exact counts under concurrency: several application processes, each with its own memkit
// client, share one memcached; 500 concurrent requests for one key, spread over them, must get
// exactly `limit` successes.
import assert from 'node:assert/strict'
import { before, test } from 'node:test'
import { useMemcached } from '@memkit/testing'
import { burst, keyWithRoom, startApp, stopApps } from './app-processes.js'
import { uniquePrefix } from './helpers.js'

const FRAMEWORKS = ['express', 'fastify', 'express', 'fastify'] as const
const FIXED_LIMIT = 137
const SLIDING_LIMIT = 61
const REQUESTS = 500

const { server: mc, closeAfter } = await useMemcached()
closeAfter({ close: stopApps })
let prefix = ''
const ports: number[] = []

before(async () => {
  prefix = uniquePrefix('conc')
  const limits = { prefix, fixed: FIXED_LIMIT, sliding: SLIDING_LIMIT }
  ports.push(
    ...(await Promise.all(
      FRAMEWORKS.map((framework) => startApp(framework, { servers: mc.address }, limits)),
    )),
  )
})

test(`fixed window: ${REQUESTS} concurrent requests over 4 processes allow exactly ${FIXED_LIMIT}`, async () => {
  const tally = await burst(ports, '/fixed', await keyWithRoom(prefix, 'fixed'), REQUESTS)
  assert.deepEqual(tally, { 200: FIXED_LIMIT, 429: REQUESTS - FIXED_LIMIT })
})

test(`sliding window (empty previous window): exactly ${SLIDING_LIMIT} allowed`, async () => {
  const tally = await burst(ports, '/sliding', await keyWithRoom(prefix, 'sliding'), REQUESTS)
  assert.deepEqual(tally, { 200: SLIDING_LIMIT, 429: REQUESTS - SLIDING_LIMIT })
})
