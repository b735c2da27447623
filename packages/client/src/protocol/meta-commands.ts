import { Command, DONE, FATAL, MORE } from '../command.js'
import { type MemkitError, ServerError } from '../errors.js'
import type { EncodedKey } from '../keys.js'
import type { ArithRequest, ArithResult, LeaseItem, StoreMode } from '../transport.js'
import { decodeItem, type ItemDecoder } from './item-decoder.js'

// The meta protocol's commands (memcached >= 1.6, doc/protocol.txt): each class builds one request
// and parses its reply from the socket's bytes. Every request carries an opaque token (O) that
// the server echoes, and each reply is checked against it, so a reply can never be taken for
// another request's even if the stream got out of step. Near 450 lines: one reply grammar, whose
// parser and the commands that share it belong together.

// Opaque tokens are two base-36 characters, from a table: a reply read for the wrong request
// is caught unless the stream slipped by a multiple of 1296 requests on one connection, and the
// token costs 4 bytes each way instead of up to 8 (bytes on the wire are most of the cost of a
// small get on a loopback or virtualised network).
const OPAQUES = Array.from({ length: 36 * 36 }, (_, i) => i.toString(36).padStart(2, '0'))
let opaqueCounter = 0
export function nextOpaque(): string {
  opaqueCounter = opaqueCounter === OPAQUES.length - 1 ? 0 : opaqueCounter + 1
  return OPAQUES[opaqueCounter]!
}

export function keyToken(key: EncodedKey): string {
  return key.base64 ? `${key.wire} b` : key.wire
}

/**
 * The flags of one reply line, parsed from the socket's bytes by a scanner: this runs once per
 * reply at hundreds of thousands of replies a second, so a reply line never becomes a string
 * unless it is an error. One scratch object is reused; commands copy out what they keep before
 * the next line is parsed.
 */
class ReplyFlags {
  /** Client flags (f); 0 when absent. */
  client!: number
  /** The CAS token (c) as its decimal text; '' when absent. */
  cas!: string
  /** Remaining TTL (t), -1 for none; NaN when absent. */
  ttl!: number
  /** 0 = no opaque echoed, 1 = matches the request, 2 = another request's */
  opaque!: number
  /** For multi-get: the echoed opaque as a number; -1 when absent or not a number. */
  opaqueNumber!: number

  constructor() {
    this.clear()
  }

  /** Before each line: nothing of the last reply may be read as this one's. */
  clear(): void {
    this.client = 0
    this.cas = ''
    this.ttl = Number.NaN
    this.opaque = 0
    this.opaqueNumber = -1
  }
}

const scratch = new ReplyFlags()

/** Where the last readUint stopped (a module variable, so parsing allocates nothing). */
let readEnd = 0

/** Parses an unsigned decimal at `start` (before `end`); -1 when there are no digits. Sets `readEnd`. */
function readUint(line: Buffer, start: number, end: number): number {
  let value = 0
  let i = start
  for (; i < end; i++) {
    const digit = line[i]! - 48
    if (digit < 0 || digit > 9) break
    value = value * 10 + digit
  }
  readEnd = i
  return i === start ? -1 : value
}

