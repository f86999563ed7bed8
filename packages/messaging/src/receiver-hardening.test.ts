/**
 * Issue 9, the receiving side: one access policy per contract, byte budgets, the QoS 2 pending
 * TTL and per-sender caps, fair scheduling over senders, and poison messages.
 */
import { Type } from '@sinclair/typebox';
import {
  AccessPolicy,
  ConfigError,
  ManualClock,
  PayloadTooLargeError,
  Session,
  StanzaError,
  deferred,
  parseXml,
  xml,
  type Element,
  type IqCaller,
} from '@xmppbus/core';
import { event } from '@xmppbus/schema';
import { waitFor } from '@xmppbus/testing';
import { memoryHub, type MemoryHub, type MemoryTransport } from '@xmppbus/transport-memory';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore } from './memory-store.js';
import { Messenger } from './messenger.js';
import type { MessengerOptions } from './options.js';
import { classify } from './qos-sender.js';
import { NS_BATCH } from './wire.js';

const Note = event({
  ns: 'urn:test:notes:1',
  name: 'note',
  schema: Type.Object({ n: Type.Integer(), text: Type.String() }),
});
const Other = event({ ns: 'urn:test:other:1', name: 'other', schema: Type.Object({ n: Type.Integer() }) });

const fast = { initialDelay: 5, maxDelay: 40, factor: 2, jitter: 0.1 };
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const RECEIVER = 'svc-b.test';

interface Rig {
  hub: MemoryHub;
  transport: MemoryTransport;
  receiver: Messenger;
  access: AccessPolicy;
}

async function rig(
  options: Partial<Omit<MessengerOptions, 'session'>> = {},
  access = new AccessPolicy(),
  clock?: ManualClock,
): Promise<Rig> {
  const hub = memoryHub();
  const t = hub.connect(RECEIVER);
  const session = new Session({ transport: t, access, ...(clock ? { clock } : {}) });
  const receiver = new Messenger({ session, retry: fast, ...options });
  cleanups.push(async () => {
    await session.close();
    await t.close();
  });
  await receiver.start();
  return { hub, transport: t, receiver, access };
}

/** A raw IQ caller connected as `address`. */
async function callerAs(hub: MemoryHub, address: string): Promise<IqCaller> {
  const t = hub.connect(address);
  const session = new Session({ transport: t });
  cleanups.push(async () => {
    await session.close();
    await t.close();
  });
  await session.start();
  return session.caller;
}

async function messengerAs(
  hub: MemoryHub,
  address: string,
  options: Partial<MessengerOptions> = {},
): Promise<Messenger> {
  const t = hub.connect(address);
  const session = new Session({ transport: t });
  const m = new Messenger({ session, retry: fast, attemptTimeout: 2000, ...options });
  cleanups.push(async () => {
    await session.close();
    await t.close();
  });
  await m.start();
  return m;
}

const note = (n: number, text = 't'): string =>
  `<message><note xmlns='urn:test:notes:1'><n>${n}</n><text>${text}</text></note></message>`;
const acknowledged = (id: string, inner = note(1)): Element =>
  parseXml(
    `<iq type='set' to='${RECEIVER}' id='${id}'><acknowledged xmlns='urn:xmpp:qos'>${inner}</acknowledged></iq>`,
  );
const assured = (msgId: string, inner = note(1)): Element =>
  parseXml(
    `<iq type='set' to='${RECEIVER}' id='${msgId}'><assured xmlns='urn:xmpp:qos' msgId='${msgId}'>${inner}</assured></iq>`,
  );
const deliver = (msgId: string): Element =>
  parseXml(`<iq type='set' to='${RECEIVER}' id='${msgId}.d'><deliver xmlns='urn:xmpp:qos' msgId='${msgId}'/></iq>`);

async function refusal(p: Promise<unknown>): Promise<StanzaError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StanzaError);
  return err as StanzaError;
}

