// CPU per IQ round trip of the XEP-0114 component transport, both ends in this process
// (svc-a calls, svc-b answers), pipelined (100 in flight) through a real server, compared in
// the same run with bare @xmpp/component 0.13 and with a raw socket that only does string
// matching (the floor). `BENCH_SERVERS=prosody,ejabberd BENCH_ROUNDS=20000 npm run bench -- transport-component`
import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { component as xmppComponent, xml as xmppXml } from '@xmpp/component';
import { xml } from '@xmppbus/core';
import { startServer, type ServerKind, type XmppServer } from '@xmppbus/testing';
import { componentTransport } from '@xmppbus/transport-component';
import { printTable, processCpuUs, writeResult } from './lib/results.js';

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 20_000);
const WARMUP = Math.min(2_000, ROUNDS);
const IN_FLIGHT = 100;
const RUNS = Number(process.env['BENCH_RUNS'] ?? 2);
const SERVERS = (process.env['BENCH_SERVERS'] ?? 'prosody,ejabberd').split(',') as ServerKind[];
const NS = 'urn:xmppbus:bench';

interface Pair {
  /** Sends one IQ get from svc-a to svc-b. */
  call(id: string): void;
  /** Registers the callback for results arriving at svc-a. */
  onResult(fn: (id: string) => void): void;
  close(): Promise<void>;
}

async function ours(srv: XmppServer): Promise<Pair> {
  const opts = { service: srv.componentService(), password: srv.componentSecret };
  const a = await componentTransport({ ...opts, domain: 'svc-a.localhost' });
  const b = await componentTransport({ ...opts, domain: 'svc-b.localhost' });
  b.onStanza((el) => {
    if (el.name !== 'iq' || el.attrs['type'] !== 'get') return;
    void b.send(
      xml(
        'iq',
        { type: 'result', id: el.attrs['id'], to: el.attrs['from'], from: el.attrs['to'] },
        xml('pong', { xmlns: NS }),
      ),
    );
  });
  let cb: (id: string) => void = () => {};
  a.onStanza((el) => {
    if (el.name === 'iq' && el.attrs['type'] === 'result') cb(el.attrs['id'] as string);
  });
  return {
    call: (id) =>
      void a.send(
        xml('iq', { type: 'get', id, to: 'svc-b.localhost', from: 'svc-a.localhost' }, xml('ping', { xmlns: NS })),
      ),
    onResult: (fn) => (cb = fn),
    close: async () => {
      await Promise.all([a.close(), b.close()]);
    },
  };
}

async function xmppjs(srv: XmppServer): Promise<Pair> {
  const mk = async (domain: string) => {
    const c = xmppComponent({ service: srv.componentService(), domain, password: srv.componentSecret });
    c.on('error', () => {});
    await c.start();
    c.socket?.setNoDelay(true);
    return c;
  };
  const a = await mk('svc-c.localhost');
  const b = await mk('svc-d.localhost');
  // The idiomatic responder: iq-callee answers with the handler's element.
  b.iqCallee.get(NS, 'ping', () => xmppXml('pong', { xmlns: NS }));
  let cb: (id: string) => void = () => {};
  a.on('stanza', (el) => {
    if (el.name === 'iq' && el.attrs['type'] === 'result') cb(el.attrs['id'] as string);
  });
  return {
    call: (id) =>
      void a.send(
        xmppXml(
          'iq',
          { type: 'get', id, to: 'svc-d.localhost', from: 'svc-c.localhost' },
          xmppXml('ping', { xmlns: NS }),
        ),
      ),
    onResult: (fn) => (cb = fn),
    close: async () => {
      for (const c of [a, b]) {
        c.reconnect.stop();
        await c.stop();
      }
    },
  };
}

