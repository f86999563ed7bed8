// Event batching (docs/protocol.md §4): several events of one contract per pub/sub item, unwrapped
// into single typed events in order; positions inside a batch; bad events and hostile batches.
import { readFileSync } from 'node:fs';
import {
  AccessPolicy,
  ManualClock,
  ProtocolError,
  QueueFullError,
  Session,
  findChild,
  parseXml,
  xml,
  type Logger,
} from '@xmppbus/core';
import { ValidationError } from '@xmppbus/schema';
import { OrderCreated, waitFor } from '@xmppbus/testing';
import { memoryHub, type MemoryHub } from '@xmppbus/transport-memory';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { unwrapBatch } from './batch.js';
import { MemoryCheckpointStore } from './checkpoint-store.js';
import { NS_EVENTS_BATCH } from './ns.js';
import { PubSub } from './pubsub.js';
import { MemoryPubSubService } from './testing/memory-pubsub-service.js';
import type { EventMeta, InvalidEvent } from './types.js';

const openService = new AccessPolicy({ rules: [{ from: '*' }] });
type Order = { orderId: string; qty: number };
const order = (orderId: string): Order => ({ orderId, qty: 1 });

let hub: MemoryHub;
let clock: ManualClock;
let service: MemoryPubSubService;
const sessions: Session[] = [];
const quiet: Logger = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined };

function client(address: string): PubSub {
  const session = new Session({ transport: hub.connect(address), clock, logger: quiet });
  sessions.push(session);
  return new PubSub({ session, service: 'pubsub.test', timeout: 5_000 });
}

beforeEach(async () => {
  hub = memoryHub();
  clock = new ManualClock(1_000_000);
  service = new MemoryPubSubService(
    new Session({ transport: hub.connect('pubsub.test'), clock, access: openService }),
    { admins: ['svc-a.test', 'svc-b.test', 'svc-c.test'] },
  );
  await service.start();
});
afterEach(async () => {
  for (const s of sessions.splice(0)) await s.close();
  await service.close();
});

describe('batch wire form', () => {
  it('unwraps events in order, takes a trailing wrapper <headers/> apart, and refuses hostile batches', () => {
    const ev = (i: number): ReturnType<typeof xml> => xml('created', { xmlns: 'urn:x' }, String(i));
    const shim = xml('headers', { xmlns: 'http://jabber.org/protocol/shim' });
    const w = xml('events', { xmlns: NS_EVENTS_BATCH, count: '2' }, ev(0), ev(1), shim);
    const u = unwrapBatch(w, 10);
    expect(u.events.map((e) => e.text())).toEqual(['0', '1']);
    expect(u.headers).toBe(shim);
    // A <headers/> followed by an event is an event (it will fail to decode), not the item's headers.
    expect(unwrapBatch(xml('events', { xmlns: NS_EVENTS_BATCH }, shim, ev(0)), 10).events).toHaveLength(2);
    expect(() => unwrapBatch(xml('events', { xmlns: NS_EVENTS_BATCH, count: '3' }, ev(0)), 10)).toThrow(ProtocolError);
    const huge = xml('events', { xmlns: NS_EVENTS_BATCH });
    for (let i = 0; i < 11; i++) huge.cnode(ev(i));
    expect(() => unwrapBatch(huge, 10)).toThrow(/more than 10 events/);
  });
});

/** The XML block that follows `<!-- example:NAME -->` in docs/protocol.md. */
function docExample(name: string): string {
  const doc = readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8');
  const m = new RegExp(`<!-- example:${name} -->\\s*\`\`\`xml\\n([\\s\\S]*?)\`\`\``).exec(doc);
  if (!m) throw new Error(`docs/protocol.md has no example '${name}'`);
  return m[1]!;
}