describe('access: one policy, per contract (finding 9)', () => {
  it('refuses a user account by default at every QoS, and a rule allows it for one contract only', async () => {
    const { hub, receiver, access } = await rig();
    const seen: number[] = [];
    receiver.handle(Note, (v) => void seen.push(v.n));
    receiver.handle(Other, (v) => void seen.push(100 + v.n));
    const user = await callerAs(hub, 'agent@test/device');

    expect(await refusal(user.request(acknowledged('u1')))).toMatchObject({ condition: 'forbidden', type: 'auth' });
    expect(await refusal(user.request(assured('u2')))).toMatchObject({ condition: 'forbidden', type: 'auth' });
    const batch = await user.request(
      parseXml(
        `<iq type='set' to='${RECEIVER}' id='ub'><batch xmlns='${NS_BATCH}'>` +
          `<acknowledged xmlns='urn:xmpp:qos' msgId='b1'>${note(3)}</acknowledged></batch></iq>`,
      ),
    );
    const item = batch.getChild('batch', NS_BATCH)!.getChild('error')!;
    expect(StanzaError.fromElement(item)).toMatchObject({ condition: 'forbidden', type: 'auth' });
    // QoS 0: dropped and counted.
    const t = hub.connect('agent@test/plain');
    cleanups.push(() => t.close());
    await t.send(parseXml(`<message to='${RECEIVER}' from='agent@test/plain'>${note(4).slice(9, -10)}</message>`));
    await waitFor(() => access.denied === 4);
    expect(seen).toEqual([]);
    expect(receiver.counters.refused).toBe(4);

    // A rule for the one contract: Note is allowed, Other is still refused.
    const {
      hub: hub2,
      receiver: r2,
      access: a2,
    } = await rig({}, new AccessPolicy({ rules: [{ from: '*@test', to: 'urn:test:notes:1#note' }] }));
    const got: string[] = [];
    r2.handle(Note, (v) => void got.push(`note ${v.n}`));
    r2.handle(Other, (v) => void got.push(`other ${v.n}`));
    const user2 = await callerAs(hub2, 'agent@test/device');
    await user2.request(acknowledged('a1', note(7)));
    const other = `<message><other xmlns='urn:test:other:1'><n>8</n></other></message>`;
    expect(await refusal(user2.request(acknowledged('a2', other)))).toMatchObject({ condition: 'forbidden' });
    expect(got).toEqual(['note 7']);
    expect(a2.denied).toBe(1);
  });
});

describe('byte budgets (finding 1)', () => {
  it('a QoS 1 sender over its queue budget gets resource-constraint/wait; usage stays within and returns to 0', async () => {
    const limits = { perSenderBytes: 4096, perSenderCount: 4, totalBytes: 64 * 1024, totalCount: 64 };
    const { hub, receiver } = await rig({ receive: { queue: limits } });
    const gate = deferred<void>();
    let handled = 0;
    receiver.handle(Note, async () => {
      await gate.promise;
      handled++;
    });
    const flood = await callerAs(hub, 'flood.test');
    const big = 'x'.repeat(1500);
    const calls = Array.from({ length: 10 }, (_, i) =>
      flood.request(acknowledged(`f${i}`, note(i, big))).then(
        () => 'ok',
        (e: unknown) => e as StanzaError,
      ),
    );
    await waitFor(() => receiver.counters.refused >= 8);
    const usage = receiver.inboundUsage.queue;
    expect(usage.bytes).toBeLessThanOrEqual(limits.perSenderBytes);
    expect(usage.count).toBeLessThanOrEqual(limits.perSenderCount);
    gate.resolve();
    const outcomes = await Promise.all(calls);
    const refused = outcomes.filter((o): o is StanzaError => o instanceof StanzaError);
    expect(refused.length).toBe(10 - handled);
    expect(handled).toBeGreaterThan(0);
    for (const e of refused) expect(e).toMatchObject({ condition: 'resource-constraint', type: 'wait' });
    expect(receiver.inboundUsage.queue).toEqual({ bytes: 0, count: 0 });
  });

  it('QoS 2 pending is accounted by bytes; a stanza larger than the whole budget is refused for good', async () => {
    const { hub, receiver } = await rig({ receive: { maxPendingBytesPerSender: 2048, maxPendingBytesTotal: 8192 } });
    receiver.handle(Note, () => undefined);
    const svc = await callerAs(hub, 'svc-a.test');
    await svc.request(assured('p1', note(1, 'y'.repeat(600))));
    expect(receiver.inboundUsage.pending.bytes).toBeGreaterThan(600);
    const huge = await refusal(svc.request(assured('p2', note(2, 'z'.repeat(3000)))));
    expect(huge).toMatchObject({ condition: 'resource-constraint', type: 'cancel' });
    await svc.request(deliver('p1'));
    expect(receiver.inboundUsage.pending).toEqual({ bytes: 0, count: 0 });
  });
});

