// `npm run bench -- curves`: how cost grows. RPC (RpcClient → RpcServer) and QoS 1 messaging
// (Messenger → Messenger, durable SQLite stores both sides) through real ejabberd and Prosody:
// throughput, Node CPU per operation and server CPU per operation
//   (a) against payload size — 100 B, 1 KB, 4 KB, 16 KB, 64 KB — at 100 in flight;
//   (b) against operations in flight — 1, 10, 100, 1 000 — at 100 B.
// The payload is alphanumeric text of that many bytes, one way (RPC request / QoS 1 message); the
// answer is small (RPC response {n}, QoS 1 ack), so both workloads move the same bytes. For RPC
// "in flight" is the calls the client keeps outstanding; for QoS 1 it is the sender's window.
//
// Method (as benchmarks/rpc.ts, whose comment explains why: this 2-core VM is shared and noisy).
// Every server stays started and every workload connected for the whole run; after a warm-up of
// every point, each round measures all 16 points (8 per workload) once, in the order of a balanced
// Latin square row (Williams), a new row every round, so no point always runs first or after the
// same neighbour. RPC phases run for PHASE_MS after a drained ramp-up; a QoS 1 phase sends a
// count sized from that point's last rate to take about PHASE_MS, all handed to the outbox at once
// so the window limits what is in flight. Phases end on promises (the handler or the acks reach
// the count), never by polling, so Node CPU (process.cpuUsage, both ends live in this process)
// counts no busy-waiting; server CPU is from /proc/<pid>/stat. Each phase records the outside
// load (machine busy time minus ours and the server's); phases above OUTSIDE_LIMIT cores are
// flagged and a point's medians use its unflagged rounds when at least 3 remain, else all rounds.
// The receivers' admission budgets are raised to hold the largest window (see curves-rigs.ts), so
// the curves show cost, not pushback; any retry is counted per phase.
// Env: CURVES_BENCH_ROUNDS (default 6), CURVES_BENCH_PHASE_MS (default 500),
// CURVES_BENCH_SERVERS=ejabberd, CURVES_BENCH_WORKLOADS=rpc|qos1, CURVES_BENCH_PAYLOADS=65536 and
// CURVES_BENCH_IN_FLIGHTS=1,100 (subsets; the payload sweep needs 100 in flight, the in-flight one 100 B).
// A subset writes no result files; CURVES_BENCH_CHARTS_ONLY=1 redraws the charts from curves.json
// without measuring. Defaults take ≈ 4 minutes for both servers.
import { readFileSync, writeFileSync } from 'node:fs';
import { SERVER_KINDS, startServer, type ServerKind } from '@xmppbus/testing';
import { lineChart, type LineSeries } from './lib/chart.js';
import { payloadOf, qos1Workload, rpcWorkload, type PhaseSample, type Workload } from './lib/curves-rigs.js';
import { printTable, writeResult } from './lib/results.js';
import { medianBy, roundsToUse, williamsOrder } from './lib/rounds.js';

const ROUNDS = Number(process.env['CURVES_BENCH_ROUNDS'] ?? 6);
const PHASE_MS = Number(process.env['CURVES_BENCH_PHASE_MS'] ?? 500);
const WARMUP_MS = 300;
const OUTSIDE_LIMIT = 0.15;
const MIN_CLEAN_ROUNDS = 3;
const ALL_PAYLOADS = [100, 1024, 4096, 16_384, 65_536];
const ALL_IN_FLIGHTS = [1, 10, 100, 1000];
const subset = (env: string, all: number[]): number[] => {
  const only = process.env[env]
    ?.split(',')
    .filter((s) => s !== '')
    .map(Number);
  return only ? all.filter((x) => only.includes(x)) : all;
};
const PAYLOADS = subset('CURVES_BENCH_PAYLOADS', ALL_PAYLOADS);
const IN_FLIGHTS = subset('CURVES_BENCH_IN_FLIGHTS', ALL_IN_FLIGHTS);
const FIXED_IN_FLIGHT = 100;
const FIXED_PAYLOAD = 100;
const WORKLOADS = ['rpc', 'qos1'] as const;
type WorkloadName = (typeof WORKLOADS)[number];
const LABEL: Record<WorkloadName, string> = { rpc: 'RPC', qos1: 'QoS 1' };

