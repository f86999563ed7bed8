// `npm run bench -- scale`: the cost of a hop between servers. The same RPC and QoS-1 workloads
// run on each topology, side by side in one run:
//   single              — one ejabberd, caller and callee on it (the baseline);
//   cluster_cross_node  — a 2-node ejabberd cluster, caller on node 1, callee on node 2;
//   federated           — (federation work) two servers, two domains, over s2s.
// Per topology: RPC p50 (sequential) and throughput (100 in flight), QoS-1 p50 and throughput
// (durable SQLite stores both sides), and the CPU per stanza of every server process on the path
// (/proc/<pid>/stat). Ratios `<topology>_vs_single` for p50 and throughput; a capacity projection
// per added node from the CPU per stanza. Results: benchmarks/results/scale.json.
//
// Method (as benchmarks/rpc.ts): every topology stays up and connected; ROUNDS short rounds, the
// topology order rotating every round; numbers are medians over rounds.
//
// ADDING A TOPOLOGY (the federation work): write `benchmarks/lib/scale-federated.ts` exporting
// `federatedTopology(): Topology` (types in ./lib/scale-topology.ts — import them from there, not from
// this file, which runs on import; `ratioKey: 'federated_vs_single'`). This file loads it when it
// exists; nothing here needs editing. Add more the same way through
// OPTIONAL_TOPOLOGIES below.
//
// Env: SCALE_BENCH_ROUNDS (default 7), SCALE_BENCH_SEQ (sequential calls/messages per round, 300),
// SCALE_BENCH_PIPE_MS (RPC pipelined time per round, 1000), SCALE_BENCH_QOS1 (pipelined QoS-1
// messages per round, 4000), SCALE_BENCH_CONNECTIONS (idle c2s sessions per server, 1000; 0 = skip).
// Defaults take ≈ 5–6 minutes.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccessPolicy, Session } from '@xmppbus/core';
import { Messenger } from '@xmppbus/messaging';
import { RpcClient, RpcServer } from '@xmppbus/rpc';
import { sqliteMessageStore } from '@xmppbus/store-sqlite';
import { startEjabberdCluster, startServer } from '@xmppbus/testing';
import { componentTransport } from '@xmppbus/transport-component';
import { Tick } from '../test/fixtures/messaging-contracts.js';
import { CreateOrder } from '../test/rpc-fixtures.js';
import { percentile, printTable, processCpuUs, writeResult } from './lib/results.js';
import { measureConnections, type ConnectionsResult } from './lib/scale-connections.js';
import type { Endpoint, Topology, TopologyRun } from './lib/scale-topology.js';

const ROUNDS = Number(process.env['SCALE_BENCH_ROUNDS'] ?? 7);
const SEQ = Number(process.env['SCALE_BENCH_SEQ'] ?? 300);
const PIPE_MS = Number(process.env['SCALE_BENCH_PIPE_MS'] ?? 1000);
const QOS1 = Number(process.env['SCALE_BENCH_QOS1'] ?? 4000);
const CONNECTIONS = Number(process.env['SCALE_BENCH_CONNECTIONS'] ?? 1000);
const IN_FLIGHT = 100;
/** Outside load on this shared box, recorded with the results (it explains the throughput spread). */
const LOAD_AT_START = loadavg().map((x) => Number(x.toFixed(2)));
/** Topologies in other files, loaded when present: [file under benchmarks/lib, export name]. */
const OPTIONAL_TOPOLOGIES: readonly (readonly [string, string])[] = [['scale-federated.ts', 'federatedTopology']];

// ---------------------------------------------------------------------------------------------
// Topologies

function singleTopology(): Topology {
  return {
    name: 'single',
    description: 'one ejabberd; caller and callee on it',
    ratioKey: undefined,
    async start() {
      const srv = await startServer('ejabberd', { components: ['svc-a.localhost', 'svc-b.localhost'] });
      const at = (domain: string): Endpoint => ({
        service: srv.componentService(),
        domain,
        password: srv.componentSecret,
      });
      return {
        caller: at('svc-a.localhost'),
        callee: at('svc-b.localhost'),
        servers: { server: srv.pid },
        stop: () => srv.stop(),
      };
    },
  };
}

function clusterCrossNodeTopology(): Topology {
  return {
    name: 'cluster_cross_node',
    description: '2-node ejabberd cluster on this host; caller on node 1, callee on node 2',
    ratioKey: 'cluster_cross_node_vs_single',
    async start() {
      const cluster = await startEjabberdCluster({ nodes: 2 });
      const [n1, n2] = cluster.nodes;
      return {
        caller: { service: n1!.componentService(), domain: 'svc-a.localhost', password: cluster.componentSecret },
        callee: { service: n2!.componentService(), domain: 'svc-b.localhost', password: cluster.componentSecret },
        servers: { node1: n1!.pid, node2: n2!.pid },
        stop: () => cluster.stop(),
      };
    },
  };
}

