import { SERVER_KINDS, startServer as startLocalServer } from '@xmppbus/server';

import type { ServerKind, ServerOptions, XmppServer } from './types.js';

export { SERVER_KINDS };

/** The harness's default components: svc-a … svc-p.localhost. */
export const DEFAULT_COMPONENTS: readonly string[] = Array.from(
  { length: 16 },
  (_, i) => `svc-${String.fromCharCode(97 + i)}.localhost`,
);

/** Starts a server on free loopback ports with a fresh temp dir; resolves when a component handshake works. */
export function startServer(kind: ServerKind, options: ServerOptions = {}): Promise<XmppServer> {
  return startLocalServer({
    kind,
    components: [...(options.components ?? DEFAULT_COMPONENTS)],
    ...(options.admins ? { pubsubAdmins: options.admins } : {}),
    accounts: (options.users ?? []).map(([user, password]) => ({ user, password })),
    ...(options.pubsubStorage ? { pubsubStorage: options.pubsubStorage } : {}),
    ...(options.startTimeout !== undefined ? { startTimeout: options.startTimeout } : {}),
    ...(options.tls ? { tls: true } : {}),
  });
}

/** Starts Prosody on free loopback ports with a fresh temp dir; resolves when a component handshake works. */
export function startProsody(options: ServerOptions = {}): Promise<XmppServer> {
  return startServer('prosody', options);
}

/** Starts ejabberd on free loopback ports with a fresh temp dir; resolves when a component handshake works. */
export function startEjabberd(options: ServerOptions = {}): Promise<XmppServer> {
  return startServer('ejabberd', options);
}
