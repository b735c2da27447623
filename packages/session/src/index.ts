export type { EncryptionKey } from './encryption.js'
export {
  SessionArgumentError,
  SessionConflictError,
  SessionCorruptError,
  SessionError,
  SessionNotSupportedError,
  SessionTooLargeError,
  SessionUnavailableError,
  SessionValueError,
} from './errors.js'
export type { ExpressRequestLike, ExpressSession } from './express.js'
export type { MemcachedStoreOptions, StoreConfig } from './options.js'
export { MemcachedStore, SESSION_ERROR_CHANNEL, type StoreEvents } from './store.js'
export type { Callback, CookieInput, SessionCookieData, SessionInput, SessionRecord } from './types.js'
