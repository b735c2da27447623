// The reverse-proxy handler behind the cache: every request goes to the suite's origin server
// and its answer comes back through the framework, so the cache sees a real upstream (status,
// header lines as sent, interim responses, a connection the origin closes).
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http'
import type { Readable } from 'node:stream'
import { HOP_BY_HOP } from '../../src/headers.js'

export interface Upstream {
  status: number
  reason: string
  /** Header lines grouped by name (first spelling kept), in the origin's order. */
  headers: Array<[name: string, value: string | string[]]>
  body: Buffer
}

export interface Interim {
  status: number
  headers: IncomingHttpHeaders
}

/**
 * Sends the request to the origin and resolves with its final response; `onInterim` sees each
 * 1xx first. Rejects when the origin closes the connection without answering.
 */
export function forward(
  origin: string,
  request: { method: string; url: string; headers: IncomingHttpHeaders; body: Buffer | Readable | undefined },
  onInterim: (interim: Interim) => void,
): Promise<Upstream> {
  // The headers as the application sees them (req.headers), which the cache edits on a miss (its
  // validators on, the client's conditionals off), as http-proxy and friends forward them.
  const headers: Record<string, string | string[]> = {}
  for (const [name, value] of Object.entries(request.headers)) {
    // Fields of the client's connection stay behind; `host` is the origin's own.
    if (value !== undefined && !HOP_BY_HOP.has(name) && name !== 'host') headers[name] = value
  }
  return new Promise((resolve, reject) => {
    const upstream = httpRequest(`${origin}${request.url}`, { method: request.method, headers, agent: false })
    upstream.on('information', (info) => onInterim({ status: info.statusCode, headers: info.headers }))
    let response: IncomingMessage | undefined
    upstream.on('response', (res) => {
      response = res
      const chunks: Buffer[] = []
      const complete = () => {
        const grouped = new Map<string, [string, string[]]>()
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
          const name = res.rawHeaders[i]!
          const lower = name.toLowerCase()
          // The framework frames the response itself. Connection and the fields it lists are left
          // to the cache, which must not store or replay them (RFC 9111 §3.1).
          if (lower === 'transfer-encoding') continue
          const line = grouped.get(lower)
          if (line) line[1].push(res.rawHeaders[i + 1]!)
          else grouped.set(lower, [name, [res.rawHeaders[i + 1]!]])
        }
        resolve({
          status: res.statusCode!,
          reason: res.statusMessage ?? '',
          headers: [...grouped.values()].map(([name, values]) => [
            name,
            values.length === 1 ? values[0]! : values,
          ]),
          body: Buffer.concat(chunks),
        })
      }
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', complete)
    })
    upstream.on('error', (error) => {
      // Bytes past the declared Content-Length are not part of the response (RFC 9112 §6.3): once
      // the message is complete ('end' follows), the parse error they cause changes nothing.
      if (response?.complete) return
      reject(error)
    })
    const body = request.body
    if (body === undefined) upstream.end()
    else if (Buffer.isBuffer(body)) upstream.end(body)
    else body.pipe(upstream)
  })
}
