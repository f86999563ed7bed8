import { lstatSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';

import { writeFresh } from './fresh-file.js';

it('writeFresh replaces a link left at the path instead of writing through it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xmppbus-unit-fresh-'));
  try {
    const target = join(dir, 'shadow');
    writeFileSync(target, 'keep\n');
    const path = join(dir, 'prosody.cfg.lua');
    symlinkSync(target, path);
    writeFresh(path, 'config\n', 0o600);
    expect(readFileSync(target, 'utf8')).toBe('keep\n');
    expect(lstatSync(path).isSymbolicLink()).toBe(false);
    expect(readFileSync(path, 'utf8')).toBe('config\n');
    expect(lstatSync(path).mode & 0o777).toBe(0o600);
    writeFresh(path, 'again\n'); // an existing file of ours is replaced too
    expect(readFileSync(path, 'utf8')).toBe('again\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
