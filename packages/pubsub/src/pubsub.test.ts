import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { xml } from '@xmppbus/core';
import { ValidationError, event } from '@xmppbus/schema';
import { memoryHub, type MemoryHub } from '@xmppbus/transport-memory';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileCheckpointStore, MemoryCheckpointStore } from './checkpoint-store.js';
import { PreconditionNotMetError, PubSubForbiddenError } from './errors.js';
import type { PubSubEvent } from './events.js';
import { PubSub } from './pubsub.js';
import { MemoryPubSubService } from './testing/memory-pubsub-service.js';

const OrderCreated = event({
  ns: 'urn:test:orders:1',
  name: 'created',
  schema: Type.Object({ orderId: Type.String(), qty: Type.Integer({ minimum: 1 }) }),
});

async function waitFor(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

let hub: MemoryHub;
let service: MemoryPubSubService;
const clients: PubSub[] = [];
function client(address: string): PubSub {
  const p = new PubSub({ transport: hub.connect(address), service: 'pubsub.test', timeout: 5_000 });
  clients.push(p);
  return p;
}

beforeEach(() => {
  hub = memoryHub();
  service = new MemoryPubSubService(hub.connect('pubsub.test'), {
    admins: ['svc-a.test', 'svc-b.test', 'svc-c.test', 'svc-e.test'],
  });
});
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

describe('owner operations', () => {
  it('creates a node with a configuration and reads/changes it', async () => {
    const a = client('svc-a.test');
    await a.createNode('orders', { maxItems: 50, notificationType: 'normal' });
    const cfg = await a.getNodeConfig('orders');
    expect(cfg.maxItems).toBe(50);
    expect(cfg.notificationType).toBe('normal');
    expect(cfg.persistItems).toBe(true); // from EVENT_NODE_DEFAULTS
    expect(cfg.sendLastPublishedItem).toBe('never');
    await a.configureNode('orders', { maxItems: 5 });
    expect((await a.getNodeConfig('orders')).maxItems).toBe(5);
    expect(await a.ensureNode('orders', { maxItems: 7 })).toBe(false);
    expect((await a.getNodeConfig('orders')).maxItems).toBe(7);
    expect((await a.discoverNodes()).map((n) => n.node)).toContain('orders');
    expect(await a.nodeExists('orders')).toBe(true);
    expect(await a.nodeExists('nope')).toBe(false);
  });

  it('refuses node creation to a non-admin with a clear PubSubForbiddenError', async () => {
    const d = client('svc-d.test');
    const err = await d.createNode('x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PubSubForbiddenError);
    expect((err as PubSubForbiddenError).operation).toBe('create');
    expect((err as Error).message).toMatch(/admins/);
  });

  it('publishing needs an affiliation; ensurePublishers grants it', async () => {
    const a = client('svc-a.test');
    const d = client('svc-d.test');
    await a.createNode('orders');
    const err = await d.publish('orders', OrderCreated, { orderId: 'o1', qty: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PubSubForbiddenError);
    expect((err as Error).message).toMatch(/publisher/);
    await a.ensurePublishers('orders', ['svc-d.test']);
    expect((await a.getAffiliations('orders')).get('svc-d.test')).toBe('publisher');
    await expect(d.publish('orders', OrderCreated, { orderId: 'o1', qty: 1 })).resolves.toBeTypeOf('string');
  });

  it('delete and purge reach subscribers as events', async () => {
    const a = client('svc-a.test');
    const b = client('svc-b.test');
    await a.createNode('n');
    await b.subscribe('n');
    const events: PubSubEvent[] = [];
    b.onNode('n', (e) => events.push(e));
    await a.publish('n', OrderCreated, { orderId: '1', qty: 1 }, { id: '1' });
    await a.retract('n', '1');
    await a.purgeNode('n');
    await a.deleteNode('n');
    await waitFor(() => events.length === 4, '4 events');
    expect(events.map((e) => e.type)).toEqual(['items', 'retract', 'purge', 'delete']);
  });

  it('onNode with jid takes only the notifications addressed to that JID', async () => {
    const a = client('svc-a.test');
    const b = client('svc-b.test');
    await a.createNode('n');
    await b.subscribe('n', { jid: 'svc-b.test' });
    await b.subscribe('n', { jid: 'w1@svc-b.test' });
    const forB: string[] = [];
    const forW1: string[] = [];
    const all: string[] = [];
    b.onNode('n', (e) => forB.push(String(e.stanza.attrs['to'])), { jid: 'svc-b.test' });
    const offW1 = b.onNode('n', (e) => forW1.push(String(e.stanza.attrs['to'])), { jid: 'w1@svc-b.test' });
    b.onNode('n', (e) => all.push(String(e.stanza.attrs['to'])));
    await a.publish('n', OrderCreated, { orderId: '1', qty: 1 }, { id: '1' });
    await waitFor(() => all.length === 2, '2 notifications');
    expect(forB).toEqual(['svc-b.test']);
    expect(forW1).toEqual(['w1@svc-b.test']);
    offW1();
    await a.publish('n', OrderCreated, { orderId: '2', qty: 1 }, { id: '2' });
    await waitFor(() => all.length === 4, '4 notifications');
    expect(forB).toEqual(['svc-b.test', 'svc-b.test']);
    expect(forW1).toEqual(['w1@svc-b.test']);
  });
});

describe('publish and consume', () => {
  it('validates before sending and delivers typed payloads', async () => {
    const a = client('svc-a.test');
    const b = client('svc-b.test');
    await a.createNode('orders');
    const got: { v: unknown; id: string }[] = [];
    const sub = b.consume('orders', OrderCreated, (v, meta) => {
      got.push({ v, id: meta.id });
    });
    await sub.ready({ timeout: 5_000 });
    const before = service.published;
    // qty must be ≥ 1: the schema, not the type, rejects it
    await expect(a.publish('orders', OrderCreated, { orderId: 'x', qty: 0 })).rejects.toBeInstanceOf(ValidationError);
    expect(service.published).toBe(before);
    await a.publish('orders', OrderCreated, { orderId: 'o1', qty: 2 }, { id: 'o1' });
    await waitFor(() => got.length === 1, 'delivery');
    expect(got[0]).toEqual({ v: { orderId: 'o1', qty: 2 }, id: 'o1' });
    await sub.close();
  });

  it('reports and skips invalid events without stopping', async () => {
    const a = client('svc-a.test');
    const b = client('svc-b.test');
    await a.createNode('orders');
    const got: string[] = [];
    const invalid: string[] = [];
    const sub = b.consume('orders', OrderCreated, (v) => void got.push(v.orderId), {
      onInvalid: (e) => invalid.push(e.id),
    });
    await sub.ready();
    await a.publishElement('orders', xml('created', { xmlns: 'urn:test:orders:1' }, xml('orderId', null, 'bad')), {
      id: 'bad',
    });
    await a.publishElement('orders', xml('other', { xmlns: 'urn:x' }), { id: 'alien' });
    await a.publish('orders', OrderCreated, { orderId: 'good', qty: 1 }, { id: 'good' });
    await waitFor(() => got.length === 1, 'good event');
    expect(invalid).toEqual(['bad', 'alien']);
    expect(sub.stats.invalid).toBe(2);
    expect(sub.stats.handled).toBe(1);
    await sub.close();
  });

  it('same id replaces (idempotent); items by last N and by id; preconditions', async () => {
    const a = client('svc-a.test');
    await a.createNode('orders', { maxItems: 10 });
    await a.publish('orders', OrderCreated, { orderId: '1', qty: 1 }, { id: 'i1' });
    await a.publish('orders', OrderCreated, { orderId: '2', qty: 1 }, { id: 'i2' });
    await a.publish('orders', OrderCreated, { orderId: '1', qty: 1 }, { id: 'i1' });
    expect((await a.items('orders')).map((i) => i.id)).toEqual(['i2', 'i1']);
    expect((await a.items('orders', { max: 1 })).map((i) => i.id)).toEqual(['i1']);
    expect((await a.items('orders', { ids: ['i2'] })).map((i) => i.id)).toEqual(['i2']);
    await expect(
      a.publish('orders', OrderCreated, { orderId: '3', qty: 1 }, { preconditions: { accessModel: 'whitelist' } }),
    ).rejects.toBeInstanceOf(PreconditionNotMetError);
    await expect(
      a.publish('orders', OrderCreated, { orderId: '3', qty: 1 }, { preconditions: { accessModel: 'open' } }),
    ).resolves.toBeTypeOf('string');
  });

  it('subscribe is idempotent and listed; unsubscribe twice is fine', async () => {
    const a = client('svc-a.test');
    const b = client('svc-b.test');
    await a.createNode('n');
    const s1 = await b.subscribe('n');
    const s2 = await b.subscribe('n');
    expect(s2.subid).toBe(s1.subid);
    expect((await b.subscriptions({ node: 'n' })).length).toBe(1);
    expect((await a.getSubscribers('n')).map((s) => s.jid)).toEqual(['svc-b.test']);
    await b.unsubscribe('n');
    await b.unsubscribe('n');
    expect(await b.subscriptions({ node: 'n' })).toEqual([]);
  });
});

describe('durable consumers', () => {
  it('catches up after downtime in order, skipping what was processed, then continues live', async () => {
    const a = client('svc-a.test');
    const b = client('svc-b.test');
    await a.createNode('orders', { maxItems: 100 });
    const store = new MemoryCheckpointStore();
    const got: string[] = [];
    const replays: boolean[] = [];
    const handler = (v: { orderId: string }, m: { replay: boolean }): void => {
      got.push(v.orderId);
      replays.push(m.replay);
    };
    await a.publish('orders', OrderCreated, { orderId: 'old', qty: 1 }, { id: 'old' });
    let sub = b.consume('orders', OrderCreated, handler, { durable: 'billing', store });
    await sub.ready();
    for (const id of ['1', '2']) await a.publish('orders', OrderCreated, { orderId: id, qty: 1 }, { id });
    await waitFor(() => got.length === 2, 'live 1,2');
    await sub.close();
    for (const id of ['3', '4', '5']) await a.publish('orders', OrderCreated, { orderId: id, qty: 1 }, { id });
    sub = b.consume('orders', OrderCreated, handler, { durable: 'billing', store });
    await sub.ready();
    await a.publish('orders', OrderCreated, { orderId: '6', qty: 1 }, { id: '6' });
    await waitFor(() => got.length === 6, 'catch-up + live');
    expect(got).toEqual(['1', '2', '3', '4', '5', '6']);
    expect(replays).toEqual([false, false, true, true, true, false]);
    await sub.close();
  });

  it('has no gap or duplicate at the seam when events arrive during catch-up', async () => {
    hub.latencyMs = 2;
    const a = client('svc-a.test');
    const b = client('svc-b.test');
    await a.createNode('orders', { maxItems: 1000 });
    const store = new MemoryCheckpointStore();
    const got: string[] = [];
    let sub = b.consume('orders', OrderCreated, (v) => void got.push(v.orderId), { durable: 'd', store });
    await sub.ready();
    await sub.close();
    for (let i = 0; i < 20; i++) await a.publish('orders', OrderCreated, { orderId: `p${i}`, qty: 1 }, { id: `p${i}` });
    sub = b.consume('orders', OrderCreated, (v) => void got.push(v.orderId), { durable: 'd', store });
    const live = (async () => {
      for (let i = 0; i < 20; i++)
        await a.publish('orders', OrderCreated, { orderId: `l${i}`, qty: 1 }, { id: `l${i}` });
    })();
    await sub.ready();
    await live;
    await waitFor(() => got.length >= 40, '40 events');
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toEqual([
      ...Array.from({ length: 20 }, (_, i) => `p${i}`),
      ...Array.from({ length: 20 }, (_, i) => `l${i}`),
    ]);
    await sub.close();
  });

  it('the file store survives a new process (new store instance on the same dir)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'xmppbus-ckpt-'));
    try {
      const s1 = new FileCheckpointStore(dir);
      await s1.save('k', { lastId: 'x', recent: ['w', 'x'] });
      const s2 = new FileCheckpointStore(dir);
      expect(await s2.load('k')).toEqual({ lastId: 'x', recent: ['w', 'x'] });
      expect(await s2.load('other')).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('resubscribes and catches up after the link drops', async () => {
    const a = client('svc-a.test');
    const b = client('svc-b.test');
    await a.createNode('orders', { maxItems: 100 });
    const got: string[] = [];
    const sub = b.consume('orders', OrderCreated, (v) => void got.push(v.orderId));
    await sub.ready();
    await a.publish('orders', OrderCreated, { orderId: '1', qty: 1 }, { id: '1' });
    await waitFor(() => got.length === 1, 'first');
    hub.disconnect('svc-b.test');
    await a.publish('orders', OrderCreated, { orderId: '2', qty: 1 }, { id: '2' }); // bounced: b is away
    hub.reconnect('svc-b.test');
    await waitFor(() => got.length === 2, 'caught up after reconnect');
    await a.publish('orders', OrderCreated, { orderId: '3', qty: 1 }, { id: '3' });
    await waitFor(() => got.length === 3, 'live again');
    expect(got).toEqual(['1', '2', '3']);
    await sub.close();
  });
});

describe('competing consumers', () => {
  it('exactly one live member handles each event while members join and leave', async () => {
    const a = client('svc-a.test');
    await a.createNode('jobs', { maxItems: 1000 });
    const handledBy = new Map<string, string[]>();
    const consumerOf = (addr: string): ReturnType<PubSub['consume']> => {
      const ps = client(addr);
      return ps.consume(
        'jobs',
        OrderCreated,
        (v) => {
          handledBy.set(v.orderId, [...(handledBy.get(v.orderId) ?? []), addr]);
        },
        { group: 'workers', heartbeatMs: 100 },
      );
    };
    const m1 = consumerOf('svc-b.test');
    await m1.ready();
    const m2 = consumerOf('svc-c.test');
    await m2.ready();
    let n = 0;
    const publish = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++, n++)
        await a.publish('jobs', OrderCreated, { orderId: `j${n}`, qty: 1 }, { id: `j${n}` });
    };
    await new Promise((r) => setTimeout(r, 250)); // m2 has joined by its first heartbeat
    await publish(30);
    await waitFor(() => handledBy.size === 30, '30 handled');
    const members = new Set([...handledBy.values()].flat());
    expect(members).toEqual(new Set(['svc-b.test', 'svc-c.test']));
    // The leader (m1) leaves gracefully; a new member joins.
    expect(m1.leader).toBe(true);
    await m1.close();
    const m3 = consumerOf('svc-e.test');
    await m3.ready();
    await publish(30);
    await waitFor(() => handledBy.size === 60, '60 handled');
    await m2.close();
    await publish(10);
    await waitFor(() => handledBy.size === 70, '70 handled');
    const dups = [...handledBy].filter(([, by]) => by.length !== 1);
    expect(dups).toEqual([]);
    await m3.close();
  });
});
