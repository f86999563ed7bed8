// `npm run bench -- peers`: xmppbus through real ejabberd and Prosody against the brokers a Node
// team would pick instead — nats-server (core and JetStream) with nats.js, and mosquitto
// (persistence off and on) with mqtt.js — on this machine, in one run. Method and what bounds each
// number: benchmarks/README.md. Writes benchmarks/results/peers.json and peers.svg (unfiltered runs only).
//
// Env: PEERS_BENCH_ROUNDS (default 4), PEERS_BENCH_MEASURE_MS (measured ms per system, phase and
// round, default 500), PEERS_BENCH_WARM_MS (unmeasured ramp-up before each, default 150),
// PEERS_BENCH_ONLY=<workload,…> (rpc,qos0,qos1,qos2,fanout1,fanout10,fanout100),
// PEERS_BENCH_PAYLOADS=<100B,1KB,16KB>, PEERS_BENCH_SERVERS=<ejabberd,prosody>. Any filter → no files written.
import { writeFileSync } from 'node:fs';
import { SERVER_KINDS, type ServerKind } from '@xmppbus/testing';
import { barChart } from './lib/chart.js';
import { runPeers, type Medians, type PeersOptions, type Phase } from './lib/peers-run.js';
import { PAYLOAD_BYTES, TCP_NODELAY, WORKLOADS, type PayloadLabel, type Workload } from './lib/peers-types.js';
import { printTable, writeResult } from './lib/results.js';

const list = <T extends string>(env: string, all: readonly T[]): { values: T[]; filtered: boolean } => {
  const raw = process.env[env];
  if (raw === undefined || raw === '') return { values: [...all], filtered: false };
  const values = raw.split(',').filter((x) => x !== '');
  for (const v of values) if (!all.includes(v as T)) throw new Error(`${env}: unknown '${v}' (have ${all.join(', ')})`);
  return { values: values as T[], filtered: true };
};
const workloads = list<Workload>('PEERS_BENCH_ONLY', WORKLOADS);
const payloads = list<PayloadLabel>('PEERS_BENCH_PAYLOADS', Object.keys(PAYLOAD_BYTES) as PayloadLabel[]);
const servers = list<ServerKind>('PEERS_BENCH_SERVERS', SERVER_KINDS);
const filtered = workloads.filtered || payloads.filtered || servers.filtered;

const opts: PeersOptions = {
  rounds: Number(process.env['PEERS_BENCH_ROUNDS'] ?? 4),
  timing: {
    warmMs: Number(process.env['PEERS_BENCH_WARM_MS'] ?? 150),
    measureMs: Number(process.env['PEERS_BENCH_MEASURE_MS'] ?? 500),
  },
  warmupMs: 600,
  window: 500,
  workloads: workloads.values,
  payloads: payloads.values,
  servers: servers.values,
  outsideLimit: 0.15,
  minCleanRounds: 3,
  log: (line) => process.stderr.write(`${line}\n`),
};

const started = performance.now();
const result = await runPeers(opts);
const seconds = (performance.now() - started) / 1000;

const fmt = (x: number | undefined, digits = 1): string | number => (x === undefined ? '' : Number(x.toFixed(digits)));
const rows: Record<string, string | number>[] = [];
for (const [phase, byPayload] of Object.entries(result.medians)) {
  for (const [label, bySystem] of Object.entries(byPayload)) {
    for (const [system, m] of Object.entries(bySystem as Record<string, Medians>)) {
      rows.push({
        phase,
        payload: label,
        system,
        'ops/s': Math.round(m.opsPerSec ?? NaN),
        'p50 ms': fmt(m.p50Ms, 3),
        'p99 ms': fmt(m.p99Ms, 3),
        'node µs/op': fmt(m.nodeCpuUsPerOp),
        'broker µs/op': fmt(m.brokerCpuUsPerOp),
        lost: m.lost ?? '',
      });
    }
  }
}
printTable(
  `peers: medians over ${opts.rounds} rounds (${opts.timing.measureMs} ms measured per system and phase; ops = calls, ` +
    'messages received, or deliveries for fan-out)',
  rows,
);
process.stdout.write(`\nratios ${JSON.stringify(result.ratios, null, 1)}\ntotal ${seconds.toFixed(0)} s\n`);

if (filtered) {
  process.stdout.write('filtered run (PEERS_BENCH_ONLY/PAYLOADS/SERVERS): no result file written\n');
} else {
  const metrics = {
    method: {
      rounds: opts.rounds,
      measureMsPerPhase: opts.timing.measureMs,
      warmMsPerPhase: opts.timing.warmMs,
      warmupMsPerSystemAndPayload: opts.warmupMs,
      window: opts.window,
      rpcInFlight: [1, 100],
      order: 'balanced Latin square (Williams) over the systems of a workload, new row every round',
      outsideLoadLimitCores: opts.outsideLimit,
      aggregate: `per-system median over unflagged rounds if ≥ ${opts.minCleanRounds} remain, else over all rounds`,
      nodeCpu: 'process.cpuUsage() of this one process holding both ends, per op',
      brokerCpu: '/proc/<pid>/stat of the broker or XMPP server, per op',
      tcpNoDelay: TCP_NODELAY,
      seconds: Math.round(seconds),
    },
    medians: result.medians,
    rounds: result.rounds,
  };
  const file = writeResult({
    name: 'peers',
    server: 'prosody+ejabberd+nats-server+mosquitto',
    metrics,
    ratios: result.ratios,
  });
  // `ejabberd` in the JSON is xmppbus through ejabberd; the chart says so.
  const seriesName = (system: string): string =>
    system.startsWith('ejabberd') || system.startsWith('prosody') ? `xmppbus/${system}` : system;
  const chartPhases: Phase[] = ['rpc1', 'rpc100', 'qos0', 'qos1', 'qos2', 'fanout10'];
  const svg = barChart({
    title: 'Peers, 100 B payloads: operations per second (medians; fan-out = deliveries/s)',
    yLabel: 'ops/s (log)',
    logY: true,
    width: 900,
    groups: chartPhases.map((p) => ({
      label: p === 'rpc1' ? 'rpc 1 in flight' : p === 'rpc100' ? 'rpc 100 in flight' : p,
      bars: Object.entries(result.medians[p]?.['100B'] ?? {})
        .filter(([, m]) => m.opsPerSec !== undefined)
        .map(([system, m]) => ({ series: seriesName(system), value: m.opsPerSec! })),
    })),
  });
  const svgFile = new URL('./results/peers.svg', import.meta.url);
  writeFileSync(svgFile, svg);
  process.stdout.write(`wrote ${file} and ${svgFile.pathname}\n`);
}