async function optionalTopologies(): Promise<Topology[]> {
  const found: Topology[] = [];
  for (const [file, name] of OPTIONAL_TOPOLOGIES) {
    const url = new URL(`./lib/${file}`, import.meta.url);
    if (!existsSync(url)) continue;
    const mod = (await import(url.href)) as Record<string, unknown>;
    const make = mod[name];
    if (typeof make === 'function') found.push((make as () => Topology)());
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Workloads on one running topology

interface Sample {
  rpcP50Ms: number;
  rpcPerSec: number;
  /** Server CPU per stanza during the pipelined RPC phase (a call = 2 stanzas), per process label. */
  rpcCpuUsPerStanza: Record<string, number>;
  qos1P50Ms: number;
  qos1PerSec: number;
  /** Server CPU per message during the pipelined QoS-1 phase (the outbox batches several messages per IQ). */
  qos1CpuUsPerMessage: Record<string, number>;
}

interface Live {
  readonly topology: Topology;
  readonly run: TopologyRun;
  readonly call: () => Promise<unknown>;
  readonly send: (i: number) => Promise<void>;
  readonly received: () => number;
  readonly flush: () => Promise<void>;
  readonly close: () => Promise<void>;
}

async function connectTopology(topology: Topology): Promise<Live> {
  const run = await topology.start();
  const dir = mkdtempSync(join(tmpdir(), 'xmppbus-bench-scale-'));
  const mk = (e: Endpoint, domain: string) =>
    componentTransport({ service: e.service, domain, password: e.password, reconnect: false });
  // RPC and messaging use their own component names, so each has its own pair of connections.
  const rpcDomain = (e: Endpoint): string => e.domain.replace(/^([^.]+)/, '$1-rpc');
  const [calleeT, callerT, recvT, sendT] = await Promise.all([
    mk(run.callee, rpcDomain(run.callee)),
    mk(run.caller, rpcDomain(run.caller)),
    mk(run.callee, run.callee.domain),
    mk(run.caller, run.caller.domain),
  ]);
  // A callee on another domain (federated) is reachable only through an access rule.
  const access = run.callee.access ? { access: new AccessPolicy({ rules: run.callee.access }) } : {};
  const calleeSession = new Session({ transport: calleeT, ...access });
  const server = new RpcServer({ session: calleeSession, concurrency: 256 });
  server.handle(CreateOrder, ({ sku, qty }) => ({ orderId: `${sku}-${qty}`, total: qty * 9.5 }));
  await server.start();
  const callerSession = new Session({ transport: callerT });
  const client = new RpcClient({ session: callerSession, timeout: 30_000 });
  await client.start();
  const sender = new Messenger({
    session: new Session({ transport: sendT }),
    store: sqliteMessageStore(join(dir, 'sender.db')),
  });
  const receiver = new Messenger({
    session: new Session({ transport: recvT, ...access }),
    store: sqliteMessageStore(join(dir, 'receiver.db')),
  });
  let received = 0;
  receiver.handle(Tick, () => void received++);
  await Promise.all([sender.start(), receiver.start()]);
  const to = run.callee.domain;
  const calleeRpc = rpcDomain(run.callee);
  return {
    topology,
    run,
    call: () => client.call(CreateOrder, calleeRpc, { sku: 'A1', qty: 2 }),
    send: (i) => sender.send(Tick, to, { i }, { qos: 1 }),
    received: () => received,
    flush: () => sender.flush({ timeout: 120_000 }),
    close: async () => {
      await sender.close();
      await receiver.close();
      await callerSession.close();
      await calleeSession.close();
      for (const t of [calleeT, callerT, recvT, sendT]) await t.close();
      await run.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function until(fn: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > end) throw new Error('benchmark stalled');
    await new Promise((r) => setTimeout(r, 1));
  }
}

function cpuNow(servers: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.entries(servers).map(([k, pid]) => [k, processCpuUs(pid) ?? NaN]));
}

function cpuPerStanza(
  before: Record<string, number>,
  servers: Readonly<Record<string, number>>,
  stanzas: number,
): Record<string, number> {
  const after = cpuNow(servers);
  return Object.fromEntries(Object.keys(before).map((k) => [k, (after[k]! - before[k]!) / stanzas]));
}

async function sequentialP50(op: () => Promise<unknown>, n: number): Promise<number> {
  const lat: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await op();
    lat.push(performance.now() - t0);
  }
  return percentile(
    lat.sort((a, b) => a - b),
    50,
  );
}

async function measure(live: Live): Promise<Sample> {
  // RPC: sequential p50, then pipelined throughput with IN_FLIGHT calls outstanding.
  await sequentialP50(live.call, 30);
  const rpcP50Ms = await sequentialP50(live.call, SEQ);
  let done = 0;
  let stop = false;
  const cpu0 = cpuNow(live.run.servers);
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (!stop) {
      await live.call();
      done++;
    }
  };
  const workers = Array.from({ length: IN_FLIGHT }, worker);
  await new Promise((r) => setTimeout(r, PIPE_MS));
  stop = true;
  const rpcWall = performance.now() - t0;
  const rpcDone = done;
  const rpcCpuUsPerStanza = cpuPerStanza(cpu0, live.run.servers, 2 * rpcDone);
  await Promise.all(workers);

  // QoS 1: sequential p50 (send → handler), then QOS1 messages pipelined through the outbox.
  const oneMessage = async (i: number): Promise<void> => {
    const before = live.received();
    await live.send(i);
    await until(() => live.received() > before, 30_000);
  };
  let k = 0;
  const qos1P50Ms = await sequentialP50(() => oneMessage(k++), SEQ);
  await live.flush();
  const base = live.received();
  const qcpu0 = cpuNow(live.run.servers);
  const q0 = performance.now();
  await Promise.all(Array.from({ length: QOS1 }, (_, i) => live.send(i)));
  await until(() => live.received() - base >= QOS1, 120_000);
  const qWall = performance.now() - q0;
  const qos1CpuUsPerMessage = cpuPerStanza(qcpu0, live.run.servers, QOS1);
  await live.flush();
  return {
    rpcP50Ms,
    rpcPerSec: (rpcDone / rpcWall) * 1000,
    rpcCpuUsPerStanza,
    qos1P50Ms,
    qos1PerSec: (QOS1 / qWall) * 1000,
    qos1CpuUsPerMessage,
  };
}

