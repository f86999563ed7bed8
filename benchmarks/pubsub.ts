// `npm run bench -- pubsub`: XEP-0060 publish/delivery through real Prosody and ejabberd, raw
// stanzas over a raw socket (baseline) vs xmppbus (validated payloads, typed consumer), on
// persistent and non-persistent nodes, with 1 and 10 subscribers; sequential publish→deliver latency.
import { createHash } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { Type } from '@sinclair/typebox';
import { PubSub } from '@xmppbus/pubsub';
import { event } from '@xmppbus/schema';
import { startServer, type ServerKind, type XmppServer } from '@xmppbus/testing';
import { componentTransport } from '@xmppbus/transport-component';
import { percentile, printTable, processCpuUs, writeResult } from './lib/results.js';

const Tick = event({
  ns: 'urn:bench:pubsub:1',
  name: 'tick',
  schema: Type.Object({ seq: Type.Integer({ minimum: 0 }), t: Type.Number(), note: Type.String() }),
});
const NOTE = 'temperature reading from sensor 17';
const DURATION_MS = Number(process.env['BENCH_PUBSUB_MS'] ?? 3_000);
const WINDOW = 50; // publishes in flight
// Sequential samples; persistent nodes are slow on Prosody's file storage (the item file is rewritten).
const latSamples = (persist: boolean): { n: number; warm: number } =>
  persist ? { n: 60, warm: 10 } : { n: 300, warm: 50 };
const SUBS = [1, 10] as const;

// ---------------------------------------------------------------------------------------------
// Raw XEP-0114 socket: hand-written strings out, string scanning in.
class RawComponent {
  #sock!: Socket;
  #buf = '';
  #waiters = new Map<string, () => void>();
  onMessage: ((text: string) => void) | undefined;
  results = 0;
  constructor(readonly domain: string) {}

