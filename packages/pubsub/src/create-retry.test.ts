import { AccessPolicy, ManualClock, Session, StanzaError, errorReply, resultReply } from '@xmppbus/core';
import { memoryHub } from '@xmppbus/transport-memory';
import { describe, expect, it } from 'vitest';
import { NS_PUBSUB, NS_PUBSUB_OWNER } from './ns.js';
import { PubSub } from './pubsub.js';

/** The in-memory XEP-0060 service serves any account, like a server's pubsub component. */
const openService = new AccessPolicy({ rules: [{ from: '*' }] });

/** A pubsub service whose first `failures` node creations fail with the given text. */
async function flakyService(failures: number, text: string) {
  const hub = memoryHub();
  const clock = new ManualClock();
  const service = new Session({ transport: hub.connect('pubsub.test'), clock, access: openService });
  let creates = 0;
  service.router.handle(NS_PUBSUB_OWNER, 'pubsub', (iq) => {
    void service.send(errorReply(iq, new StanzaError({ condition: 'feature-not-implemented' })));
  });
  service.router.handle(NS_PUBSUB, 'pubsub', (iq) => {
    creates++;
    const reply =
      creates <= failures
        ? errorReply(iq, new StanzaError({ condition: 'internal-server-error', text }))
        : resultReply(iq);
    void service.send(reply);
  });
  await service.start();
  const pubsub = new PubSub({
    session: new Session({ transport: hub.connect('svc.test'), clock }),
    service: 'pubsub.test',
  });
  return { pubsub, clock, creates: () => creates };
}

/** Settles `p`, moving the manual clock past each retry pause (no real waiting). */
async function settle<T>(p: Promise<T>, clock: ManualClock): Promise<T> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  while (!done) {
    await new Promise((r) => setImmediate(r));
    clock.advance(50);
  }
  return p;
}

describe('createNode on ejabberd-style transient failures', () => {
  it('retries a node creation aborted with "Database failure" (concurrent creations on ejabberd)', async () => {
    const { pubsub, clock, creates } = await flakyService(2, 'Database failure');
    await settle(pubsub.createNode('n1'), clock);
    expect(creates()).toBe(3);
  });

  it('gives up after four attempts, and never retries other internal errors', async () => {
    const persistent = await flakyService(100, 'Database failure');
    await expect(settle(persistent.pubsub.createNode('n1'), persistent.clock)).rejects.toMatchObject({
      condition: 'internal-server-error',
    });
    expect(persistent.creates()).toBe(4);

    const other = await flakyService(100, 'something else broke');
    await expect(settle(other.pubsub.createNode('n1'), other.clock)).rejects.toBeInstanceOf(StanzaError);
    expect(other.creates()).toBe(1);
  });
});
