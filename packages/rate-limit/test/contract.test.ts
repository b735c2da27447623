// One table, both adapters: for the same options and the same sequence of requests, Express and
// Fastify must answer with the same status, rate-limit headers and body. The clock is pinned so
// "seconds until reset" cannot tick between the two runs.
import assert from 'node:assert/strict'
import { afterEach, describe, mock, test } from 'node:test'
import { createClient } from '@memkit/client'
import { useMemcached } from '@memkit/testing'
import { harnesses, rateHeaders, type SharedOptions, uniquePrefix } from './helpers.js'

const { client } = await useMemcached({ createClient })
afterEach(() => mock.timers.reset())

interface Step {
  path?: string
  headers?: Record<string, string>
}

interface Observed {
  status: number
  headers: Record<string, string>
  contentType: string | undefined
  body: string
}

interface Calls {
  reached: string[]
  blocked: string[]
}

interface Scenario {
  name: string
  options: (calls: Calls) => SharedOptions
  /** Use a memcached that is not there (a closed port) instead of the real one. */
  deadStore?: boolean
  steps: Step[]
  check: (replies: Observed[], calls: Calls) => void
}

const repeat = (n: number, step: Step = {}): Step[] => Array.from({ length: n }, () => step)
const statuses = (replies: Observed[]) => replies.map((r) => r.status)
const json = (reply: Observed) => JSON.parse(reply.body) as Record<string, unknown>
const header = (name: string) => (req: { headers: Record<string, unknown> }) =>
  String(req.headers[name] ?? '')

// A fixed instant (a minute boundary plus 17 s) near the real time, so TTLs stay sensible.
const NOW = Math.floor(Date.now() / 60_000) * 60_000 + 17_000

