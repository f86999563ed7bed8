/**
 * xmppbus demo: three services talk through a real Prosody that this script starts on free
 * loopback ports (installed by scripts/install-servers.sh); everything is torn down at the end.
 *
 *   npm run demo
 *
 * 1. schema-validated payloads in plain stanzas
 * 2. typed RPC over IQ (validation on both sides, declared errors, unavailable service)
 * 3. pub/sub events through Prosody's XEP-0060 service
 * 4. exactly-once (QoS 2) messages that wait in a durable outbox while the receiver is offline
 * 5. one OpenTelemetry trace across the services, printed as a waterfall, and a few metrics
 * 6. an IoT fleet (c2s agents) watched by a monitor with alert rules and a live dashboard
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { ServiceUnavailableError, Session, xml, type Element } from '@xmppbus/core';
import { Messenger } from '@xmppbus/messaging';
import { PubSub } from '@xmppbus/pubsub';
import { RpcClient, RpcError, RpcServer } from '@xmppbus/rpc';
import { ValidationError, decode, encode, event, method } from '@xmppbus/schema';
import { sqliteMessageStore } from '@xmppbus/store-sqlite';
import { startProsody } from '@xmppbus/testing';
import { instrument } from '@xmppbus/telemetry';
import { componentTransport } from '@xmppbus/transport-component';
import { IOT_MONITOR, iotExampleUsers, runIotExample } from './iot/main.js';
import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';

// ── contracts: defined once, types and XML mapping derive from them ─────────────────────────
const Reading = event({
  ns: 'urn:example:telemetry:1',
  name: 'reading',
  schema: Type.Object({
    sensor: Type.String({ xml: { attribute: true } }),
    celsius: Type.Number(),
    at: Type.String(),
  }),
});

const GetStatus = method({
  ns: 'urn:example:telemetry:1',
  name: 'status',
  readOnly: true,
  idempotent: true,
  request: Type.Object({ sensor: Type.String({ minLength: 1 }) }),
  response: Type.Object({ sensor: Type.String(), readings: Type.Integer(), lastCelsius: Type.Number() }),
  errors: { unknownSensor: { condition: 'item-not-found', schema: Type.Object({ sensor: Type.String() }) } },
});

const Alarm = event({
  ns: 'urn:example:alarms:1',
  name: 'alarm',
  schema: Type.Object({ sensor: Type.String(), message: Type.String() }),
});

/** Prints spans as a terminal waterfall: service, span (indented under its parent), duration bar. */
function printWaterfall(all: readonly ReadableSpan[]): void {
  const ms = (t: readonly [number, number]): number => t[0] * 1000 + t[1] / 1e6;
  const start = Math.min(...all.map((s) => ms(s.startTime)));
  const end = Math.max(...all.map((s) => ms(s.endTime)));
  const width = 40;
  const scale = width / Math.max(end - start, 0.001);
  const byId = new Map(all.map((s) => [s.spanContext().spanId, s]));
  const depth = (s: ReadableSpan): number => {
    const p = s.parentSpanContext && byId.get(s.parentSpanContext.spanId);
    return p ? depth(p) + 1 : 0;
  };
  process.stdout.write(`  trace ${all[0]?.spanContext().traceId ?? ''}\n`);
  for (const s of [...all].sort((a, b) => ms(a.startTime) - ms(b.startTime))) {
    const from = Math.floor((ms(s.startTime) - start) * scale);
    const len = Math.max(1, Math.round((ms(s.endTime) - ms(s.startTime)) * scale));
    const service = String(s.attributes['xmppbus.address'] ?? 'demo');
    const name = s.name.replace('urn:example:telemetry:1/', '');
    const label = `${'  '.repeat(depth(s))}${name}`.slice(0, 26).padEnd(26);
    const bar = `${' '.repeat(from)}${'█'.repeat(Math.min(len, width - from))}`.padEnd(width);
    const dur = (ms(s.endTime) - ms(s.startTime)).toFixed(2).padStart(7);
    process.stdout.write(`  ${service.padEnd(18)} ${label} |${bar}| ${dur} ms\n`);
  }
}

// ── output ──────────────────────────────────────────────────────────────────────────────────
const t0 = performance.now();
function log(who: string, what: string): void {
  const ms = (performance.now() - t0).toFixed(1).padStart(7);
  process.stdout.write(`${ms} ms  ${who.padEnd(18)} ${what}\n`);
}
function section(title: string): void {
  process.stdout.write(`\n── ${title} ${'─'.repeat(Math.max(0, 76 - title.length))}\n`);
}

section('setup');
log('demo', 'starting Prosody on 127.0.0.1 (free ports, temp dir)…');
const DEMO_AGENTS = 4;
const demoComponents = ['sensors.localhost', 'monitor.localhost', 'pager.localhost'];
await using server = await startProsody({
  components: demoComponents,
  users: iotExampleUsers(DEMO_AGENTS),
  admins: [...demoComponents, `${IOT_MONITOR}@localhost`],
});
log('demo', `Prosody pid ${server.pid} ready; components on ${server.componentService()}`);
const connect = (domain: string) =>
  componentTransport({ service: server.componentService(), domain, password: () => server.componentSecret });