describe('QoS 2 pending: per-sender caps, eviction, TTL (finding 4)', () => {
  it("one sender's undelivered flood blocks neither another sender nor itself for long; entries expire on pendingTtl", async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const { hub, receiver } = await rig(
      { receive: { maxPendingPerSender: 5, maxPendingTotal: 12, pendingTtl: '1h' } },
      new AccessPolicy({ rules: [{ from: '*@test', to: 'urn:test:notes:1' }] }),
      clock,
    );
    const seen: string[] = [];
    receiver.handle(Note, (v, ctx) => void seen.push(`${ctx.from.split('/')[0]}:${v.n}`));
    // Two throwaway accounts fill their caps with `assured` and never `deliver`.
    const hostiles = [await callerAs(hub, 'h1@test/x'), await callerAs(hub, 'h2@test/x')];
    for (const [k, h] of hostiles.entries()) for (let i = 0; i < 5; i++) await h.request(assured(`h${k}-${i}`));
    // Over its cap with young entries: resource-constraint, nothing evicted yet.
    expect(await refusal(hostiles[0]!.request(assured('h0-5')))).toMatchObject({ condition: 'resource-constraint' });
    expect(receiver.pendingInbound.get('h1@test')).toBe(5);

    // A legitimate service still gets its QoS 2 messages through, exactly once.
    const legit = await callerAs(hub, 'svc-a.test');
    for (let i = 0; i < 2; i++) {
      await legit.request(assured(`L${i}`, note(i)));
      await legit.request(deliver(`L${i}`));
    }
    expect(seen).toEqual(['svc-a.test:0', 'svc-a.test:1']);

    // A minute later the flooding sender's oldest entry makes room for its newest (its own loss only).
    clock.advance(61_000);
    await hostiles[0]!.request(assured('h0-5'));
    expect(receiver.inboundUsage.evicted).toBe(1);
    expect(receiver.pendingInbound.get('h1@test')).toBe(5);
    expect(await refusal(hostiles[0]!.request(deliver('h0-0')))).toMatchObject({ condition: 'item-not-found' });

    // After pendingTtl every undelivered entry is gone (the dedupe memory of delivered ids stays).
    // The prune runs every pendingTtl/24 on the session clock: step through the hour.
    for (let step = 0; step < 26; step++) {
      clock.advance(150_000);
      await new Promise<void>((r) => setImmediate(r)); // let the prune's store calls settle
    }
    expect(receiver.pendingInbound.size).toBe(0);
    expect(receiver.inboundUsage.pending).toEqual({ bytes: 0, count: 0 });
    expect(receiver.inboundUsage.expired).toBe(10);
    expect(await refusal(hostiles[1]!.request(deliver('h1-0')))).toMatchObject({ condition: 'item-not-found' });
    await legit.request(deliver('L0')); // delivered long ago: answered, not run again
    expect(seen).toHaveLength(2);
  });

  it('a full total evicts the stale entries of the largest sender, not the newcomer', async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const { hub, receiver } = await rig(
      { receive: { maxPendingPerSender: 10, maxPendingTotal: 10 } },
      AccessPolicy.allowAll(),
      clock,
    );
    receiver.handle(Note, () => undefined);
    const hog = await callerAs(hub, 'hog.test');
    for (let i = 0; i < 10; i++) await hog.request(assured(`g${i}`));
    const legit = await callerAs(hub, 'svc-a.test');
    expect(await refusal(legit.request(assured('L0')))).toMatchObject({
      condition: 'resource-constraint',
      type: 'wait',
    });
    clock.advance(61_000);
    await legit.request(assured('L0'));
    await legit.request(deliver('L0'));
    expect(receiver.pendingInbound.get('hog.test')).toBe(9);
    expect(receiver.counters.received).toBe(1);
  });
});

