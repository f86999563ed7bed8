// `npm run bench -- iot`: a fleet of c2s agents observed by one monitor, through each real server.
//
// Per server (Prosody, ejabberd), from this one process:
// 1. N agent accounts + a monitor account are created at server start (Prosody: account files;
//    ejabberd: in-band registration on one stream), then the agents log in over c2s with bounded
//    concurrency (IOT_BENCH_LOGIN_CONCURRENCY) — the login rate is measured here, SASL included;
// 2. each agent becomes a roster contact of the monitor (mutual presence subscription: the trust
//    the agents check) and the monitor observes every agent (one subscription each);
// 3. observe load: every agent changes a value once a second (phases spread evenly over the
//    second, one shared 10 ms tick drives them all). The value carries the sender's
//    `performance.now()`, so value change → monitor callback latency needs no clock sync;
// 4. the same load as plain QoS-0 `<message/>`s from each agent to the monitor, for comparison.
// Measured per phase over IOT_BENCH_SECONDS after a warm-up: notifications/s, latency p50/p99,
// Node CPU and server CPU (/proc/<pid>/stat) per notification; plus Node memory per agent (RSS
// and heap deltas over the login of all agents). `observe_vs_plain_messages` = observe
// notifications/s ÷ plain messages/s (1.0 = the observe path keeps up with the bare stanzas).
//
// Env: IOT_BENCH_AGENTS (default 1000), IOT_BENCH_SECONDS (measured seconds per phase, default 20),
// IOT_BENCH_LOGIN_CONCURRENCY (default 32), IOT_BENCH_SERVERS (default prosody,ejabberd),
// IOT_BENCH_WARMUP_MS (paced load before each measured phase, default 10 000).
import { readFileSync } from 'node:fs';
import { AccessPolicy, Session, xml, type Element } from '@xmppbus/core';
import { SERVER_KINDS, startServer, type ServerKind, type XmppServer } from '@xmppbus/testing';
import { clientTransport, type ClientTransport } from '@xmppbus/transport-client';
import { percentile, printTable, processCpuUs, writeResult } from './lib/results.js';
import {
  provisionProsodyRosters,
  startBenchAgents,
  startBenchMonitor,
  type BenchAgent,
  type BenchMonitor,
} from './lib/iot-fleet.js';

const N = Number(process.env['IOT_BENCH_AGENTS'] ?? 1000);
const SECONDS = Number(process.env['IOT_BENCH_SECONDS'] ?? 20);
const LOGIN_CONCURRENCY = Number(process.env['IOT_BENCH_LOGIN_CONCURRENCY'] ?? 32);
const WARMUP_MS = Number(process.env['IOT_BENCH_WARMUP_MS'] ?? 10_000);
const NS_BENCH = 'urn:xmppbus:bench:iot:0';
const only = process.env['IOT_BENCH_SERVERS']?.split(',').filter((s) => s !== '');
const kinds = SERVER_KINDS.filter((k) => !only || only.includes(k));

interface PhaseResult {
  notifications: number;
  perSec: number;
  p50Ms: number;
  p99Ms: number;
  nodeCpuUsPerNotification: number;
  serverCpuUsPerNotification: number;
  /** Share of the values sent in the window that arrived (1 = none lost or late). */
  delivered: number;
}

const pad = (i: number): string => String(i).padStart(5, '0');
const gc = (globalThis as { gc?: () => void }).gc;

async function pool<T>(count: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(count);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      out[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return out;
}

export async function connectAccount(
  srv: XmppServer,
  username: string,
): Promise<{ transport: ClientTransport; session: Session }> {
  const transport = await clientTransport({
    service: srv.c2sService(),
    domain: srv.domain,
    username,
    password: 'pw',
    resource: 'bench',
    timeout: 60_000,
  });
  // Agents and the monitor are user accounts of one domain: allow them to reach each other.
  const session = new Session({ transport, access: new AccessPolicy({ rules: [{ from: `*@${srv.domain}` }] }) });
  await session.start({ timeout: 60_000 });
  return { transport, session };
}

/**
 * Drives `send(i)` for every agent once per second, phase-shifted by i/N of a second, from one
 * 10 ms tick; runs for `ms` and counts what was sent.
 */
async function paced(count: number, ms: number, send: (i: number) => void): Promise<number> {
  const start = performance.now();
  let sent = 0;
  let done = 0; // agent-seconds already sent, in phase order
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const elapsed = performance.now() - start;
      const due = Math.min(Math.floor((elapsed / 1000) * count), Math.floor((ms / 1000) * count));
      for (; done < due; done++) {
        send(done % count);
        sent++;
      }
      if (elapsed >= ms) {
        clearInterval(tick);
        resolve();
      }
    }, 10);
  });
  return sent;
}

