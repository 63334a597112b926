// Bundles the console and the widget into c2c_ari/static, which the service serves
// (/console/ and /widget.js). No CDN: everything the pages need ends up in these files.
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';

const out = new URL('../c2c_ari/static/', import.meta.url);
await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });

const common = { bundle: true, minify: true, target: 'es2020', legalComments: 'inline', logLevel: 'warning' };
await build({ ...common, entryPoints: ['src/console.js'], format: 'esm',
  outfile: new URL('console.js', out).pathname });
// A plain <script> on somebody else's page: no module, nothing leaks into their globals.
await build({ ...common, entryPoints: ['src/widget.js'], format: 'iife',
  outfile: new URL('widget.js', out).pathname });
await copyFile(new URL('src/index.html', import.meta.url), new URL('index.html', out));
await copyFile(new URL('src/console.css', import.meta.url), new URL('console.css', out));
