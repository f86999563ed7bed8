import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccessPolicy, ClosedError, ManualClock, Session, xml, type Logger } from '@xmppbus/core';
import { ValidationError } from '@xmppbus/schema';
import { OrderCreated, waitFor } from '@xmppbus/testing';
import { memoryHub, type MemoryHub } from '@xmppbus/transport-memory';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileCheckpointStore, MemoryCheckpointStore } from './checkpoint-store.js';
import { PreconditionNotMetError, PubSubForbiddenError } from './errors.js';
import type { PubSubEvent } from './events.js';
import { PubSub } from './pubsub.js';
import { MemoryPubSubService } from './testing/memory-pubsub-service.js';
import type { EventMeta } from './types.js';

/** The in-memory XEP-0060 service serves any account, like a server's pubsub component. */
const openService = new AccessPolicy({ rules: [{ from: '*' }] });

let hub: MemoryHub;
let clock: ManualClock;
let service: MemoryPubSubService;
const clients: PubSub[] = [];
function client(address: string, logger?: Logger): PubSub {
  const session = new Session({ transport: hub.connect(address), clock, ...(logger ? { logger } : {}) });
  const p = new PubSub({ session, service: 'pubsub.test' });
  clients.push(p);
  return p;
}
const order = (orderId: string): { orderId: string; qty: number } => ({ orderId, qty: 1 });

beforeEach(async () => {
  hub = memoryHub();
  clock = new ManualClock(Date.UTC(2026, 0, 1));
  service = new MemoryPubSubService(
    new Session({ transport: hub.connect('pubsub.test'), clock, access: openService }),
    {
      admins: ['svc-a.test', 'svc-b.test', 'svc-c.test', 'svc-e.test'],
    },
  );
  await service.start();
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.session.close();
  await service.close();
});

describe('lifecycle', () => {
  it('the constructor does nothing; start() attaches; close() is async, idempotent and refuses new work', async () => {
    const a = client('svc-a.test');
    expect(a.status).toBe('idle');
    expect(a.session.status).toBe('idle');
    await a.start();
    expect(a.status).toBe('ready');
    await a.createNode('n');
    await a.close();
    await a.close();
    await expect(a.createNode('m')).rejects.toBeInstanceOf(ClosedError);
    expect(() => a.consume(OrderCreated, 'n', () => undefined)).toThrow(ClosedError);
  });

  it('the first request starts a client that was not started', async () => {
    const a = client('svc-a.test');
    await a.createNode('n');
    expect(a.status).toBe('ready');
  });

  it('closing the session closes the client and its consumers (await using)', async () => {
    const a = client('svc-a.test');
    await a.createNode('n');
    const b = client('svc-b.test');
    const sub = b.consume(OrderCreated, 'n', () => undefined);
    await sub.start();
    {
      await using _s = b.session;
    }
    expect(b.status).toBe('closed');
    expect(sub.status).toBe('closed');
  });
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
    expect((await a.info()).features.size).toBeGreaterThan(0);
  });

  it('refuses node creation to a non-admin with a clear PubSubForbiddenError', async () => {
    const d = client('svc-d.test');
    const err = await d.createNode('x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PubSubForbiddenError);
    expect((err as PubSubForbiddenError).operation).toBe('create');
    expect((err as PubSubForbiddenError).code).toBe('ERR_STANZA');
    expect((err as PubSubForbiddenError).retryable).toBe(false);
    expect((err as Error).message).toMatch(/admins/);
  });

  it('publishing needs an affiliation; ensurePublishers grants it', async () => {
    const a = client('svc-a.test');
    const d = client('svc-d.test');
    await a.createNode('orders');
    const err = await d.publish(OrderCreated, 'orders', order('o1')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PubSubForbiddenError);
    expect((err as Error).message).toMatch(/publisher/);
    await a.ensurePublishers('orders', ['svc-d.test']);
    expect((await a.getAffiliations('orders')).get('svc-d.test')).toBe('publisher');
    await expect(d.publish(OrderCreated, 'orders', order('o1'))).resolves.toBeTypeOf('string');
  });

  it('delete and purge reach subscribers as events', async () => {
    const a = client('svc-a.test');
    const b = client('svc-b.test');
    await a.createNode('n');
    await b.subscribe('n');
    const events: PubSubEvent[] = [];
    b.onNode('n', (e) => events.push(e));
    await a.publish(OrderCreated, 'n', order('1'), { id: '1' });
    await a.retract('n', '1');
    await a.purgeNode('n');
    await a.deleteNode('n');
    await waitFor(() => events.length === 4, { what: '4 events' });
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
    await a.publish(OrderCreated, 'n', order('1'), { id: '1' });
    await waitFor(() => all.length === 2, { what: '2 notifications' });
    expect(forB).toEqual(['svc-b.test']);
    expect(forW1).toEqual(['w1@svc-b.test']);
    offW1();
    await a.publish(OrderCreated, 'n', order('2'), { id: '2' });
    await waitFor(() => all.length === 4, { what: '4 notifications' });
    expect(forB).toEqual(['svc-b.test', 'svc-b.test']);
    expect(forW1).toEqual(['w1@svc-b.test']);
  });
});

