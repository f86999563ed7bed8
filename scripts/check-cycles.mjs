// Fails on any import cycle among the source files of packages/*/src, counting runtime imports
// AND type-only imports (`import type`, `export type … from`, imports used only as types).
// `@xmppbus/*` imports resolve through tsconfig.test.json ("source" condition) to
// packages/*/src, so a cycle across packages is caught too. Dynamic `import()` counts as well.
// On failure each cycle is printed with its edges; an edge that only carries types is marked
// `(type)`, so a cycle with no such edge is a runtime cycle (module evaluation order matters).
// A single import can be exempted with a `// @dpdm-ignore` comment before it: don't.
import { parseCircular, parseDependencyTree } from 'dpdm';

const ENTRIES = ['packages/*/src/**/*.ts'];
const started = Date.now();

/** @param {boolean} runtimeOnly  true: drop imports that only carry types (TS transpile elision) */
const parse = (runtimeOnly) =>
  parseDependencyTree(ENTRIES, {
    tsconfig: 'tsconfig.test.json',
    context: process.cwd(),
    transform: runtimeOnly,
    onProgress: () => {},
  });

const edgesOf = (tree) => {
  const edges = new Set();
  for (const [file, deps] of Object.entries(tree)) for (const dep of deps ?? []) edges.add(`${file}\0${dep.id}`);
  return edges;
};

const all = await parse(false);
const files = Object.keys(all).filter((file) => /^packages\/[^/]+\/src\//.test(file)).length;
const cycles = parseCircular(all);
const scope = 'runtime and type-only imports';

if (cycles.length === 0) {
  console.log(`cycle check: 0 cycles in ${files} files (packages/*/src; ${scope}; ${Date.now() - started} ms)`);
} else {
  // Only on failure: a second pass without type-only imports tells runtime cycles apart.
  const runtime = edgesOf(await parse(true));
  let runtimeCycles = 0;
  const lines = cycles.map((cycle) => {
    let typeOnly = false;
    const parts = cycle.map((file, i) => {
      const next = cycle[(i + 1) % cycle.length];
      const isRuntime = runtime.has(`${file}\0${next}`);
      if (!isRuntime) typeOnly = true;
      return `${file} ->${isRuntime ? '' : ' (type)'}`;
    });
    if (!typeOnly) runtimeCycles++;
    return `  ${typeOnly ? '[type-only]' : '[runtime]  '} ${parts.join(' ')} ${cycle[0]}`;
  });
  console.error(
    `cycle check: ${cycles.length} cycle(s) in ${files} files (packages/*/src; ${scope}), ` +
      `${runtimeCycles} of them at runtime:`,
  );
  console.error(lines.join('\n'));
  console.error('Break each cycle (move the shared piece into its own module); "(type)" marks a type-only edge.');
  process.exit(1);
}
