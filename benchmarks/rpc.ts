// `npm run bench -- rpc`: RPC round trips through real Prosody and ejabberd, side by side.
//   (a) raw      — hand-written XEP-0114 over node:net, minimal string stanza handling (baseline)
//   (b) xmpp.js  — bare @xmpp/component iqCaller/iqCallee
//   (c) xmppbus  — RpcClient/RpcServer over @xmppbus/transport-component, validated payload
//   (c') the same with a per-call timeout, i.e. the xmppbus-deadline SHIM header on every call
// Sequential round trips (p50/p99) and pipelined throughput (100 in flight) per server, with the
// Node CPU per call (both ends live in this process) and the server's CPU per call.
// Env: RPC_BENCH_SECONDS (pipelined time per impl, default 10), RPC_BENCH_SEQ (sequential calls per impl,
// default 2000), RPC_BENCH_ROUNDS (alternating rounds the time and calls are split into, default 3).
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { connect, type Socket } from 'node:net';
import type { Element } from '@xmppbus/core';
import { RpcClient, RpcServer } from '@xmppbus/rpc';
import { startServer, type ServerKind, type XmppServer } from '@xmppbus/testing';
import { componentTransport } from '@xmppbus/transport-component';
import { CreateOrder, NS_ORDERS } from '../test/rpc-fixtures.js';
import { percentile, printTable, processCpuUs, writeResult } from './lib/results.js';

const SECONDS = Number(process.env['RPC_BENCH_SECONDS'] ?? 10);
const SEQ = Number(process.env['RPC_BENCH_SEQ'] ?? 2000);
const WARMUP = 300;
const IN_FLIGHT = 100;
const ROUNDS = Number(process.env['RPC_BENCH_ROUNDS'] ?? 3);

interface Bench {
  call(): Promise<unknown>;
  close(): Promise<void>;
}

interface Impl {
  name: 'raw' | 'xmppjs' | 'xmppbus' | 'xmppbus+deadline';
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
// (c) xmppbus RPC: validated on both sides, typed result; (c') plus the deadline header.
function busImpl(withDeadline: boolean): Impl {
  return {
    name: withDeadline ? 'xmppbus+deadline' : 'xmppbus',
    async setup(srv, CALLER, CALLEE) {
      const mk = (domain: string) =>
        componentTransport({
          service: srv.componentService(),
          domain,
          password: srv.componentSecret,
          reconnect: false,
        });
      const calleeT = await mk(CALLEE);
      const server = new RpcServer({ transport: calleeT, concurrency: 256 });
      server.handle(CreateOrder, ({ sku, qty }) => ({ orderId: `${sku}-${qty}`, total: qty * 9.5 }));
      const callerT = await mk(CALLER);
      const client = new RpcClient({ transport: callerT, timeout: 30_000 });
      const req = { sku: 'A1', qty: 2 };
      const callOpts = { timeout: 30_000 };
      return {
        // A per-call timeout sends the xmppbus-deadline SHIM header (see RpcClientOptions.propagateDeadline).
        call: withDeadline
          ? () => client.call(CreateOrder, CALLEE, req, callOpts)
          : () => client.call(CreateOrder, CALLEE, req),
        close: async () => {
          await server.close({ timeout: 1000 });
          await callerT.close();
          await calleeT.close();
        },
      };
    },
  };
}
const bus = busImpl(false);
const busDeadline = busImpl(true);

// ---------------------------------------------------------------------------------------------

interface Row {
  p50Ms: number;
  p99Ms: number;
  seqCallsPerSec: number;
  throughput: number;
  nodeCpuUsPerCall: number;
  serverCpuUsPerCall: number | undefined;
}

async function warmup(b: Bench): Promise<void> {
  for (let i = 0; i < WARMUP; i++) await b.call();
  await runFor(b, 1000); // JIT and server caches hot at full concurrency
}

async function sequential(b: Bench, n: number, into: number[]): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    await b.call();
    into.push(performance.now() - s);
  }
  return performance.now() - t0;
}

interface Totals {
  lat: number[];
  seqWallMs: number;
  calls: number;
  wallMs: number;
  nodeCpuUs: number;
  serverCpuUs: number | undefined;
}