async function measure(
  srv: XmppServer,
  count: number,
  send: (i: number) => void,
  received: { latencies: number[]; count: number },
): Promise<PhaseResult> {
  await paced(count, WARMUP_MS, send);
  received.latencies.length = 0;
  received.count = 0;
  const cpu0 = process.cpuUsage();
  const srv0 = processCpuUs(srv.pid) ?? 0;
  const t0 = performance.now();
  const sent = await paced(count, SECONDS * 1000, send);
  // Let the last second's notifications arrive (bounded), then read the meters.
  const settle = performance.now() + 5_000;
  while (received.count < sent && performance.now() < settle) await new Promise((r) => setTimeout(r, 20));
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const srvCpu = (processCpuUs(srv.pid) ?? 0) - srv0;
  const n = Math.max(received.count, 1);
  const lat = [...received.latencies].sort((a, b) => a - b);
  return {
    notifications: received.count,
    perSec: received.count / Math.min(wall, SECONDS + 0.001),
    p50Ms: percentile(lat, 50),
    p99Ms: percentile(lat, 99),
    nodeCpuUsPerNotification: (cpu.user + cpu.system) / n,
    serverCpuUsPerNotification: srvCpu / n,
    delivered: received.count / Math.max(sent, 1),
  };
}

async function run(kind: ServerKind): Promise<Record<string, unknown>> {
  const users: [string, string][] = [
    ['monitor', 'pw'],
    ...Array.from({ length: N }, (_, i): [string, string] => [`agent${pad(i)}`, 'pw']),
  ];
  const tStart = performance.now();
  const srv = await startServer(kind, { users, startTimeout: 180_000 });
  process.stdout.write(
    `${kind}: started with ${N + 1} accounts in ${((performance.now() - tStart) / 1000).toFixed(1)} s\n`,
  );
  const closers: (() => Promise<unknown>)[] = [];
  try {
    // Prosody: rosters provisioned server-side (see provisionProsodyRosters); ejabberd: the
    // subscription handshake at run time. IOT_BENCH_ROSTER=handshake forces the handshake.
    const provisioned =
      kind === 'prosody' &&
      process.env['IOT_BENCH_ROSTER'] !== 'handshake' &&
      provisionProsodyRosters(
        srv.dir,
        srv.domain,
        'monitor',
        users.slice(1).map(([u]) => u),
      );
    const monitor: BenchMonitor = await startBenchMonitor(await connectAccount(srv, 'monitor'));
    closers.push(() => monitor.close());

    gc?.();
    const mem0 = process.memoryUsage();
    const tLogin = performance.now();
    let failures = 0;
    const failureReasons = new Map<string, number>();
    const accounts = await pool(N, LOGIN_CONCURRENCY, async (i) => {
      try {
        return await connectAccount(srv, `agent${pad(i)}`);
      } catch (err) {
        failures++;
        const reason = (err as Error).message.slice(0, 120);
        failureReasons.set(reason, (failureReasons.get(reason) ?? 0) + 1);
        return undefined;
      }
    });
    const loginSec = (performance.now() - tLogin) / 1000;
    const connected = accounts.filter((a): a is NonNullable<typeof a> => a !== undefined);
    closers.push(() => Promise.all(connected.map((a) => a.session.close())));
    process.stdout.write(
      `${kind}: ${connected.length}/${N} agents logged in in ${loginSec.toFixed(1)} s (${failures} failed)\n`,
    );
    for (const [r, c] of failureReasons) process.stdout.write(`  ${c}× ${r}\n`);

    // The agents proper (things, observe, roster trust), and the monitor's subscriptions.
    const tTrust = performance.now();
    const agents: BenchAgent[] = await startBenchAgents(connected, monitor, { concurrency: LOGIN_CONCURRENCY });
    closers.unshift(() => Promise.all(agents.map((a) => a.close())));
    const trustSec = (performance.now() - tTrust) / 1000;
    gc?.();
    const mem1 = process.memoryUsage();
    process.stdout.write(`${kind}: ${agents.length} agents trusted and observed in ${trustSec.toFixed(1)} s\n`);

    // Observe: value change → monitor callback.
    const obs = { latencies: [] as number[], count: 0 };
    monitor.onStamp((stamp: number) => {
      obs.count++;
      obs.latencies.push(performance.now() - stamp);
    });
    const observe = await measure(srv, agents.length, (i) => agents[i]!.change(performance.now()), obs);
    monitor.onStamp(() => {});

    // Plain QoS-0 messages, same rate, same accounts.
    const plain = { latencies: [] as number[], count: 0 };
    const monitorJid = monitor.jid;
    const off = monitor.session.onMessage((m: Element) => {
      const s = m.getChild('stamp', NS_BENCH);
      if (!s) return;
      plain.count++;
      plain.latencies.push(performance.now() - Number(s.text()));
    });
    const plainResult = await measure(
      srv,
      agents.length,
      (i) => {
        const msg = xml('message', { to: monitorJid }, xml('stamp', { xmlns: NS_BENCH }, performance.now().toFixed(3)));
        void connected[i]!.session.send(msg).catch(() => {});
      },
      plain,
    );
    off();

    const result = {
      agents_requested: N,
      agents_connected: connected.length,
      agents_observed: agents.length,
      login: {
        seconds: loginSec,
        perSec: connected.length / loginSec,
        concurrency: LOGIN_CONCURRENCY,
        failures,
        trustAndObserveSeconds: trustSec,
        rosters: provisioned ? 'provisioned server-side before login' : 'presence subscription handshake at run time',
      },
      memoryPerAgent: {
        rssBytes: (mem1.rss - mem0.rss) / Math.max(agents.length, 1),
        heapBytes: (mem1.heapUsed - mem0.heapUsed) / Math.max(agents.length, 1),
        gcForced: gc !== undefined,
      },
      observe,
      plain: plainResult,
      observe_vs_plain_messages: observe.perSec / plainResult.perSec,
    };
    printTable(`iot ${kind}: ${agents.length} agents, one change per agent per second`, [
      {
        phase: 'observe',
        'notif/s': observe.perSec,
        'p50 ms': observe.p50Ms,
        'p99 ms': observe.p99Ms,
        'node µs/n': observe.nodeCpuUsPerNotification,
        'server µs/n': observe.serverCpuUsPerNotification,
        delivered: observe.delivered,
      },
      {
        phase: 'plain qos0',
        'notif/s': plainResult.perSec,
        'p50 ms': plainResult.p50Ms,
        'p99 ms': plainResult.p99Ms,
        'node µs/n': plainResult.nodeCpuUsPerNotification,
        'server µs/n': plainResult.serverCpuUsPerNotification,
        delivered: plainResult.delivered,
      },
    ]);
    return result;
  } finally {
    for (const c of closers) await c().catch(() => {});
    await srv.stop();
  }
}

