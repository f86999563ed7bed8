import { IqRouter, StanzaError, errorReply, resultReply } from '@xmppbus/core';
import { memoryHub } from '@xmppbus/transport-memory';
import { describe, expect, it } from 'vitest';
import { PubSub } from './pubsub.js';

const NS_PUBSUB = 'http://jabber.org/protocol/pubsub';
const NS_PUBSUB_OWNER = 'http://jabber.org/protocol/pubsub#owner';

/** A pubsub service whose first `failures` node creations fail with the given text. */
function flakyService(failures: number, text: string) {
  const hub = memoryHub();
  const service = hub.connect('pubsub.test');
  const router = IqRouter.for(service);
  let creates = 0;
  router.handle(NS_PUBSUB_OWNER, 'pubsub', (iq) => {
    void service.send(errorReply(iq, new StanzaError({ condition: 'feature-not-implemented' })));
  });
  router.handle(NS_PUBSUB, 'pubsub', (iq) => {
    creates++;
    const reply =
      creates <= failures
        ? errorReply(iq, new StanzaError({ condition: 'internal-server-error', text }))
        : resultReply(iq);
    void service.send(reply);
  });
  const pubsub = new PubSub({ transport: hub.connect('svc.test'), service: 'pubsub.test' });
  return { pubsub, creates: () => creates };
}

describe('createNode on ejabberd-style transient failures', () => {
  it('retries a node creation aborted with "Database failure" (concurrent creations on ejabberd)', async () => {
    const { pubsub, creates } = flakyService(2, 'Database failure');
    await pubsub.createNode('n1', undefined, { timeout: 5_000 });
    expect(creates()).toBe(3);
  });

  it('gives up after four attempts, and never retries other internal errors', async () => {
    const persistent = flakyService(100, 'Database failure');
    await expect(persistent.pubsub.createNode('n1', undefined, { timeout: 5_000 })).rejects.toMatchObject({
      condition: 'internal-server-error',
    });
    expect(persistent.creates()).toBe(4);

    const other = flakyService(100, 'something else broke');
    await expect(other.pubsub.createNode('n1', undefined, { timeout: 5_000 })).rejects.toBeInstanceOf(StanzaError);
    expect(other.creates()).toBe(1);
  });
});
