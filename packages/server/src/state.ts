/** The state file of a detached server: `<stateDir>/server.json`, mode 0600 (it holds secrets). */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { ConfigError } from '@xmppbus/core';

import { STATE_FILE } from './options.js';
import type { ServerState } from './types.js';

export function stateFile(stateDir: string): string {
  return join(stateDir, STATE_FILE);
}

/** Writes the state atomically (rename), with a `.gitignore` so secrets are never committed. */
export function writeState(stateDir: string, state: ServerState): void {
  mkdirSync(stateDir, { recursive: true }); // default mode: the server's own dir may be inside
  // Each file goes in by rename: a link left in its place is replaced, never written through.
  const put = (file: string, text: string): void => {
    const tmp = `${file}.${process.pid}.tmp`;
    rmSync(tmp, { force: true });
    writeFileSync(tmp, text, { mode: 0o600, flag: 'wx' });
    renameSync(tmp, file);
  };
  put(join(stateDir, '.gitignore'), '# written by @xmppbus/server: secrets and server data\n*\n');
  put(stateFile(stateDir), `${JSON.stringify(state, null, 2)}\n`);
}

/** The state, or undefined when there is no state file; ConfigError when it is unreadable. */
export function readState(stateDir: string): ServerState | undefined {
  let text: string;
  try {
    text = readFileSync(stateFile(stateDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError(`cannot read ${stateFile(stateDir)}: ${(err as Error).message}`, { cause: err });
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${stateFile(stateDir)} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const s = data as Partial<ServerState> | null;
  if (s?.version !== 1 || typeof s.pid !== 'number' || typeof s.dir !== 'string' || !s.endpoints)
    throw new ConfigError(`${stateFile(stateDir)} is not an @xmppbus/server state file (version 1)`);
  return s as ServerState;
}

/** Removes the state file if it still describes the server `pid` (a newer start keeps its own). */
export function removeState(stateDir: string, pid: number): void {
  try {
    if (readState(stateDir)?.pid !== pid) return;
  } catch {
    // unreadable: ours to remove
  }
  rmSync(stateFile(stateDir), { force: true });
}