const metrics: Record<string, unknown> = {
  method: {
    agentsPerServer: N,
    secondsPerPhase: SECONDS,
    warmupMs: WARMUP_MS,
    loginConcurrency: LOGIN_CONCURRENCY,
    changeRatePerAgent: '1/s, phases spread evenly over the second',
    latency: "value carries the sender's performance.now(); measured at the monitor's callback (same process)",
  },
};
const ratios: Record<string, unknown> = {};
// A run on a subset of the servers (IOT_BENCH_SERVERS) keeps the other servers' last results.
try {
  const previous = JSON.parse(readFileSync(new URL('./results/iot.json', import.meta.url), 'utf8')) as {
    metrics?: Record<string, unknown>;
    ratios?: Record<string, unknown>;
  };
  for (const k of SERVER_KINDS) {
    if (kinds.includes(k)) continue;
    if (previous.metrics?.[k]) metrics[k] = previous.metrics[k];
    if (previous.ratios?.[k]) ratios[k] = previous.ratios[k];
  }
} catch {
  // no previous results
}
for (const kind of kinds) {
  const r = await run(kind);
  metrics[kind] = r;
  ratios[kind] = { observe_vs_plain_messages: r['observe_vs_plain_messages'] };
}
const servers = SERVER_KINDS.filter((k) => metrics[k] !== undefined);
const file = writeResult({ name: 'iot', server: servers.join('+'), metrics, ratios });
process.stdout.write(`\nwrote ${file}\n`);