const scenarios: Scenario[] = [
  {
    name: 'defaults: legacy X-RateLimit-* headers, epoch reset, Retry-After and JSON body on 429',
    options: () => ({ limit: 2 }),
    steps: repeat(3),
    check(replies) {
      assert.deepEqual(statuses(replies), [200, 200, 429])
      const [first, , blocked] = replies
      assert.equal(first!.headers['x-ratelimit-limit'], '2')
      assert.equal(first!.headers['x-ratelimit-remaining'], '1')
      const reset = Number(first!.headers['x-ratelimit-reset'])
      assert.ok(reset > NOW / 1000 && reset <= NOW / 1000 + 3600, 'Reset is a Unix epoch in seconds')
      assert.equal(first!.headers['retry-after'], undefined)
      assert.equal(blocked!.headers['x-ratelimit-remaining'], '0')
      assert.equal(Number(blocked!.headers['retry-after']), reset - NOW / 1000)
      assert.equal(blocked!.contentType, 'application/json; charset=utf-8')
      assert.deepEqual(json(blocked!), {
        statusCode: 429,
        error: 'Too Many Requests',
        message: 'Too many requests, please try again later.',
        retryAfter: reset - NOW / 1000,
      })
    },
  },
  {
    name: "resetFormat 'delta': X-RateLimit-Reset in seconds until the reset",
    options: () => ({ limit: 1, resetFormat: 'delta' }),
    steps: repeat(2),
    check(replies) {
      const reset = Number(replies[0]!.headers['x-ratelimit-reset'])
      assert.ok(reset >= 1 && reset <= 3600)
      assert.equal(replies[1]!.headers['retry-after'], String(reset))
    },
  },
  {
    name: 'draft-6 headers',
    options: () => ({ limit: 2, headers: 'draft-6' }),
    steps: repeat(3),
    check(replies) {
      const h = replies[0]!.headers
      assert.equal(h['ratelimit-policy'], '2;w=3600')
      assert.deepEqual([h['ratelimit-limit'], h['ratelimit-remaining']], ['2', '1'])
      assert.match(h['ratelimit-reset']!, /^\d+$/)
      assert.equal(h['x-ratelimit-limit'], undefined)
      assert.equal(replies[2]!.headers['retry-after'], h['ratelimit-reset'])
    },
  },
  {
    name: 'draft-7 headers',
    options: () => ({ limit: 2, headers: 'draft-7' }),
    steps: repeat(3),
    check(replies) {
      const h = replies[1]!.headers
      assert.equal(h['ratelimit-policy'], '2;w=3600')
      assert.match(h.ratelimit!, /^limit=2, remaining=0, reset=\d+$/)
    },
  },
  {
    name: 'draft-8 headers',
    options: () => ({ limit: 2, headers: 'draft-8' }),
    steps: repeat(3),
    check(replies) {
      const h = replies[0]!.headers
      assert.match(h.ratelimit!, /^"2-in-1hr"; r=1; t=\d+$/)
      assert.match(h['ratelimit-policy']!, /^"2-in-1hr"; q=2; w=3600; pk=:[A-Za-z0-9+/=]+:$/)
    },
  },
  {
    name: 'draft-8 with a policyName function',
    options: () => ({
      limit: 3,
      headers: 'draft-8',
      policyName: (req) => `plan-${String(req.headers['x-plan'])}`,
    }),
    steps: [{ headers: { 'x-plan': 'gold' } }],
    check(replies) {
      assert.match(replies[0]!.headers.ratelimit!, /^"plan-gold"; r=2; t=\d+$/)
      assert.match(replies[0]!.headers['ratelimit-policy']!, /^"plan-gold"; q=3; w=3600; pk=:/)
    },
  },
  {
    name: 'draft-8 with a policyName string',
    options: () => ({ limit: 3, headers: 'draft-8', policyName: 'api-basic' }),
    steps: repeat(1),
    check(replies) {
      assert.match(replies[0]!.headers.ratelimit!, /^"api-basic"; r=2; t=\d+$/)
      assert.match(replies[0]!.headers['ratelimit-policy']!, /^"api-basic"; q=3; w=3600; pk=:/)
    },
  },
  {
    name: 'headers: true is the default legacy set',
    options: () => ({ limit: 3, headers: true }),
    steps: repeat(1),
    check(replies) {
      assert.deepEqual(Object.keys(replies[0]!.headers), [
        'x-ratelimit-limit',
        'x-ratelimit-remaining',
        'x-ratelimit-reset',
      ])
    },
  },
  {
    name: 'legacy and draft-7 together',
    options: () => ({ limit: 5, headers: ['legacy', 'draft-7'] }),
    steps: repeat(1),
    check(replies) {
      const h = replies[0]!.headers
      assert.equal(h['x-ratelimit-remaining'], '4')
      assert.match(h.ratelimit!, /^limit=5, remaining=4, reset=\d+$/)
    },
  },
  {
    name: "headers 'none' keeps Retry-After on 429; retryAfterHeader false removes it too",
    options: () => ({ limit: 1, headers: 'none' }),
    steps: repeat(2),
    check(replies) {
      assert.deepEqual(rateHeaders({ status: 200, headers: replies[0]!.headers, body: '' }), {})
      assert.deepEqual(Object.keys(replies[1]!.headers), ['retry-after'])
    },
  },
  {
    name: 'retryAfterHeader false with no headers: a bare 429',
    options: () => ({ limit: 1, headers: false, retryAfterHeader: false }),
    steps: repeat(2),
    check(replies) {
      assert.deepEqual(replies[1]!.headers, {})
      assert.equal(replies[1]!.status, 429)
    },
  },
  {
    name: 'message string goes into the JSON body',
    options: () => ({ limit: 0, message: 'Slow down.' }),
    steps: repeat(1),
    check(replies) {
      assert.equal(json(replies[0]!).message, 'Slow down.')
      assert.equal(json(replies[0]!).statusCode, 429)
    },
  },
  {
    name: 'message object replaces the body',
    options: () => ({ limit: 0, message: { code: 'RATE', detail: 'later' } }),
    steps: repeat(1),
    check(replies) {
      assert.deepEqual(json(replies[0]!), { code: 'RATE', detail: 'later' })
    },
  },
  {
    name: 'message function of the request',
    options: () => ({ limit: 0, message: (req) => `no more for ${String(req.headers['x-user'])}` }),
    steps: [{ headers: { 'x-user': 'ann' } }],
    check(replies) {
      assert.equal(json(replies[0]!).message, 'no more for ann')
    },
  },
  {
    name: 'statusCode option',
    options: () => ({ limit: 0, statusCode: 503 }),
    steps: repeat(1),
    check(replies) {
      assert.equal(replies[0]!.status, 503)
      assert.equal(json(replies[0]!).error, 'Service Unavailable')
    },
  },
  {
    name: 'keyGenerator: each key has its own count',
    options: () => ({ limit: 1, keyGenerator: header('x-user') }),
    steps: [
      { headers: { 'x-user': 'a' } },
      { headers: { 'x-user': 'b' } },
      { headers: { 'x-user': 'a' } },
      { headers: { 'x-user': 'b' } },
    ],
    check(replies) {
      assert.deepEqual(statuses(replies), [200, 200, 429, 429])
    },
  },
  {
    name: 'limit as a function of the request',
    options: () => ({
      limit: (req) => (req.headers['x-plan'] === 'pro' ? 3 : 1),
      keyGenerator: header('x-plan'),
    }),
    steps: [...repeat(2, { headers: { 'x-plan': 'free' } }), ...repeat(4, { headers: { 'x-plan': 'pro' } })],
    check(replies) {
      assert.deepEqual(statuses(replies), [200, 429, 200, 200, 200, 429])
      assert.equal(replies[2]!.headers['x-ratelimit-limit'], '3')
    },
  },
  {
    name: 'cost as a function of the request',
    options: () => ({ limit: 10, cost: (req) => Number(req.headers['x-cost'] ?? 1) }),
    steps: [
      { headers: { 'x-cost': '4' } },
      { headers: { 'x-cost': '5' } },
      { headers: { 'x-cost': '2' } },
      {},
    ],
    check(replies) {
      assert.deepEqual(statuses(replies), [200, 200, 429, 429])
      assert.deepEqual(
        replies.map((r) => r.headers['x-ratelimit-remaining']),
        ['6', '1', '0', '0'],
      )
    },
  },
  {
    name: 'skip: skipped requests are not counted and get no headers',
    options: () => ({ limit: 1, skip: (req) => req.headers['x-internal'] === '1' }),
    steps: [{ headers: { 'x-internal': '1' } }, { headers: { 'x-internal': '1' } }, {}, {}],
    check(replies) {
      assert.deepEqual(statuses(replies), [200, 200, 200, 429])
      assert.equal(replies[0]!.headers['x-ratelimit-limit'], undefined)
    },
  },
  {
    name: 'the default key is the client IP (trust proxy on): IPv6 grouped by /56',
    options: () => ({ limit: 1 }),
    steps: [
      { headers: { 'x-forwarded-for': '2001:db8:abcd:1200::1' } },
      { headers: { 'x-forwarded-for': '2001:db8:abcd:12ff::2' } },
      { headers: { 'x-forwarded-for': '2001:db8:abcd:1300::1' } },
      { headers: { 'x-forwarded-for': '203.0.113.7' } },
      { headers: { 'x-forwarded-for': '203.0.113.8' } },
    ],
    check(replies) {
      assert.deepEqual(statuses(replies), [200, 429, 200, 200, 200])
    },
  },
  {
    name: 'ipv6Subnet 64 separates what /56 groups',
    options: () => ({ limit: 1, ipv6Subnet: 64 }),
    steps: [
      { headers: { 'x-forwarded-for': '2001:db8:abcd:1200::1' } },
      { headers: { 'x-forwarded-for': '2001:db8:abcd:12ff::2' } },
      { headers: { 'x-forwarded-for': '2001:db8:abcd:12ff::3' } },
    ],
    check(replies) {
      assert.deepEqual(statuses(replies), [200, 200, 429])
    },
  },
  {
    name: 'sliding window',
    options: () => ({ limit: 2, algorithm: 'sliding', headers: ['legacy', 'draft-7'] }),
    steps: repeat(3),
    check(replies) {
      assert.deepEqual(statuses(replies), [200, 200, 429])
      assert.equal(replies[2]!.headers['x-ratelimit-remaining'], '0')
    },
  },
  {
    name: 'skipSuccessfulRequests: successes are taken back, failures count',
    options: () => ({ limit: 2, skipSuccessfulRequests: true }),
    steps: [{}, {}, {}, { path: '/?status=500' }, { path: '/?status=404' }, {}],
    check(replies) {
      assert.deepEqual(statuses(replies), [200, 200, 200, 500, 404, 429])
    },
  },
  {
    name: 'skipFailedRequests: failures are taken back, successes count',
    options: () => ({ limit: 2, skipFailedRequests: true }),
    steps: [{ path: '/?status=500' }, { path: '/?status=503' }, { path: '/?status=400' }, {}, {}, {}],
    check(replies) {
      assert.deepEqual(statuses(replies), [500, 503, 400, 200, 200, 429])
    },
  },
  {
    name: 'onLimitReached once per key and window, onBlocked on every blocked request',
    options: (calls) => ({
      limit: 1,
      keyGenerator: header('x-user'),
      onLimitReached: (req) => calls.reached.push(String(req.headers['x-user'])),
      onBlocked: (req) => calls.blocked.push(String(req.headers['x-user'])),
    }),
    steps: [...repeat(3, { headers: { 'x-user': 'a' } }), ...repeat(2, { headers: { 'x-user': 'b' } })],
    check(replies, calls) {
      assert.deepEqual(statuses(replies), [200, 429, 429, 200, 429])
      assert.deepEqual(calls.reached, ['a', 'b'])
      assert.deepEqual(calls.blocked, ['a', 'a', 'b'])
    },
  },
  {
    name: 'preBlock: over-limit requests answered from memory, with the same headers',
    options: () => ({ limit: 1, preBlock: true, headers: ['legacy', 'draft-7'] }),
    steps: repeat(4),
    check(replies) {
      assert.deepEqual(statuses(replies), [200, 429, 429, 429])
      assert.deepEqual(replies[3]!.headers, replies[1]!.headers)
    },
  },
  {
    name: "memcached down, onStoreError 'allow' (default): requests pass without rate-limit headers",
    deadStore: true,
    options: () => ({ limit: 1 }),
    steps: repeat(3),
    check(replies) {
      assert.deepEqual(statuses(replies), [200, 200, 200])
      assert.deepEqual(rateHeaders({ status: 200, headers: replies[0]!.headers, body: '' }), {})
    },
  },
  {
    name: "memcached down, onStoreError 'deny': 503 with Retry-After",
    deadStore: true,
    options: () => ({ limit: 5, onStoreError: 'deny', breaker: { threshold: 1, cooldownMs: 7000 } }),
    steps: repeat(2),
    check(replies) {
      assert.deepEqual(statuses(replies), [503, 503])
      assert.equal(replies[1]!.headers['retry-after'], '7')
      assert.equal(replies[1]!.headers['x-ratelimit-limit'], undefined)
      assert.deepEqual(json(replies[1]!), {
        statusCode: 503,
        error: 'Service Unavailable',
        message: 'The rate limiter is unavailable, please try again later.',
        retryAfter: 7,
      })
    },
  },
  {
    name: "memcached down, onStoreError 'deny', retryAfterHeader false: a bare 503",
    deadStore: true,
    options: () => ({
      limit: 5,
      onStoreError: 'deny',
      retryAfterHeader: false,
      breaker: { threshold: 1, cooldownMs: 7000 },
    }),
    steps: repeat(2),
    check(replies) {
      assert.deepEqual(statuses(replies), [503, 503])
      assert.deepEqual(replies[1]!.headers, {})
    },
  },
  {
    name: "memcached down, onStoreError 'local': an in-process limit of limit / instances",
    deadStore: true,
    options: () => ({ limit: 6, instances: 3, onStoreError: 'local' }),
    steps: repeat(3),
    check(replies) {
      assert.deepEqual(statuses(replies), [200, 200, 429])
      assert.equal(replies[0]!.headers['x-ratelimit-limit'], '2')
    },
  },
]

