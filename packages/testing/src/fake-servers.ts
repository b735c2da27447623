import { createServer, type Server, type Socket } from 'node:net'
import { onCleanup } from './cleanup.js'

export interface FakeServer {
  readonly host: string
  readonly port: number
  /** `"127.0.0.1:<port>"` */
  readonly address: string
  /** Everything received so far, across connections, as latin1 text. */
  received(): string
  /** Number of connections accepted so far. */
  connections(): number
  close(): Promise<void>
}

async function listen(
  onConnection: (socket: Socket, state: { received: string }) => void,
): Promise<FakeServer> {
  const sockets = new Set<Socket>()
  const state = { received: '' }
  let accepted = 0
  const server: Server = createServer((socket) => {
    accepted++
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    socket.on('data', (chunk: Buffer) => {
      state.received += chunk.toString('latin1')
    })
    onConnection(socket, state)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  const close = async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  const unregister = onCleanup(close)
  return {
    host: '127.0.0.1',
    port,
    address: `127.0.0.1:${port}`,
    received: () => state.received,
    connections: () => accepted,
    close: async () => {
      unregister()
      await close()
    },
  }
}

/** A TCP listener that accepts connections, reads everything, and never answers. */
export function startSilentServer(): Promise<FakeServer> {
  return listen(() => {})
}

/**
 * A TCP listener that answers each chunk it receives with the bytes `respond` returns
 * (nothing when it returns undefined). `respond` sees the chunk and all text received on
 * this connection so far, so a test can reply to the n-th command with chosen bytes.
 */
export function startScriptedServer(
  respond: (chunk: string, connectionText: string, socket: Socket) => string | Buffer | undefined,
): Promise<FakeServer> {
  return listen((socket) => {
    let text = ''
    socket.on('data', (chunk: Buffer) => {
      const piece = chunk.toString('latin1')
      text += piece
      const reply = respond(piece, text, socket)
      if (reply !== undefined && !socket.destroyed) socket.write(reply)
    })
  })
}
