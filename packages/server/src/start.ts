import { ConfigError } from '@xmppbus/core';

import { isServerProcess } from './detached.js';
import { EjabberdServer } from './ejabberd.js';
import { resolveOptions } from './options.js';
import { ProsodyServer } from './prosody.js';
import { readState, stateFile } from './state.js';
import type { ServerKind, StartServerOptions, XmppServer } from './types.js';

export const SERVER_KINDS: readonly ServerKind[] = ['prosody', 'ejabberd'];

/**
 * Starts Prosody (default) or ejabberd on 127.0.0.1 with a generated config: the given components,
 * secrets, pub/sub admins and accounts. As root, the server runs as its system user. Resolves when
 * a real component handshake works. Rejects with ServerNotInstalledError when the server is
 * missing (see `installServer`), ConfigError on bad options or a taken port.
 */
export async function startServer(options: StartServerOptions = {}): Promise<XmppServer> {
  const o = resolveOptions(options);
  if (o.detach) {
    const prev = readState(o.stateDir);
    if (prev && isServerProcess(prev))
      throw new ConfigError(
        `a ${prev.kind} server (pid ${prev.pid}) from ${stateFile(o.stateDir)} is running; stop it first (stopServer / xmppbus server stop)`,
      );
  }
  const server = o.kind === 'prosody' ? new ProsodyServer(o) : new EjabberdServer(o);
  return server.start();
}
