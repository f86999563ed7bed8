// Competing consumers on their own: one member per event, leader hand-over on close and after a
// crash (heartbeats on a manual clock), failure policy, the consumer's own signal, bounded close/drain.
import { AccessPolicy, ConflictError, ManualClock, Session, TimeoutError, deferred, type Logger } from '@xmppbus/core';
import { OrderCreated, waitFor } from '@xmppbus/testing';
import { memoryHub, type MemoryHub } from '@xmppbus/transport-memory';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Consumer } from './consumer.js';
import { PubSub } from './pubsub.js';
import { MemoryPubSubService } from './testing/memory-pubsub-service.js';
import type { EventHandler, EventMeta } from './types.js';

/** The in-memory XEP-0060 service serves any account, like a server's pubsub component. */
const openService = new AccessPolicy({ rules: [{ from: '*' }] });

type Order = { orderId: string; qty: number };
let hub: MemoryHub;
let clock: ManualClock;
let service: MemoryPubSubService;
let a: PubSub;
const sessions: Session[] = [];
const errors: string[] = [];
const logger: Logger = {
  error: (m) => errors.push(m),
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
};
const HEARTBEAT = 1_000;

function client(address: string): PubSub {
  const session = new Session({ transport: hub.connect(address), clock, logger });
  sessions.push(session);
  return new PubSub({ session, service: 'pubsub.test' });
}
function member(address: string, handler: EventHandler<Order>): Consumer<typeof OrderCreated> {
  return client(address).consume(OrderCreated, 'jobs', handler, { group: 'workers', heartbeatMs: HEARTBEAT });
}
let seq = 0;
async function publish(count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++, seq++) {
    ids.push(await a.publish(OrderCreated, 'jobs', { orderId: `j${seq}`, qty: 1 }, { id: `j${seq}` }));
  }
  return ids;
}

beforeEach(async () => {
  hub = memoryHub();
  clock = new ManualClock(1_000_000);
  errors.length = 0;
  seq = 0;
  service = new MemoryPubSubService(
    new Session({ transport: hub.connect('pubsub.test'), clock, access: openService }),
    {
      admins: ['svc-a.test', 'svc-b.test', 'svc-c.test', 'svc-d.test', 'svc-e.test'],
    },
  );
  await service.start();
  a = client('svc-a.test');
  await a.createNode('jobs', { maxItems: 1000 });
});
afterEach(async () => {
  // A member whose link is down closes within its bounds, which run on the manual clock.
  let done = false;
  const closing = Promise.all(sessions.splice(0).map((s) => s.close())).finally(() => (done = true));
  while (!done) {
    await new Promise((r) => setImmediate(r));
    clock.advance(1_000);
  }
  await closing;
  await service.close();
});

describe('competing consumers', () => {
  it('exactly one live member handles each event while members join and leave', async () => {
    const handledBy = new Map<string, string[]>();
    const by = (addr: string) => (v: Order) =>
      void handledBy.set(v.orderId, [...(handledBy.get(v.orderId) ?? []), addr]);
    const m1 = member('svc-b.test', by('svc-b.test'));
    await m1.start();
    const m2 = member('svc-c.test', by('svc-c.test'));
    await m2.start(); // joined the leader during its election
    await publish(30);
    await waitFor(() => handledBy.size === 30, { what: '30 handled' });
    expect(new Set([...handledBy.values()].flat())).toEqual(new Set(['svc-b.test', 'svc-c.test']));
    // The leader (m1) leaves gracefully; a new member joins.
    expect(m1.leader).toBe(true);
    await m1.close();
    await waitFor(() => m2.leader, { what: 'm2 to take over' });
    const m3 = member('svc-e.test', by('svc-e.test'));
    await m3.start();
    await publish(30);
    await waitFor(() => handledBy.size === 60, { what: '60 handled' });
    await m2.close();
    await waitFor(() => m3.leader, { what: 'm3 to take over' });
    await publish(10);
    await waitFor(() => handledBy.size === 70, { what: '70 handled' });
    expect([...handledBy].filter(([, who]) => who.length !== 1)).toEqual([]);
    await m3.close();
  });

  it('a crashed leader is replaced after a missed heartbeat; the new one resumes from the stored position', async () => {
    const handled: string[] = [];
    const m1 = member('svc-b.test', (v) => void handled.push(`b:${v.orderId}`));
    await m1.start();
    const m2 = member('svc-c.test', (v) => void handled.push(`c:${v.orderId}`));
    await m2.start();
    await publish(4);
    await waitFor(() => handled.length === 4, { what: '4 handled' });
    clock.advance(200); // the leader's rate-limited checkpoint write goes out
    await waitFor(
      () =>
        [...service.nodes.get('_xmppbus/groups/workers/jobs')!.items].some(
          (i) => i.id === 'checkpoint-1' && i.payload.toString().includes('j3'),
        ),
      {
        what: 'the checkpoint',
      },
    );
    hub.disconnect('svc-b.test'); // the leader's link dies; it never says goodbye
    await publish(2); // notified to a subscriber that is away: bounced
    clock.advance(HEARTBEAT); // m2's heartbeat fails → election
    await waitFor(() => m2.leader, { what: 'm2 to lead' });
    await waitFor(() => handled.length === 6, { what: 'the two missed events' });
    expect(handled.slice(4).sort()).toEqual(['c:j4', 'c:j5']);
    expect(new Set(handled).size).toBe(6);
  });

  it('a failing handler is answered by the callee policy, logged once, and not redelivered', async () => {
    const calls: string[] = [];
    const handler = (addr: string) => (v: Order) => {
      calls.push(`${addr}:${v.orderId}`);
      throw new Error('boom');
    };
    const m1 = member('svc-b.test', handler('b'));
    await m1.start();
    const m2 = member('svc-c.test', handler('c'));
    await m2.start();
    await publish(2); // round robin: one each
    await waitFor(() => m1.stats.failed + m2.stats.failed === 2, { what: 'two failures' });
    expect(calls.map((c) => c.split(':')[1]).sort()).toEqual(['j0', 'j1']);
    // The member's failure went through calleeError (a reference id in the log line).
    expect(errors.some((e) => /handler of group 'workers' failed \(ref \w+\): boom/.test(e))).toBe(true);
  });

  it('deliveries carry the member consumer’s own signal; close does not wait for a stuck handler', async () => {
    const m1 = member('svc-b.test', () => undefined);
    await m1.start();
    const metas: EventMeta[] = [];
    const never = deferred<void>();
    const m2 = member('svc-c.test', (_v, meta) => {
      metas.push(meta);
      return never.promise;
    });
    await m2.start();
    await publish(2);
    await waitFor(() => metas.length === 1, { what: 'a delivery to m2' });
    expect(metas[0]!.signal.aborted).toBe(false);
    const drain = m2.drain({ timeout: 5_000 });
    clock.advance(5_000);
    await expect(drain).rejects.toBeInstanceOf(TimeoutError);
    await m2.close();
    expect(metas[0]!.signal.aborted).toBe(true);
    await m1.close();
  });

  it('one member of a (group, node) per client', async () => {
    const b = client('svc-b.test');
    const m1 = b.consume(OrderCreated, 'jobs', () => undefined, { group: 'workers' });
    await m1.start();
    const m2 = b.consume(OrderCreated, 'jobs', () => undefined, { group: 'workers' });
    await expect(m2.start()).rejects.toBeInstanceOf(ConflictError);
    await m2.close();
    await m1.close();
  });
});