/** Fills `scratch` from the flag tokens in `line[start, end)`; returns an error message or ''. */
function parseFlags(line: Buffer, start: number, end: number, expectedOpaque: string): string {
  scratch.clear()
  let i = start
  while (i < end) {
    let tokenEnd = line.indexOf(32, i)
    if (tokenEnd === -1 || tokenEnd > end) tokenEnd = end
    if (tokenEnd > i) {
      switch (line[i]) {
        case 102: {
          // f<client flags>
          const value = readUint(line, i + 1, tokenEnd)
          if (value < 0 || readEnd !== tokenEnd)
            return `bad flags token ${line.toString('latin1', i, tokenEnd)}`
          scratch.client = value
          break
        }
        case 99: {
          // c<cas>
          const value = readUint(line, i + 1, tokenEnd)
          if (value < 0 || readEnd !== tokenEnd)
            return `bad cas token ${line.toString('latin1', i, tokenEnd)}`
          scratch.cas = line.toString('latin1', i + 1, tokenEnd)
          break
        }
        case 116: {
          // t<remaining ttl>, -1 for none
          const negative = line[i + 1] === 45
          const value = readUint(line, negative ? i + 2 : i + 1, tokenEnd)
          if (value < 0 || readEnd !== tokenEnd)
            return `bad ttl token ${line.toString('latin1', i, tokenEnd)}`
          scratch.ttl = negative ? -value : value
          break
        }
        case 79: {
          // O<opaque>
          if (expectedOpaque === '') {
            const value = readUint(line, i + 1, tokenEnd)
            scratch.opaqueNumber = readEnd === tokenEnd ? value : -1
          } else {
            scratch.opaque = sameToken(line, i + 1, tokenEnd, expectedOpaque) ? 1 : 2
          }
          break
        }
      }
    }
    i = tokenEnd + 1
  }
  return ''
}

function sameToken(line: Buffer, start: number, end: number, token: string): boolean {
  if (end - start !== token.length) return false
  for (let i = 0; i < token.length; i++) if (line[start + i] !== token.charCodeAt(i)) return false
  return true
}

// Reply codes as two-byte numbers (first byte << 8 | second), compared without making strings.
const VA = 0x5641
const HD = 0x4844
const EN = 0x454e
const NF = 0x4e46
const NS = 0x4e53
const EX = 0x4558
const MN = 0x4d4e

/** The two-letter code of a meta reply (VA, HD, EN, NF, NS, EX, MN) as a number, or 0 for anything else. */
function codeOf(line: Buffer, start: number, end: number): number {
  if (end - start === 2 || (end - start > 2 && line[start + 2] === 32)) {
    const a = line[start]!
    const b = line[start + 1]!
    if (a >= 65 && a <= 90 && b >= 65 && b <= 90) return (a << 8) | b
  }
  return 0
}

/** For VA lines: the data size (-1 when malformed); the flags start at `readEnd + 1`. */
function valueSize(line: Buffer, start: number, end: number): number {
  const size = readUint(line, start + 3, end)
  if (size < 0 || (readEnd < end && line[readEnd] !== 32)) return -1
  return size
}

/**
 * A command whose reply is meta-protocol lines, read from the socket's bytes (`onLineBytes`).
 * `onLine` (a line as text) is only a way in for callers that hold one.
 */
abstract class MetaReplyCommand<T> extends Command<T> {
  abstract override onLineBytes(line: Buffer, start: number, end: number): number

  onLine(line: string): number {
    const bytes = Buffer.from(line, 'latin1')
    return this.onLineBytes(bytes, 0, bytes.length)
  }
}

abstract class MetaCommand<T> extends MetaReplyCommand<T> {
  constructor(
    out: string | Array<string | Buffer>,
    readonly opaque: string,
  ) {
    super(out)
  }

  /** Parses flags into `scratch` and checks the echoed opaque; returns FATAL on a bad line, else 0. */
  protected readFlags(line: Buffer, start: number, end: number, flagsAt: number): number {
    const error = parseFlags(line, flagsAt, end, this.opaque)
    if (error) return this.protocolError(error)
    // Servers before 1.6.18 do not echo O on EN; only a present, different token is wrong.
    if (scratch.opaque === 2) {
      return this.protocolError(
        `reply ${JSON.stringify(line.toString('latin1', start, Math.min(end, start + 80)))} belongs to another request (expected O${this.opaque})`,
      )
    }
    return 0
  }
}

type GetShape = 'value' | 'item'

/** mg with v: get, gets (c), getAndTouch (T). */
export class MetaGetCommand<T> extends MetaCommand<T> {
  readonly name: string
  #clientFlags = 0
  #cas = ''

