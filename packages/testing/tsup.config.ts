import { defineConfig } from 'tsup'

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  // `node:test` has no form without the prefix: keep every `node:` import as written.
  removeNodeProtocol: false,
})
