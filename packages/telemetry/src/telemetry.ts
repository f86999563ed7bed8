/**
 * `Telemetry`: core's `Instrumentation` implemented with `@opentelemetry/api`. Spans follow the
 * RPC and messaging semantic conventions; the trace context travels in SHIM headers through a
 * `TextMapPropagator`; durations, counts and the units' gauges become metrics. Without an SDK
 * registered every call lands on the API's no-op tracer and meter.
 */
import {
  ProxyTracerProvider,
  createNoopMeter,
  ROOT_CONTEXT,
  SpanKind,
  isSpanContextValid,
  propagation,
  SpanStatusCode,
  context as contextApi,
  metrics as metricsApi,
  trace as traceApi,
  type Attributes,
  type Context,
  type Counter,
  type Histogram,
  type Meter,
  type MeterProvider,
  type Span,
  type SpanOptions,
  type TextMapPropagator,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import {
  StanzaError,
  XmppBusError,
  headerEntries,
  noInstrumentation,
  type GaugeReadings,
  type Headers,
  type HeadersInit,
  type Instrumentation,
  type OperationScope,
  type Session,
  type TransportStatus,
} from '@xmppbus/core';
import { ShimTraceContextPropagator, headersGetter, headersSetter } from './propagator.js';
import * as C from './semconv.js';

export const VERSION = '0.1.0';

export interface TelemetryOptions {
  /** Where spans go (default: the globally registered provider, `trace.getTracerProvider()`). */
  tracerProvider?: TracerProvider;
  /** Where metrics go (default: the globally registered provider, read when `instrument` runs). */
  meterProvider?: MeterProvider;
  /** Injects and extracts the trace context (default: W3C trace context and baggage in SHIM headers). */
  propagator?: TextMapPropagator;
}

const CONNECTION_STATES: readonly TransportStatus[] = ['idle', 'connecting', 'online', 'reconnecting', 'closed'];

interface Source {
  readonly unit: string;
  readonly read: () => GaugeReadings;
}

/** Instruments shared by the scopes of one `Telemetry`. */
interface Instruments {
  readonly clientDuration: Histogram;
  readonly serverDuration: Histogram;
  readonly processDuration: Histogram;
  readonly sendDuration: Histogram;
  readonly events: Counter;
  readonly rpcRetries: Counter;
  readonly reconnects: Counter;
}

/** The instrumentation of one session (`instrument(session)` builds and installs it). */
export class Telemetry implements Instrumentation, Disposable {
  readonly session: Session;
  readonly #tracerProvider: TracerProvider;
  /** False when the meter is the API's no-op (no SDK meter provider). */
  readonly #meterLive: boolean;
  readonly #rpcTracer: Tracer;
  readonly #pubsubTracer: Tracer;
  readonly #messagingTracer: Tracer;
  readonly #propagator: TextMapPropagator;
  readonly #i: Instruments;
  readonly #meter: Meter;
  readonly #address: string;
  readonly #sources = new Set<Source>();
  readonly #rpcOps = new Map<string, Map<string, Op>>();
  readonly #pubsubOps = new Map<string, Map<string, Op>>();
  readonly #messagingOps = new Map<string, Map<string, Op>>();
  /** The default propagator carries nothing but the span context and baggage: skip it when both are absent. */
  readonly #w3c: boolean;
  #connection: TransportStatus;
  readonly #offs: (() => void)[] = [];

  constructor(session: Session, options: TelemetryOptions = {}) {
    this.session = session;
    this.#address = session.address;
    const tp = (this.#tracerProvider = options.tracerProvider ?? traceApi.getTracerProvider());
    this.#rpcTracer = tp.getTracer('@xmppbus/rpc', VERSION);
    this.#pubsubTracer = tp.getTracer('@xmppbus/pubsub', VERSION);
    this.#messagingTracer = tp.getTracer('@xmppbus/messaging', VERSION);
    this.#propagator = options.propagator ?? new ShimTraceContextPropagator();
    this.#w3c = options.propagator === undefined;
    const meter = (this.#meter = (options.meterProvider ?? metricsApi.getMeterProvider()).getMeter(
      '@xmppbus/telemetry',
      VERSION,
    ));
    const seconds = { unit: 's', advice: { explicitBucketBoundaries: DURATION_BUCKETS } };
    this.#i = {
      clientDuration: meter.createHistogram(C.METRIC_RPC_CLIENT_DURATION, {
        description: 'Duration of outgoing RPC calls, retries included',
        ...seconds,
      }),
      serverDuration: meter.createHistogram(C.METRIC_RPC_SERVER_DURATION, {
        description: 'Duration of inbound RPC calls (handler and encoding)',
        ...seconds,
      }),
      processDuration: meter.createHistogram(C.METRIC_MESSAGING_PROCESS_DURATION, {
        description: 'Duration of handling one pub/sub event or message',
        ...seconds,
      }),
      sendDuration: meter.createHistogram(C.METRIC_MESSAGING_SEND_DURATION, {
        description: 'Duration of publishing an event or accepting a message for sending',
        ...seconds,
      }),
      events: meter.createCounter(C.METRIC_EVENTS, { description: 'Pub/sub events handled, failed or invalid' }),
      rpcRetries: meter.createCounter(C.METRIC_RPC_RETRIES, { description: 'Retried RPC attempts' }),
      reconnects: meter.createCounter(C.METRIC_RECONNECTS, { description: 'Times the link went down and reconnected' }),
    };
    this.#meterLive = meter.constructor !== NOOP_METER_CLASS;
    this.#connection = session.transport.status;
    this.#observeGauges(meter);
    this.#offs.push(
      session.onTransportStatus((status) => {
        if (status === 'reconnecting' && this.#connection !== 'reconnecting')
          this.#i.reconnects.add(1, { [C.ATTR_XMPPBUS_ADDRESS]: this.#address });
        this.#connection = status;
      }),
    );
  }

  /**
   * Whether the features call the hooks: false while no SDK is registered (the global tracer
   * provider has no delegate and the meter is the API's no-op), as the API alone records and
   * propagates nothing. Checked per operation, so an SDK registered later takes effect at once.
   */
  get enabled(): boolean {
    if (this.#meterLive) return true;
    const tp = this.#tracerProvider;
    return !(tp instanceof ProxyTracerProvider) || tp.getDelegate() !== NOOP_TRACER_PROVIDER;
  }

  rpcClientCall(ns: string, name: string, to: string): OperationScope {
    const op = this.#op(this.#rpcOps, ns, name, this.#i.clientDuration, undefined, (n) => rpcMetricAttrs(ns, n));
    return this.#begin(this.#rpcTracer, op, CLIENT, contextApi.active(), { [C.ATTR_SERVER_ADDRESS]: to });
  }

  rpcServerCall(ns: string, name: string, from: string, headers: Headers): OperationScope {
    const op = this.#op(this.#rpcOps, ns, `\0${name}`, this.#i.serverDuration, undefined, (n) =>
      rpcMetricAttrs(ns, n.slice(1)),
    );
    return this.#begin(this.#rpcTracer, op, SERVER, this.#extract(headers), { [C.ATTR_CLIENT_ADDRESS]: from });
  }

  publish(service: string, node: string, name: string): OperationScope {
    const op = this.#op(this.#pubsubOps, 'publish', node, this.#i.sendDuration, undefined, () =>
      messagingAttrs('send', 'publish', { [C.ATTR_MESSAGING_DESTINATION_NAME]: node }),
    );
    return this.#begin(this.#pubsubTracer, op, PRODUCER, contextApi.active(), {
      [C.ATTR_SERVER_ADDRESS]: service,
      [C.ATTR_XMPPBUS_PAYLOAD]: name,
    });
  }

  processEvent(service: string, node: string, name: string, headers: Headers): OperationScope {
    const op = this.#op(this.#pubsubOps, 'process', node, this.#i.processDuration, this.#i.events, () =>
      messagingAttrs('process', 'process', { [C.ATTR_MESSAGING_DESTINATION_NAME]: node }),
    );
    return this.#begin(this.#pubsubTracer, op, CONSUMER, this.#extract(headers), {
      [C.ATTR_SERVER_ADDRESS]: service,
      [C.ATTR_XMPPBUS_PAYLOAD]: name,
    });
  }

  invalidEvent(_service: string, node: string, error: unknown): void {
    const attrs = {
      [C.ATTR_MESSAGING_SYSTEM]: C.MESSAGING_SYSTEM_XMPP,
      [C.ATTR_MESSAGING_DESTINATION_NAME]: node,
      [C.ATTR_XMPPBUS_OUTCOME]: 'invalid',
    };
    this.#i.events.add(1, attrs);
    traceApi.getActiveSpan()?.addEvent('invalid event', { [C.ATTR_ERROR_TYPE]: outcomeOf(error) });
  }

  sendMessage(to: string, name: string, qos: number): OperationScope {
    const op = this.#op(this.#messagingOps, `send ${qos}`, name, this.#i.sendDuration, undefined, () =>
      messagingAttrs('send', 'send', { [C.ATTR_XMPPBUS_PAYLOAD]: name, [C.ATTR_XMPPBUS_QOS]: qos }),
    );
    return this.#begin(this.#messagingTracer, op, PRODUCER, contextApi.active(), {
      [C.ATTR_MESSAGING_DESTINATION_NAME]: to,
    });
  }

  processMessage(from: string, name: string, qos: number, headers: Headers): OperationScope {
    const op = this.#op(this.#messagingOps, `process ${qos}`, name, this.#i.processDuration, undefined, () =>
      messagingAttrs('process', 'process', { [C.ATTR_XMPPBUS_PAYLOAD]: name, [C.ATTR_XMPPBUS_QOS]: qos }),
    );
    return this.#begin(this.#messagingTracer, op, CONSUMER, this.#extract(headers), {
      [C.ATTR_MESSAGING_DESTINATION_NAME]: this.#address,
      [C.ATTR_XMPPBUS_PEER]: from,
    });
  }

  /** Starts the span of one operation; attributes are set only when it records. */
  #begin(tracer: Tracer, op: Op, kind: SpanOptions, parent: Context, attrs: Attributes): OperationScope {
    const span = tracer.startSpan(op.spanName, kind, parent);
    if (span.isRecording()) span.setAttributes({ ...op.spanAttrs, ...attrs, [C.ATTR_XMPPBUS_ADDRESS]: this.#address });
    return new Scope(this, span, parent, op);
  }

  /**
   * The cached description of one kind of operation (span name, attributes, metric attribute
   * sets per outcome), so a call allocates no attribute objects when nothing records.
   */
  #op(
    cache: Map<string, Map<string, Op>>,
    group: string,
    key: string,
    duration: Histogram,
    events: Counter | undefined,
    attrs: (key: string) => Attributes,
  ): Op {
    let byKey = cache.get(group);
    if (!byKey) cache.set(group, (byKey = new Map()));
    let op = byKey.get(key);
    if (!op) {
      const base = attrs(key);
      const spanName =
        cache === this.#rpcOps
          ? `${String(base[C.ATTR_RPC_SERVICE])}/${String(base[C.ATTR_RPC_METHOD])}`
          : `${group.split(' ')[0]!} ${key}`;
      op = new Op(spanName, base, duration, events);
      // Bounded: names come from contracts and nodes; past the cap, descriptions are not kept.
      if (byKey.size < MAX_OPS) byKey.set(key, op);
    }
    return op;
  }

  observe(unit: string, read: () => GaugeReadings): () => void {
    const source: Source = { unit, read };
    this.#sources.add(source);
    return () => this.#sources.delete(source);
  }

  /** `headers` plus the trace context of `ctx` (unchanged when there is nothing to send). */
  inject(ctx: Context, headers: HeadersInit | undefined): HeadersInit | undefined {
    let out: Map<string, string> | undefined;
    const setter = {
      set: (_carrier: unknown, key: string, value: string): void => {
        out ??= new Map(headerEntries(headers));
        headersSetter.set(out, key, value);
      },
    };
    this.#propagator.inject(ctx, undefined, setter);
    return out ?? headers;
  }

  /** Whether `inject` would add nothing: no valid span context and no baggage (default propagator only). */
  nothingToInject(span: Span, parent: Context): boolean {
    return this.#w3c && !isSpanContextValid(span.spanContext()) && propagation.getBaggage(parent) === undefined;
  }

  /** Retries counted by method. */
  retried(attrs: Attributes): void {
    this.#i.rpcRetries.add(1, attrs);
  }

  /** Detaches from the session's status and stops reporting gauges (`instrument` installs; this undoes it). */
  [Symbol.dispose](): void {
    for (const off of this.#offs.splice(0)) off();
    this.#sources.clear();
    this.#meter.removeBatchObservableCallback(this.#collect, this.#observables);
    if (this.session.instrumentation === this) this.session.instrumentation = noInstrumentation;
  }

  #extract(headers: Headers): Context {
    const active = contextApi.active();
    if (headers.size === 0) return active;
    return this.#propagator.extract(active === ROOT_CONTEXT ? ROOT_CONTEXT : active, headers, headersGetter);
  }

  #observables: Parameters<Meter['addBatchObservableCallback']>[1] = [];
  #collect: Parameters<Meter['addBatchObservableCallback']>[0] = () => undefined;

  #observeGauges(meter: Meter): void {
    const inFlight = meter.createObservableGauge(C.METRIC_IN_FLIGHT, { description: 'Calls or messages in progress' });
    const depth = meter.createObservableGauge(C.METRIC_QUEUE_DEPTH, { description: 'Work waiting for a slot' });
    const bytes = meter.createObservableGauge(C.METRIC_QUEUE_BYTES, {
      description: 'Bytes of the work in hand',
      unit: 'By',
    });
    const outbox = meter.createObservableGauge(C.METRIC_OUTBOX_SIZE, { description: 'Messages in the outbox' });
    const pending = meter.createObservableGauge(C.METRIC_INBOX_PENDING, {
      description: 'Assured messages stored, awaiting deliver',
    });
    const retries = meter.createObservableCounter(C.METRIC_MESSAGING_RETRIES, { description: 'Message retries' });
    const dead = meter.createObservableCounter(C.METRIC_DEAD_LETTERS, { description: 'Messages dead-lettered' });
    const state = meter.createObservableGauge(C.METRIC_CONNECTION_STATE, {
      description: '1 for the link status now, 0 for the others',
    });
    this.#observables = [inFlight, depth, bytes, outbox, pending, retries, dead, state];
    this.#collect = (result): void => {
      const address = this.#address;
      for (const s of this.#sources) {
        const r = s.read();
        const attrs = { [C.ATTR_XMPPBUS_ADDRESS]: address, [C.ATTR_XMPPBUS_UNIT]: s.unit };
        if (r.inFlight !== undefined) result.observe(inFlight, r.inFlight, attrs);
        if (r.queueDepth !== undefined) result.observe(depth, r.queueDepth, attrs);
        if (r.queueBytes !== undefined) result.observe(bytes, r.queueBytes, attrs);
        if (r.outbox !== undefined) result.observe(outbox, r.outbox, attrs);
        if (r.pendingInbound !== undefined) result.observe(pending, r.pendingInbound, attrs);
        if (r.retries !== undefined) result.observe(retries, r.retries, attrs);
        if (r.deadLetters !== undefined) result.observe(dead, r.deadLetters, attrs);
      }
      for (const s of CONNECTION_STATES)
        result.observe(state, s === this.#connection ? 1 : 0, {
          [C.ATTR_XMPPBUS_ADDRESS]: address,
          [C.ATTR_XMPPBUS_CONNECTION_STATUS]: s,
        });
    };
    meter.addBatchObservableCallback(this.#collect, this.#observables);
  }
}

