// Reads a V8 .cpuprofile (what `node --cpu-prof` writes) and sums its samples: by function (self
// time), by package (self time, and inclusive: samples with at least one frame of the package on
// the stack), and by entry point (the bottom JS frame: which event-loop callback the time is
// spent under). Times are main-thread sampled time; divided by the requests served in the window
// they are µs per request.

export interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
  columnNumber: number
}

export interface CpuProfile {
  nodes: Array<{ id: number; callFrame: CallFrame; children?: number[] }>
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

export interface Share {
  name: string
  group: string
  micros: number
}

export interface Summary {
  /** Sampled time in the window, µs, and how it splits. */
  window: { from: number; to: number; micros: number; samples: number }
  idle: number
  gc: number
  program: number
  /** JS and native frames: the rest. */
  code: number
  functions: Share[]
  /**
   * Self time by function and by the library whose code led into it: the innermost frame on the
   * stack that is neither node's nor native (`writev ← @memkit/client` is a socket write the
   * memcached client asked for, `writev ← fastify (fastify)` one for an HTTP response).
   */
  functionsByOrigin: Share[]
  selfByGroup: Share[]
  inclusiveByGroup: Share[]
  entryPoints: Share[]
}

const SPECIAL = new Set(['(idle)', '(garbage collector)', '(program)', '(root)'])

/**
 * The stream bindings that write to a socket: their self time is the write system call (on
 * loopback, the kernel's whole TCP send and receive path) and, on a busy machine, the wait for a
 * CPU after it (a write that wakes the reader is where the writer gets preempted).
 */
const SOCKET_WRITES = new Set([
  'writev',
  'writeBuffer',
  'writeLatin1String',
  'writeUtf8String',
  'writeAsciiString',
  'writeUcs2String',
])
export const SOCKET_WRITE = 'socket write (system call)'

/** Packages that are Fastify or Express themselves or what they load on every request. */
const FRAMEWORK: Record<string, string> = {
  fastify: 'fastify',
  'find-my-way': 'fastify',
  'fast-json-stringify': 'fastify',
  avvio: 'fastify',
  fastq: 'fastify',
  pino: 'fastify',
  'abstract-logging': 'fastify',
  'light-my-request': 'fastify',
  'toad-cache': 'fastify',
  'fast-querystring': 'fastify',
  'fast-decode-uri-component': 'fastify',
  'safe-regex2': 'fastify',
  ret: 'fastify',
  '@fastify/error': 'fastify',
  '@fastify/ajv-compiler': 'fastify',
  '@fastify/fast-json-stringify-compiler': 'fastify',
  '@fastify/proxy-addr': 'fastify',
  'process-warning': 'fastify',
  rfdc: 'fastify',
  express: 'express',
  router: 'express',
  'path-to-regexp': 'express',
  'body-parser': 'express',
  finalhandler: 'express',
  'on-finished': 'express',
  'ee-first': 'express',
  'content-type': 'express',
  'content-disposition': 'express',
  'type-is': 'express',
  'mime-types': 'express',
  'media-typer': 'express',
  'proxy-addr': 'express',
  forwarded: 'express',
  etag: 'express',
  fresh: 'express',
  'range-parser': 'express',
  send: 'express',
  'serve-static': 'express',
  parseurl: 'express',
  encodeurl: 'express',
  'escape-html': 'express',
  'http-errors': 'express',
  statuses: 'express',
  depd: 'express',
  debug: 'express',
  vary: 'express',
  qs: 'express',
  accepts: 'express',
  negotiator: 'express',
  setprototypeof: 'express',
  'safe-buffer': 'express',
  'cookie-signature': 'express',
  'merge-descriptors': 'express',
  'utils-merge': 'express',
  methods: 'express',
  'is-promise': 'express',
}

/** The group a frame belongs to: a package, a node module family, or native code. */
export function groupOf(frame: CallFrame): string {
  const { url, functionName } = frame
  if (SPECIAL.has(functionName) && url === '') return functionName
  if (url === '' && SOCKET_WRITES.has(functionName)) return SOCKET_WRITE
  if (url === '') return 'native (V8 builtins, C++ bindings)'
  const memkit = /\/packages\/([^/]+)\/(dist|src)\//.exec(url)
  if (memkit) return `@memkit/${memkit[1]}`
  const modules = url.lastIndexOf('/node_modules/')
  if (modules !== -1) {
    const rest = url.slice(modules + '/node_modules/'.length).split('/')
    const name = rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!
    const framework = FRAMEWORK[name]
    return framework ? `${framework} (${name})` : name
  }
  if (url.startsWith('node:')) {
    const module = url.replace(/^node:(internal\/)?/, '')
    if (/^(_http|http)/.test(module)) return 'node: http'
    if (/^(net|stream|streams\/|stream_base_commons|dgram|tcp)/.test(module)) return 'node: net, streams'
    if (/^(process\/task_queues|timers|async_hooks|process\/promises)/.test(module))
      return 'node: ticks, timers, promises'
    if (/^events/.test(module)) return 'node: events'
    return `node: other (${module.split('/')[0]})`
  }
  if (/\/benchmarks\//.test(url)) return 'benchmark app'
  return url
}

/** The family a group belongs to, for a short table. */
export function familyOf(group: string): string {
  if (group.startsWith('@memkit/')) return 'memkit'
  if (group.startsWith('fastify (')) return 'fastify'
  if (group.startsWith('express (')) return 'express'
  if (group.startsWith('node: ')) return 'node'
  if (group.startsWith('native')) return 'native'
  if (group === SOCKET_WRITE) return group
  if (group.startsWith('(')) return group
  if (group === 'benchmark app') return group
  return 'other packages'
}

export function summarise(profile: CpuProfile, window?: { from: number; to: number }): Summary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)

