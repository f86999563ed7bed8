// Fails when a non-test source file under packages/*/src is over LIMIT lines, so no unit grows
// into a file nobody can hold in their head. Only unit tests (`*.test.ts`) are exempt; fixtures
// and helpers (e.g. src/testing/**) count like any other source.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const LIMIT = 600;
const SOURCE = /\.(?:[cm]?ts|[cm]?js)$/;
const EXEMPT = /\.test\.[cm]?ts$/;

const sizes = [];
for (const pkg of readdirSync('packages', { withFileTypes: true })) {
  if (!pkg.isDirectory()) continue;
  const src = join('packages', pkg.name, 'src');
  let entries;
  try {
    entries = readdirSync(src, { recursive: true, withFileTypes: true });
  } catch {
    continue; // a package without src/
  }
  for (const entry of entries) {
    if (!entry.isFile() || !SOURCE.test(entry.name) || EXEMPT.test(entry.name)) continue;
    const file = join(entry.parentPath ?? entry.path, entry.name);
    const text = readFileSync(file, 'utf8');
    const lines = text.length === 0 ? 0 : text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
    sizes.push({ file, lines });
  }
}
sizes.sort((a, b) => b.lines - a.lines || a.file.localeCompare(b.file));

const over = sizes.filter((s) => s.lines > LIMIT);
if (over.length > 0) {
  console.error(`file-size check: ${over.length} file(s) over ${LIMIT} lines (tests *.test.ts exempt):`);
  for (const { file, lines } of over) console.error(`  ${file} ${lines} lines (limit ${LIMIT})`);
  console.error('Split each into units with one job (see docs/testing.md, "Guards").');
  process.exit(1);
}
const largest = sizes[0];
console.log(
  largest
    ? `file-size check: largest ${largest.file} ${largest.lines} lines (limit ${LIMIT}, ${sizes.length} files)`
    : 'file-size check: no source files found',
);