describe('docs/protocol.md §4 examples', () => {
  it('the documented batch item, published by hand as a peer would, reaches a consumer as its events', async () => {
    const a = client('svc-a.test');
    await a.createNode('orders', { maxItems: 10 });
    const b = client('svc-b.test');
    const got: { orderId: string; id: string; tenant: string | undefined }[] = [];
    const sub = b.consume(
      OrderCreated,
      'orders',
      (v, m) => void got.push({ orderId: v.orderId, id: m.id, tenant: m.headers.get('x-tenant') }),
    );
    await sub.start();
    const iq = parseXml(docExample('events-batch-publish'));
    const item = findChild(findChild(findChild(iq, 'pubsub')!, 'publish')!, 'item')!;
    const wrapper = item.children.find((c) => typeof c !== 'string') as ReturnType<typeof xml>;
    await a.publishElement('orders', wrapper, { id: item.attrs['id'] });
    await waitFor(() => got.length === 3, { what: 'the three documented events' });
    expect(got).toEqual([
      { orderId: 'o-17', id: 'b-7Qz1#0', tenant: undefined },
      { orderId: 'o-18', id: 'b-7Qz1#1', tenant: 'acme' },
      { orderId: 'o-19', id: 'b-7Qz1#2', tenant: undefined },
    ]);
    const note = parseXml(docExample('events-batch-notification'));
    expect(
      unwrapBatch(note.getChild('event')!.getChild('items')!.getChild('item')!.getChild('events')!, 10).events,
    ).toHaveLength(2);
    await sub.close();
  });
});

