// Finds the code blocks of the project's Markdown files and the `<!-- snippet: ... -->`
// directives that say what to do with them. The conventions are documented in
// test/snippets.test.ts, which is where a failing block is reported.
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'

/** Languages compiled as TypeScript / JavaScript, parsed as JSON, or left alone. */
const TYPESCRIPT = new Set(['ts', 'typescript', 'mts'])
const JAVASCRIPT = new Set(['js', 'javascript', 'mjs'])
const JSON_LANGS = new Set(['json'])
const NOT_CODE = new Set([
  'sh',
  'bash',
  'shell',
  'console',
  'text',
  'http',
  'ini',
  'yaml',
  'yml',
  'diff',
  'jsonc',
  // other languages' clients beside memkit (pymemcache, PHP): tests that run them say so
  'python',
  'php',
])

export type Mode = 'compile' | 'run'

export interface Block {
  /** Repository-relative path of the Markdown file. */
  file: string
  /** 1-based line of the opening fence. */
  line: number
  lang: string
  kind: 'typescript' | 'javascript' | 'json' | 'other'
  /** The block's text, its list indentation removed. */
  code: string
  mode: Mode
  /** Hidden code from the directive, placed before and after the block. */
  before: string
  after: string
  /** A problem with the block's markup itself (no language, a malformed directive). */
  problem?: string
}

const SKIP_DIRS = new Set([
  'node_modules',
  'dist',
  '.git',
  '.turbo',
  'coverage',
  'output',
  'results',
  '.changeset',
])

/** Every Markdown file of the repository except generated changelogs. */
export function markdownFiles(root: string): string[] {
  const found: string[] = []
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name.startsWith('.') && entry.name !== '.github') continue
      const path = join(dir, entry.name)
      if (entry.isDirectory()) {
        if (!SKIP_DIRS.has(entry.name)) walk(path)
      } else if (entry.name.endsWith('.md') && entry.name !== 'CHANGELOG.md') {
        found.push(relative(root, path))
      }
    }
  }
  walk(root)
  return found.sort()
}

const FENCE = /^( *)(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/
const DIRECTIVE_START = /^\s*<!--\s*snippet:\s*([a-z-]+)\s*(-->)?\s*$/

export function extractBlocks(root: string, file: string): Block[] {
  const lines = readFileSync(join(root, file), 'utf8').split('\n')
  const blocks: Block[] = []
  let pending: { mode: string; before: string[]; after: string[]; line: number } | undefined
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    const directive = DIRECTIVE_START.exec(line)
    if (!directive && /^\s*<!--\s*snippet/i.test(line)) {
      blocks.push({
        ...orphan(file, i + 1),
        problem: `malformed directive ${line.trim()}: write <!-- snippet: run -->`,
      })
      continue
    }
    if (directive) {
      pending = { mode: directive[1]!, before: [], after: [], line: i + 1 }
      if (!directive[2]) {
        // A multi-line directive: `before:` and `after:` sections until `-->`.
        let section = pending.before
        for (i++; i < lines.length && lines[i]!.trim() !== '-->'; i++) {
          const text = lines[i]!
          if (text.trim() === 'before:') section = pending.before
          else if (text.trim() === 'after:') section = pending.after
          else section.push(text)
        }
      }
      continue
    }
    const open = FENCE.exec(line)
    if (!open) {
      // A directive applies to the next block, with only blank lines between them.
      if (pending && line.trim() !== '') {
        blocks.push(orphan(file, pending.line))
        pending = undefined
      }
      continue
    }
    const indent = open[1]!.length
    const fence = open[2]!
    const lang = open[3]!.toLowerCase()
    const body: string[] = []
    let j = i + 1
    const close = new RegExp(`^ *${fence[0] === '`' ? '`' : '~'}{${fence.length},}\\s*$`)
    for (; j < lines.length && !close.test(lines[j]!); j++) {
      body.push(lines[j]!.slice(Math.min(indent, lines[j]!.length - lines[j]!.trimStart().length)))
    }
    const kind = TYPESCRIPT.has(lang)
      ? 'typescript'
      : JAVASCRIPT.has(lang)
        ? 'javascript'
        : JSON_LANGS.has(lang)
          ? 'json'
          : 'other'
    const block: Block = {
      file,
      line: i + 1,
      lang,
      kind,
      code: body.join('\n'),
      mode: 'compile',
      before: pending?.before.join('\n') ?? '',
      after: pending?.after.join('\n') ?? '',
    }
    if (lang === '') block.problem = 'the block has no language: give it one (```ts, ```sh, ```text ...)'
    else if (kind === 'other' && !NOT_CODE.has(lang)) {
      block.problem = `unknown language '${lang}': use ts, js, json, or one of ${[...NOT_CODE].join(', ')}`
    }
    if (pending) {
      if (pending.mode === 'run' || pending.mode === 'compile') block.mode = pending.mode
      else block.problem = `unknown snippet mode '${pending.mode}' (use compile or run)`
      if (kind !== 'typescript' && kind !== 'javascript') {
        block.problem = `a snippet directive applies to ts/js blocks only, not '${lang}'`
      }
    }
    blocks.push(block)
    pending = undefined
    i = j
  }
  if (pending) blocks.push(orphan(file, pending.line))
  return blocks
}

function orphan(file: string, line: number): Block {
  return {
    file,
    line,
    lang: '',
    kind: 'other',
    code: '',
    mode: 'compile',
    before: '',
    after: '',
    problem:
      'a <!-- snippet: ... --> directive must be followed by a code block (blank lines only between them)',
  }
}