async function pipelinedRound(b: Bench, pid: number, ms: number, t: Totals): Promise<void> {
  const s0 = processCpuUs(pid);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const n = await runFor(b, ms);
  t.wallMs += performance.now() - t0;
  const c = process.cpuUsage(c0);
  const s1 = processCpuUs(pid);
  t.calls += n;
  t.nodeCpuUs += c.user + c.system;
  t.serverCpuUs =
    s0 !== undefined && s1 !== undefined && t.serverCpuUs !== undefined ? t.serverCpuUs + (s1 - s0) : undefined;
}

function runFor(b: Bench, ms: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const until = performance.now() + ms;
    let done = 0;
    let active = 0;
    const launch = (): void => {
      active++;
      b.call().then(
        () => {
          active--;
          done++;
          if (performance.now() < until) launch();
          else if (active === 0) resolve(done);
        },
        (err: unknown) => reject(err as Error),
      );
    };
    for (let i = 0; i < IN_FLIGHT; i++) launch();
  });
}

const metrics: Record<string, Record<string, Row>> = {};
const ratios: Record<string, Record<string, number>> = {};
const rows: Record<string, string | number>[] = [];
const impls = [raw, bare, bus, busDeadline];

// The three implementations are connected side by side and measured in alternating rounds, so a
// busy neighbour on this 2-core box slows them alike instead of skewing one of them.
for (const kind of ['prosody', 'ejabberd'] as ServerKind[]) {
  const srv = await startServer(kind);
  const benches: Bench[] = [];
  try {
    const names = 'abcdefghijklmnop';
    for (const [k, impl] of impls.entries()) {
      benches.push(await impl.setup(srv, `svc-${names[2 * k]}.localhost`, `svc-${names[2 * k + 1]}.localhost`));
    }
    for (const b of benches) await warmup(b);
    const totals: Totals[] = impls.map(() => ({
      lat: [],
      seqWallMs: 0,
      calls: 0,
      wallMs: 0,
      nodeCpuUs: 0,
      serverCpuUs: 0,
    }));
    const perRound = Math.ceil(SEQ / ROUNDS);
    for (let r = 0; r < ROUNDS; r++) {
      for (const [k, b] of benches.entries()) totals[k]!.seqWallMs += await sequential(b, perRound, totals[k]!.lat);
      for (const [k, b] of benches.entries()) await pipelinedRound(b, srv.pid, (SECONDS * 1000) / ROUNDS, totals[k]!);
    }
    metrics[kind] = {};
    for (const [k, impl] of impls.entries()) {
      const t = totals[k]!;
      t.lat.sort((x, y) => x - y);
      metrics[kind][impl.name] = {
        p50Ms: percentile(t.lat, 50),
        p99Ms: percentile(t.lat, 99),
        seqCallsPerSec: (t.lat.length / t.seqWallMs) * 1000,
        throughput: (t.calls / t.wallMs) * 1000,
        nodeCpuUsPerCall: t.nodeCpuUs / t.calls,
        serverCpuUsPerCall: t.serverCpuUs === undefined ? undefined : t.serverCpuUs / t.calls,
      };
    }
  } finally {
    for (const b of benches) await b.close();
    await srv.stop();
  }
  const m = metrics[kind];
  const base = m['raw']!;
  ratios[kind] = {
    p50_vs_raw: m['xmppbus']!.p50Ms / base.p50Ms,
    throughput_vs_raw: m['xmppbus']!.throughput / base.throughput,
    p99_vs_raw: m['xmppbus']!.p99Ms / base.p99Ms,
    xmppjs_p50_vs_raw: m['xmppjs']!.p50Ms / base.p50Ms,
    xmppjs_throughput_vs_raw: m['xmppjs']!.throughput / base.throughput,
    with_deadline_header_p50_vs_raw: m['xmppbus+deadline']!.p50Ms / base.p50Ms,
    with_deadline_header_throughput_vs_raw: m['xmppbus+deadline']!.throughput / base.throughput,
  };
  for (const name of ['raw', 'xmppjs', 'xmppbus', 'xmppbus+deadline'] as const) {
    const r = m[name]!;
    rows.push({
      server: kind,
      impl: name,
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

printTable(
  `RPC round trips (sequential ${SEQ}, pipelined ${IN_FLIGHT} in flight for ${SECONDS} s; ${ROUNDS} alternating rounds)`,
  rows,
);
const file = writeResult({ name: 'rpc', server: 'prosody+ejabberd', metrics, ratios });
process.stdout.write(
  `\ntargets: p50 ≤ 1.1× raw, throughput ≥ 0.9× raw\n${JSON.stringify(ratios, null, 2)}\nwrote ${file}\n`,
);
