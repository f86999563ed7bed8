// `npm run bench -- pubsub`: XEP-0060 publish → delivery through real Prosody and ejabberd, hand-written
// stanzas over a raw socket (baseline) vs xmppbus (validated payloads, typed consumers), on persistent and
// non-persistent nodes, with 1 and 10 subscribers, plus sequential publish → first-delivery latency.
//
// Method — raw and xmppbus make the server do exactly the same work, so `deliveries_vs_raw` measures our
// own overhead only:
// - Same node config: each run creates a fresh node with xmppbus' event-node defaults (EVENT_NODE_DEFAULTS +
//   persist_items per case + max_items 1000); raw sends a hand-written create-and-configure with the same
//   fields. At start the two nodes' configs are read back and must be equal (else the benchmark fails).
// - Same JIDs: publisher svc-a.localhost, subscribers svc-b.localhost + wN@svc-b.localhost (one component
//   link each side; the two implementations take turns on the same component names).
// - Same stanzas: byte-identical <tick/> payload, item ids `i<seq>`, IQ ids of the same length (16).
// - Same window, closed loop: WINDOW publishes in flight, and a publish leaves the window only once the
//   service acked it AND every subscriber received it. (The old open loop counted a publish as done at the
//   ack; ejabberd acks before it fans out, so a fast publisher queued notifications inside the server:
//   publishes/s overstated what was delivered and deliveries/s — divided by a time that included the
//   drain — understated it: raw 10 subs showed 7 624 publishes/s but 34 681 deliveries/s.)
// - Steady state only: WARM_MS of the same loop unmeasured, then a MEASURE_MS window in which publishes
//   acked, deliveries received, Node CPU and server CPU are counted; then the loop stops and every delivery
//   must arrive (a lost or duplicated one fails the run). Only `<item>` notifications count.
// - Fresh state: the node is deleted after each run, so the server's state (Lua heap, mnesia) does not grow
//   from one run to the next.
// - Order and noise: raw and xmppbus alternate A-B-B-A over ROUNDS (default 2, other engineers' jobs share
//   this 2-core box); rates and CPU are pooled over the rounds, latency samples likewise.
// - Batched (docs/protocol.md §4): the same ticks through `pubsub.batchPublisher(Tick, node, { batch })`, many
//   events per item, BATCH_WINDOW events in flight; its publish/s counts events, not items (no latency row).
//   BENCH_PUBSUB_BATCH=0 skips it.
// Node CPU covers both ends (publisher and subscribers live in this one process). Env: BENCH_PUBSUB_MS
// (measure window per run, default 3000), BENCH_PUBSUB_ROUNDS (default 2), BENCH_PUBSUB_SERVERS
// (default `prosody,ejabberd`).
import { Type } from '@sinclair/typebox';
import { Session, parseXml } from '@xmppbus/core';
import { EVENT_NODE_DEFAULTS, PubSub, configToFields, type Consumer, type NodeConfig } from '@xmppbus/pubsub';
import { event, type PayloadOf } from '@xmppbus/schema';
import { startServer, waitFor, type ServerKind, type XmppServer } from '@xmppbus/testing';
import { componentTransport, type ComponentTransport } from '@xmppbus/transport-component';
import { RawComponent, deadline, rawId } from './lib/raw-component.js';
import { percentile, printTable, processCpuUs, writeResult } from './lib/results.js';