/** Seconds: 1 ms … 30 s. */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

function rpcMetricAttrs(ns: string, name: string): Attributes {
  return { [C.ATTR_RPC_SYSTEM]: C.RPC_SYSTEM_XMPP, [C.ATTR_RPC_SERVICE]: ns, [C.ATTR_RPC_METHOD]: name };
}

/** `ok`, the stanza error's condition, an xmppbus error code, or `error`. */
export function outcomeOf(error: unknown): string {
  if (error === undefined) return 'ok';
  if (error instanceof StanzaError) return error.condition;
  if (error instanceof XmppBusError) return error.code;
  const cause = (error as { cause?: unknown } | null)?.cause;
  if (cause instanceof StanzaError) return cause.condition;
  return 'error';
}

/** What every operation of one kind shares. */
class Op {
  readonly spanName: string;
  readonly spanAttrs: Attributes;
  readonly duration: Histogram;
  readonly events: Counter | undefined;
  readonly #byOutcome = new Map<string, Attributes>();

  constructor(spanName: string, spanAttrs: Attributes, duration: Histogram, events: Counter | undefined) {
    this.spanName = spanName;
    this.spanAttrs = spanAttrs;
    this.duration = duration;
    this.events = events;
  }

  /** The metric attributes for an outcome (cached; outcomes are a closed set of codes and conditions). */
  attrs(outcome: string): Attributes {
    let a = this.#byOutcome.get(outcome);
    if (!a) {
      a = { ...this.spanAttrs, [C.ATTR_XMPPBUS_OUTCOME]: outcome };
      delete a[C.ATTR_MESSAGING_OPERATION_TYPE];
      if (this.#byOutcome.size < MAX_OPS) this.#byOutcome.set(outcome, a);
    }
    return a;
  }
}

class Scope implements OperationScope {
  readonly #t: Telemetry;
  readonly #span: Span;
  readonly #parent: Context;
  readonly #op: Op;
  readonly #start = performance.now();
  #ctx: Context | undefined;
  #ended = false;

