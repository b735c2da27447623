// The floor under a response cache hit, for benchmarks/profile.ts: the route of
// response-cache.bench.ts (GET /products, the same 2 KB JSON catalogue) answering with the body
// already serialized, a Buffer made once at start-up, and no cache at all: what Fastify or
// Express cost to send that response. A cache hit does this plus its lookup. Started by
// profile.ts with `--framework=fastify|express`; reports its port and answers every IPC message
// with its CPU time, as the benchmark apps do.
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'

const { values: args } = parseArgs({ options: { framework: { type: 'string', default: 'fastify' } } })

/** The catalogue of response-cache.bench.ts (`catalogue(2)`: 35 items, about 2 KB of JSON). */
const body = Buffer.from(
  JSON.stringify({
    items: Array.from({ length: Math.round(2 * 17.5) }, (_, i) => ({
      id: i,
      name: `product number ${i}`,
      price: i * 3.5,
      stock: i % 7,
    })),
  }),
)

let port: number
if (args.framework === 'express') {
  const { default: express } = await import('express')
  const app = express()
  app.get('/products', (_req, res) => {
    res.type('application/json').send(body)
  })
  const server = app.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  port = (server.address() as AddressInfo).port
} else {
  const { default: Fastify } = await import('fastify')
  const app = Fastify()
  app.get('/products', async (_req, reply) => reply.type('application/json; charset=utf-8').send(body))
  await app.listen({ port: 0, host: '127.0.0.1' })
  port = (app.server.address() as AddressInfo).port
}
process.on('message', () => {
  const { user, system } = process.cpuUsage()
  process.send?.({ cpu: user + system })
})
process.send?.({ port })
