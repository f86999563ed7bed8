// Messaging benchmark: QoS 0 / 1 / 2 throughput and p50 end-to-end latency through each real
// server (Prosody, ejabberd), durable SQLite stores on both sides, one Node process holding the
// sender (svc-a) and the receiver (svc-b). Writes benchmarks/results/messaging.json with
// `ratios` per server: qos1_vs_qos0, qos2_vs_qos0 (targets ≥ 0.5 and ≥ 0.35).
//
// Method (as benchmarks/rpc.ts, whose comment explains why): every server stays started and its
// messengers connected for the whole run; after a one-off warm-up, each round runs every QoS level
// once (a throughput phase of COUNT pipelined messages, then LATENCY sequential ones), the order
// of the levels changing every round (a balanced Latin square from lib/rounds.ts: none always
// goes first or always follows the same one). Each round records the outside CPU load (/proc/stat
// busy time minus this process's and the server's); rounds above OUTSIDE_LIMIT cores are flagged, and the reported
// numbers are per-level medians over the unflagged rounds when at least 3 remain, else over all.
// Completion is a promise the receiving handler resolves when the count is reached (no polling),
// so "node µs/msg" (process.cpuUsage over the phase, sender and receiver together) counts no
// busy-waiting. QoS 0 may lose messages: its phase ends at the last receipt (after 1 s without
// one, the loss is counted and the rate taken up to that receipt).
// Per level it also records the messages per batch IQ (`batched / batches` of the sender's counters).
// Env: MESSAGING_BENCH_ROUNDS (default 6), MESSAGING_BENCH_COUNT (messages per level and round,
// default 5000), MESSAGING_BENCH_LATENCY (sequential messages per level and round, default 200),
// MESSAGING_BENCH_WINDOW (QoS 1/2 sends awaiting their guarantee at once, default 500, as the peers
// benchmark drives every system; QoS 0 goes in write slices of 500),
// MESSAGING_BENCH_LEVELS=1,2 (a subset of levels; ratios need 0), MESSAGING_BENCH_SERVERS=ejabberd
// (a subset of servers). A subset writes no result file (profiling runs). Messenger tuning to try:
// MESSAGING_BENCH_PEER_WINDOW (messages in flight per peer, the messenger's `window`) and
// MESSAGING_BENCH_BATCH_MAX (`batch.maxMessages`); either one set writes no result file either.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from '@xmppbus/core';
import { Messenger, type QosLevel } from '@xmppbus/messaging';
import { sqliteMessageStore } from '@xmppbus/store-sqlite';
import { startServer, SERVER_KINDS, type XmppServer } from '@xmppbus/testing';
import { componentTransport } from '@xmppbus/transport-component';
import { Tick } from '../test/fixtures/messaging-contracts.js';
import { percentile, printTable, processCpuUs, writeResult } from './lib/results.js';
import { machineCpuUs, medianBy, outsideLoadCores, williamsOrder } from './lib/rounds.js';

const ROUNDS = Number(process.env['MESSAGING_BENCH_ROUNDS'] ?? 6);
const COUNT = Number(process.env['MESSAGING_BENCH_COUNT'] ?? 5_000);
const LATENCY_SAMPLES = Number(process.env['MESSAGING_BENCH_LATENCY'] ?? 200);
const WARMUP = 1_000;
const QOS0_BATCH = 500;
/** QoS 1/2 sends in flight (awaiting their guarantee), as in the peers benchmark. */
const WINDOW = Number(process.env['MESSAGING_BENCH_WINDOW'] ?? 500);
/** Messenger tuning to try (defaults: the messenger's own, window 128 and 32 messages per batch). */
const PEER_WINDOW = process.env['MESSAGING_BENCH_PEER_WINDOW'];
const BATCH_MAX = process.env['MESSAGING_BENCH_BATCH_MAX'];
const tuning = {
  ...(PEER_WINDOW !== undefined ? { window: Number(PEER_WINDOW) } : {}),
  ...(BATCH_MAX !== undefined ? { batch: { maxMessages: Number(BATCH_MAX) } } : {}),
};
/** A phase that gets no receipt for this long has stalled (QoS 1/2) or lost the rest (QoS 0). */
const QUIET_MS = 1_000;
const PHASE_TIMEOUT_MS = 120_000;
const OUTSIDE_LIMIT = 0.15;
const MIN_CLEAN_ROUNDS = 3;
const LEVELS = (process.env['MESSAGING_BENCH_LEVELS'] ?? '0,1,2').split(',').map(Number) as QosLevel[];
const only = process.env['MESSAGING_BENCH_SERVERS']?.split(',').filter((s) => s !== '');
const KINDS = only ? SERVER_KINDS.filter((k) => only.includes(k)) : SERVER_KINDS;

