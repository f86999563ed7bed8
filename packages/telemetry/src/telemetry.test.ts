import { context, propagation, trace, SpanKind, SpanStatusCode, type Span } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type MetricData,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import { Type } from '@sinclair/typebox';
import { AccessPolicy, Session, StanzaError, noInstrumentation, xml } from '@xmppbus/core';
import { Messenger } from '@xmppbus/messaging';
import { PubSub } from '@xmppbus/pubsub';
import { MemoryPubSubService } from '@xmppbus/pubsub/testing';
import { RpcClient, RpcServer } from '@xmppbus/rpc';
import { event } from '@xmppbus/schema';
import { CreateOrder, GetOrder, OrderCreated, waitFor } from '@xmppbus/testing';
import { memoryHub, type MemoryHub } from '@xmppbus/transport-memory';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM,
  ATTR_RPC_METHOD,
  ATTR_RPC_SERVICE,
  ATTR_RPC_SYSTEM,
  ATTR_XMPPBUS_OUTCOME,
  ATTR_XMPPBUS_STANZA_CONDITION,
  METRIC_EVENTS,
  METRIC_OUTBOX_SIZE,
  METRIC_RPC_CLIENT_DURATION,
  METRIC_RPC_RETRIES,
  METRIC_RPC_SERVER_DURATION,
  ShimTraceContextPropagator,
  headersGetter,
  headersSetter,
  instrument,
  parseTraceparent,
  traceLogContext,
  type Telemetry,
} from './index.js';

const Shipment = event({ ns: 'urn:example:shipping:1', name: 'ship', schema: Type.Object({ orderId: Type.String() }) });
const open = new AccessPolicy({ rules: [{ from: '*' }] });

const contextManager = new AsyncLocalStorageContextManager();
beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable());
});
afterAll(() => {
  contextManager.disable();
  context.disable();
});

let hub: MemoryHub;
let spans: InMemorySpanExporter;
let tracerProvider: BasicTracerProvider;
let metricExporter: InMemoryMetricExporter;
let reader: PeriodicExportingMetricReader;
let meterProvider: MeterProvider;
const closers: (() => Promise<void> | void)[] = [];

beforeEach(() => {
  hub = memoryHub();
  spans = new InMemorySpanExporter();
  tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 });
  meterProvider = new MeterProvider({ readers: [reader] });
});
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await tracerProvider.shutdown();
  await meterProvider.shutdown();
});

function session(address: string, traced = true): { session: Session; telemetry: Telemetry | undefined } {
  const s = new Session({ transport: hub.connect(address), access: open });
  closers.push(() => s.close());
  const telemetry = traced ? instrument(s, { tracerProvider, meterProvider }) : undefined;
  return { session: s, telemetry };
}

async function metricsNamed(name: string): Promise<MetricData[]> {
  metricExporter.reset();
  await reader.forceFlush();
  return metricExporter
    .getMetrics()
    .flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics))
    .filter((m) => m.descriptor.name === name);
}

function byName(name: string): ReadableSpan {
  const s = spans.getFinishedSpans().find((x) => x.name === name);
  if (!s)
    throw new Error(
      `no span ${name} in ${spans
        .getFinishedSpans()
        .map((x) => x.name)
        .join(', ')}`,
    );
  return s;
}

const parentOf = (s: ReadableSpan): string | undefined => s.parentSpanContext?.spanId;

