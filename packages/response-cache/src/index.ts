export {
  type Begin,
  type BeginOptions,
  type InvalidateOptions,
  REFRESH_HEADER,
  ResponseCache,
  Transaction,
} from './cache.js'
export { CorruptEntryError } from './entry.js'
export type { MetricsSnapshot, Outcome, RouteCounters } from './metrics.js'
export {
  type CacheConfig,
  type CompressionAlgorithm,
  parseOptions,
  parseRouteSettings,
  type ResponseCacheOptions,
  type RouteCacheOptions,
} from './options.js'
export type { NotStoredReason } from './policy.js'
export type {
  CacheRequest,
  CapturedResponse,
  HeaderList,
  HeaderValue,
  OutgoingResponse,
  RequestHeaders,
  RouteSettings,
} from './types.js'
