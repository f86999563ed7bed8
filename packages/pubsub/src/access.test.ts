// The session's one access policy applied to pub/sub events: when the service names an item's
// publisher (XEP-0060 `<item publisher='…'>`), a consumer hands the event to its handler only if
// `session.access` lets that publisher reach the event contract; events without a publisher are
// accepted (the node's publish model, enforced by the server, decides who may publish).
import { AccessPolicy, ManualClock, Session, type Logger } from '@xmppbus/core';
import { OrderCreated, waitFor } from '@xmppbus/testing';
import { memoryHub, type MemoryHub } from '@xmppbus/transport-memory';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryCheckpointStore } from './checkpoint-store.js';
import { PubSub } from './pubsub.js';
import { MemoryPubSubService, type MemoryPubSubServiceOptions } from './testing/memory-pubsub-service.js';
import type { EventMeta } from './types.js';

const openService = new AccessPolicy({ rules: [{ from: '*' }] });

let hub: MemoryHub;
let clock: ManualClock;
let service: MemoryPubSubService | undefined;
const sessions: Session[] = [];
const warnings: string[] = [];
const logger: Logger = {
  error: () => undefined,
  warn: (message) => void warnings.push(message),
  info: () => undefined,
  debug: () => undefined,
};

function client(address: string, access?: AccessPolicy): PubSub {
  const session = new Session({ transport: hub.connect(address), clock, logger, ...(access ? { access } : {}) });
  sessions.push(session);
  return new PubSub({ session, service: 'pubsub.test', timeout: 5_000 });
}

async function setup(options: MemoryPubSubServiceOptions = {}): Promise<{ a: PubSub; alice: PubSub }> {
  service = new MemoryPubSubService(
    new Session({ transport: hub.connect('pubsub.test'), clock, access: openService }),
    { admins: ['svc-a.test'], ...options },
  );
  await service.start();
  const a = client('svc-a.test');
  await a.createNode('n');
  await a.setAffiliations('n', { 'alice@test': 'publisher' });
  return { a, alice: client('alice@test/phone') };
}

const order = (orderId: string): { orderId: string; qty: number } => ({ orderId, qty: 1 });

beforeEach(() => {
  hub = memoryHub();
  clock = new ManualClock(1_000_000);
  warnings.length = 0;
});
afterEach(async () => {
  for (const s of sessions.splice(0)) await s.close();
  await service?.close();
  service = undefined;
});

describe('pub/sub events and the access policy', () => {
  it('skips events whose named publisher the policy denies, counts them and warns once per publisher', async () => {
    const { a, alice } = await setup({ exposePublisher: true });
    const b = client('svc-b.test'); // the secure default: services of the same domain yes, accounts no
    const got: { id: string; publisher: string | undefined }[] = [];
    const sub = b.consume(OrderCreated, 'n', (_v, m: EventMeta) => void got.push({ id: m.id, publisher: m.publisher }));
    await sub.start();
    await alice.publish(OrderCreated, 'n', order('x1'), { id: 'x1' });
    await alice.publish(OrderCreated, 'n', order('x2'), { id: 'x2' });
    await a.publish(OrderCreated, 'n', order('o1'), { id: 'o1' });
    await waitFor(() => got.length === 1, { what: "svc-a's event" });
    expect(got).toEqual([{ id: 'o1', publisher: 'svc-a.test' }]);
    const access = sessions.find((s) => s.address === 'svc-b.test')!.access;
    expect(access.denied).toBe(2);
    expect(sub.stats).toMatchObject({ handled: 1, invalid: 0, failed: 0 });
    const denied = warnings.filter((w) => w.includes('alice@test'));
    expect(denied).toHaveLength(1);
    expect(denied[0]).toMatch(/node 'n'.*alice@test.*access policy/);
  });

  it('a rule for the contract lets an account publish to the consumer', async () => {
    const { alice } = await setup({ exposePublisher: true });
    const policy = new AccessPolicy({ rules: [{ from: 'alice@test', to: `${OrderCreated.ns}#${OrderCreated.name}` }] });
    const b = client('svc-b.test', policy);
    const got: string[] = [];
    const sub = b.consume(OrderCreated, 'n', (v) => void got.push(v.orderId));
    await sub.start();
    await alice.publish(OrderCreated, 'n', order('x1'), { id: 'x1' });
    await waitFor(() => got.length === 1, { what: "alice's event" });
    expect(policy.denied).toBe(0);
    expect(warnings).toEqual([]);
  });

  it('events without publisher information are accepted (the node publish model decides)', async () => {
    const { alice } = await setup(); // Prosody's default: expose_publisher = false
    const b = client('svc-b.test');
    const got: { id: string; publisher: string | undefined }[] = [];
    const sub = b.consume(OrderCreated, 'n', (_v, m) => void got.push({ id: m.id, publisher: m.publisher }));
    await sub.start();
    await alice.publish(OrderCreated, 'n', order('x1'), { id: 'x1' });
    await waitFor(() => got.length === 1, { what: "alice's event" });
    expect(got).toEqual([{ id: 'x1', publisher: undefined }]);
  });

  it('applies to replayed items too: a durable consumer skips them and moves past them', async () => {
    const { a, alice } = await setup();
    // ejabberd's way: the node's `pubsub#itemreply` = publisher names publishers.
    service!.nodes.get('n')!.config.set('pubsub#itemreply', 'publisher');
    await alice.publish(OrderCreated, 'n', order('x1'), { id: 'x1' });
    await a.publish(OrderCreated, 'n', order('o1'), { id: 'o1' });
    await alice.publish(OrderCreated, 'n', order('x2'), { id: 'x2' });
    const b = client('svc-b.test');
    const store = new MemoryCheckpointStore();
    const got: string[] = [];
    const sub = b.consume(OrderCreated, 'n', (v, m) => void got.push(`${v.orderId}${m.replay ? '*' : ''}`), {
      durable: 'd',
      store,
      startFrom: 'earliest',
    });
    await sub.start();
    await waitFor(() => got.length === 1, { what: 'the replayed event' });
    expect(got).toEqual(['o1*']);
    await sub.close();
    // The position moved past the skipped items: nothing is replayed again.
    expect((await store.load(`pubsub.test\u0000n\u0000d`))?.lastId).toBe('x2');
  });
});
