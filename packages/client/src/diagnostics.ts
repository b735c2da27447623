import { channel } from 'node:diagnostics_channel'
import type { MemkitError } from './errors.js'

/**
 * Published once per command when it completes, for APM tools and metrics. Subscribing
 * costs the client a timestamp and a promise callback per command; with no subscriber it
 * costs nothing but a boolean check.
 */
export interface CommandEvent {
  /** The client that sent it (the channel is shared by every client in the process). */
  client: object
  /** `get`, `set`, `incr`, `getMany`, `touch`... */
  command: string
  /** `"host:port"` */
  server: string
  /** Milliseconds from dispatch to reply (or failure). */
  duration: number
  /** For reads: whether the key was found (for getMany: true when at least one key was). */
  hit?: boolean
  /** For getMany: keys asked and keys found. */
  keys?: number
  hits?: number
  /** Set when the command failed. */
  error?: MemkitError
}

export const CHANNELS = Object.freeze({
  /** Every completed command: CommandEvent. */
  command: 'memkit:client:command',
  /** A server was marked down: { server, error }. */
  serverDown: 'memkit:client:server-down',
  /** A down server answered again: { server }. */
  serverUp: 'memkit:client:server-up',
})

export const commandChannel = channel(CHANNELS.command)
export const serverDownChannel = channel(CHANNELS.serverDown)
export const serverUpChannel = channel(CHANNELS.serverUp)