await using sensors = await connect('sensors.localhost');
await using monitor = await connect('monitor.localhost');
log('sensors.localhost', 'connected (XEP-0114 component)');
log('monitor.localhost', 'connected (XEP-0114 component)');
const state = new Map<string, { readings: number; lastCelsius: number }>();
function record(r: { sensor: string; celsius: number }): void {
  const s = state.get(r.sensor) ?? { readings: 0, lastCelsius: NaN };
  state.set(r.sensor, { readings: s.readings + 1, lastCelsius: r.celsius });
}

// ── 1. payloads in plain stanzas ────────────────────────────────────────────────────────────
section('1. schema-validated payloads');
const firstTwo = new Promise<void>((resolve) => {
  let n = 0;
  const off = monitor.onStanza((stanza: Element) => {
    const payload = stanza.name === 'message' ? stanza.getChild(Reading.name, Reading.ns) : undefined;
    if (!payload) return;
    const r = decode(Reading, payload); // element tree → typed, validated object (no string round trip)
    record(r);
    log('monitor.localhost', `← reading ${r.sensor} = ${r.celsius} °C`);
    if (++n === 2) {
      off();
      resolve();
    }
  });
});
for (const [sensor, celsius] of [
  ['boiler', 71.5],
  ['attic', 18],
] as const) {
  const stanza = xml(
    'message',
    { to: 'monitor.localhost' },
    encode(Reading, { sensor, celsius, at: new Date().toISOString() }),
  );
  await sensors.send(stanza);
  log('sensors.localhost', `→ ${stanza.toString()}`);
}
await firstTwo;
try {
  encode(Reading, { sensor: 'boiler', celsius: 'hot' as unknown as number, at: 'now' });
} catch (err) {
  if (!(err instanceof ValidationError)) throw err;
  log('sensors.localhost', `✗ refused to send (${err.code} at ${err.path}): never left the process`);
}

// ── 2. RPC over IQ ──────────────────────────────────────────────────────────────────────────
section('2. typed RPC over IQ');
// One session per connection: rpc, pub/sub and messaging on a link share it.
const monitorSession = new Session({ transport: monitor });
const sensorsSession = new Session({ transport: sensors });
const rpcServer = new RpcServer({ session: monitorSession, concurrency: 16 });
rpcServer.handle(GetStatus, async ({ sensor }, { from }) => {
  log('monitor.localhost', `← status(${sensor}) from ${from}`);
  const s = state.get(sensor);
  if (!s) throw new RpcError(GetStatus, 'unknownSensor', { sensor });
  return { sensor, readings: s.readings, lastCelsius: s.lastCelsius };
});
await rpcServer.start();
const rpc = new RpcClient({ session: sensorsSession, timeout: 5_000 });
await rpc.start();
const status = await rpc.call(GetStatus, 'monitor.localhost', { sensor: 'boiler' });
log('sensors.localhost', `→ status(boiler) = ${JSON.stringify(status)}`);
try {
  await rpc.call(GetStatus, 'monitor.localhost', { sensor: 'cellar' });
} catch (err) {
  if (!RpcError.is(err, GetStatus, 'unknownSensor')) throw err;
  log('sensors.localhost', `✗ declared error '${err.errorName}' came back typed: ${JSON.stringify(err.data)}`);
}
try {
  await rpc.call(GetStatus, 'pager.localhost', { sensor: 'boiler' });
} catch (err) {
  if (!(err instanceof ServiceUnavailableError)) throw err;
  log(
    'sensors.localhost',
    `✗ pager.localhost is not connected: ${err.constructor.name} (${err.condition}) at once, no timeout`,
  );
}

// ── 3. pub/sub ──────────────────────────────────────────────────────────────────────────────
section('3. pub/sub events (XEP-0060 at pubsub.localhost)');
const publisher = new PubSub({ session: sensorsSession, service: server.pubsubService });
const subscriber = new PubSub({ session: monitorSession, service: server.pubsubService });
await publisher.ensureNode('readings', { persistItems: true, maxItems: 100, notificationType: 'normal' });
log('sensors.localhost', 'node "readings" ready');
let consumed = 0;
let allConsumed!: () => void;
const threeConsumed = new Promise<void>((r) => (allConsumed = r));
const consumer = subscriber.consume(Reading, 'readings', (r, meta) => {
  record(r);
  log('monitor.localhost', `← event ${meta.id}: ${r.sensor} = ${r.celsius} °C`);
  if (++consumed === 3) allConsumed();
});
await consumer.start({ timeout: 10_000 });
for (const [i, celsius] of [72.0, 72.5, 73.25].entries()) {
  const id = `boiler-${i + 1}`;
  await publisher.publish(Reading, 'readings', { sensor: 'boiler', celsius, at: new Date().toISOString() }, { id });
  log('sensors.localhost', `→ published item ${id}`);
}
await threeConsumed;
await consumer.close();