const Tick = event({
  ns: 'urn:bench:pubsub:1',
  name: 'tick',
  schema: Type.Object({ seq: Type.Integer({ minimum: 0 }), t: Type.Number(), note: Type.String() }),
});
const NOTE = 'temperature reading from sensor 17';
const MEASURE_MS = Number(process.env['BENCH_PUBSUB_MS'] ?? 3_000);
const ROUNDS = Number(process.env['BENCH_PUBSUB_ROUNDS'] ?? 2);
const SERVERS = (process.env['BENCH_PUBSUB_SERVERS'] ?? 'prosody,ejabberd').split(',') as ServerKind[];
const WARM_MS = 500;
const WINDOW = 50; // publishes in flight (until acked and delivered to every subscriber)
// Batched variant: events in flight, and the batching options (100 events ≈ 9 KB per item).
const BATCH_WINDOW = Number(process.env['BENCH_PUBSUB_BATCH_WINDOW'] ?? 2_000);
const BATCH = { maxEvents: 100, maxInFlight: 4 } as const;
const BATCHED = process.env['BENCH_PUBSUB_BATCH'] !== '0';
// Sequential samples; persistent nodes are slow on Prosody's file storage (the item file is rewritten).
const latSamples = (persist: boolean): { n: number; warm: number } =>
  persist ? { n: 40, warm: 5 } : { n: 300, warm: 50 };
const SUBS = [1, 10] as const;
const PUB = 'svc-a.localhost';
const SUB = 'svc-b.localhost';
const nodeConfig = (persist: boolean): NodeConfig => ({
  ...EVENT_NODE_DEFAULTS,
  persistItems: persist,
  maxItems: 1000,
});

const PS = 'http://jabber.org/protocol/pubsub';
const rawPublish = (id: string, node: string, seq: number): string =>
  `<iq type='set' to='pubsub.localhost' from='${PUB}' id='${id}'><pubsub xmlns='${PS}'><publish node='${node}'><item id='i${seq}'>` +
  `<tick xmlns='urn:bench:pubsub:1'><seq>${seq}</seq><t>${performance.now()}</t><note>${NOTE}</note></tick></item></publish></pubsub></iq>`;

function rawCreate(id: string, node: string, config: NodeConfig): string {
  const f = (k: string, v: string): string => `<field var='${k}'><value>${v}</value></field>`;
  let fields = f('FORM_TYPE', `${PS}#node_config`);
  for (const [k, v] of configToFields(config)) fields += f(k, String(v));
  return (
    `<iq type='set' id='${id}' from='${PUB}' to='pubsub.localhost'><pubsub xmlns='${PS}'><create node='${node}'/>` +
    `<configure><x xmlns='jabber:x:data' type='submit'>${fields}</x></configure></pubsub></iq>`
  );
}
const rawDelete = (id: string, node: string): string =>
  `<iq type='set' id='${id}' from='${PUB}' to='pubsub.localhost'><pubsub xmlns='${PS}#owner'><delete node='${node}'/></pubsub></iq>`;

function subscriberJids(n: number): string[] {
  return Array.from({ length: n }, (_, i) => (i === 0 ? SUB : `w${i}@${SUB}`));
}

/** Publishes still in the window: each leaves once acked and delivered to all `subs` subscribers. */
class Window {
  readonly #want: number;
  readonly #pending = new Map<number, { n: number; done: () => void }>();
  deliveries = 0;
  extra = 0;
  constructor(subs: number) {
    this.#want = subs;
  }
  /** Resolves when `seq` reached every subscriber; call before publishing it. */
  expect(seq: number): Promise<void> {
    return new Promise((done) => this.#pending.set(seq, { n: 0, done }));
  }
  delivered(seq: number): void {
    this.deliveries++;
    const p = this.#pending.get(seq);
    if (!p) return;
    if (++p.n === this.#want) {
      this.#pending.delete(seq);
      p.done();
    }
  }
}

interface RunResult {
  seconds: number;
  publishes: number;
  deliveries: number;
  nodeCpuUs: number;
  serverCpuUs: number | undefined;
  latencies: number[];
}

/**
 * WARM_MS unmeasured, then MEASURE_MS measured: the seconds, what `count()` grew by, and the CPU
 * of this process and of the server over the measured window.
 */
async function measureWindow(
  pid: number,
  count: () => { publishes: number; deliveries: number },
): Promise<Omit<RunResult, 'latencies'>> {
  await new Promise((r) => setTimeout(r, WARM_MS));
  const n0 = count();
  const c0 = process.cpuUsage();
  const s0 = processCpuUs(pid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, MEASURE_MS));
  const seconds = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const s1 = processCpuUs(pid);
  const n1 = count();
  return {
    seconds,
    publishes: n1.publishes - n0.publishes,
    deliveries: n1.deliveries - n0.deliveries,
    nodeCpuUs: c.user + c.system,
    serverCpuUs: s0 !== undefined && s1 !== undefined ? s1 - s0 : undefined,
  };
}

