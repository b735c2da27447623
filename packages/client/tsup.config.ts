import { defineConfig } from 'tsup'

export default defineConfig({
  entry: ['src/index.ts', 'src/prometheus.ts', 'src/status-page.ts', 'src/php.ts'],
  format: ['esm', 'cjs'],
  // Shared chunks for CJS too: a class exported by two entry points must be one class under
  // require() as well as import (instanceof across '@memkit/x' and '@memkit/x/express').
  splitting: true,
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
})
