// @xmppbus/bus against real Prosody and ejabberd: two buses built from config objects (component
// transports) call a method, publish and consume an event, send a QoS-2 message, then drain and
// close cleanly.
import { createBus, createLogger, type Bus, type BusConfig, type BusStatus } from '@xmppbus/bus';
import { StanzaError } from '@xmppbus/core';
import type { EventMeta } from '@xmppbus/pubsub';
import { CreateOrder, GetOrder, OrderCreated, describeServers } from '@xmppbus/testing';
import { afterEach, expect, it } from 'vitest';

describeServers('bus', (server, kind) => {
  const open: Bus[] = [];
  const lines: string[] = [];
  afterEach(async () => {
    for (const b of open.splice(0).reverse()) await b.close();
    lines.length = 0;
  });

  function config(domain: string): BusConfig {
    const srv = server();
    return {
      name: domain,
      transport: {
        kind: 'component',
        service: srv.componentService(),
        domain,
        password: srv.componentSecret,
        timeout: 15_000,
      },
      pubsub: { service: srv.pubsubService, timeout: 15_000 },
      rpc: { client: { timeout: 15_000 } },
      messaging: { attemptTimeout: 10_000 },
    };
  }

  async function bus(domain: string): Promise<Bus> {
    const logger = createLogger({ level: 'warn', format: 'json', write: (l) => lines.push(l) });
    const b = await createBus(config(domain), { env: {}, logger });
    open.push(b);
    return b;
  }

  it(`serves rpc, pub/sub and QoS-2 messages, then drains and closes cleanly [${kind}]`, async () => {
    const orders = await bus('svc-a.localhost');
    const billing = await bus('svc-b.localhost');
    expect(orders.config.transport?.password).toBe('[redacted]');
    const states: BusStatus[] = [];
    const watched = (async () => {
      for await (const s of orders.status) states.push(s);
    })();

    // orders: serves CreateOrder, and publishes OrderCreated for each order.
    const node = `bus-orders-${Date.now().toString(36)}`;
    orders.rpc.handle(GetOrder, () => {
      throw new Error('orders database is down');
    });
    orders.rpc.handle(CreateOrder, async ({ sku, qty }) => {
      const orderId = `${sku}-1`;
      await orders.pubsub.publish(OrderCreated, node, { orderId, qty }, { id: orderId });
      return { orderId, total: qty * 9.5 };
    });
    // billing: consumes the events, and takes QoS-2 messages.
    let onEvent!: (v: { id: string; meta: EventMeta }) => void;
    const event = new Promise<{ id: string; meta: EventMeta }>((resolve) => (onEvent = resolve));
    let onMessage!: (v: { orderId: string; qos: number }) => void;
    const message = new Promise<{ orderId: string; qos: number }>((resolve) => (onMessage = resolve));
    billing.messenger.handle(OrderCreated, ({ orderId }, { qos }) => onMessage({ orderId, qos }));

    await orders.start({ timeout: 20_000 });
    await orders.pubsub.createNode(node);
    await billing.start({ timeout: 20_000 });
    const consumer = billing.pubsub.consume(OrderCreated, node, (order, meta) => onEvent({ id: order.orderId, meta }));
    billing.add(consumer);
    await billing.start({ timeout: 20_000 }); // waits for the consumer: subscribed
    expect(orders.health()).toMatchObject({ ready: true, live: true, connection: { status: 'online' } });

    const created = await billing.client.call(CreateOrder, 'svc-a.localhost', { sku: 'A1', qty: 2 });
    expect(created).toEqual({ orderId: 'A1-1', total: 19 });
    const got = await event;
    expect(got.id).toBe('A1-1');
    expect(got.meta.node).toBe(node);

    await orders.messenger.send(
      OrderCreated,
      'svc-b.localhost',
      { orderId: 'A1-1', qty: 2 },
      { qos: 2, timeout: 15_000 },
    );
    await expect(message).resolves.toEqual({ orderId: 'A1-1', qos: 2 });

    // A handler failure: the caller sees `internal error (ref X)`, the server's log has X once.
    const err = await billing.client.call(GetOrder, 'svc-a.localhost', { orderId: 'A1-1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StanzaError);
    const ref = /internal error \(ref ([^)]+)\)/.exec((err as StanzaError).text ?? '')?.[1];
    expect(ref).toBeDefined();
    expect(lines.filter((l) => l.includes(ref!))).toHaveLength(1);

    await orders.drain({ timeout: 10_000 });
    await billing.drain({ timeout: 10_000 });
    expect(orders.health().outbox.size).toBe(0);
    expect(orders.health().deadLetters).toBe(0);
    await orders.close();
    await billing.close();
    await watched;
    expect(states).toEqual(['idle', 'starting', 'ready', 'draining', 'closed']);
    expect(orders.session.transport.status).toBe('closed');
    expect(lines.filter((l) => l.includes('"level":"error"'))).toHaveLength(1); // the ref line only
  });
});
