import { defineConfig } from 'tsup'

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    prometheus: 'src/prometheus.ts',
    'status-page': 'src/status-page.ts',
    php: 'src/php.ts',
    internal: 'src/internal/index.ts',
  },
  format: ['esm', 'cjs'],
  // Shared chunks for CJS too: a class exported by two entry points must be one class under
  // require() as well as import (instanceof across '@memkit/x' and '@memkit/x/express').
  splitting: true,
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
})
