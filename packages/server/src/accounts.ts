/** Creating c2s accounts on a running server known only by its state (e.g. one `xmppbus server start --detach` runs). */
import { join } from 'node:path';

import { ConfigError } from '@xmppbus/core';

import { isServerProcess } from './detached.js';
import { registerInBand } from './ibr.js';
import { writeProsodyAccounts } from './prosody.js';
import { readState, stateFile, writeState } from './state.js';
import { isRoot, systemUser } from './system-users.js';
import type { AccountSpec, ServerState } from './types.js';

/**
 * Registers `accounts` on the server described by `target`: a state dir (its state file then
 * lists them too) or a `ServerState`. Fast for thousands (account files on Prosody, one XEP-0077
 * stream on ejabberd). Rejects with ConflictError when an account exists (on Prosody nothing is
 * written then; on ejabberd the others are created), ConfigError when the server is not running.
 */
export async function registerAccounts(
  target: string | ServerState,
  accounts: readonly AccountSpec[],
): Promise<ServerState> {
  const state = typeof target === 'string' ? readState(target) : target;
  if (!state) throw new ConfigError(`no server state in ${stateFile(String(target))}`);
  if (!isServerProcess(state)) throw new ConfigError(`the ${state.kind} server (pid ${state.pid}) is not running`);
  const domain = state.endpoints.domain;
  if (state.kind === 'prosody') {
    const user = isRoot() ? systemUser('prosody') : undefined;
    writeProsodyAccounts({ dataDir: join(state.dir, 'data'), domain, accounts, user, failIfExists: true });
  } else {
    const results = await registerInBand({
      port: state.endpoints.c2sPort,
      domain,
      users: accounts.map((a) => [a.user, a.password] as const),
      timeout: 10_000 + 20 * accounts.length,
    });
    const failed = results.find((r) => r !== undefined);
    if (failed) throw failed;
  }
  const next: ServerState = { ...state, accounts: [...state.accounts, ...accounts.map((a) => ({ ...a }))] };
  if (typeof target === 'string') writeState(target, next);
  return next;
}
