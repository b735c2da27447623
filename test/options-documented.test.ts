// Every public option is documented: each property of each options type a user passes (read
// from the built .d.ts, as an application's TypeScript sees it) has a row in an options table
// of its package README, that is a table line whose first cell names it in backticks.
import assert from 'node:assert/strict'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { COMPILER_OPTIONS } from './snippets/typecheck.js'

const root = fileURLToPath(new URL('..', import.meta.url))

// [module, exported options type, README that documents it]
const OPTION_TYPES: Array<[string, string, string]> = [
  ['@memkit/client', 'ClientOptions', 'packages/client/README.md'],
  ['@memkit/client/status', 'StatusPageOptions', 'packages/client/README.md'],
  ['@memkit/client/prometheus', 'PrometheusCollectorOptions', 'packages/client/README.md'],
  ['@memkit/session', 'MemcachedStoreOptions', 'packages/session/README.md'],
  ['@memkit/rate-limit/express', 'ExpressRateLimitOptions', 'packages/rate-limit/README.md'],
  ['@memkit/rate-limit/fastify', 'FastifyRateLimitOptions', 'packages/rate-limit/README.md'],
  ['@memkit/response-cache/express', 'ExpressResponseCacheOptions', 'packages/response-cache/README.md'],
  ['@memkit/response-cache/fastify', 'FastifyResponseCacheOptions', 'packages/response-cache/README.md'],
]

function optionNames(): Map<string, string[]> {
  const dir = join(root, 'test', 'output', 'options')
  mkdirSync(dir, { recursive: true })
  const file = join(dir, 'options.mts')
  writeFileSync(
    file,
    OPTION_TYPES.map(
      ([module, type], i) =>
        `import type { ${type} as T${i} } from '${module}'\nexport declare const o${i}: T${i}`,
    ).join('\n'),
  )
  const program = ts.createProgram({ rootNames: [file], options: COMPILER_OPTIONS.node16 })
  const diagnostics = ts.getPreEmitDiagnostics(program).filter((d) => d.file?.fileName === file)
  assert.deepEqual(
    diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')),
    [],
    'every options type is exported where the table says',
  )
  const checker = program.getTypeChecker()
  const source = program.getSourceFile(file)!
  const names = new Map<string, string[]>()
  for (const statement of source.statements) {
    if (!ts.isVariableStatement(statement)) continue
    const declaration = statement.declarationList.declarations[0]!
    const index = Number(declaration.name.getText(source).slice(1))
    const type = checker.getTypeAtLocation(declaration)
    names.set(
      OPTION_TYPES[index]!.join(' '),
      type.getProperties().map((p) => p.getName()),
    )
  }
  return names
}

test('every option of every public options type has a row in its README options table', () => {
  const missing: string[] = []
  for (const [key, names] of optionNames()) {
    const [module, type, readme] = key.split(' ') as [string, string, string]
    assert.ok(names.length > 0, `${type} has properties`)
    const firstCells = readFileSync(join(root, readme), 'utf8')
      .split('\n')
      .map((line) => line.trimStart())
      .filter((line) => line.startsWith('|'))
      .map((line) => line.split('|')[1] ?? '')
    for (const name of names) {
      if (!firstCells.some((cell) => cell.includes(`\`${name}\``)))
        missing.push(`${readme}: \`${name}\` (${type} from ${module})`)
    }
  }
  assert.deepEqual(missing, [], 'options without a row (| `name` | default | meaning |) in their README')
})
