/**
 * A TCP relay on 127.0.0.1 standing for the network between two federated servers: each server's
 * outgoing s2s is routed to the relay, which forwards to the peer's s2s port. Cutting it closes
 * every relayed connection and the listener (new connections are refused, as with a network
 * that is down or a firewall that rejects) without touching either server; STARTTLS passes
 * through untouched.
 */
import { connect, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';

export interface LinkProxy {
  /** Where the servers connect. */
  readonly port: number;
  /** Whether it accepts connections. */
  readonly up: boolean;
  /** Connections relayed so far. */
  readonly accepted: number;
  /** Closes every relayed connection and stops listening; idempotent. */
  cut(): Promise<void>;
  /** Listens again on the same port; idempotent. */
  restore(): Promise<void>;
}

/** Relays 127.0.0.1:`port` (free when 0) to 127.0.0.1:`target`. */
export async function startLinkProxy(target: number, port = 0): Promise<LinkProxy> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let bound = port;
  let accepted = 0;

  const relay = (inbound: Socket): void => {
    accepted++;
    inbound.setNoDelay(true);
    const outbound = connect({ host: '127.0.0.1', port: target, noDelay: true });
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
      // Either side failing ends both: the peer being down looks like a refused s2s connection.
      s.once('error', () => undefined);
    }
    inbound.pipe(outbound);
    outbound.pipe(inbound);
    inbound.once('close', () => outbound.destroy());
    outbound.once('close', () => inbound.destroy());
  };

  const listen = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const srv = createServer(relay);
      srv.once('error', reject);
      srv.listen({ host: '127.0.0.1', port: bound }, () => {
        srv.off('error', reject);
        const addr = srv.address();
        if (typeof addr === 'object' && addr) bound = addr.port;
        srv.unref();
        server = srv;
        resolve();
      });
    });

  await listen();
  return {
    get port() {
      return bound;
    },
    get up() {
      return server !== undefined;
    },
    get accepted() {
      return accepted;
    },
    async cut() {
      const srv = server;
      server = undefined;
      for (const s of sockets) s.destroy();
      sockets.clear();
      if (srv) await new Promise<void>((r) => srv.close(() => r()));
    },
    async restore() {
      if (!server) await listen();
    },
  };
}
