#!/usr/bin/env node
// Makes sure the real servers and reference tools the tests use are installed.
// On a fresh Debian/Ubuntu machine running as root it installs them with apt-get;
// otherwise it prints the one command that would, and fails.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'

// Each requirement: how to tell it is present, and the Debian package that provides it.
const requirements = [
  { name: 'memcached', package: 'memcached', present: () => onPath('memcached') },
  { name: 'twemproxy', package: 'nutcracker', present: () => onPath('nutcracker') },
  {
    name: 'libmemcached (ketama reference)',
    package: 'libmemcached11',
    present: () => hasLib('libmemcached.so.11'),
  },
  { name: 'pylibmc (ketama reference)', package: 'python3-pylibmc', present: () => pyImports('pylibmc') },
  {
    name: 'pymemcache (flags interop)',
    package: 'python3-pymemcache',
    present: () => pyImports('pymemcache'),
  },
  // PHP's memcached extension, the other side of @memkit/client/php's flags
  { name: 'PHP CLI', package: 'php-cli', present: () => onPath('php') },
  {
    name: 'PHP memcached extension (flags interop)',
    package: 'php-memcached',
    present: () =>
      onPath('php') &&
      spawnSync('php', ['-r', 'exit(class_exists("Memcached") ? 0 : 1);'], { stdio: 'ignore' }).status === 0,
  },
  { name: 'Cyrus SASL tools', package: 'sasl2-bin', present: () => onPath('saslpasswd2') },
  { name: 'SASL PLAIN mechanism', package: 'libsasl2-modules', present: () => hasLib('sasl2/libplain.so') },
  { name: 'openssl', package: 'openssl', present: () => onPath('openssl') },
  // the status page is tested in a real headless browser (driven by playwright-core)
  { name: 'Chromium', package: 'chromium', present: () => existsSync('/usr/bin/chromium') },
]

function onPath(bin) {
  const dirs = `${process.env.PATH ?? ''}:/usr/sbin:/sbin:/usr/bin`.split(':')
  return dirs.some((dir) => dir && existsSync(`${dir}/${bin}`))
}

function hasLib(name) {
  return [
    '/usr/lib/x86_64-linux-gnu',
    '/usr/lib/aarch64-linux-gnu',
    '/usr/lib',
    '/lib/x86_64-linux-gnu',
  ].some((dir) => existsSync(`${dir}/${name}`))
}

// The Debian python modules live in the system interpreter, not in a pyenv shim.
function pyImports(module) {
  if (!existsSync('/usr/bin/python3')) return false
  return spawnSync('/usr/bin/python3', ['-c', `import ${module}`], { stdio: 'ignore' }).status === 0
}

const missing = requirements.filter((r) => !r.present())
if (missing.length === 0) {
  process.exit(0)
}

const packages = [...new Set(missing.map((r) => r.package))]
const command = `apt-get update && apt-get install -y --no-install-recommends ${packages.join(' ')}`
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0

if (!isRoot || !onPath('apt-get')) {
  console.error(`memkit tests need: ${missing.map((r) => r.name).join(', ')}.`)
  console.error(`Install them (Debian/Ubuntu) with:\n  sudo sh -c '${command}'`)
  process.exit(1)
}

console.log(`Installing test servers: ${packages.join(' ')}`)
try {
  execFileSync('sh', ['-c', command], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  })
} catch {
  console.error(`Installing failed. Run this yourself and retry:\n  ${command}`)
  process.exit(1)
}
// The Debian package starts a system memcached on 11211; tests never use it (they start
// their own on free ports), so it is left as the package installed it.
const still = requirements.filter((r) => !r.present())
if (still.length > 0) {
  console.error(`Still missing after install: ${still.map((r) => r.name).join(', ')}`)
  process.exit(1)
}
