// `npm run bench -- soak` (issue 9): for SOAK_SECONDS (default 60) per server (Prosody, then
// ejabberd), one c2s account floods a service with maximal hostile stanzas while a second account
// makes RPC calls and sends QoS 1 and QoS 2 messages at a steady modest rate.
//
// - The service (benchmarks/lib/soak-service.ts) is its own process, so its RSS is measured alone
//   (/proc/<pid>/status VmRSS every 100 ms): RpcServer + Messenger (SQLite store) on one component
//   session, DEFAULT budgets, both accounts allowed by an access rule (the hostile one only for
//   the soak namespace, so its `secret` messages are answered `forbidden`).
// - The hostile account writes a raw c2s stream (benchmarks/lib/soak-parts.ts, HOSTILE_ROUND):
//   RPC calls of 240 KiB of empty child elements (the pathological shape: ~9 MiB of tree each),
//   RPC calls of 240 KiB of text, QoS 1 envelopes and QoS 2 `assured` (never `deliver`ed) of
//   240 KiB of empty elements, and QoS 1 messages of a contract it may not use. It writes as fast
//   as the server reads (TCP backpressure), with at most SOAK_HOSTILE_WINDOW (default: no limit)
//   stanzas unanswered.
// - Rate shaping: none. The harness loads no Prosody `mod_limits` and gives ejabberd's c2s
//   listener `shaper: none` with no `c2s_shaper` rule, so the flood is limited only by what the
//   server and the service process; the achieved hostile byte rate is reported.
// - The legitimate account sends one RPC call, one QoS 1 and one QoS 2 message every
//   SOAK_PERIOD_MS (default 50 ms: 20 of each per second).
// Targets: max_rss_mb ≤ 256, legit_success_ratio ≥ 0.99, lost = 0.
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SERVER_KINDS, startServer, type XmppServer } from '@xmppbus/testing';
import { percentile, printTable, processCpuUs, writeResult } from './lib/results.js';
import { HostileFlood, LegitSender, lostOf, SERVICE, SOAK_USERS, type ServiceStats } from './lib/soak-parts.js';

const SECONDS = Number(process.env['SOAK_SECONDS'] ?? 60);
const PERIOD_MS = Number(process.env['SOAK_PERIOD_MS'] ?? 50);
const WINDOW = Number(process.env['SOAK_HOSTILE_WINDOW'] ?? Infinity);
const RSS_TARGET_MB = 256;
/** Extra Node flags of the service process (e.g. `--max-old-space-size=128`); default none. */
const SERVICE_FLAGS = (process.env['SOAK_SERVICE_FLAGS'] ?? '').split(' ').filter((f) => f !== '');

function rssMb(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

interface Legit {
  type: 'legit';
  i: number;
  q: number;
  t: number;
  at: number;
}
type FromService = Legit | { type: 'ready'; pid: number } | { type: 'stats' | 'stopped'; stats: ServiceStats };

const round1 = (n: number): number => Math.round(n * 10) / 10;
const progress = (what: string): void => void process.stderr.write(`soak: ${what}\n`);

async function soak(srv: XmppServer): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'xmppbus-bench-soak-'));
  const config = { componentService: srv.componentService(), secret: srv.componentSecret, dir };
  // process.execArgv carries tsx's loader and --conditions=source.
  const child = fork(new URL('./lib/soak-service.ts', import.meta.url), [JSON.stringify(config)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: [...process.execArgv, ...SERVICE_FLAGS],
  });
  const seen = new Set<string>();
  const msgLatencies: number[] = [];
  const waiters: ((m: FromService) => boolean)[] = [];
  child.on('message', (m: FromService) => {
    if (m.type === 'legit') {
      const key = `${m.q}:${m.i}`;
      if (!seen.has(key)) msgLatencies.push(m.at - m.t);
      seen.add(key);
    }
    for (let k = waiters.length - 1; k >= 0; k--) if (waiters[k]!(m)) waiters.splice(k, 1);
  });
  const next = <T extends FromService['type']>(type: T): Promise<Extract<FromService, { type: T }>> =>
    new Promise((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`soak service exited (${String(code)}) before '${type}'`)));
      waiters.push((m) => {
        if (m.type !== type) return false;
        resolve(m as Extract<FromService, { type: T }>);
        return true;
      });
    });
  const { pid } = await next('ready');
  progress(`${srv.kind}: service ready (pid ${pid})`);
  const rssStart = rssMb(pid) ?? 0;
  let rssMax = rssStart;
  // The largest sample of each 5 s, to tell a plateau from growth.
  const rssSeries: number[] = [];
  const sampledAt = performance.now();
  const rssTimer = setInterval(() => {
    const r = rssMb(pid);
    if (r === undefined) return;
    rssMax = Math.max(rssMax, r);
    const slot = Math.floor((performance.now() - sampledAt) / 5000);
    rssSeries[slot] = round1(Math.max(rssSeries[slot] ?? 0, r));
  }, 100);

  const legit = await LegitSender.start({ c2sService: srv.c2sService(), domain: srv.domain, to: SERVICE });
  const [hu, hp] = SOAK_USERS[1]!;
  const hostile = await HostileFlood.login({
    host: srv.host,
    port: srv.c2sPort,
    domain: srv.domain,
    username: hu,
    password: hp,
    to: SERVICE,
  });

  progress(`${srv.kind}: flooding for ${SECONDS} s`);
  const srvCpu0 = processCpuUs(srv.pid) ?? 0;
  const svcCpu0 = processCpuUs(pid) ?? 0;
  const t0 = performance.now();
  const stop = new AbortController();
  const flooding = hostile.run(WINDOW);
  const legitRun = legit.run(PERIOD_MS, stop.signal);
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  stop.abort();
  hostile.stop();
  const wall = (performance.now() - t0) / 1000;
  const srvCpu = ((processCpuUs(srv.pid) ?? 0) - srvCpu0) / 1e6 / wall;
  const svcCpu = ((processCpuUs(pid) ?? 0) - svcCpu0) / 1e6 / wall;
  await legitRun;
  await flooding;
  const hostileBytes = hostile.counts.sentBytes;

  // The legitimate outbox drains (every QoS 1/2 message acknowledged or dead-lettered), then a
  // stats round trip: IPC is ordered, so every `legit` report of a handled message is in.
  progress(`${srv.kind}: draining the legitimate outbox`);
  await legit.drain();
  child.send({ type: 'stats' });
  await next('stats');
  await hostile.close();
  child.send({ type: 'stop' });
  const { stats } = await next('stopped');
  clearInterval(rssTimer);
  await new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));
  await legit.close();
  rmSync(dir, { recursive: true, force: true });

  const r = legit.result;
  const lost = lostOf(r.sent, seen);
  const messages = r.sent.q1 + r.sent.q2;
  const delivered = messages - lost - r.deadLettered;
  const lat = [...r.callLatencies].sort((a, b) => a - b);
  msgLatencies.sort((a, b) => a - b);
  return {
    max_rss_mb: round1(rssMax),
    rss_start_mb: round1(rssStart),
    rss_mb_per_5s: rssSeries,
    legit_success_ratio: Number(((r.callsOk + Math.max(0, delivered)) / (r.calls + messages)).toFixed(4)),
    legit_p99_ms: round1(percentile(lat, 99)),
    legit_p50_ms: round1(percentile(lat, 50)),
    legit_msg_p99_ms: round1(percentile(msgLatencies, 99)),
    legit_calls: r.calls,
    legit_calls_ok: r.callsOk,
    legit_call_errors: r.callErrors,
    legit_messages: messages,
    legit_dead_lettered: r.deadLettered,
    lost,
    hostile_refused: hostile.counts.refused,
    hostile_sent: hostile.counts.sent,
    hostile_answered: hostile.counts.answered,
    hostile_results: hostile.counts.results,
    hostile_errors: hostile.counts.errors,
    hostile_by_kind: hostile.counts.byKind,
    hostile_mb_per_s: round1(hostileBytes / 2 ** 20 / wall),
    hostile_closed: hostile.closedReason ?? null,
    server_cpu_cores: Number(srvCpu.toFixed(2)),
    service_cpu_cores: Number(svcCpu.toFixed(2)),
    service: stats,
    seconds: round1(wall),
  };
}

