// OpenTelemetry through real Prosody and ejabberd: three services built with createBus. A call to
// orders publishes an event on the server's pub/sub service; billing consumes it and sends a
// QoS-2 message to shipping. Every span lands in ONE trace, each the child of the one before.
import { SpanKind, context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import { Type } from '@sinclair/typebox';
import { createBus, createLogger, type Bus, type BusConfig } from '@xmppbus/bus';
import { event } from '@xmppbus/schema';
import { CreateOrder, OrderCreated, describeServers, waitFor } from '@xmppbus/testing';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';

const Ship = event({ ns: 'urn:example:shipping:1', name: 'ship', schema: Type.Object({ orderId: Type.String() }) });

const contextManager = new AsyncLocalStorageContextManager();
beforeAll(() => void context.setGlobalContextManager(contextManager.enable()));
afterAll(() => {
  contextManager.disable();
  context.disable();
});

describeServers('telemetry: one trace', (server, kind) => {
  const open: Bus[] = [];
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  afterEach(async () => {
    for (const b of open.splice(0).reverse()) await b.close();
    spans.reset();
  });
  afterAll(() => tracerProvider.shutdown());

  async function bus(domain: string): Promise<Bus> {
    const srv = server();
    const config: BusConfig = {
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
    const b = await createBus(config, {
      env: {},
      logger: createLogger({ level: 'silent' }),
      telemetry: { tracerProvider },
    });
    open.push(b);
    return b;
  }

  it(`rpc → publish → consume → QoS-2 send → handle forms one trace with chained parents [${kind}]`, async () => {
    const orders = await bus('svc-a.localhost');
    const billing = await bus('svc-b.localhost');
    const shipping = await bus('svc-c.localhost');
    const node = `tel-orders-${Date.now().toString(36)}`;
    orders.rpc.handle(CreateOrder, async ({ sku, qty }) => {
      const orderId = `${sku}-1`;
      await orders.pubsub.publish(OrderCreated, node, { orderId, qty }, { id: orderId });
      return { orderId, total: qty };
    });
    let shipped = '';
    shipping.messenger.handle(Ship, ({ orderId }) => {
      shipped = orderId;
    });
    await orders.start({ timeout: 20_000 });
    await orders.pubsub.createNode(node);
    await shipping.start({ timeout: 20_000 });
    await billing.start({ timeout: 20_000 });
    const consumer = billing.pubsub.consume(OrderCreated, node, ({ orderId }) =>
      billing.messenger.send(Ship, 'svc-c.localhost', { orderId }, { qos: 2, timeout: 15_000 }),
    );
    billing.add(consumer);
    await billing.start({ timeout: 20_000 });

    await billing.client.call(CreateOrder, 'svc-a.localhost', { sku: 'T1', qty: 1 });
    await waitFor(() => spans.getFinishedSpans().some((s) => s.name === 'process ship'), {
      what: 'the QoS-2 message handled',
      timeout: 30_000,
    });
    expect(shipped).toBe('T1-1');

    const all = spans.getFinishedSpans();
    const find = (name: string, kindOf: SpanKind): ReadableSpan => {
      const s = all.find((x) => x.name === name && x.kind === kindOf);
      if (!s) throw new Error(`no ${name} (${kindOf}) in ${all.map((x) => `${x.name}/${x.kind}`).join(', ')}`);
      return s;
    };
    const method = `${CreateOrder.ns}/create`;
    const chain = [
      find(method, SpanKind.CLIENT),
      find(method, SpanKind.SERVER),
      find(`publish ${node}`, SpanKind.PRODUCER),
      find(`process ${node}`, SpanKind.CONSUMER),
      find('send ship', SpanKind.PRODUCER),
      find('process ship', SpanKind.CONSUMER),
    ];
    const traceId = chain[0]!.spanContext().traceId;
    for (const s of chain) expect(s.spanContext().traceId).toBe(traceId);
    expect(chain[0]!.parentSpanContext).toBeUndefined();
    for (let i = 1; i < chain.length; i++)
      expect(chain[i]!.parentSpanContext?.spanId, chain[i]!.name).toBe(chain[i - 1]!.spanContext().spanId);
    // Who made each span: the session's own address.
    expect(chain.map((s) => s.attributes['xmppbus.address'])).toEqual([
      'svc-b.localhost',
      'svc-a.localhost',
      'svc-a.localhost',
      'svc-b.localhost',
      'svc-b.localhost',
      'svc-c.localhost',
    ]);
  });
});
