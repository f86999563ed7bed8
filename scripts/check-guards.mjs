// Runs every code guard, one after the other, and fails if any failed, so one failing guard
// does not hide the others' reports. Each guard can also be run alone (see docs/testing.md).
import { spawnSync } from 'node:child_process';

const GUARDS = ['check-cycles.mjs', 'check-file-size.mjs', 'check-readme-code.mjs'];
const failed = GUARDS.filter(
  (guard) => spawnSync(process.execPath, [`scripts/${guard}`], { stdio: 'inherit' }).status !== 0,
);
if (failed.length > 0) {
  console.error(`guards failed: ${failed.join(', ')}`);
  process.exit(1);
}
