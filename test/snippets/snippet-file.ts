// Turns a Markdown block into the module that is type-checked and run, and maps the module's
// lines back to the Markdown file, so a failure names the README line a reader sees.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Block } from './markdown.js'

export interface SnippetFile {
  path: string
  /** For each line of the module (0-based), where it came from. */
  origin: string[]
}

export function writeSnippet(outDir: string, block: Block): SnippetFile {
  const origin: string[] = []
  const lines: string[] = []
  const add = (text: string, where: (index: number) => string) => {
    if (text === '') return
    text.split('\n').forEach((line, index) => {
      lines.push(line)
      origin.push(where(index))
    })
  }
  add(
    block.before,
    (i) => `${block.file}:${block.line} (hidden "before:" line ${i + 1} of the directive above the block)`,
  )
  add(block.code, (i) => `${block.file}:${block.line + 1 + i}`)
  add(
    block.after,
    (i) => `${block.file}:${block.line} (hidden "after:" line ${i + 1} of the directive above the block)`,
  )
  // Every snippet is an ES module (top-level await, its own scope), like an application file.
  lines.push('export {}')
  origin.push(`${block.file}:${block.line} (the harness's trailing export {})`)
  mkdirSync(outDir, { recursive: true })
  const extension = block.kind === 'javascript' ? 'mjs' : 'mts'
  const path = join(outDir, `${block.file.replace(/[/.]/g, '_')}_L${block.line}.${extension}`)
  writeFileSync(path, `${lines.join('\n')}\n`)
  return { path, origin }
}