describe('rpc', () => {
  it('client and server spans share one trace, the server span is the child, with RPC attributes and a duration metric', async () => {
    const server = new RpcServer({ session: session('orders.test').session });
    let handlerTrace: ReturnType<typeof traceLogContext>;
    server.handle(CreateOrder, () => {
      handlerTrace = traceLogContext();
      return { orderId: 'o1', total: 3 };
    });
    await server.start();
    const client = new RpcClient({ session: session('web.test').session });
    await client.start();
    await client.call(CreateOrder, 'orders.test', { sku: 'a', qty: 1 });

    const name = `${CreateOrder.ns}/create`;
    const all = spans.getFinishedSpans().filter((s) => s.name === name);
    expect(all).toHaveLength(2);
    const c = all.find((s) => s.kind === SpanKind.CLIENT)!;
    const sv = all.find((s) => s.kind === SpanKind.SERVER)!;
    expect(sv.spanContext().traceId).toBe(c.spanContext().traceId);
    expect(parentOf(sv)).toBe(c.spanContext().spanId);
    expect(c.attributes).toMatchObject({
      [ATTR_RPC_SYSTEM]: 'xmpp',
      [ATTR_RPC_SERVICE]: CreateOrder.ns,
      [ATTR_RPC_METHOD]: 'create',
    });
    // Logs inside the handler carry the server span's ids.
    expect(handlerTrace).toEqual({ trace_id: sv.spanContext().traceId, span_id: sv.spanContext().spanId });

    const [hist] = await metricsNamed(METRIC_RPC_CLIENT_DURATION);
    const point = hist!.dataPoints[0]!;
    expect(point.attributes).toMatchObject({ [ATTR_RPC_METHOD]: 'create', [ATTR_XMPPBUS_OUTCOME]: 'ok' });
    expect((point.value as { count: number }).count).toBe(1);
    expect(await metricsNamed(METRIC_RPC_SERVER_DURATION)).toHaveLength(1);
  });

  it('a stanza error is recorded with its condition on both spans and as the outcome', async () => {
    const server = new RpcServer({ session: session('orders.test').session });
    server.handle(CreateOrder, () => {
      throw new StanzaError({ condition: 'item-not-found', text: 'no such sku' });
    });
    await server.start();
    const client = new RpcClient({ session: session('web.test').session });
    await client.start();
    await expect(client.call(CreateOrder, 'orders.test', { sku: 'x', qty: 1 })).rejects.toBeInstanceOf(StanzaError);
    for (const s of spans.getFinishedSpans()) {
      expect(s.status.code).toBe(SpanStatusCode.ERROR);
      expect(s.attributes[ATTR_XMPPBUS_STANZA_CONDITION]).toBe('item-not-found');
      expect(s.events.some((e) => e.name === 'exception')).toBe(true);
    }
    const [hist] = await metricsNamed(METRIC_RPC_CLIENT_DURATION);
    expect(hist!.dataPoints[0]!.attributes[ATTR_XMPPBUS_OUTCOME]).toBe('item-not-found');
  });

  it('retries of an idempotent call are events of the client span and counted', async () => {
    const server = new RpcServer({ session: session('orders.test').session });
    let n = 0;
    server.handle(GetOrder, (r) => {
      if (++n === 1) throw new StanzaError({ condition: 'resource-constraint', type: 'wait', text: 'busy' });
      return { orderId: r.orderId, qty: 1, by: 'x' };
    });
    await server.start();
    const client = new RpcClient({
      session: session('web.test').session,
      retry: { attempts: 3, initialDelay: 1, maxDelay: 1, jitter: 0 },
    });
    await client.start();
    await client.call(GetOrder, 'orders.test', { orderId: 'o1' });
    const c = spans.getFinishedSpans().find((s) => s.kind === SpanKind.CLIENT)!;
    expect(c.events.filter((e) => e.name === 'retry').map((e) => e.attributes)).toEqual([
      { 'xmppbus.retry.attempt': 2 },
    ]);
    expect(c.status.code).not.toBe(SpanStatusCode.ERROR);
    const [retries] = await metricsNamed(METRIC_RPC_RETRIES);
    expect(retries!.dataPoints[0]!.value).toBe(1);
  });

  it('caller-given headers travel next to the trace context; an untraced caller still gets a server span', async () => {
    const server = new RpcServer({ session: session('orders.test').session });
    let seen: ReadonlyMap<string, string> | undefined;
    server.handle(CreateOrder, (_r, ctx) => {
      seen = ctx.headers;
      return { orderId: 'o', total: 1 };
    });
    await server.start();
    const traced = new RpcClient({ session: session('web.test').session });
    await traced.start();
    await traced.call(CreateOrder, 'orders.test', { sku: 'a', qty: 1 }, { headers: { 'x-tenant': 't1' } });
    expect(seen?.get('x-tenant')).toBe('t1');
    expect(parseTraceparent(seen?.get('traceparent'))).toBeDefined();

    const plain = new RpcClient({ session: session('cli.test', false).session });
    await plain.start();
    spans.reset();
    await plain.call(CreateOrder, 'orders.test', { sku: 'a', qty: 1 });
    expect(seen?.has('traceparent')).toBe(false);
    const only = spans.getFinishedSpans();
    expect(only).toHaveLength(1);
    expect(only[0]!.kind).toBe(SpanKind.SERVER);
    expect(parentOf(only[0]!)).toBeUndefined();
  });
});

