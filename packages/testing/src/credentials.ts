import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface TlsMaterial {
  /** PEM of the self-signed CA that signed the server certificate. */
  ca: string
  /** PEM of another CA, which did not sign it (for wrong-CA tests). */
  otherCa: string
  certFile: string
  keyFile: string
}

/**
 * A throwaway CA and a server certificate for 127.0.0.1/localhost, made with the openssl
 * command line (Debian package openssl). Files live in a fresh temp directory.
 */
export function generateTlsMaterial(): TlsMaterial {
  const dir = mkdtempSync(join(tmpdir(), 'memkit-tls-'))
  const run = (args: string[]) =>
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
  for (const name of ['ca', 'other-ca']) {
    run([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=memkit test ${name}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
    ])
  }
  run([
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=localhost',
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
  ])
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n')
  run([
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    'san.ext',
    '-out',
    'server.crt',
  ])
  return {
    ca: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    otherCa: readFileSync(join(dir, 'other-ca.crt'), 'utf8'),
    certFile: join(dir, 'server.crt'),
    keyFile: join(dir, 'server.key'),
  }
}

/** An ASCII-auth file for `memcached -Y` (one `user:password` per line). */
export function writeAuthFile(users: Array<{ username: string; password: string }>): string {
  const dir = mkdtempSync(join(tmpdir(), 'memkit-auth-'))
  const file = join(dir, 'memcached-auth')
  writeFileSync(file, users.map((u) => `${u.username}:${u.password}\n`).join(''), { mode: 0o600 })
  return file
}

/**
 * A Cyrus SASL setup for `memcached -S`: a sasldb with the given users (PLAIN mechanism)
 * and a config directory to pass as SASL_CONF_PATH. Needs sasl2-bin and libsasl2-modules.
 */
export function writeSaslConfig(users: Array<{ username: string; password: string }>): { confDir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'memkit-sasl-'))
  const db = join(dir, 'sasldb2')
  for (const user of users) {
    execFileSync('saslpasswd2', ['-p', '-a', 'memcached', '-c', '-f', db, user.username], {
      input: user.password,
      stdio: ['pipe', 'ignore', 'pipe'],
    })
  }
  writeFileSync(join(dir, 'memcached.conf'), `mech_list: plain\nsasldb_path: ${db}\n`)
  return { confDir: dir }
}
