// @xmppbus/pubsub against real Prosody and ejabberd: every operation, events, invalid payloads,
// durable catch-up after a consumer crash, competing consumers, permissions.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StanzaError, xml } from '@xmppbus/core';
import {
  FileCheckpointStore,
  PreconditionNotMetError,
  type PubSub,
  PubSubForbiddenError,
  type Consumer,
  type EventMeta,
  type PubSubEvent,
} from '@xmppbus/pubsub';
import { ValidationError } from '@xmppbus/schema';
import { OrderCreated, describeServers, waitFor } from '@xmppbus/testing';
import { expect, it } from 'vitest';
import { pubsubClients } from './pubsub-fixtures.js';

const until = (cond: () => boolean, what: string): Promise<void> => waitFor(cond, { what, timeout: 20_000 });

const connect = pubsubClients(15_000);

let seq = 0;
const uniq = (p: string): string => `${p}-${Date.now().toString(36)}-${++seq}`;

describeServers('pubsub', (server, kind) => {
  it(`detects the server and discovers nodes [${kind}]`, async () => {
    const a = await connect(server(), 'svc-a.localhost');
    const info = await a.info();
    expect(info.flavor).toBe(kind);
    expect(await a.supports('publish-options')).toBe(true);
    const node = uniq('disco');
    await a.createNode(node);
    expect((await a.discoverNodes()).map((n) => n.node)).toContain(node);
    expect(await a.nodeExists(node)).toBe(true);
    expect(await a.nodeExists(uniq('absent'))).toBe(false);
  });

  it(`creates, reads and changes node configuration through data forms [${kind}]`, async () => {
    const a = await connect(server(), 'svc-a.localhost');
    const node = uniq('cfg');
    await a.createNode(node, {
      maxItems: 50,
      notificationType: 'normal',
      accessModel: 'open',
      publishModel: 'publishers',
    });
    const cfg = await a.getNodeConfig(node);
    expect(cfg.maxItems).toBe(50);
    expect(cfg.notificationType).toBe('normal');
    expect(cfg.persistItems).toBe(true);
    expect(cfg.notifyRetract).toBe(true);
    expect(cfg.notifyDelete).toBe(true); // ejabberd's default is off: our defaults turn it on
    expect(cfg.sendLastPublishedItem).toBe('never'); // ejabberd's default would replay on subscribe
    await a.configureNode(node, { maxItems: 'max', deliverPayloads: true });
    expect([1000, 'max']).toContain((await a.getNodeConfig(node)).maxItems); // ejabberd resolves 'max', Prosody keeps it
    expect(await a.ensureNode(node, { maxItems: 10 })).toBe(false);
    expect((await a.getNodeConfig(node)).maxItems).toBe(10);
  });

  it(`publishes typed events; same id replaces; retrieves all, last N and by id [${kind}]`, async () => {
    const a = await connect(server(), 'svc-a.localhost');
    const b = await connect(server(), 'svc-b.localhost');
    const node = uniq('orders');
    await a.createNode(node);
    const got: { id: string; v: unknown }[] = [];
    const sub = b.consume(OrderCreated, node, (v, m) => void got.push({ id: m.id, v }));
    await sub.start({ timeout: 20_000 });
    // @ts-expect-error qty must be an integer
    await expect(a.publish(OrderCreated, node, { orderId: 'x', qty: 'two' })).rejects.toBeInstanceOf(ValidationError);
    await a.publish(OrderCreated, node, { orderId: 'o1', qty: 1 }, { id: 'o1' });
    await a.publish(OrderCreated, node, { orderId: 'o2', qty: 2 }, { id: 'o2' });
    await a.publish(OrderCreated, node, { orderId: 'o1', qty: 1 }, { id: 'o1' });
    await until(() => got.length === 2 && sub.stats.duplicates === 1, 'two distinct events and the republish');
    expect(got).toEqual([
      { id: 'o1', v: { orderId: 'o1', qty: 1 } },
      { id: 'o2', v: { orderId: 'o2', qty: 2 } },
    ]);
    const all = await b.items(node);
    expect(all.map((i) => i.id).sort()).toEqual(['o1', 'o2']);
    expect((await b.items(node, { ids: ['o2'] })).map((i) => i.id)).toEqual(['o2']);
    expect((await b.items(node, { max: 1 })).length).toBe(1);
    await sub.close();
  });

  it(`SHIM headers cross pub/sub: stored with the item, in live notifications and on catch-up [${kind}]`, async () => {
    const a = await connect(server(), 'svc-a.localhost');
    const b = await connect(server(), 'svc-b.localhost');
    const node = uniq('hdr');
    await a.createNode(node);
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const live: EventMeta[] = [];
    const sub = b.consume(OrderCreated, node, (_v, m) => void live.push(m));
    await sub.start();
    await a.publish(
      OrderCreated,
      node,
      { orderId: 'h1', qty: 1 },
      { id: 'h1', headers: { traceparent, tracestate: 'x=1' } },
    );
    await until(() => live.length === 1, 'the live event');
    expect(live[0]!.headers.get('traceparent')).toBe(traceparent);
    expect(live[0]!.headers.get('tracestate')).toBe('x=1');
    await sub.close();
    // A durable consumer starting from the earliest item reads the stored copy.
    const replayed: EventMeta[] = [];
    const c = await connect(server(), 'svc-c.localhost');
    const durable = c.consume(OrderCreated, node, (_v, m) => void replayed.push(m), {
      durable: 'hdr',
      startFrom: 'earliest',
    });
    await durable.start();
    await until(() => replayed.length === 1, 'the replayed event');
    expect(replayed[0]!.replay).toBe(true);
    expect(replayed[0]!.headers.get('traceparent')).toBe(traceparent);
    await durable.close();
  });

  it(`publish-options preconditions [${kind}]`, async () => {
    const a = await connect(server(), 'svc-a.localhost');
    const node = uniq('pre');
    await a.createNode(node);
    const err = await a
      .publish(OrderCreated, node, { orderId: '1', qty: 1 }, { preconditions: { accessModel: 'whitelist' } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PreconditionNotMetError);
    await expect(
      a.publish(OrderCreated, node, { orderId: '1', qty: 1 }, { preconditions: { accessModel: 'open' } }),
    ).resolves.toBeTypeOf('string');
  });

  it(`subscriptions: idempotent subscribe, list, options, unsubscribe [${kind}]`, async () => {
    const a = await connect(server(), 'svc-a.localhost');
    const b = await connect(server(), 'svc-b.localhost');
    const node = uniq('subs');
    await a.createNode(node);
    await b.subscribe(node);
    await b.subscribe(node);
    expect((await b.subscriptions({ node })).length).toBe(1);
    expect((await a.getSubscribers(node)).map((s) => s.jid)).toContain('svc-b.localhost');
    const events: PubSubEvent[] = [];
    b.onNode(node, (e) => events.push(e));
    await a.publish(OrderCreated, node, { orderId: '1', qty: 1 }, { id: '1' });
    await a.publish(OrderCreated, node, { orderId: '2', qty: 1 }, { id: '2' });
    // Notifications reach one subscriber in order: a second delivery of '1' would precede '2'.
    const ids = (): string[] => events.flatMap((e) => (e.type === 'items' ? e.items.map((i) => i.id) : []));
    await until(() => ids().includes('2'), 'the second event');
    expect(ids()).toEqual(['1', '2']); // one subscription => one delivery
    if (kind === 'prosody') {
      const form = await b.getSubscriptionOptions(node);
      expect(form.formType).toBe('http://jabber.org/protocol/pubsub#subscribe_options');
    } else {
      const err = await b.getSubscriptionOptions(node).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StanzaError);
      expect((err as StanzaError).condition).toBe('feature-not-implemented');
    }
    await b.unsubscribe(node);
    await b.unsubscribe(node);
    expect(await b.subscriptions({ node })).toEqual([]);
  });

  it(`events for retract, configuration change, purge and node deletion [${kind}]`, async () => {
    const a = await connect(server(), 'svc-a.localhost');
    const b = await connect(server(), 'svc-b.localhost');
    const node = uniq('ev');
    await a.createNode(node);
    const other: PubSubEvent['type'][] = [];
    const sub = b.consume(OrderCreated, node, () => undefined, { onEvent: (e) => other.push(e.type) });
    await sub.start();
    await a.publish(OrderCreated, node, { orderId: '1', qty: 1 }, { id: '1' });
    await a.retract(node, '1');
    await until(() => other.includes('retract'), 'retract');
    await a.configureNode(node, { title: 'Orders' });
    // Prosody 0.12 has no pubsub#notify_config: it never announces configuration changes.
    if (kind === 'ejabberd') await until(() => other.includes('configuration'), 'configuration');
    await a.purgeNode(node);
    await until(() => other.includes('purge'), 'purge');
    await a.deleteNode(node);
    await until(() => other.includes('delete'), 'delete');
    expect(other).toEqual(
      kind === 'ejabberd' ? ['retract', 'configuration', 'purge', 'delete'] : ['retract', 'purge', 'delete'],
    );
    await sub.close();
  });

  it(`an invalid event is reported and skipped; the consumer goes on [${kind}]`, async () => {
    const a = await connect(server(), 'svc-a.localhost');
    const b = await connect(server(), 'svc-b.localhost');
    const node = uniq('inv');
    await a.createNode(node);
    const got: string[] = [];
    const invalid: string[] = [];
    const sub = b.consume(OrderCreated, node, (v) => void got.push(v.orderId), {
      onInvalid: (e) => invalid.push(e.id),
    });
    await sub.start();
    await a.publishElement(
      node,
      xml('created', { xmlns: OrderCreated.ns }, xml('orderId', null, 'x'), xml('qty', null, 'many')),
      {
        id: 'neg',
      },
    );
    await a.publishElement(node, xml('foreign', { xmlns: 'urn:other' }), { id: 'foreign' });
    await a.publish(OrderCreated, node, { orderId: 'ok', qty: 1 }, { id: 'ok' });
    await until(() => got.length === 1, 'valid event');
    expect(invalid).toEqual(['neg', 'foreign']);
    await sub.close();
  });

  it(`a durable consumer catches up after a crash, in order, without duplicates [${kind}]`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'xmppbus-durable-'));
    let second: { b: PubSub; sub: Consumer } | undefined;
    try {
      const a = await connect(server(), 'svc-a.localhost');
      const node = uniq('durable');
      await a.createNode(node);
      const got: string[] = [];
      const start = async (): Promise<{ b: PubSub; sub: Consumer }> => {
        const b = await connect(server(), 'svc-c.localhost');
        const sub = b.consume(OrderCreated, node, (v) => void got.push(v.orderId), {
          durable: 'billing',
          store: new FileCheckpointStore(dir),
        });
        await sub.start();
        return { b, sub };
      };
      const first = await start();
      for (let i = 0; i < 5; i++) await a.publish(OrderCreated, node, { orderId: `e${i}`, qty: 1 }, { id: `e${i}` });
      await until(() => got.length === 5, 'first five');
      await first.sub.drain({ timeout: 5_000 }); // the checkpoint is on disk
      // "Crash": the link goes away without closing the consumer.
      await first.b.session.transport.close();
      for (let i = 5; i < 12; i++) await a.publish(OrderCreated, node, { orderId: `e${i}`, qty: 1 }, { id: `e${i}` });
      second = await start();
      await a.publish(OrderCreated, node, { orderId: 'e12', qty: 1 }, { id: 'e12' });
      // In order, one at a time: once e12 is in, a duplicate could only have come before it.
      await until(() => got.includes('e12'), 'catch-up and live');
      expect(got).toEqual(Array.from({ length: 13 }, (_, i) => `e${i}`));
    } finally {
      // The consumer saves checkpoints into `dir` until it is drained and closed.
      await second?.sub.drain({ timeout: 5_000 }).catch(() => undefined);
      await second?.sub.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it(`competing consumers: one member per event while members join and leave [${kind}]`, async () => {
    const a = await connect(server(), 'svc-a.localhost');
    const node = uniq('jobs');
    await a.createNode(node);
    const handledBy = new Map<string, string[]>();
    const member = async (domain: string): Promise<ReturnType<PubSub['consume']>> => {
      const ps = await connect(server(), domain);
      const c = ps.consume(
        OrderCreated,
        node,
        (v) => void handledBy.set(v.orderId, [...(handledBy.get(v.orderId) ?? []), domain]),
        { group: 'workers', heartbeatMs: 200 },
      );
      await c.start({ timeout: 30_000 });
      return c;
    };
    let n = 0;
    const publish = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++, n++)
        await a.publish(OrderCreated, node, { orderId: `j${n}`, qty: 1 }, { id: `j${n}` });
    };
    const m1 = await member('svc-d.localhost');
    const m2 = await member('svc-e.localhost');
    const m3 = await member('svc-f.localhost');
    // Each member joined the leader during its own election: no heartbeat to wait for.
    await publish(30);
    await until(() => handledBy.size === 30, '30 handled');
    expect(new Set([...handledBy.values()].flat()).size).toBe(3); // the load was spread
    expect([m1, m2, m3].filter((m) => m.leader).length).toBe(1);
    // The leader leaves gracefully: drain waits for the answers to what it dispatched and saves the
    // group's position, so the next leader redoes nothing (a bare close() is at-least-once).
    await m1.drain({ timeout: 10_000 });
    await m1.close();
    const m4 = await member('svc-g.localhost'); // a member joins
    await publish(30);
    await until(() => handledBy.size === 60, '60 handled');
    await m2.drain({ timeout: 10_000 }); // leader or not, a graceful leave
    await m2.close();
    await publish(20);
    await until(() => handledBy.size === 80, '80 handled');
    // Draining both (then closing) stops every member: no delivery can follow.
    await Promise.all([m3.drain({ timeout: 10_000 }), m4.drain({ timeout: 10_000 })]);
    await m3.close();
    await m4.close();
    expect([...handledBy].filter(([, by]) => by.length !== 1)).toEqual([]);
  });
});

