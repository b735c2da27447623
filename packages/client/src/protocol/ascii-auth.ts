import { Command, DONE, FATAL } from '../command.js'
import { AuthError } from '../errors.js'

/**
 * memcached's ASCII authentication (`memcached -Y <authfile>`): the first command on a
 * connection is a `set` whose value is "username password". STORED means authenticated;
 * anything else fails this connection with ERR_MEMKIT_AUTH.
 */
export class AsciiAuthCommand extends Command<void> {
  readonly name = 'auth'

  constructor(username: string, password: string) {
    const credentials = Buffer.from(`${username} ${password}`)
    super([`set memkit_auth 0 0 ${credentials.length}\r\n`, credentials, '\r\n'])
  }

  onLine(line: string): number {
    if (line === 'STORED') {
      this.resolve()
      return DONE
    }
    this.fatalError = new AuthError(
      `${this.server} refused the credentials (${line || 'no reply'}); check auth.username / auth.password and the server's -Y file`,
      this.server,
    )
    return FATAL
  }
}
