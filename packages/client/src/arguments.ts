// Call-time checks of the options object a method takes, so that a plain-JavaScript caller who
// writes `set(key, value, 60)` or `{ expire: 60 }` gets a typed error naming the right form
// instead of an item stored without expiry. They run on every call: nothing is allocated and
// nothing enumerated when options is undefined, and a known object costs one for-in.
import { describe } from './duration.js'
import { InvalidArgumentError } from './errors.js'

/** The options object of one method: the fields it knows, and how a call is written. */
export interface OptionsShape {
  readonly method: string
  /** A correct call, for messages: `set(key, value, { ttl: 60 })`. */
  readonly example: string
  readonly fields: ReadonlySet<string>
}

function shape(method: string, example: string, fields: string[]): OptionsShape {
  return Object.freeze({ method, example, fields: new Set(fields) })
}

export const SET_OPTIONS = shape('set', 'set(key, value, { ttl: 60 }) (ttl in seconds)', ['ttl'])
export const ADD_OPTIONS = shape('add', 'add(key, value, { ttl: 60 }) (ttl in seconds)', ['ttl'])
export const REPLACE_OPTIONS = shape('replace', 'replace(key, value, { ttl: 60 }) (ttl in seconds)', ['ttl'])
export const CAS_OPTIONS = shape('cas', 'cas(key, value, cas, { ttl: 60 }) (ttl in seconds)', ['ttl'])
export const SET_MANY_OPTIONS = shape('setMany', 'setMany({ a: 1, b: 2 }, { ttl: 60 }) (ttl in seconds)', [
  'ttl',
])
/** Per counter method (incr, decr, incrBig, ...), so the message names the method called. */
export const COUNTER_OPTIONS: Readonly<Record<string, OptionsShape>> = Object.fromEntries(
  ['incr', 'decr', 'incrBig', 'decrBig', 'incrWithTtl', 'decrWithTtl'].map((method) => [
    method,
    shape(method, `${method}(key, 1, { initial: 1, ttl: 60 }) (ttl in seconds)`, ['initial', 'ttl']),
  ]),
)
export const UPDATE_OPTIONS = shape('update', 'update(key, fn, { ttl: 60, retries: 32 }) (ttl in seconds)', [
  'ttl',
  'retries',
])
export const LOCK_OPTIONS = shape(
  'lock',
  "lock(name, { ttl: 30, wait: 5000, retryInterval: 50 }) (ttl in seconds, wait and retryInterval in ms, or strings such as '5s')",
  ['ttl', 'wait', 'retryInterval'],
)
export const REMEMBER_OPTIONS = shape(
  'remember',
  'remember(key, 60, loader, { loadTimeout: 10000, nullTtl: 30, lease: true }) (loadTimeout in ms, nullTtl in seconds)',
  ['loadTimeout', 'nullTtl', 'lease'],
)
export const LEASE_OPTIONS = shape(
  'remember',
  'remember(key, 60, loader, { lease: { refreshAhead: 10 } }) (refreshAhead in seconds)',
  ['refreshAhead'],
)
export const GENERATION_OPTIONS = shape('generation', 'generation(key, { replicas: 3 })', ['replicas'])

/**
 * pymemcache keyword arguments, and what memkit calls them: a Python habit gets an error that
 * names the memkit option rather than a bare "unknown option".
 */
export const PYMEMCACHE_NAMES: Readonly<Record<string, string>> = {
  expire: "`ttl` (seconds, or a string such as '5m')",
  noreply:
    'nothing: memkit always reads the reply (pipelining makes that as cheap as noreply, and errors are never lost)',
  default: 'nothing: get() resolves undefined on a miss (use `?? fallback`)',
  cas_default: 'nothing: gets() resolves undefined on a miss',
  flags: 'the serializer (`serializer` option): flags are chosen by the value type',
  dead_timeout: "`deadTimeout` (milliseconds, or a string such as '60s'; pymemcache's is seconds)",
  retry_attempts: '`failureLimit` (consecutive failures before a server is marked down)',
  retry_timeout:
    "`deadTimeout` (milliseconds, or a string such as '1s'): how long a down server is left alone",
  ignore_exc:
    "nothing: memkit never hides errors; catch the typed error (isMemkitError) or use decodeErrors: 'miss' for undecodable values",
  connect_timeout: "`connectTimeout` (milliseconds, or a string such as '1s'; pymemcache's is seconds)",
  key_prefix: '`keyPrefix`',
  max_pool_size: '`connections` (connections per server)',
  use_pooling: '`connections` (connections per server; every connection is pipelined)',
  pool_idle_timeout: 'nothing: connections stay open (an idle client does not keep the process alive)',
  socket_keepalive: "`keepAlive` (milliseconds, or a string such as '30s', or false)",
  tls_context: '`tls` (true, or Node tls.connect options)',
  allow_unicode_keys: 'nothing: non-ASCII keys are always allowed (carried base64 on the meta protocol)',
  default_noreply: 'nothing: memkit always reads the reply',
  hasher: "`distribution` ('rendezvous' is pymemcache's HashClient placement)",
  serde: "`serializer` ('pymemcache' is pymemcache's default serde)",
  serializer: "`serializer` ('pymemcache' is pymemcache's default serde)",
  deserializer: '`serializer` (one object with serialize and deserialize)',
  no_delay: 'nothing: Nagle is off on every connection',
  encoding: 'nothing: keys are UTF-8',
}

/**
 * Throws InvalidArgumentError unless `options` is undefined or an object whose own fields are
 * all known to the method. Field values are checked where they are used.
 */
export function checkOptions(options: unknown, shape: OptionsShape): void {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    if (options === undefined) return
    throw new InvalidArgumentError(
      `${shape.method}(): options must be an object such as ${shape.example}; got ${describe(options)}`,
    )
  }
  for (const name in options) {
    if (!shape.fields.has(name)) throw unknownField(name, shape)
  }
}

function unknownField(name: string, shape: OptionsShape): InvalidArgumentError {
  const known = [...shape.fields].map((field) => `\`${field}\``).join(', ')
  const python = Object.hasOwn(PYMEMCACHE_NAMES, name) ? PYMEMCACHE_NAMES[name] : undefined
  if (python) {
    return new InvalidArgumentError(
      `${shape.method}(): unknown option \`${name}\`; pymemcache's \`${name}\` is memkit's ${python}. Write ${shape.example}`,
    )
  }
  return new InvalidArgumentError(
    `${shape.method}(): unknown option \`${name}\`; it takes ${known}, as in ${shape.example}`,
  )
}
