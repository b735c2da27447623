// Type-checks one snippet file the way an application's own `tsc` would: strict, as an ES
// module, once with `moduleResolution: node16` and once with `bundler`. Each snippet is its own
// program, so a `declare module` in one snippet can never make another one compile. Parsed
// library files (lib.d.ts, @types/node, the frameworks' and memkit's .d.ts) are shared between
// programs, which keeps ~100 programs to a few seconds each run.
import ts from 'typescript'

export type Resolution = 'node16' | 'bundler'

const common: ts.CompilerOptions = {
  strict: true,
  target: ts.ScriptTarget.ES2022,
  lib: ['lib.es2023.d.ts'],
  types: ['node'],
  noEmit: true,
  esModuleInterop: true,
  isolatedModules: true,
  verbatimModuleSyntax: true,
  forceConsistentCasingInFileNames: true,
  allowJs: true,
  checkJs: true,
  // Our own .d.ts files are checked by attw and by each package's typecheck; third-party
  // declaration files are not ours to fix.
  skipLibCheck: true,
}

export const COMPILER_OPTIONS: Record<Resolution, ts.CompilerOptions> = {
  node16: { ...common, module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16 },
  bundler: { ...common, module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler },
}

export interface Diagnostic {
  /** 1-based line in the generated snippet file, or undefined for a global diagnostic. */
  line: number | undefined
  message: string
  code: number
}

const sourceFiles = new Map<string, ts.SourceFile>()
const hosts = new Map<Resolution, ts.CompilerHost>()

function hostFor(resolution: Resolution): ts.CompilerHost {
  let host = hosts.get(resolution)
  if (host) return host
  const base = ts.createCompilerHost(COMPILER_OPTIONS[resolution], true)
  host = {
    ...base,
    getSourceFile(fileName, languageVersionOrOptions, onError, shouldCreate) {
      // Snippet files change between runs; everything else is read once per test process.
      if (fileName.includes('/test/output/snippets/')) {
        return base.getSourceFile(fileName, languageVersionOrOptions, onError, shouldCreate)
      }
      const format =
        typeof languageVersionOrOptions === 'object' ? languageVersionOrOptions.impliedNodeFormat : undefined
      const key = `${fileName}\0${format ?? ''}`
      let file = sourceFiles.get(key)
      if (!file) {
        file = base.getSourceFile(fileName, languageVersionOrOptions, onError, shouldCreate)
        if (file) sourceFiles.set(key, file)
      }
      return file
    },
  }
  hosts.set(resolution, host)
  return host
}

export function typecheck(fileName: string, resolution: Resolution): Diagnostic[] {
  const program = ts.createProgram({
    rootNames: [fileName],
    options: COMPILER_OPTIONS[resolution],
    host: hostFor(resolution),
  })
  const diagnostics = [
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...program.getSyntacticDiagnostics(),
    ...program.getSemanticDiagnostics(),
  ]
  return diagnostics
    .filter((d) => !d.file || d.file.fileName === fileName)
    .map((d) => ({
      line:
        d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line + 1 : undefined,
      message: ts.flattenDiagnosticMessageText(d.messageText, '\n'),
      code: d.code,
    }))
}