describe('publish and consume', () => {
  it('validates before sending and delivers typed payloads with the handler context', async () => {
    const a = client('svc-a.test');
    const b = client('svc-b.test');
    await a.createNode('orders');
    const got: { v: unknown; meta: EventMeta }[] = [];
    const sub = b.consume(OrderCreated, 'orders', (v, meta) => {
      got.push({ v, meta });
    });
    await sub.start();
    expect(sub.status).toBe('ready');
    const before = service.published;
    // qty must be an integer: the schema, not the type, rejects 1.5
    await expect(a.publish(OrderCreated, 'orders', { orderId: 'x', qty: 1.5 })).rejects.toBeInstanceOf(ValidationError);
    expect(service.published).toBe(before);
    await a.publish(OrderCreated, 'orders', { orderId: 'o1', qty: 2 }, { id: 'o1' });
    await waitFor(() => got.length === 1, { what: 'delivery' });
    const { v, meta } = got[0]!;
    expect(v).toEqual({ orderId: 'o1', qty: 2 });
    expect(meta).toMatchObject({
      id: 'o1',
      node: 'orders',
      from: 'pubsub.test',
      replay: false,
      delayedFrom: undefined,
    });
    expect(meta.headers.size).toBe(0);
    expect(meta.signal.aborted).toBe(false);
    await sub.close();
    expect(meta.signal.aborted).toBe(true);
  });

  it('headers travel inside the payload: stored with the item and handed to consumers', async () => {
    const a = client('svc-a.test');
    const b = client('svc-b.test');
    await a.createNode('orders');
    const metas: EventMeta[] = [];
    const sub = b.consume(OrderCreated, 'orders', (_v, meta) => void metas.push(meta));
    await sub.start();
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    await a.publish(OrderCreated, 'orders', order('h1'), { id: 'h1', headers: { traceparent } });
    await a.publish(OrderCreated, 'orders', order('h2'), { id: 'h2', headers: new Map([['x-one', '1']]) });
    await waitFor(() => metas.length === 2, { what: 'two events' });
    expect(metas[0]!.headers.get('traceparent')).toBe(traceparent);
    expect([...metas[1]!.headers]).toEqual([['x-one', '1']]);
    const stored = await b.items('orders', { ids: ['h1'] });
    expect(stored[0]!.payload?.toString()).toContain(traceparent);
    await sub.close();
  });

  it('reports and skips invalid events without stopping, with a warning on the session logger', async () => {
    const a = client('svc-a.test');
    const warnings: string[] = [];
    const logger: Logger = {
      error: () => undefined,
      warn: (m) => warnings.push(m),
      info: () => undefined,
      debug: () => undefined,
    };
    const b = client('svc-b.test', logger);
    await a.createNode('orders');
    const got: string[] = [];
    const invalid: string[] = [];
    const sub = b.consume(OrderCreated, 'orders', (v) => void got.push(v.orderId), {
      onInvalid: (e) => invalid.push(e.id),
    });
    await sub.start();
    const ns = OrderCreated.ns;
    await a.publishElement('orders', xml('created', { xmlns: ns }, xml('orderId', null, 'bad')), { id: 'bad' });
    await a.publishElement('orders', xml('other', { xmlns: 'urn:x' }), { id: 'alien' });
    await a.publish(OrderCreated, 'orders', order('good'), { id: 'good' });
    await waitFor(() => got.length === 1, { what: 'good event' });
    expect(invalid).toEqual(['bad', 'alien']);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/skipped invalid event 'bad'/);
    expect(sub.stats.invalid).toBe(2);
    expect(sub.stats.handled).toBe(1);
    await sub.close();
  });

  it('same id replaces (idempotent); items by last N and by id; preconditions', async () => {
    const a = client('svc-a.test');
    await a.createNode('orders', { maxItems: 10 });
    await a.publish(OrderCreated, 'orders', order('1'), { id: 'i1' });
    await a.publish(OrderCreated, 'orders', order('2'), { id: 'i2' });
    await a.publish(OrderCreated, 'orders', order('1'), { id: 'i1' });
    expect((await a.items('orders')).map((i) => i.id)).toEqual(['i2', 'i1']);
    expect((await a.items('orders', { max: 1 })).map((i) => i.id)).toEqual(['i1']);
    expect((await a.items('orders', { ids: ['i2'] })).map((i) => i.id)).toEqual(['i2']);
    await expect(
      a.publish(OrderCreated, 'orders', order('3'), { preconditions: { accessModel: 'whitelist' } }),
    ).rejects.toBeInstanceOf(PreconditionNotMetError);
    await expect(
      a.publish(OrderCreated, 'orders', order('3'), { preconditions: { accessModel: 'open' } }),
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
    await a.publish(OrderCreated, 'orders', order('old'), { id: 'old' });
    let sub = b.consume(OrderCreated, 'orders', handler, { durable: 'billing', store });
    await sub.start();
    for (const id of ['1', '2']) await a.publish(OrderCreated, 'orders', order(id), { id });
    await waitFor(() => got.length === 2, { what: 'live 1,2' });
    await sub.drain({ timeout: 1_000 });
    await sub.close();
    for (const id of ['3', '4', '5']) await a.publish(OrderCreated, 'orders', order(id), { id });
    sub = b.consume(OrderCreated, 'orders', handler, { durable: 'billing', store });
    await sub.start();
    await a.publish(OrderCreated, 'orders', order('6'), { id: '6' });
    await waitFor(() => got.length === 6, { what: 'catch-up + live' });
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
    let sub = b.consume(OrderCreated, 'orders', (v) => void got.push(v.orderId), { durable: 'd', store });
    await sub.start();
    await sub.close();
    for (let i = 0; i < 20; i++) await a.publish(OrderCreated, 'orders', order(`p${i}`), { id: `p${i}` });
    sub = b.consume(OrderCreated, 'orders', (v) => void got.push(v.orderId), { durable: 'd', store });
    const started = sub.start();
    for (let i = 0; i < 20; i++) await a.publish(OrderCreated, 'orders', order(`l${i}`), { id: `l${i}` });
    await started;
    // A last event is handled after everything before it (one handler at a time, in order): once
    // it is in, nothing else can still come.
    await a.publish(OrderCreated, 'orders', order('end'), { id: 'end' });
    await waitFor(() => got.includes('end'), { what: 'the last event' });
    expect(got).toEqual([
      ...Array.from({ length: 20 }, (_, i) => `p${i}`),
      ...Array.from({ length: 20 }, (_, i) => `l${i}`),
      'end',
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
    const sub = b.consume(OrderCreated, 'orders', (v) => void got.push(v.orderId));
    await sub.start();
    await a.publish(OrderCreated, 'orders', order('1'), { id: '1' });
    await waitFor(() => got.length === 1, { what: 'first' });
    hub.disconnect('svc-b.test');
    await a.publish(OrderCreated, 'orders', order('2'), { id: '2' }); // bounced: b is away
    hub.reconnect('svc-b.test');
    await waitFor(() => got.length === 2, { what: 'caught up after reconnect' });
    await a.publish(OrderCreated, 'orders', order('3'), { id: '3' });
    await waitFor(() => got.length === 3, { what: 'live again' });
    expect(got).toEqual(['1', '2', '3']);
    await sub.close();
  });
});