describeServers(
  'pubsub permissions',
  (server, kind) => {
    it(`node creation and publishing rights are reported clearly [${kind}]`, async () => {
      const a = await connect(server(), 'svc-a.localhost');
      const b = await connect(server(), 'svc-b.localhost');
      const node = uniq('perm');
      await a.createNode(node);
      const created = await b.createNode(uniq('perm-b')).then(
        () => 'created',
        (e: unknown) => e,
      );
      if (kind === 'prosody') {
        // Only `admins` may create nodes on Prosody.
        expect(created).toBeInstanceOf(PubSubForbiddenError);
        expect((created as PubSubForbiddenError).operation).toBe('create');
      } else {
        expect(created).toBe('created'); // ejabberd: access_createnode allows it here
      }
      const err = await b.publish(OrderCreated, node, { orderId: '1', qty: 1 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PubSubForbiddenError);
      expect((err as Error).message).toMatch(/publisher affiliation/);
      await a.ensurePublishers(node, ['svc-b.localhost']);
      expect((await a.getAffiliations(node)).get('svc-b.localhost')).toBe('publisher');
      await expect(b.publish(OrderCreated, node, { orderId: '1', qty: 1 })).resolves.toBeTypeOf('string');
    });
  },
  { admins: ['svc-a.localhost'] },
);
