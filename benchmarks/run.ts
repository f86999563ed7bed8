// `npm run bench -- <suite> [more suites]`: runs benchmarks/<suite>.ts for each name given.
import { readdirSync } from 'node:fs';

const available = readdirSync(new URL('.', import.meta.url))
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts')
  .map((f) => f.slice(0, -3));
const wanted = process.argv.slice(2);
if (wanted.length === 0) {
  process.stderr.write(`usage: npm run bench -- <${available.join('|')}>\n`);
  process.exit(2);
}
for (const name of wanted) {
  if (!available.includes(name)) {
    process.stderr.write(`unknown benchmark '${name}' (have: ${available.join(', ')})\n`);
    process.exit(2);
  }
  await import(`./${name}.ts`);
}
