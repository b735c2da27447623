import { connect } from 'node:net'

/**
 * Sends raw protocol text to a server over a fresh connection and collects the reply until
 * `done(replyText)` is true (by default: a line ending in END, OK, or any single-line reply).
 * For asserting server-side state independently of the client under test.
 */
export function rawCommand(
  address: string,
  payload: string | Buffer,
  done: (reply: string) => boolean = defaultDone,
  timeoutMs = 2000,
): Promise<string> {
  const [host, portText] = splitAddress(address)
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port: Number(portText) })
    let reply = ''
    const timer = setTimeout(() => {
      socket.destroy()
      reject(
        new Error(`no complete reply from ${address} within ${timeoutMs} ms; got ${JSON.stringify(reply)}`),
      )
    }, timeoutMs)
    socket.on('connect', () => socket.write(payload))
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1')
      if (done(reply)) {
        clearTimeout(timer)
        socket.destroy()
        resolve(reply)
      }
    })
    socket.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
  })
}

function defaultDone(reply: string): boolean {
  // A meta value: "VA <size> <flags>\r\n" + size bytes + "\r\n".
  const value = /^VA (\d+)[^\r\n]*\r\n/.exec(reply)
  if (value) return reply.length >= value[0].length + Number(value[1]) + 2
  return /(^|\r\n)(END|OK|ERROR|MN)\r\n$/.test(reply) || /^(?!VALUE |STAT )[^\r\n]*\r\n$/.test(reply)
}

function splitAddress(address: string): [string, string] {
  const index = address.lastIndexOf(':')
  return [address.slice(0, index).replace(/^\[|\]$/g, ''), address.slice(index + 1)]
}

/** Lists the keys currently stored on a server (`lru_crawler metadump all`), URL-decoded. */
export async function dumpKeys(address: string): Promise<string[]> {
  const reply = await rawCommand(address, 'lru_crawler metadump all\r\n', (text) =>
    /(^|\n)END\r\n$/.test(text),
  )
  // metadump separates its lines with a bare LF; only the final END has CRLF
  return reply
    .split(/\r?\n/)
    .filter((line) => line.startsWith('key='))
    .map((line) => decodeURIComponent(line.slice(4, line.indexOf(' '))))
}
