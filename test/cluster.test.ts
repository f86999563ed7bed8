/**
 * The bus on a 2-node ejabberd cluster (startEjabberdCluster: Erlang distribution + mnesia on
 * loopback). In order, on one cluster:
 * 1. balancing — instances of one service, each under its own name, on both nodes; the bus's
 *    presence/disco-based ServiceClient spreads calls over all of them (ejabberd alone would pick
 *    the caller's node first for a name connected on both);
 * 2. node loss — kill -9 node 1 while QoS-1 and QoS-2 streams run both ways between nodes, RPC
 *    calls are pending, durable pub/sub consumers sit on both nodes and a prober measures the
 *    routing window; components re-home to node 2 through their `endpoints`;
 * 3. the killed node restarts, rejoins the cluster, and traffic spreads over both nodes again.
 * Counts are printed (`[cluster] …` lines).
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { Session, XmppBusError, sleep, type Transport } from '@xmppbus/core';
import { Messenger } from '@xmppbus/messaging';
import { PubSub } from '@xmppbus/pubsub';
import { RpcServer, ServiceClient } from '@xmppbus/rpc';
import { event } from '@xmppbus/schema';
import { openComponentStream } from '@xmppbus/server/testing';
import { sqliteMessageStore, type SqliteMessageStore } from '@xmppbus/store-sqlite';
import { CreateOrder, NS_ORDERS, Wait, startEjabberdCluster, waitFor, type EjabberdCluster } from '@xmppbus/testing';
import { componentTransport } from '@xmppbus/transport-component';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Tick } from './fixtures/messaging-contracts.js';

/** QoS-1 and QoS-2 messages per direction (two directions: ≥ 5 000 per level cross-node in all). */
const PER_DIRECTION = 2_500;
const DEADLINE = 240_000;
const KILL_AT = 1_500; // deliveries (both directions) before node 1 dies
const NS_PING = 'urn:xmpp:ping';
const Beat = event({ ns: 'urn:test:cluster:beats:1', name: 'beat', schema: Type.Object({ n: Type.Integer() }) });

let cluster: EjabberdCluster;
let dir: string;
/** Whether something already listened on epmd's port before the cluster started (not ours to judge). */
let epmdBefore = false;

/** True if a socket listens on TCP `port` (any address), from /proc/net/tcp{,6}. */
function listening(port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return ['/proc/net/tcp', '/proc/net/tcp6'].some((f) => {
    try {
      return readFileSync(f, 'utf8')
        .split('\n')
        .some((l) => {
          const cols = l.trim().split(/\s+/);
          return cols[1]?.endsWith(hex) === true && cols[3] === '0A';
        });
    } catch {
      return false;
    }
  });
}

/** Pids whose command line mentions `text`. */
function processesMentioning(text: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(text);
      } catch {
        return false;
      }
    })
    .map(Number);
}
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  epmdBefore = listening(4369);
  // `spread.localhost`: ejabberd's own cluster-wide balancing of one name (for comparison only).
  cluster = await startEjabberdCluster({
    nodes: 2,
    balancing: { 'spread.localhost': { type: 'random', connections: 2 } },
  });
  dir = mkdtempSync(join(tmpdir(), 'xmppbus-cluster-test-'));
}, 180_000);

beforeEach((ctx) => {
  // On failure, each node's log tail (the nodes are still up: they stop in afterAll).
  ctx.onTestFailed(() => {
    for (const n of cluster?.nodes ?? []) {
      const log = n.logs();
      process.stderr.write(`\n----- ${n.nodeName} log (${n.dir}) -----\n${log.slice(-6000)}\n-----\n`);
    }
  });
});

