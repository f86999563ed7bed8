import { Type } from '@sinclair/typebox';
import {
  AccessPolicy,
  ConflictError,
  ExpiredError,
  ManualClock,
  Session,
  StanzaError,
  XmppBusError,
  parseXml,
  xml,
  type Element,
  type IqCaller,
} from '@xmppbus/core';
import { event } from '@xmppbus/schema';
import { waitFor } from '@xmppbus/testing';
import { memoryHub, type MemoryHub, type MemoryTransport } from '@xmppbus/transport-memory';
import { afterEach, describe, expect, it } from 'vitest';
import { OutboxFullError } from './errors.js';
import { Messenger } from './messenger.js';
import type { MessengerOptions } from './options.js';
import type { MessageContext } from './types.js';
import { NS_BATCH, NS_QOS_NF } from './wire.js';

const Note = event({
  ns: 'urn:test:notes:1',
  name: 'note',
  schema: Type.Object({ n: Type.Integer(), text: Type.String() }),
});

const fast = { initialDelay: 5, maxDelay: 40, factor: 2, jitter: 0.1 };
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const sessions = new WeakMap<Messenger, Session>();

/** A started messenger on its own session over `t` (the session closes after the test). */
function messenger(
  t: MemoryTransport,
  options: Partial<Omit<MessengerOptions, 'session'>> = {},
  clock?: ManualClock,
  access?: AccessPolicy,
): Messenger {
  const session = new Session({ transport: t, ...(clock ? { clock } : {}), ...(access ? { access } : {}) });
  const m = new Messenger({ session, retry: fast, attemptTimeout: 2000, ...options });
  sessions.set(m, session);
  m.start().catch(() => undefined);
  cleanups.push(() => session.close());
  return m;
}

/** A raw IQ caller on `t` (a session with no units). */
async function callerOn(t: MemoryTransport): Promise<IqCaller> {
  const session = new Session({ transport: t });
  await session.start();
  return session.caller;
}

function pair(hub: MemoryHub = memoryHub()): { hub: MemoryHub; a: MemoryTransport; b: MemoryTransport } {
  const a = hub.connect('svc-a.test');
  const b = hub.connect('svc-b.test');
  cleanups.push(async () => {
    await a.close();
    await b.close();
  });
  return { hub, a, b };
}

/** Collects delivered notes; `until(n)` waits until n arrived. */
function collector(): {
  seen: { n: number; meta: MessageContext }[];
  handler: (v: { n: number }, meta: MessageContext) => void;
  until: (count: number) => Promise<void>;
} {
  const seen: { n: number; meta: MessageContext }[] = [];
  return {
    seen,
    handler: (v, meta) => void seen.push({ n: v.n, meta }),
    until: (count) => waitFor(() => seen.length >= count, { timeout: 5000, what: `${count} notes` }),
  };
}

