// `npm run bench -- rpc`: RPC round trips through real Prosody and ejabberd, side by side.
//   (a) raw      — hand-written XEP-0114 over node:net, minimal string stanza handling (baseline)
//   (b) xmpp.js  — bare @xmpp/component iqCaller/iqCallee
//   (c) xmppbus  — RpcClient/RpcServer over @xmppbus/transport-component, validated payload, as users
//       get it by default: calls issued together go as negotiated batch IQs (docs/protocol.md §3.5)
//   (c'') xmppbus (batch off) — the same with batching off: one IQ per call like (a) and (b), so
//       p50_vs_raw / throughput_vs_raw compare the same wire work
//   (c') the same as (c'') with a per-call timeout, i.e. the xmppbus-deadline SHIM header on every call
// Sequential round trips (p50/p99) and pipelined throughput (100 in flight) per server, with the
// Node CPU per call (both ends live in this process) and the server's CPU per call.
//
// Method. On this shared 2-core VM a single measurement swings by +50–100 % with whatever else runs,
// so one long run per implementation (or a fixed order) turns neighbour noise into a fake gap. All
// implementations stay connected to the same server and are measured in many short rounds:
// - after a one-off warm-up (300 sequential calls + 1 s pipelined each), every round runs for each
//   implementation a sequential phase (SEQ calls after 50 unmeasured ones) and then a pipelined
//   phase (PIPE_MS after an unmeasured 150 ms ramp-up that is drained first);
// - the order changes every round following a balanced Latin square (Williams design,
//   benchmarks/lib/rounds.ts): over every 10 rounds (5 implementations; odd, so every other square
//   is mirrored) each implementation takes each position twice and follows each other one twice,
//   so none always goes first or always runs after the same neighbour;
// - each round records the outside CPU load: /proc/stat busy time (user+nice+system+irq+softirq+steal)
//   minus this process's and the server's CPU, per second of wall time. Rounds above
//   OUTSIDE_LIMIT (0.15 core) are flagged;
// - reported numbers are per-implementation medians over rounds (throughput: median of per-round
//   rates; p50/p99: median of per-round percentiles; CPU/call likewise), taken over the unflagged
//   rounds when at least 3 remain, else over all rounds; ratios are computed from those medians and
//   `ratios.<server>.rule` says which rule applied. Every round's numbers are kept in the JSON
//   (metrics.<server>.rounds).
// Env: RPC_BENCH_ROUNDS (rounds per server, default 10), RPC_BENCH_PIPE_MS (measured pipelined time per
// impl and round, default 1200), RPC_BENCH_SEQ (measured sequential calls per impl and round, default 1000).
// Defaults take ≈ 2.5 minutes for both servers.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { connect, type Socket } from 'node:net';
import type { Element } from '@xmppbus/core';
import { startServer, type ServerKind, type XmppServer } from '@xmppbus/testing';
import { CreateOrder, NS_ORDERS } from '../test/rpc-fixtures.js';
import { rpcPair } from './lib/component-link.js';
import { percentile, printTable, processCpuUs, writeResult } from './lib/results.js';
import { keepInFlight, machineCpuUs, median, outsideLoadCores, roundsToUse, williamsOrder } from './lib/rounds.js';

const ROUNDS = Number(process.env['RPC_BENCH_ROUNDS'] ?? 10);
const PIPE_MS = Number(process.env['RPC_BENCH_PIPE_MS'] ?? 1200);
const SEQ = Number(process.env['RPC_BENCH_SEQ'] ?? 1000);
const WARMUP = 300;
const ROUND_WARMUP_SEQ = 50;
const ROUND_WARMUP_MS = 150;
const IN_FLIGHT = 100;
/** Outside CPU load (cores) above which a round is flagged and, if enough others remain, left out. */
const OUTSIDE_LIMIT = 0.15;
const MIN_CLEAN_ROUNDS = 3;

interface Bench {
  call(): Promise<unknown>;
  close(): Promise<void>;
}

interface Impl {
  name: 'raw' | 'xmppjs' | 'xmppbus' | 'xmppbus (batch off)' | 'xmppbus+deadline';
  /** Caller and callee component names (distinct per impl, so all three stay connected). */
  setup(srv: XmppServer, caller: string, callee: string): Promise<Bench>;
}

