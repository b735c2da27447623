// Starts the Express example: memcached from MEMCACHED_SERVERS (or servers passed in), port
// from PORT (default 3000; 0 picks a free one). `npm start` in this directory, or `npm run
// demo express` at the repository root, which also finds or starts a memcached for you.
import type { AddressInfo } from 'node:net'
import { createClient } from '@memkit/client'
import { buildApp } from './app.js'

export async function start(options: { servers?: string; port?: number; host?: string } = {}) {
  const client = createClient({
    servers: options.servers ?? process.env.MEMCACHED_SERVERS ?? '127.0.0.1:11211',
  })
  const { app, close } = buildApp({
    client,
    cookieSecret: process.env.COOKIE_SECRET ?? 'example-cookie-secret-change-me-in-production',
    storeSecret: process.env.SESSION_STORE_SECRET,
  })
  const server = app.listen(options.port ?? Number(process.env.PORT ?? 3000), options.host ?? '127.0.0.1')
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve)
      server.once('error', reject)
    })
  } catch (error) {
    // The port is taken (EADDRINUSE) or not ours to bind: leave nothing open behind.
    close()
    await client.close()
    throw error
  }
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    async stop() {
      await new Promise((resolve) => server.close(resolve))
      close()
      await client.close()
    },
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const running = await start()
  console.log(`memkit example (Express) listening on ${running.url}`)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void running.stop().then(() => process.exit(0)))
  }
}
