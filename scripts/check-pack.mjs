// Fails when a package would not install and type-check on its own once published:
// - an import in its built dist/*.js (runtime) or dist/*.d.ts (types) names a package that is
//   not in its dependencies or peerDependencies (for types: the package itself when it ships
//   types, else its @types/* package; `node:*` needs @types/node; never an optional peer);
// - a published package depends on a private one (@xmppbus/testing);
// - the publishing fields are missing: prepack build, `files` without build info and
//   declaration maps, publishConfig.access, LICENSE, the "source" export condition first.
// Reads the emitted dist, so it runs after a build (`npm ci` builds through `prepare`).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import ts from 'typescript';

const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'));
const root = readJson('package.json');
const license = readFileSync('LICENSE', 'utf8');
const pkgs = root.workspaces.map((dir) => ({ dir, json: readJson(`${dir}/package.json`) }));
const privateNames = new Set(pkgs.filter((p) => p.json.private).map((p) => p.json.name));
const builtins = new Set(builtinModules);
const problems = [];

/** Module specifiers a file imports: declarations, `import('x')` (type imports too), `/// <reference types>`. */
function specifiers(text) {
  const info = ts.preProcessFile(text, true, true);
  return [...info.importedFiles.map((f) => f.fileName), ...info.typeReferenceDirectives.map((d) => d.fileName)];
}

function* files(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else yield path;
  }
}

/** 'a/b/c' → 'a', '@s/a/b' → '@s/a'; undefined for relative and builtin specifiers. */
function packageOf(spec) {
  if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('node:') || builtins.has(spec)) return undefined;
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** Whether an installed package ships its own types (else a consumer needs its @types package). */
function shipsTypes(name) {
  const manifest = join('node_modules', name, 'package.json');
  if (!existsSync(manifest)) return true; // unknown here: don't guess
  const json = readJson(manifest);
  const exportsText = JSON.stringify(json.exports ?? {});
  return (
    Boolean(json.types ?? json.typings) ||
    exportsText.includes('"types"') ||
    existsSync(join('node_modules', name, 'index.d.ts'))
  );
}

const typesPackage = (name) => `@types/${name.startsWith('@') ? name.slice(1).replace('/', '__') : name}`;

for (const { dir, json } of pkgs) {
  const declared = new Set([...Object.keys(json.dependencies ?? {}), ...Object.keys(json.peerDependencies ?? {})]);
  const need = (dep, why) => {
    if (dep !== json.name && !declared.has(dep)) problems.push(`${json.name}: ${why} needs "${dep}" in dependencies`);
  };
  if (!json.scripts?.prepack) problems.push(`${json.name}: no "prepack" script (the tarball would have no dist)`);
  const fileList = json.files ?? [];
  for (const entry of ['dist', '!dist/**/*.tsbuildinfo', '!dist/**/*.d.ts.map'])
    if (!fileList.includes(entry)) problems.push(`${json.name}: "files" lacks "${entry}"`);
  if (!existsSync(join(dir, 'LICENSE')) || readFileSync(join(dir, 'LICENSE'), 'utf8') !== license)
    problems.push(`${dir}/LICENSE is missing or differs from the root LICENSE`);
  for (const [sub, target] of Object.entries(json.exports ?? {})) {
    const keys = typeof target === 'object' && target !== null ? Object.keys(target) : [];
    if (keys.join() !== 'source,types,default')
      problems.push(`${json.name}: exports["${sub}"] conditions are [${keys}], want source, types, default`);
  }
  if (json.private) continue;
  if (json.publishConfig?.access !== 'public') problems.push(`${json.name}: publishConfig.access must be "public"`);
  for (const dep of [...Object.keys(json.dependencies ?? {}), ...Object.keys(json.peerDependencies ?? {})])
    if (privateNames.has(dep)) problems.push(`${json.name}: depends on private ${dep}, which is never published`);

  const dist = join(dir, 'dist');
  if (!existsSync(dist)) {
    problems.push(`${dir}/dist is missing: build first (npm run build)`);
    continue;
  }
  for (const file of files(dist)) {
    const isTypes = file.endsWith('.d.ts');
    if (!isTypes && !file.endsWith('.js')) continue;
    const text = readFileSync(file, 'utf8');
    const local = file.slice(dir.length + 1);
    if (isTypes && /\bfrom\s*['"]node:|<reference\s+types="node"|\bBuffer\b|\bNodeJS\./.test(text))
      need('@types/node', `${local} (Node types)`);
    for (const spec of specifiers(text)) {
      const name = spec === 'node' ? '@types/node' : packageOf(spec);
      if (name === undefined) continue;
      need(name, `${local} imports '${spec}'`);
      // An optional peer may be absent: its types in a public d.ts would break those consumers.
      if (isTypes && json.peerDependenciesMeta?.[name]?.optional)
        problems.push(`${json.name}: ${local} imports optional peer '${name}' (absent for some consumers)`);
      if (isTypes && !name.startsWith('@xmppbus/') && !shipsTypes(name))
        need(typesPackage(name), `${local} (types of '${name}')`);
    }
  }
}
if (problems.length > 0) {
  console.error([...new Set(problems)].join('\n'));
  process.exit(1);
}
console.log(`pack ok: ${pkgs.length - privateNames.size} publishable packages, ${privateNames.size} private`);
