// The suite ships plain ES modules without types; these are the parts the conformance run uses.
declare module 'http-cache-tests/client/runner.mjs' {
  export function runTests(
    suites: unknown[],
    fetch: typeof globalThis.fetch,
    browserCache: boolean,
    base: string,
    chunkSize?: number,
  ): Promise<void>
  export function getResults(): Record<string, true | [string, string]>
}
declare module 'http-cache-tests/tests/index.mjs' {
  const suites: Array<{
    id: string
    name: string
    tests: Array<{
      id: string
      kind?: string
      browser_only?: boolean
      browser_skip?: boolean
      depends_on?: string[]
    }>
  }>
  export default suites
}
declare module 'http-cache-tests/lib/display.mjs' {
  export function determineTestResult(
    suites: unknown[],
    id: string,
    results: Record<string, unknown>,
    honorDependencies?: boolean,
  ): [string, string, string]
}
declare module 'http-cache-tests/server/handle-test.mjs' {
  export default function handleTest(pathSegs: string[], request: unknown, response: unknown): void
}
declare module 'http-cache-tests/server/handle-config.mjs' {
  export default function handleConfig(pathSegs: string[], request: unknown, response: unknown): void
}
declare module 'http-cache-tests/server/handle-state.mjs' {
  export default function handleState(pathSegs: string[], request: unknown, response: unknown): void
}
declare module 'http-cache-tests/server/utils.mjs' {
  export const configs: Map<string, unknown>
  export function setConfig(key: string, value: unknown): void
}