/** Counts receipts; `until(n)` resolves when the count reaches n, or (lossy) when receipts stop. */
class Sink {
  received = 0;
  lastReceipt = 0;
  #target = Infinity;
  #done: (() => void) | undefined;

  receipt(): void {
    this.received++;
    this.lastReceipt = performance.now();
    if (this.received >= this.#target) this.#finish();
  }

  #finish(): void {
    const done = this.#done;
    this.#target = Infinity;
    this.#done = undefined;
    done?.();
  }

  /** Resolves at `target` receipts; if `lossy`, also once no receipt came for QUIET_MS. */
  until(target: number, lossy: boolean): Promise<void> {
    if (this.received >= target) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const started = performance.now();
      // A coarse watchdog (4 wake-ups a second), not a spin: its CPU is negligible.
      const watchdog = setInterval(() => {
        const now = performance.now();
        const quiet = now - Math.max(this.lastReceipt, started) > QUIET_MS;
        if (lossy && quiet) this.#finish();
        else if (now - started > PHASE_TIMEOUT_MS) {
          this.#done = undefined;
          this.#target = Infinity;
          clearInterval(watchdog);
          reject(new Error(`benchmark stalled at ${this.received}/${target}`));
        }
      }, 250);
      this.#target = target;
      this.#done = () => {
        clearInterval(watchdog);
        resolve();
      };
    });
  }
}

interface Rig {
  srv: XmppServer;
  sender: Messenger;
  receiver: Messenger;
  sink: Sink;
  close(): Promise<void>;
}