const onlyServers = process.env['CURVES_BENCH_SERVERS']?.split(',').filter((s) => s !== '');
const onlyWorkloads = process.env['CURVES_BENCH_WORKLOADS']?.split(',').filter((s) => s !== '');
const KINDS = onlyServers ? SERVER_KINDS.filter((k) => onlyServers.includes(k)) : [...SERVER_KINDS];
const NAMES = onlyWorkloads ? WORKLOADS.filter((w) => onlyWorkloads.includes(w)) : [...WORKLOADS];
/** Redraws the charts from benchmarks/results/curves.json without measuring. */
const CHARTS_ONLY = process.env['CURVES_BENCH_CHARTS_ONLY'] === '1';
const FULL_RUN =
  KINDS.length === SERVER_KINDS.length &&
  NAMES.length === WORKLOADS.length &&
  PAYLOADS.length === ALL_PAYLOADS.length &&
  IN_FLIGHTS.length === ALL_IN_FLIGHTS.length;

interface Point {
  workload: WorkloadName;
  bytes: number;
  inFlight: number;
}

/** The payload sweep at 100 in flight and the in-flight sweep at 100 B share the 100 B / 100 point. */
const POINTS: Point[] = NAMES.flatMap((workload) => {
  const pts: Point[] = IN_FLIGHTS.includes(FIXED_IN_FLIGHT)
    ? PAYLOADS.map((bytes) => ({ workload, bytes, inFlight: FIXED_IN_FLIGHT }))
    : [];
  if (PAYLOADS.includes(FIXED_PAYLOAD)) {
    for (const n of IN_FLIGHTS) if (n !== FIXED_IN_FLIGHT) pts.push({ workload, bytes: FIXED_PAYLOAD, inFlight: n });
  }
  return pts;
});
const PAYLOAD_TEXT = new Map(PAYLOADS.map((b) => [b, payloadOf(b)]));

interface Sample extends PhaseSample {
  round: number;
  position: number;
  outsideLoadCores: number | undefined;
  flagged: boolean;
}

interface Summary {
  workload: WorkloadName;
  bytes: number;
  inFlight: number;
  opsPerSec: number;
  payloadMBPerSec: number;
  nodeUsPerOp: number;
  serverUsPerOp: number | undefined;
  msgsPerBatch: number | undefined;
  retried: number;
  /** CPU cores busy during the phase: below 1 for Node, the phase waited on something other than its CPU. */
  nodeCores: number;
  serverCores: number | undefined;
  outsideLoadCores: number | undefined;
  rounds: string;
}

const key = (p: Point): string => `${p.workload}/${p.bytes}/${p.inFlight}`;

/** CPU used by other processes during the phase, in cores (the machine's busy time minus ours and the server's). */
function outsideLoad(s: PhaseSample): number | undefined {
  if (s.machineCpuUs === undefined || s.serverCpuUs === undefined) return undefined;
  return Math.max(0, (s.machineCpuUs - s.nodeCpuUs - s.serverCpuUs) / (s.wallMs * 1000));
}

async function runServer(kind: ServerKind): Promise<Map<string, Sample[]>> {
  const srv = await startServer(kind);
  const workloads = new Map<WorkloadName, Workload>();
  const samples = new Map(POINTS.map((p) => [key(p), [] as Sample[]]));
  try {
    if (NAMES.includes('rpc')) workloads.set('rpc', await rpcWorkload(srv, 'svc-a.localhost', 'svc-b.localhost'));
    if (NAMES.includes('qos1')) {
      const senders = new Map(ALL_IN_FLIGHTS.map((n, i) => [n, `svc-${'cdef'[i]}.localhost`]));
      workloads.set('qos1', await qos1Workload(srv, senders, 'svc-g.localhost'));
    }
    // Warm-up: JIT, SQLite pages, server routes, the batch disco, and a first rate per QoS 1 point.
    for (const p of POINTS) await workloads.get(p.workload)!.measure(PAYLOAD_TEXT.get(p.bytes)!, p.inFlight, WARMUP_MS);
    for (let round = 0; round < ROUNDS; round++) {
      const order = williamsOrder(POINTS.length, round);
      for (const [position, i] of order.entries()) {
        const p = POINTS[i]!;
        const s = await workloads.get(p.workload)!.measure(PAYLOAD_TEXT.get(p.bytes)!, p.inFlight, PHASE_MS);
        const outside = outsideLoad(s);
        samples.get(key(p))!.push({
          ...s,
          round,
          position,
          outsideLoadCores: outside,
          flagged: outside !== undefined && outside > OUTSIDE_LIMIT,
        });
      }
      process.stdout.write(`${kind}: round ${round + 1}/${ROUNDS} done\n`);
    }
  } finally {
    for (const w of workloads.values()) await w.close();
    await srv.stop();
  }
  return samples;
}

