export type { BreakerOptions, BreakerSnapshot, BreakerState } from './breaker.js'
export { describeWindow, MAX_WINDOW_MS, parseDuration } from './duration.js'
export {
  defaultPolicyName,
  HEADER_FORMATS,
  type HeaderField,
  type HeaderFormat,
  rateLimitHeaders,
} from './headers.js'
export type { HttpRateLimitOptions } from './http-options.js'
export type { RateLimitInfo } from './info.js'
export { ipKey } from './ip.js'
export { type ConsumeOptions, RateLimiter, type RateLimitResult, type RateLimitSource } from './limiter.js'
export { METRICS_MINUTES, type MinuteCounts, type RateLimitMetrics } from './metrics.js'
export type { Algorithm, LimiterOptions, StoreErrorPolicy } from './options.js'
export {
  type ClientRateLimitInfo,
  createFastifyRateLimitStore,
  ExpressRateLimitStore,
  type FastifyRateLimitStoreClass,
  type FastifyRateLimitStoreInstance,
  type PeerStoreOptions,
} from './peer-stores.js'
export { VALIDATION_CODES, type ValidateOption, type ValidationCode } from './validations.js'