// ---------------------------------------------------------------------------------------------
// (a) raw socket: the least work a correct-enough component can do.
class RawLink {
  #buf = '';
  onStanza: (s: string) => void = () => {};
  private constructor(readonly sock: Socket) {}

  static async open(srv: XmppServer, name: string): Promise<RawLink> {
    const sock = connect({ host: '127.0.0.1', port: srv.componentPort, noDelay: true });
    sock.setEncoding('utf8');
    await new Promise<void>((res, rej) => sock.once('connect', res).once('error', rej));
    const link = new RawLink(sock);
    let head = '';
    await new Promise<void>((res, rej) => {
      let sent = false;
      const onData = (d: string): void => {
        head += d;
        if (!sent) {
          const m = /\sid=['"]([^'"]+)['"]/.exec(head);
          if (!m) return;
          sent = true;
          sock.write(
            `<handshake>${createHash('sha1')
              .update(m[1]! + srv.componentSecret)
              .digest('hex')}</handshake>`,
          );
        } else if (head.includes('<handshake')) {
          sock.off('data', onData);
          res();
        } else if (head.includes('stream:error')) rej(new Error(head));
      };
      sock.on('data', onData);
      sock.write(
        `<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='${name}'>`,
      );
    });
    sock.on('data', (d: string) => link.#data(d));
    return link;
  }

  #data(d: string): void {
    let buf = this.#buf + d;
    let end: number;
    while ((end = buf.indexOf('</iq>')) >= 0) {
      this.onStanza(buf.slice(0, end + 5));
      buf = buf.slice(end + 5);
    }
    this.#buf = buf;
  }

  close(): Promise<void> {
    return new Promise((res) => this.sock.end('</stream:stream>', () => (this.sock.destroy(), res())));
  }
}

const attr = (s: string, name: string): string => {
  const m = new RegExp(`\\s${name}=['"]([^'"]*)['"]`).exec(s);
  return m ? m[1]! : '';
};

const raw: Impl = {
  name: 'raw',
  async setup(srv, CALLER, CALLEE) {
    const callee = await RawLink.open(srv, CALLEE);
    callee.onStanza = (s) => {
      callee.sock.write(
        `<iq type='result' id='${attr(s, 'id')}' to='${attr(s, 'from')}' from='${CALLEE}'>` +
          `<create xmlns='${NS_ORDERS}'><orderId>A1-2</orderId><total>19</total></create></iq>`,
      );
    };
    const caller = await RawLink.open(srv, CALLER);
    const pending = new Map<string, () => void>();
    caller.onStanza = (s) => {
      const id = attr(s, 'id');
      const done = pending.get(id);
      if (done) {
        pending.delete(id);
        done();
      }
    };
    let n = 0;
    return {
      call: () =>
        new Promise<void>((resolve) => {
          const id = `r${n++}`;
          pending.set(id, resolve);
          caller.sock.write(
            `<iq type='set' id='${id}' to='${CALLEE}' from='${CALLER}'>` +
              `<create xmlns='${NS_ORDERS}'><sku>A1</sku><qty>2</qty></create></iq>`,
          );
        }),
      close: async () => {
        await caller.close();
        await callee.close();
      },
    };
  },
};

// ---------------------------------------------------------------------------------------------
// (b) bare @xmpp/component.
interface XmppComponent {
  start(): Promise<unknown>;
  stop(): Promise<unknown>;
  on(event: 'error', fn: (e: Error) => void): void;
  socket?: { setNoDelay?(v: boolean): void };
  reconnect: { stop(): void };
  iqCaller: { request(el: Element, timeout?: number): Promise<Element> };
  iqCallee: { set(ns: string, name: string, fn: (ctx: { element: Element }) => Element): void };
}
const xmppjs = createRequire(import.meta.url)('@xmpp/component') as {
  component(o: { service: string; domain: string; password: string }): XmppComponent;
  xml: (name: string, attrs?: Record<string, string> | null, ...children: (Element | string)[]) => Element;
};