function summarise(p: Point, samples: Sample[]): Summary {
  const { used } = roundsToUse(samples, MIN_CLEAN_ROUNDS);
  const useClean = used.every((s) => !s.flagged);
  const med = (f: (s: Sample) => number | undefined): number | undefined => medianBy(used, f);
  const opsPerSec = med((s) => (s.ops / s.wallMs) * 1000)!;
  const serverUs = med((s) => (s.serverCpuUs !== undefined ? s.serverCpuUs / s.ops : undefined));
  const batch = med((s) => s.msgsPerBatch);
  const serverCores = med((s) => (s.serverCpuUs !== undefined ? s.serverCpuUs / (s.wallMs * 1000) : undefined));
  const outside = med((s) => s.outsideLoadCores);
  return {
    ...p,
    opsPerSec: Math.round(opsPerSec),
    payloadMBPerSec: Number(((opsPerSec * p.bytes) / 1e6).toFixed(2)),
    nodeUsPerOp: Number(med((s) => s.nodeCpuUs / s.ops)!.toFixed(1)),
    serverUsPerOp: serverUs !== undefined ? Number(serverUs.toFixed(1)) : undefined,
    msgsPerBatch: batch !== undefined ? Number(batch.toFixed(1)) : undefined,
    retried: samples.reduce((n, s) => n + (s.retried ?? 0), 0),
    nodeCores: Number(med((s) => s.nodeCpuUs / (s.wallMs * 1000))!.toFixed(2)),
    serverCores: serverCores !== undefined ? Number(serverCores.toFixed(2)) : undefined,
    outsideLoadCores: outside !== undefined ? Number(outside.toFixed(2)) : undefined,
    rounds: `${used.length}${useClean ? ' clean' : ' (all)'}`,
  };
}

// ---------------------------------------------------------------------------------------------

const started = performance.now();
const metrics: Record<string, unknown> = {
  method: {
    rounds: ROUNDS,
    phaseMs: PHASE_MS,
    payloadsBytes: PAYLOADS,
    payloadSweepInFlight: FIXED_IN_FLIGHT,
    inFlights: IN_FLIGHTS,
    inFlightSweepPayloadBytes: FIXED_PAYLOAD,
    order: `balanced Latin square (Williams) over the ${POINTS.length} points, new row every round`,
    outsideLoadLimitCores: OUTSIDE_LIMIT,
    aggregate: `per-point medians over unflagged rounds if ≥ ${MIN_CLEAN_ROUNDS} remain, else over all rounds`,
    payload: 'alphanumeric text, one way; small answer (RPC {n}, QoS 1 ack)',
    qos1: 'durable SQLite stores both sides; in flight = the sender window; batching on (default 32 msgs / 64 KiB)',
  },
};
const ratios: Record<string, Record<string, number>> = {};
const summaries = new Map<ServerKind, Summary[]>();

