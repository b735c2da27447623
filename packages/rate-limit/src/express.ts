import type { NextFunction, Request, Response } from 'express'
import { writeHeaders } from './headers.js'
import { type BlockedResponse, HttpLimiter, JSON_TYPE } from './http.js'
import { type HttpRateLimitOptions, parseHttpOptions } from './http-options.js'
import type { RateLimitInfo } from './info.js'
import type { RateLimiter } from './limiter.js'
import type { RateLimitMetrics } from './metrics.js'
import { optionalFunction, text } from './options.js'
import type { AddressSource } from './validations.js'

export type { RateLimitInfo } from './info.js'
export type { RateLimitMetrics } from './metrics.js'

// `req.rateLimit` on Express's Request type, by declaration merging (as @types/express-session
// declares `req.session`). Optional: only requests that passed a limiter carry it. A renamed
// `requestPropertyName` is not declared; read it with a cast.
declare global {
  namespace Express {
    interface Request {
      /** This request's state in the last memkit rate limiter it passed (`requestPropertyName`). */
      rateLimit?: RateLimitInfo
    }
  }
}

export interface ExpressRateLimitOptions extends HttpRateLimitOptions<Request> {
  /**
   * Sends the blocked response instead of the default JSON body. Status and headers are already
   * set when it runs. Not called when memcached failed under `onStoreError: 'deny'` (503).
   */
  handler?: (req: Request, res: Response, next: NextFunction, info: RateLimitInfo) => unknown
  /** Whether a finished request counts as successful, for the skip options. Default: status < 400. */
  requestWasSuccessful?: (req: Request, res: Response) => boolean | Promise<boolean>
  /** Where the request's RateLimitInfo is put on `req`. Default `'rateLimit'`. */
  requestPropertyName?: string
}

/** The middleware, plus what a status page or an admin route needs. */
export interface RateLimitMiddleware {
  (req: Request, res: Response, next: NextFunction): void
  /** Allowed/blocked counts per minute for the last 15 minutes, totals, breaker state. */
  metrics(): RateLimitMetrics
  /** Forgets a key's counts (the key as keyGenerator returns it, e.g. an IP). */
  resetKey(key: string): Promise<void>
  /** The framework-free limiter underneath. */
  readonly limiter: RateLimiter
  /** Closes the memcached client if the middleware opened it (`servers`). */
  close(): Promise<void>
}

const ADAPTER_OPTIONS = ['handler', 'requestWasSuccessful', 'requestPropertyName'] as const

/** Express's view of the client address: `req.ip` honours the app's 'trust proxy' setting. */
const EXPRESS_ADDRESS: AddressSource<Request> = {
  ip: (req) => req.ip ?? req.socket?.remoteAddress,
  trustProxy: (req) => (typeof req.app?.get === 'function' ? req.app.get('trust proxy') : null),
  forwardedFor: (req) => req.headers['x-forwarded-for'] !== undefined,
}

/**
 * Express middleware: `app.use(rateLimit({ client, limit: 100, windowMs: '1 minute' }))`, or
 * per route: `app.post('/login', rateLimit({ client, limit: 5, windowMs: '15 minutes' }), handler)`.
 */
export function rateLimit(options: ExpressRateLimitOptions): RateLimitMiddleware {
  const http = new HttpLimiter<Request>(parseHttpOptions(options, ADAPTER_OPTIONS), EXPRESS_ADDRESS)
  const handler = optionalFunction<ExpressRateLimitOptions['handler']>(options.handler, 'handler')
  const wasSuccessful =
    optionalFunction<ExpressRateLimitOptions['requestWasSuccessful']>(
      options.requestWasSuccessful,
      'requestWasSuccessful',
    ) ?? ((_req: Request, res: Response) => res.statusCode < 400)
  const property =
    options.requestPropertyName === undefined
      ? 'rateLimit'
      : text(options.requestPropertyName, 'requestPropertyName')

  const middleware = (req: Request, res: Response, next: NextFunction): void => {
    let passed = false
    const pass = (error?: unknown) => {
      passed = true
      next(error)
    }
    http
      .run(req)
      .then((decision) => {
        if (decision === undefined) return pass()
        ;(req as unknown as Record<string, unknown>)[property] = decision.info
        if (!res.headersSent) writeHeaders(res, decision.headers)
        const { result, info } = decision
        if (result.allowed) {
          http.watch(res, result, () => wasSuccessful(req, res))
          return pass()
        }
        if (handler !== undefined && result.source !== 'fail-closed') {
          res.status(http.config.statusCode)
          return handler(req, res, pass, info)
        }
        const blocked = http.blockedResponse(req, decision)
        if (blocked instanceof Promise) return blocked.then((response) => sendBlocked(res, response))
        sendBlocked(res, blocked)
      })
      .catch((error: unknown) => {
        // A failing callback (keyGenerator, limit, handler...) goes to Express's error handling,
        // unless the request already moved on.
        if (!passed) pass(error)
        else process.emitWarning(`rate limit: ${String(error)}`, { code: 'MEMKIT_RATE_LIMIT_CALLBACK' })
      })
  }

  return Object.assign(middleware, {
    metrics: () => http.limiter.metrics(),
    resetKey: (key: string) => http.limiter.reset(key),
    limiter: http.limiter,
    close: () => http.limiter.close(),
  })
}

/** Written directly (not res.json/res.send) so Express adds no ETag and the bytes are the Fastify plugin's. */
function sendBlocked(res: Response, { statusCode, body }: BlockedResponse): void {
  if (res.headersSent) return
  res.statusCode = statusCode
  res.setHeader('Content-Type', JSON_TYPE)
  res.setHeader('Content-Length', Buffer.byteLength(body))
  res.end(body)
}

export default rateLimit
