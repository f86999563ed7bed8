import { lstatSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { chownTree } from './prosody.js';

describe('chownTree', () => {
  // Only root may give files away: the case it exists for (a server started as root).
  it.runIf(process.getuid?.() === 0)('hands the tree to the user but never follows a link out of it', () => {
    const base = mkdtempSync(join(tmpdir(), 'xmppbus-unit-chown-'));
    try {
      const outside = join(base, 'shadow');
      writeFileSync(outside, 'root only\n', { mode: 0o600 });
      const dir = join(base, 'server');
      mkdirSync(join(dir, 'data'), { recursive: true });
      writeFileSync(join(dir, 'data', 'a.dat'), 'x');
      symlinkSync(outside, join(dir, 'data', 'planted')); // what the server's user could leave behind
      symlinkSync(base, join(dir, 'up'));
      const nobody = { uid: 65534, gid: 65534, home: '/nonexistent' };
      chownTree(dir, nobody);
      expect(statSync(join(dir, 'data', 'a.dat')).uid).toBe(65534);
      expect(lstatSync(join(dir, 'data', 'planted')).uid).toBe(65534);
      expect(statSync(outside).uid).toBe(0);
      expect(statSync(base).uid).toBe(0);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
