// The stored form of a cached response (and of a URL's Vary index): a small binary envelope
//   "MKRC" | version (1 byte) | kind (1 byte: E entry, I index) | meta length (uint32 BE) | meta JSON | body
// so a hit costs one JSON.parse of a few hundred bytes and no copy of the body.
import type { Freshness } from './policy.js'
import type { HeaderList } from './types.js'

const MAGIC = Buffer.from('MKRC')
const VERSION = 1
const HEADER_SIZE = 10

export interface Entry {
  readonly kind: 'entry'
  /** The unhashed key (variant included): checked on every read against the key asked for. */
  readonly rawKey: string
  readonly status: number
  readonly reason: string | undefined
  /** Stored end-to-end headers: no hop-by-hop fields, no Content-Length, no Age. */
  readonly headers: HeaderList
  readonly requestTime: number
  readonly responseTime: number
  readonly freshness: Freshness
  /** Lowercased names of the handler's Vary field (not any Vary the cache added itself). */
  readonly varyNames: readonly string[]
  /** Normalized values of those request headers when the entry was stored. */
  readonly varyValues: readonly string[]
  /** tag -> generation the entry was recorded under. */
  readonly tags: Readonly<Record<string, number>>
  readonly route: string | undefined
  /** Set when the cache compressed the body for storage (the handler sent it uncompressed). */
  readonly encoding: 'gzip' | 'br' | undefined
  /** Stored body bytes (compressed when `encoding` is set). Empty in a chunk manifest until reassembled. */
  readonly body: Buffer
  /** Byte length of the stored body. */
  readonly size: number
  /**
   * The stored response may answer requests carrying Authorization / Cookie: the route that
   * stored it declared them shareable. Another layer or route with looser settings cannot reuse it
   * for such requests.
   */
  readonly shared: { readonly authorization: boolean; readonly cookie: boolean }
  /** Present when the body lives in separate chunk items. */
  readonly chunks: { readonly id: string; readonly count: number; readonly sha256: string } | undefined
}

export interface VaryIndex {
  readonly kind: 'index'
  readonly rawKey: string
  /** Random per index: variant keys derive from it, so deleting the index orphans every variant. */
  readonly id: string
  readonly varyNames: readonly string[]
}

export type Stored = Entry | VaryIndex

/** The stored data is not ours or is damaged; callers treat it as a miss. */
export class CorruptEntryError extends Error {
  override name = 'CorruptEntryError'
}

interface EntryMeta {
  k: string
  s: number
  r?: string
  h: HeaderList
  rq: number
  rs: number
  f: [lifetime: number | null, initialAge: number | null, swr: number, sie: number, flags: number]
  vn?: string[]
  vv?: string[]
  tg?: Record<string, number>
  rt?: string
  enc?: 'gzip' | 'br'
  len: number
  ch?: [id: string, count: number, sha256: string]
  /** shared: 1 authorization, 2 cookie. */
  sh?: number
}

interface IndexMeta {
  k: string
  id: string
  vn: string[]
}

export function encodeEntry(entry: Entry, includeBody = true): Buffer {
  const f = entry.freshness
  const meta: EntryMeta = {
    k: entry.rawKey,
    s: entry.status,
    h: entry.headers,
    rq: entry.requestTime,
    rs: entry.responseTime,
    // JSON has no Infinity: null stands for it.
    f: [
      f.lifetime,
      Number.isFinite(f.initialAge) ? f.initialAge : null,
      f.swr,
      f.sie,
      (f.noCache ? 1 : 0) | (f.noStale ? 2 : 0),
    ],
    len: entry.size,
  }
  if (entry.reason !== undefined) meta.r = entry.reason
  if (entry.varyNames.length > 0) {
    meta.vn = [...entry.varyNames]
    meta.vv = [...entry.varyValues]
  }
  if (Object.keys(entry.tags).length > 0) meta.tg = { ...entry.tags }
  if (entry.route !== undefined) meta.rt = entry.route
  if (entry.encoding) meta.enc = entry.encoding
  if (entry.chunks) meta.ch = [entry.chunks.id, entry.chunks.count, entry.chunks.sha256]
  const shared = (entry.shared.authorization ? 1 : 0) | (entry.shared.cookie ? 2 : 0)
  if (shared) meta.sh = shared
  return envelope('E', meta, includeBody && !entry.chunks ? entry.body : undefined)
}

export function encodeIndex(index: VaryIndex): Buffer {
  const meta: IndexMeta = { k: index.rawKey, id: index.id, vn: [...index.varyNames] }
  return envelope('I', meta, undefined)
}

/** Size of the envelope around a body of `bodySize` bytes, for the item-size check. */
export function envelopeSize(entry: Entry): number {
  return encodeEntry(entry, false).length + entry.size
}

function envelope(kind: 'E' | 'I', meta: unknown, body: Buffer | undefined): Buffer {
  const json = Buffer.from(JSON.stringify(meta))
  const head = Buffer.allocUnsafe(HEADER_SIZE)
  MAGIC.copy(head, 0)
  head[4] = VERSION
  head[5] = kind.charCodeAt(0)
  head.writeUInt32BE(json.length, 6)
  return body && body.length > 0 ? Buffer.concat([head, json, body]) : Buffer.concat([head, json])
}