  // Each sample's timestamp, and the time it stands for (until the next sample).
  const count = profile.samples.length
  const at = new Array<number>(count)
  let t = profile.startTime
  for (let i = 0; i < count; i++) {
    t += profile.timeDeltas[i] ?? 0
    at[i] = t
  }
  const from = window?.from ?? profile.startTime
  const to = window?.to ?? profile.endTime

  const groupsOnStack = new Map<number, Set<string>>()
  const stackGroups = (id: number): Set<string> => {
    let groups = groupsOnStack.get(id)
    if (groups) return groups
    const node = byId.get(id)!
    const up = parent.get(id)
    groups = new Set(up === undefined ? [] : stackGroups(up))
    groups.add(groupOf(node.callFrame))
    groupsOnStack.set(id, groups)
    return groups
  }
  const origins = new Map<number, string>()
  const originOf = (id: number): string => {
    let origin = origins.get(id)
    if (origin) return origin
    const group = groupOf(byId.get(id)!.callFrame)
    const up = parent.get(id)
    if (
      !group.startsWith('node: ') &&
      !group.startsWith('native') &&
      group !== SOCKET_WRITE &&
      !SPECIAL.has(group)
    )
      origin = group
    else origin = up === undefined ? 'node only' : originOf(up)
    origins.set(id, origin)
    return origin
  }
  const entryOf = (id: number): CallFrame => {
    let frame = byId.get(id)!.callFrame
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const callFrame = byId.get(cur)!.callFrame
      if (callFrame.functionName !== '(root)') frame = callFrame
    }
    return frame
  }

  const functions = new Map<string, Share>()
  const functionsByOrigin = new Map<string, Share>()
  const selfByGroup = new Map<string, number>()
  const inclusiveByGroup = new Map<string, number>()
  const entryPoints = new Map<string, Share>()
  let total = 0
  let samples = 0
  const add = (map: Map<string, number>, key: string, micros: number) =>
    map.set(key, (map.get(key) ?? 0) + micros)
  for (let i = 0; i < count; i++) {
    if (at[i]! < from || at[i]! > to) continue
    const micros = i + 1 < count ? profile.timeDeltas[i + 1]! : profile.endTime - at[i]! || 0
    const id = profile.samples[i]!
    const frame = byId.get(id)!.callFrame
    const group = groupOf(frame)
    total += micros
    samples++
    const key = label(frame)
    const fn = functions.get(key) ?? { name: key, group, micros: 0 }
    fn.micros += micros
    functions.set(key, fn)
    const origin = originOf(id)
    const byOrigin = functionsByOrigin.get(`${key} <- ${origin}`) ?? {
      name: `${key} <- ${origin}`,
      group,
      micros: 0,
    }
    byOrigin.micros += micros
    functionsByOrigin.set(byOrigin.name, byOrigin)
    add(selfByGroup, group, micros)
    for (const onStack of stackGroups(id)) add(inclusiveByGroup, onStack, micros)
    const entry = entryOf(id)
    const entryKey = SPECIAL.has(entry.functionName) ? entry.functionName : label(entry)
    const share = entryPoints.get(entryKey) ?? { name: entryKey, group: groupOf(entry), micros: 0 }
    share.micros += micros
    entryPoints.set(entryKey, share)
  }
  const sorted = (map: Map<string, number>): Share[] =>
    [...map].map(([name, micros]) => ({ name, group: name, micros })).sort((a, b) => b.micros - a.micros)
  const busy = (share: Share) => share.group !== '(idle)'
  const special = (name: string) => selfByGroup.get(name) ?? 0
  return {
    window: { from, to, micros: total, samples },
    idle: special('(idle)'),
    gc: special('(garbage collector)'),
    program: special('(program)'),
    code: total - special('(idle)') - special('(garbage collector)') - special('(program)'),
    functions: [...functions.values()].filter(busy).sort((a, b) => b.micros - a.micros),
    functionsByOrigin: [...functionsByOrigin.values()].filter(busy).sort((a, b) => b.micros - a.micros),
    selfByGroup: sorted(selfByGroup),
    inclusiveByGroup: sorted(inclusiveByGroup).filter((s) => !SPECIAL.has(s.name)),
    entryPoints: [...entryPoints.values()].filter(busy).sort((a, b) => b.micros - a.micros),
  }
}

/** A function's name and where it is: `name package/file.js:line`. */
export function label(frame: CallFrame): string {
  const name = frame.functionName || '(anonymous)'
  const short = name.length > 80 ? `${name.slice(0, 77)}...` : name
  return frame.url === '' ? short : `${short} ${shortPath(frame.url)}:${frame.lineNumber + 1}`
}

/** A file URL or path shortened to what identifies it (package and file). */
export function shortPath(url: string): string {
  const modules = url.lastIndexOf('/node_modules/')
  if (modules !== -1) return url.slice(modules + '/node_modules/'.length)
  const memkit = /\/packages\/(.+)$/.exec(url)
  if (memkit) return `packages/${memkit[1]}`
  const bench = /\/benchmarks\/(.+)$/.exec(url)
  if (bench) return `benchmarks/${bench[1]}`
  return url
}
