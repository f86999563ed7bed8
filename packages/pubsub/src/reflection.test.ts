// Pub/sub event contracts are reflected (docs/protocol.md §6): consumed ones while the consumer
// lives, published ones once published, each with its node and service.
import { AccessPolicy, Session, fetchSchemas, type EventDescriptor } from '@xmppbus/core';
import { payloadFromDescriptor, toXml } from '@xmppbus/schema';
import { OrderCreated } from '@xmppbus/testing';
import { memoryHub, type MemoryHub } from '@xmppbus/transport-memory';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PubSub } from './pubsub.js';
import { MemoryPubSubService } from './testing/memory-pubsub-service.js';

let hub: MemoryHub;
const sessions: Session[] = [];
let service: MemoryPubSubService;

beforeEach(async () => {
  hub = memoryHub();
  service = new MemoryPubSubService(
    new Session({ transport: hub.connect('pubsub.test'), access: new AccessPolicy({ rules: [{ from: '*' }] }) }),
    { admins: ['svc-a.test'] },
  );
  await service.start();
});
afterEach(async () => {
  for (const s of sessions.splice(0)) await s.close();
  await service.close();
});

function session(address: string): Session {
  const s = new Session({ transport: hub.connect(address) });
  sessions.push(s);
  return s;
}

describe('event contracts in schema reflection', () => {
  it('lists what a session publishes and consumes, and forgets a closed consumer', async () => {
    const a = new PubSub({ session: session('svc-a.test'), service: 'pubsub.test' });
    await a.start();
    await a.createNode('orders');
    await a.publish(OrderCreated, 'orders', { orderId: 'o1', qty: 1 });
    await a.publish(OrderCreated, 'orders', { orderId: 'o2', qty: 1 }); // once per (contract, node)
    const consumer = a.consume(OrderCreated, 'orders', () => undefined);
    await consumer.start();

    const peer = session('svc-b.test');
    await peer.start();
    const events = (await fetchSchemas(peer, 'svc-a.test', { kind: 'event' })) as EventDescriptor[];
    expect(events.map((e) => `${e.role} ${e.service ?? ''} ${e.node ?? ''}`).sort()).toEqual([
      'consume pubsub.test orders',
      'publish pubsub.test orders',
    ]);
    // The reflected schema maps exactly as the original contract.
    const rebuilt = payloadFromDescriptor(events[0]!);
    expect(toXml(rebuilt, { orderId: 'o3', qty: 2 })).toBe(toXml(OrderCreated, { orderId: 'o3', qty: 2 }));

    await consumer.close();
    const after = (await fetchSchemas(peer, 'svc-a.test', { kind: 'event' })) as EventDescriptor[];
    expect(after.map((e) => e.role)).toEqual(['publish']);
  });

  it('marks a contract published in batches with the wrapper namespace', async () => {
    const a = new PubSub({ session: session('svc-a.test'), service: 'pubsub.test' });
    await a.start();
    await a.createNode('orders');
    await a.publish(OrderCreated, 'orders', { orderId: 'o1', qty: 1 });
    const batched = a.batchPublisher(OrderCreated, 'orders');
    batched.send({ orderId: 'o2', qty: 1 });
    await batched.flush();

    const peer = session('svc-b.test');
    await peer.start();
    const events = (await fetchSchemas(peer, 'svc-a.test', { kind: 'event' })) as EventDescriptor[];
    expect(events.map((e) => `${e.role} ${e.node ?? ''} ${e.batch ?? 'single'}`).sort()).toEqual([
      'publish orders single',
      'publish orders urn:xmppbus:events:batch:1',
    ]);
  });
});
