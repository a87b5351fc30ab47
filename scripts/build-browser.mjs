#!/usr/bin/env node
// Builds the browser side with esbuild (part of `npm run build`):
//   dist/browser/lifeline.js   the browser client, one ESM bundle (src/browser/index.ts)
//   dist/browser/demo.js       the demo page's script   (imports ./lifeline.js at run time)
//   dist/browser/inspect.js    the inspector's script
//   dist/browser/*.html, *.css the pages (src/browser/pages/)
//   dist/examples/echo-agent.js  the example echo agent, for `lifeline serve --demo`
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'browser');
const pages = join(root, 'src', 'browser', 'pages');
mkdirSync(out, { recursive: true });

const common = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome110', 'firefox115', 'safari16'],
  sourcemap: true,
  logLevel: 'warning',
  legalComments: 'none',
  minify: true,
};

// The pages load the client from ./lifeline.js instead of carrying a copy of it.
const clientIsExternal = {
  name: 'client-is-external',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/index\.js$/ }, () => ({ path: './lifeline.js', external: true }));
  },
};

await build({ ...common, entryPoints: [join(root, 'src', 'browser', 'index.ts')], outfile: join(out, 'lifeline.js') });
await build({
  ...common,
  entryPoints: { demo: join(pages, 'demo.ts'), inspect: join(pages, 'inspect.ts') },
  outdir: out,
  plugins: [clientIsExternal],
});
for (const f of readdirSync(pages)) {
  if (f.endsWith('.html') || f.endsWith('.css') || f.endsWith('.svg')) copyFileSync(join(pages, f), join(out, f));
}
await build({
  entryPoints: [join(root, 'examples', 'echo-agent.ts')],
  outfile: join(root, 'dist', 'examples', 'echo-agent.js'),
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  logLevel: 'warning',
});