// SOAK_SERVERS=ejabberd (comma list) runs a subset and writes no result file (investigation).
const only = process.env['SOAK_SERVERS']?.split(',').filter((s) => s !== '');
const kinds = only ? SERVER_KINDS.filter((k) => only.includes(k)) : SERVER_KINDS;
const metrics: Record<string, unknown> = {};
const ratios: Record<string, unknown> = {};
const rows: Record<string, string | number>[] = [];
for (const kind of kinds) {
  const srv = await startServer(kind, { users: SOAK_USERS });
  let m: Record<string, unknown>;
  try {
    m = await soak(srv);
  } finally {
    await srv.stop();
  }
  metrics[kind] = m;
  const ok =
    (m['max_rss_mb'] as number) <= RSS_TARGET_MB && (m['legit_success_ratio'] as number) >= 0.99 && m['lost'] === 0;
  ratios[kind] = { legit_success_ratio: m['legit_success_ratio'], targets_met: ok };
  rows.push({
    server: kind,
    s: m['seconds'] as number,
    'max rss MB': m['max_rss_mb'] as number,
    'legit ok': m['legit_success_ratio'] as number,
    'legit p99 ms': m['legit_p99_ms'] as number,
    'msg p99 ms': m['legit_msg_p99_ms'] as number,
    lost: m['lost'] as number,
    'hostile sent': m['hostile_sent'] as number,
    'hostile refused': m['hostile_refused'] as number,
    'hostile MB/s': m['hostile_mb_per_s'] as number,
    'server cpu': m['server_cpu_cores'] as number,
    'service cpu': m['service_cpu_cores'] as number,
  });
}
metrics['config'] = {
  seconds: SECONDS,
  legit_period_ms: PERIOD_MS,
  hostile_window: Number.isFinite(WINDOW) ? WINDOW : 'unlimited (TCP backpressure only)',
  rate_shaping: 'none: Prosody mod_limits not loaded; ejabberd c2s listener shaper: none, no c2s_shaper rule',
  budgets: 'defaults (RpcServer.limits, Messenger receive.*)',
  service_node_flags: SERVICE_FLAGS.join(' ') || 'none',
};
printTable(
  `soak: ${SECONDS} s per server, hostile c2s flood vs legitimate c2s sender, service in its own process`,
  rows,
);
process.stdout.write(
  `\nc2s rate shaping: none (Prosody: mod_limits not loaded; ejabberd: c2s shaper none) — the flood is limited only by the server and service.\n` +
    `targets: max rss ≤ ${RSS_TARGET_MB} MB, legit ok ≥ 0.99, lost = 0\n`,
);
for (const kind of kinds) {
  const m = metrics[kind] as Record<string, unknown>;
  process.stdout.write(
    `${kind}: rss per 5 s ${JSON.stringify(m['rss_mb_per_5s'])}, hostile errors ${JSON.stringify(m['hostile_errors'])}, legit call errors ${JSON.stringify(m['legit_call_errors'])}, service peaks ${JSON.stringify((m['service'] as ServiceStats | undefined) ?? {})}\n`,
  );
}
if (!only && SECONDS >= 60) writeResult({ name: 'soak', server: SERVER_KINDS.join('+'), metrics, ratios });