const bare: Impl = {
  name: 'xmppjs',
  async setup(srv, CALLER, CALLEE) {
    const { xml } = xmppjs;
    const mk = async (domain: string): Promise<XmppComponent> => {
      const c = xmppjs.component({ service: srv.componentService(), domain, password: srv.componentSecret });
      c.on('error', () => {});
      await c.start();
      c.socket?.setNoDelay?.(true); // fair: every client here runs without Nagle
      return c;
    };
    const callee = await mk(CALLEE);
    callee.iqCallee.set(NS_ORDERS, 'create', ({ element }) => {
      const sku = element.getChildText('sku') ?? '';
      const qty = Number(element.getChildText('qty'));
      return xml(
        'create',
        { xmlns: NS_ORDERS },
        xml('orderId', {}, `${sku}-${qty}`),
        xml('total', {}, String(qty * 9.5)),
      );
    });
    const caller = await mk(CALLER);
    return {
      call: () =>
        caller.iqCaller.request(
          xml(
            'iq',
            { type: 'set', to: CALLEE, from: CALLER },
            xml('create', { xmlns: NS_ORDERS }, xml('sku', {}, 'A1'), xml('qty', {}, '2')),
          ),
          30_000,
        ),
      close: async () => {
        for (const c of [caller, callee]) {
          c.reconnect.stop();
          await c.stop();
        }
      },
    };
  },
};

// ---------------------------------------------------------------------------------------------
// (c) xmppbus RPC: validated on both sides, typed result; (c'') one IQ per call; (c') plus the deadline header.
function busImpl(withDeadline: boolean, batch: boolean): Impl {
  return {
    name: withDeadline ? 'xmppbus+deadline' : batch ? 'xmppbus' : 'xmppbus (batch off)',
    async setup(srv, CALLER, CALLEE) {
      const { client, close } = await rpcPair(
        srv,
        { caller: CALLER, callee: CALLEE },
        {
          client: { batch: { enabled: batch } },
          serve: (server) =>
            server.handle(CreateOrder, ({ sku, qty }) => ({ orderId: `${sku}-${qty}`, total: qty * 9.5 })),
        },
      );
      const req = { sku: 'A1', qty: 2 };
      const callOpts = { timeout: 30_000 };
      return {
        // A per-call timeout sends the xmppbus-deadline SHIM header (see RpcClientOptions.propagateDeadline).
        call: withDeadline
          ? () => client.call(CreateOrder, CALLEE, req, callOpts)
          : () => client.call(CreateOrder, CALLEE, req),
        close: async () => {
          const { batches, batchedCalls } = client.batchStats;
          if (batches > 0)
            process.stderr.write(
              `${srv.kind} xmppbus: ${batches} batch IQs, ${(batchedCalls / batches).toFixed(1)} calls each\n`,
            );
          await close();
        },
      };
    },
  };
}
const bus = busImpl(false, true);
const busSingle = busImpl(false, false);
const busDeadline = busImpl(true, false);

// ---------------------------------------------------------------------------------------------

interface Row {
  p50Ms: number;
  p99Ms: number;
  seqCallsPerSec: number;
  throughput: number;
  nodeCpuUsPerCall: number;
  serverCpuUsPerCall: number | undefined;
}

type ImplName = Impl['name'];

interface Round {
  round: number;
  order: ImplName[];
  wallMs: number;
  /** CPU used outside this process and the server, in cores (averaged over the round). */
  outsideLoadCores: number | undefined;
  /** Hypervisor steal time in cores (part of the outside load). */
  stealCores: number | undefined;
  flagged: boolean;
  impls: Partial<Record<ImplName, Row>>;
}

async function warmup(b: Bench): Promise<void> {
  for (let i = 0; i < WARMUP; i++) await b.call();
  await runFor(b, 1000); // JIT and server caches hot at full concurrency
}

async function sequential(b: Bench): Promise<{ p50Ms: number; p99Ms: number; seqCallsPerSec: number }> {
  for (let i = 0; i < ROUND_WARMUP_SEQ; i++) await b.call();
  const lat: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < SEQ; i++) {
    const s = performance.now();
    await b.call();
    lat.push(performance.now() - s);
  }
  const wall = performance.now() - t0;
  lat.sort((x, y) => x - y);
  return { p50Ms: percentile(lat, 50), p99Ms: percentile(lat, 99), seqCallsPerSec: (SEQ / wall) * 1000 };
}

