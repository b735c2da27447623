// memkit as a reverse proxy in front of the suite's origin server: an Express app with the
// middleware mounted globally, and a Fastify app with the plugin, each with one catch-all route
// whose handler forwards to the origin.
import type { AddressInfo } from 'node:net'
import type { MemkitClient } from '@memkit/client'
import express from 'express'
import Fastify from 'fastify'
import { responseCache } from '../../src/express.js'
import fastifyResponseCache from '../../src/fastify.js'
import type { ResponseCacheOptions } from '../../src/index.js'
import { forward, type Interim, type Upstream } from './proxy.js'

export interface RunningApp {
  /** Base URL the suite's client talks to. */
  base: string
  close(): Promise<void>
}

/**
 * How the cache is configured for the run, as an operator would configure a gateway cache:
 * - `staleIfError`: a stale response may stand in for an origin that fails (RFC 9111 §4.2.4
 *   allows it when the cache is disconnected; must-revalidate, no-cache and s-maxage still
 *   forbid it). The suite's tests of those prohibitions depend on it.
 * - `cacheServerErrors`: 5xx responses with explicit freshness are stored (RFC 9111 allows it; off
 *   by default against cache-poisoning denial of service).
 * - `heuristic`: heuristic freshness from Last-Modified (RFC 9111 §4.2.2; off by default).
 * Everything else is the default, including CDN-Cache-Control as the targeted field.
 */
export function cacheOptions(client: MemkitClient): ResponseCacheOptions {
  return {
    client,
    keyPrefix: `cache-tests:${process.pid}:`,
    staleIfError: 3600,
    cacheServerErrors: true,
    heuristic: true,
  }
}

export async function startExpress(client: MemkitClient, origin: string): Promise<RunningApp> {
  const app = express()
  app.set('etag', false)
  app.set('x-powered-by', false)
  app.use(responseCache(cacheOptions(client)))
  app.use((req, res) => {
    const interim = (i: Interim) => sendInterim(res, i)
    forward(
      origin,
      { method: req.method, url: req.originalUrl, headers: req.headers, body: req },
      interim,
    ).then(
      (up) => {
        res.statusCode = up.status
        res.statusMessage = up.reason
        for (const [name, value] of up.headers) res.setHeader(name, value)
        res.end(up.body)
      },
      () => badGateway(res),
    )
  })
  const server = app.listen(0, '127.0.0.1')
  await new Promise<void>((resolve) => server.once('listening', () => resolve()))
  const { port } = server.address() as AddressInfo
  return {
    base: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

export async function startFastify(client: MemkitClient, origin: string): Promise<RunningApp> {
  const app = Fastify()
  app.addHttpMethod('M-SEARCH', { hasBody: true })
  // The body goes to the origin as it came.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body))
  await app.register(fastifyResponseCache, cacheOptions(client))
  app.route({
    method: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'M-SEARCH'],
    url: '/*',
    exposeHeadRoute: false,
    handler: async (request, reply) => {
      let up: Upstream
      try {
        up = await forward(
          origin,
          {
            method: request.method,
            url: request.url,
            headers: request.raw.headers,
            body: request.body as Buffer | undefined,
          },
          (i) => sendInterim(reply.raw, i),
        )
      } catch {
        return reply.code(502).send('')
      }
      reply.code(up.status)
      reply.raw.statusMessage = up.reason
      for (const [name, value] of up.headers) reply.header(name, value)
      return reply.send(up.body)
    },
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  return { base: `http://127.0.0.1:${port}`, close: () => app.close() }
}

function sendInterim(res: import('node:http').ServerResponse, interim: Interim): void {
  if (interim.status === 102) res.writeProcessing()
  else if (interim.status === 103) res.writeEarlyHints(interim.headers as Record<string, string>)
}

function badGateway(res: import('node:http').ServerResponse): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  res.statusCode = 502
  res.end()
}