describe('one trace across rpc, pub/sub and messaging', () => {
  it('call → handler publishes → consumer sends a QoS 2 message → its handler: parent links chain', async () => {
    const ps = new MemoryPubSubService(new Session({ transport: hub.connect('pubsub.test'), access: open }), {
      admins: ['orders.test'],
    });
    await ps.start();
    closers.push(() => ps.close());

    const orders = session('orders.test').session;
    const ordersPubSub = new PubSub({ session: orders, service: 'pubsub.test' });
    await ordersPubSub.ensureNode('orders');
    const server = new RpcServer({ session: orders });
    server.handle(CreateOrder, async (r) => {
      await ordersPubSub.publish(OrderCreated, 'orders', { orderId: 'o1', qty: r.qty });
      return { orderId: 'o1', total: 1 };
    });
    await server.start();

    const shipping = session('shipping.test').session;
    const shipper = new Messenger({ session: shipping });
    let shippedBaggage: string | undefined;
    shipper.handle(Shipment, () => {
      shippedBaggage = propagation.getBaggage(context.active())?.getEntry('tenant')?.value;
    });
    await shipper.start();

    const billing = session('billing.test').session;
    const sender = new Messenger({ session: billing });
    await sender.start();
    const consumer = new PubSub({ session: billing, service: 'pubsub.test' }).consume(OrderCreated, 'orders', (e) =>
      sender.send(Shipment, 'shipping.test', { orderId: e.orderId }, { qos: 2 }),
    );
    await consumer.start();

    const web = new RpcClient({ session: session('web.test').session });
    await web.start();
    const bag = propagation.setBaggage(context.active(), propagation.createBaggage({ tenant: { value: 'acme' } }));
    await context.with(bag, () => web.call(CreateOrder, 'orders.test', { sku: 'a', qty: 2 }));
    await waitFor(() => spans.getFinishedSpans().some((s) => s.name === 'process ship'), {
      what: 'the message handled',
    });

    const name = `${CreateOrder.ns}/create`;
    const client = spans.getFinishedSpans().find((s) => s.name === name && s.kind === SpanKind.CLIENT)!;
    const server_ = spans.getFinishedSpans().find((s) => s.name === name && s.kind === SpanKind.SERVER)!;
    const publish = byName('publish orders');
    const processEvent = byName('process orders');
    const send = byName('send ship');
    const processMessage = byName('process ship');
    const chain = [client, server_, publish, processEvent, send, processMessage];
    for (const s of chain) expect(s.spanContext().traceId).toBe(client.spanContext().traceId);
    for (let i = 1; i < chain.length; i++) expect(parentOf(chain[i]!)).toBe(chain[i - 1]!.spanContext().spanId);
    expect(publish.kind).toBe(SpanKind.PRODUCER);
    expect(processEvent.kind).toBe(SpanKind.CONSUMER);
    expect(processEvent.attributes).toMatchObject({
      [ATTR_MESSAGING_SYSTEM]: 'xmpp',
      [ATTR_MESSAGING_OPERATION_TYPE]: 'process',
      [ATTR_MESSAGING_DESTINATION_NAME]: 'orders',
    });
    expect(send.attributes).toMatchObject({ 'xmppbus.qos': 2, [ATTR_MESSAGING_DESTINATION_NAME]: 'shipping.test' });
    expect(shippedBaggage).toBe('acme');

    const [events] = await metricsNamed(METRIC_EVENTS);
    expect(events!.dataPoints.find((p) => p.attributes[ATTR_XMPPBUS_OUTCOME] === 'handled')?.value).toBe(1);
    const [outbox] = await metricsNamed(METRIC_OUTBOX_SIZE);
    expect(outbox!.dataPoints.map((p) => p.attributes['xmppbus.address'])).toContain('billing.test');
  });

  it('a QoS 2 message stored while the peer is away still joins the sending trace when delivered later', async () => {
    const billing = session('billing.test').session;
    const sender = new Messenger({ session: billing, retry: { initialDelay: 5, maxDelay: 10, jitter: 0 } });
    await sender.start();
    const tracer = tracerProvider.getTracer('test');
    const root = tracer.startSpan('checkout');
    await context.with(trace.setSpan(context.active(), root), () =>
      sender.enqueue(Shipment, 'shipping.test', { orderId: 'late' }, { qos: 2 }),
    );
    root.end();
    // The receiver comes online afterwards; the outbox delivers the stored stanza (its headers included).
    const shipping = session('shipping.test').session;
    const shipper = new Messenger({ session: shipping });
    let active: Span | undefined;
    shipper.handle(Shipment, () => {
      active = trace.getActiveSpan();
    });
    await shipper.start();
    await waitFor(() => active !== undefined, { what: 'late delivery', timeout: 10_000 });
    const processMessage = byName('process ship');
    expect(processMessage.spanContext().traceId).toBe(root.spanContext().traceId);
    expect(parentOf(processMessage)).toBe(byName('send ship').spanContext().spanId);
    expect(parentOf(byName('send ship'))).toBe(root.spanContext().spanId);
  });

  it('an invalid event is counted as invalid', async () => {
    const ps = new MemoryPubSubService(new Session({ transport: hub.connect('pubsub.test'), access: open }), {
      admins: ['orders.test'],
    });
    await ps.start();
    closers.push(() => ps.close());
    const publisher = new PubSub({ session: session('orders.test').session, service: 'pubsub.test' });
    await publisher.ensureNode('orders');
    const got: unknown[] = [];
    const consumer = new PubSub({ session: session('billing.test').session, service: 'pubsub.test' }).consume(
      OrderCreated,
      'orders',
      (e) => void got.push(e),
      { onInvalid: () => void got.push('invalid') },
    );
    await consumer.start();
    await publisher.publishElement('orders', xml('created', { xmlns: OrderCreated.ns }, xml('orderId', {}, 'x')));
    await waitFor(() => got.length === 1, { what: 'the invalid event' });
    const [events] = await metricsNamed(METRIC_EVENTS);
    expect(events!.dataPoints.find((p) => p.attributes[ATTR_XMPPBUS_OUTCOME] === 'invalid')?.value).toBe(1);
  });
});