async function setupRig(srv: XmppServer): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), 'xmppbus-bench-msg-'));
  const connect = (domain: string) =>
    componentTransport({ service: srv.componentService(), domain, password: srv.componentSecret });
  const [ta, tb] = await Promise.all([connect('svc-a.localhost'), connect('svc-b.localhost')]);
  const sender = new Messenger({
    session: new Session({ transport: ta }),
    store: sqliteMessageStore(join(dir, 'a.db')),
    ...tuning,
  });
  const receiver = new Messenger({
    session: new Session({ transport: tb }),
    store: sqliteMessageStore(join(dir, 'b.db')),
  });
  const sink = new Sink();
  receiver.handle(Tick, () => sink.receipt());
  await Promise.all([sender.start(), receiver.start()]);
  return {
    srv,
    sender,
    receiver,
    sink,
    close: async () => {
      await sender.close();
      await receiver.close();
      await ta.close();
      await tb.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const TO = 'svc-b.localhost';

async function sendAll(rig: Rig, qos: QosLevel, count: number): Promise<void> {
  const { sender, sink } = rig;
  const target = sink.received + count;
  const arrived = sink.until(target, qos === 0);
  if (qos === 0) {
    // Written in slices, so the transport's queue stays bounded.
    for (let i = 0; i < count; i += QOS0_BATCH) {
      const slice: Promise<void>[] = [];
      for (let j = i; j < Math.min(count, i + QOS0_BATCH); j++) slice.push(sender.send(Tick, TO, { i: j }, { qos }));
      await Promise.all(slice);
    }
    await arrived;
    return;
  }
  // WINDOW sends in flight, each completion starting the next (as the peers benchmark drives
  // every system); both ends done: every handler ran and every sender learnt its guarantee was met.
  const sent = new Promise<void>((resolve, reject) => {
    let next = 0;
    let done = 0;
    const launch = (): void => {
      const i = next++;
      sender.send(Tick, TO, { i }, { qos }).then(() => {
        if (++done === count) resolve();
        else if (next < count) launch();
      }, reject);
    };
    for (let k = 0; k < Math.min(WINDOW, count); k++) launch();
  });
  await Promise.all([arrived, sent]);
}

interface Phase {
  msgsPerSec: number;
  nodeUsPerMsg: number;
  serverUsPerMsg: number | undefined;
  delivered: number;
  msgsPerBatch: number | undefined;
  p50Ms: number;
  p99Ms: number;
}

async function phase(rig: Rig, qos: QosLevel): Promise<Phase> {
  const { sender, sink, srv } = rig;
  const c0 = { batched: sender.counters.batched, batches: sender.counters.batches };
  const before = sink.received;
  const cpu0 = process.cpuUsage();
  const srv0 = processCpuUs(srv.pid);
  const t0 = performance.now();
  await sendAll(rig, qos, COUNT);
  const end = qos === 0 ? sink.lastReceipt : performance.now();
  const cpu = process.cpuUsage(cpu0);
  const srv1 = processCpuUs(srv.pid);
  const delivered = sink.received - before;
  const batches = sender.counters.batches - c0.batches;

  // Latency: one message at a time, send → handler, same clock.
  const latencies: number[] = [];
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const start = performance.now();
    const arrived = sink.until(sink.received + 1, qos === 0);
    const sent = sender.send(Tick, TO, { i }, { qos });
    await arrived;
    latencies.push(performance.now() - start);
    await sent;
  }
  latencies.sort((a, b) => a - b);
  return {
    msgsPerSec: Math.round((delivered / (end - t0)) * 1000),
    nodeUsPerMsg: (cpu.user + cpu.system) / delivered,
    serverUsPerMsg: srv0 !== undefined && srv1 !== undefined ? (srv1 - srv0) / delivered : undefined,
    delivered,
    msgsPerBatch: batches > 0 ? (sender.counters.batched - c0.batched) / batches : undefined,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
  };
}

interface RoundRecord extends Phase {
  round: number;
  qos: QosLevel;
  position: number;
  outsideLoadCores: number | undefined;
  flagged: boolean;
}

const rigs = new Map<string, Rig>();
const servers: XmppServer[] = [];
const records = new Map<string, RoundRecord[]>();
try {
  for (const kind of KINDS) {
    const srv = await startServer(kind);
    servers.push(srv);
    rigs.set(kind, await setupRig(srv));
    records.set(kind, []);
  }
  // Warm-up (JIT, SQLite pages, server routes, the batch disco): every level on every server.
  for (const rig of rigs.values()) for (const qos of LEVELS) await sendAll(rig, qos, WARMUP);

  for (let round = 0; round < ROUNDS; round++) {
    const order = williamsOrder(LEVELS.length, round).map((i) => LEVELS[i]!);
    for (const [kind, rig] of rigs) {
      for (const [position, qos] of order.entries()) {
        const machine0 = machineCpuUs();
        const self0 = process.cpuUsage();
        const srv0 = processCpuUs(rig.srv.pid);
        const t0 = performance.now();
        const p = await phase(rig, qos);
        const wallMs = performance.now() - t0;
        const machine1 = machineCpuUs();
        const self = process.cpuUsage(self0);
        const srv1 = processCpuUs(rig.srv.pid);
        const ours = srv0 !== undefined && srv1 !== undefined ? self.user + self.system + srv1 - srv0 : undefined;
        const outside = outsideLoadCores(machine0, machine1, ours, wallMs)?.outside;
        records.get(kind)!.push({
          round,
          qos,
          position,
          ...p,
          outsideLoadCores: outside,
          flagged: outside !== undefined && outside > OUTSIDE_LIMIT,
        });
        process.stdout.write(
          `${kind} round ${round} qos ${qos}: ${p.msgsPerSec} msg/s, node ${p.nodeUsPerMsg.toFixed(1)} µs/msg, ` +
            `server ${p.serverUsPerMsg?.toFixed(1) ?? 'n/a'} µs/msg, ${p.msgsPerBatch?.toFixed(1) ?? '-'} msg/batch, ` +
            `outside ${outside?.toFixed(2) ?? 'n/a'} cores\n`,
        );
      }
    }
  }
} finally {
  for (const rig of rigs.values()) await rig.close();
  for (const srv of servers) await srv.stop();
}

interface Row extends Record<string, string | number> {
  server: string;
  qos: number;
  'msgs/s': number;
  'p50 ms': number;
  'p99 ms': number;
  'node µs/msg': number;
  'server µs/msg': number | string;
  'msg/batch': number | string;
  delivered: number;
  rounds: string;
}

const rows: Row[] = [];
const metrics: Record<string, unknown> = {
  method: {
    rounds: ROUNDS,
    countPerRound: COUNT,
    window: WINDOW,
    messengerTuning: tuning,
    latencySamplesPerRound: LATENCY_SAMPLES,
    order: 'balanced Latin square (Williams, mirrored every other square for 3 levels), a new row every round',
    outsideLoadLimitCores: OUTSIDE_LIMIT,
    summary: 'per-level medians over the unflagged rounds when ≥ 3 remain, else over all rounds',
  },
  count: COUNT,
};
const ratios: Record<string, unknown> = {};
const round3 = (x: number): number => Number(x.toFixed(3));
for (const [kind, recs] of records) {
  const clean = recs.filter((r) => !r.flagged);
  const perLevel = new Set(LEVELS.map((q) => clean.filter((r) => r.qos === q).length));
  const useClean = Math.min(...perLevel) >= MIN_CLEAN_ROUNDS;
  const used = useClean ? clean : recs;
  const server: Record<string, unknown> = {};
  const rate: Record<number, number> = {};
  for (const qos of LEVELS) {
    const rs = used.filter((r) => r.qos === qos);
    const med = (f: (r: RoundRecord) => number | undefined): number | undefined => medianBy(rs, f);
    const row: Row = {
      server: kind,
      qos,
      'msgs/s': Math.round(med((r) => r.msgsPerSec)!),
      'p50 ms': round3(med((r) => r.p50Ms) ?? NaN),
      'p99 ms': round3(med((r) => r.p99Ms) ?? NaN),
      'node µs/msg': Number(med((r) => r.nodeUsPerMsg)!.toFixed(1)),
      'server µs/msg': med((r) => r.serverUsPerMsg)?.toFixed(1) ?? 'n/a',
      'msg/batch': med((r) => r.msgsPerBatch)?.toFixed(1) ?? '-',
      delivered: Math.round(med((r) => r.delivered)!),
      rounds: `${rs.length}${useClean ? ' clean' : ' (all)'}`,
    };
    rows.push(row);
    rate[qos] = row['msgs/s'];
    server[`qos${qos}`] = row;
  }
  server['rounds'] = recs;
  metrics[kind] = server;
  if (LEVELS.includes(0) && LEVELS.includes(1) && LEVELS.includes(2)) {
    ratios[kind] = {
      qos1_vs_qos0: round3(rate[1]! / rate[0]!),
      qos2_vs_qos0: round3(rate[2]! / rate[0]!),
      rule: useClean
        ? `medians of unflagged rounds (outside load ≤ ${OUTSIDE_LIMIT} core)`
        : `medians of all rounds (fewer than ${MIN_CLEAN_ROUNDS} unflagged per level)`,
    };
  }
}
printTable(
  `messaging: ${COUNT} messages per level and round, ${ROUNDS} rounds, medians; durable SQLite stores both sides`,
  rows,
);
process.stdout.write(`\nratios ${JSON.stringify(ratios)} (targets: qos1 ≥ 0.5, qos2 ≥ 0.35)\n`);
if (!only && LEVELS.length === 3 && Object.keys(tuning).length === 0)
  writeResult({ name: 'messaging', server: SERVER_KINDS.join('+'), metrics, ratios });
