// The published packages as an application gets them: metadata and licence, peer ranges that the
// workspace satisfies, types that resolve under every TypeScript resolution mode (attw), the
// tarball `npm publish` would upload, and one class per class under require() and import().
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import semver from 'semver'

const run = promisify(execFile)
const root = fileURLToPath(new URL('..', import.meta.url))
const require = createRequire(import.meta.url)

interface Manifest {
  name: string
  version: string
  private?: boolean
  license?: string
  repository?: { type: string; url: string; directory: string }
  homepage?: string
  bugs?: { url: string }
  keywords?: string[]
  engines?: { node: string }
  exports?: Record<string, string | Record<string, Record<string, string>>>
  main?: string
  module?: string
  types?: string
  files?: string[]
  scripts?: Record<string, string>
  dependencies?: Record<string, string>
  devDependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
}

const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8'))
const rootManifest = readJson(join(root, 'package.json')) as Manifest & { workspaces: string[] }

// Every workspace directory (the globs in the root package.json are `dir/*` or plain `dir`).
const workspaces = rootManifest.workspaces.flatMap((pattern) =>
  pattern.endsWith('/*')
    ? readdirSync(join(root, pattern.slice(0, -2)), { withFileTypes: true })
        .filter(
          (entry) =>
            entry.isDirectory() && existsSync(join(root, pattern.slice(0, -2), entry.name, 'package.json')),
        )
        .map((entry) => `${pattern.slice(0, -2)}/${entry.name}`)
    : [pattern],
)
const manifests = new Map(
  workspaces.map((dir) => [dir, readJson(join(root, dir, 'package.json')) as Manifest]),
)
const versions = new Map([...manifests.values()].map((pkg) => [pkg.name, pkg.version]))
const published = [...manifests].filter(([, pkg]) => !pkg.private)

test('the published packages are the four memkit libraries', () => {
  assert.deepEqual(published.map(([, pkg]) => pkg.name).sort(), [
    '@memkit/client',
    '@memkit/rate-limit',
    '@memkit/response-cache',
    '@memkit/session',
  ])
})

test('every workspace runs its tests with the same runner, reporter and flags', () => {
  const commands = [...manifests]
    .filter(([, pkg]) => pkg.scripts?.test)
    .map(([dir, pkg]) => [dir, pkg.scripts!.test!.replace(/ \S*\*\.test\.ts$/, '')] as const)
  assert.ok(commands.length >= 8)
  for (const [dir, command] of commands) {
    assert.equal(
      command,
      'node --import tsx --test --test-reporter=spec --test-concurrency=1 --disable-warning=ExperimentalWarning',
      dir,
    )
  }
})

test('internal dependencies carry version ranges that the workspace versions satisfy', () => {
  for (const [dir, pkg] of manifests) {
    for (const field of ['dependencies', 'devDependencies', 'peerDependencies'] as const) {
      for (const [name, range] of Object.entries(pkg[field] ?? {})) {
        const version = versions.get(name)
        if (!version) continue
        assert.notEqual(range, '*', `${dir} ${field} ${name}: a real range, not "*"`)
        assert.ok(semver.satisfies(version, range), `${dir} ${field} ${name}: ${range} admits ${version}`)
      }
    }
  }
})

test('engines and the dependency set agree: every locked package supports every Node line memkit supports', () => {
  // The first release of each line that `engines` admits (20.19.0, 22.0.0, 24.0.0).
  const floors = ['20.19.0', '22.0.0', '24.0.0']
  for (const floor of floors)
    assert.ok(semver.satisfies(floor, rootManifest.engines!.node), `engines admit ${floor}`)
  const lock = readJson(join(root, 'package-lock.json')) as {
    packages: Record<string, { version?: string; engines?: { node?: string } | string[]; optional?: boolean }>
  }
  const narrower: string[] = []
  for (const [location, entry] of Object.entries(lock.packages)) {
    const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node
    if (!location || !range) continue
    const missed = floors.filter((floor) => !semver.satisfies(floor, range, { includePrerelease: true }))
    if (missed.length > 0)
      narrower.push(`${location}@${entry.version} needs node ${range} (not ${missed.join(', ')})`)
  }
  assert.deepEqual(narrower, [], 'npm ci would print EBADENGINE on a supported Node line')
})

