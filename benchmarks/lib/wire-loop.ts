// The reference for the client benchmark: the least a Node program can do to run pipelined meta
// gets. One socket, `inFlight` `mg <key> v f` requests outstanding, replies parsed just enough to
// count them (the header's size, then skip the data), the replacements for every reply in a data
// event written together in one write. No promises, no objects per request, no checks: what the
// wire and the event loop allow, which a real client can approach but not pass.
import { connect } from 'node:net'

export async function wireLoop(
  host: string,
  port: number,
  keys: readonly string[],
  inFlight: number,
  durationMs: number,
): Promise<number> {
  const socket = connect(port, host)
  socket.setNoDelay(true)
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  let next = 0
  const request = () => `mg ${keys[next++ % keys.length]} v f\r\n`
  let done = 0
  let need = -1
  let rest: Buffer | undefined
  return new Promise<number>((resolve) => {
    const start = performance.now()
    socket.on('data', (chunk: Buffer) => {
      const buffer = rest ? Buffer.concat([rest, chunk]) : chunk
      rest = undefined
      let position = 0
      let replies = 0
      while (position < buffer.length) {
        if (need >= 0) {
          if (position + need + 2 > buffer.length) break
          position += need + 2
          need = -1
          replies++
          continue
        }
        const newline = buffer.indexOf(10, position)
        if (newline === -1) break
        if (buffer[position] === 0x56 /* VA */) {
          let size = 0
          for (let i = position + 3; buffer[i]! >= 0x30 && buffer[i]! <= 0x39; i++)
            size = size * 10 + buffer[i]! - 0x30
          need = size
        } else {
          replies++
        }
        position = newline + 1
      }
      if (position < buffer.length) rest = buffer.subarray(position)
      done += replies
      if (performance.now() - start >= durationMs) {
        socket.removeAllListeners('data')
        socket.destroy()
        resolve(done)
        return
      }
      let out = ''
      for (let i = 0; i < replies; i++) out += request()
      if (out) socket.write(out, 'latin1')
    })
    let first = ''
    for (let i = 0; i < inFlight; i++) first += request()
    socket.write(first, 'latin1')
  })
}