describe('propagator and lifecycle', () => {
  it('injects and extracts traceparent, tracestate and baggage through SHIM header maps', () => {
    const p = new ShimTraceContextPropagator();
    const sc = parseTraceparent('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')!;
    expect(sc).toMatchObject({ traceId: '0af7651916cd43dd8448eb211c80319c', traceFlags: 1, isRemote: true });
    const headers = new Map([
      ['traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'],
      ['tracestate', 'congo=t61rcWkgMzE'],
      ['baggage', 'tenant=acme,user%20id=a%2Cb'],
    ]);
    const ctx = p.extract(context.active(), headers, headersGetter);
    expect(trace.getSpanContext(ctx)?.traceState?.get('congo')).toBe('t61rcWkgMzE');
    expect(propagation.getBaggage(ctx)?.getEntry('user id')?.value).toBe('a,b');
    const out = new Map<string, string>();
    p.inject(ctx, out, headersSetter);
    expect(out).toEqual(headers);
    for (const bad of [
      'ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      '00-' + '0'.repeat(32) + '-b7ad6b7169203331-01',
      'x',
    ])
      expect(parseTraceparent(bad)).toBeUndefined();
  });

  it('a session without telemetry holds the shared no-op; disposing telemetry puts it back', () => {
    const plain = session('a.test', false).session;
    expect(plain.instrumentation).toBe(noInstrumentation);
    const { session: s, telemetry } = session('b.test');
    expect(s.instrumentation).toBe(telemetry);
    telemetry![Symbol.dispose]();
    expect(s.instrumentation).toBe(noInstrumentation);
  });
});

describe('without an SDK', () => {
  it('is disabled while the global providers are the API no-ops, enabled once an SDK tracer provider is registered', () => {
    const s = new Session({ transport: hub.connect('api.test') });
    closers.push(() => s.close());
    const t = instrument(s);
    expect(t.enabled).toBe(false);
    trace.setGlobalTracerProvider(tracerProvider);
    try {
      expect(t.enabled).toBe(true);
    } finally {
      trace.disable();
    }
    expect(instrument(s, { meterProvider }).enabled).toBe(true);
  });
});