describe('Messenger QoS levels (memory hub)', () => {
  it('delivers QoS 0, 1 and 2 with the right meta, and each exactly once', async () => {
    const { a, b } = pair();
    const sender = messenger(a);
    const receiver = messenger(b);
    const c = collector();
    receiver.handle(Note, c.handler);
    await sender.send(Note, 'svc-b.test', { n: 0, text: 'zero' }, { qos: 0 });
    await sender.send(Note, 'svc-b.test', { n: 1, text: 'one' }, { qos: 1 });
    await sender.send(Note, 'svc-b.test', { n: 2, text: 'two' }, { qos: 2, headers: [['x-k', 'v']] });
    await sender.flush({ timeout: 5000 });
    await c.until(3);
    expect(c.seen.map((s) => [s.n, s.meta.qos, s.meta.from])).toEqual([
      [0, 0, 'svc-a.test'],
      [1, 1, 'svc-a.test'],
      [2, 2, 'svc-a.test'],
    ]);
    expect(c.seen[2]!.meta.headers.get('x-k')).toBe('v');
    expect(c.seen[2]!.meta.delayedFrom).toBeUndefined();
    expect(sender.counters).toMatchObject({ completed: 3, queued: 0, inFlight: 0, deadLettered: 0 });
    expect(receiver.counters.received).toBe(3);
    expect(receiver.pendingInbound.size).toBe(0);
    expect(sessions.get(sender)!.caller.pending).toBe(0);
  });

  it('pipelines 500 messages per QoS level in order', async () => {
    const { a, b } = pair(memoryHub({ latencyMs: 1 }));
    const sender = messenger(a, { window: 16 });
    const receiver = messenger(b);
    const c = collector();
    receiver.handle(Note, c.handler);
    for (const qos of [1, 2] as const) {
      c.seen.length = 0;
      await Promise.all(
        Array.from({ length: 500 }, (_, n) => sender.send(Note, 'svc-b.test', { n, text: 'x' }, { qos })),
      );
      await sender.flush({ timeout: 10_000 });
      expect(c.seen.map((s) => s.n)).toEqual(Array.from({ length: 500 }, (_, n) => n));
    }
  });

  // Random loss of single stanzas (impossible inside one TCP stream, where a drop loses a suffix)
  // can reorder; what must hold is no loss and, for QoS 2, no duplicate.
  it('QoS 1 and 2 survive random stanza loss: nothing lost, QoS 2 exactly once', async () => {
    let seed = 7;
    const random = (): number => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
    const hub = memoryHub({ dropRate: 0.1, random });
    const { a, b } = pair(hub);
    const sender = messenger(a, { window: 8, attemptTimeout: 30 });
    const receiver = messenger(b);
    const c = collector();
    receiver.handle(Note, c.handler);
    const n = 200;
    await Promise.all(
      Array.from({ length: n }, (_, i) => sender.send(Note, 'svc-b.test', { n: i, text: 'q2' }, { qos: 2 })),
    );
    await sender.flush({ timeout: 20_000 });
    hub.dropRate = 0;
    expect(c.seen.map((s) => s.n).sort((x, y) => x - y)).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(sender.counters.retried).toBeGreaterThan(0);
    expect(hub.dropped).toBeGreaterThan(0);

    c.seen.length = 0;
    hub.dropRate = 0.1;
    await Promise.all(
      Array.from({ length: n }, (_, i) => sender.send(Note, 'svc-b.test', { n: i, text: 'q1' }, { qos: 1 })),
    );
    await sender.flush({ timeout: 20_000 });
    const distinct = new Set(c.seen.map((s) => s.n));
    expect(distinct.size).toBe(n);
  });

  it('waits for an unreachable peer, then delivers with the original send time in <delay/>', async () => {
    const hub = memoryHub();
    const a = hub.connect('svc-a.test');
    cleanups.push(() => a.close());
    const clock = new ManualClock(Date.parse('2026-03-01T12:00:00Z'));
    const sender = messenger(a, { delayThreshold: 0 }, clock);
    const sent = clock.now();
    const p = sender.send(Note, 'svc-b.test', { n: 1, text: 'later' }, { qos: 1 });
    await waitFor(() => sender.counters.retried >= 1, { what: 'first failure' });
    clock.advance(1_000); // the backoff's probe
    await waitFor(() => sender.counters.retried >= 2, { what: 'the probe failed too' });
    expect(sender.counters.queued).toBe(1);
    const b = hub.connect('svc-b.test');
    cleanups.push(() => b.close());
    const receiver = messenger(b);
    const c = collector();
    receiver.handle(Note, c.handler);
    await receiver.start();
    clock.advance(60_000);
    await p;
    await c.until(1);
    const meta = c.seen[0]!.meta;
    expect(meta.delayedFrom?.getTime()).toBe(sent);
    expect(meta.delayedBy).toBe('svc-a.test');
  });

  it('resumes at once on available presence from a c2s peer', async () => {
    const hub = memoryHub();
    const a = hub.connect('svc-a.test');
    cleanups.push(() => a.close());
    const sender = messenger(a, { retry: { initialDelay: 60_000, maxDelay: 60_000 } });
    const p = sender.send(Note, 'bob@localhost/agent', { n: 1, text: 'hi' }, { qos: 1 });
    await waitFor(() => sender.counters.retried === 1);
    const bob = hub.connect('bob@localhost/agent');
    cleanups.push(() => bob.close());
    // A user account on another domain than the service: it lets the service in by a rule.
    const receiver = messenger(bob, {}, undefined, new AccessPolicy({ rules: [{ from: 'svc-a.test' }] }));
    const c = collector();
    receiver.handle(Note, c.handler);
    await receiver.start();
    await bob.send(xml('presence', { to: 'svc-a.test' }));
    await p;
    expect(c.seen).toHaveLength(1);
  });

  it('scheduled delivery waits for deliverAt without holding back later messages', async () => {
    const { a, b } = pair();
    const clock = new ManualClock(1_000_000);
    const sender = messenger(a, {}, clock);
    const receiver = messenger(b);
    const c = collector();
    receiver.handle(Note, c.handler);
    const at = clock.now() + 150;
    const late = sender.send(Note, 'svc-b.test', { n: 1, text: 'scheduled' }, { qos: 1, deliverAt: new Date(at) });
    await sender.send(Note, 'svc-b.test', { n: 2, text: 'now' }, { qos: 1 });
    expect(c.seen.map((s) => s.n)).toEqual([2]);
    clock.advance(149);
    await sender.send(Note, 'svc-b.test', { n: 3, text: 'now' }, { qos: 1 });
    expect(c.seen.map((s) => s.n)).toEqual([2, 3]);
    clock.advance(1);
    await late;
    expect(c.seen.map((s) => s.n)).toEqual([2, 3, 1]);
  });

  it('expires at dequeue into the dead letters, which can be listed, inspected and replayed', async () => {
    const hub = memoryHub();
    const a = hub.connect('svc-a.test');
    cleanups.push(() => a.close());
    const sender = messenger(a);
    const p = sender.send(Note, 'svc-b.test', { n: 9, text: 'ttl' }, { qos: 2, ttl: 50, id: 'm-ttl' });
    await expect(p).rejects.toBeInstanceOf(ExpiredError);
    const dead = await sender.deadLetters.list();
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ id: 'm-ttl', reason: 'expired', to: 'svc-b.test', qos: 2 });
    expect(dead[0]!.payload).toBe('{urn:test:notes:1}note');
    expect(sender.counters).toMatchObject({ deadLettered: 1, expired: 1, queued: 0 });

    const b = hub.connect('svc-b.test');
    cleanups.push(() => b.close());
    const receiver = messenger(b);
    const c = collector();
    receiver.handle(Note, c.handler);
    expect(await sender.deadLetters.replay('m-ttl')).toBe(true);
    await sender.flush({ timeout: 5000 });
    expect(c.seen.map((s) => [s.n, s.meta.id])).toEqual([[9, 'm-ttl']]);
    expect(c.seen[0]!.meta.expiresAt).toBeUndefined();
    expect(await sender.deadLetters.list()).toHaveLength(0);
    expect(await sender.deadLetters.replay('m-ttl')).toBe(false);
  });

  it('receiver refuses senders the session access policy denies (forbidden/auth, dead letter rejected)', async () => {
    const { a, b } = pair();
    const sender = messenger(a);
    const access = new AccessPolicy({ rules: [{ from: 'svc-a.test', to: 'urn:test:notes:1#note', effect: 'deny' }] });
    const receiver = messenger(b, {}, undefined, access);
    receiver.handle(Note, () => undefined);
    const err = await sender.send(Note, 'svc-b.test', { n: 1, text: 'no' }, { qos: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StanzaError);
    expect(err).toMatchObject({ condition: 'forbidden', type: 'auth' });
    expect((await sender.deadLetters.list())[0]).toMatchObject({ reason: 'rejected' });
    expect(receiver.counters.refused).toBe(1);
    expect(access.denied).toBe(1);
    // The removed `receive.allow` fails loudly instead of being ignored (migration: a session access rule).
    expect(() => messenger(b, { receive: { allow: () => true } as never })).toThrow(/receive\.allow was removed/);
  });

  it('a retryable handler failure is retried and dead-lettered after retry.attempts; another is not retried', async () => {
    const { a, b } = pair();
    const sender = messenger(a, { retry: { ...fast, attempts: 3 } });
    const receiver = messenger(b);
    let calls = 0;
    receiver.handle(Note, (v) => {
      calls++;
      if (v.text === 'busy') throw new XmppBusError('ERR_SERVICE_UNAVAILABLE', 'database busy');
      throw new Error('boom');
    });
    const err = await sender.send(Note, 'svc-b.test', { n: 1, text: 'busy' }, { qos: 1 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ condition: 'internal-server-error', type: 'wait' });
    expect(calls).toBe(3);
    expect((await sender.deadLetters.list())[0]!.reason).toBe('max-attempts');

    calls = 0;
    const bug = await sender.send(Note, 'svc-b.test', { n: 2, text: 'bug' }, { qos: 2 }).catch((e: unknown) => e);
    expect(bug).toBeUndefined(); // QoS 2 resolves at `received`; the deliver fails later
    await sender.flush({ timeout: 5000 });
    expect(calls).toBe(1); // cancel/internal-server-error: dead-lettered at once
    expect((await sender.deadLetters.list()).map((d) => d.reason)).toEqual(['max-attempts', 'rejected']);
  });

  it('a payload nobody handles is dead-lettered at once (service-unavailable + no-handler), not waited for', async () => {
    const { a, b } = pair();
    const sender = messenger(a);
    messenger(b);
    const err = await sender.send(Note, 'svc-b.test', { n: 1, text: 'x' }, { qos: 1 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ condition: 'service-unavailable' });
    expect((await sender.deadLetters.list())[0]!.reason).toBe('rejected');
  });

  it('caps pending assured messages per sender with resource-constraint', async () => {
    const { a, b } = pair();
    const receiver = messenger(b, { receive: { maxPendingPerSender: 2 } });
    receiver.handle(Note, () => undefined);
    await receiver.start();
    const caller = await callerOn(a);
    const assured = (msgId: string): Element =>
      parseXml(
        `<iq type='set' to='svc-b.test' id='${msgId}'><assured xmlns='urn:xmpp:qos' msgId='${msgId}'>` +
          `<message to='svc-b.test'><note xmlns='urn:test:notes:1'><n>1</n><text>t</text></note></message></assured></iq>`,
      );
    await caller.request(assured('p1'));
    await caller.request(assured('p2'));
    const err = await caller.request(assured('p3')).catch((e: unknown) => e);
    expect((err as StanzaError).condition).toBe('resource-constraint');
    expect((err as StanzaError).type).toBe('wait');
    // A re-sent assured that is already stored is still answered `received`.
    const again = await caller.request(assured('p1').attr('id', 'p1-again'));
    expect(again.getChild('received')?.attrs['msgId']).toBe('p1');
    expect(receiver.pendingInbound.get('svc-a.test')).toBe(2);
  });

  it('accepts the deployed namespace and answers in kind; received without namespace is understood', async () => {
    const { hub, a, b } = pair();
    const receiver = messenger(b);
    const c = collector();
    receiver.handle(Note, c.handler);
    await receiver.start();
    const sender = messenger(a); // its session's caller plays the hand-written peer (one session per transport)
    await sender.start();
    const caller = sessions.get(sender)!.caller;
    const res = await caller.request(
      parseXml(
        `<iq type='set' to='svc-b.test' id='x1'><assured xmlns='${NS_QOS_NF}' msgId='M1'>` +
          `<message xmlns='jabber:client' from='evil@spoof' to='x@y'><note xmlns='urn:test:notes:1'><n>5</n><text>nf</text></note></message>` +
          `</assured></iq>`,
      ),
    );
    expect(res.getChild('received')?.attrs).toMatchObject({ xmlns: NS_QOS_NF, msgId: 'M1' });
    await caller.request(
      parseXml(`<iq type='set' to='svc-b.test' id='x2'><deliver xmlns='${NS_QOS_NF}' msgId='M1'/></iq>`),
    );
    expect(c.seen.map((s) => [s.n, s.meta.from, s.meta.to])).toEqual([[5, 'svc-a.test', 'svc-b.test']]);

    // The other direction: a hand-written peer that answers `received` with no namespace.
    const d = hub.connect('svc-d.test');
    cleanups.push(() => d.close());
    const off = d.onStanza((s) => {
      if (s.name !== 'iq' || s.attrs['type'] !== 'set') return;
      const env = s.children[0] as Element;
      const reply = xml('iq', { type: 'result', id: s.attrs['id'], to: s.attrs['from'] });
      if (env.name === 'assured') reply.children.push(xml('received', { msgId: env.attrs['msgId'] }));
      void d.send(reply);
    });
    cleanups.push(off);
    await sender.send(Note, 'svc-d.test', { n: 1, text: 'x' }, { qos: 2 });
    await sender.flush({ timeout: 5000 });
    expect(sender.counters.completed).toBe(1);
  });

  it('bounds the outbox: reject and drop-oldest', async () => {
    const hub = memoryHub();
    const a = hub.connect('svc-a.test');
    cleanups.push(() => a.close());
    const rejecting = messenger(a, { maxOutbox: 2, retry: { initialDelay: 60_000 } });
    rejecting.send(Note, 'nobody.test', { n: 1, text: 'x' }).catch(() => undefined);
    rejecting.send(Note, 'nobody.test', { n: 2, text: 'x' }).catch(() => undefined);
    await waitFor(() => rejecting.counters.queued === 2);
    const err = await rejecting.send(Note, 'nobody.test', { n: 3, text: 'x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutboxFullError);
    expect((err as OutboxFullError).code).toBe('ERR_QUEUE_FULL');
    await rejecting.close();

    const c2 = hub.connect('svc-c.test');
    cleanups.push(() => c2.close());
    const dropping = messenger(c2, { maxOutbox: 2, overflow: 'drop-oldest', retry: { initialDelay: 60_000 } });
    const dead: string[] = [];
    dropping.onDeadLetter((e) => dead.push(`${e.id}:${e.reason}`));
    const first = dropping.send(Note, 'nobody.test', { n: 1, text: 'x' }, { id: 'first' }).catch((e: unknown) => e);
    const second = dropping.send(Note, 'nobody.test', { n: 2, text: 'x' }, { id: 'second' }).catch(() => undefined);
    await waitFor(() => dropping.counters.queued === 2);
    // Both failed at once (nobody.test is unknown) and wait for the backoff: the oldest is `first`.
    dropping.send(Note, 'nobody.test', { n: 3, text: 'x' }, { id: 'third' }).catch(() => undefined);
    await waitFor(() => dead.length === 1, { what: 'a dead letter' });
    expect(dead).toEqual(['first:overflow']);
    expect((await dropping.deadLetters.list()).map((d) => d.reason)).toEqual(['overflow']);
    void first;
    void second;
  });
});

describe('lifecycle', () => {
  it('a second messenger on one session fails with ConflictError at start; the constructor does nothing', async () => {
    const { a } = pair();
    const session = new Session({ transport: a });
    cleanups.push(() => session.close());
    const first = new Messenger({ session });
    const second = new Messenger({ session });
    expect(session.disco.features).not.toContain('urn:xmpp:qos');
    await expect(second.send(Note, 'x.test', { n: 1, text: 'x' })).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    await first.start();
    expect(first.status).toBe('ready');
    expect(session.disco.features).toContain('urn:xmpp:qos');
    const err = await second.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
  });

  it('drain is bounded, close never hangs, and a QoS 2 send to an offline peer ends with ClosedError', async () => {
    const hub = memoryHub();
    const a = hub.connect('svc-a.test');
    const clock = new ManualClock(0);
    const session = new Session({ transport: a, clock });
    const m = new Messenger({ session, retry: fast });
    await m.start();
    const p = m.send(Note, 'offline.test', { n: 1, text: 'x' }, { qos: 2 }).catch((e: unknown) => e);
    await waitFor(() => m.counters.retried >= 1, { what: 'a failed attempt' });
    const drained = m.drain({ timeout: 5_000 }).catch((e: unknown) => e);
    await expect(m.send(Note, 'offline.test', { n: 2, text: 'x' })).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    clock.advance(5_000);
    expect(await drained).toMatchObject({ code: 'ERR_TIMEOUT' });
    await session.close();
    expect(m.status).toBe('closed');
    expect(await p).toMatchObject({ code: 'ERR_CLOSED' });
  });

  it('the handler context has from, headers (from any HeadersInit), signal and delayedFrom', async () => {
    const { a, b } = pair();
    const sender = messenger(a);
    const receiver = messenger(b);
    const c = collector();
    receiver.handle(Note, c.handler);
    await sender.send(Note, 'svc-b.test', { n: 1, text: 'h' }, { headers: { traceparent: 't-1' } });
    await sender.send(Note, 'svc-b.test', { n: 2, text: 'h' }, { headers: new Map([['x', 'y']]) });
    const [one, two] = c.seen;
    expect(one!.meta.headers.get('traceparent')).toBe('t-1');
    expect(two!.meta.headers.get('x')).toBe('y');
    expect(one!.meta.signal.aborted).toBe(false);
    expect(one!.meta.from).toBe('svc-a.test');
    await receiver.close();
    expect(one!.meta.signal.aborted).toBe(true);
  });
});

describe('batches (urn:xmppbus:qos:batch:1)', () => {
  /** Records the QoS IQs a transport receives: per IQ, the kind and the msgIds it carried. */
  function wiretap(t: MemoryTransport): { iqs: { batch: boolean; ids: string[] }[]; discos: number } {
    const tap = { iqs: [] as { batch: boolean; ids: string[] }[], discos: 0 };
    const off = t.onStanza((s) => {
      if (s.name !== 'iq' || (s.attrs['type'] !== 'set' && s.attrs['type'] !== 'get')) return;
      const payload = s.children.find((c): c is Element => typeof c !== 'string');
      if (!payload) return;
      if (payload.name === 'query') tap.discos++;
      else if (payload.name === 'batch' && payload.attrs['xmlns'] === NS_BATCH) {
        const ids = payload.children.filter((c): c is Element => typeof c !== 'string').map((c) => c.attrs['msgId']!);
        tap.iqs.push({ batch: true, ids });
      } else tap.iqs.push({ batch: false, ids: [payload.attrs['msgId'] ?? s.attrs['id']!] });
    });
    cleanups.push(off);
    return tap;
  }

  /** Sends a few messages so the sender learns (disco) that the peer takes batches. */
  async function warm(sender: Messenger, tap: { discos: number }): Promise<void> {
    await send(sender, 3, 1, 1000);
    await waitFor(() => tap.discos === 1);
    await sender.flush({ timeout: 5000 });
  }

  const send = (m: Messenger, count: number, qos: 1 | 2, from = 0): Promise<void[]> =>
    Promise.all(
      Array.from({ length: count }, (_, i) => m.send(Note, 'svc-b.test', { n: from + i, text: 'b' }, { qos })),
    );

  it('a peer that advertises the feature gets several messages per IQ, in order, each once', async () => {
    const { a, b } = pair(memoryHub({ latencyMs: 1 }));
    const tap = wiretap(b);
    const sender = messenger(a, { window: 16, batch: { maxMessages: 8 } });
    const receiver = messenger(b);
    const c = collector();
    receiver.handle(Note, c.handler);
    for (const qos of [1, 2] as const) {
      c.seen.length = 0;
      await send(sender, 300, qos);
      await sender.flush({ timeout: 10_000 });
      expect(c.seen.map((s) => s.n)).toEqual(Array.from({ length: 300 }, (_, n) => n));
      expect(new Set(c.seen.map((s) => s.meta.id)).size).toBe(300);
      expect(c.seen.every((s) => s.meta.qos === qos)).toBe(true);
    }
    expect(tap.discos).toBe(1); // asked once, cached per peer
    const batches = tap.iqs.filter((i) => i.batch);
    expect(batches.length).toBeGreaterThan(20);
    expect(Math.max(...batches.map((i) => i.ids.length))).toBe(8); // the count cap
    // Far fewer IQs than messages: 300 QoS 1 + 300 assured + 300 deliver.
    expect(tap.iqs.length).toBeLessThan(900 / 2);
    expect(receiver.pendingInbound.size).toBe(0);
  });

  it('respects the byte cap', async () => {
    const { a, b } = pair();
    const tap = wiretap(b);
    const sender = messenger(a, { window: 32, batch: { maxBytes: 2000 } });
    const receiver = messenger(b);
    const c = collector();
    receiver.handle(Note, c.handler);
    await warm(sender, tap);
    c.seen.length = 0;
    const text = 'x'.repeat(400);
    await Promise.all(Array.from({ length: 100 }, (_, n) => sender.send(Note, 'svc-b.test', { n, text }, { qos: 1 })));
    expect(c.seen.map((s) => s.n)).toEqual(Array.from({ length: 100 }, (_, n) => n));
    const batches = tap.iqs.filter((i) => i.batch);
    expect(batches.length).toBeGreaterThan(0);
    expect(Math.max(...batches.map((i) => i.ids.length))).toBeLessThanOrEqual(3); // ~600 bytes each
  });

  it('falls back to one message per IQ for a peer without the feature', async () => {
    const { a, b } = pair();
    const tap = wiretap(b);
    const sender = messenger(a, { window: 16 });
    const receiver = messenger(b, { receive: { batch: false } });
    const c = collector();
    receiver.handle(Note, c.handler);
    await send(sender, 100, 1);
    await send(sender, 100, 2, 100);
    await sender.flush({ timeout: 10_000 });
    expect(c.seen.map((s) => s.n)).toEqual(Array.from({ length: 200 }, (_, n) => n));
    expect(tap.discos).toBe(1);
    expect(tap.iqs.some((i) => i.batch)).toBe(false);
    expect(tap.iqs).toHaveLength(100 + 100 * 2);
  });

  it('a message refused inside a batch fails alone; the others complete once', async () => {
    const { a, b } = pair();
    const tap = wiretap(b);
    const sender = messenger(a, { window: 16 });
    const receiver = messenger(b);
    const c = collector();
    receiver.handle(Note, (v, meta) => {
      if (v.text === 'poison') throw new StanzaError({ condition: 'not-acceptable', text: 'poison' });
      c.handler(v, meta);
    });
    await receiver.start();
    // Warm the feature cache so the next burst travels in batches.
    await send(sender, 4, 1, 1000);
    await waitFor(() => tap.discos === 1);
    await sender.flush({ timeout: 5000 });
    c.seen.length = 0;
    const outcomes = await Promise.allSettled(
      Array.from({ length: 20 }, (_, n) =>
        sender.send(Note, 'svc-b.test', { n, text: n === 7 ? 'poison' : 'ok' }, { qos: 1 }),
      ),
    );
    expect(tap.iqs.filter((i) => i.batch).length).toBeGreaterThan(0);
    expect(outcomes.filter((o) => o.status === 'rejected')).toHaveLength(1);
    expect(((outcomes[7] as PromiseRejectedResult).reason as StanzaError).condition).toBe('not-acceptable');
    expect(c.seen.map((s) => s.n)).toEqual(Array.from({ length: 20 }, (_, n) => n).filter((n) => n !== 7));
    const dead = await sender.deadLetters.list();
    expect(dead.map((d) => d.reason)).toEqual(['rejected']);
  });

  it('resource-constraint on some assured items of a batch: retried with the same ids, exactly once', async () => {
    const { a, b } = pair();
    const tap = wiretap(b);
    const sender = messenger(a, { window: 16 });
    const receiver = messenger(b, { receive: { maxPendingPerSender: 3 } });
    const c = collector();
    receiver.handle(Note, c.handler);
    await send(sender, 2, 2, 1000); // warms the feature cache
    await waitFor(() => tap.discos === 1);
    await sender.flush({ timeout: 5000 });
    c.seen.length = 0;
    tap.iqs.length = 0;
    await send(sender, 40, 2);
    await sender.flush({ timeout: 10_000 });
    expect(c.seen.map((s) => s.n).sort((x, y) => x - y)).toEqual(Array.from({ length: 40 }, (_, n) => n));
    expect(receiver.counters.refused).toBeGreaterThan(0); // some items were refused …
    expect(sender.counters.retried).toBeGreaterThan(0); // … and retried
    expect(sender.counters.deadLettered).toBe(0);
    expect(tap.iqs.some((i) => i.batch)).toBe(true);
    expect(receiver.pendingInbound.size).toBe(0);
  });

  it('a lost batch result is retried with the same msgIds and deduplicated (QoS 1 and 2)', async () => {
    const { a, b } = pair();
    const tap = wiretap(b);
    const sender = messenger(a, { window: 16, attemptTimeout: 100 });
    const receiver = messenger(b);
    const c = collector();
    receiver.handle(Note, c.handler);
    await send(sender, 2, 1, 1000);
    await waitFor(() => tap.discos === 1);
    await sender.flush({ timeout: 5000 });
    c.seen.length = 0;
    // The receiver's first two batch results are lost on the way back.
    let lose = 2;
    const send0 = b.send.bind(b);
    b.send = (stanza, options) => {
      const child = stanza.children.find((x): x is Element => typeof x !== 'string');
      if (stanza.attrs['type'] === 'result' && child?.name === 'batch' && lose > 0) {
        lose--;
        return Promise.resolve();
      }
      return send0(stanza, options);
    };
    for (const qos of [1, 2] as const) {
      c.seen.length = 0;
      tap.iqs.length = 0;
      lose = 2;
      await send(sender, 30, qos);
      await sender.flush({ timeout: 10_000 });
      expect(lose).toBe(0);
      expect(c.seen.map((s) => s.n)).toEqual(Array.from({ length: 30 }, (_, n) => n)); // once each, in order
      const counts = new Map<string, number>();
      for (const iq of tap.iqs) for (const id of iq.ids) counts.set(id, (counts.get(id) ?? 0) + 1);
      expect([...counts.values()].some((n) => n > 1)).toBe(true); // resent under the same ids
    }
    expect(receiver.counters.duplicates).toBeGreaterThan(0);
  });

  it('answers a hand-written batch item by item, refusing bad items without failing the rest', async () => {
    const { a, b } = pair();
    const receiver = messenger(b);
    const c = collector();
    receiver.handle(Note, c.handler);
    await receiver.start();
    const note = (n: number): string =>
      `<message><note xmlns='urn:test:notes:1'><n>${n}</n><text>h</text></note></message>`;
    const res = await (
      await callerOn(a)
    ).request(
      parseXml(
        `<iq type='set' to='svc-b.test' id='hb1'><batch xmlns='${NS_BATCH}'>` +
          `<acknowledged xmlns='urn:xmpp:qos' msgId='k1'>${note(1)}</acknowledged>` +
          `<assured xmlns='urn:xmpp:qos' msgId='k2'>${note(2)}</assured>` +
          `<acknowledged xmlns='urn:xmpp:qos' msgId='k3'><message><other xmlns='urn:x'/></message></acknowledged>` +
          `<deliver xmlns='urn:xmpp:qos' msgId='nope'/>` +
          `<acknowledged xmlns='urn:xmpp:qos' msgId='k5'>${note(5)}</acknowledged>` +
          `</batch></iq>`,
      ),
    );
    const items = res.getChild('batch', NS_BATCH)!.children.filter((x): x is Element => typeof x !== 'string');
    expect(items.map((i) => [i.name, i.attrs['msgId']])).toEqual([
      ['ok', 'k1'],
      ['received', 'k2'],
      ['error', 'k3'],
      ['error', 'nope'],
      ['ok', 'k5'],
    ]);
    expect(StanzaError.fromElement(items[2]!).condition).toBe('service-unavailable'); // no handler for urn:x
    expect(StanzaError.fromElement(items[3]!).condition).toBe('item-not-found');
    expect(c.seen.map((s) => s.n)).toEqual([1, 5]);
    expect(receiver.pendingInbound.get('svc-a.test')).toBe(1);
  });
});
