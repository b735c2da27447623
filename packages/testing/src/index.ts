export { onCleanup, stopAll } from './cleanup.js'
export { type FakeServer, startScriptedServer, startSilentServer } from './fake-servers.js'
export { freePort } from './free-port.js'
export {
  type MemcachedOptions,
  MemcachedServer,
  startMemcached,
  startMemcachedCluster,
} from './memcached-server.js'
export { registeredCount } from './process-registry.js'
export { dumpKeys, rawCommand } from './raw-command.js'
export { waitForPort } from './wait-for-port.js'
