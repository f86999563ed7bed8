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
    // The leader (m1) leaves gracefully (drain, then close); a new member joins.
    expect(m1.leader).toBe(true);
    await m1.drain({ timeout: 5_000 });
    await m1.close();
    await waitFor(() => m2.leader, { what: 'm2 to take over' });
    const m3 = member('svc-e.test', by('svc-e.test'));
    await m3.start();
    await publish(30);
    await waitFor(() => handledBy.size === 60, { what: '60 handled' });
    await m2.drain({ timeout: 5_000 });
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
    // (A reference id is random base64url: letters, digits, '-' and '_'.)
    expect(errors.some((e) => /handler of group 'workers' failed \(ref [\w-]+\): boom/.test(e))).toBe(true);
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

  /** Waits for `cond` while the manual clock runs (election pauses, heartbeats, bounds). */
  async function until(cond: () => boolean, what: string): Promise<void> {
    for (let i = 0; !cond(); i++) {
      if (i > 2_000) throw new Error(`${what}: not reached`);
      await new Promise((r) => setImmediate(r));
      clock.advance(50);
    }
  }
  /** Awaits `p` while the manual clock runs. */
  async function settled<T>(p: Promise<T>, what: string): Promise<T> {
    let done = false;
    const tracked = p.finally(() => (done = true));
    tracked.catch(() => undefined);
    await until(() => done, what);
    return tracked;
  }
  /** A member recording what it handles; its handler waits for `gate` when there is one. */
  function recording(address: string, handled: string[], gate?: Promise<void>): Consumer<typeof OrderCreated> {
    return member(address, async (v) => {
      handled.push(`${address}:${v.orderId}`);
      await gate;
    });
  }
  /** Publishes until `who` is handling one event: the leader round-robins over itself and the members. */
  async function publishUntilHandledBy(who: string, handled: string[]): Promise<string> {
    for (;;) {
      const [id] = await publish(1);
      await until(() => handled.some((h) => h.endsWith(`:${id!}`)), `${id!} handled`);
      if (handled.includes(`${who}:${id!}`)) return id!;
    }
  }

  it('a member does not handle again an event it handled when a new leader redelivers it', async () => {
    const handled: string[] = [];
    const gate = deferred<void>();
    const m1 = recording('svc-b.test', handled);
    await m1.start();
    const m2 = recording('svc-c.test', handled, gate.promise);
    await m2.start();
    // m2 is handling an event; the leader has not had its answer yet when it closes abruptly.
    const id = await publishUntilHandledBy('svc-c.test', handled);
    await settled(m1.close(), 'm1 closed'); // at once: the dispatch is cut short, so id is not in the saved position
    gate.resolve(); // m2 finishes it; its answer reaches nobody
    // m2 leads next and catches up from the saved position: id comes again, to m2 itself.
    await until(() => m2.leader, 'm2 to lead');
    const [next] = await publish(1);
    await until(() => handled.includes(`svc-c.test:${next!}`), 'the next event');
    expect(handled.filter((h) => h.endsWith(`:${id}`))).toEqual([`svc-c.test:${id}`]);
    await until(() => m2.stats.duplicates === 1, 'the redelivery skipped');
    await m2.close();
  });

  it('a leader that drains hands over cleanly: acknowledged and saved before it leaves', async () => {
    const handled: string[] = [];
    const gate = deferred<void>();
    const m1 = recording('svc-b.test', handled);
    await m1.start();
    const m2 = recording('svc-c.test', handled, gate.promise);
    await m2.start();
    const m3 = recording('svc-d.test', handled);
    await m3.start();
    const id = await publishUntilHandledBy('svc-c.test', handled);
    const drained = m1.drain({ timeout: 5_000 }); // waits for m2's answer and the checkpoint write
    gate.resolve();
    await settled(drained, 'm1 drained');
    await settled(m1.close(), 'm1 closed');
    // Only m3 is left: had the position missed id, m3 would handle it on catch-up.
    await settled(m2.drain({ timeout: 5_000 }), 'm2 drained');
    await settled(m2.close(), 'm2 closed');
    await until(() => m3.leader, 'm3 to lead');
    const [next] = await publish(1);
    await until(() => handled.includes(`svc-d.test:${next!}`), 'the next event');
    expect(handled.filter((h) => h.endsWith(`:${id}`))).toEqual([`svc-c.test:${id}`]);
    await m3.close();
  });

  it('an abrupt close of the leader is at-least-once: the next leader redoes what was not acknowledged', async () => {
    const handled: string[] = [];
    const gate = deferred<void>();
    const m1 = recording('svc-b.test', handled);
    await m1.start();
    const m2 = recording('svc-c.test', handled, gate.promise);
    await m2.start();
    const m3 = recording('svc-d.test', handled);
    await m3.start();
    const id = await publishUntilHandledBy('svc-c.test', handled);
    const m2drained = m2.drain({ timeout: 5_000 }); // m2 takes no new work, nor the leadership
    await settled(m1.close(), 'm1 closed'); // no drain: the dispatch is cut short
    await until(() => m3.leader, 'm3 to lead');
    await until(() => handled.includes(`svc-d.test:${id}`), 'the redelivery');
    gate.resolve();
    await settled(m2drained, 'm2 drained');
    await settled(m2.close(), 'm2 closed');
    expect(handled.filter((h) => h.endsWith(`:${id}`))).toEqual([`svc-c.test:${id}`, `svc-d.test:${id}`]);
    await m3.close();
  });

  it('a delivered handler cut short by close is not acknowledged as handled: the leader gives it to another member', async () => {
    const handled: string[] = [];
    const m1 = member('svc-b.test', (v) => void handled.push(`svc-b.test:${v.orderId}`));
    await m1.start();
    const m2 = member('svc-c.test', (v, meta) => {
      handled.push(`svc-c.test:${v.orderId}`);
      return new Promise<void>((_, reject) => meta.signal.addEventListener('abort', () => reject(meta.signal.reason)));
    });
    await m2.start();
    const id = await publishUntilHandledBy('svc-c.test', handled);
    await settled(m2.close(), 'm2 closed'); // the handler sees its signal abort and rejects
    await until(() => handled.includes(`svc-b.test:${id}`), 'the leader to handle it');
    expect(m2.stats.failed).toBe(0);
    expect(errors).toEqual([]);
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
