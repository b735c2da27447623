export { onCleanup, stopAll } from './cleanup.js'
export { generateTlsMaterial, type TlsMaterial, writeAuthFile, writeSaslConfig } from './credentials.js'
export { type FakeServer, startScriptedServer, startSilentServer } from './fake-servers.js'
export {
  type ClientFixture,
  type ClientFixtureOptions,
  type Closable,
  type MemcachedFixture,
  type MemcachedFixtureOptions,
  uniquePrefix,
  useMemcached,
  withApp,
} from './fixture.js'
export { freePort } from './free-port.js'
export {
  type MemcachedOptions,
  MemcachedServer,
  startMemcached,
  startMemcachedCluster,
} from './memcached-server.js'
export { type Capture, type CapturedWarning, captureConsole, captureWarnings, waitUntil } from './output.js'
export { registeredCount } from './process-registry.js'
export { dumpKeys, rawCommand } from './raw-command.js'
export { startTwemproxy, type TwemproxyOptions, TwemproxyServer } from './twemproxy.js'
export { waitForPort } from './wait-for-port.js'
