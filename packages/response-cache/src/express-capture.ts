// The Express response capture: the handler's writeHead/write/end are intercepted so its response
// can be buffered, stored and replaced by the cache's; a response that clearly cannot be stored
// streams through from its first byte. Also writes the cache's own responses.
import { type ServerResponse, STATUS_CODES } from 'node:http'
import type { Response } from 'express'
import type { ResponseCache } from './cache.js'
import type { Transaction } from './transaction.js'
import type { HeaderList, OutgoingResponse } from './types.js'

type EndArgs = [chunk?: unknown, encoding?: unknown, callback?: unknown]

/**
 * Buffers the handler's response, unless it is clearly not storable, in which case it streams
 * through. `label` fills in the metrics label once the route is known. Returns `undo`, which puts
 * the response back as it was (false once the handler has started writing).
 */
export function capture(
  cache: ResponseCache,
  res: Response,
  tx: Transaction,
  label: () => string | undefined,
): () => boolean {
  const original = {
    writeHead: res.writeHead,
    write: res.write,
    end: res.end,
    flushHeaders: res.flushHeaders,
  }
  const chunks: Buffer[] = []
  let size = 0
  let mode: 'undecided' | 'capture' | 'pass' = 'undecided'

  const restore = () => {
    res.writeHead = original.writeHead
    res.write = original.write
    res.end = original.end
    res.flushHeaders = original.flushHeaders
  }
  const addStatusHeaders = () => {
    for (const [name, value] of cache.statusHeaders(tx)) res.setHeader(name, value)
  }
  const decide = (): 'capture' | 'pass' => {
    if (mode !== 'undecided') return mode
    tx.req.route ??= label()
    mode = cache.precheck(tx, res.statusCode, headersOf(res))
    if (mode === 'pass') {
      restore()
      addStatusHeaders()
    }
    return mode
  }
  const append = (chunk: unknown, encoding: unknown) => {
    if (chunk === undefined || chunk === null || typeof chunk === 'function') return
    const buf = Buffer.isBuffer(chunk)
      ? chunk
      : chunk instanceof Uint8Array
        ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
        : Buffer.from(String(chunk), typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8')
    chunks.push(buf)
    size += buf.length
  }
  // A fill that never completes (the client went away, the handler destroyed the response after
  // its stream failed, or it hangs until the client gives up) releases the requests waiting on
  // it and the cross-process lease at once; whatever the handler writes later goes nowhere.
  const onClose = () => {
    if (res.writableFinished || tx.settled) return
    cache.abandon(tx, 'aborted')
    if (mode !== 'pass') {
      mode = 'pass'
      chunks.length = 0
      restore()
    }
  }
  res.once('close', onClose)
  const overflow = () => {
    // Too large to store: stream what was buffered and the rest straight through.
    cache.abandon(tx, 'too-large')
    mode = 'pass'
    restore()
    addStatusHeaders()
    for (const chunk of chunks.splice(0)) res.write(chunk)
  }

  res.writeHead = function (this: Response, statusCode: number, reason?: unknown, headers?: unknown) {
    let fields = headers
    if (typeof reason === 'string') res.statusMessage = reason
    else fields = reason
    res.statusCode = statusCode
    if (Array.isArray(fields)) {
      // Either [[k, v], ...] or the flat [k, v, k, v] form.
      if (fields.length > 0 && Array.isArray(fields[0])) {
        for (const [k, v] of fields as [string, string][]) res.setHeader(k, v)
      } else {
        for (let i = 0; i + 1 < fields.length; i += 2)
          res.setHeader(String(fields[i]), fields[i + 1] as string)
      }
    } else if (fields && typeof fields === 'object') {
      for (const [k, v] of Object.entries(fields as Record<string, string | number | string[]>)) {
        if (v !== undefined) res.setHeader(k, v)
      }
    }
    return res
  } as Response['writeHead']

  res.flushHeaders = function (this: Response) {
    if (decide() === 'pass') res.flushHeaders()
  }

  res.write = function (this: Response, chunk: unknown, encoding?: unknown, callback?: unknown) {
    if (decide() === 'pass') return (res.write as (...a: unknown[]) => boolean)(chunk, encoding, callback)
    append(chunk, encoding)
    const cb = typeof encoding === 'function' ? encoding : callback
    if (size > cache.config.maxBodySize) overflow()
    if (typeof cb === 'function') process.nextTick(cb as () => void)
    return true
  } as Response['write']

  res.end = function (this: Response, ...args: EndArgs) {
    if (decide() === 'pass') return (res.end as (...a: unknown[]) => Response)(...args)
    const [chunk, encoding, callback] = args
    append(chunk, encoding)
    const cb = [chunk, encoding, callback].find((a) => typeof a === 'function') as (() => void) | undefined
    restore()
    const captured = {
      status: res.statusCode,
      reason: res.statusMessage || undefined,
      headers: headersOf(res),
      body: Buffer.concat(chunks),
    }
    cache.finish(tx, captured).then(
      (out) => send(res, out, true, cb),
      (error: unknown) => {
        cache.reportError(error)
        send(res, { ...captured, body: captured.body }, false, cb)
      },
    )
    return res
  } as Response['end']

  return () => {
    if (mode !== 'undecided' || res.headersSent) return false
    restore()
    res.off('close', onClose)
    return true
  }
}

/** The response's headers with the names as the handler spelled them. */
function headersOf(res: ServerResponse): HeaderList {
  const out: HeaderList = []
  // getRawHeaderNames keeps the handler's spelling (Node >= 15.13; missing from @types/node 20).
  const raw = (res as ServerResponse & { getRawHeaderNames?: () => string[] }).getRawHeaderNames
  const names = raw ? raw.call(res) : res.getHeaderNames()
  for (const name of names) {
    const value = res.getHeader(name)
    if (value === undefined) continue
    out.push([name, Array.isArray(value) ? value.map(String) : String(value)])
  }
  return out
}

/** Writes a response the cache produced; `replace` drops whatever headers the handler had set. */
export function send(
  res: ServerResponse,
  out: OutgoingResponse,
  replace: boolean,
  callback?: () => void,
): void {
  if (res.headersSent || res.writableEnded) return
  if (replace) for (const name of res.getHeaderNames()) res.removeHeader(name)
  for (const [name, value] of out.headers) res.setHeader(name, value)
  res.statusCode = out.status
  res.statusMessage = out.reason ?? STATUS_CODES[out.status] ?? 'Unknown'
  if (out.body === undefined) res.end(callback)
  else res.end(out.body, callback)
}
