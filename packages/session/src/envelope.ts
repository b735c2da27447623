import { decrypt, ENCRYPTED_MAGIC, encrypt, type KeyRing } from './encryption.js'

// What the store keeps under a session key, as raw bytes (flags 0):
//   session    "s1\n<createdAt ms>\n<writtenAt ms>\n<cookie JSON>\n<data JSON>"
//   encrypted  "e1" <key id length> <key id> <iv> <tag> AES-256-GCM(the session form above)
//   tombstone  "t1\n<destroyedAt ms>"
// JSON never contains a raw newline, so the four fields split unambiguously, and the data part
// can be compared as text with what a request saves (unchanged data => touch, not rewrite).

export interface StoredSession {
  kind: 'session'
  createdAt: number
  writtenAt: number
  cookieJson: string
  dataJson: string
}

export type Decoded = StoredSession | { kind: 'tombstone' } | { kind: 'corrupt'; reason: string }

const SESSION_MAGIC = 's1\n'
const TOMBSTONE_MAGIC = 't1\n'

export function encodeSession(
  ring: KeyRing | undefined,
  storageKey: string,
  createdAt: number,
  writtenAt: number,
  cookieJson: string,
  dataJson: string,
): Buffer {
  const plain = Buffer.from(`${SESSION_MAGIC}${createdAt}\n${writtenAt}\n${cookieJson}\n${dataJson}`, 'utf8')
  return ring ? encrypt(ring, storageKey, plain) : plain
}

export function encodeTombstone(now: number): Buffer {
  return Buffer.from(`${TOMBSTONE_MAGIC}${now}`, 'latin1')
}

/** True for a tombstone, without decrypting or parsing anything else. */
export function isTombstone(value: unknown): boolean {
  return (
    Buffer.isBuffer(value) && value.length >= 3 && value[0] === 0x74 && value[1] === 0x31 && value[2] === 0x0a
  )
}

export function decodeStored(value: unknown, storageKey: string, ring: KeyRing | undefined): Decoded {
  if (!Buffer.isBuffer(value)) {
    return { kind: 'corrupt', reason: `holds a ${typeof value} written by something else, not a session` }
  }
  if (isTombstone(value)) return { kind: 'tombstone' }
  let plain = value
  if (value.length >= 2 && value[0] === ENCRYPTED_MAGIC[0] && value[1] === ENCRYPTED_MAGIC[1]) {
    if (!ring) return { kind: 'corrupt', reason: 'is encrypted but the store has no encryption keys' }
    const opened = decrypt(ring, storageKey, value)
    if (opened instanceof Error) return { kind: 'corrupt', reason: opened.message }
    plain = opened
  } else if (ring) {
    // Never a plaintext fallback: with encryption on, anything unencrypted is refused.
    return { kind: 'corrupt', reason: 'is not encrypted, and the store requires encryption' }
  }
  const text = plain.toString('utf8')
  if (!text.startsWith(SESSION_MAGIC)) return { kind: 'corrupt', reason: 'is not in the session format' }
  const a = text.indexOf('\n', SESSION_MAGIC.length)
  const b = a < 0 ? -1 : text.indexOf('\n', a + 1)
  const c = b < 0 ? -1 : text.indexOf('\n', b + 1)
  if (c < 0) return { kind: 'corrupt', reason: 'is truncated' }
  const createdAt = Number(text.slice(SESSION_MAGIC.length, a))
  const writtenAt = Number(text.slice(a + 1, b))
  if (!Number.isSafeInteger(createdAt) || !Number.isSafeInteger(writtenAt)) {
    return { kind: 'corrupt', reason: 'has malformed timestamps' }
  }
  return {
    kind: 'session',
    createdAt,
    writtenAt,
    cookieJson: text.slice(b + 1, c),
    dataJson: text.slice(c + 1),
  }
}
