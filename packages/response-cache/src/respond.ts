// The respond phase: the response a client gets, built from a stored entry (Age, the client's
// conditionals and ranges, HEAD, stored compression) or from the handler's unstored response.
import { statusHeaders } from './cache-status.js'
import { decompress } from './compression.js'
import { evaluatePreconditions, evaluateRange } from './conditional.js'
import type { Entry } from './entry.js'
import { acceptedCodings, endToEnd, headerGet, headerSet, headerText, requestHeader } from './headers.js'
import { parseHttpDate } from './http-date.js'
import type { CacheConfig } from './options.js'
import { currentAge } from './policy.js'
import { hasConditions } from './request.js'
import type { Transaction } from './transaction.js'
import type { CapturedResponse, HeaderList, OutgoingResponse } from './types.js'

/** Fields a 304 must repeat from the 200 it stands for (RFC 9110 §15.4.5). */
const NOT_MODIFIED_FIELDS = new Set([
  'cache-control',
  'content-location',
  'date',
  'etag',
  'expires',
  'vary',
  'last-modified',
])

/**
 * A stored response shaped for this request: conditionals, ranges, HEAD, stored compression.
 * Rejects when a stored compressed body does not decompress.
 */
export async function fromEntry(
  config: CacheConfig,
  tx: Transaction,
  entry: Entry,
): Promise<OutgoingResponse> {
  const req = tx.req
  const now = Date.now()
  const headers: HeaderList = entry.headers.map(([n, v]) => [n, Array.isArray(v) ? [...v] : v])
  let body = entry.body
  let encoded = false
  if (entry.encoding) {
    const accepts = acceptedCodings(requestHeader(req.headers, 'accept-encoding')).includes(
      entry.encoding === 'br' ? 'br' : 'gzip',
    )
    if (accepts) {
      encoded = true
      headerSet(headers, 'Content-Encoding', entry.encoding)
      const etag = headerText(headers, 'etag')
      // The encoded bytes are a different representation: its strong validator would lie.
      if (etag?.startsWith('"')) headerSet(headers, 'ETag', `W/${etag}`)
    } else {
      body = await decompress(entry.encoding, body)
    }
  }
  const age = currentAge(entry.freshness, entry.responseTime, now)
  const status = entry.status
  const extra: HeaderList = Number.isFinite(age)
    ? [['Age', String(Math.floor(Math.min(age, 2147483648)))]]
    : []
  extra.push(...statusHeaders(config, tx))
  addPreset(tx, headers)
  const conditions = tx.conditions
  if (status >= 200 && status < 300 && hasConditions(conditions)) {
    const etag = headerText(headers, 'etag')
    const lastModifiedText = headerText(headers, 'last-modified')
    const lastModified = parseHttpDate(lastModifiedText) ?? parseHttpDate(headerText(headers, 'date'))
    const precondition = evaluatePreconditions(conditions, etag, lastModified)
    if (precondition === 304) {
      const kept = headers.filter(([n]) => NOT_MODIFIED_FIELDS.has(n.toLowerCase()))
      return { status: 304, headers: [...kept, ...extra], body: undefined }
    }
    if (precondition === 412) {
      return { status: 412, headers: [['Content-Length', '0'], ...extra], body: Buffer.alloc(0) }
    }
    if (status === 200 && !encoded && req.method === 'GET') {
      const range = evaluateRange(conditions, body.length, etag, lastModifiedText)
      if (range.kind === 'partial') {
        headerSet(headers, 'Content-Range', `bytes ${range.start}-${range.end}/${body.length}`)
        const part = body.subarray(range.start, range.end + 1)
        headerSet(headers, 'Content-Length', String(part.length))
        return { status: 206, headers: [...headers, ...extra], body: part }
      }
      if (range.kind === 'unsatisfiable') {
        return {
          status: 416,
          headers: [['Content-Range', `bytes */${body.length}`], ['Content-Length', '0'], ...extra],
          body: Buffer.alloc(0),
        }
      }
    }
  }
  const bodiless = status === 204 || status === 304 || status < 200
  if (!bodiless) headerSet(headers, 'Content-Length', String(body.length))
  // HEAD keeps the body: Node and Fastify drop it on the wire and frame the response by it.
  return {
    status,
    reason: entry.reason,
    headers: [...headers, ...extra],
    body: bodiless ? undefined : body,
  }
}

/**
 * The handler's response, not stored: end-to-end headers, status headers and the framing the
 * client would have seen: the body's own length, or, when the handler declared more than it
 * wrote (`declared`), that length and a closed connection (`truncated`).
 */
export function passedThrough(
  config: CacheConfig,
  tx: Transaction,
  captured: CapturedResponse,
  body: Buffer,
  declared?: number,
): OutgoingResponse {
  const headers = endToEnd(captured.headers)
  const bodiless = captured.status === 204 || captured.status === 304 || captured.status < 200
  if (!bodiless) headers.push(['Content-Length', String(declared ?? body.length)])
  const age = headerGet(captured.headers, 'age')
  if (age !== undefined) headers.push(['Age', age])
  headers.push(...statusHeaders(config, tx))
  const out: OutgoingResponse = {
    status: captured.status,
    reason: captured.reason,
    headers,
    body: bodiless ? undefined : body,
  }
  if (declared !== undefined && !bodiless) {
    headers.push(['Connection', 'close'])
    out.truncated = true
  }
  return out
}

/** `only-if-cached` on a miss (RFC 9111 §5.2.1.7). */
export function gatewayTimeout(config: CacheConfig, tx: Transaction): OutgoingResponse {
  return {
    status: 504,
    headers: [['Content-Length', '0'], ...statusHeaders(config, tx)],
    body: Buffer.alloc(0),
  }
}

/** Headers earlier middleware set for this request are theirs to set again, not the entry's. */
export function dropPreset(tx: Transaction, headers: HeaderList): void {
  const preset = tx.req.preset
  if (!preset || preset.size === 0) return
  for (let i = headers.length - 1; i >= 0; i--) {
    const [name, value] = headers[i]!
    if (preset.get(name.toLowerCase()) === (Array.isArray(value) ? value.join(', ') : value)) {
      headers.splice(i, 1)
    }
  }
}

function addPreset(tx: Transaction, headers: HeaderList): void {
  const preset = tx.req.preset
  if (!preset) return
  for (const [name, value] of preset) if (headerGet(headers, name) === undefined) headers.push([name, value])
}
