import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { InvalidOptionError } from '@memkit/client'

/** One key of the ring: a stable id (written next to the ciphertext) and 32 bytes of key. */
export interface EncryptionKey {
  /** 1 to 255 bytes of UTF-8; names the key in every value it encrypts. */
  id: string
  /** 32 bytes: a Buffer/Uint8Array, 64 hex characters, or base64/base64url. */
  key: Buffer | Uint8Array | string
}

export interface KeyRing {
  readonly currentId: Buffer
  readonly currentKey: Buffer
  readonly keys: ReadonlyMap<string, Buffer>
}

const IV_BYTES = 12
const TAG_BYTES = 16
/** Leading bytes of an encrypted value: 'e' and format version '1'. */
export const ENCRYPTED_MAGIC = Buffer.from('e1', 'latin1')

export function parseKeyRing(input: unknown): KeyRing {
  const keysInput = (input as { keys?: unknown } | null)?.keys
  if (typeof input !== 'object' || input === null || !Array.isArray(keysInput) || keysInput.length === 0) {
    throw new InvalidOptionError('`encryption` must be { keys: [{ id, key }, ...] } with at least one key')
  }
  for (const name of Object.keys(input)) {
    if (name !== 'keys') throw new InvalidOptionError(`unknown encryption option \`${name}\``)
  }
  const keys = new Map<string, Buffer>()
  for (const entry of keysInput as unknown[]) {
    const { id, key } = (entry ?? {}) as { id?: unknown; key?: unknown }
    if (typeof id !== 'string' || id.length === 0 || Buffer.byteLength(id) > 255) {
      throw new InvalidOptionError('every encryption key needs an `id`: a string of 1 to 255 bytes')
    }
    if (keys.has(id)) throw new InvalidOptionError(`encryption key id ${JSON.stringify(id)} appears twice`)
    keys.set(id, parseKey(key, id))
  }
  const [currentId, currentKey] = keys.entries().next().value as [string, Buffer]
  return Object.freeze({ currentId: Buffer.from(currentId, 'utf8'), currentKey, keys })
}

function parseKey(key: unknown, id: string): Buffer {
  let bytes: Buffer | undefined
  if (Buffer.isBuffer(key) || key instanceof Uint8Array) bytes = Buffer.from(key)
  else if (typeof key === 'string') {
    if (/^[0-9a-fA-F]{64}$/.test(key)) bytes = Buffer.from(key, 'hex')
    else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(key)) bytes = Buffer.from(key, 'base64')
  }
  if (bytes?.length !== 32) {
    throw new InvalidOptionError(
      `encryption key ${JSON.stringify(id)} must be 32 bytes (a Buffer, 64 hex characters or base64); generate one with crypto.randomBytes(32)`,
    )
  }
  return bytes as Buffer
}

/** `e1 <id length> <id> <iv> <tag> <ciphertext>`; the memcached key and the header are authenticated. */
export function encrypt(ring: KeyRing, storageKey: string, plaintext: Buffer): Buffer {
  const header = Buffer.concat([ENCRYPTED_MAGIC, Buffer.from([ring.currentId.length]), ring.currentId])
  const iv = randomBytes(IV_BYTES)
  const cipher = createCipheriv('aes-256-gcm', ring.currentKey, iv)
  cipher.setAAD(Buffer.concat([Buffer.from(storageKey, 'utf8'), header]))
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return Buffer.concat([header, iv, cipher.getAuthTag(), body])
}

/** The plaintext, or an Error saying why it cannot be had (unknown key id, tampering, wrong key). */
export function decrypt(ring: KeyRing, storageKey: string, data: Buffer): Buffer | Error {
  const idLength = data[2]
  if (idLength === undefined || idLength === 0) return new Error('encrypted value has no key id')
  const headerLength = 3 + idLength
  if (data.length < headerLength + IV_BYTES + TAG_BYTES) return new Error('encrypted value is truncated')
  const id = data.subarray(3, headerLength).toString('utf8')
  const key = ring.keys.get(id)
  if (!key) return new Error(`encrypted with key id ${JSON.stringify(id)}, which is not in the key ring`)
  const iv = data.subarray(headerLength, headerLength + IV_BYTES)
  const tag = data.subarray(headerLength + IV_BYTES, headerLength + IV_BYTES + TAG_BYTES)
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv)
    decipher.setAAD(Buffer.concat([Buffer.from(storageKey, 'utf8'), data.subarray(0, headerLength)]))
    decipher.setAuthTag(tag)
    return Buffer.concat([
      decipher.update(data.subarray(headerLength + IV_BYTES + TAG_BYTES)),
      decipher.final(),
    ])
  } catch {
    return new Error(
      `authentication failed under key id ${JSON.stringify(id)}: the value was altered, moved from another key, or written with a different key`,
    )
  }
}