/** Closed-loop publishing: WARM_MS unmeasured, MEASURE_MS measured, then checks that nothing was lost. */
async function drive(
  srv: XmppServer,
  win: Window,
  subs: number,
  what: string,
  publishOne: (seq: number) => Promise<void>,
): Promise<Omit<RunResult, 'latencies'>> {
  let seq = 0;
  let acked = 0;
  let stop = false;
  const workers = Array.from({ length: WINDOW }, async () => {
    while (!stop) {
      const s = seq++;
      const delivered = win.expect(s);
      await publishOne(s);
      acked++;
      await delivered;
    }
  });
  const measured = await measureWindow(srv.pid, () => ({ publishes: acked, deliveries: win.deliveries }));
  stop = true;
  const deadline = new Promise<never>((_, rej) =>
    setTimeout(() => rej(new Error(`${what}: deliveries missing: ${win.deliveries} of ${seq * subs}`)), 30_000).unref(),
  );
  await Promise.race([Promise.all(workers), deadline]);
  if (win.deliveries !== seq * subs)
    throw new Error(`${what}: ${win.deliveries} deliveries for ${seq} publishes × ${subs}`);
  return measured;
}

/** Sequential publish → first delivery latency (ms), with the node's subscribers listening. */
async function latency(
  persist: boolean,
  publishAndWait: (seq: number, wait: Promise<void>) => Promise<void>,
  listen: (cb: (seq: number) => void) => void,
): Promise<number[]> {
  const { n, warm } = latSamples(persist);
  let want = -1;
  let resolve: (() => void) | undefined;
  listen((seq) => {
    if (seq === want && resolve) {
      const r = resolve;
      resolve = undefined;
      r();
    }
  });
  const samples: number[] = [];
  for (let i = 0; i < warm + n; i++) {
    want = i;
    const wait = new Promise<void>((r) => (resolve = r));
    const t0 = performance.now();
    await deadline(publishAndWait(i, wait), 10_000, `latency sample ${i}`);
    if (i >= warm) samples.push(performance.now() - t0);
  }
  return samples;
}

const LAT_BASE = 1e9; // latency-phase seqs, above anything the throughput phase reaches

async function rawRun(srv: XmppServer, persist: boolean, subs: number, node: string): Promise<RunResult> {
  const pub = new RawComponent(PUB);
  const sub = new RawComponent(SUB);
  await pub.connect(srv.componentPort, srv.componentSecret);
  await sub.connect(srv.componentPort, srv.componentSecret);
  let id = rawId();
  await pub.call(id, rawCreate(id, node, nodeConfig(persist)));
  for (const jid of subscriberJids(subs)) {
    id = rawId();
    await sub.call(
      id,
      `<iq type='set' id='${id}' from='${jid}' to='pubsub.localhost'><pubsub xmlns='${PS}'><subscribe node='${node}' jid='${jid}'/></pubsub></iq>`,
    );
  }
  const win = new Window(subs);
  let onTick: ((seq: number) => void) | undefined;
  sub.onMessage = (m) => {
    // Items only (ejabberd also notifies a <retract/> when a full persistent node evicts one).
    let i = m.indexOf('<item ');
    while (i >= 0) {
      const s = m.indexOf('<seq>', i);
      const seq = Number(m.slice(s + 5, m.indexOf('</seq>', s)));
      if (seq >= LAT_BASE) onTick?.(seq - LAT_BASE);
      else win.delivered(seq);
      i = m.indexOf('<item ', i + 6);
    }
  };
  const r = await drive(srv, win, subs, `raw ${node}`, (seq) => {
    const pid = rawId();
    return pub.call(pid, rawPublish(pid, node, seq), 30_000);
  });
  const latencies = await latency(
    persist,
    async (seq, wait) => {
      const pid = rawId();
      await pub.call(pid, rawPublish(pid, node, LAT_BASE + seq));
      await wait;
    },
    (cb) => (onTick = cb),
  );
  id = rawId();
  await pub.call(id, rawDelete(id, node));
  await pub.close();
  await sub.close();
  return { ...r, latencies };
}

