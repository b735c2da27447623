import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

/** Resolves once a TCP connection to host:port succeeds; rejects after `timeoutMs`. */
export async function waitForPort(
  host: string,
  port: number,
  timeoutMs = 5000,
  stillAlive: () => boolean = () => true,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (!stillAlive()) throw new Error(`process for ${host}:${port} exited before it listened`)
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host, port })
      socket.once('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`nothing listened on ${host}:${port} within ${timeoutMs} ms`)
    await sleep(20)
  }
}
