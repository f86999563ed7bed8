// Builds the workspace packages with `tsc -b`, and makes their bins executable and linked.
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
// build has written them (it skips missing files), and tsc creates files without the executable bit.
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// The repo's own TypeScript, whatever PATH says (npm adds node_modules/.bin, other callers may not).
const tsc = createRequire(join(repo, 'package.json')).resolve('typescript/bin/tsc');

const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'));

/** The package's bins as [command, file] pairs. */
function binsOf(dir) {
  const { name, bin } = readJson(join(dir, 'package.json'));
  if (typeof bin === 'string') return [[name.split('/').pop(), join(dir, bin)]];
  return Object.entries(bin ?? {}).map(([command, file]) => [command, join(dir, file)]);
}

/** Sets the executable bit on each existing file named by the package's `bin`. */
function chmodBins(dir) {
  for (const [, file] of binsOf(dir)) if (existsSync(file)) chmodSync(file, 0o755);
}

/**
 * Links each workspace bin into node_modules/.bin as npm would have: npm skips a bin whose file
 * does not exist yet, and on a fresh clone `npm ci` links before this build writes dist.
 * Symlinks only (npm makes command shims on Windows, where this leaves the bin unlinked).
 */
function linkBins(dir) {
  if (process.platform === 'win32') return;
  const binDir = join(repo, 'node_modules', '.bin');
  for (const [command, file] of binsOf(dir)) {
    const link = join(binDir, command);
    if (!existsSync(file) || lstatExists(link)) continue;
    mkdirSync(binDir, { recursive: true });
    // Through the package's node_modules link, like npm's own bin links.
    const { name } = readJson(join(dir, 'package.json'));
    symlinkSync(relative(binDir, join(repo, 'node_modules', name, relative(dir, file))), link);
  }
}

function lstatExists(path) {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
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
  for (const ws of readJson(join(repo, 'package.json')).workspaces) {
    chmodBins(join(repo, ws));
    linkBins(join(repo, ws));
  }
}