/** Decodes what memcached returned; throws CorruptEntryError for anything that is not a valid envelope. */
export function decodeStored(value: unknown): Stored {
  if (!Buffer.isBuffer(value)) throw new CorruptEntryError('stored value is not a byte string')
  if (value.length < HEADER_SIZE || !value.subarray(0, 4).equals(MAGIC) || value[4] !== VERSION) {
    throw new CorruptEntryError('stored value has no response-cache envelope')
  }
  const kind = String.fromCharCode(value[5]!)
  const metaLength = value.readUInt32BE(6)
  if (HEADER_SIZE + metaLength > value.length) throw new CorruptEntryError('truncated envelope')
  let meta: unknown
  try {
    meta = JSON.parse(value.subarray(HEADER_SIZE, HEADER_SIZE + metaLength).toString('utf8'))
  } catch {
    throw new CorruptEntryError('envelope metadata is not JSON')
  }
  const body = value.subarray(HEADER_SIZE + metaLength)
  if (kind === 'I') return decodeIndex(meta)
  if (kind === 'E') return decodeEntry(meta, body)
  throw new CorruptEntryError(`unknown envelope kind ${JSON.stringify(kind)}`)
}

function decodeIndex(meta: unknown): VaryIndex {
  const m = meta as Partial<IndexMeta>
  if (
    typeof m !== 'object' ||
    m === null ||
    typeof m.k !== 'string' ||
    typeof m.id !== 'string' ||
    !isStringArray(m.vn)
  ) {
    throw new CorruptEntryError('malformed vary index')
  }
  return { kind: 'index', rawKey: m.k, id: m.id, varyNames: m.vn }
}

function decodeEntry(meta: unknown, body: Buffer): Entry {
  const m = meta as Partial<EntryMeta>
  if (
    typeof m !== 'object' ||
    m === null ||
    typeof m.k !== 'string' ||
    !Number.isInteger(m.s) ||
    !Array.isArray(m.h) ||
    !m.h.every(isHeaderPair) ||
    typeof m.rq !== 'number' ||
    typeof m.rs !== 'number' ||
    !Array.isArray(m.f) ||
    m.f.length !== 5 ||
    !Number.isInteger(m.len)
  ) {
    throw new CorruptEntryError('malformed entry metadata')
  }
  const [lifetime, initialAge, swr, sie, flags] = m.f
  if (
    (lifetime !== null && typeof lifetime !== 'number') ||
    (initialAge !== null && typeof initialAge !== 'number') ||
    typeof swr !== 'number' ||
    typeof sie !== 'number' ||
    typeof flags !== 'number'
  ) {
    throw new CorruptEntryError('malformed freshness')
  }
  const chunks = m.ch
  if (chunks !== undefined) {
    if (
      !Array.isArray(chunks) ||
      typeof chunks[0] !== 'string' ||
      !Number.isInteger(chunks[1]) ||
      typeof chunks[2] !== 'string'
    ) {
      throw new CorruptEntryError('malformed chunk manifest')
    }
    if (body.length !== 0) throw new CorruptEntryError('chunk manifest carries a body')
  } else if (body.length !== m.len) {
    throw new CorruptEntryError(`body is ${body.length} bytes, metadata says ${m.len}`)
  }
  if (m.vn !== undefined && (!isStringArray(m.vn) || !isStringArray(m.vv) || m.vv.length !== m.vn.length)) {
    throw new CorruptEntryError('malformed vary data')
  }
  if (m.tg !== undefined && (typeof m.tg !== 'object' || m.tg === null)) {
    throw new CorruptEntryError('malformed tags')
  }
  if (m.sh !== undefined && !Number.isInteger(m.sh)) throw new CorruptEntryError('malformed sharing flags')
  if (m.enc !== undefined && m.enc !== 'gzip' && m.enc !== 'br')
    throw new CorruptEntryError('unknown encoding')
  return {
    kind: 'entry',
    rawKey: m.k,
    status: m.s!,
    reason: typeof m.r === 'string' ? m.r : undefined,
    headers: m.h,
    requestTime: m.rq,
    responseTime: m.rs,
    freshness: {
      lifetime,
      initialAge: initialAge ?? Number.POSITIVE_INFINITY,
      swr,
      sie,
      noCache: (flags & 1) !== 0,
      noStale: (flags & 2) !== 0,
    },
    varyNames: m.vn ?? [],
    varyValues: m.vv ?? [],
    tags: m.tg ?? {},
    route: typeof m.rt === 'string' ? m.rt : undefined,
    encoding: m.enc,
    body,
    size: m.len!,
    chunks: chunks ? { id: chunks[0], count: chunks[1], sha256: chunks[2] } : undefined,
    shared: { authorization: ((m.sh ?? 0) & 1) !== 0, cookie: ((m.sh ?? 0) & 2) !== 0 },
  }
}

function isHeaderPair(pair: unknown): boolean {
  return (
    Array.isArray(pair) &&
    pair.length === 2 &&
    typeof pair[0] === 'string' &&
    (typeof pair[1] === 'string' || isStringArray(pair[1]))
  )
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string')
}
