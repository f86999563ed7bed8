// Consumer and Pipeline on their own: lifecycle words (start = ready, bounded drain, close at
// once), retries on the session's clock, failure reporting, and positions across restarts.
import { AccessPolicy, ClosedError, ManualClock, Session, TimeoutError, deferred, type Logger } from '@xmppbus/core';
import { OrderCreated, waitFor } from '@xmppbus/testing';
import { memoryHub, type MemoryHub } from '@xmppbus/transport-memory';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryCheckpointStore } from './checkpoint-store.js';
import { PubSub } from './pubsub.js';
import { MemoryPubSubService } from './testing/memory-pubsub-service.js';
import type { EventMeta } from './types.js';

/** The in-memory XEP-0060 service serves any account, like a server's pubsub component. */
const openService = new AccessPolicy({ rules: [{ from: '*' }] });

let hub: MemoryHub;
let clock: ManualClock;
let service: MemoryPubSubService | undefined;
const sessions: Session[] = [];
const logged: { level: string; message: string }[] = [];
const logger: Logger = {
  error: (message) => logged.push({ level: 'error', message }),
  warn: (message) => logged.push({ level: 'warn', message }),
  info: () => undefined,
  debug: () => undefined,
};

function client(address: string): PubSub {
  const session = new Session({ transport: hub.connect(address), clock, logger });
  sessions.push(session);
  return new PubSub({ session, service: 'pubsub.test', timeout: 5_000 });
}
async function startService(): Promise<void> {
  service = new MemoryPubSubService(
    new Session({ transport: hub.connect('pubsub.test'), clock, access: openService }),
    {
      admins: ['svc-a.test'],
    },
  );
  await service.start();
}
const order = (orderId: string): { orderId: string; qty: number } => ({ orderId, qty: 1 });

beforeEach(() => {
  hub = memoryHub();
  clock = new ManualClock(1_000_000);
  logged.length = 0;
});
afterEach(async () => {
  for (const s of sessions.splice(0)) await s.close();
  await service?.close();
  service = undefined;
});

