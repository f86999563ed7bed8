/**
 * Fault tests of @xmppbus/messaging against real Prosody and ejabberd, 5 000 messages per QoS
 * level each: kill -9 the XMPP server mid-stream and restart it; kill -9 the receiver process and
 * restart it; kill -9 the sender process and restart it (outbox recovered from SQLite).
 * Asserted: QoS 1 loses nothing; QoS 2 loses nothing and its side effect (a row written in the
 * same transaction as the delivered mark) exists exactly once per message; per-peer order of
 * first deliveries is kept. QoS 0 is lossy by definition: its count is printed; only "at most
 * once" (no duplicate) is asserted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { Session, TimeoutError, type Transport } from '@xmppbus/core';
import { Messenger } from '@xmppbus/messaging';
import { sqliteMessageStore, type SqliteMessageStore } from '@xmppbus/store-sqlite';
import { describeServers, waitFor, type XmppServer } from '@xmppbus/testing';
import { componentTransport } from '@xmppbus/transport-component';
import { afterEach, expect, it } from 'vitest';
import { Tick } from './fixtures/messaging-contracts.js';

const N = 5_000;
const DEADLINE = 180_000;
const FIXTURE = new URL('./fixtures/messaging-peer.ts', import.meta.url).pathname;
const KILL_AT = 1_500; // handler runs (effects, any QoS) at which the kill is sent

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'xmppbus-faults-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function component(srv: XmppServer, domain: string): Promise<Transport> {
  const t = await componentTransport({
    service: srv.componentService(),
    domain,
    password: srv.componentSecret,
    reconnect: { initialDelay: 50, maxDelay: 500 },
    timeout: 30_000,
  });
  cleanups.push(() => t.close());
  return t;
}

/** The in-process sender of the server-kill and receiver-kill tests: SQLite outbox, quick retries. */
function sqliteSender(transport: Transport, dir: string): Messenger {
  const sender = new Messenger({
    session: new Session({ transport }),
    store: sqliteMessageStore(join(dir, 'sender.db')),
    attemptTimeout: 3_000,
    retry: { initialDelay: 50, maxDelay: 500 },
  });
  sender.start().catch(() => undefined); // send/enqueue wait for it
  cleanups.push(() => sender.close());
  return sender;
}

/** A child peer process; `line(pred)` resolves on the first stdout line matching. */
interface Child {
  proc: ChildProcess;
  line(pred: (l: string) => boolean, timeout?: number): Promise<string>;
  kill(): Promise<void>;
}

function spawnPeer(config: Record<string, unknown>): Child {
  const proc = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', FIXTURE, JSON.stringify(config)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: { pred: (l: string) => boolean; resolve: (l: string) => void }[] = [];
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => void (stderr += d.toString()));
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    lines.push(l);
    for (const w of [...waiters]) {
      if (w.pred(l)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(l);
      }
    }
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const kill = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
  };
  cleanups.push(kill);
  return {
    proc,
    kill,
    line: (pred, timeout = DEADLINE) => {
      const seen = lines.find(pred);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve: (l: string) => (clearTimeout(timer), resolve(l)) };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new TimeoutError(`child never printed the awaited line; stderr:\n${stderr.slice(-4000)}`));
        }, timeout);
        waiters.push(w);
        void exited.then(() => {
          if (!waiters.includes(w)) return;
          waiters.splice(waiters.indexOf(w), 1);
          clearTimeout(timer);
          reject(new Error(`child exited (${proc.exitCode ?? proc.signalCode}); stderr:\n${stderr.slice(-4000)}`));
        });
      });
    },
  };
}

const countAtLeast = (n: number) => (l: string) => l.startsWith('count ') && Number(l.slice(6)) >= n;

/** The shared `waitFor`, with this file's deadline. */
function until(fn: () => boolean, what: string, timeout = DEADLINE): Promise<void> {
  return waitFor(fn, { timeout, what });
}