  async connect(port: number, secret: string): Promise<void> {
    this.#sock = netConnect({ host: '127.0.0.1', port });
    this.#sock.setNoDelay(true);
    this.#sock.setEncoding('utf8');
    await new Promise<void>((res, rej) => {
      this.#sock.once('connect', res);
      this.#sock.once('error', rej);
    });
    this.#sock.write(
      `<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='${this.domain}'>`,
    );
    let head = '';
    await new Promise<void>((res) => {
      const onData = (d: string): void => {
        head += d;
        const m = /\bid=['"]([^'"]+)['"]/.exec(head);
        if (m && head.includes('>')) {
          this.#sock.off('data', onData);
          const digest = createHash('sha1')
            .update(m[1]! + secret)
            .digest('hex');
          this.#sock.write(`<handshake>${digest}</handshake>`);
          const onAck = (d2: string): void => {
            head += d2;
            if (head.includes('<handshake')) {
              this.#sock.off('data', onAck);
              res();
            }
          };
          this.#sock.on('data', onAck);
        }
      };
      this.#sock.on('data', onData);
    });
    this.#sock.on('data', (d: string) => this.#onData(d));
  }

  #onData(d: string): void {
    this.#buf += d;
    let end: number;
    // Stanzas of interest: <iq …/> or <iq …>…</iq>, <message …>…</message>.
    for (;;) {
      const buf = this.#buf;
      if (buf.startsWith('<message')) {
        end = buf.indexOf('</message>');
        if (end < 0) return;
        end += 10;
        this.onMessage?.(buf.slice(0, end));
      } else if (buf.startsWith('<iq')) {
        const gt = buf.indexOf('>');
        if (gt < 0) return;
        if (buf[gt - 1] === '/') end = gt + 1;
        else {
          const close = buf.indexOf('</iq>');
          if (close < 0) return;
          end = close + 5;
        }
        const stanza = buf.slice(0, end);
        const id = /\bid=['"]([^'"]+)['"]/.exec(stanza)?.[1];
        if (/type=['"]result['"]/.test(stanza)) this.results++;
        else if (/type=['"]error['"]/.test(stanza)) throw new Error(`raw IQ error: ${stanza}`);
        if (id) {
          const w = this.#waiters.get(id);
          if (w) {
            this.#waiters.delete(id);
            w();
          }
        }
      } else {
        const lt = buf.indexOf('<', 1);
        if (lt < 0) return;
        end = lt;
      }
      this.#buf = this.#buf.slice(end);
    }
  }

  send(s: string): void {
    this.#sock.write(s);
  }

  request(id: string, s: string): Promise<void> {
    return new Promise((res) => {
      this.#waiters.set(id, res);
      this.#sock.write(s);
    });
  }

  close(): void {
    this.#sock.end('</stream:stream>');
    this.#sock.destroy();
  }
}

const PS = 'http://jabber.org/protocol/pubsub';
const rawPublish = (from: string, id: string, node: string, seq: number): string =>
  `<iq type='set' id='${id}' from='${from}' to='pubsub.localhost'><pubsub xmlns='${PS}'><publish node='${node}'><item id='i${seq}'>` +
  `<tick xmlns='urn:bench:pubsub:1'><seq>${seq}</seq><t>${performance.now()}</t><note>${NOTE}</note></tick></item></publish></pubsub></iq>`;

function rawCreate(from: string, node: string, persist: boolean): string {
  const f = (k: string, v: string): string => `<field var='${k}'><value>${v}</value></field>`;
  return (
    `<iq type='set' id='c-${node}' from='${from}' to='pubsub.localhost'><pubsub xmlns='${PS}'><create node='${node}'/><configure>` +
    `<x xmlns='jabber:x:data' type='submit'>${f('FORM_TYPE', `${PS}#node_config`)}${f('pubsub#persist_items', persist ? '1' : '0')}` +
    `${f('pubsub#max_items', '1000')}${f('pubsub#send_last_published_item', 'never')}</x></configure></pubsub></iq>`
  );
}

interface RunResult {
  publishes: number;
  deliveries: number;
  publishRate: number;
  deliveryRate: number;
  nodeCpuUsPerDelivery: number;
  serverCpuUsPerPublish: number | undefined;
}

function subscriberJids(domain: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => (i === 0 ? domain : `w${i}@${domain}`));
}

/** Pipelined publishing for DURATION_MS, then waits for the deliveries to drain. */
async function drive(
  srv: XmppServer,
  publishOne: (seq: number) => Promise<void>,
  delivered: () => number,
  subs: number,
): Promise<RunResult> {
  const c0 = process.cpuUsage();
  const s0 = processCpuUs(srv.pid);
  const t0 = performance.now();
  let seq = 0;
  let acked = 0;
  const stopAt = t0 + DURATION_MS;
  await Promise.all(
    Array.from({ length: WINDOW }, async () => {
      while (performance.now() < stopAt) {
        await publishOne(seq++);
        acked++;
      }
    }),
  );
  const tPub = performance.now() - t0;
  const want = acked * subs;
  const drainEnd = performance.now() + 15_000;
  while (delivered() < want && performance.now() < drainEnd) await new Promise((r) => setTimeout(r, 2));
  const tAll = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const s1 = processCpuUs(srv.pid);
  const d = delivered();
  return {
    publishes: acked,
    deliveries: d,
    publishRate: acked / (tPub / 1000),
    deliveryRate: d / (tAll / 1000),
    nodeCpuUsPerDelivery: (c.user + c.system) / Math.max(1, d),
    serverCpuUsPerPublish: s0 !== undefined && s1 !== undefined ? (s1 - s0) / Math.max(1, acked) : undefined,
  };
}

async function rawScenario(
  srv: XmppServer,
  persist: boolean,
  subs: number,
  tag: string,
): Promise<RunResult & { p50: number; p99: number }> {
  const pub = new RawComponent('svc-a.localhost');
  const sub = new RawComponent('svc-b.localhost');
  await pub.connect(srv.componentPort, srv.componentSecret);
  await sub.connect(srv.componentPort, srv.componentSecret);
  const node = `raw-${tag}`;
  await pub.request(`c-${node}`, rawCreate('svc-a.localhost', node, persist));
  for (const [i, jid] of subscriberJids('svc-b.localhost', subs).entries()) {
    await sub.request(
      `s${i}`,
      `<iq type='set' id='s${i}' from='${jid}' to='pubsub.localhost'><pubsub xmlns='${PS}'><subscribe node='${node}' jid='${jid}'/></pubsub></iq>`,
    );
  }
  let delivered = 0;
  let onTick: ((seq: number) => void) | undefined;
  sub.onMessage = (m) => {
    // Count items only (ejabberd adds a <retract/> per publish once a node is full).
    let i = m.indexOf('<item ');
    while (i >= 0) {
      delivered++;
      if (onTick) {
        const s = m.indexOf('<seq>', i);
        onTick(Number(m.slice(s + 5, m.indexOf('</seq>', s))));
      }
      i = m.indexOf('<item ', i + 6);
    }
  };
  let n = 0;
  const publishOne = (seq: number): Promise<void> => {
    const id = `p${n++}`;
    return pub.request(id, rawPublish('svc-a.localhost', id, node, seq));
  };
  const r = await drive(srv, publishOne, () => delivered, subs);
  // Sequential latency on a fresh node with one subscriber.
  const lat = await latency(
    persist,
    async (seq, wait) => {
      const id = `l${n++}`;
      pub.send(rawPublish('svc-a.localhost', id, node, 1e9 + seq));
      await wait;
    },
    (cb) => (onTick = (s) => cb(s - 1e9)),
  );
  pub.close();
  sub.close();
  return { ...r, ...lat };
}

async function busScenario(
  srv: XmppServer,
  persist: boolean,
  subs: number,
  tag: string,
): Promise<RunResult & { p50: number; p99: number }> {
  const tp = await componentTransport({
    service: srv.componentService(),
    domain: 'svc-c.localhost',
    password: srv.componentSecret,
  });
  const ts = await componentTransport({
    service: srv.componentService(),
    domain: 'svc-d.localhost',
    password: srv.componentSecret,
  });
  const pub = new PubSub({ transport: tp, service: srv.pubsubService });
  const sub = new PubSub({ transport: ts, service: srv.pubsubService });
  const node = `bus-${tag}`;
  await pub.createNode(node, { persistItems: persist, maxItems: 1000 });
  let delivered = 0;
  let onTick: ((seq: number) => void) | undefined;
  const consumers = [];
  for (const jid of subscriberJids('svc-d.localhost', subs)) {
    const c = sub.consume(
      node,
      Tick,
      (v) => {
        delivered++;
        onTick?.(v.seq);
      },
      { jid, dedupeWindow: 64 },
    );
    await c.ready();
    consumers.push(c);
  }
  const publishOne = async (seq: number): Promise<void> => {
    await pub.publish(node, Tick, { seq, t: performance.now(), note: NOTE }, { id: `i${seq}` });
  };
  const r = await drive(srv, publishOne, () => delivered, subs);
  let k = 0;
  const lat = await latency(
    persist,
    async (seq, wait) => {
      await pub.publish(node, Tick, { seq: 1e9 + seq, t: performance.now(), note: NOTE }, { id: `l${k++}` });
      await wait;
    },
    (cb) => (onTick = (s) => cb(s - 1e9)),
  );
  for (const c of consumers) await c.close();
  await tp.close();
  await ts.close();
  return { ...r, ...lat };
}

/** Sequential publish → first delivery latency (ms), one subscriber listening. */
async function latency(
  persist: boolean,
  publishAndWait: (seq: number, wait: Promise<void>) => Promise<void>,
  listen: (cb: (seq: number) => void) => void,
): Promise<{ p50: number; p99: number }> {
  const { n: LAT_N, warm: LAT_WARM } = latSamples(persist);
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
  for (let i = 0; i < LAT_WARM + LAT_N; i++) {
    want = i;
    const wait = new Promise<void>((r) => (resolve = r));
    const t0 = performance.now();
    await publishAndWait(i, wait);
    if (i >= LAT_WARM) samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

const metrics: Record<string, unknown> = {};
const ratios: Record<string, unknown> = {};
const rows: Record<string, string | number>[] = [];
for (const kind of ['prosody', 'ejabberd'] as ServerKind[]) {
  const srv = await startServer(kind, { pubsubStorage: 'persistent' });
  try {
    const m: Record<string, unknown> = {};
    const r: Record<string, Record<string, number>> = {};
    for (const persist of [false, true]) {
      const storage = persist ? 'persistent' : 'non_persistent';
      for (const subs of SUBS) {
        const tag = `${storage}-${subs}`;
        const raw = await rawScenario(srv, persist, subs, tag);
        const bus = await busScenario(srv, persist, subs, tag);
        m[`${storage}_${subs}sub`] = { raw, xmppbus: bus };
        const ratioKey = persist ? 'deliveries_vs_raw_persistent' : 'deliveries_vs_raw';
        (r[ratioKey] ??= {})[String(subs)] = bus.deliveryRate / raw.deliveryRate;
        (r[persist ? 'publish_vs_raw_persistent' : 'publish_vs_raw'] ??= {})[String(subs)] =
          bus.publishRate / raw.publishRate;
        (r[persist ? 'p50_latency_vs_raw_persistent' : 'p50_latency_vs_raw'] ??= {})[String(subs)] = bus.p50 / raw.p50;
        for (const [impl, x] of [
          ['raw', raw],
          ['xmppbus', bus],
        ] as const) {
          rows.push({
            server: kind,
            storage,
            subs,
            impl,
            'publish/s': Math.round(x.publishRate),
            'deliveries/s': Math.round(x.deliveryRate),
            'p50 ms': x.p50,
            'p99 ms': x.p99,
            'node µs/delivery': x.nodeCpuUsPerDelivery,
            'server µs/publish': x.serverCpuUsPerPublish ?? NaN,
          });
        }
      }
    }
    metrics[kind] = m;
    ratios[kind] = r;
  } finally {
    await srv.stop();
  }
}
printTable('pubsub: raw socket vs xmppbus (pipelined window 50; latency = sequential, 1 subscriber)', rows);
process.stdout.write(`\nratios: ${JSON.stringify(ratios, null, 1)}\n`);
process.stdout.write(`wrote ${writeResult({ name: 'pubsub', server: 'prosody,ejabberd', metrics, ratios })}\n`);
