// Messaging benchmark: QoS 0 / 1 / 2 throughput and p50 end-to-end latency through each real
// server (Prosody, ejabberd), durable SQLite stores on both sides, one Node process holding the
// sender (svc-a) and the receiver (svc-b). Writes benchmarks/results/messaging.json with
// `ratios` per server: qos1_vs_qos0, qos2_vs_qos0 (targets ≥ 0.5 and ≥ 0.35).
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

const COUNT = Number(process.env['MESSAGING_BENCH_COUNT'] ?? 10_000);
const LATENCY_SAMPLES = 1_000;
const QOS0_BATCH = 500;
// MESSAGING_BENCH_LEVELS=1,2 measures a subset of levels (profiling; ratios need level 0).
const LEVELS = (process.env['MESSAGING_BENCH_LEVELS'] ?? '0,1,2').split(',').map(Number) as QosLevel[];

interface Row extends Record<string, string | number> {
  server: string;
  qos: number;
  'msgs/s': number;
  'p50 ms': number;
  'p99 ms': number;
  'node µs/msg': number;
  'server µs/msg': number;
  delivered: number;
}

async function waitUntil(fn: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > end) throw new Error('benchmark stalled');
    await new Promise((r) => setImmediate(r));
  }
}

async function runServer(srv: XmppServer): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), 'xmppbus-bench-msg-'));
  const connect = (domain: string) =>
    componentTransport({ service: srv.componentService(), domain, password: srv.componentSecret });
  const [ta, tb] = await Promise.all([connect('svc-a.localhost'), connect('svc-b.localhost')]);
  const sender = new Messenger({
    session: new Session({ transport: ta }),
    store: sqliteMessageStore(join(dir, 'a.db')),
  });
  const receiver = new Messenger({
    session: new Session({ transport: tb }),
    store: sqliteMessageStore(join(dir, 'b.db')),
  });
  let received = 0;
  let latencyStart = 0;
  const latencies: number[] = [];
  let lastReceipt = 0;
  receiver.handle(Tick, () => {
    received++;
    lastReceipt = performance.now();
    if (latencyStart > 0) latencies.push(performance.now() - latencyStart);
  });
  await Promise.all([sender.start(), receiver.start()]);
  const to = 'svc-b.localhost';
  const rows: Row[] = [];
  try {
    // Warm-up (JIT, SQLite pages, server routes).
    for (const qos of [0, 1, 2] as const) {
      await Promise.all(Array.from({ length: 200 }, (_, i) => sender.send(Tick, to, { i }, { qos })));
    }
    await sender.flush();
    await waitUntil(() => received >= 600, 30_000);

    for (const qos of LEVELS) {
      // Throughput: COUNT messages pipelined (QoS 0 in write batches; QoS 1/2 through the outbox window).
      received = 0;
      const cpu0 = process.cpuUsage();
      const srv0 = processCpuUs(srv.pid) ?? 0;
      const t0 = performance.now();
      if (qos === 0) {
        for (let i = 0; i < COUNT; i += QOS0_BATCH) {
          const batch: Promise<void>[] = [];
          for (let j = i; j < Math.min(COUNT, i + QOS0_BATCH); j++)
            batch.push(sender.send(Tick, to, { i: j }, { qos }));
          await Promise.all(batch);
        }
        // QoS 0 may lose: wait for all or for the stream to go quiet.
        let last = -1;
        let quietSince = performance.now();
        await waitUntil(() => {
          if (received !== last) {
            last = received;
            quietSince = performance.now();
          }
          return received >= COUNT || performance.now() - quietSince > 2000;
        }, 120_000);
      } else {
        const all: Promise<void>[] = [];
        for (let i = 0; i < COUNT; i++) all.push(sender.send(Tick, to, { i }, { qos }));
        await Promise.all(all);
        await sender.flush();
        await waitUntil(() => received >= COUNT, 120_000);
      }
      // QoS 0 may lose messages: the run ends at the last receipt, not after the quiet period
      // that proves nothing more will come (its CPU is idle and would only dilute the rate).
      const wall = (qos === 0 ? lastReceipt : performance.now()) - t0;
      const cpu = process.cpuUsage(cpu0);
      const srvCpu = (processCpuUs(srv.pid) ?? 0) - srv0;
      const delivered = received;

      // Latency: sequential messages, send → handler, same clock.
      latencies.length = 0;
      for (let i = 0; i < LATENCY_SAMPLES; i++) {
        const before = received;
        latencyStart = performance.now();
        await sender.send(Tick, to, { i }, { qos });
        await waitUntil(() => received > before, 10_000);
        await sender.flush();
      }
      latencyStart = 0;
      latencies.sort((a, b) => a - b);
      rows.push({
        server: srv.kind,
        qos,
        'msgs/s': Math.round((delivered / wall) * 1000),
        'p50 ms': percentile(latencies, 50),
        'p99 ms': percentile(latencies, 99),
        'node µs/msg': Math.round((cpu.user + cpu.system) / delivered),
        'server µs/msg': Math.round(srvCpu / delivered),
        delivered,
      });
    }
  } finally {
    await sender.close();
    await receiver.close();
    await ta.close();
    await tb.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

// MESSAGING_BENCH_SERVERS=ejabberd (comma list) runs a subset and writes no result file (profiling).
const only = process.env['MESSAGING_BENCH_SERVERS']?.split(',').filter((s) => s !== '');
const kinds = only ? SERVER_KINDS.filter((k) => only.includes(k)) : SERVER_KINDS;
const rows: Row[] = [];
for (const kind of kinds) {
  const srv = await startServer(kind);
  try {
    rows.push(...(await runServer(srv)));
  } finally {
    await srv.stop();
  }
}
printTable(`messaging: ${COUNT} messages per level, durable SQLite stores both sides`, rows);

const metrics: Record<string, unknown> = {};
const ratios: Record<string, unknown> = {};
for (const kind of kinds) {
  const of = (q: number): Row => rows.find((r) => r.server === kind && r.qos === q)!;
  metrics[kind] = Object.fromEntries(LEVELS.map((q) => [`qos${q}`, of(q)]));
  if (LEVELS.length < 3) continue;
  ratios[kind] = {
    qos1_vs_qos0: Number((of(1)['msgs/s'] / of(0)['msgs/s']).toFixed(3)),
    qos2_vs_qos0: Number((of(2)['msgs/s'] / of(0)['msgs/s']).toFixed(3)),
  };
}
metrics['count'] = COUNT;
process.stdout.write(`\nratios ${JSON.stringify(ratios)} (targets: qos1 ≥ 0.5, qos2 ≥ 0.35)\n`);
if (!only && LEVELS.length === 3) writeResult({ name: 'messaging', server: SERVER_KINDS.join('+'), metrics, ratios });
