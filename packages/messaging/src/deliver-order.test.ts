/**
 * QoS 2 order on the sending side: a message becomes `received` in the same step as its
 * `assured` attempt ends. In between, the dispatcher took it for a message whose `deliver` is
 * in flight and let the `deliver`s of later messages overtake it (seen on ejabberd as QoS 2
 * first deliveries out of send order).
 */
import { Type } from '@sinclair/typebox';
import { ManualClock, Session, deferred } from '@xmppbus/core';
import { event } from '@xmppbus/schema';
import { memoryHub } from '@xmppbus/transport-memory';
import { afterEach, expect, it } from 'vitest';
import { memoryStore } from './memory-store.js';
import { Messenger } from './messenger.js';
import type { MessageStore } from './store.js';

const Note = event({ ns: 'urn:test:order:1', name: 'note', schema: Type.Object({ n: Type.Integer() }) });

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A memory store whose `markReceived(id)` settles only when the test releases it. */
function gatedStore(id: string): { store: MessageStore; reached: Promise<void>; release: () => void } {
  const inner = memoryStore();
  const reached = deferred<void>();
  const gate = deferred<void>();
  const store = new Proxy(inner, {
    get(target, key) {
      if (key === 'markReceived') {
        return (msgId: string): Promise<void> => {
          if (msgId !== id) return target.markReceived(msgId);
          void target.markReceived(msgId);
          reached.resolve();
          return gate.promise;
        };
      }
      const v: unknown = Reflect.get(target, key, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { store, reached: reached.promise, release: () => gate.resolve() };
}

it('a later deliver never overtakes a message whose received is being recorded', async () => {
  const hub = memoryHub();
  const a = hub.connect('svc-a.test');
  const b = hub.connect('svc-b.test');
  const clock = new ManualClock(0); // no timer fires: no timeout, no backoff
  const sa = new Session({ transport: a, clock });
  const sb = new Session({ transport: b, clock });
  cleanups.push(
    () => sb.close(),
    () => sa.close(),
  );

  const gated = gatedStore('m1');
  const sender = new Messenger({ session: sa, store: gated.store, batch: { enabled: false } });
  const receiver = new Messenger({ session: sb });
  const seen: number[] = [];
  const both = deferred<void>();
  receiver.handle(Note, (v) => {
    seen.push(v.n);
    if (seen.length === 2) both.resolve();
  });
  await receiver.start();
  await sender.start();

  // m1 and m2 go out together; m1's `received` is held in the store write, m2's is recorded.
  await sender.enqueue(Note, 'svc-b.test', { n: 1 }, { qos: 2, id: 'm1' });
  await sender.send(Note, 'svc-b.test', { n: 2 }, { qos: 2, id: 'm2' });
  await gated.reached;
  expect(seen).toEqual([]); // m2's deliver waits for m1 (still not received)

  // m1's write completes, and in the same turn the link blips (any pump of the peer would do):
  // the pump must not run between m1 turning `received` and m1's attempt ending.
  gated.release();
  hub.disconnect('svc-a.test');
  hub.reconnect('svc-a.test');

  await both.promise;
  await sender.flush();
  expect(seen).toEqual([1, 2]);
});