async function connectComponent(srv: XmppServer, domain: string): Promise<ComponentTransport> {
  return componentTransport({ service: srv.componentService(), domain, password: srv.componentSecret });
}

/**
 * The xmppbus side of a run: publisher and subscriber sessions, a fresh node, and a consumer per
 * subscriber JID calling `onTick`; `close()` closes the consumers, deletes the node and the sessions.
 */
async function busNode(
  srv: XmppServer,
  persist: boolean,
  subs: number,
  node: string,
  onTick: (v: PayloadOf<typeof Tick>) => void,
): Promise<{ pub: PubSub; close(): Promise<void> }> {
  const pubSession = new Session({ transport: await connectComponent(srv, PUB) });
  const subSession = new Session({ transport: await connectComponent(srv, SUB) });
  const pub = new PubSub({ session: pubSession, service: srv.pubsubService });
  const sub = new PubSub({ session: subSession, service: srv.pubsubService });
  await pub.createNode(node, { persistItems: persist, maxItems: 1000 });
  const consumers: Consumer<typeof Tick>[] = [];
  for (const jid of subscriberJids(subs)) {
    const c = sub.consume(Tick, node, onTick, { jid, dedupeWindow: 64 });
    await c.start();
    consumers.push(c);
  }
  return {
    pub,
    async close() {
      for (const c of consumers) await c.close();
      await pub.deleteNode(node);
      await pubSession.close();
      await subSession.close();
    },
  };
}

async function busRun(srv: XmppServer, persist: boolean, subs: number, node: string): Promise<RunResult> {
  const win = new Window(subs);
  let onTick: ((seq: number) => void) | undefined;
  const { pub, close } = await busNode(srv, persist, subs, node, (v) => {
    if (v.seq >= LAT_BASE) onTick?.(v.seq - LAT_BASE);
    else win.delivered(v.seq);
  });
  const r = await drive(srv, win, subs, `xmppbus ${node}`, async (seq) => {
    await pub.publish(Tick, node, { seq, t: performance.now(), note: NOTE }, { id: `i${seq}` });
  });
  const latencies = await latency(
    persist,
    async (seq, wait) => {
      const s = LAT_BASE + seq;
      await pub.publish(Tick, node, { seq: s, t: performance.now(), note: NOTE }, { id: `i${s}` });
      await wait;
    },
    (cb) => (onTick = cb),
  );
  await close();
  return { ...r, latencies };
}

/**
 * Batched events (docs/protocol.md §4): `pubsub.batchPublisher(Tick, node, { batch })` and `send()` per
 * event, closed loop over BATCH_WINDOW events in flight (an event leaves the window once every
 * subscriber handled it); batches fill while BATCH.maxInFlight items await the service's answer.
 */
async function busBatchRun(srv: XmppServer, persist: boolean, subs: number, node: string): Promise<RunResult> {
  const pending = new Map<number, number>();
  let complete = 0;
  let deliveries = 0;
  let seq = 0;
  let stop = false;
  let refilling = false;
  const { pub, close } = await busNode(srv, persist, subs, node, (v) => {
    deliveries++;
    const n = (pending.get(v.seq) ?? 0) + 1;
    if (n < subs) pending.set(v.seq, n);
    else {
      pending.delete(v.seq);
      complete++;
      if (!refilling) {
        refilling = true;
        queueMicrotask(refill);
      }
    }
  });
  const publisher = pub.batchPublisher(Tick, node, { batch: BATCH });
  const refill = (): void => {
    refilling = false;
    while (!stop && seq - complete < BATCH_WINDOW) {
      pending.set(seq, 0);
      publisher.send({ seq: seq++, t: 0, note: NOTE });
    }
  };
  refill();
  const r = await measureWindow(srv.pid, () => ({ publishes: complete, deliveries }));
  stop = true;
  await publisher.flush({ timeout: 30_000 });
  await waitFor(() => complete >= seq, { timeout: 30_000, what: `batched ${node}: every event at every subscriber` });
  if (complete !== seq || deliveries !== seq * subs)
    throw new Error(`batched ${node}: ${deliveries} deliveries for ${seq} events × ${subs}`);
  await close();
  return { ...r, latencies: [] };
}