/** Raw socket: handshake by hand, then only string search — the floor any library sits on. */
async function raw(srv: XmppServer): Promise<Pair> {
  const open = (domain: string, onStanza: (s: string, sock: Socket) => void): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const sock = connect({ host: srv.host, port: srv.componentPort, noDelay: true });
      sock.setEncoding('utf8');
      let buf = '';
      let online = false;
      sock.on('error', reject);
      sock.on('data', (chunk: string) => {
        buf += chunk;
        if (!online) {
          const m = /id=['"]([^'"]+)['"]/.exec(buf);
          if (!m) return;
          if (!buf.includes('<handshake')) {
            if (!buf.includes('sent')) {
              const digest = createHash('sha1')
                .update(m[1]! + srv.componentSecret)
                .digest('hex');
              sock.write(`<handshake>${digest}</handshake>`);
              buf += '<!--sent-->';
            }
            return;
          }
          online = true;
          buf = buf.slice(buf.indexOf('<handshake') + 12);
          resolve(sock);
          return;
        }
        let end: number;
        while ((end = buf.indexOf('</iq>')) >= 0) {
          onStanza(buf.slice(0, end + 5), sock);
          buf = buf.slice(end + 5);
        }
      });
      sock.write(
        `<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='${domain}'>`,
      );
    });
  const idOf = (s: string): string => /id=['"]([^'"]+)['"]/.exec(s)![1]!;
  let cb: (id: string) => void = () => {};
  const a = await open('svc-e.localhost', (s) => cb(idOf(s)));
  const b = await open('svc-f.localhost', (s, sock) =>
    sock.write(
      `<iq type='result' id='${idOf(s)}' to='svc-e.localhost' from='svc-f.localhost'><pong xmlns='${NS}'/></iq>`,
    ),
  );
  return {
    call: (id) =>
      void a.write(`<iq type='get' id='${id}' to='svc-f.localhost' from='svc-e.localhost'><ping xmlns='${NS}'/></iq>`),
    onResult: (fn) => (cb = fn),
    close: async () => {
      for (const s of [a, b]) s.end('</stream:stream>', () => s.destroy());
    },
  };
}

function pump(pair: Pair, n: number, prefix: string): Promise<void> {
  return new Promise((resolve) => {
    let sent = 0;
    let done = 0;
    pair.onResult(() => {
      if (++done === n) resolve();
      else if (sent < n) pair.call(`${prefix}${sent++}`);
    });
    while (sent < Math.min(IN_FLIGHT, n)) pair.call(`${prefix}${sent++}`);
  });
}

const VARIANTS = { xmppbus: ours, '@xmpp/component': xmppjs, 'raw socket': raw } as const;
const rows: Record<string, string | number>[] = [];
const metrics: Record<string, unknown> = {};
const ratios: Record<string, unknown> = {};

for (const kind of SERVERS) {
  const srv = await startServer(kind);
  try {
    const perVariant: Record<string, number[]> = {};
    for (let run = 0; run < RUNS; run++) {
      for (const [name, setup] of Object.entries(VARIANTS)) {
        const pair = await setup(srv);
        await pump(pair, WARMUP, 'w');
        const s0 = processCpuUs(srv.pid) ?? NaN;
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        await pump(pair, ROUNDS, 'r');
        const wall = performance.now() - t0;
        const cpu = process.cpuUsage(c0);
        const s1 = processCpuUs(srv.pid) ?? NaN;
        await pair.close();
        const nodeUs = (cpu.user + cpu.system) / ROUNDS;
        (perVariant[name] ??= []).push(nodeUs);
        rows.push({
          server: kind,
          variant: name,
          run: run + 1,
          'round trips/s': Math.round((ROUNDS / wall) * 1000),
          'node µs/rt': nodeUs,
          'server µs/rt': (s1 - s0) / ROUNDS,
        });
      }
    }
    const best = (name: string): number => Math.min(...perVariant[name]!);
    metrics[kind] = Object.fromEntries(Object.keys(VARIANTS).map((n) => [n, { nodeUsPerRoundTrip: best(n) }]));
    ratios[kind] = {
      xmppbusVsXmppjs: best('xmppbus') / best('@xmpp/component'),
      xmppbusVsRaw: best('xmppbus') / best('raw socket'),
    };
  } finally {
    await srv.stop();
  }
}

printTable(`IQ round trips, ${ROUNDS} per run, ${IN_FLIGHT} in flight, both ends in this process`, rows);
process.stdout.write(`\nratios (best run): ${JSON.stringify(ratios)}\n`);
writeResult({ name: 'transport-component', server: SERVERS.join('+'), metrics: { rows, best: metrics }, ratios });
