// `npm run bench -- telemetry`: what OpenTelemetry costs RPC through real Prosody and ejabberd.
// Three modes on one caller/callee component pair (the sessions' instrumentation is switched per phase):
//   none     — sessions without instrumentation (the shared no-op: one property read per call);
//   api-only — `instrument(session)` with no SDK registered: spans and instruments are the API's no-ops;
//   sdk      — a BasicTracerProvider with a BatchSpanProcessor (spans exported to a discarding exporter),
//              a MeterProvider with a periodic reader, and the AsyncLocalStorage context manager
//              (enabled only while the sdk mode runs, so the other modes see no context manager).
// Per mode and round: pipelined throughput (IN_FLIGHT calls in flight for PIPE_MS after a ramp-up)
// and the Node CPU per call (`process.cpuUsage()`, both ends live in this process). Modes are
// interleaved in every round in a rotating order, and the reported numbers are medians over rounds
// (the machine is shared). Env: TEL_BENCH_ROUNDS (default 8), TEL_BENCH_PIPE_MS (default 1000).
import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import {
  AggregationTemporality,
  MeterProvider,
  PeriodicExportingMetricReader,
  type PushMetricExporter,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { Session, noInstrumentation, type Instrumentation } from '@xmppbus/core';
import { RpcClient, RpcServer } from '@xmppbus/rpc';
import { instrument, type TelemetryOptions } from '@xmppbus/telemetry';
import { CreateOrder, startServer, type ServerKind, type XmppServer } from '@xmppbus/testing';
import { componentLink } from './lib/component-link.js';
import { printTable, processCpuUs, writeResult } from './lib/results.js';

const ROUNDS = Number(process.env['TEL_BENCH_ROUNDS'] ?? 8);
const PIPE_MS = Number(process.env['TEL_BENCH_PIPE_MS'] ?? 1000);
const RAMP_MS = 150;
const IN_FLIGHT = 100;

type Mode = 'none' | 'api-only' | 'sdk';
const MODES: readonly Mode[] = ['none', 'api-only', 'sdk'];

class DiscardSpans implements SpanExporter {
  exported = 0;
  export(spans: ReadableSpan[], done: (r: ExportResult) => void): void {
    this.exported += spans.length;
    done({ code: ExportResultCode.SUCCESS });
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
class DiscardMetrics implements PushMetricExporter {
  export(_m: ResourceMetrics, done: (r: ExportResult) => void): void {
    done({ code: ExportResultCode.SUCCESS });
  }
  selectAggregationTemporality(): AggregationTemporality {
    return AggregationTemporality.CUMULATIVE;
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

const spanSink = new DiscardSpans();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(spanSink)] });
const meterProvider = new MeterProvider({
  readers: [new PeriodicExportingMetricReader({ exporter: new DiscardMetrics(), exportIntervalMillis: 1000 })],
});
const sdkOptions: TelemetryOptions = { tracerProvider, meterProvider };
const contextManager = new AsyncLocalStorageContextManager();

interface Pair {
  call(): Promise<unknown>;
  /** Switches both ends to `mode`'s instrumentation (the same connections serve every mode). */
  use(mode: Mode): void;
  close(): Promise<void>;
}

async function pair(srv: XmppServer, caller: string, callee: string): Promise<Pair> {
  const calleeSession = new Session({ transport: await componentLink(srv, callee) });
  const callerSession = new Session({ transport: await componentLink(srv, caller) });
  const modes = new Map<Mode, [Instrumentation, Instrumentation]>([
    ['none', [noInstrumentation, noInstrumentation]],
    ['api-only', [instrument(calleeSession), instrument(callerSession)]],
    ['sdk', [instrument(calleeSession, sdkOptions), instrument(callerSession, sdkOptions)]],
  ]);
  const server = new RpcServer({ session: calleeSession, concurrency: 256 });
  server.handle(CreateOrder, ({ sku, qty }) => ({ orderId: `${sku}-${qty}`, total: qty * 9.5 }));
  await server.start();
  const client = new RpcClient({ session: callerSession, timeout: 30_000 });
  await client.start();
  const req = { sku: 'A1', qty: 2 };
  return {
    call: () => client.call(CreateOrder, callee, req),
    use(mode) {
      const [a, b] = modes.get(mode)!;
      calleeSession.instrumentation = a;
      callerSession.instrumentation = b;
    },
    close: async () => {
      await callerSession.close();
      await calleeSession.close();
    },
  };
}

/** Keeps IN_FLIGHT calls going for `ms`; returns the calls completed. */
async function pipelined(p: Pair, ms: number): Promise<number> {
  let done = 0;
  let stop = false;
  const worker = async (): Promise<void> => {
    while (!stop) {
      await p.call();
      done++;
    }
  };
  const workers = Array.from({ length: IN_FLIGHT }, worker);
  await new Promise((r) => setTimeout(r, ms));
  stop = true;
  await Promise.all(workers);
  return done;
}

function withMode<T>(p: Pair, mode: Mode, fn: () => Promise<T>): Promise<T> {
  p.use(mode);
  // The SDK's context manager only while the sdk mode runs: api-only must see what an app without an SDK sees.
  if (mode === 'sdk') context.setGlobalContextManager(contextManager.enable());
  return fn().finally(() => {
    if (mode === 'sdk') {
      contextManager.disable();
      context.disable();
    }
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface Round {
  mode: Mode;
  rate: number;
  cpuUsPerCall: number;
  serverCpuUsPerCall: number | undefined;
}

async function benchServer(
  kind: ServerKind,
): Promise<{ metrics: Record<string, unknown>; ratios: Record<string, number> }> {
  const srv = await startServer(kind);
  let p: Pair | undefined;
  try {
    p = await pair(srv, 'svc-a.localhost', 'svc-b.localhost');
    const link = p;
    for (const m of MODES) await withMode(link, m, () => pipelined(link, 500)); // warm-up
    const rounds: Round[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const order = MODES.map((_, i) => MODES[(i + r) % MODES.length]!);
      for (const mode of order) {
        await withMode(link, mode, async () => {
          await pipelined(link, RAMP_MS);
          const cpu0 = process.cpuUsage();
          const srv0 = processCpuUs(srv.pid);
          const t0 = performance.now();
          const n = await pipelined(link, PIPE_MS);
          const secs = (performance.now() - t0) / 1000;
          const cpu = process.cpuUsage(cpu0);
          const srv1 = processCpuUs(srv.pid);
          rounds.push({
            mode,
            rate: n / secs,
            cpuUsPerCall: (cpu.user + cpu.system) / n,
            serverCpuUsPerCall: srv0 !== undefined && srv1 !== undefined ? (srv1 - srv0) / n : undefined,
          });
        });
      }
    }
    const summary: Record<string, { rate: number; cpuUsPerCall: number; serverCpuUsPerCall: number | undefined }> = {};
    for (const mode of MODES) {
      const rs = rounds.filter((x) => x.mode === mode);
      const server = rs.map((x) => x.serverCpuUsPerCall).filter((x): x is number => x !== undefined);
      summary[mode] = {
        rate: median(rs.map((x) => x.rate)),
        cpuUsPerCall: median(rs.map((x) => x.cpuUsPerCall)),
        serverCpuUsPerCall: server.length > 0 ? median(server) : undefined,
      };
    }
    printTable(
      `telemetry — RPC through ${kind}, ${IN_FLIGHT} in flight, medians of ${ROUNDS} rounds`,
      MODES.map((m) => ({
        mode: m,
        'calls/s': Math.round(summary[m]!.rate),
        'node µs/call': summary[m]!.cpuUsPerCall,
        'server µs/call': summary[m]!.serverCpuUsPerCall ?? NaN,
      })),
    );
    const none = summary['none']!;
    return {
      metrics: { ...summary, rounds },
      ratios: {
        api_only_vs_none: summary['api-only']!.rate / none.rate,
        sdk_vs_none: summary['sdk']!.rate / none.rate,
        api_only_cpu_vs_none: summary['api-only']!.cpuUsPerCall / none.cpuUsPerCall,
        sdk_cpu_vs_none: summary['sdk']!.cpuUsPerCall / none.cpuUsPerCall,
      },
    };
  } finally {
    await p?.close().catch(() => undefined);
    await srv.stop();
  }
}

const started = performance.now();
const metrics: Record<string, unknown> = {};
const ratios: Record<string, unknown> = {};
for (const kind of ['prosody', 'ejabberd'] as const) {
  const r = await benchServer(kind);
  metrics[kind] = r.metrics;
  ratios[kind] = r.ratios;
}
await tracerProvider.shutdown();
await meterProvider.shutdown();
ratios['targets'] = { api_only_vs_none: '>= 0.97', sdk_vs_none: 'report (aim >= 0.75)' };
metrics['spansExported'] = spanSink.exported;
const file = writeResult({ name: 'telemetry', server: 'prosody+ejabberd', metrics, ratios });
process.stdout.write(
  `\n${JSON.stringify(ratios, null, 2)}\ntotal ${((performance.now() - started) / 1000).toFixed(0)} s; wrote ${file}\n`,
);
