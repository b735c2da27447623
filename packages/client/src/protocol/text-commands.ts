import { Command, DONE, MORE } from '../command.js'

/** `version` → the server's version string. Also the health probe. */
export class VersionCommand extends Command<string> {
  readonly name = 'version'
  constructor() {
    super('version\r\n')
  }
  onLine(line: string): number {
    if (line.startsWith('VERSION ')) {
      this.resolve(line.slice(8))
      return DONE
    }
    return this.errorLine(line)
  }
}

/** `stats [group]` → name/value pairs until END. */
export class StatsCommand extends Command<Record<string, string>> {
  readonly name = 'stats'
  #stats: Record<string, string> = {}
  constructor(group?: string) {
    super(group ? `stats ${group}\r\n` : 'stats\r\n')
  }
  override reset(): void {
    this.#stats = {}
  }
  onLine(line: string): number {
    if (line.startsWith('STAT ')) {
      const space = line.indexOf(' ', 5)
      if (space === -1) this.#stats[line.slice(5)] = ''
      else this.#stats[line.slice(5, space)] = line.slice(space + 1)
      return MORE
    }
    if (line === 'END') {
      this.resolve(this.#stats)
      return DONE
    }
    return this.errorLine(line)
  }
}

/** `flush_all` → OK. */
export class FlushCommand extends Command<void> {
  readonly name = 'flush'
  constructor() {
    super('flush_all\r\n')
  }
  onLine(line: string): number {
    if (line === 'OK') {
      this.resolve()
      return DONE
    }
    return this.errorLine(line)
  }
}

/** `mn` (meta no-op) → MN. Used to nudge a stalled TLS connection. */
export class MetaNoopCommand extends Command<void> {
  readonly name = 'noop'
  constructor() {
    super('mn\r\n')
  }
  onLine(line: string): number {
    if (line === 'MN') {
      this.resolve()
      return DONE
    }
    return this.errorLine(line)
  }
}