/** An in-process receiver recording effects in its own store's DB (QoS 2: same transaction). */
async function receiver(
  transport: Transport,
  dir: string,
  onEffect?: (effects: number) => void,
): Promise<{ messenger: Messenger; store: SqliteMessageStore }> {
  const store = sqliteMessageStore(join(dir, 'receiver.db'));
  const messenger = new Messenger({ session: new Session({ transport }), store, attemptTimeout: 3_000 });
  cleanups.push(() => messenger.close());
  // The table and the handler exist before the messenger starts answering envelopes.
  await store.open();
  store.database.exec('CREATE TABLE IF NOT EXISTS effects (msg_id TEXT NOT NULL, qos INTEGER NOT NULL)');
  const insert = store.database.prepare('INSERT INTO effects (msg_id, qos) VALUES (?, ?)');
  let effects = 0;
  messenger.handle(
    Tick,
    (_v, meta) => {
      insert.run(meta.id ?? '?', meta.qos);
      onEffect?.(++effects);
    },
    { transactional: true },
  );
  await messenger.start();
  return { messenger, store };
}

/** Enqueues q1-i and q2-i interleaved (durably), and paces QoS 0 alongside the stream. */
async function produce(messenger: Messenger, to: string): Promise<{ qos0Sent: () => number }> {
  for (let i = 0; i < N; i++) {
    await messenger.enqueue(Tick, to, { i }, { qos: 1, id: `q1-${i}` });
    await messenger.enqueue(Tick, to, { i }, { qos: 2, id: `q2-${i}` });
  }
  let sent = 0;
  void (async () => {
    for (let i = 0; i < N; i++) {
      await messenger.send(Tick, to, { i }, { qos: 0, id: `q0-${i}` }).catch(() => undefined);
      sent++;
      // Producer pacing (not a wait for an outcome): spread QoS 0 over the QoS 1/2 stream.
      if (i % 10 === 9) await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return { qos0Sent: () => sent };
}

interface Verdict {
  q0: number;
  q1: number;
  q1Rows: number;
  q2: number;
  q2Rows: number;
  q2Dupes: number;
  ordered1: boolean;
  ordered2: boolean;
}

/** Reads the effects table and checks the guarantees. */
function verify(dbPath: string, label: string, db?: Database.Database): Verdict {
  const own = db ?? new Database(dbPath, { readonly: true });
  try {
    const rows = own.prepare('SELECT msg_id, qos FROM effects ORDER BY rowid').all() as {
      msg_id: string;
      qos: number;
    }[];
    const byQos = (q: number): string[] => rows.filter((r) => r.qos === q).map((r) => r.msg_id);
    const firstOrder = (ids: string[]): boolean => {
      const seen = new Set<string>();
      let expect = 0;
      for (const id of ids) {
        if (seen.has(id)) continue;
        seen.add(id);
        if (Number(id.slice(3)) !== expect++) return false;
      }
      return true;
    };
    const q0 = byQos(0);
    const q1 = byQos(1);
    const q2 = byQos(2);
    const v: Verdict = {
      q0: new Set(q0).size,
      q1: new Set(q1).size,
      q1Rows: q1.length,
      q2: new Set(q2).size,
      q2Rows: q2.length,
      q2Dupes: q2.length - new Set(q2).size,
      ordered1: firstOrder(q1),
      ordered2: firstOrder(q2),
    };
    console.log(
      `[messaging faults] ${label}: sent ${N} per level | QoS0 delivered ${v.q0}/${N} (lossy, ${q0.length - v.q0} dup) | ` +
        `QoS1 distinct ${v.q1}/${N}, handler runs ${v.q1Rows} | QoS2 distinct ${v.q2}/${N}, effects ${v.q2Rows} ` +
        `(dupes ${v.q2Dupes}) | first-delivery order kept: QoS1 ${v.ordered1}, QoS2 ${v.ordered2}`,
    );
    expect(q0.length).toBe(v.q0); // at most once
    expect(v.q1).toBe(N);
    expect(v.q2).toBe(N);
    expect(v.q2Dupes).toBe(0);
    expect(v.ordered1).toBe(true);
    expect(v.ordered2).toBe(true);
    return v;
  } finally {
    if (!db) own.close();
  }
}

describeServers('messaging faults', (server, kind) => {
  it(
    `[${kind}] kill -9 the XMPP server mid-stream and restart it: QoS 1/2 lose nothing, QoS 2 exactly once`,
    async () => {
      const srv = server();
      const dir = tempDir();
      const [ta, tb] = await Promise.all([component(srv, 'svc-a.localhost'), component(srv, 'svc-b.localhost')]);
      // The server is SIGKILLed (the signal leaves synchronously) from inside the receiver's handler
      // at the KILL_AT-th effect, so the kill lands mid-stream however fast the stream runs.
      let killed: Promise<void> | undefined;
      let atKill = 0;
      const { store: rstore, messenger: recv } = await receiver(tb, dir, (effects) => {
        if (effects < KILL_AT || killed) return;
        atKill = effects;
        killed = srv.kill();
      });
      const sender = sqliteSender(ta, dir);
      const q0 = await produce(sender, 'svc-b.localhost');
      await until(() => killed !== undefined, `server killed at ${KILL_AT} effects`);
      await killed;
      const afterKill = recv.counters.received;
      await srv.restart();
      await sender.flush({ timeout: DEADLINE });
      await until(() => q0.qos0Sent() === N, 'QoS 0 producer done');
      console.log(
        `[messaging faults] ${kind} server SIGKILLed at ${atKill} effects (${afterKill} messages received once the kill returned); ` +
          `receiver refused ${recv.counters.refused}`,
      );
      expect(afterKill).toBeLessThan(2 * N); // really mid-stream
      verify('', `${kind} server kill -9`, rstore.database);
      expect(sender.counters.retried).toBeGreaterThan(0);
      expect(sender.counters.batched).toBeGreaterThan(0); // with batching on (the default)
    },
    DEADLINE * 2,
  );

  it(
    `[${kind}] kill -9 the receiver process and restart it: QoS 1/2 lose nothing, QoS 2 exactly once`,
    async () => {
      const srv = server();
      const dir = tempDir();
      const db = join(dir, 'receiver.db');
      const common = { service: srv.componentService(), password: srv.componentSecret, db };
      const first = spawnPeer({ role: 'receiver', domain: 'svc-d.localhost', ...common });
      await first.line((l) => l === 'ready');
      const ta = await component(srv, 'svc-c.localhost');
      const sender = sqliteSender(ta, dir);
      const q0 = await produce(sender, 'svc-d.localhost');
      await first.line(countAtLeast(KILL_AT));
      await first.kill();
      const second = spawnPeer({ role: 'receiver', domain: 'svc-d.localhost', ...common });
      await second.line((l) => l === 'ready');
      await sender.flush({ timeout: DEADLINE });
      await until(() => q0.qos0Sent() === N, 'QoS 0 producer done');
      await second.kill();
      verify(db, `${kind} receiver kill -9`);
      expect(sender.counters.retried).toBeGreaterThan(0);
      expect(sender.counters.batched).toBeGreaterThan(0); // with batching on (the default)
    },
    DEADLINE * 2,
  );

  it(
    `[${kind}] kill -9 the sender process and restart it: the outbox is recovered, nothing lost, QoS 2 exactly once`,
    async () => {
      const srv = server();
      const dir = tempDir();
      const tb = await component(srv, 'svc-f.localhost');
      // Once the whole outbox is enqueued, the sender is SIGKILLed from inside the receiver's
      // handler at the KILL_AT-th effect, so the kill lands mid-stream however fast the stream
      // runs (a poll-then-kill could arrive after the last message).
      let first: Child | undefined;
      let armed = false;
      let atKill = 0;
      const { store: rstore, messenger: recv } = await receiver(tb, dir, (effects) => {
        if (!armed || atKill > 0 || effects < KILL_AT || !first) return;
        first.proc.kill('SIGKILL');
        atKill = effects;
      });
      const common = {
        role: 'sender',
        service: srv.componentService(),
        password: srv.componentSecret,
        domain: 'svc-e.localhost',
        peer: 'svc-f.localhost',
        db: join(dir, 'sender.db'),
      };
      first = spawnPeer({ ...common, mode: 'send', count: N, qos: [1, 2, 0] });
      await first.line((l) => l === 'enqueued');
      armed = true;
      await until(() => atKill > 0, `sender killed at ${KILL_AT} effects`);
      await first.kill();
      const received = recv.counters.received;
      const second = spawnPeer({ ...common, mode: 'resume' });
      await second.line((l) => l === 'drained');
      // The recovered outbox went out with batching on (the default).
      expect(Number((await second.line((l) => l.startsWith('total batched '))).slice(14))).toBeGreaterThan(0);
      console.log(
        `[messaging faults] ${kind} sender killed at ${atKill} effects (${received} messages received by its exit)`,
      );
      // Really mid-stream: fewer than the 2N QoS 1/2 messages had arrived when the sender died.
      expect(received).toBeLessThan(2 * N);
      verify('', `${kind} sender kill -9`, rstore.database);
    },
    DEADLINE * 2,
  );
});
