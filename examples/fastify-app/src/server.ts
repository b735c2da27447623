// Starts the Fastify example: memcached from MEMCACHED_SERVERS (or servers passed in), port
// from PORT (default 3000; 0 picks a free one). `npm start` in this directory, or `npm run
// demo` at the repository root, which also finds or starts a memcached for you.
import { createClient } from '@memkit/client'
import { buildApp } from './app.js'

export async function start(options: { servers?: string; port?: number; host?: string } = {}) {
  const client = createClient({
    servers: options.servers ?? process.env.MEMCACHED_SERVERS ?? '127.0.0.1:11211',
  })
  const { app } = await buildApp({
    client,
    cookieSecret: process.env.COOKIE_SECRET ?? 'example-cookie-secret-change-me-in-production',
    storeSecret: process.env.SESSION_STORE_SECRET,
  })
  try {
    await app.listen({
      port: options.port ?? Number(process.env.PORT ?? 3000),
      host: options.host ?? '127.0.0.1',
    })
  } catch (error) {
    // The port is taken (EADDRINUSE) or not ours to bind: leave nothing open behind.
    await app.close()
    await client.close()
    throw error
  }
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  return {
    url: `http://127.0.0.1:${port}`,
    async stop() {
      await app.close()
      await client.close()
    },
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const running = await start()
  console.log(`memkit example (Fastify) listening on ${running.url}`)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void running.stop().then(() => process.exit(0)))
  }
}