afterAll(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

/**
 * A component whose home is node `home` (0 or 1): it connects there first and, through
 * `endpoints`, re-homes to the other node when its own dies.
 */
async function component(domain: string, home: number): Promise<Transport> {
  const services = cluster.componentServices();
  const t = await componentTransport({
    service: services[home]!,
    endpoints: services.filter((_, i) => i !== home),
    domain,
    password: cluster.componentSecret,
    reconnect: { initialDelay: 50, maxDelay: 500 },
    timeout: 30_000,
  });
  closers.push(() => t.close());
  return t;
}

async function session(domain: string, home: number): Promise<Session> {
  const s = new Session({ transport: await component(domain, home) });
  closers.push(() => s.close());
  await s.start();
  return s;
}

/**
 * An RPC instance answering Wait with its own name, counting its calls in `served` under `key`
 * (default: its name). With `hold`, Wait (ms > 0) and CreateOrder answer only once `hold`
 * resolves: calls stay in flight until the test lets them go.
 */
async function instance(
  name: string,
  home: number,
  served: Map<string, number>,
  options: { key?: string; hold?: Promise<void> } = {},
): Promise<RpcServer> {
  const { key = name, hold } = options;
  const rpc = new RpcServer({ session: await session(name, home) });
  rpc.handle(Wait, async ({ ms }) => {
    served.set(key, (served.get(key) ?? 0) + 1);
    if (ms > 0) await (hold ?? sleep(ms));
    return { by: name };
  });
  rpc.handle(CreateOrder, async ({ sku, qty }) => {
    await hold;
    return { orderId: `${sku}-${qty}-${name}`, total: qty };
  });
  await rpc.start();
  closers.push(() => rpc.close());
  return rpc;
}

function discoverTarget(match: RegExp): { discover: { server: string; match: RegExp; feature: string } } {
  return { discover: { server: cluster.domain, match, feature: NS_ORDERS } };
}

describe('ejabberd cluster (2 nodes)', () => {
  it('balancing: one service, instances on both nodes, calls spread by the bus over all of them', async () => {
    // What ejabberd does alone: one name connected on both nodes → the caller's node first.
    const shared = new Map<string, number>();
    await instance('shared.localhost', 0, shared, { key: 'node1' });
    await instance('shared.localhost', 1, shared, { key: 'node2' });
    const plain = new ServiceClient({
      session: await session('plain-caller.localhost', 0),
      target: 'shared.localhost',
    });
    closers.push(() => plain.close());
    await plain.start();
    for (let i = 0; i < 60; i++) await plain.call(Wait, { ms: 0 }, { timeout: 10_000 });
    console.log(
      `[cluster] ejabberd's default for one name connected on both nodes, 60 calls from node 1: ${JSON.stringify(Object.fromEntries(shared))}`,
    );
    expect(shared.get('node1')).toBe(60); // local node first: why the bus balances itself
    // With `domain_balancing` (the fixture's `balancing` option) ejabberd spreads one name itself,
    // as long as exactly `connections` connections exist (scale.md A.4).
    const spread = new Map<string, number>();
    await instance('spread.localhost', 0, spread, { key: 'node1' });
    await instance('spread.localhost', 1, spread, { key: 'node2' });
    const viaServer = new ServiceClient({
      session: await session('spread-caller.localhost', 0),
      target: 'spread.localhost',
    });
    closers.push(() => viaServer.close());
    await viaServer.start();
    for (let i = 0; i < 100; i++) await viaServer.call(Wait, { ms: 0 }, { timeout: 10_000 });
    console.log(
      `[cluster] domain_balancing random/2 for one name on both nodes, 100 calls from node 1: ${JSON.stringify(Object.fromEntries(spread))}`,
    );
    expect(spread.get('node1')).toBeGreaterThanOrEqual(10);
    expect(spread.get('node2')).toBeGreaterThanOrEqual(10);

    // The bus: each instance has its own name; ejabberd routes each name to its node.
    const served = new Map<string, number>();
    const names = ['inst-1.localhost', 'inst-2.localhost', 'inst-3.localhost', 'inst-4.localhost'];
    await Promise.all(names.map((n, i) => instance(n, i % 2, served)));
    const callers = await Promise.all([session('caller-1.localhost', 0), session('caller-2.localhost', 1)]);
    const clients = callers.map(
      (s) => new ServiceClient({ session: s, target: discoverTarget(/^inst-\d\.localhost$/), rediscoverInterval: 0 }),
    );
    for (const c of clients) {
      closers.push(() => c.close());
      await c.start({ timeout: 30_000 });
    }
    // Discovery through either node sees the instances of both (routes are cluster-wide).
    for (const c of clients) expect(c.instances.map((i) => i.jid)).toEqual(names);
    const CALLS = 400;
    for (const c of clients) {
      await Promise.all(Array.from({ length: CALLS }, () => c.call(Wait, { ms: 0 }, { timeout: 30_000 })));
    }
    const counts = names.map((n) => served.get(n) ?? 0);
    console.log(
      `[cluster] balancing: ${2 * CALLS} calls from callers on node 1 and node 2 over ${names.length} instances ` +
        `(inst-1,3 on node 1; inst-2,4 on node 2): ${counts.join(' / ')}`,
    );
    expect(counts.reduce((a, b) => a + b, 0)).toBe(2 * CALLS);
    // Every instance served a real share (even would be 200 each).
    for (const n of counts) expect(n).toBeGreaterThanOrEqual((2 * CALLS) / names.length / 4);
  });

  it(
    'node loss: kill -9 node 1 mid-stream — QoS 1/2 lose nothing, QoS 2 once, RPC settles, consumers keep their place',
    async () => {
      // --- messaging: svc-a (node 1) → svc-b (node 2) and svc-c (node 2) → svc-d (node 1)
      const receivers: { store: SqliteMessageStore; messenger: Messenger }[] = [];
      const senders: Messenger[] = [];
      for (const [from, fromHome, to, toHome] of [
        ['svc-a.localhost', 0, 'svc-b.localhost', 1],
        ['svc-c.localhost', 1, 'svc-d.localhost', 0],
      ] as const) {
        const store = sqliteMessageStore(join(dir, `${to}.db`));
        const recv = new Messenger({
          session: new Session({ transport: await component(to, toHome) }),
          store,
          attemptTimeout: 3_000,
        });
        closers.push(() => recv.close());
        await store.open();
        store.database.exec('CREATE TABLE effects (msg_id TEXT NOT NULL, qos INTEGER NOT NULL)');
        const insert = store.database.prepare('INSERT INTO effects (msg_id, qos) VALUES (?, ?)');
        recv.handle(Tick, (_v, meta) => void insert.run(meta.id ?? '?', meta.qos), { transactional: true });
        await recv.start();
        receivers.push({ store, messenger: recv });
        const send = new Messenger({
          session: new Session({ transport: await component(from, fromHome) }),
          store: sqliteMessageStore(join(dir, `${from}.db`)),
          attemptTimeout: 3_000,
          retry: { initialDelay: 50, maxDelay: 500 },
        });
        closers.push(() => send.close());
        await send.start();
        senders.push(send);
      }

      // --- RPC: instances on both nodes, the caller on node 2 (the survivor)
      const served = new Map<string, number>();
      let release = (): void => undefined;
      const hold = new Promise<void>((r) => (release = r));
      await Promise.all([
        instance('rpc-1.localhost', 0, served, { hold }),
        instance('rpc-2.localhost', 1, served, { hold }),
      ]);
      const svc = new ServiceClient({
        session: await session('rpc-caller.localhost', 1),
        target: ['rpc-1.localhost', 'rpc-2.localhost'],
        probeInterval: 500,
        // A request lost in the routing window gets no answer from an instance that is alive again
        // (re-homed): idempotent calls retry after this much silence instead of waiting out the deadline.
        retry: { attempts: 8, attemptTimeout: 4_000 },
      });
      closers.push(() => svc.close());
      await svc.start();

      // --- pub/sub: publisher on node 2, durable consumers on node 1 and node 2
      const pubsub = async (name: string, home: number): Promise<PubSub> => {
        const p = new PubSub({ session: await session(name, home), service: cluster.pubsubService, timeout: 20_000 });
        await p.start({ timeout: 20_000 });
        return p;
      };
      const publisher = await pubsub('pub.localhost', 1);
      await publisher.createNode('beats', { maxItems: 1000 });
      const got: number[][] = [[], []];
      for (const [k, home] of [
        [0, 0],
        [1, 1],
      ] as const) {
        const p = await pubsub(`sub-${k + 1}.localhost`, home);
        const sub = p.consume(Beat, 'beats', (v) => void got[k]!.push(v.n), { durable: `cluster-${k + 1}` });
        closers.push(() => sub.close());
        await sub.start({ timeout: 20_000 });
      }
      const publish = async (n: number): Promise<void> => {
        const deadline = performance.now() + 60_000;
        for (;;) {
          try {
            await publisher.publish(Beat, 'beats', { n }, { id: `b${n}`, timeout: 5_000 });
            return;
          } catch (err) {
            if (performance.now() > deadline || (err as { retryable?: boolean }).retryable !== true) throw err;
            await sleep(100); // the publisher's own retry pause
          }
        }
      };
      for (let n = 0; n < 20; n++) await publish(n);
      await waitFor(() => got.every((g) => g.length === 20), { what: 'the first 20 events on both', timeout: 30_000 });

      // --- routing-window prober: raw IQ pings node 2 → a target homed on node 1
      await session('win-target.localhost', 0); // a Session answers XEP-0199 pings
      const probe = await openComponentStream({
        port: cluster.nodes[1]!.componentPort,
        name: 'win-probe.localhost',
        secret: cluster.componentSecret,
      });
      closers.push(() => Promise.resolve(probe.close()));
      const pings: { id: string; at: number }[] = [];
      const replies = new Map<string, 'result' | 'error'>();
      let scanned = 0;
      /** Reads the replies received since the last scan. */
      const scan = (): void => {
        const text = probe.received;
        const re = /<iq\b[^>]*>/g;
        re.lastIndex = scanned;
        for (let m = re.exec(text); m; m = re.exec(text)) {
          const id = /\bid=['"]([^'"]+)['"]/.exec(m[0])?.[1];
          if (id) replies.set(id, /type=['"]error['"]/.test(m[0]) ? 'error' : 'result');
          scanned = re.lastIndex;
        }
      };
      let pinging = true;
      const startPinging = async (): Promise<void> => {
        for (let i = 0; pinging; i++) {
          const id = `w${i}`;
          pings.push({ id, at: performance.now() });
          probe.write(
            `<iq type='get' id='${id}' to='win-target.localhost' from='win-probe.localhost'><ping xmlns='${NS_PING}'/></iq>`,
          );
          await sleep(1); // producer pacing: a steady stream across the kill
        }
      };

      // --- RPC calls (started just before the kill), idempotent (Wait) and not (CreateOrder)
      const CALL_TIMEOUT = 20_000;
      const call = (i: number) => {
        const idempotent = i % 2 === 0;
        const t0 = performance.now();
        const p: Promise<unknown> = idempotent
          ? svc.call(Wait, { ms: 1 }, { timeout: CALL_TIMEOUT })
          : svc.call(CreateOrder, { sku: `k${i}`, qty: 1 }, { timeout: CALL_TIMEOUT });
        return p.then(
          (v) => ({ idempotent, ok: true as const, v, ms: performance.now() - t0 }),
          (e: unknown) => ({ idempotent, ok: false as const, e, ms: performance.now() - t0 }),
        );
      };
      // --- the prober runs, then the QoS streams start; node 1 dies mid-stream
      const pinger = startPinging();
      await waitFor(
        () => {
          scan();
          return replies.size >= 20;
        },
        { what: 'the prober running', timeout: 30_000 },
      );
      const producing = (async () => {
        for (let i = 0; i < PER_DIRECTION; i++) {
          for (const [k, send] of senders.entries()) {
            const to = k === 0 ? 'svc-b.localhost' : 'svc-d.localhost';
            await send.enqueue(Tick, to, { i }, { qos: 1, id: `q1-${k}-${i}` });
            await send.enqueue(Tick, to, { i }, { qos: 2, id: `q2-${k}-${i}` });
          }
        }
      })();
      const delivered = (): number => receivers.reduce((a, r) => a + r.messenger.counters.received, 0);
      await waitFor(() => delivered() >= KILL_AT, { what: `${KILL_AT} deliveries`, timeout: DEADLINE });
      // Calls in flight on both instances (held by their handlers) when the node dies.
      const calls = Array.from({ length: 40 }, (_, i) => call(i));
      await waitFor(() => svc.instances.every((i) => i.inFlight > 0), { what: 'calls pending on both instances' });
      const atKill = delivered();
      const killedAt = performance.now();
      await cluster.kill(0, 'SIGKILL');
      const afterKill = delivered();
      // More calls right after the kill, before the instance on node 1 is back (the window).
      calls.push(...Array.from({ length: 20 }, (_, i) => call(i)));
      release();
      console.log(
        `[cluster] node 1 SIGKILLed at ${atKill} deliveries (${afterKill} when the kill returned) of ${4 * PER_DIRECTION}`,
      );
      expect(afterKill).toBeLessThan(4 * PER_DIRECTION); // really mid-stream
      await producing;

      // Events published while node 1 is gone.
      for (let n = 20; n < 40; n++) await publish(n);

      // Components homed on node 1 re-home to node 2 (same names): the window target answers again.
      await waitFor(
        () => {
          scan();
          return pings.some((p) => p.at > killedAt + 20 && replies.get(p.id) === 'result');
        },
        { what: 'the window target answering from node 2', timeout: 60_000 },
      );
      pinging = false;
      await pinger;
      const sentPings = pings.length;
      // A ping unanswered 5 s after the last one went out is gone for good (the routing window).
      await waitFor(
        () => {
          scan();
          return pings.every((p) => replies.has(p.id));
        },
        { what: 'all pings answered', timeout: 5_000 },
      ).catch(() => undefined);
      const outcome = { result: 0, error: 0, vanished: 0 };
      for (const p of pings) outcome[replies.get(p.id) ?? 'vanished']++;
      const firstError = pings.find((p) => replies.get(p.id) === 'error');
      const vanishedAt = pings.filter((p) => !replies.has(p.id)).map((p) => (p.at - killedAt).toFixed(1));
      console.log(
        `[cluster] routing window: ${sentPings} pings node 2 → win-target (homed on node 1, ~1/ms): ` +
          `${outcome.result} answered, ${outcome.error} error replies (node 1 gone, before re-homing), ` +
          `${outcome.vanished} vanished without a reply` +
          (firstError
            ? `; first error for a ping sent ${(firstError.at - killedAt).toFixed(1)} ms after the kill`
            : '') +
          `; vanished pings sent at (ms from the kill): [${vanishedAt.join(', ')}]`,
      );

      // RPC: every call settles; idempotent ones succeed, the others succeed or fail typed, in time.
      const settled = await Promise.all(calls);
      const idem = settled.filter((c) => c.idempotent);
      const other = settled.filter((c) => !c.idempotent);
      const failedTypes = other.filter((c) => !c.ok).map((c) => (c.ok ? '' : (c.e as Error).name));
      for (const c of idem) if (!c.ok) console.log(`[cluster] idempotent call failed: ${String(c.e)}`);
      console.log(
        `[cluster] RPC at the kill: idempotent ${idem.filter((c) => c.ok).length}/${idem.length} succeeded; ` +
          `non-idempotent ${other.filter((c) => c.ok).length}/${other.length} succeeded, failed typed: ${JSON.stringify(failedTypes)}; ` +
          `slowest settled after ${Math.round(Math.max(...settled.map((c) => c.ms)))} ms (deadline ${CALL_TIMEOUT} ms); ` +
          `the idempotent handler ran ${[...served.values()].reduce((a, b) => a + b, 0)} times for ${idem.length} calls (more = retried)`,
      );
      expect(idem.every((c) => c.ok)).toBe(true);
      for (const c of other) if (!c.ok) expect(c.e).toBeInstanceOf(XmppBusError);
      // None hangs: each settles by its deadline (plus scheduling slack on a loaded box).
      for (const c of settled) expect(c.ms).toBeLessThan(CALL_TIMEOUT + 5_000);

      // Messaging: both outboxes drain; effects counted from the receivers' databases.
      for (const s of senders) await s.flush({ timeout: DEADLINE });
      for (const [k, r] of receivers.entries()) {
        const rows = r.store.database.prepare('SELECT msg_id, qos FROM effects').all() as {
          msg_id: string;
          qos: number;
        }[];
        const q1 = rows.filter((x) => x.qos === 1).map((x) => x.msg_id);
        const q2 = rows.filter((x) => x.qos === 2).map((x) => x.msg_id);
        const v = {
          q1: new Set(q1).size,
          q1Runs: q1.length,
          q2: new Set(q2).size,
          q2Effects: q2.length,
        };
        const dir = k === 0 ? 'svc-a (node 1) → svc-b (node 2)' : 'svc-c (node 2) → svc-d (node 1)';
        console.log(
          `[cluster] node loss, ${dir}: QoS1 sent ${PER_DIRECTION}, received ${v.q1} distinct (handler runs ${v.q1Runs}), ` +
            `lost ${PER_DIRECTION - v.q1} | QoS2 sent ${PER_DIRECTION}, received ${v.q2}, lost ${PER_DIRECTION - v.q2}, ` +
            `duplicate effects ${v.q2Effects - v.q2} | sender retried ${senders[k]!.counters.retried}`,
        );
        expect(v.q1).toBe(PER_DIRECTION);
        expect(v.q2).toBe(PER_DIRECTION);
        expect(v.q2Effects).toBe(v.q2);
      }

      // Pub/sub: both durable consumers have every event once, in order.
      await waitFor(() => got.every((g) => g.includes(39)), { what: 'all 40 events on both', timeout: 60_000 });
      console.log(
        `[cluster] pub/sub across the kill: consumer on node 1 got ${got[0]!.length}, on node 2 ${got[1]!.length} (of 40)`,
      );
      for (const g of got) expect(g).toEqual(Array.from({ length: 40 }, (_, i) => i));
      expect(await cluster.members(1)).toEqual([cluster.nodes[1]!.nodeName]);
    },
    DEADLINE * 2,
  );

  it('the killed node restarts, rejoins, and traffic spreads over both nodes again', async () => {
    await cluster.restart(0);
    const all = cluster.nodes.map((n) => n.nodeName).sort();
    expect(await cluster.members(0)).toEqual(all);
    expect(await cluster.members(1)).toEqual(all);
    // New instances on the restarted node join the ones that stayed on node 2.
    const served = new Map<string, number>();
    const names = ['back-1.localhost', 'back-2.localhost', 'back-3.localhost'];
    await Promise.all(names.map((n, i) => instance(n, i === 1 ? 1 : 0, served)));
    const svc = new ServiceClient({
      session: await session('back-caller.localhost', 1),
      target: discoverTarget(/^back-\d\.localhost$/),
      rediscoverInterval: 0,
    });
    closers.push(() => svc.close());
    await svc.start({ timeout: 30_000 });
    expect(svc.instances.map((i) => i.jid)).toEqual(names);
    await Promise.all(Array.from({ length: 300 }, () => svc.call(Wait, { ms: 0 }, { timeout: 30_000 })));
    const counts = names.map((n) => served.get(n) ?? 0);
    console.log(
      `[cluster] after the restart: ${all.length} nodes listed on both; 300 calls from node 2 over back-1,3 (node 1) and back-2 (node 2): ${counts.join(' / ')}`,
    );
    for (const n of counts) expect(n).toBeGreaterThanOrEqual(25);
  });

  it('stop() leaves nothing behind: no VM, no ctl VM, no epmd, no temp dir', async () => {
    const run = cluster.nodes[0]!.nodeName.replace(/-\d+@localhost$/, '-');
    const dirs = cluster.nodes.map((n) => n.dir);
    for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
    await cluster.stop();
    expect(processesMentioning(run)).toEqual([]);
    for (const d of dirs) expect(existsSync(d)).toBe(false);
    if (!epmdBefore) expect(listening(4369)).toBe(false);
    console.log(`[cluster] stopped: no process mentions ${run}*, node dirs removed, epmd port 4369 not listening`);
  });
});
