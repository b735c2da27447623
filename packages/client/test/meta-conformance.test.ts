import { after, before } from 'node:test'
import { type MemcachedServer, startMemcached, stopAll } from '@memkit/testing'
import { createClient } from '../src/index.js'
import { describeConformance } from './conformance.js'

let server: MemcachedServer
before(async () => {
  server = await startMemcached()
})
after(stopAll)

describeConformance('meta protocol, one real memcached', {
  client: (options) => createClient({ servers: server.address, ...options }),
})
