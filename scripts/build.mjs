// Builds the workspace packages with `tsc -b` and makes their bins executable.
//
//   node scripts/build.mjs              the root `prepare` (after `npm ci`/`npm install`): every
//                                       package, so `dist` exists and `npx xmppbus` works at once
//   node ../../scripts/build.mjs --package
//                                       a package's `prepack`: rebuilds that package (and what it
//                                       references) from a clean `dist`
//
// Why a clean `dist` before packing: tsc never deletes outputs, so a file renamed or removed in
// `src` would otherwise ship from a stale `dist`. Only the packed package is cleaned, so its
// references stay incremental. Why chmod: npm links workspace bins at install time, before this
// build has written them, and tsc creates files without the executable bit.
import { chmodSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// The repo's own TypeScript, whatever PATH says (npm adds node_modules/.bin, other callers may not).
const tsc = createRequire(join(repo, 'package.json')).resolve('typescript/bin/tsc');

const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'));

/** Sets the executable bit on each existing file named by the package's `bin`. */
function chmodBins(dir) {
  const { bin } = readJson(join(dir, 'package.json'));
  const targets = typeof bin === 'string' ? [bin] : Object.values(bin ?? {});
  for (const target of targets) {
    const file = join(dir, target);
    if (existsSync(file)) chmodSync(file, 0o755);
  }
}

function build(dir) {
  // tsc's diagnostics go to stderr: `npm pack --json` runs this as prepack and prints its JSON on stdout.
  const result = spawnSync(process.execPath, [tsc, '-b', dir], { stdio: [0, 2, 2] });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

if (process.argv.includes('--package')) {
  const dir = process.cwd();
  rmSync(join(dir, 'dist'), { recursive: true, force: true });
  build(dir);
  chmodBins(dir);
} else {
  build(repo);
  for (const ws of readJson(join(repo, 'package.json')).workspaces) chmodBins(join(repo, ws));
}
