// The snippet harness itself (test/snippets/): it finds blocks and directives where a reader
// would put them, and it fails the kinds of snippets that once failed for users.
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { runSnippet } from './snippets/execute.js'
import { type Block, extractBlocks } from './snippets/markdown.js'
import { writeSnippet } from './snippets/snippet-file.js'
import { typecheck } from './snippets/typecheck.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const outDir = join(root, 'test', 'output', 'snippets')
mkdirSync(outDir, { recursive: true })
const scratch = mkdtempSync(join(root, 'test', 'output', 'harness-'))
after(() => rmSync(scratch, { recursive: true, force: true }))

function blocksOf(markdown: string): Block[] {
  mkdirSync(scratch, { recursive: true })
  writeFileSync(join(scratch, 'GUIDE.md'), markdown)
  return extractBlocks(scratch, 'GUIDE.md')
}

function compileErrors(code: string): string[] {
  const [block] = blocksOf(`\`\`\`ts\n${code}\n\`\`\`\n`)
  const file = writeSnippet(outDir, { ...block!, file: 'harness-self-test.md' })
  return [
    ...typecheck(file.path, 'node16').map((d) => `node16 TS${d.code}`),
    ...typecheck(file.path, 'bundler').map((d) => `bundler TS${d.code}`),
  ]
}

test('blocks: languages, list indentation, directives with hidden code, markup problems', () => {
  const blocks = blocksOf(
    [
      '# Guide',
      '```sh',
      'npm test',
      '```',
      '<!-- snippet: run',
      'before:',
      'const x = 1',
      'after:',
      'console.log(y)',
      '-->',
      '',
      '```ts',
      'const y = x + 1',
      '```',
      '- a list item:',
      '',
      '  ```ts',
      '  const z = 3',
      '    .toFixed()',
      '  ```',
      '```',
      'no language',
      '```',
      '<!-- snippet: sometimes -->',
      '```js',
      'let a',
      '```',
      '<!-- snippets run -->',
      '<!-- snippet: run -->',
      'text between',
      '```json',
      '{ "a": 1 }',
      '```',
    ].join('\n'),
  )
  const summary = blocks.map((b) => ({
    line: b.line,
    lang: b.lang,
    mode: b.mode,
    problem: b.problem !== undefined,
  }))
  assert.deepEqual(summary, [
    { line: 2, lang: 'sh', mode: 'compile', problem: false },
    { line: 12, lang: 'ts', mode: 'run', problem: false },
    { line: 17, lang: 'ts', mode: 'compile', problem: false },
    { line: 21, lang: '', mode: 'compile', problem: true },
    { line: 25, lang: 'js', mode: 'compile', problem: true },
    { line: 28, lang: '', mode: 'compile', problem: true },
    { line: 29, lang: '', mode: 'compile', problem: true },
    { line: 31, lang: 'json', mode: 'compile', problem: false },
  ])
  assert.equal(blocks[1]!.before, 'const x = 1')
  assert.equal(blocks[1]!.after, 'console.log(y)')
  assert.equal(
    blocks[2]!.code,
    'const z = 3\n  .toFixed()',
    'list indentation removed, inner indentation kept',
  )
  assert.match(blocks[4]!.problem!, /unknown snippet mode 'sometimes'/)
  assert.match(blocks[5]!.problem!, /malformed directive/)
  assert.match(blocks[6]!.problem!, /must be followed by a code block/)
})

test('the failures users met do not compile: session fields without declare module, trustProxy: 1, undefined secrets', () => {
  const fastifyApp = (options: string, declare = '') => `
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import Fastify from 'fastify'
${declare}
const app = Fastify(${options})
await app.register(fastifyCookie)
await app.register(fastifySession, { secret: process.env.COOKIE_SECRET${declare ? '!' : ''} })
app.get('/', async (request) => {
  request.session.views = (request.session.views ?? 0) + 1
  return request.session.views
})`
  const declared = `declare module 'fastify' {\n  interface Session { views: number }\n}`
  assert.deepEqual(compileErrors(fastifyApp('', declared)), [], 'the corrected program compiles')
  assert.ok(
    compileErrors(fastifyApp('{ trustProxy: 1 }', declared)).includes('node16 TS2769'),
    'trustProxy: 1',
  )
  const undeclared = compileErrors(fastifyApp(''))
  assert.ok(undeclared.includes('node16 TS2339'), 'request.session.views without declare module')
  assert.ok(undeclared.includes('bundler TS2769'), 'secret: string | undefined')
})

test('a run block that throws or writes to stderr fails; addresses are replaced by real servers', async () => {
  const file = join(outDir, 'harness-self-test_run.mts')
  const ok = await runSnippet(
    file,
    `import { createClient } from '@memkit/client'
const client = createClient({ servers: ['10.0.0.1:11211', { host: '10.0.0.2', port: 11211 }] })
await client.set('k', 'v')
console.log(client.serverFor('k'), await client.get('k'))
export {}`,
  )
  assert.equal(ok.ok, true, ok.stderr)
  assert.equal(ok.servers.length, 2)
  const [where, value] = ok.stdout.trim().split(' ')
  assert.ok(ok.servers.includes(where!), 'the key went to one of the started servers')
  assert.equal(value, 'v')

  const warns = await runSnippet(file, `process.emitWarning('careful'); export {}`)
  assert.equal(warns.ok, false, 'a warning on stderr fails the block')
  const throws = await runSnippet(file, `throw new Error('broken'); export {}`)
  assert.equal(throws.ok, false)
  assert.match(throws.stderr, /broken/)
})
