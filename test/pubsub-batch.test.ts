// Event batching (docs/protocol.md §4) against real Prosody and ejabberd: many events per item reach
// 10 subscribers one by one, in order and typed; a competing-consumer group resumes inside a batch
// after its leader stopped mid-batch; invalid events and hostile batch items are handled.
import { ProtocolError, xml } from '@xmppbus/core';
import { NS_EVENTS_BATCH, type InvalidEvent } from '@xmppbus/pubsub';
import { OrderCreated, describeServers, waitFor } from '@xmppbus/testing';
import { expect, it } from 'vitest';
import { pubsubClients } from './pubsub-fixtures.js';

const until = (cond: () => boolean, what: string): Promise<void> => waitFor(cond, { what, timeout: 20_000 });
const connect = pubsubClients(15_000);
let seq = 0;
const uniq = (p: string): string => `${p}-${Date.now().toString(36)}-${++seq}`;
const order = (orderId: string): { orderId: string; qty: number } => ({ orderId, qty: 1 });
const range = (n: number): string[] => Array.from({ length: n }, (_, i) => `o${i}`);

describeServers('pubsub event batches', (server, kind) => {
  it(`batched events reach 10 subscribers each once, in order, typed, with their headers [${kind}]`, async () => {
    const a = await connect(server(), 'svc-a.localhost');
    const b = await connect(server(), 'svc-b.localhost');
    const node = uniq('batch');
    await a.createNode(node);
    const got = Array.from({ length: 10 }, () => [] as { id: string; orderId: string; n: string | undefined }[]);
    for (let w = 0; w < 10; w++) {
      const c = b.consume(
        OrderCreated,
        node,
        (v, m) => void got[w]!.push({ id: m.id, orderId: v.orderId, n: m.headers.get('x-n') }),
        { jid: w === 0 ? 'svc-b.localhost' : `w${w}@svc-b.localhost` },
      );
      await c.start({ timeout: 15_000 });
    }
    const pub = a.batchPublisher(OrderCreated, node, { batch: { maxEvents: 50 } });
    const ids = range(230).map((o, i) => pub.send(order(o), { headers: { 'x-n': String(i) } }));
    await pub.flush({ timeout: 15_000 });
    expect(new Set(ids.map((id) => id.slice(0, id.indexOf('#')))).size).toBe(5); // 50+50+50+50+30
    await until(() => got.every((l) => l.length >= 230), 'every event at every subscriber');
    for (const list of got) {
      expect(list.map((e) => e.orderId)).toEqual(range(230));
      expect(list.map((e) => e.id)).toEqual(ids);
      expect(list[77]!.n).toBe('77');
    }
    // Item retrieval returns the batches as stored: one wrapper per item.
    const items = await a.items(node);
    expect(items.map((i) => i.payload?.attrs['count'])).toEqual(['50', '50', '50', '50', '30']);
    expect(items[0]!.payload?.attrs['xmlns']).toBe(NS_EVENTS_BATCH);
  });

  it(`a group resumes inside a batch after its leader stopped mid-batch: nothing skipped, nothing twice [${kind}]`, async () => {
    const a = await connect(server(), 'svc-a.localhost');
    const node = uniq('batch-jobs');
    await a.createNode(node);
    const handled: string[] = [];
    let stuckAt = 'o7';
    const start = async (domain: string): Promise<ReturnType<(typeof a)['consume']>> => {
      const ps = await connect(server(), domain);
      const c = ps.consume(
        OrderCreated,
        node,
        (v) => {
          if (v.orderId === stuckAt) return new Promise<void>(() => undefined); // the "crash" point
          handled.push(v.orderId);
        },
        { group: 'batchers', heartbeatMs: 200, concurrency: 1 },
      );
      await c.start({ timeout: 30_000 });
      return c;
    };
    const first = await start('svc-d.localhost');
    expect(first.leader).toBe(true);
    const pub = a.batchPublisher(OrderCreated, node, { batch: { maxEvents: 5 } });
    for (const o of range(12)) pub.send(order(o));
    await pub.flush({ timeout: 15_000 });
    await until(() => handled.length === 7, 'the events before the stuck one');
    // An abrupt leave: the handler in flight is cut short and the position (o6 = item 2, index 1) saved.
    await first.close();
    stuckAt = '';
    const second = await start('svc-e.localhost');
    await until(() => handled.length === 12, 'the rest, from the middle of the second batch');
    expect(handled).toEqual(range(12));
    await second.close();
  });

  it(`a group of three shares batched events, each handled once, over batched <deliver/>s [${kind}]`, async () => {
    const a = await connect(server(), 'svc-a.localhost');
    const node = uniq('batch-group');
    await a.createNode(node);
    const handledBy = new Map<string, string[]>();
    const members = [];
    for (const domain of ['svc-d.localhost', 'svc-e.localhost', 'svc-f.localhost']) {
      const ps = await connect(server(), domain);
      const c = ps.consume(
        OrderCreated,
        node,
        (v) => void handledBy.set(v.orderId, [...(handledBy.get(v.orderId) ?? []), domain]),
        { group: 'sharers', heartbeatMs: 200 },
      );
      await c.start({ timeout: 30_000 });
      members.push(c);
    }
    const pub = a.batchPublisher(OrderCreated, node, { batch: { maxEvents: 50 } });
    for (const o of range(300)) pub.send(order(o));
    await pub.flush({ timeout: 15_000 });
    await until(() => handledBy.size === 300, 'all 300 handled');
    await Promise.all(members.map((m) => m.drain({ timeout: 10_000 })));
    for (const m of members) await m.close();
    expect([...handledBy].filter(([, by]) => by.length !== 1)).toEqual([]);
    expect(new Set([...handledBy.values()].flat()).size).toBe(3);
  });

  it(`an invalid event is skipped alone; oversized and miscounted batch items are refused whole [${kind}]`, async () => {
    const a = await connect(server(), 'svc-a.localhost');
    const b = await connect(server(), 'svc-b.localhost');
    const node = uniq('batch-bad');
    await a.createNode(node);
    const got: string[] = [];
    const invalid: InvalidEvent[] = [];
    const c = b.consume(OrderCreated, node, (v) => void got.push(v.orderId), {
      maxBatchEvents: 3,
      onInvalid: (e) => invalid.push(e),
    });
    await c.start({ timeout: 15_000 });
    const ev = (id: string, qty = '1'): ReturnType<typeof xml> =>
      xml('created', { xmlns: OrderCreated.ns }, xml('orderId', null, id), xml('qty', null, qty));
    const batch = (count: number, ...evs: ReturnType<typeof xml>[]): ReturnType<typeof xml> =>
      xml('events', { xmlns: NS_EVENTS_BATCH, count: String(count) }, ...evs);
    await a.publishElement(node, batch(3, ev('1'), ev('2', 'two'), ev('3')), { id: 'b1' });
    await a.publishElement(node, batch(4, ev('4'), ev('5'), ev('6'), ev('7')), { id: 'b2' });
    await a.publishElement(node, batch(2, ev('8')), { id: 'b3' });
    await a.publishElement(node, batch(1, ev('9')), { id: 'b4' });
    await until(() => got.includes('9'), 'the item after the refused ones');
    expect(got).toEqual(['1', '3', '9']);
    expect(invalid.map((e) => e.id)).toEqual(['b1#1', 'b2', 'b3']);
    expect(invalid[1]!.error).toBeInstanceOf(ProtocolError);
    expect(invalid[2]!.error.message).toMatch(/count='2'/);
    await c.close();
  });
});
