// Helpers shared by the pubsub integration tests (test/pubsub*.test.ts).
import type { Transport } from '@xmppbus/core';
import { PubSub } from '@xmppbus/pubsub';
import type { XmppServer } from '@xmppbus/testing';
import { componentTransport } from '@xmppbus/transport-component';
import { afterEach } from 'vitest';

/**
 * Returns `connect(server, domain)`: a PubSub client over a reconnecting component connection.
 * Registers an `afterEach` that closes every connection the test opened.
 */
export function pubsubClients(timeout: number): (srv: XmppServer, domain: string) => Promise<PubSub> {
  const open: Transport[] = [];
  afterEach(async () => {
    for (const t of open.splice(0)) await t.close().catch(() => undefined);
  });
  return async (srv, domain) => {
    const transport = await componentTransport({
      service: srv.componentService(),
      domain,
      password: srv.componentSecret,
      reconnect: { initialDelay: 100, maxDelay: 500 },
    });
    open.push(transport);
    return new PubSub({ transport, service: srv.pubsubService, timeout });
  };
}