describe('batchPublisher', () => {
  it('events of one tick travel as one item; 10 subscribers each see every event once, in order, typed', async () => {
    const a = client('svc-a.test');
    await a.createNode('ticks', { maxItems: 100 });
    const b = client('svc-b.test');
    const got = new Map<number, { id: string; orderId: string; trace: string | undefined }[]>();
    const subs = [];
    for (let w = 0; w < 10; w++) {
      const list: { id: string; orderId: string; trace: string | undefined }[] = [];
      got.set(w, list);
      subs.push(
        b.consume(
          OrderCreated,
          'ticks',
          (v, m) => void list.push({ id: m.id, orderId: v.orderId, trace: m.headers.get('x-trace') }),
          { jid: `w${w}@svc-b.test` },
        ),
      );
    }
    await Promise.all(subs.map((s) => s.start()));
    const pub = a.batchPublisher(OrderCreated, 'ticks', { batch: { maxEvents: 4 } });
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(pub.send(order(`o${i}`), { headers: { 'x-trace': `t${i}` } }));
    const last = pub.publish(order('o10'));
    expect(await last).toMatch(/#2$/); // the third batch: 4 + 4 + 3 events
    await pub.flush();
    const items = await a.items('ticks');
    expect(items.map((i) => i.payload?.attrs['count'])).toEqual(['4', '4', '3']);
    expect(ids[5]).toBe(`${items[1]!.id}#1`);
    await waitFor(() => [...got.values()].every((l) => l.length === 11), { what: 'every event at every subscriber' });
    for (const list of got.values()) {
      expect(list.map((e) => e.orderId)).toEqual([...Array(11).keys()].map((i) => `o${i}`));
      expect(list.map((e) => e.id)).toEqual([...ids, await last]);
      expect(list[3]!.trace).toBe('t3');
      expect(list[10]!.trace).toBeUndefined();
    }
  });

  it('maxDelay holds a batch on the session clock; maxBytes splits it', async () => {
    const a = client('svc-a.test');
    await a.createNode('n', { maxItems: 100 });
    const pub = a.batchPublisher(OrderCreated, 'n', { batch: { maxDelay: 50, maxBytes: 200 } });
    const sent = pub.publish(order('1'));
    pub.send(order('2'));
    await new Promise((r) => setImmediate(r));
    expect(await a.items('n')).toEqual([]);
    clock.advance(50);
    await sent;
    expect((await a.items('n')).map((i) => i.payload?.attrs['count'])).toEqual(['2']);
    // ~90 bytes an event: the third does not fit in 200.
    for (let i = 0; i < 3; i++) pub.send(order(`big-${i}`));
    await pub.flush();
    expect((await a.items('n')).map((i) => i.payload?.attrs['count'])).toEqual(['2', '2', '1']);
  });

  it('an invalid value throws at send and adds nothing; a refused item rejects flush and is reported', async () => {
    const a = client('svc-a.test');
    const failed: string[][] = [];
    const pub = a.batchPublisher(OrderCreated, 'absent', { onError: (_e, ids) => failed.push([...ids]) });
    expect(() => pub.send({ orderId: 1 } as unknown as Order)).toThrow(ValidationError);
    const id = pub.send(order('1'));
    await expect(pub.flush()).rejects.toMatchObject({ condition: 'item-not-found' });
    expect(failed).toEqual([[id]]);
    await pub.flush(); // the failure was reported once
  });

  it('refuses events with a retryable QueueFullError while maxQueued items wait for the service', async () => {
    const a = client('svc-a.test');
    await a.createNode('q', { maxItems: 100 });
    const pub = a.batchPublisher(OrderCreated, 'q', { batch: { maxEvents: 1, maxInFlight: 1, maxQueued: 2 } });
    for (let i = 0; i < 3; i++) pub.send(order(`${i}`)); // one in flight, two waiting
    expect(() => pub.send(order('3'))).toThrow(QueueFullError);
    await expect(pub.publish(order('3'))).rejects.toMatchObject({ code: 'ERR_QUEUE_FULL', retryable: true });
    await pub.flush();
    pub.send(order('3'));
    await pub.flush();
    expect((await a.items('q')).map((i) => i.payload?.getChild('created')?.getChildText('orderId'))).toEqual([
      '0',
      '1',
      '2',
      '3',
    ]);
  });
});

describe('consuming batches', () => {
  it('an invalid event is skipped without its neighbours; an oversized or miscounted batch is refused whole', async () => {
    const a = client('svc-a.test');
    await a.createNode('n', { maxItems: 100 });
    const b = client('svc-b.test');
    const got: string[] = [];
    const invalid: InvalidEvent[] = [];
    const sub = b.consume(OrderCreated, 'n', (v) => void got.push(v.orderId), {
      maxBatchEvents: 3,
      onInvalid: (e) => invalid.push(e),
    });
    await sub.start();
    const ev = (id: string, qty: unknown = 1): ReturnType<typeof xml> =>
      xml('created', { xmlns: OrderCreated.ns }, xml('orderId', null, id), xml('qty', null, String(qty)));
    const batch = (...evs: ReturnType<typeof xml>[]): ReturnType<typeof xml> =>
      xml('events', { xmlns: NS_EVENTS_BATCH, count: String(evs.length) }, ...evs);
    await a.publishElement('n', batch(ev('1'), ev('2', 'x'), ev('3')), { id: 'b1' });
    await a.publishElement('n', batch(ev('4'), ev('5'), ev('6'), ev('7')), { id: 'b2' }); // > maxBatchEvents
    const lying = batch(ev('8'));
    lying.attrs['count'] = '2';
    await a.publishElement('n', lying, { id: 'b3' });
    await a.publishElement('n', batch(ev('9')), { id: 'b4' });
    await waitFor(() => got.includes('9'), { what: 'the batch after the bad ones' });
    expect(got).toEqual(['1', '3', '9']);
    expect(invalid.map((e) => e.id)).toEqual(['b1#1', 'b2', 'b3']);
    expect(invalid[1]!.error).toBeInstanceOf(ProtocolError);
    expect(sub.stats).toMatchObject({ handled: 3, invalid: 3 });
    await sub.close();
  });

  it('a durable consumer stopped in the middle of a batch resumes inside it: nothing skipped, nothing repeated', async () => {
    const a = client('svc-a.test');
    await a.createNode('n', { maxItems: 100 });
    const b = client('svc-b.test');
    const store = new MemoryCheckpointStore();
    const got: string[] = [];
    const metas: EventMeta[] = [];
    let stopAt = '3';
    const handler = (v: Order, m: EventMeta): Promise<void> | void => {
      if (v.orderId === stopAt) return new Promise<void>(() => undefined); // "crashes" here
      got.push(v.orderId);
      metas.push(m);
    };
    let sub = b.consume(OrderCreated, 'n', handler, { durable: 'd', store, startFrom: 'earliest' });
    await sub.start();
    const pub = a.batchPublisher(OrderCreated, 'n', { batch: { maxEvents: 5 } });
    for (let i = 0; i < 8; i++) pub.send(order(String(i)));
    await pub.flush();
    await waitFor(() => got.length === 3, { what: 'events before the stuck one' });
    await sub.close();
    const [first] = await a.items('n');
    expect((await store.load('pubsub.test\u0000n\u0000d'))?.lastId).toBe(`${first!.id}#2`);
    stopAt = '';
    sub = b.consume(OrderCreated, 'n', handler, { durable: 'd', store });
    await sub.start();
    await waitFor(() => got.length === 8, { what: 'the rest after the restart' });
    expect(got).toEqual(['0', '1', '2', '3', '4', '5', '6', '7']);
    expect(metas.slice(3).every((m) => m.replay)).toBe(true);
    await sub.close();
  });
});

describe('batched group delivery', () => {
  it('a leader hands a member the events of one tick in one <deliver/>; each event is handled once', async () => {
    const a = client('svc-a.test');
    await a.createNode('jobs', { maxItems: 100 });
    const delivered: number[] = []; // events per <deliver/> IQ
    const handledBy = new Map<string, string[]>();
    const members = ['svc-b.test', 'svc-c.test'].map((addr) => {
      const ps = client(addr);
      const caller = ps.session.caller;
      const request = caller.request.bind(caller);
      caller.request = (iq, o) => {
        const d = iq.getChild('deliver');
        if (d) delivered.push(d.attrs['ids'] === undefined ? 1 : String(d.attrs['ids']).split(' ').length);
        return request(iq, o);
      };
      return ps.consume(
        OrderCreated,
        'jobs',
        (v) => void handledBy.set(v.orderId, [...(handledBy.get(v.orderId) ?? []), addr]),
        { group: 'workers' },
      );
    });
    for (const m of members) await m.start();
    const pub = a.batchPublisher(OrderCreated, 'jobs', { batch: { maxEvents: 20 } });
    for (let i = 0; i < 60; i++) pub.send(order(`j${i}`));
    await pub.flush();
    await waitFor(() => handledBy.size === 60, { what: 'all 60 handled' });
    expect([...handledBy.values()].every((by) => by.length === 1)).toBe(true);
    expect(new Set([...handledBy.values()].flat()).size).toBe(2); // both members took a share
    const toMember = delivered.reduce((x, y) => x + y, 0);
    expect(toMember).toBeGreaterThan(0);
    expect(delivered.length).toBeLessThan(toMember); // fewer IQs than events
    for (const m of members) await m.drain({ timeout: 1_000 });
    for (const m of members) await m.close();
  });

  it('a member answers the documented batched <deliver/> as docs/protocol.md shows', async () => {
    const a = client('svc-a.test');
    await a.createNode('orders', { maxItems: 10 });
    const b = client('svc-b.test');
    const got: string[] = [];
    const m = b.consume(
      OrderCreated,
      'orders',
      (v) => {
        if (v.orderId === 'o-19') throw new Error('boom');
        got.push(v.orderId);
      },
      { group: 'billing' },
    );
    await m.start();
    const text = docExample('group-batch-deliver');
    const request = parseXml(text.slice(0, text.indexOf('<!--')).trim());
    request.attrs['from'] = 'svc-a.test';
    request.attrs['to'] = 'svc-b.test';
    const res = await a.session.caller.request(request);
    expect(got).toEqual(['o-17']);
    const failed = res.getChild('delivered')!.getChildren('failed');
    expect(failed.map((f) => f.attrs['id'])).toEqual(['b-7Qz1#2']);
    const error = failed[0]!.getChild('error')!;
    expect(error.getChild('handler-failed')?.attrs['xmlns']).toBe('urn:xmppbus:pubsub:1');
    expect(error.attrs['type']).toBe('cancel');
    await m.close();
  });
});