async function pipelined(
  b: Bench,
  pid: number,
): Promise<{ throughput: number; nodeCpuUsPerCall: number; serverCpuUsPerCall: number | undefined }> {
  await runFor(b, ROUND_WARMUP_MS); // ramp up to full concurrency; drained before measuring
  const s0 = processCpuUs(pid);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const n = await runFor(b, PIPE_MS);
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const s1 = processCpuUs(pid);
  return {
    throughput: (n / wall) * 1000,
    nodeCpuUsPerCall: (c.user + c.system) / n,
    serverCpuUsPerCall: s0 !== undefined && s1 !== undefined ? (s1 - s0) / n : undefined,
  };
}

function runFor(b: Bench, ms: number): Promise<number> {
  return keepInFlight(() => b.call(), IN_FLIGHT, ms);
}

const metrics: Record<string, unknown> = {
  method: {
    rounds: ROUNDS,
    seqCallsPerRound: SEQ,
    pipelinedMsPerRound: PIPE_MS,
    inFlight: IN_FLIGHT,
    order: 'Williams-order rotation over the 5 impls, new row every round',
    outsideLoadLimitCores: OUTSIDE_LIMIT,
    aggregate: `per-impl median over unflagged rounds if ≥ ${MIN_CLEAN_ROUNDS} remain, else over all rounds`,
  },
};
const ratios: Record<string, Record<string, number | string>> = {};
const rows: Record<string, string | number>[] = [];
const roundRows: Record<string, string | number>[] = [];
const impls = [raw, bare, bus, busSingle, busDeadline];
const started = performance.now();

