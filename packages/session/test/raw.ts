// Direct access to memcached's state, independent of the store under test.
import { createHmac } from 'node:crypto'
import { rawCommand } from '@memkit/testing'

const untilMn = (reply: string) => reply.endsWith('MN\r\n')

/** The stored item (bytes as latin1), or undefined. */
export async function rawGet(
  address: string,
  key: string,
): Promise<{ data: Buffer; flags: number; ttl: number } | undefined> {
  const reply = await rawCommand(address, `mg ${key} v f t\r\nmn\r\n`, untilMn)
  if (reply.startsWith('EN')) return undefined
  const match = /^VA (\d+) f(\d+) t(-?\d+)\r\n/.exec(reply)
  if (!match) throw new Error(`unexpected reply ${JSON.stringify(reply)}`)
  const start = match[0].length
  const data = Buffer.from(reply.slice(start, start + Number(match[1])), 'latin1')
  return { data, flags: Number(match[2]), ttl: Number(match[3]) }
}

export async function rawSet(
  address: string,
  key: string,
  data: Buffer | string,
  flags = 0,
  ttl = 0,
): Promise<void> {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data
  const reply = await rawCommand(
    address,
    Buffer.concat([
      Buffer.from(`ms ${key} ${bytes.length} F${flags} T${ttl}\r\n`),
      bytes,
      Buffer.from('\r\nmn\r\n'),
    ]),
    untilMn,
  )
  if (!reply.startsWith('HD')) throw new Error(`ms failed: ${reply}`)
}

/** The documented key scheme: prefix + generation (base 36) + ':' + HMAC-SHA-256(secret, sid) base64url. */
export async function storageKey(
  address: string,
  prefix: string,
  sid: string,
  secret: string,
): Promise<string> {
  const gen = await rawGet(address, `${prefix}gen`)
  if (!gen) throw new Error(`no generation key under ${prefix}`)
  const hash = createHmac('sha256', secret).update(sid).digest('base64url')
  return `${prefix}${Number(gen.data.toString('latin1')).toString(36)}:${hash}`
}