// ---------------------------------------------------------------------------------------------
// Aggregation

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const r3 = (x: number): number => Number(x.toFixed(3));

interface Summary {
  description: string;
  rpcP50Ms: number;
  rpcPerSec: number;
  qos1P50Ms: number;
  qos1PerSec: number;
  rpcCpuUsPerStanza: Record<string, number>;
  qos1CpuUsPerMessage: Record<string, number>;
  /** Server CPU summed over every process on the path, per stanza (RPC phase). */
  rpcCpuUsPerStanzaTotal: number;
  rounds: Sample[];
}

function summarize(topology: Topology, samples: Sample[]): Summary {
  const med = (f: (s: Sample) => number): number => r3(median(samples.map(f)));
  const perProc = (f: (s: Sample) => Record<string, number>): Record<string, number> =>
    Object.fromEntries(Object.keys(f(samples[0]!)).map((k) => [k, med((s) => f(s)[k]!)]));
  const rpcCpu = perProc((s) => s.rpcCpuUsPerStanza);
  return {
    description: topology.description,
    rpcP50Ms: med((s) => s.rpcP50Ms),
    rpcPerSec: Math.round(med((s) => s.rpcPerSec)),
    qos1P50Ms: med((s) => s.qos1P50Ms),
    qos1PerSec: Math.round(med((s) => s.qos1PerSec)),
    rpcCpuUsPerStanza: rpcCpu,
    qos1CpuUsPerMessage: perProc((s) => s.qos1CpuUsPerMessage),
    rpcCpuUsPerStanzaTotal: r3(Object.values(rpcCpu).reduce((a, b) => a + b, 0)),
    rounds: samples,
  };
}

/**
 * Capacity of N nodes (one core each) for RPC stanzas, if callers and callees are spread evenly:
 * a stanza stays on one node with probability 1/N (single-node CPU cost) and crosses nodes
 * otherwise (the cross-node cost, paid on both nodes).
 */
function projection(single: Summary, cross: Summary): Record<string, unknown> {
  const local = single.rpcCpuUsPerStanzaTotal;
  const hop = cross.rpcCpuUsPerStanzaTotal;
  const rows = [1, 2, 3, 4, 8].map((n) => {
    const cpuPerStanza = local / n + (hop * (n - 1)) / n;
    return { nodes: n, stanzasPerSec: Math.round((n * 1e6) / cpuPerStanza), cpuUsPerStanza: r3(cpuPerStanza) };
  });
  // Marginal gain of one more node, from 4 to 8 nodes (tends to 1e6 / cross-node CPU per stanza).
  const at = (n: number): number => rows.find((r) => r.nodes === n)!.stanzasPerSec;
  const perAdded = Math.round((at(8) - at(4)) / 4);
  return {
    assumption:
      'one core per node, callers and callees spread evenly (cross-node share (N-1)/N), CPU per stanza as measured here (RPC phase, µs summed over the nodes on the path)',
    singleNodeCpuUsPerStanza: local,
    crossNodeCpuUsPerStanza: hop,
    stanzasPerSecPerCoreSingle: Math.round(1e6 / local),
    byNodes: rows,
    approxStanzasPerSecPerAddedNode: perAdded,
  };
}