/** Fails unless the raw create stanza and xmppbus' createNode configure nodes identically. */
async function checkSameConfig(srv: XmppServer): Promise<Record<string, unknown>> {
  const session = new Session({ transport: await connectComponent(srv, PUB) });
  const ps = new PubSub({ session, service: srv.pubsubService });
  await ps.start();
  const out: Record<string, unknown> = {};
  try {
    for (const persist of [false, true]) {
      const id = rawId();
      await session.caller.request(parseXml(rawCreate(id, 'cfg-raw', nodeConfig(persist))));
      await ps.createNode('cfg-bus', { persistItems: persist, maxItems: 1000 });
      const a = JSON.stringify(await ps.getNodeConfig('cfg-raw'));
      const b = JSON.stringify(await ps.getNodeConfig('cfg-bus'));
      if (a !== b) throw new Error(`node configs differ on ${srv.kind}:\nraw ${a}\nbus ${b}`);
      out[persist ? 'persistent' : 'non_persistent'] = JSON.parse(b) as unknown;
      await ps.deleteNode('cfg-raw');
      await ps.deleteNode('cfg-bus');
    }
  } finally {
    await session.close();
  }
  return out;
}

interface Pooled {
  publishRate: number;
  deliveryRate: number;
  nodeCpuUsPerDelivery: number;
  serverCpuUsPerPublish: number | undefined;
  p50: number;
  p99: number;
  runs: { publishRate: number; deliveryRate: number }[];
}

function pool(runs: RunResult[]): Pooled {
  const sum = (f: (r: RunResult) => number): number => runs.reduce((a, r) => a + f(r), 0);
  const secs = sum((r) => r.seconds);
  const pubs = sum((r) => r.publishes);
  const dels = sum((r) => r.deliveries);
  const srvCpu = runs.every((r) => r.serverCpuUs !== undefined) ? sum((r) => r.serverCpuUs!) : undefined;
  const lat = runs.flatMap((r) => r.latencies).sort((a, b) => a - b);
  return {
    publishRate: pubs / secs,
    deliveryRate: dels / secs,
    nodeCpuUsPerDelivery: sum((r) => r.nodeCpuUs) / Math.max(1, dels),
    serverCpuUsPerPublish: srvCpu === undefined ? undefined : srvCpu / Math.max(1, pubs),
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    runs: runs.map((r) => ({ publishRate: r.publishes / r.seconds, deliveryRate: r.deliveries / r.seconds })),
  };
}

