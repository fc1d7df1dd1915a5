// Bundles the petrel command into one file, dist/petrel.mjs, that runs with
// plain `node` and needs no node_modules (Petrel has zero runtime dependencies).
import { build } from 'esbuild';

await build({
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/petrel.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  banner: { js: '#!/usr/bin/env node' },
  sourcemap: false,
  minify: false,
  legalComments: 'none',
  logLevel: 'warning',
});