// ── 4. QoS 2 with delayed delivery ──────────────────────────────────────────────────────────
section('4. exactly-once messages, delayed while the receiver is offline');
const dir = mkdtempSync(join(tmpdir(), 'xmppbus-demo-'));
try {
  const outbox = new Messenger({
    session: sensorsSession,
    store: sqliteMessageStore(join(dir, 'sensors.db')),
    retry: { initialDelay: 100, maxDelay: 500 },
  });
  await outbox.start();
  const sent = outbox.send(
    Alarm,
    'pager.localhost',
    { sensor: 'boiler', message: 'above 73 °C' },
    { qos: 2, ttl: '1h' },
  );
  log('sensors.localhost', '→ QoS 2 alarm to pager.localhost (offline): waiting in the SQLite outbox');
  const waitedFor = 1200;
  await new Promise((r) => setTimeout(r, waitedFor)); // the pager is down for a while (demo pacing only)
  log('sensors.localhost', `  outbox: ${outbox.counters.queued} queued, ${outbox.counters.retried} probes so far`);

  await using pager = await connect('pager.localhost');
  const inbox = new Messenger({
    session: new Session({ transport: pager }),
    store: sqliteMessageStore(join(dir, 'pager.db')),
  });
  const delivered = new Promise<void>((resolve) =>
    inbox.handle(Alarm, (a, meta) => {
      const sentAt = meta.delayedFrom?.toISOString() ?? 'n/a';
      log('pager.localhost', `← alarm "${a.message}" from ${meta.from} (QoS ${meta.qos}), originally sent ${sentAt}`);
      resolve();
    }),
  );
  await inbox.start();
  log('pager.localhost', 'connected; the outbox notices and delivers');
  await Promise.all([sent, delivered]);
  log('sensors.localhost', '✓ send() resolved: received for exactly-once processing');
  await outbox.close();
  await inbox.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}

// ── 5. OpenTelemetry: one trace across services, as a waterfall ───────────────────────────
section('5. tracing and metrics (OpenTelemetry, trace context in SHIM headers)');
// An application registers its SDK once; here: in-memory exporters so the demo can print them.
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const spans = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
const metricsOut = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const metricReader = new PeriodicExportingMetricReader({ exporter: metricsOut, exportIntervalMillis: 3_600_000 });
const meterProvider = new MeterProvider({ readers: [metricReader] });
instrument(sensorsSession, { tracerProvider, meterProvider });
instrument(monitorSession, { tracerProvider, meterProvider });
let traced!: () => void;
const tracedEvent = new Promise<void>((r) => (traced = r));
const tracedConsumer = subscriber.consume(Reading, 'readings', (r) => {
  record(r);
  traced();
});
await tracedConsumer.start({ timeout: 10_000 });
await tracerProvider.getTracer('demo').startActiveSpan('boiler check', async (root) => {
  await rpc.call(GetStatus, 'monitor.localhost', { sensor: 'boiler' });
  await publisher.publish(Reading, 'readings', { sensor: 'boiler', celsius: 73.5, at: new Date().toISOString() });
  await tracedEvent;
  root.end();
});
await tracedConsumer.close();
printWaterfall(spans.getFinishedSpans());
await metricReader.forceFlush();
for (const m of metricsOut.getMetrics().flatMap((r) => r.scopeMetrics.flatMap((x) => x.metrics))) {
  for (const dp of m.dataPoints) {
    const v = dp.value as number | { count: number; sum?: number };
    const labels = Object.entries(dp.attributes)
      .filter(([k]) => ['rpc.method', 'xmppbus.outcome', 'messaging.destination.name', 'xmppbus.unit'].includes(k))
      .map(([k, x]) => `${k}=${String(x)}`)
      .join(' ');
    const shown =
      typeof v === 'number' ? String(v) : `count ${v.count}, mean ${(((v.sum ?? 0) / v.count) * 1000).toFixed(2)} ms`;
    if (m.descriptor.name.startsWith('xmppbus.connection')) continue;
    log('metrics', `${m.descriptor.name} {${labels}} ${shown}`);
  }
}
await tracerProvider.shutdown();
await meterProvider.shutdown();

// ── 6. IoT: agents over c2s, a monitor, alerts, the dashboard ─────────────────────────────
section('6. IoT fleet: agents over c2s, observe, alerts, control, live dashboard (examples/iot)');
const iot = await runIotExample({
  server,
  agents: DEMO_AGENTS,
  duration: 5_000,
  speed: 4,
  write: (line) => process.stdout.write(`  ${line}\n`),
});
log(
  'demo',
  `dashboard was at ${iot.url} — ${iot.agents} agents, ${iot.notifications} notifications, ` +
    `${iot.alertsRaised.length} alerts raised / ${iot.alertsCleared.length} cleared, ` +
    `command delivered: ${iot.commandsDelivered.join(', ') || 'none'} (npm run example:iot keeps it running)`,
);

section('done');
await rpcServer.drain();
log('demo', 'stopping services and Prosody');
