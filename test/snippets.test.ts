// Every code block of every Markdown file in the repository (READMEs, examples, docs) is checked
// here, so a snippet that does not compile or run fails `npm test`.
//
// How a block is treated, by its language (the fence's info string):
//
//   ```ts / ```typescript / ```js / ```javascript
//       compiled as its own ES module file, strict, once with `moduleResolution: node16` and once
//       with `bundler` (test/snippets/typecheck.ts has the exact compiler options). It must
//       compile as pasted: its imports, `declare module` blocks and types included.
//   ```json          parsed with JSON.parse.
//   ```sh, ```text, ```http, ... (test/snippets/markdown.ts lists them)
//                    not code: left alone. Use ```text for program output and shapes.
//   no language      an error: every block names its language.
//
// An HTML comment right above a ts/js block (blank lines may sit between) changes what happens:
//
//   <!-- snippet: compile -->      the default, written out
//   <!-- snippet: run -->          also run, after it compiles: `node --import tsx` in its own
//                                  process against real memcached servers, started for the block.
//                                  Addresses written `host:11211` (or `{ host, port: 11211 }`) are
//                                  replaced by those servers' addresses, in order of appearance;
//                                  MEMCACHED_SERVERS names the first; COOKIE_SECRET and
//                                  SESSION_STORE_SECRET are set. It must finish without throwing
//                                  and print nothing to stderr (warnings included) within 30 s.
//   <!-- snippet: run              with hidden code (compiled with the block, invisible on GitHub):
//   before:                        - `before:` lines come first: only what the reader supplies
//   const login = ...              (their handlers, their data), never an import or option the
//   after:                         block itself needs, or the block would not work when pasted;
//   assert.equal(...)              - `after:` lines come last and may check what the block did
//   -->                            (e.g. send a request with `app.inject`); they see its variables.
//
// A failure names the Markdown file and line. The generated modules are kept in
// test/output/snippets/ (`<file>_L<line>.mts`, and `.run.mts` for what was run) for a look.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { runSnippet } from './snippets/execute.js'
import { type Block, extractBlocks, markdownFiles } from './snippets/markdown.js'
import { type SnippetFile, writeSnippet } from './snippets/snippet-file.js'
import { type Resolution, typecheck } from './snippets/typecheck.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const outDir = join(root, 'test', 'output', 'snippets')
const HELP =
  'Fix the block so that it works as pasted, or mark it: see the conventions at the top of test/snippets.test.ts ' +
  '(`<!-- snippet: ... -->` directives with hidden `before:`/`after:` code, ```text for output).'

const files = markdownFiles(root)
const counts = { compiled: 0, run: 0, json: 0 }

for (const file of files) {
  const blocks = extractBlocks(root, file).filter((block) => block.kind !== 'other' || block.problem)
  if (blocks.length === 0) continue
  describe(file, () => {
    for (const block of blocks) {
      test(`line ${block.line}: ${block.lang || '(no language)'}${block.kind === 'json' ? '' : ` (${block.mode})`}`, async () => {
        assert.equal(block.problem, undefined, `${block.file}:${block.line}: ${block.problem}`)
        if (block.kind === 'json') {
          assert.doesNotThrow(() => JSON.parse(block.code), `${block.file}:${block.line}: not valid JSON`)
          counts.json++
          return
        }
        const snippet = writeSnippet(outDir, block)
        for (const resolution of ['node16', 'bundler'] as const) {
          const diagnostics = typecheck(snippet.path, resolution)
          if (diagnostics.length > 0) assert.fail(report(block, snippet, resolution, diagnostics))
        }
        counts.compiled++
        if (block.mode !== 'run') return
        const result = await runSnippet(snippet.path, readFileSync(snippet.path, 'utf8'))
        assert.ok(
          result.ok,
          `${block.file}:${block.line}: the snippet failed when run (exit code ${result.exitCode}` +
            `${result.stderr ? ', output on stderr' : ''}) against memcached at ${result.servers.join(', ')}:\n` +
            `${atReadmeLines(result.stderr || result.stdout, snippet)}\n${HELP}`,
        )
        counts.run++
      })
    }
  })
}

test('snippet totals', (t) => {
  t.diagnostic(
    `${files.length} Markdown files: ${counts.compiled} ts/js blocks compiled (node16 and bundler), ` +
      `${counts.run} of them run against memcached, ${counts.json} JSON blocks parsed`,
  )
  assert.ok(counts.compiled > 0, 'snippets were found and compiled')
})

// A stack frame in the generated module points at the README line it came from.
function atReadmeLines(output: string, snippet: SnippetFile): string {
  const name = snippet.path.replace(/\.(mts|mjs)$/, '')
  return output.replaceAll(
    new RegExp(`${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?:\\.run)?\\.m[tj]s:(\\d+)(?::\\d+)?`, 'g'),
    (found, line: string) => `${snippet.origin[Number(line) - 1] ?? found}`,
  )
}

function report(
  block: Block,
  snippet: SnippetFile,
  resolution: Resolution,
  diagnostics: ReturnType<typeof typecheck>,
): string {
  const lines = diagnostics.map((d) => {
    const where =
      d.line === undefined ? block.file : (snippet.origin[d.line - 1] ?? `${block.file}:${block.line}`)
    return `  ${where}: TS${d.code} ${d.message}`
  })
  return `${block.file}:${block.line}: the ${block.lang} block does not compile (strict, moduleResolution ${resolution}):\n${lines.join('\n')}\n${HELP}`
}