describe('Express and Fastify answer alike (contract table)', () => {
  for (const scenario of scenarios) {
    test(scenario.name, async () => {
      const outputs: Record<string, { replies: Observed[]; calls: Calls }> = {}
      for (const { framework, make } of harnesses) {
        mock.timers.enable({ apis: ['Date'], now: NOW })
        const calls: Calls = { reached: [], blocked: [] }
        const store = scenario.deadStore ? { servers: '127.0.0.1:1' } : { client }
        const harness = await make({
          ...store,
          prefix: uniquePrefix(framework),
          windowMs: '1 hour',
          onError: () => {},
          ...scenario.options(calls),
        })
        const replies: Observed[] = []
        try {
          for (const step of scenario.steps) {
            const reply = await harness.request(step.path, step.headers)
            // The test route answers 'ok' as text; everything else is the limiter's own answer.
            const limiterReply = reply.body !== 'ok'
            replies.push({
              status: reply.status,
              headers: rateHeaders(reply),
              contentType: limiterReply ? reply.headers['content-type'] : undefined,
              body: limiterReply ? reply.body : '',
            })
          }
        } finally {
          await harness.close()
          mock.timers.reset()
        }
        outputs[framework] = { replies, calls }
      }
      assert.deepEqual(outputs.fastify, outputs.express)
      scenario.check(outputs.express!.replies, outputs.express!.calls)
    })
  }
})