  constructor(t: Telemetry, span: Span, parent: Context, op: Op) {
    this.#t = t;
    this.#span = span;
    this.#parent = parent;
    this.#op = op;
  }

  /** The context with this span active (built on first use). */
  get #context(): Context {
    return (this.#ctx ??= traceApi.setSpan(this.#parent, this.#span));
  }

  headers(headers: HeadersInit | undefined): HeadersInit | undefined {
    if (this.#t.nothingToInject(this.#span, this.#parent)) return headers;
    return this.#t.inject(this.#context, headers);
  }

  run<T>(fn: () => T): T {
    // Without a span context to make active (no SDK, no caller's trace), the active context stays.
    if (
      !this.#span.isRecording() &&
      !isSpanContextValid(this.#span.spanContext()) &&
      this.#parent === contextApi.active()
    )
      return fn();
    return contextApi.with(this.#context, fn);
  }

  retry(attempt: number, error: unknown): void {
    const attrs: Attributes = { [C.ATTR_XMPPBUS_RETRY_ATTEMPT]: attempt };
    if (error !== undefined) attrs[C.ATTR_ERROR_TYPE] = outcomeOf(error);
    this.#span.addEvent(C.EVENT_RETRY, attrs);
    this.#t.retried(this.#op.attrs('retry'));
  }

  end(error?: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    const span = this.#span;
    const outcome = outcomeOf(error);
    if (error !== undefined && span.isRecording()) {
      span.setAttribute(C.ATTR_ERROR_TYPE, outcome);
      if (error instanceof StanzaError) {
        span.setAttribute(C.ATTR_XMPPBUS_STANZA_CONDITION, error.condition);
        span.setAttribute(C.ATTR_XMPPBUS_STANZA_TYPE, error.type);
      }
      if (error instanceof Error) span.recordException(error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
    }
    span.end();
    const op = this.#op;
    const events = op.events;
    const label = events ? (error === undefined ? 'handled' : 'failed') : outcome;
    const attrs = op.attrs(label);
    op.duration.record((performance.now() - this.#start) / 1000, attrs);
    events?.add(1, attrs);
  }
}

/** The API's own no-op provider (what a proxy without a registered SDK delegates to). */
const NOOP_TRACER_PROVIDER = new ProxyTracerProvider().getDelegate();
/** The class of the API's no-op meter (what `metrics.getMeter` returns without an SDK). */
const NOOP_METER_CLASS: unknown = createNoopMeter().constructor;
/** Messaging semantic-convention attributes of one kind of operation. */
function messagingAttrs(type: string, name: string, more: Attributes): Attributes {
  return {
    [C.ATTR_MESSAGING_SYSTEM]: C.MESSAGING_SYSTEM_XMPP,
    [C.ATTR_MESSAGING_OPERATION_TYPE]: type,
    [C.ATTR_MESSAGING_OPERATION_NAME]: name,
    ...more,
  };
}

const CLIENT = Object.freeze({ kind: SpanKind.CLIENT });
const SERVER = Object.freeze({ kind: SpanKind.SERVER });
const PRODUCER = Object.freeze({ kind: SpanKind.PRODUCER });
const CONSUMER = Object.freeze({ kind: SpanKind.CONSUMER });
/** Operation descriptions kept per group, and metric attribute sets per operation. */
const MAX_OPS = 1024;