  constructor(
    name: string,
    private readonly key: EncodedKey,
    private readonly decoder: ItemDecoder,
    private readonly shape: GetShape,
    extra: string,
  ) {
    const opaque = nextOpaque()
    super(`mg ${keyToken(key)} v f${extra} O${opaque}\r\n`, opaque)
    this.name = name
  }

  override onLineBytes(line: Buffer, start: number, end: number): number {
    const code = codeOf(line, start, end)
    if (code === VA) {
      const size = valueSize(line, start, end)
      if (size < 0) return this.protocolError(`bad size in ${line.toString('latin1', start, end)}`)
      if (this.readFlags(line, start, end, readEnd + 1) === FATAL) return FATAL
      // gets asked for c: an item without its token could never be written back with cas().
      if (this.shape === 'item' && scratch.cas === '')
        return this.protocolError(`no cas token in ${line.toString('latin1', start, end)}`)
      this.#clientFlags = scratch.client
      this.#cas = scratch.cas
      return size
    }
    if (code === EN) {
      if (this.readFlags(line, start, end, start + 3) === FATAL) return FATAL
      this.resolve(undefined as T)
      return DONE
    }
    return this.errorLine(line.toString('latin1', start, end))
  }

  override onData(data: Buffer): number {
    const decoded = decodeItem(this.decoder, this.key.key, data, this.#clientFlags)
    if (!decoded.ok) {
      if (decoded.error) this.fail(decoded.error)
      else this.resolve(undefined as T)
      return DONE
    }
    if (this.shape === 'item') this.resolve({ value: decoded.value, cas: this.#cas } as T)
    else this.resolve(decoded.value as T)
    return DONE
  }
}

/** A pipelined batch: `mg <key> v f O<i> q` per key, then `mn`. Misses are silent (q). */
export class MetaMultiGetCommand extends MetaReplyCommand<void> {
  readonly name = 'getMany'
  #index = -1
  #flags = 0
  #last = -1

  constructor(
    private readonly keys: EncodedKey[],
    private readonly decoder: ItemDecoder,
    private readonly into: Map<string, unknown>,
  ) {
    let out = ''
    for (let i = 0; i < keys.length; i++) out += `mg ${keyToken(keys[i]!)} v f O${i} q\r\n`
    super(`${out}mn\r\n`)
    this.keyCount = keys.length
  }

  override reset(): void {
    this.#index = -1
    this.#last = -1
    this.hitCount = 0
  }

  override onLineBytes(line: Buffer, start: number, end: number): number {
    const code = codeOf(line, start, end)
    if (code === MN && end - start === 2) {
      this.resolve()
      return DONE
    }
    if (code === VA) {
      const size = valueSize(line, start, end)
      const error =
        size < 0
          ? `bad size in ${line.toString('latin1', start, end)}`
          : parseFlags(line, readEnd + 1, end, '')
      if (error) return this.protocolError(error)
      const index = scratch.opaqueNumber
      // Replies come back in request order: each index must be new and larger than the last.
      if (index <= this.#last || index >= this.keys.length)
        return this.protocolError(`unexpected ${line.toString('latin1', start, end)}`)
      this.#index = index
      this.#last = index
      this.#flags = scratch.client
      return size
    }
    // An error inside a quiet batch cannot be attributed to one key: fail the batch, reset.
    const text = line.toString('latin1', start, end)
    const result = this.errorLine(text)
    return result === DONE ? this.protocolError(`error reply inside a multi-get: ${text}`) : result
  }

  override onData(data: Buffer): number {
    const key = this.keys[this.#index]!
    const decoded = decodeItem(this.decoder, key.key, data, this.#flags)
    if (decoded.ok) {
      this.into.set(key.key, decoded.value)
      this.hitCount++
    } else if (decoded.error) {
      // Keep reading to MN so the stream stays in step, then reject the batch.
      this.fail(decoded.error)
    }
    return MORE
  }
}

export const STORE_MODE_FLAG: Record<StoreMode, string> = {
  set: '',
  add: ' ME',
  replace: ' MR',
  append: ' MA',
  prepend: ' MP',
  cas: '',
}

/** Commands whose reply is a status: ms, md, mg-for-touch. HD = true; NS/NF/EX/EN = false. */
export class MetaStatusCommand extends MetaCommand<boolean> {
  constructor(
    readonly name: string,
    out: string | Array<string | Buffer>,
    opaque: string,
  ) {
    super(out, opaque)
  }

  override onLineBytes(line: Buffer, start: number, end: number): number {
    const code = codeOf(line, start, end)
    if (code === HD || code === NS || code === NF || code === EX || code === EN) {
      if (this.readFlags(line, start, end, start + 3) === FATAL) return FATAL
      this.resolve(code === HD)
      return DONE
    }
    return this.errorLine(line.toString('latin1', start, end))
  }
}

/** ma with v (and t): the counter value as exact decimal text. */
export class MetaArithCommand extends MetaCommand<ArithResult | undefined> {
  readonly name: string
  #ttl = Number.NaN

  constructor(request: ArithRequest) {
    const opaque = nextOpaque()
    let out = `ma ${keyToken(request.key)} D${request.delta}`
    if (request.decrement) out += ' MD'
    if (request.initial !== undefined) out += ` N${request.exptime} J${request.initial}`
    out += request.withTtl ? ` v t O${opaque}\r\n` : ` v O${opaque}\r\n`
    super(out, opaque)
    this.name = request.decrement ? 'decr' : 'incr'
  }

  override onLineBytes(line: Buffer, start: number, end: number): number {
    const code = codeOf(line, start, end)
    if (code === VA) {
      const size = valueSize(line, start, end)
      if (size < 1 || size > 20)
        return this.protocolError(`bad counter size in ${line.toString('latin1', start, end)}`)
      if (this.readFlags(line, start, end, readEnd + 1) === FATAL) return FATAL
      this.#ttl = scratch.ttl
      return size
    }
    if (code === NF || code === NS || code === EX) {
      if (this.readFlags(line, start, end, start + 3) === FATAL) return FATAL
      this.resolve(undefined)
      return DONE
    }
    return this.errorLine(line.toString('latin1', start, end))
  }

  override onData(data: Buffer): number {
    const text = data.toString('latin1')
    if (!/^\d+$/.test(text))
      return this.protocolError(`counter value ${JSON.stringify(text)} is not a number`)
    this.resolve({ value: text, ttl: this.#ttl })
    return DONE
  }
}

// ---- leases and batched writes (memcached >= 1.6.18 meta flags) -----------------------------
// The commands remember() in lease mode, invalidate() and setMany()/deleteMany() send.

// W (this caller loads) and Z (another caller holds the lease); X (stale) needs no reading:
// memcached gives the first caller on a stale item W as well.
const LEASE_FLAG = / ([WZ])(?= |$)/g

/**
 * `mg <key> N<vivify> [R<recache>] v f c t`: on a miss memcached creates an empty placeholder
 * and hands the first caller W; below `recache` seconds of remaining TTL, or on an item marked
 * stale, the first caller gets W and the value; every other caller gets Z (doc/protocol.txt,
 * "Meta Get", N/R and the W/X/Z return flags). N comes before t so t reports the new TTL.
 */
export class MetaLeaseGetCommand extends MetaCommand<LeaseItem> {
  readonly name = 'leaseGet'
  #flags = 0
  #cas = ''
  #win = false
  #held = false

  constructor(
    private readonly key: EncodedKey,
    private readonly decoder: ItemDecoder,
    vivify: number,
    recache: number,
  ) {
    const opaque = nextOpaque()
    super(`mg ${keyToken(key)} N${vivify}${recache > 0 ? ` R${recache}` : ''} v f c t O${opaque}\r\n`, opaque)
  }

  override onLineBytes(line: Buffer, start: number, end: number): number {
    const code = codeOf(line, start, end)
    if (code === VA) {
      const size = valueSize(line, start, end)
      if (size < 0) return this.protocolError(`bad size in ${line.toString('latin1', start, end)}`)
      if (this.readFlags(line, start, end, readEnd + 1) === FATAL) return FATAL
      this.#flags = scratch.client
      this.#cas = scratch.cas
      this.#win = this.#held = false
      for (const match of line.toString('latin1', start, end).matchAll(LEASE_FLAG)) {
        if (match[1] === 'W') this.#win = true
        else this.#held = true
      }
      return size
    }
    if (code === EN) {
      // Only without N (never sent here); read it as a miss nobody holds.
      if (this.readFlags(line, start, end, start + 3) === FATAL) return FATAL
      this.resolve({ hit: false, value: undefined, cas: '', win: false })
      return DONE
    }
    return this.errorLine(line.toString('latin1', start, end))
  }

  override onData(data: Buffer): number {
    const base = { cas: this.#cas, win: this.#win }
    // An empty flagless item under a lease (W or Z) is the placeholder N created, not a value.
    if (data.length === 0 && this.#flags === 0 && (this.#win || this.#held)) {
      this.resolve({ ...base, hit: false, value: undefined })
      return DONE
    }
    const decoded = decodeItem(this.decoder, this.key.key, data, this.#flags)
    if (!decoded.ok) {
      if (decoded.error) this.fail(decoded.error)
      // Undecodable, read as a miss (decodeErrors: 'miss'): unless another caller holds the
      // lease, this one loads and replaces the item with its CAS, as a lease's winner would
      // (waiting would wait for a load nobody is doing).
      else this.resolve({ cas: this.#cas, win: !this.#held, hit: false, value: undefined })
      return DONE
    }
    this.resolve({ ...base, hit: true, value: decoded.value })
    return DONE
  }
}

/**
 * A pipelined quiet batch, `ms ... q O<i>` or `md ... q O<i>` per key, then `mn`: successes are
 * silent (q hides HD), so the replies are the exceptions, each naming its key by opaque. Resolves
 * with the indexes that answered NS/NF/EX. A SERVER_ERROR carries no opaque and cannot be
 * attributed to a key: the batch fails as a whole, after reading to MN so the stream stays in step.
 */
export class MetaQuietBatchCommand extends MetaReplyCommand<number[]> {
  readonly #misses: number[] = []
  #error: MemkitError | undefined
  #last = -1

  constructor(
    readonly name: string,
    out: Array<string | Buffer>,
    private readonly count: number,
  ) {
    out.push('mn\r\n')
    super(out)
    this.keyCount = count
  }

  override reset(): void {
    this.#misses.length = 0
    this.#error = undefined
    this.#last = -1
  }

  override onLineBytes(line: Buffer, start: number, end: number): number {
    const code = codeOf(line, start, end)
    if (code === MN && end - start === 2) {
      if (this.#error) this.fail(this.#error)
      else this.resolve(this.#misses)
      return DONE
    }
    if (code === NS || code === NF || code === EX) {
      const error = parseFlags(line, start + 3, end, '')
      const index = scratch.opaqueNumber
      if (error || index <= this.#last || index >= this.count)
        return this.protocolError(`unexpected ${line.toString('latin1', start, end)}`)
      this.#last = index
      this.#misses.push(index)
      return MORE
    }
    const text = line.toString('latin1', start, end)
    if (text.startsWith('SERVER_ERROR')) {
      this.#error ??= new ServerError(`${this.server} answered ${this.name} with ${text}`, this.server)
      return MORE
    }
    const result = this.errorLine(text)
    return result === DONE ? this.protocolError(`error reply inside a ${this.name} batch: ${text}`) : result
  }
}