describe('Consumer lifecycle', () => {
  it('the constructor does nothing; start() is idempotent and means subscribed', async () => {
    await startService();
    const a = client('svc-a.test');
    await a.createNode('n');
    const b = client('svc-b.test');
    const sub = b.consume(OrderCreated, 'n', () => undefined);
    expect(sub.status).toBe('idle');
    expect(await b.subscriptions({ node: 'n' })).toEqual([]);
    const first = sub.start();
    expect(sub.start({ timeout: 1_000 })).not.toBe(undefined);
    await first;
    expect(sub.status).toBe('ready');
    expect((await b.subscriptions({ node: 'n' })).map((s) => s.jid)).toEqual(['svc-b.test']);
    await sub.close();
    await expect(sub.start()).rejects.toBeInstanceOf(ClosedError);
  });

  it('a setup failure that cannot be retried rejects start()', async () => {
    await startService();
    const b = client('svc-b.test');
    const sub = b.consume(OrderCreated, 'absent', () => undefined);
    await expect(sub.start()).rejects.toMatchObject({ condition: 'item-not-found', retryable: false });
    await sub.close();
  });

  it('a retryable setup failure is retried on the session clock until the service answers', async () => {
    const b = client('svc-b.test');
    const sub = b.consume(OrderCreated, 'n', () => undefined, { retry: { initialDelay: 1_000, jitter: 0 } });
    let ready = false;
    const started = sub.start().then(() => (ready = true));
    // Nobody serves pubsub.test yet: the subscription bounces (service-unavailable, retryable).
    await waitFor(() => logged.some((l) => l.level === 'error'), { what: 'the first failure' });
    expect(logged[0]!.message).toMatch(/consumer of 'n'/);
    await startService();
    const a = client('svc-a.test');
    await a.createNode('n');
    expect(ready).toBe(false);
    clock.advance(1_000);
    await started;
    expect(sub.status).toBe('ready');
    await sub.close();
  });

  it('drain() waits for the handlers in hand, bounded by its timeout on the session clock', async () => {
    await startService();
    const a = client('svc-a.test');
    await a.createNode('n');
    const b = client('svc-b.test');
    const gate = deferred<void>();
    const got: string[] = [];
    let running = 0;
    const sub = b.consume(OrderCreated, 'n', async (v) => {
      running++;
      await gate.promise;
      got.push(v.orderId);
    });
    await sub.start();
    await a.publish(OrderCreated, 'n', order('1'), { id: '1' });
    await waitFor(() => running === 1, { what: 'the handler running' });
    const timedOut = sub.drain({ timeout: 500 });
    expect(sub.status).toBe('draining');
    clock.advance(500);
    await expect(timedOut).rejects.toBeInstanceOf(TimeoutError);
    const drained = sub.drain({ timeout: 500 });
    gate.resolve();
    await drained;
    expect(got).toEqual(['1']);
    await sub.close();
  });

  it('close() is immediate with a handler stuck: its signal aborts, and a durable restart redoes the event', async () => {
    await startService();
    const a = client('svc-a.test');
    await a.createNode('n', { maxItems: 100 });
    const b = client('svc-b.test');
    const store = new MemoryCheckpointStore();
    const signals: AbortSignal[] = [];
    const got: string[] = [];
    const stuck = (v: { orderId: string }, m: EventMeta): Promise<void> => {
      if (v.orderId === '2') {
        signals.push(m.signal);
        return new Promise<void>(() => undefined); // never settles
      }
      got.push(v.orderId);
      return Promise.resolve();
    };
    let sub = b.consume(OrderCreated, 'n', stuck, { durable: 'd', store });
    await sub.start();
    await a.publish(OrderCreated, 'n', order('1'), { id: '1' });
    await a.publish(OrderCreated, 'n', order('2'), { id: '2' });
    await waitFor(() => signals.length === 1, { what: 'the stuck handler' });
    await sub.close();
    expect(signals[0]!.aborted).toBe(true);
    expect((await store.load('pubsub.test\u0000n\u0000d'))?.lastId).toBe('1');
    const again: string[] = [];
    sub = b.consume(OrderCreated, 'n', (v) => void again.push(v.orderId), { durable: 'd', store });
    await sub.start();
    await waitFor(() => again.length === 1, { what: 'the replayed event' });
    expect(again).toEqual(['2']);
    await sub.close();
  });

  it('a throwing handler is logged on the session logger and reported; the consumer goes on', async () => {
    await startService();
    const a = client('svc-a.test');
    await a.createNode('n');
    const b = client('svc-b.test');
    const errors: string[] = [];
    const sub = b.consume(
      OrderCreated,
      'n',
      (v) => {
        if (v.orderId === 'bad') throw new Error('boom');
      },
      { onError: (_e, meta) => errors.push(meta?.id ?? '?') },
    );
    await sub.start();
    await a.publish(OrderCreated, 'n', order('bad'), { id: 'bad' });
    await a.publish(OrderCreated, 'n', order('ok'), { id: 'ok' });
    await waitFor(() => sub.stats.handled === 1, { what: 'the next event' });
    expect(errors).toEqual(['bad']);
    expect(sub.stats.failed).toBe(1);
    expect(logged.filter((l) => l.level === 'error').map((l) => l.message)).toEqual([
      "pubsub: consumer of 'n' failed on 'bad': boom",
    ]);
    await sub.close();
  });

  it('the signal option closes the consumer; the client close closes the rest', async () => {
    await startService();
    const a = client('svc-a.test');
    await a.createNode('n');
    const b = client('svc-b.test');
    const ac = new AbortController();
    const s1 = b.consume(OrderCreated, 'n', () => undefined, { signal: ac.signal });
    const s2 = b.consume(OrderCreated, 'n', () => undefined, { jid: 'w2@svc-b.test' });
    await Promise.all([s1.start(), s2.start()]);
    ac.abort();
    await waitFor(() => s1.status === 'closed', { what: 's1 closed' });
    expect(s2.status).toBe('ready');
    await b.close();
    expect(s2.status).toBe('closed');
  });

  it('with concurrency > 1 the position advances over the longest completed prefix', async () => {
    await startService();
    const a = client('svc-a.test');
    await a.createNode('n', { maxItems: 100 });
    const b = client('svc-b.test');
    const store = new MemoryCheckpointStore();
    const gates = new Map(['1', '2', '3'].map((id) => [id, deferred<void>()]));
    let calls = 0;
    const sub = b.consume(
      OrderCreated,
      'n',
      (v) => {
        calls++;
        return gates.get(v.orderId)!.promise;
      },
      { durable: 'c', store, concurrency: 3 },
    );
    await sub.start();
    for (const id of ['1', '2', '3']) await a.publish(OrderCreated, 'n', order(id), { id });
    await waitFor(() => calls === 3, { what: 'three handlers running' });
    gates.get('2')!.resolve();
    gates.get('3')!.resolve();
    await waitFor(() => sub.stats.handled === 2, { what: '2 and 3 done' });
    expect((await store.load('pubsub.test\u0000n\u0000c'))?.lastId).not.toBe('3');
    gates.get('1')!.resolve();
    await sub.drain({ timeout: 1_000 });
    expect(sub.stats.handled).toBe(3);
    expect((await store.load('pubsub.test\u0000n\u0000c'))?.lastId).toBe('3');
    await sub.close();
  });
});