const metrics: Record<string, unknown> = {
  method: {
    window: WINDOW,
    warmMs: WARM_MS,
    measureMs: MEASURE_MS,
    rounds: ROUNDS,
    loop: 'closed (ack + all deliveries)',
  },
};
const ratios: Record<string, unknown> = {};
const rows: Record<string, string | number>[] = [];
let nodeN = 0;
for (const kind of SERVERS) {
  const srv = await startServer(kind, { pubsubStorage: 'persistent' });
  const probe = new RawComponent('svc-p.localhost');
  try {
    await probe.connect(srv.componentPort, srv.componentSecret);
    const m: Record<string, unknown> = { nodeConfig: await checkSameConfig(srv) };
    await probe.waitGone(PUB);
    const r: Record<string, Record<string, number>> = {};
    for (const persist of [false, true]) {
      const storage = persist ? 'persistent' : 'non_persistent';
      for (const subs of SUBS) {
        const raws: RunResult[] = [];
        const buses: RunResult[] = [];
        const batched: RunResult[] = [];
        for (let round = 0; round < ROUNDS; round++) {
          // A-B-B-A: each implementation goes first half of the time. Node names of equal length.
          const n = String(nodeN++).padStart(3, '0');
          const order = round % 2 === 0 ? (['raw', 'bus'] as const) : (['bus', 'raw'] as const);
          for (const impl of order) {
            process.stderr.write(`${kind} ${storage} ${subs} ${impl} round ${round}\n`);
            if (impl === 'raw') raws.push(await rawRun(srv, persist, subs, `raw-${storage}-${subs}-${n}`));
            else buses.push(await busRun(srv, persist, subs, `bus-${storage}-${subs}-${n}`));
            await probe.waitGone(PUB);
            await probe.waitGone(SUB);
          }
          if (BATCHED) {
            process.stderr.write(`${kind} ${storage} ${subs} batched round ${round}\n`);
            batched.push(await busBatchRun(srv, persist, subs, `bat-${storage}-${subs}-${n}`));
            await probe.waitGone(PUB);
            await probe.waitGone(SUB);
          }
        }
        const raw = pool(raws);
        const bus = pool(buses);
        const bat = batched.length > 0 ? pool(batched) : undefined;
        m[`${storage}_${subs}sub`] = { raw, xmppbus: bus, ...(bat ? { xmppbus_batched: bat } : {}) };
        if (bat)
          (r[`batched_deliveries_vs_raw${persist ? '_persistent' : ''}`] ??= {})[String(subs)] =
            bat.deliveryRate / raw.deliveryRate;
        const sfx = persist ? '_persistent' : '';
        (r[`deliveries_vs_raw${sfx}`] ??= {})[String(subs)] = bus.deliveryRate / raw.deliveryRate;
        (r[`publish_vs_raw${sfx}`] ??= {})[String(subs)] = bus.publishRate / raw.publishRate;
        (r[`p50_latency_vs_raw${sfx}`] ??= {})[String(subs)] = bus.p50 / raw.p50;
        if (raw.serverCpuUsPerPublish !== undefined && bus.serverCpuUsPerPublish !== undefined) {
          (r[`server_cpu_vs_raw${sfx}`] ??= {})[String(subs)] = bus.serverCpuUsPerPublish / raw.serverCpuUsPerPublish;
        }
        const impls: [string, Pooled][] = [
          ['raw', raw],
          ['xmppbus', bus],
        ];
        if (bat) impls.push(['batched', bat]);
        for (const [impl, x] of impls) {
          rows.push({
            server: kind,
            storage,
            subs,
            impl,
            'publish/s': Math.round(x.publishRate),
            'deliveries/s': Math.round(x.deliveryRate),
            'p50 ms': impl === 'batched' ? NaN : x.p50,
            'p99 ms': impl === 'batched' ? NaN : x.p99,
            'node µs/delivery': x.nodeCpuUsPerDelivery,
            'server µs/publish': x.serverCpuUsPerPublish ?? NaN,
          });
        }
      }
    }
    metrics[kind] = m;
    ratios[kind] = r;
  } finally {
    await probe.close().catch(() => undefined);
    await srv.stop();
  }
}
printTable(
  `pubsub: raw socket vs xmppbus (closed loop, window ${WINDOW}, ${ROUNDS}×${MEASURE_MS} ms per row; latency = sequential)`,
  rows,
);
process.stdout.write(`\nratios: ${JSON.stringify(ratios, null, 1)}\n`);
// A subset of servers prints its numbers but leaves the committed result (benchmarks/README.md).
if (process.env['BENCH_PUBSUB_SERVERS'] === undefined)
  process.stdout.write(`wrote ${writeResult({ name: 'pubsub', server: SERVERS.join(','), metrics, ratios })}\n`);