for (const [dir, pkg] of published) {
  describe(pkg.name, () => {
    test('metadata: licence file, repository, homepage, bugs, keywords, engines', () => {
      assert.equal(pkg.license, 'MIT')
      assert.equal(
        readFileSync(join(root, dir, 'LICENSE'), 'utf8'),
        readFileSync(join(root, 'LICENSE'), 'utf8'),
        'LICENSE is a copy of the repository licence',
      )
      assert.equal(pkg.repository?.type, 'git')
      assert.match(pkg.repository?.url ?? '', /^git\+https:\/\/github\.com\/.+\.git$/)
      assert.equal(pkg.repository?.directory, dir)
      assert.equal(pkg.homepage, `${pkg.repository!.url.slice(4, -4)}/tree/main/${dir}#readme`)
      assert.equal(pkg.bugs?.url, `${pkg.repository!.url.slice(4, -4)}/issues`)
      assert.ok((pkg.keywords ?? []).length >= 3, 'keywords')
      assert.equal(pkg.engines?.node, rootManifest.engines?.node)
    })

    test('@memkit/client is a peer dependency (and a dev dependency for the workspace), never bundled', () => {
      if (pkg.name === '@memkit/client') return
      assert.ok(pkg.peerDependencies?.['@memkit/client'], 'peer')
      assert.ok(pkg.devDependencies?.['@memkit/client'], 'dev dependency, so the workspace links it')
      assert.equal(pkg.dependencies?.['@memkit/client'], undefined)
    })

    test('types resolve under node10, node16 (CJS and ESM) and bundler for every entry point (attw --pack)', async () => {
      const bin = join(dirname(require.resolve('@arethetypeswrong/cli/package.json')), 'dist', 'index.js')
      // The ascii report (JSON output is cut at 64 KiB when attw exits with problems).
      const args = [
        bin,
        '--pack',
        '.',
        '--profile',
        'strict',
        '--format',
        'ascii',
        '--no-color',
        '--no-emoji',
      ]
      const result = await run(process.execPath, args, { cwd: join(root, dir) }).then(
        ({ stdout }) => ({ ok: true, stdout }),
        (error: { stdout?: string }) => ({ ok: false, stdout: error.stdout ?? String(error) }),
      )
      assert.ok(result.ok && /No problems found/.test(result.stdout), `attw --pack ${dir}:\n${result.stdout}`)
      for (const entry of Object.keys(pkg.exports ?? {})) {
        const section = result.stdout.split(`"${pkg.name}${entry.slice(1)}"`)[1]?.split('***')[0] ?? ''
        for (const mode of ['node10', 'node16 (from CJS)', 'node16 (from ESM)', 'bundler']) {
          assert.match(
            section,
            new RegExp(`^${mode.replace(/[()]/g, '\\$&')}: OK`, 'm'),
            `${entry} under ${mode}`,
          )
        }
      }
    })

    test('npm publish --dry-run: the tarball holds the licence, README, CHANGELOG and every file the manifest points to', async () => {
      // --offline: the dry run packs and validates locally; only its login check would reach the registry.
      const { stdout } = await run('npm', ['publish', '--dry-run', '--json', '--offline'], {
        cwd: join(root, dir),
        maxBuffer: 64 * 1024 * 1024,
      })
      // npm prints the report itself, or (run from a workspace root) keyed by the package name.
      type Report = { name: string; files: { path: string }[] }
      const result = JSON.parse(stdout) as Report | Record<string, Report>
      const tarball = 'files' in result ? (result as Report) : (result as Record<string, Report>)[pkg.name]
      assert.ok(tarball, `npm would publish ${pkg.name}`)
      const files = new Set(tarball.files.map((file) => file.path))
      for (const file of ['LICENSE', 'README.md', 'CHANGELOG.md', 'package.json'])
        assert.ok(files.has(file), file)
      const changelog = readFileSync(join(root, dir, 'CHANGELOG.md'), 'utf8')
      assert.ok(
        changelog.includes(`\n## ${pkg.version}\n`),
        `CHANGELOG.md has an entry for ${pkg.version} (npm run version-packages)`,
      )
      const pointed = [pkg.main, pkg.module, pkg.types, ...exportTargets(pkg.exports)].filter(
        (file): file is string => typeof file === 'string',
      )
      // node10 resolution ignores `exports`: each subpath has a directory whose package.json points into dist.
      for (const entry of Object.keys(pkg.exports ?? {})) {
        if (entry === '.' || entry === './package.json') continue
        const stub = readJson(join(root, dir, entry, 'package.json')) as Manifest
        assert.ok(files.has(`${entry.slice(2)}/package.json`), `${entry}/package.json is published`)
        const cjs = (pkg.exports![entry] as Record<string, Record<string, string>>).require!
        assert.equal(join(entry, stub.main!), join(cjs.default!), `${entry}/package.json main`)
        assert.equal(join(entry, stub.types!), join(cjs.types!), `${entry}/package.json types`)
      }
      for (const file of pointed) assert.ok(files.has(join(file)), `${file} is in the tarball`)
      for (const file of files) assert.doesNotMatch(file, /^(src|test)\//, `${file} is not published`)
    })
  })
}

function exportTargets(exports: Manifest['exports']): string[] {
  const targets: string[] = []
  const walk = (value: unknown) => {
    if (typeof value === 'string') targets.push(value)
    else if (value && typeof value === 'object') for (const inner of Object.values(value)) walk(inner)
  }
  walk(exports)
  return targets
}

for (const system of ['cjs', 'esm'] as const) {
  test(`${system === 'cjs' ? 'require()' : 'import()'}: a class reached through two entry points is one class`, async () => {
    const { stdout } = await run(
      process.execPath,
      [join(root, 'test', 'fixtures', 'module-identity.mjs'), system],
      {
        cwd: root,
      },
    )
    const checks = JSON.parse(stdout) as Record<string, boolean>
    assert.ok(Object.keys(checks).length >= 9, 'the probe compared the shared classes')
    const failed = Object.entries(checks)
      .filter(([, same]) => !same)
      .map(([check]) => check)
    assert.deepEqual(failed, [], `${system}: differing across entry points`)
  })
}
