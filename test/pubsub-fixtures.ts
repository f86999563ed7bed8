// Helpers shared by the pubsub integration tests (test/pubsub*.test.ts).
import { Session } from '@xmppbus/core';
import { PubSub } from '@xmppbus/pubsub';
import type { XmppServer } from '@xmppbus/testing';
import { componentTransport } from '@xmppbus/transport-component';
import { afterEach } from 'vitest';

/**
 * Returns `connect(server, domain)`: a started PubSub client on its own session over a
 * reconnecting component connection. Registers an `afterEach` that closes every session the
 * test opened (its consumers and the connection with it).
 */
export function pubsubClients(timeout: number): (srv: XmppServer, domain: string) => Promise<PubSub> {
  const open: Session[] = [];
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close().catch(() => undefined);
  });
  return async (srv, domain) => {
    const transport = await componentTransport({
      service: srv.componentService(),
      domain,
      password: srv.componentSecret,
      reconnect: { initialDelay: 100, maxDelay: 500 },
    });
    const session = new Session({ transport });
    open.push(session);
    const pubsub = new PubSub({ session, service: srv.pubsubService, timeout });
    await pubsub.start({ timeout });
    return pubsub;
  };
}
