import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { isServerProcess, stopServer } from './detached.js';
import { missingBinaries } from './install.js';
import { startServer } from './start.js';
import { writeState } from './state.js';
import type { ServerState } from './types.js';

function stateFor(dir: string, pid: number, ephemeral: boolean): ServerState {
  return {
    version: 1,
    kind: 'prosody',
    pid,
    endpoints: {
      host: '127.0.0.1',
      domain: 'localhost',
      pubsubService: 'pubsub.localhost',
      c2sPort: 1,
      componentPort: 2,
      componentTlsPort: undefined,
      c2sService: 'xmpp://127.0.0.1:1',
      componentService: 'xmpp://127.0.0.1:2',
    },
    componentSecret: 's',
    components: [],
    accounts: [],
    dir,
    ephemeral,
    configFile: join(dir, 'prosody.cfg.lua'),
    logFile: join(dir, 'prosody.log'),
    caFile: undefined,
    startedAt: '2026-01-01T00:00:00.000Z',
  };
}

describe('a state file that was not written by a server of ours (e.g. committed to a cloned repo)', () => {
  const dirs: string[] = [];
  const tempDir = (prefix: string): string => {
    const d = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('names no process by a dir its cwd is not in', () => {
    // This very process is alive, and its command line mentions '/' and the repo: neither makes it "the server".
    expect(isServerProcess(stateFor('/', process.pid, false))).toBe(false);
    expect(isServerProcess(stateFor('relative/dir', process.pid, false))).toBe(false);
    expect(isServerProcess(stateFor(tempDir('xmppbus-unit-other-'), process.pid, false))).toBe(false);
    expect(isServerProcess(stateFor(process.cwd(), process.pid, false))).toBe(true);
  });

  it('stop signals nothing and deletes no dir outside its own temp dirs', async () => {
    const stateDir = tempDir('xmppbus-unit-state-');
    const victim = tempDir('not-a-server-');
    writeState(stateDir, stateFor(victim, process.pid, true));
    const result = await stopServer(stateDir);
    expect(result.stopped).toBe(false);
    expect(existsSync(victim)).toBe(true);
    expect(existsSync(join(stateDir, 'server.json'))).toBe(false);
  });

  it('stop still removes the temp dir a detached server made for itself', async () => {
    const stateDir = tempDir('xmppbus-unit-state-');
    const own = tempDir('xmppbus-detached-prosody-');
    writeState(stateDir, stateFor(own, 2 ** 22 + 1, true)); // above pid_max: never running
    await stopServer(stateDir);
    expect(existsSync(own)).toBe(false);
  });

  it('writeState replaces links in the state dir instead of writing through them', () => {
    const stateDir = tempDir('xmppbus-unit-state-');
    const victim = join(tempDir('not-a-server-'), 'file');
    writeFileSync(victim, 'keep\n');
    symlinkSync(victim, join(stateDir, '.gitignore'));
    symlinkSync(victim, join(stateDir, 'server.json'));
    writeState(stateDir, stateFor(tempDir('xmppbus-unit-dir-'), 1, false));
    expect(readFileSync(victim, 'utf8')).toBe('keep\n');
    expect(lstatSync(join(stateDir, '.gitignore')).isSymbolicLink()).toBe(false);
    expect(lstatSync(join(stateDir, 'server.json')).mode & 0o777).toBe(0o600);
  });

  it.runIf(missingBinaries('prosody').length === 0)(
    'a detached start refuses a server dir that is a link',
    async () => {
      const stateDir = tempDir('xmppbus-unit-state-');
      const elsewhere = tempDir('not-a-server-');
      mkdirSync(stateDir, { recursive: true });
      symlinkSync(elsewhere, join(stateDir, 'prosody'));
      await expect(startServer({ detach: true, stateDir })).rejects.toThrow(/is a symbolic link/);
      expect(existsSync(join(elsewhere, 'prosody.cfg.lua'))).toBe(false);
    },
  );
});
