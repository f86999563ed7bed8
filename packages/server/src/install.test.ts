import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { installCommand, missingBinaries, ServerNotInstalledError, which } from './install.js';
import { reachableBy } from './system-users.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'server-install-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('finding the servers', () => {
  it('which() finds executables in PATH only', () => {
    writeFileSync(join(dir, 'prosody'), '#!/bin/sh\n', { mode: 0o755 });
    writeFileSync(join(dir, 'erl'), 'not executable', { mode: 0o644 });
    expect(which('prosody', `/nonexistent:${dir}`)).toBe(join(dir, 'prosody'));
    expect(which('erl', dir)).toBeUndefined();
    expect(missingBinaries('prosody', dir)).not.toContain('prosody');
    expect(missingBinaries('prosody', '/nonexistent')).toContain('prosody');
    expect(missingBinaries('ejabberd', '/nonexistent')).toContain('erl');
  });

  it('ServerNotInstalledError is an ERR_CONFIG that says how to install', () => {
    const err = new ServerNotInstalledError('ejabberd', 'erl', 'no apt-get here');
    expect(err).toMatchObject({ code: 'ERR_CONFIG', kind: 'ejabberd', retryable: false });
    expect(err.message).toContain('ejabberd is not installed (erl not found; no apt-get here)');
    expect(err.message).toContain(installCommand('ejabberd'));
    expect(installCommand('prosody')).toMatch(/apt-get install -y --no-install-recommends prosody util-linux$/);
  });
});

describe('reachableBy', () => {
  const stranger = { uid: 4_000_001, gid: 4_000_001, home: '/' };
  it("needs search permission on every existing parent for the server's user", () => {
    const open = join(dir, 'open');
    const closed = join(dir, 'closed');
    mkdirSync(open, { mode: 0o755 });
    mkdirSync(closed, { mode: 0o700 });
    chmodSync(dir, 0o755);
    expect(reachableBy(join(open, 'state', 'prosody'), stranger)).toBe(true); // missing dirs: the parent decides
    expect(reachableBy(join(closed, 'state', 'prosody'), stranger)).toBe(false);
    chmodSync(dir, 0o700); // mkdtemp's mode
    expect(reachableBy(join(open, 'x'), stranger)).toBe(false);
  });
});