// All implementations are connected side by side and measured in short rounds of rotating order,
// so a busy neighbour on this 2-core box slows them alike instead of skewing one of them.
for (const kind of ['prosody', 'ejabberd'] as ServerKind[]) {
  const srv = await startServer(kind);
  const benches: Bench[] = [];
  const rounds: Round[] = [];
  try {
    const names = 'abcdefghijklmnop';
    for (const [k, impl] of impls.entries()) {
      benches.push(await impl.setup(srv, `svc-${names[2 * k]}.localhost`, `svc-${names[2 * k + 1]}.localhost`));
    }
    for (const b of benches) await warmup(b);
    for (let r = 0; r < ROUNDS; r++) {
      const order = williamsOrder(impls.length, r);
      const m0 = machineCpuUs();
      const self0 = processCpuUs(process.pid);
      const srv0 = processCpuUs(srv.pid);
      const t0 = performance.now();
      const seq = new Map<number, Awaited<ReturnType<typeof sequential>>>();
      for (const k of order) seq.set(k, await sequential(benches[k]!));
      const pipe = new Map<number, Awaited<ReturnType<typeof pipelined>>>();
      for (const k of order) pipe.set(k, await pipelined(benches[k]!, srv.pid));
      const wallMs = performance.now() - t0;
      const m1 = machineCpuUs();
      const self1 = processCpuUs(process.pid);
      const srv1 = processCpuUs(srv.pid);
      const ours =
        self0 !== undefined && self1 !== undefined && srv0 !== undefined && srv1 !== undefined
          ? self1 - self0 + (srv1 - srv0)
          : undefined;
      const load = outsideLoadCores(m0, m1, ours, wallMs);
      const outside = load?.outside;
      const steal = load?.steal;
      const round: Round = {
        round: r,
        order: order.map((k) => impls[k]!.name),
        wallMs,
        outsideLoadCores: outside,
        stealCores: steal,
        flagged: outside !== undefined && outside > OUTSIDE_LIMIT,
        impls: {},
      };
      for (const [k, impl] of impls.entries()) round.impls[impl.name] = { ...seq.get(k)!, ...pipe.get(k)! };
      rounds.push(round);
      const ri = round.impls;
      roundRows.push({
        server: kind,
        round: r,
        order: round.order.join(' > '),
        'outside cores': outside ?? 'n/a',
        'steal cores': steal ?? 'n/a',
        flagged: round.flagged ? 'yes' : '',
        'raw p50': ri.raw!.p50Ms,
        'bus p50': ri.xmppbus!.p50Ms,
        'raw calls/s': Math.round(ri.raw!.throughput),
        'bus calls/s': Math.round(ri.xmppbus!.throughput),
        'raw srv µs': ri.raw!.serverCpuUsPerCall ?? 'n/a',
        'bus srv µs': ri.xmppbus!.serverCpuUsPerCall ?? 'n/a',
      });
    }
  } finally {
    for (const b of benches) await b.close();
    await srv.stop();
  }

  const { used, rule } = roundsToUse(rounds, MIN_CLEAN_ROUNDS);
  const med = (name: ImplName, key: keyof Row): number => median(used.map((r) => r.impls[name]![key] ?? NaN));
  const m: Partial<Record<ImplName, Row>> = {};
  for (const impl of impls) {
    const server = med(impl.name, 'serverCpuUsPerCall');
    m[impl.name] = {
      p50Ms: med(impl.name, 'p50Ms'),
      p99Ms: med(impl.name, 'p99Ms'),
      seqCallsPerSec: med(impl.name, 'seqCallsPerSec'),
      throughput: med(impl.name, 'throughput'),
      nodeCpuUsPerCall: med(impl.name, 'nodeCpuUsPerCall'),
      serverCpuUsPerCall: Number.isNaN(server) ? undefined : server,
    };
  }
  metrics[kind] = {
    ...m,
    roundsUsed: used.map((r) => r.round),
    flaggedRounds: rounds.filter((r) => r.flagged).map((r) => r.round),
    rule,
    rounds,
  };
  const base = m.raw!;
  // One IQ per call on both sides; the batched default is compared separately.
  const single = m['xmppbus (batch off)']!;
  ratios[kind] = {
    p50_vs_raw: single.p50Ms / base.p50Ms,
    throughput_vs_raw: single.throughput / base.throughput,
    p99_vs_raw: single.p99Ms / base.p99Ms,
    batched_p50_vs_raw: m.xmppbus!.p50Ms / base.p50Ms,
    batched_throughput_vs_raw: m.xmppbus!.throughput / base.throughput,
    batched_node_cpu_vs_single: m.xmppbus!.nodeCpuUsPerCall / single.nodeCpuUsPerCall,
    batched_server_cpu_vs_single: (m.xmppbus!.serverCpuUsPerCall ?? NaN) / (single.serverCpuUsPerCall ?? NaN),
    xmppjs_p50_vs_raw: m.xmppjs!.p50Ms / base.p50Ms,
    xmppjs_throughput_vs_raw: m.xmppjs!.throughput / base.throughput,
    with_deadline_header_p50_vs_raw: m['xmppbus+deadline']!.p50Ms / base.p50Ms,
    with_deadline_header_throughput_vs_raw: m['xmppbus+deadline']!.throughput / base.throughput,
    rounds_used: used.length,
    rule,
  };
  for (const impl of impls) {
    const r = m[impl.name]!;
    rows.push({
      server: kind,
      impl: impl.name,
      'p50 ms': r.p50Ms,
      'p99 ms': r.p99Ms,
      'p50 ×raw': r.p50Ms / base.p50Ms,
      'pipelined calls/s': Math.round(r.throughput),
      'thr ×raw': r.throughput / base.throughput,
      'node µs/call': r.nodeCpuUsPerCall,
      'server µs/call': r.serverCpuUsPerCall ?? 'n/a',
    });
  }
}

printTable(`Rounds (outside load flagged above ${OUTSIDE_LIMIT} core)`, roundRows);
printTable(
  `RPC round trips: medians over rounds (${ROUNDS} rounds/server; per round ${SEQ} sequential calls and ` +
    `${PIPE_MS} ms pipelined with ${IN_FLIGHT} in flight per impl)`,
  rows,
);
const file = writeResult({ name: 'rpc', server: 'prosody+ejabberd', metrics, ratios });
process.stdout.write(
  `\ntargets: p50 ≤ 1.1× raw, throughput ≥ 0.9× raw\n${JSON.stringify(ratios, null, 2)}\n` +
    `total ${((performance.now() - started) / 1000).toFixed(0)} s; wrote ${file}\n`,
);
