import { EjabberdServer } from './ejabberd.js';
import { ProsodyServer } from './prosody.js';
import type { ServerKind, ServerOptions, XmppServer } from './types.js';

export const SERVER_KINDS: readonly ServerKind[] = ['prosody', 'ejabberd'];

/** Starts Prosody on free loopback ports with a fresh temp dir; resolves when a component handshake works. */
export function startProsody(options: ServerOptions = {}): Promise<XmppServer> {
  return new ProsodyServer(options).start();
}

/** Starts ejabberd on free loopback ports with a fresh temp dir; resolves when a component handshake works. */
export function startEjabberd(options: ServerOptions = {}): Promise<XmppServer> {
  return new EjabberdServer(options).start();
}

export function startServer(kind: ServerKind, options: ServerOptions = {}): Promise<XmppServer> {
  return kind === 'prosody' ? startProsody(options) : startEjabberd(options);
}