if (CHARTS_ONLY) {
  const saved = JSON.parse(readFileSync(new URL('./results/curves.json', import.meta.url), 'utf8')) as {
    metrics: Record<string, { points?: Summary[] }>;
  };
  for (const kind of KINDS) {
    const points = saved.metrics[kind]?.points;
    if (points) summaries.set(kind, points);
  }
}
for (const kind of CHARTS_ONLY ? [] : KINDS) {
  const samples = await runServer(kind);
  const list = POINTS.map((p) => summarise(p, samples.get(key(p))!));
  summaries.set(kind, list);
  metrics[kind] = {
    points: list,
    rounds: Object.fromEntries(POINTS.map((p) => [key(p), samples.get(key(p))])),
  };
  const find = (w: WorkloadName, bytes: number, inFlight: number): Summary | undefined =>
    list.find((s) => s.workload === w && s.bytes === bytes && s.inFlight === inFlight);
  const r: Record<string, number> = {};
  for (const w of NAMES) {
    const base = find(w, FIXED_PAYLOAD, FIXED_IN_FLIGHT);
    if (!base) continue; // a subset without the shared 100 B / 100 point
    const ratio = (s: Summary | undefined): number => Number(((s?.opsPerSec ?? NaN) / base.opsPerSec).toFixed(3));
    r[`${w}_64k_vs_100b`] = ratio(find(w, 65_536, FIXED_IN_FLIGHT));
    r[`${w}_16k_vs_100b`] = ratio(find(w, 16_384, FIXED_IN_FLIGHT));
    r[`${w}_inflight1_vs_100`] = ratio(find(w, FIXED_PAYLOAD, 1));
    r[`${w}_inflight1000_vs_100`] = ratio(find(w, FIXED_PAYLOAD, 1000));
  }
  ratios[kind] = r;
  printTable(
    `curves on ${kind}: ${ROUNDS} rounds × ${PHASE_MS} ms per point, medians`,
    list.map((s) => ({
      workload: LABEL[s.workload],
      bytes: s.bytes,
      'in flight': s.inFlight,
      'ops/s': s.opsPerSec,
      'MB/s': s.payloadMBPerSec,
      'node µs/op': s.nodeUsPerOp,
      'server µs/op': s.serverUsPerOp ?? 'n/a',
      'msg/batch': s.msgsPerBatch ?? '-',
      'node cores': s.nodeCores,
      'server cores': s.serverCores ?? 'n/a',
      outside: s.outsideLoadCores ?? 'n/a',
      retried: s.retried,
      rounds: s.rounds,
    })),
  );
}
if (!CHARTS_ONLY) process.stdout.write(`\nratios ${JSON.stringify(ratios)}\n`);
process.stdout.write(`took ${((performance.now() - started) / 1000).toFixed(0)} s\n`);

/** One line per server and workload (and, for CPU, per side) along one sweep. */
function sweepSeries(
  sweep: 'payload' | 'inflight',
  metric: (s: Summary) => { suffix: string; value: number | undefined; dashed?: boolean }[],
): LineSeries[] {
  const out = new Map<string, LineSeries>();
  for (const [kind, list] of summaries) {
    for (const s of list) {
      const onSweep = sweep === 'payload' ? s.inFlight === FIXED_IN_FLIGHT : s.bytes === FIXED_PAYLOAD;
      if (!onSweep) continue;
      for (const { suffix, value, dashed } of metric(s)) {
        if (value === undefined) continue;
        // One colour per server and workload on every chart; the server's CPU is the dashed twin.
        const colourKey = `${kind} ${LABEL[s.workload]}`;
        const name = `${colourKey}${suffix}`;
        const series = out.get(name) ?? { name, colourKey, dashed: dashed ?? false, points: [] };
        series.points.push({ x: sweep === 'payload' ? s.bytes : s.inFlight, y: value });
        out.set(name, series);
      }
    }
  }
  return [...out.values()];
}

/** A sweep's two charts, log-log: throughput, and CPU per operation (Node solid, the server dashed). */
function sweepCharts(sweep: 'payload' | 'inflight', what: string, xLabel: string): [string, string] {
  const axes = { xLabel, logX: true, logY: true };
  return [
    lineChart({
      ...axes,
      title: `Throughput vs ${what}`,
      yLabel: 'operations/s (log scale)',
      series: sweepSeries(sweep, (s) => [{ suffix: '', value: s.opsPerSec }]),
    }),
    lineChart({
      ...axes,
      title: `CPU per operation vs ${what}`,
      yLabel: 'CPU µs per operation (log scale)',
      series: sweepSeries(sweep, (s) => [
        { suffix: ' · Node', value: s.nodeUsPerOp },
        { suffix: ' · server', value: s.serverUsPerOp, dashed: true },
      ]),
    }),
  ];
}

if (FULL_RUN) {
  if (!CHARTS_ONLY) writeResult({ name: 'curves', server: KINDS.join('+'), metrics, ratios });
  const [payload, payloadCpu] = sweepCharts(
    'payload',
    `payload size (${FIXED_IN_FLIGHT} in flight)`,
    'payload (bytes, log scale)',
  );
  const [inflight, inflightCpu] = sweepCharts(
    'inflight',
    `operations in flight (${FIXED_PAYLOAD} B payload)`,
    'in flight (log scale)',
  );
  const charts: Record<string, string> = {
    'curves-payload.svg': payload,
    'curves-payload-cpu.svg': payloadCpu,
    'curves-inflight.svg': inflight,
    'curves-inflight-cpu.svg': inflightCpu,
  };
  for (const [file, svg] of Object.entries(charts)) writeFileSync(new URL(`./results/${file}`, import.meta.url), svg);
  process.stdout.write(`charts: ${Object.keys(charts).join(', ')}\n`);
}