describe('fairness (finding 4, deliverable 2)', () => {
  it('while one sender floods, every message of another is handled within 2 dispatches each', async () => {
    const { hub, receiver } = await rig({ receive: { concurrency: 1 } });
    const gate = deferred<void>();
    const log: string[] = [];
    receiver.handle(Note, async (_v, ctx) => {
      log.push(ctx.from);
      await gate.promise;
    });
    const flood = await callerAs(hub, 'flood.test');
    const legit = await callerAs(hub, 'svc-a.test');
    const floods = Array.from({ length: 100 }, (_, i) => flood.request(acknowledged(`f${i}`, note(i))));
    await waitFor(() => receiver.inboundUsage.queue.count === 100);
    const legits = Array.from({ length: 5 }, (_, i) => legit.request(acknowledged(`l${i}`, note(i))));
    await waitFor(() => receiver.inboundUsage.queue.count === 105);
    gate.resolve();
    await Promise.all(legits);
    // The flood's first message was already running; then the two senders alternate.
    const lastLegit = log.lastIndexOf('svc-a.test');
    expect(log.filter((f) => f === 'svc-a.test')).toHaveLength(5);
    expect(lastLegit).toBeLessThanOrEqual(1 + 2 * 5);
    await Promise.all(floods);
    expect(log).toHaveLength(105);
  });
});

describe('poison messages (finding 6)', () => {
  it('an assured payload that cannot be stored is refused for good (cancel), never wait', async () => {
    const { hub, transport, receiver } = await rig();
    receiver.handle(Note, () => undefined);
    // The link cannot carry a 10k-level tree (the memory hub serialises what it routes), so the
    // envelope is handed to the receiver's transport as if it had been parsed from the wire.
    const peer = hub.connect('svc-a.test');
    cleanups.push(() => peer.close());
    const replies: Element[] = [];
    peer.onStanza((st) => void replies.push(st));
    const iq = assured('deep').attr('from', 'svc-a.test');
    let cur = iq.getChild('assured')!.getChild('message')!.getChild('note')!;
    for (let i = 0; i < 10_000; i++) {
      const c = xml('x');
      cur.children.push(c);
      cur = c;
    }
    transport._receive(iq);
    await waitFor(() => replies.length === 1);
    const err = StanzaError.fromElement(replies[0]!);
    expect(err).toMatchObject({ condition: 'not-acceptable', type: 'cancel' });
    expect(err.retryable).toBe(false);
    expect(classify(err)).toBe('reject'); // the sender dead-letters it at once
    expect(receiver.inboundUsage.pending).toEqual({ bytes: 0, count: 0 });
  });

  it('a store that keeps failing: the sender dead-letters the message with the reason after retry.attempts', async () => {
    class FailingStore extends MemoryStore {
      override inboxPut(): never {
        throw new Error('disk on fire');
      }
    }
    const hub = memoryHub();
    const t = hub.connect(RECEIVER);
    const session = new Session({ transport: t });
    const receiver = new Messenger({ session, store: new FailingStore() });
    cleanups.push(() => session.close());
    receiver.handle(Note, () => undefined);
    await receiver.start();
    const sender = await messengerAs(hub, 'svc-a.test', { retry: { ...fast, attempts: 3 } });
    const err = await sender.send(Note, RECEIVER, { n: 1, text: 'x' }, { qos: 2 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ condition: 'internal-server-error', type: 'wait' });
    const [dead] = await sender.deadLetters.list();
    expect(dead).toMatchObject({ reason: 'max-attempts', error: 'internal-server-error: store failed' });
  });

  it('the sender rejects (never retries) a payload it cannot write: PayloadTooLargeError is final', async () => {
    expect(classify(new PayloadTooLargeError(300_000, 262_144))).toBe('reject');
  });
});

describe('budget options', () => {
  it('refuses a receive-queue limit that is not a whole number >= 1, naming it', () => {
    const session = new Session({ transport: memoryHub().connect('svc-x.test') });
    for (const queue of [{ perSenderCount: 1.5 }, { totalBytes: 0 }, { perSenderBytes: -1 }])
      expect(() => new Messenger({ session, receive: { queue } })).toThrow(
        new RegExp(`receive\\.queue\\.${Object.keys(queue)[0]!}`),
      );
    expect(() => new Messenger({ session, receive: { queue: { perSenderCount: 1.5 } } })).toThrow(ConfigError);
  });
});
