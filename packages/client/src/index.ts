export { createClient, MemcachedClient } from './client.js'
export type { Distribution } from './cluster.js'
export { CHANNELS, type CommandEvent } from './diagnostics.js'
export { readDuration, toDuration } from './duration.js'
export {
  AuthError,
  CasConflictError,
  ClientClosedError,
  ConnectionError,
  DecodeError,
  InvalidArgumentError,
  InvalidKeyError,
  InvalidOptionError,
  InvalidValueError,
  isMemkitError,
  LoadTimeoutError,
  LockTimeoutError,
  MemkitError,
  NotNumericError,
  NotSupportedError,
  OverloadedError,
  PartialReadError,
  PartialWriteError,
  ProtocolError,
  ServerDownError,
  ServerError,
  ServerFailureError,
  TimeoutError,
  UnsafeIntegerError,
  ValueTooLargeError,
} from './errors.js'
export { createFallbackClient, FallbackClient, type FallbackOptions } from './fallback-client.js'
export { Generation, type GenerationReadOptions } from './generation.js'
export { Continuum, hashKey } from './ketama.js'
export { MAX_KEY_LENGTH, MAX_NON_ASCII_KEY_LENGTH } from './keys.js'
export { Lock, type LockOptions } from './lock.js'
export type { MemkitClient } from './memkit-client.js'
export type { ClientConfig, ClientOptions } from './options.js'
export { murmur3, Rendezvous } from './rendezvous.js'
export { type CompressionOptions, defaultSerializer, Flags, type Serializer } from './serializer.js'
export { JsonFlags, jsonSerializer } from './serializers/json.js'
export { parseServers, type ServerConfig, type ServerSpec } from './servers.js'
export type { ServerStats } from './stats.js'
export { MAX_EXPTIME, MAX_RELATIVE_TTL, toExptime } from './ttl.js'
export type {
  ClientEvents,
  CounterOptions,
  RememberOptions,
  SetManyEntries,
  SetOptions,
  UpdateOptions,
} from './types.js'
