// The background refresh of stale-while-revalidate on Express: a GET for the same URL run through
// the whole application, detached from any client.
import { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { Duplex } from 'node:stream'
import type { Application, Request } from 'express'
import type { RequestHeaders } from './types.js'

/** A socket that discards what is written: background refresh responses have no client. */
class NullSocket extends Duplex {
  constructor(readonly remoteAddress: string | undefined) {
    super()
  }
  override _read(): void {}
  override _write(_chunk: unknown, _encoding: BufferEncoding, callback: () => void): void {
    callback()
  }
  setTimeout(): this {
    return this
  }
  setNoDelay(): this {
    return this
  }
  setKeepAlive(): this {
    return this
  }
}

/** Runs the refresh GET through the root app; resolves when its response is complete. */
export function refreshThrough(req: Request, headers: RequestHeaders): Promise<void> {
  let app = req.app as Application & { parent?: Application }
  while (app.parent) app = app.parent as Application & { parent?: Application }
  return new Promise((resolve) => {
    // The original peer address, so trust-proxy decisions (and thus the key) come out the same.
    const socket = new NullSocket(req.socket?.remoteAddress)
    const fakeReq = new IncomingMessage(socket as unknown as Socket)
    fakeReq.method = 'GET'
    fakeReq.url = req.originalUrl
    fakeReq.httpVersion = '1.1'
    fakeReq.httpVersionMajor = 1
    fakeReq.httpVersionMinor = 1
    fakeReq.headers = headers as IncomingMessage['headers']
    fakeReq.rawHeaders = Object.entries(headers).flatMap(([k, v]) =>
      v === undefined ? [] : Array.isArray(v) ? v.flatMap((x) => [k, x]) : [k, v],
    )
    fakeReq.push(null)
    const fakeRes = new ServerResponse(fakeReq)
    fakeRes.assignSocket(socket as unknown as Socket)
    let done = false
    const finish = () => {
      if (done) return
      done = true
      socket.destroy()
      resolve()
    }
    fakeRes.once('finish', finish)
    fakeRes.once('close', finish)
    ;(app as unknown as (q: IncomingMessage, s: ServerResponse, n: (e?: unknown) => void) => void)(
      fakeReq,
      fakeRes,
      (error?: unknown) => {
        // Nothing handled the refresh (or it failed): end it so the cache can settle.
        if (!fakeRes.writableEnded) {
          fakeRes.statusCode = error ? 500 : 404
          fakeRes.end()
        }
      },
    )
  })
}