// ---------------------------------------------------------------------------------------------

const topologies: Topology[] = [singleTopology(), clusterCrossNodeTopology(), ...(await optionalTopologies())];
const lives: Live[] = [];
try {
  for (const t of topologies) lives.push(await connectTopology(t));
  const samples = new Map<string, Sample[]>(topologies.map((t) => [t.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate the order so no topology always runs first (or right after the same neighbour).
    const order = lives.map((_, i) => lives[(i + round) % lives.length]!);
    for (const live of order) samples.get(live.topology.name)!.push(await measure(live));
    process.stdout.write(`round ${round + 1}/${ROUNDS} done\n`);
  }
  const summaries = Object.fromEntries(topologies.map((t) => [t.name, summarize(t, samples.get(t.name)!)]));
  // Connections per server (sizing): idle c2s sessions, memory and login CPU per connection.
  const connections: ConnectionsResult[] = [];
  if (CONNECTIONS > 0)
    for (const kind of ['ejabberd', 'prosody'] as const) connections.push(await measureConnections(kind, CONNECTIONS));
  printTable(
    `connections: ${CONNECTIONS} idle c2s sessions per server`,
    connections.map((c) => ({ ...c })),
  );
  printTable(
    `scale: RPC (${SEQ} sequential, ${PIPE_MS} ms × ${IN_FLIGHT} in flight) and QoS 1 (${SEQ} sequential, ${QOS1} pipelined), medians of ${ROUNDS} rounds`,
    topologies.map((t) => {
      const s = summaries[t.name]!;
      return {
        topology: t.name,
        'rpc p50 ms': s.rpcP50Ms,
        'rpc/s': s.rpcPerSec,
        'qos1 p50 ms': s.qos1P50Ms,
        'qos1/s': s.qos1PerSec,
        'server µs/stanza (rpc)': Object.entries(s.rpcCpuUsPerStanza)
          .map(([k, v]) => `${k} ${v.toFixed(1)}`)
          .join(', '),
      };
    }),
  );
  const single = summaries['single']!;
  const ratios: Record<string, unknown> = {};
  for (const t of topologies) {
    if (!t.ratioKey) continue;
    // Paired by round (the two ran minutes apart at most, under the same outside load), then the
    // median: neighbours' load on this shared box swings single rounds by 2-4x.
    const mine = samples.get(t.name)!;
    const base = samples.get('single')!;
    const paired = (f: (x: Sample) => number): number => r3(median(mine.map((x, i) => f(x) / f(base[i]!))));
    ratios[t.ratioKey] = {
      rpc_p50: paired((x) => x.rpcP50Ms),
      rpc_throughput: paired((x) => x.rpcPerSec),
      qos1_p50: paired((x) => x.qos1P50Ms),
      qos1_throughput: paired((x) => x.qos1PerSec),
    };
  }
  const cross = summaries['cluster_cross_node'];
  const metrics: Record<string, unknown> = {
    method: {
      rounds: ROUNDS,
      seq: SEQ,
      pipeMs: PIPE_MS,
      inFlight: IN_FLIGHT,
      qos1Pipelined: QOS1,
      order: 'topology order rotated every round',
      aggregate:
        'per-topology medians over rounds; ratios = median over rounds of (topology / single) in the same round',
      cpu: 'server CPU from /proc/<pid>/stat (10 ms ticks) over the pipelined phases: RPC per stanza (a call = 2 stanzas), QoS 1 per message (batched: several messages per IQ)',
      loadAverageAtStart: LOAD_AT_START,
      loadAverageAtEnd: loadavg().map((x) => Number(x.toFixed(2))),
    },
    ...summaries,
    ...(cross ? { clusterCapacityProjection: projection(single, cross) } : {}),
    connectionsPerServer: connections,
  };
  process.stdout.write(`\nratios ${JSON.stringify(ratios)}\n`);
  const file = writeResult({
    name: 'scale',
    server: topologies.map((t) => t.name).join('+'),
    metrics: {
      note:
        'Measured on one 2-core machine: two ejabberd nodes (or two federated servers) share the same 2 cores as the ' +
        'clients, so a second node cannot add capacity here. The numbers are the cost of a cross-node (or cross-server) ' +
        'hop against one server; clusterCapacityProjection estimates capacity per added node from the CPU per stanza.',
      ...metrics,
    },
    ratios,
  });
  process.stdout.write(`wrote ${file}\n`);
} finally {
  for (const l of lives) await l.close().catch(() => undefined);
}
