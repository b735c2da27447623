#!/usr/bin/env node
// Keeps `npm ci` working with a registry mirror that only carries this platform's binaries.
//
// turbo, Biome and rollup (through tsup) ship a native binary per platform as optional
// dependencies. When the registry cannot serve the other platforms' packages (a filtered
// mirror), `npm install` leaves them out of package-lock.json, and npm 11's `npm ci` then
// refuses the lockfile ("Missing: @turbo/darwin-64@ from lock file"; npm/cli#8320).
//
// This script records each such package in the lockfile with the version its parent pins
// and the os/cpu/libc its name declares, so `npm ci` sees a complete lockfile and skips
// them as not-for-this-platform, exactly as it would with a full registry.
// Run it after `npm install` changes the lockfile: `npm run lock:platforms`.
import { readFileSync, writeFileSync } from 'node:fs'

const path = new URL('../package-lock.json', import.meta.url)
const lock = JSON.parse(readFileSync(path, 'utf8'))
const packages = lock.packages

const OS = [
  ['darwin', 'darwin'],
  ['win32', 'win32'],
  ['windows', 'win32'],
  ['android', 'android'],
  ['freebsd', 'freebsd'],
  ['openbsd', 'openbsd'],
  ['openharmony', 'openharmony'],
  ['sunos', 'sunos'],
  ['aix', 'aix'],
  ['netbsd', 'netbsd'],
  ['linux', 'linux'],
]
const CPU = [
  ['arm64', 'arm64'],
  ['x64', 'x64'],
  ['ia32', 'ia32'],
  ['loong64', 'loong64'],
  ['ppc64', 'ppc64'],
  ['riscv64', 'riscv64'],
  ['s390x', 's390x'],
  ['mips64el', 'mips64el'],
  ['arm', 'arm'],
  ['64', 'x64'],
]

function platformOf(name) {
  const tokens = name.split('/').pop().split('-')
  const os = OS.find(([token]) => tokens.includes(token))?.[1]
  const cpu = CPU.find(([token]) => tokens.includes(token))?.[1]
  const libc =
    tokens.includes('musl') || tokens.some((t) => t.startsWith('musl'))
      ? 'musl'
      : tokens.includes('gnu') || tokens.some((t) => t.startsWith('gnu'))
        ? 'glibc'
        : undefined
  return { os, cpu, libc }
}

let added = 0
for (const [location, entry] of Object.entries(packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    // Resolve the way node does: nested first, then up to the root node_modules.
    const base = location ? `${location}/node_modules/${name}` : `node_modules/${name}`
    if (packages[base] || packages[`node_modules/${name}`]) continue
    const { os, cpu, libc } = platformOf(name)
    if (!os || !cpu) continue // not a per-platform binary; leave it to npm
    const stub = { version, optional: true }
    if (entry.dev) stub.dev = true
    stub.os = [os]
    stub.cpu = [cpu]
    if (libc) stub.libc = [libc]
    packages[`node_modules/${name}`] = stub
    added++
  }
}

if (added > 0) {
  lock.packages = Object.fromEntries(
    Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))),
  )
  writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`)
}
console.log(`lock-platform-binaries: ${added} entr${added === 1 ? 'y' : 'ies'} added`)
