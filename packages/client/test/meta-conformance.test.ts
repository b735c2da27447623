import { useMemcached } from '@memkit/testing'
import { createClient } from '../src/index.js'
import { describeConformance } from './conformance.js'

const { server } = await useMemcached()

describeConformance('meta protocol, one real memcached', {
  client: (options) => createClient({ servers: server.address, ...options }),
})
