// The release flow (README "Releasing"): changesets versions the published packages together
// and writes their CHANGELOGs. Run here for real, `changeset version`, on a scratch copy of the
// workspace manifests with the repository's pending changesets plus one sample, so a broken
// config or changeset fails `npm test` rather than the release. (`npm publish --dry-run` per
// package is in packaging.test.ts.)
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { after, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import semver from 'semver'

const run = promisify(execFile)
const root = fileURLToPath(new URL('..', import.meta.url))
const require = createRequire(import.meta.url)
const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8'))

mkdirSync(join(root, 'test', 'output'), { recursive: true })
const scratch = mkdtempSync(join(root, 'test', 'output', 'release-'))
after(() => rmSync(scratch, { recursive: true, force: true }))

interface Manifest {
  name: string
  version: string
  private?: boolean
  dependencies?: Record<string, string>
  devDependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
}

// What changesets reads: the root manifest, every workspace manifest and CHANGELOG, .changeset/.
function copyWorkspace(): string[] {
  const dirs: string[] = []
  cpSync(join(root, 'package.json'), join(scratch, 'package.json'))
  cpSync(join(root, '.changeset'), join(scratch, '.changeset'), { recursive: true })
  for (const pattern of readJson(join(root, 'package.json')).workspaces as string[]) {
    const parents = pattern.endsWith('/*')
      ? readdirSync(join(root, pattern.slice(0, -2))).map((d) => `${pattern.slice(0, -2)}/${d}`)
      : [pattern]
    for (const dir of parents) {
      if (!existsSync(join(root, dir, 'package.json'))) continue
      mkdirSync(join(scratch, dir), { recursive: true })
      for (const file of ['package.json', 'CHANGELOG.md']) {
        if (existsSync(join(root, dir, file))) cpSync(join(root, dir, file), join(scratch, dir, file))
      }
      dirs.push(dir)
    }
  }
  return dirs
}

test('changeset version: one minor changeset bumps the four packages together, keeps every internal range valid, writes the CHANGELOGs', async () => {
  const dirs = copyWorkspace()
  const before = new Map(dirs.map((dir) => [dir, readJson(join(root, dir, 'package.json')) as Manifest]))
  const published = [...before].filter(([, pkg]) => !pkg.private)
  const pending = readdirSync(join(root, '.changeset')).filter((f) => f.endsWith('.md') && f !== 'README.md')
  writeFileSync(
    join(scratch, '.changeset', 'release-test-sample.md'),
    `---\n'@memkit/client': minor\n---\n\nA sample change from test/release.test.ts.\n`,
  )

  const bin = join(dirname(require.resolve('@changesets/cli/package.json')), 'bin.js')
  await run(process.execPath, [bin, 'version'], { cwd: scratch, env: { ...process.env, CI: '1' } })

  // The fixed group: every published package gets the same next version (at least a minor).
  const current = published[0]![1].version
  const expected = semver.inc(current, 'minor')!
  const after = new Map(dirs.map((dir) => [dir, readJson(join(scratch, dir, 'package.json')) as Manifest]))
  const versions = new Map([...after.values()].map((pkg) => [pkg.name, pkg.version]))
  for (const [dir, pkg] of published) {
    const next = after.get(dir)!.version
    assert.ok(semver.gte(next, expected), `${pkg.name}: ${current} -> ${next}`)
    assert.equal(next, after.get(published[0]![0])!.version, `${pkg.name} moves with the group`)
    assert.ok(semver.lt(next, '1.0.0') || pending.length > 0, `${pkg.name}: a 0.x minor stays 0.x (${next})`)
    const changelog = readFileSync(join(scratch, dir, 'CHANGELOG.md'), 'utf8')
    assert.match(
      changelog,
      new RegExp(`^# ${pkg.name}\\n\\n## ${next.replaceAll('.', '\\.')}\\n`),
      `${dir}/CHANGELOG.md`,
    )
  }
  assert.match(
    readFileSync(join(scratch, 'packages/client/CHANGELOG.md'), 'utf8'),
    /A sample change from test\/release\.test\.ts/,
  )

  // Private workspaces are not versioned, but their ranges follow the packages they use.
  for (const [dir, pkg] of after) {
    if (pkg.private) assert.equal(pkg.version, before.get(dir)!.version, `${dir} is not versioned`)
    for (const field of ['dependencies', 'devDependencies', 'peerDependencies'] as const) {
      for (const [name, range] of Object.entries(pkg[field] ?? {})) {
        const version = versions.get(name)
        if (version)
          assert.ok(semver.satisfies(version, range), `${dir} ${field} ${name}@${range} admits ${version}`)
      }
    }
  }
})
